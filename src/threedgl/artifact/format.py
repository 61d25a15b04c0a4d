"""Reading and writing ``.3dgl`` files.

Layout (all of it is the standard safetensors layout)::

    8 bytes   little-endian u64 N: length of the JSON header
    N bytes   JSON header: tensor names, dtypes, shapes, offsets and
              "__metadata__": {"threedgl.manifest": "<manifest JSON>"}
    rest      raw little-endian tensor data

Checks made before anything is used, in this order: file size against a limit; magic
bytes (a pickle or a ``torch.save`` zip is refused by name); header length and JSON;
manifest format, version, required fields and types; tensor dtypes (float32 only);
safetensors' own offset checks (a truncated file fails); the sha256 of the weights
against the manifest. Generator-specific checks (tensor names and shapes against the
architecture) are made by the generator class that rebuilds the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from threedgl.errors import ArtifactError

FORMAT_NAME = "threedgl.generator"
FORMAT_VERSION = 1
ARTIFACT_SUFFIX = ".3dgl"
MANIFEST_KEY = "threedgl.manifest"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 8 * 1024 * 1024

REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "generator": str,
    "library_version": str,
    "created": str,
    "schema": dict,
    "labels": list,
    "architecture": dict,
    "models": list,
    "privacy": dict,
    "training": dict,
    "weights_sha256": str,
}


@dataclass(frozen=True)
class Artifact:
    """A validated artifact: its manifest (a JSON object) and its float32 tensors."""

    manifest: dict[str, Any]
    tensors: dict[str, np.ndarray]

    @property
    def generator(self) -> str:
        return str(self.manifest["generator"])


def weights_sha256(tensors: Mapping[str, np.ndarray]) -> str:
    """A hash of the weights that does not depend on the file layout.

    For each tensor in name order: the name, the dtype, the shape and the raw
    little-endian bytes, each length-prefixed.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        for part in (
            name.encode("utf-8"),
            arr.dtype.str.encode("ascii"),
            json.dumps(list(arr.shape)).encode("ascii"),
            np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"),
                                            copy=False)).reshape(-1).data.cast("B"),
        ):
            h.update(struct.pack("<Q", len(part)))
            h.update(part)
    return h.hexdigest()


def write_artifact_bytes(
    manifest: Mapping[str, Any], tensors: Mapping[str, np.ndarray]
) -> tuple[bytes, str]:
    """The ``.3dgl`` bytes of ``manifest`` and ``tensors`` and the weights' sha256.

    The inverse of :func:`read_artifact_bytes`: what a client sends without a file.
    ``weights_sha256`` is filled in; the manifest is checked as a reader checks it.
    """
    from safetensors.numpy import save

    clean = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    digest = weights_sha256(clean)
    full = dict(manifest)
    full["weights_sha256"] = digest
    _validate_manifest(full)
    text = json.dumps(full, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return save(clean, metadata={MANIFEST_KEY: text}), digest


def write_artifact(path: str | os.PathLike[str], manifest: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> str:
    """Write an artifact atomically; fills ``weights_sha256`` and returns it."""
    from threedgl.schema.io import atomic_write_bytes

    data, digest = write_artifact_bytes(manifest, tensors)
    atomic_write_bytes(path, data)
    return digest


def read_artifact(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> Artifact:
    """Read and validate an artifact file. Raises :class:`ArtifactError` naming the problem."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"generator file '{p}' does not exist")
    if not p.is_file():
        raise ArtifactError(f"'{p}' is not a file")
    size = p.stat().st_size
    if size > max_bytes:
        raise ArtifactError(
            f"'{p}' is {size} bytes, above the limit of {max_bytes} bytes for a generator file"
        )
    try:
        return read_artifact_bytes(p.read_bytes(), max_bytes=max_bytes)
    except ArtifactError as exc:
        raise ArtifactError(f"'{p}': {exc}") from None


def read_artifact_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Artifact:
    """Validate and read an artifact held in memory (what the server does with an upload).

    Every malformed input raises :class:`ArtifactError`; the cost is bounded by the size
    limits (JSON depth, number lengths, header and manifest sizes).
    """
    if len(data) > max_bytes:
        raise ArtifactError(f"{len(data)} bytes is above the limit of {max_bytes} bytes")
    if len(data) < 8:
        raise ArtifactError("not a threedgl generator file (too short: truncated or empty)")
    (header_len,) = struct.unpack("<Q", data[:8])
    safetensors_like = 2 <= header_len <= len(data) - 8 and data[8:9] == b"{"
    if not safetensors_like and (data[:1] == b"\x80" or data[:2] == b"PK"):
        # A safetensors header length may well have 0x80 as its low byte: only a file
        # that is not laid out as safetensors is named a pickle.
        raise ArtifactError(
            "not a threedgl generator file: it looks like a pickle or a torch.save archive, "
            "which can run code when loaded; threedgl never unpickles"
        )
    if header_len > MAX_HEADER_BYTES or header_len > len(data) - 8 or header_len < 2:
        raise ArtifactError(
            "not a threedgl generator file (bad header length: truncated or not safetensors)"
        )
    header = strict_json(bytes(data[8 : 8 + header_len]), "the file's header")
    if not isinstance(header, dict):
        raise ArtifactError("not a threedgl generator file (its header is not a JSON object)")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not isinstance(meta.get(MANIFEST_KEY), str):
        raise ArtifactError("not a threedgl generator file (no threedgl manifest in the header)")
    extra = sorted(k for k in meta if k != MANIFEST_KEY)
    if extra:
        raise ArtifactError(f"the header's metadata has unknown key(s) {_shown(extra)}")
    manifest_text = meta[MANIFEST_KEY]
    if len(manifest_text) > MAX_MANIFEST_CHARS:
        raise ArtifactError(
            f"the manifest is {len(manifest_text)} characters, above the limit of "
            f"{MAX_MANIFEST_CHARS}"
        )
    manifest = strict_json(manifest_text, "the manifest")
    _validate_manifest(manifest)
    names = [name for name in header if name != "__metadata__"]
    if len(names) > MAX_TENSORS:
        raise ArtifactError(f"the file holds {len(names)} tensors, above the limit of {MAX_TENSORS}")
    for name in names:
        info = header[name]
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            dtype = info.get("dtype") if isinstance(info, dict) else info
            raise ArtifactError(
                f"tensor {_shown(name)} has dtype {_shown(dtype)}; only float32 (F32) is allowed"
            )
        shape = info.get("shape")
        if (not isinstance(shape, list) or len(shape) > 4
                or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 2**31
                           for d in shape)):
            raise ArtifactError(f"tensor {_shown(name)} has an invalid shape {_shown(shape)}")
    tensors = _tensor_views(data, 8 + header_len, header, names)
    for name, arr in tensors.items():
        if not np.isfinite(arr).all():
            raise ArtifactError(f"tensor {_shown(name)} holds NaN or infinite values")
    digest = weights_sha256(tensors)
    if digest != manifest["weights_sha256"]:
        raise ArtifactError(
            "the weights do not match the manifest's sha256 (the file was modified or corrupted)"
        )
    return Artifact(manifest=manifest, tensors=dict(tensors))


def _tensor_views(
    data: bytes, start: int, header: dict[str, Any], names: list[str]
) -> dict[str, np.ndarray]:
    """Read-only float32 views of the tensors inside ``data`` (no copy).

    The checks of safetensors' own reader: every ``data_offsets`` pair is two ints, the
    byte ranges tile the data section exactly (sorted, contiguous, from 0 to its end, no
    overlap) and each range holds exactly ``prod(shape)`` float32 values.
    """
    body = len(data) - start
    spans = []
    for name in names:
        offsets = header[name].get("data_offsets")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ArtifactError(f"tensor {_shown(name)} has invalid data_offsets")
        begin, end = offsets
        count = math.prod(header[name]["shape"])
        if not 0 <= begin <= end <= body or end - begin != 4 * count:
            raise ArtifactError(
                f"the weights are unreadable (truncated or corrupted file): tensor "
                f"{_shown(name)} has data_offsets {_shown(offsets)} for {count} float32 values "
                f"in {body} bytes"
            )
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise ArtifactError(
                f"the weights are unreadable (truncated or corrupted file): tensor "
                f"{_shown(name)} does not follow the previous one (overlap or gap)"
            )
        position = end
    if position != body:
        raise ArtifactError(
            "the weights are unreadable (truncated or corrupted file): the data section has "
            f"{body - position} bytes more than its tensors"
        )
    out: dict[str, np.ndarray] = {}
    for begin, end, name in spans:
        count = (end - begin) // 4
        out[name] = np.frombuffer(data, dtype="<f4", count=count, offset=start + begin).reshape(
            header[name]["shape"])
    return out


# -- strict JSON ----------------------------------------------------------------------------
#: Limits of the JSON a file may hold: they bound the cost of reading a stranger's file.
MAX_MANIFEST_CHARS = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32
#: At most this many JSON objects and arrays in a header or a manifest (a manifest of 10
#: class models of a 60-feature table holds about 10,000).
MAX_JSON_CONTAINERS = 200_000
#: A JSON string, unrolled with possessive quantifiers: the plain ``"(?:[^"\\]|\\.)*"``
#: keeps a backtracking frame per character and took 376 MB on a 3 MB header string.
_STRINGS = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"')


def _containers(text: str) -> int:
    """The number of objects and arrays in JSON ``text`` (brackets outside strings)."""
    bare = _STRINGS.sub("", text)
    return bare.count("{") + bare.count("[")
MAX_NUMBER_CHARS = 40
MAX_TENSORS = 4096
#: The longest a short text field of the manifest (generator kind, version, date) may be.
MAX_SHORT_TEXT = 64


def _no_constant(name: str) -> Any:
    raise _JSONRefused(f"{name} is not allowed (strict JSON: numbers must be finite)")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_CHARS:
        raise _JSONRefused(f"an integer of {len(text)} digits is above the limit of "
                           f"{MAX_NUMBER_CHARS}")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _JSONRefused(f"a number of {len(text)} characters is above the limit of "
                           f"{MAX_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        raise _JSONRefused(f"the number {text[:20]} is out of range (not a finite float)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JSONRefused(f"the key {_shown(key)} appears twice in one object")
        out[key] = value
    return out


class _JSONRefused(Exception):
    pass


def strict_json(text: str | bytes, what: str) -> Any:
    """Parse JSON from a stranger: finite numbers of bounded length, valid UTF-8 only.

    NaN, Infinity, numbers that overflow, integers longer than :data:`MAX_NUMBER_CHARS`,
    duplicate keys, lone surrogates (``"\\ud800"``) and nesting deeper than
    :data:`MAX_JSON_DEPTH` raise :class:`ArtifactError` naming ``what``.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ArtifactError(f"{what} is not valid UTF-8") from None
    # Python builds every object and array at ~50x the bytes of "{}": count them first
    # (strings removed, so brackets inside them do not count), before anything is built
    containers = _containers(text)
    if containers > MAX_JSON_CONTAINERS:
        raise ArtifactError(f"{what} holds {containers} JSON objects and arrays, above the "
                            f"limit of {MAX_JSON_CONTAINERS}")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_int=_int,
                           parse_float=_float, object_pairs_hook=_unique_keys)
    except _JSONRefused as exc:
        raise ArtifactError(f"{what} is not strict JSON: {exc}") from None
    except RecursionError:
        raise ArtifactError(f"{what} is nested too deeply") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise ArtifactError(f"{what} is not valid JSON ({_shown(str(exc))})") from None
    _check_tree(value, what)
    return value


def _check_tree(value: Any, what: str) -> None:
    """Depth and UTF-8 validity of every string (keys included), iteratively."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ArtifactError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, str):
            _check_text(node, what)
        elif isinstance(node, dict):
            for key, child in node.items():
                _check_text(key, what)
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactError(
            f"{what} holds a string that is not valid Unicode (a lone surrogate escape)"
        ) from None


def _shown(value: Any, limit: int = 80) -> str:
    """``repr`` of a value from a file, escaped and cut to ``limit`` characters."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validate_manifest(manifest: Any) -> None:
    if not isinstance(manifest, dict):
        raise ArtifactError("the manifest must be a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(
            f"not a threedgl generator (manifest format {_shown(manifest.get('format'))}, "
            f"expected {FORMAT_NAME!r})"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"generator format version {_shown(version)} is not supported (this library reads "
            f"version {FORMAT_VERSION}); upgrade threedgl"
        )
    for name, kind in REQUIRED_FIELDS.items():
        if name not in manifest:
            raise ArtifactError(f"the manifest has no '{name}' field")
        value = manifest[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ArtifactError(
                f"manifest field '{name}' must be of type {want}, got {type(value).__name__}"
            )
    for name in ("generator", "library_version", "created"):
        if len(manifest[name]) > MAX_SHORT_TEXT:
            raise ArtifactError(
                f"manifest field '{name}' is {len(manifest[name])} characters long, above the "
                f"limit of {MAX_SHORT_TEXT}"
            )
    if len(manifest["weights_sha256"]) != 64:
        raise ArtifactError("manifest field 'weights_sha256' is not a sha256 hex digest")
    models = manifest["models"]
    if not models:
        raise ArtifactError("the manifest lists no models")
    for i, m in enumerate(models):
        if not isinstance(m, dict) or "privacy" not in m or "label" not in m:
            raise ArtifactError(f"manifest model #{i} needs 'label' and 'privacy' fields")

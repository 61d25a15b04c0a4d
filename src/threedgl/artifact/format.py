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
import os
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
            arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(),
        ):
            h.update(struct.pack("<Q", len(part)))
            h.update(part)
    return h.hexdigest()


def write_artifact(path: str | os.PathLike[str], manifest: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> str:
    """Write an artifact atomically; fills ``weights_sha256`` and returns it."""
    from safetensors.numpy import save

    from threedgl.schema.io import atomic_write_bytes

    clean = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    digest = weights_sha256(clean)
    full = dict(manifest)
    full["weights_sha256"] = digest
    _validate_manifest(full)
    text = json.dumps(full, sort_keys=True, ensure_ascii=False, allow_nan=False)
    data = save(clean, metadata={MANIFEST_KEY: text})
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
    """Validate and read an artifact held in memory (what the server does with an upload)."""
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
    if header_len > MAX_HEADER_BYTES or header_len > len(data) - 8:
        raise ArtifactError(
            "not a threedgl generator file (bad header length: truncated or not safetensors)"
        )
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError("not a threedgl generator file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ArtifactError("not a threedgl generator file (its header is not a JSON object)")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or MANIFEST_KEY not in meta:
        raise ArtifactError("not a threedgl generator file (no threedgl manifest in the header)")
    try:
        manifest = json.loads(meta[MANIFEST_KEY])
    except (TypeError, json.JSONDecodeError):
        raise ArtifactError("the manifest is not valid JSON") from None
    _validate_manifest(manifest)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            dtype = info.get("dtype") if isinstance(info, dict) else info
            raise ArtifactError(f"tensor '{name}' has dtype {dtype!r}; only float32 (F32) is allowed")
    from safetensors.numpy import load

    try:
        tensors = load(bytes(data))
    except Exception as exc:  # safetensors raises its own error type for bad offsets
        raise ArtifactError(
            f"the weights are unreadable (truncated or corrupted file): {str(exc).splitlines()[0]}"
        ) from None
    for name, arr in tensors.items():
        if not np.isfinite(arr).all():
            raise ArtifactError(f"tensor '{name}' holds NaN or infinite values")
    digest = weights_sha256(tensors)
    if digest != manifest["weights_sha256"]:
        raise ArtifactError(
            "the weights do not match the manifest's sha256 (the file was modified or corrupted)"
        )
    return Artifact(manifest=manifest, tensors=dict(tensors))


def _validate_manifest(manifest: Any) -> None:
    if not isinstance(manifest, dict):
        raise ArtifactError("the manifest must be a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(
            f"not a threedgl generator (manifest format {manifest.get('format')!r}, "
            f"expected {FORMAT_NAME!r})"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"generator format version {version!r} is not supported (this library reads "
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
    if len(manifest["weights_sha256"]) != 64:
        raise ArtifactError("manifest field 'weights_sha256' is not a sha256 hex digest")
    models = manifest["models"]
    if not models:
        raise ArtifactError("the manifest lists no models")
    for i, m in enumerate(models):
        if not isinstance(m, dict) or "privacy" not in m or "label" not in m:
            raise ArtifactError(f"manifest model #{i} needs 'label' and 'privacy' fields")

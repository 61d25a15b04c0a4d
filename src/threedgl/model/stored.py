"""How a DDP-βVAE's released state is laid out in its artifact, and read back (checked).

Tensors are named ``class{k}.{name}``: the decoder's layers (``decoder.0``, ``decoder.1``,
``head``; ``.weight`` and ``.bias``), a fitted prior (``prior.z``, ``prior.weight``) and
the values of the class model's DP measurements (``measurements``: one flat tensor, the
measurements listed in the manifest's model entry under ``measurements`` concatenated in
that order, so a file holds a fixed number of tensors per class whatever the table's
width). Everything here reads files from strangers: names are
parsed strictly (ASCII digits only) and every measurement is checked against the bins and
against what its class model's privacy record accounts for.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from threedgl.errors import ArtifactError, ThreedglError
from threedgl.model.networks import Decoder
from threedgl.privacy.measurement import Measurement, check_against_record, read_measurements
from threedgl.privacy.record import PrivacyRecord

__all__ = ["MEASUREMENTS", "decoder_state", "jsonable", "measurement_tensor",
           "restore_measurements", "split_class_tensors"]


#: The tensor of a class model's measurement values.
MEASUREMENTS = "measurements"


def split_class_tensors(tensors: dict[str, np.ndarray]
                        ) -> tuple[dict[int, dict[str, torch.Tensor]], dict[int, np.ndarray]]:
    """Per class index: its decoder tensors (as torch views, not copied), and its stored
    measurement values (one flat tensor)."""
    groups: dict[int, dict[str, torch.Tensor]] = {}
    stored: dict[int, np.ndarray] = {}
    for name, arr in tensors.items():
        head, _, rest = name.partition(".")
        k = _index(head, "class")
        if k is None or not rest:
            raise ArtifactError(f"unexpected tensor name {_shown(name)}")
        if rest == MEASUREMENTS:
            stored[k] = arr
            continue
        # No copy (the views into the file may be read-only): the Decoder copies the
        # values into its own parameters and never writes to these.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            groups.setdefault(k, {})[rest] = torch.from_numpy(arr)
    return groups, stored


def restore_measurements(
    entries: Sequence[Any],
    stored: dict[int, np.ndarray],
    records: Sequence[PrivacyRecord],
    *,
    anchored: bool,
    names: Sequence[str],
    widths: Sequence[int],
) -> list[list[Measurement]] | None:
    """The class models' DP measurements from their manifest entries and tensors, checked
    against the bins and against what each privacy record accounts for (None: none
    stored)."""
    if all(e is None for e in entries):
        if stored:
            raise ArtifactError("the file holds measurement tensors but the manifest lists no "
                                "measurements")
        return None
    if not anchored or any(e is None for e in entries):
        raise ArtifactError("measurements are stored by every class model of an anchored "
                            "generator, or by none")
    stored = dict(stored)
    out = []
    for k, listed in enumerate(entries):
        if k not in stored:
            raise ArtifactError(f"class model #{k} lists measurements but the file holds no "
                                f"tensor class{k}.{MEASUREMENTS}")
        try:
            ms = read_measurements(listed, stored.pop(k), names, widths)
            check_against_record(ms, records[k])
        except ThreedglError as exc:
            raise ArtifactError(f"class model #{k}: {exc}") from None
        out.append(ms)
    if stored:
        raise ArtifactError(f"measurement tensors for classes {sorted(stored)[:5]} that the "
                            "manifest does not list")
    return out


def decoder_state(dec: Decoder) -> dict[str, torch.Tensor]:
    names = ("decoder.0", "decoder.1", "head")
    out: dict[str, torch.Tensor] = {}
    for lin, name in zip(dec.linears, names, strict=True):
        assert isinstance(lin, torch.nn.Linear)
        out[f"{name}.weight"] = lin.weight.detach().contiguous()
        out[f"{name}.bias"] = lin.bias.detach().contiguous()
    if dec.prior_z is not None and dec.prior_weight is not None:
        out["prior.z"] = dec.prior_z.contiguous()
        out["prior.weight"] = dec.prior_weight.contiguous()
    return out


def measurement_tensor(measurements: Sequence[Measurement]) -> np.ndarray:
    """The values of a class model's measurements, concatenated in order (float32)."""
    parts = [np.asarray(m.noisy, dtype=np.float32).ravel() for m in measurements]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _index(text: str, prefix: str) -> int | None:
    """``k`` of ``f"{prefix}{k}"`` (ASCII digits, at most 6, no leading zero), else None."""
    digits = text[len(prefix):] if text.startswith(prefix) else ""
    if not (0 < len(digits) <= 6 and digits.isascii() and digits.isdigit()):
        return None
    if len(digits) > 1 and digits[0] == "0":
        return None
    return int(digits)


def _shown(name: str) -> str:
    text = ascii(name)
    return text if len(text) <= 80 else text[:77] + "..."


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value

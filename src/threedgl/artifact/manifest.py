"""The manifest of a ``.3dgl`` file, built and checked in one place.

:func:`build_manifest` writes what a generator releases; :func:`read_manifest` checks
what a file claims beyond its format (:mod:`.format` checks the layout and the field
types): the schema, one class model per label of the schema (or exactly one without a
class column), each model's privacy record bounded and its ε recomputed
(:meth:`~threedgl.privacy.record.PrivacyRecord.verify`), and its released row count.
The library's loader and the Global Server both read a manifest through it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from threedgl._version import __version__
from threedgl.artifact.format import FORMAT_NAME, FORMAT_VERSION
from threedgl.artifact.statement import privacy_summary
from threedgl.errors import ArtifactError, ThreedglError
from threedgl.privacy.record import PrivacyRecord, check_verification_cost
from threedgl.schema import Schema

__all__ = ["ClassModel", "Manifest", "build_manifest", "read_manifest"]

#: Most DP measurements one class model may list (a count, the one-way marginals of up to
#: 1,000 features and as many two-way marginals).
MAX_MEASUREMENTS = 2001


@dataclass(frozen=True)
class ClassModel:
    """One class model as a manifest lists it."""

    label: Any
    rows: float
    record: PrivacyRecord
    #: The manifest entries of the model's stored DP measurements (None: it stores none;
    #: their values are the tensor ``class{k}.measurements``, concatenated in this order).
    measurements: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Manifest:
    """A checked manifest: the parsed schema and class models beside the raw JSON."""

    raw: dict[str, Any]
    schema: Schema
    models: tuple[ClassModel, ...]

    @property
    def generator(self) -> str:
        return str(self.raw["generator"])


def build_manifest(
    *,
    generator: str,
    schema: Schema,
    models: Sequence[ClassModel],
    architecture: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of a fitted generator (``weights_sha256`` is filled when written).

    ``created`` honours ``SOURCE_DATE_EPOCH`` (reproducible files).
    """
    created = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.fromtimestamp(int(created), UTC) if created and created.isdigit()
        else datetime.now(UTC)
    )
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": generator,
        "library_version": __version__,
        "created": when.isoformat().replace("+00:00", "Z"),
        "schema": schema.to_dict(),
        "schema_source": schema.source,
        "labels": [m.label for m in models if m.label is not None],
        "architecture": architecture,
        "models": [{"label": m.label, "rows": m.rows, "privacy": m.record.to_dict(),
                    **({} if m.measurements is None else {"measurements": m.measurements})}
                   for m in models],
        "training": training,
        "weights_sha256": "0" * 64,
    }
    manifest["privacy"] = privacy_summary(manifest, [m.record for m in models])
    return manifest


def read_manifest(manifest: dict[str, Any]) -> Manifest:
    """Check what a manifest claims; :class:`ArtifactError` names the first problem."""
    try:
        schema = Schema.from_dict(manifest["schema"])
    except ThreedglError as exc:
        raise ArtifactError(f"invalid schema in the manifest: {exc}") from None
    raw_models = manifest["models"]
    allowed = max(1, len(schema.labels)) if schema.target is not None else 1
    if len(raw_models) > allowed:
        raise ArtifactError(f"the manifest lists {len(raw_models)} class models; its schema "
                            f"has {allowed} class label(s)")
    models: list[ClassModel] = []
    seen: set[str] = set()
    for i, m in enumerate(raw_models):  # everything cheap first: no accountant runs here
        label = m.get("label")
        if schema.target is None:
            if label is not None or len(raw_models) != 1:
                raise ArtifactError("a generator without a class column has exactly one model")
        elif label not in schema.labels:
            raise ArtifactError(f"model #{i} has label {label!r}, not a label of the schema")
        if repr(label) in seen:
            raise ArtifactError("the manifest lists a class label twice")
        seen.add(repr(label))
        try:
            record = PrivacyRecord.from_dict(m["privacy"])
        except ThreedglError as exc:
            raise ArtifactError(f"model #{i}: {exc}") from None
        rows = m.get("rows", 1)
        if isinstance(rows, bool) or not isinstance(rows, (int, float)) or not rows >= 0:
            raise ArtifactError(f"model #{i}: 'rows' must be a non-negative number")
        measurements = m.get("measurements")
        if measurements is not None and (not isinstance(measurements, list)
                                         or len(measurements) > MAX_MEASUREMENTS):
            raise ArtifactError(f"model #{i}: 'measurements' must be a list of at most "
                                f"{MAX_MEASUREMENTS} entries")
        models.append(ClassModel(label, float(rows), record, measurements))
    try:
        check_verification_cost(m.record for m in models)
    except ThreedglError as exc:
        raise ArtifactError(str(exc)) from None
    for i, model in enumerate(models):  # then the accountant, its cost bounded above
        try:
            model.record.verify()
        except ThreedglError as exc:
            raise ArtifactError(f"model #{i}: {exc}") from None
    if schema.target is not None:  # tensors class{k} bind to the k-th model: fix the order
        order = [schema.labels.index(m.label) for m in models]
        if order != sorted(order):
            raise ArtifactError(
                "the manifest lists its class models out of the schema's label order "
                f"({[m.label for m in models][:6]!r}; the schema's: "
                f"{list(schema.labels)[:6]!r}): class{{k}} tensors bind to the k-th model")
    return Manifest(raw=manifest, schema=schema, models=tuple(models))

"""Checks of an uploaded generator against its federation's protocol: one entry point.

:func:`validate_upload` is the only function the server calls on an upload, so any
further check is added here. In order:

1. the file, as the library reads it (:func:`threedgl.artifact.format.read_artifact_bytes`
   with the federation's size limit): size, no pickle, header, manifest, float32,
   sha256 of the weights;
2. the manifest and the model, by the library's loader
   (``threedgl.model.registry.generator_from_artifact``, on the same parse): the manifest
   checked once by :func:`threedgl.artifact.manifest.read_manifest` (schema, labels,
   privacy records bounded and their ε verified, rows), then the model rebuilt (generator
   kind, tensor names and shapes against the architecture);
3. the schema in the manifest equals the federation's (``Schema.differences`` empty);
4. each class model's privacy record: δ below 1/rows, its accountant accepted by the
   policy, δ at most the policy's, ε is *recomputed* by the server from every recorded mechanism
   (σ, q, steps, δ; and for the default mode the noisy count and the marginal anchor,
   composed at the recorded Rényi order) with Opacus' accountant, and must be at most the
   policy's ε; the recorded ε may not understate the recomputed one by more than
   :data:`EPSILON_TOLERANCE`; for DDP-βVAE, q and steps must follow from the recorded
   row count, batch size and epochs;
5. the manifest's overall privacy statement makes exactly the claims its verified records
   support (:func:`threedgl.artifact.statement.statement_disagreement`), and meets the
   policy too.

Nothing here spends privacy budget: it only reads what a client released.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from threedgl.errors import ArtifactError, PrivacyError, PrivacyWarning, ThreedglError
from threedgl.privacy.record import EPSILON_TOLERANCE
from threedgl.server.schemas import ModelPrivacy


class FederationPolicy(Protocol):
    """What validation needs from a federation (the ORM row satisfies it)."""

    name: str
    schema: dict[str, Any]
    max_epsilon: float
    max_delta: float
    accountants: list[str]
    max_artifact_bytes: int


class UploadRejected(ThreedglError):
    """The upload does not meet the federation's protocol (HTTP 422)."""


@dataclass(frozen=True)
class ValidatedGenerator:
    """An upload that passed every check, with what the server stores about it."""

    sha256: str
    size: int
    generator: str
    manifest: dict[str, Any]
    epsilon: float  # the largest recomputed ε over the class models
    delta: float  # the largest δ over the class models
    models: tuple[ModelPrivacy, ...] = field(default_factory=tuple)


def validate_upload(
    data: bytes, federation: FederationPolicy, *, max_bytes: int | None = None
) -> ValidatedGenerator:
    """Check ``data`` (a ``.3dgl`` file) against ``federation``; raise :class:`UploadRejected`."""
    from threedgl.artifact.format import read_artifact_bytes
    from threedgl.artifact.statement import statement_disagreement
    from threedgl.schema.schema import Schema

    limit = federation.max_artifact_bytes if max_bytes is None else max_bytes
    try:
        artifact = read_artifact_bytes(data, max_bytes=limit)
    except ArtifactError as exc:
        raise UploadRejected(f"invalid generator file: {exc}") from None
    manifest = artifact.manifest
    ours = Schema.from_dict(federation.schema)
    _check_before_accounting(manifest, ours, federation)

    try:
        # The library's loader: the manifest checked once (artifact.manifest.read_manifest:
        # schema, labels, privacy records bounded and verified, rows) and the model rebuilt
        # from the same parse (tensor names and shapes against the architecture).
        with warnings.catch_warnings():  # a disagreeing statement is refused below
            warnings.simplefilter("ignore", PrivacyWarning)
            generator = _generator_loader()(artifact)
    except ThreedglError as exc:
        raise UploadRejected(f"invalid generator: {exc}") from None

    checked = tuple(
        _check_model(i, label, record, rows, federation)
        for i, (label, record, rows) in enumerate(
            zip(generator.labels_, generator.privacy_, generator.class_rows_, strict=True))
    )
    if manifest["generator"] == "ddp-betavae":
        for i, m in enumerate(manifest["models"]):
            _check_sampling(i, m, checked[i], manifest["training"])
            _check_order(i, checked[i], manifest["training"])
    epsilon = max(m.recomputed_epsilon for m in checked)
    delta = max(m.delta for m in checked)
    problem = statement_disagreement(manifest, generator.privacy_)
    if problem is not None:  # the statement is generated from the records, never trusted
        raise UploadRejected(f"the manifest's privacy statement: {problem}")
    _check_statement(manifest.get("privacy"), epsilon, federation)
    return ValidatedGenerator(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        generator=str(manifest["generator"]),
        manifest=manifest,
        epsilon=epsilon,
        delta=delta,
        models=checked,
    )


def _check_before_accounting(manifest: dict[str, Any], ours: Any,
                             federation: FederationPolicy) -> None:
    """What the federation's protocol decides from the manifest alone, before any record
    is verified (verification runs the accountant, the costly part): the schema, the
    number of class models (at most the federation's labels) and each record's accountant
    and δ against the policy. The loader parses the same schema (compared here once); the
    per-model checks after it see the verified records."""
    from threedgl.schema.schema import Schema

    try:
        theirs = Schema.from_dict(manifest["schema"])
    except ThreedglError as exc:
        raise UploadRejected(f"invalid generator: invalid schema in the manifest: {exc}") from None
    diffs = ours.differences(theirs)
    if diffs:
        raise UploadRejected(
            f"the generator's schema differs from the protocol of federation "
            f"'{federation.name}': {'; '.join(diffs)}"
        )
    models = manifest["models"]
    allowed = max(1, len(ours.labels))
    if len(models) > allowed:
        raise UploadRejected(f"the file lists {len(models)} class models; federation "
                             f"'{federation.name}' has {allowed} class label(s)")
    for i, m in enumerate(models):
        record = m.get("privacy") if isinstance(m, dict) else None
        if not isinstance(record, dict):
            raise UploadRejected(f"invalid generator: class model #{i} has no privacy record")
        accountant, delta = record.get("accountant"), record.get("delta")
        if accountant not in federation.accountants:
            raise UploadRejected(
                f"class model #{i}: accountant {str(accountant)[:20]!r} is not accepted by "
                f"federation '{federation.name}' (accepted: {', '.join(federation.accountants)})")
        if (isinstance(delta, int | float) and not isinstance(delta, bool)
                and delta > federation.max_delta):
            raise UploadRejected(f"class model #{i}: delta={delta!r} is above the policy's "
                                 f"max_delta={federation.max_delta!r}")


def _generator_loader() -> Callable[..., Any]:
    """The library's reader of a generator file: rebuilds the model (tensor names, shapes)."""
    from threedgl.model.registry import generator_from_artifact

    return generator_from_artifact


def _check_model(
    index: int, label: Any, record: Any, rows: float, federation: FederationPolicy
) -> ModelPrivacy:
    """The policy's checks of one class model (its record already bounded and verified)."""
    where = f"class model #{index} (label {label!r})"
    if rows > 0 and record.delta >= 1.0 / rows:
        raise UploadRejected(
            f"{where}: delta={record.delta!r} is at least 1/rows for its {rows!r} rows; a "
            "mechanism that publishes a random row meets (0, delta)-DP at such a delta. "
            "Train with a smaller delta"
        )
    if record.accountant not in federation.accountants:
        raise UploadRejected(
            f"{where}: accountant {record.accountant!r} is not accepted by federation "
            f"'{federation.name}' (accepted: {', '.join(federation.accountants)})"
        )
    if record.delta > federation.max_delta:
        raise UploadRejected(
            f"{where}: delta={record.delta!r} is above the policy's max_delta="
            f"{federation.max_delta!r}"
        )
    # The loader verified the record (read_manifest: a recorded ε that understates the
    # recomputed one by more than EPSILON_TOLERANCE is refused there); this is its cached ε.
    recomputed = record.recompute_epsilon()
    params = (
        f"noise_multiplier={record.noise_multiplier!r}, sample_rate={record.sample_rate!r}, "
        f"steps={record.steps}, delta={record.delta!r}, accountant={record.accountant!r}"
    )
    if record.rdp_order is not None:
        params += (
            f", rdp_order={record.rdp_order!r}, count_noise_multiplier="
            f"{record.count_noise_multiplier!r}, marginals_noise_multiplier="
            f"{record.marginals_noise_multiplier!r}, pairs_noise_multiplier="
            f"{record.pairs_noise_multiplier!r}"
        )
    if not math.isfinite(recomputed) or recomputed > federation.max_epsilon:
        raise UploadRejected(
            f"{where}: epsilon recomputed by the server is {recomputed:.4g} ({params}), above "
            f"the policy's max_epsilon={federation.max_epsilon!r}"
        )
    if record.epsilon > federation.max_epsilon:
        raise UploadRejected(
            f"{where}: the recorded epsilon {record.epsilon:.4g} is above the policy's "
            f"max_epsilon={federation.max_epsilon!r}"
        )
    return ModelPrivacy(
        label=label,
        accountant=record.accountant,
        noise_multiplier=record.noise_multiplier,
        sample_rate=record.sample_rate,
        steps=record.steps,
        delta=record.delta,
        recorded_epsilon=record.epsilon,
        recomputed_epsilon=recomputed,
        rdp_order=record.rdp_order,
    )


def _check_sampling(
    index: int, model: dict[str, Any], checked: ModelPrivacy, training: dict[str, Any]
) -> None:
    """DP-Adam's sampling rate and steps must follow from the released row count.

    q = min(1, batch_size / rows) and steps = ceil(epochs / q), with ``rows`` the class
    model's recorded (noisy, in the default mode) row count: a client cannot claim a
    smaller q, or fewer steps, than its own released sizes imply.
    """
    where = f"class model #{index} (label {checked.label!r})"
    rows, batch, epochs = model.get("rows"), training.get("batch_size"), training.get("epochs")
    # Integers ≥ 1 for the batch and epochs, a row count ≥ 1 (a modelled class has at least
    # one noisy row): q ≥ 1e-9 and steps ≤ 1e18, so nothing below overflows (batch_size =
    # 1e-320 made q underflow and ceil(epochs / q) infinite).
    for name, value, kinds in (("rows", rows, int | float), ("batch_size", batch, int),
                               ("epochs", epochs, int)):
        if (isinstance(value, bool) or not isinstance(value, kinds)
                or not math.isfinite(value) or not 1 <= value <= MAX_COUNT):
            what = "a number" if name == "rows" else "an integer"
            raise UploadRejected(
                f"{where}: '{name}' must be {what} in [1, {MAX_COUNT:g}], got "
                f"{str(value)[:40]!r}")
    assert isinstance(rows, int | float) and isinstance(batch, int | float)
    assert isinstance(epochs, int | float)
    rate = min(1.0, batch / rows)
    steps = math.ceil(epochs / rate)
    if not math.isclose(checked.sample_rate, rate, rel_tol=1e-9) or checked.steps != steps:
        raise UploadRejected(
            f"{where}: sample_rate={checked.sample_rate!r} and steps={checked.steps} do not "
            f"follow from rows={rows!r}, batch_size={batch!r} and epochs={epochs!r} "
            f"(expected sample_rate={rate!r}, steps={steps})"
        )


#: The largest row count, batch size or epoch count a manifest may declare.
MAX_COUNT = 1e9


def _check_order(index: int, checked: ModelPrivacy, training: dict[str, Any]) -> None:
    """A default-mode model's Rényi order must be the one its declared target fixes.

    The composition is valid at an order chosen before the data is seen: the library takes
    :func:`threedgl.privacy.accounting.rdp_order` of the target (ε, δ). An order chosen
    afterwards (the one that minimises ε) would understate the privacy loss.
    """
    if checked.rdp_order is None:
        return
    where = f"class model #{index} (label {checked.label!r})"
    target = training.get("epsilon")
    if (isinstance(target, bool) or not isinstance(target, int | float)
            or not 0 < target <= MAX_TARGET_EPSILON):
        raise UploadRejected(
            f"{where}: training 'epsilon' must be the target ε in (0, {MAX_TARGET_EPSILON:g}], "
            f"got {target!r}"
        )
    try:
        expected = _order_of(float(target), checked.delta)
    except PrivacyError as exc:
        raise UploadRejected(f"{where}: {exc}") from None
    if checked.rdp_order != expected:
        raise UploadRejected(
            f"{where}: rdp_order={checked.rdp_order!r} is not the order fixed by the target "
            f"epsilon={target!r} and delta={checked.delta!r} (expected {expected!r})"
        )


@functools.lru_cache(maxsize=256)
def _order_of(epsilon: float, delta: float) -> float:
    from threedgl.privacy.accounting import rdp_order

    return rdp_order(epsilon, delta)


#: The largest target ε a default-mode manifest may declare (bounds the order's cost).
MAX_TARGET_EPSILON = 100.0


def _check_statement(statement: Any, epsilon: float, federation: FederationPolicy) -> None:
    """The manifest's overall (ε, δ), when numeric, must meet the policy and not understate."""
    if not isinstance(statement, dict):
        raise UploadRejected("the manifest's 'privacy' field must be a JSON object")
    eps = statement.get("epsilon")
    delta = statement.get("delta")
    if (
        isinstance(delta, int | float)
        and not isinstance(delta, bool)
        and delta > federation.max_delta
    ):
        raise UploadRejected(
            f"the generator's overall delta={delta!r} is above the policy's "
            f"max_delta={federation.max_delta!r}"
        )
    if isinstance(eps, int | float) and not isinstance(eps, bool):
        if eps > federation.max_epsilon:
            raise UploadRejected(
                f"the generator's overall epsilon={eps!r} is above the policy's "
                f"max_epsilon={federation.max_epsilon!r}"
            )
        if eps < (1.0 - EPSILON_TOLERANCE) * epsilon:
            raise UploadRejected(
                f"the generator's overall epsilon={eps!r} understates the largest class-model "
                f"epsilon recomputed by the server, {epsilon:.4g}"
            )

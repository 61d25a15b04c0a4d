"""Generators by kind: making one (:func:`create_generator`) and reading any ``.3dgl`` file
into the right class (:func:`load_generator`)."""

from __future__ import annotations

import inspect
import os
from typing import Any

from threedgl.artifact import DEFAULT_MAX_BYTES, Artifact, read_artifact, read_artifact_bytes
from threedgl.errors import ArtifactError, ThreedglError
from threedgl.model.base import BaseGenerator
from threedgl.model.ddp_betavae import DDPBetaVAE
from threedgl.model.marginals import DPMarginals

GENERATORS: dict[str, type[BaseGenerator]] = {
    DDPBetaVAE.generator_kind: DDPBetaVAE,
    DPMarginals.generator_kind: DPMarginals,
}


def create_generator(kind: str, preset: str | None = None, **params: Any) -> BaseGenerator:
    """A new, unfitted generator of ``kind`` (``"ddp-betavae"`` or ``"dp-marginals"``).

    ``preset`` names a bundled dataset whose Table I model DDP-βVAE starts from (paper mode
    unless ``mode`` is given); ``params`` are the class's parameters (``epsilon``,
    ``delta``, ``epochs``, ``random_state``, ...). Every place that builds a generator by
    kind (the ``3dgl train`` command, the reproduction, the privacy table, the simulation's
    client factory) calls this. Unknown kinds and parameters raise a :class:`ThreedglError`
    naming them.

    >>> create_generator("dp-marginals", epsilon=1.0).epsilon
    1.0
    """
    if kind not in GENERATORS:
        raise ThreedglError(
            f"The 'kind' parameter must be one of {list(GENERATORS)}. Got {kind!r} instead."
        )
    cls = GENERATORS[kind]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise ThreedglError(
            f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {', '.join(accepted)})"
        )
    if preset is None:
        return cls(**params)
    if cls is not DDPBetaVAE:
        raise ThreedglError(
            f"The 'preset' parameter applies to 'ddp-betavae' only, not {kind!r}. "
            f"Got {preset!r}."
        )
    return DDPBetaVAE.from_preset(preset, **params)


def generator_from_artifact(artifact: Artifact) -> BaseGenerator:
    kind = artifact.manifest["generator"]
    if kind not in GENERATORS:
        raise ArtifactError(
            f"unknown generator kind {kind!r} (this library knows {', '.join(GENERATORS)})"
        )
    return GENERATORS[kind].from_artifact(artifact)


def load_generator(
    path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> BaseGenerator:
    """Read any generator file safely: no code runs; format, fields, tensors, hash checked."""
    artifact = read_artifact(path, max_bytes=max_bytes)
    try:
        return generator_from_artifact(artifact)
    except ArtifactError as exc:
        raise ArtifactError(f"'{path}': {exc}") from None


def load_generator_bytes(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> BaseGenerator:
    """:func:`load_generator` for bytes in memory (the server's uploads)."""
    return generator_from_artifact(read_artifact_bytes(data, max_bytes=max_bytes))

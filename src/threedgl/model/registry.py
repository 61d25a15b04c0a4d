"""Generators by kind: reading any ``.3dgl`` file into the right class."""

from __future__ import annotations

import os

from threedgl.artifact import DEFAULT_MAX_BYTES, Artifact, read_artifact, read_artifact_bytes
from threedgl.errors import ArtifactError
from threedgl.model.base import BaseGenerator
from threedgl.model.ddp_betavae import DDPBetaVAE
from threedgl.model.marginals import DPMarginals

GENERATORS: dict[str, type[BaseGenerator]] = {
    DDPBetaVAE.generator_kind: DDPBetaVAE,
    DPMarginals.generator_kind: DPMarginals,
}


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

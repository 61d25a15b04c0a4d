"""The generator artifact: one ``.3dgl`` file, safe to share with strangers.

The file is a safetensors file (tensors + a JSON header); the JSON manifest is stored in
the header's ``__metadata__`` under the key ``threedgl.manifest``. Reading it never
executes code: no pickle, no ``torch.load``.
"""

from threedgl.artifact.format import (
    ARTIFACT_SUFFIX,
    DEFAULT_MAX_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    Artifact,
    read_artifact,
    read_artifact_bytes,
    weights_sha256,
    write_artifact,
    write_artifact_bytes,
)

__all__ = [
    "ARTIFACT_SUFFIX",
    "DEFAULT_MAX_BYTES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Artifact",
    "read_artifact",
    "read_artifact_bytes",
    "weights_sha256",
    "write_artifact",
    "write_artifact_bytes",
]

"""threedgl: generative federated learning with differential privacy (3DGL, DDP-βVAE).

The public names are imported lazily, so ``import threedgl`` (and every ``3dgl``
command) does not pay for torch and scikit-learn until a generator is used.

>>> import threedgl
>>> sorted(threedgl.__all__)[:3]
['CategoricalColumn', 'DDPBetaVAE', 'DPMarginals']
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from threedgl._version import __version__

if TYPE_CHECKING:
    from threedgl.errors import ThreedglError
    from threedgl.model.ddp_betavae import DDPBetaVAE
    from threedgl.model.marginals import DPMarginals
    from threedgl.model.registry import load_generator
    from threedgl.pool import GeneratorsPool
    from threedgl.schema import CategoricalColumn, NumericColumn, Schema, TableEncoder, infer_schema

_LAZY = {
    "CategoricalColumn": "threedgl.schema",
    "DDPBetaVAE": "threedgl.model.ddp_betavae",
    "DPMarginals": "threedgl.model.marginals",
    "GeneratorsPool": "threedgl.pool",
    "NumericColumn": "threedgl.schema",
    "Schema": "threedgl.schema",
    "TableEncoder": "threedgl.schema",
    "ThreedglError": "threedgl.errors",
    "infer_schema": "threedgl.schema",
    "load_generator": "threedgl.model.registry",
}

__all__ = [
    "CategoricalColumn",
    "DDPBetaVAE",
    "DPMarginals",
    "GeneratorsPool",
    "NumericColumn",
    "Schema",
    "TableEncoder",
    "ThreedglError",
    "__version__",
    "infer_schema",
    "load_generator",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'threedgl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

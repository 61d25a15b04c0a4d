"""threedgl: generative federated learning with differential privacy (3DGL, DDP-βVAE).

>>> import threedgl
>>> sorted(threedgl.__all__)[:3]
['DDPBetaVAE', 'DPMarginals', 'GeneratorsPool']
"""

from threedgl._version import __version__
from threedgl.errors import ThreedglError
from threedgl.model.ddp_betavae import DDPBetaVAE
from threedgl.model.marginals import DPMarginals
from threedgl.model.registry import load_generator
from threedgl.pool import GeneratorsPool
from threedgl.schema import CategoricalColumn, NumericColumn, Schema, TableEncoder, infer_schema

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

"""threedgl: generative federated learning with differential privacy (3DGL, DDP-betaVAE)."""

from threedgl._version import __version__

__all__ = ["__version__"]

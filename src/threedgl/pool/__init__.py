"""The Generators Pool: any set of compatible generators, sampled as one (paper §III-D)."""

from threedgl.pool.pool import GeneratorsPool

__all__ = ["GeneratorsPool"]

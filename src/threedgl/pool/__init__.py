"""The Generators Pool: any set of compatible generators, sampled as one (paper §III-D).

:class:`GeneratorsPool` is imported on first use (it needs the models); the weighting
rule (:mod:`threedgl.pool.shares`) is plain arithmetic the server uses without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threedgl.pool.pool import GeneratorsPool

__all__ = ["GeneratorsPool"]


def __getattr__(name: str) -> Any:
    if name == "GeneratorsPool":
        from threedgl.pool.pool import GeneratorsPool

        return GeneratorsPool
    raise AttributeError(f"module 'threedgl.pool' has no attribute {name!r}")

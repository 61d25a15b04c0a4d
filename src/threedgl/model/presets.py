"""Architectures of the paper's Table I, one per bundled dataset.

(h1, h2) are the encoder's hidden sizes (the decoder mirrors them), ``latent`` the latent
size d and ``beta`` the weight of the KL term.
"""

from __future__ import annotations

from typing import Any

from threedgl.errors import ThreedglError

PRESETS: dict[str, dict[str, Any]] = {
    "titanic": {"hidden": (64, 32), "latent": 3, "beta": 0.1},
    "breast-cancer": {"hidden": (64, 32), "latent": 3, "beta": 0.05},
    "mushrooms": {"hidden": (64, 32), "latent": 3, "beta": 0.1},
    "adult": {"hidden": (128, 64), "latent": 7, "beta": 0.005},
    "wine-quality": {"hidden": (64, 32), "latent": 4, "beta": 0.05},
}


def preset(name: str) -> dict[str, Any]:
    """The Table I parameters for a bundled dataset."""
    if name not in PRESETS:
        raise ThreedglError(
            f"unknown preset '{name}'; presets: {', '.join(PRESETS)} (the paper's Table I)"
        )
    return dict(PRESETS[name])

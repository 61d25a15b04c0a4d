"""The paper's published numbers (Tables II to V), in %, to print beside ours.

Tables II and III are defined here. Tables IV and V are defined in
:mod:`threedgl.federation.paper` (the 3DGL simulation's own report prints them beside its
results, and a library layer must not import this experiments package) and re-exported.
"""

from __future__ import annotations

from threedgl.federation.paper import (
    TABLE_IV,
    TABLE_IV_MEAN_GAIN,
    TABLE_V,
    TABLE_V_MEAN_GAIN,
)

__all__ = [
    "TABLE_II",
    "TABLE_III",
    "TABLE_IV",
    "TABLE_IV_MEAN_GAIN",
    "TABLE_V",
    "TABLE_V_MEAN_GAIN",
]

#: Table II: logistic regression, Accuracy / F1 / AUC, trained on Real or on DDP-βVAE's Synth.
TABLE_II: dict[str, dict[str, tuple[float, float, float]]] = {
    "titanic": {"real": (74.04, 46.88, 80.81), "synth": (76.34, 68.04, 80.30)},
    "breast-cancer": {"real": (97.67, 98.18, 99.83), "synth": (96.51, 97.25, 99.83)},
    "mushrooms": {"real": (94.96, 94.65, 97.99), "synth": (93.73, 93.28, 95.28)},
    "adult": {"real": (82.05, 54.67, 85.53), "synth": (79.97, 60.32, 83.28)},
    "wine-quality": {"real": (97.74, 95.24, 98.75), "synth": (98.31, 96.53, 98.64)},
}

#: Table III: logistic-regression discriminator (Accuracy, F1, AUC), KLD and TLD.
TABLE_III: dict[str, tuple[float, float, float, float, float]] = {
    "titanic": (54.00, 55.61, 57.23, 342.06, 15.79),
    "breast-cancer": (52.69, 55.06, 53.88, 26.82, 6.13),
    "mushrooms": (57.40, 55.98, 60.83, 1226.03, 20.15),
    "adult": (64.53, 65.55, 68.37, 3358.17, 14.98),
    "wine-quality": (57.69, 60.85, 64.61, 191.81, 7.81),
}

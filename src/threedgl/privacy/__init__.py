"""Differential privacy: accounting (:mod:`.accounting`) and DP-Adam (:mod:`.dp_adam`)."""

from threedgl.privacy.accounting import (
    ACCOUNTANTS,
    calibrate_noise_multiplier,
    compute_epsilon,
    rdp_optimal_order,
)
from threedgl.privacy.record import PrivacyRecord, compose_epsilon

__all__ = [
    "ACCOUNTANTS",
    "PrivacyRecord",
    "calibrate_noise_multiplier",
    "compose_epsilon",
    "compute_epsilon",
    "rdp_optimal_order",
]

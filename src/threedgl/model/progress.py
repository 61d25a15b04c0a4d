"""How a fit reports its progress and what it will spend, before and while it trains.

``progress(class_index, epoch, epsilon_spent)`` is called as each class model completes an
epoch. An object passed as ``progress`` may also have (each optional):

* ``planned(class_index, epochs, steps)``: the epochs and DP-Adam steps chosen for a class;
* ``batch(class_index, steps_done)``: after every DP-Adam step of an active class;
* ``stage(what, done, total)``: a long step before training (inference, encoding, ...).

``3dgl train``'s bars (:class:`threedgl.cli.generator.ClassBars`) implement all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from threedgl.privacy.record import PrivacyRecord

__all__ = [
    "BudgetCheck",
    "PlannedCheck",
    "ProgressCallback",
    "announce_epochs",
    "batches",
    "reindexed",
    "stage_callback",
]

#: ``progress(class_index, epoch, epsilon_spent)`` during training.
ProgressCallback = Callable[[int, int, float], None]
#: ``planned(kept, records)``: the privacy records of the class models a fit will train
#: (``kept``: their class indices), given before any DP step; raises to refuse the fit.
PlannedCheck = Callable[[Sequence[int], Sequence[PrivacyRecord]], None]
#: ``before_training([(label, record), ...])``: :meth:`BaseGenerator.fit`'s hook.
BudgetCheck = Callable[[list[tuple[Any, PrivacyRecord]]], None]



def announce_epochs(progress: ProgressCallback | None, kept: Sequence[int], epochs: int,
                    steps: Sequence[int] | None = None) -> None:
    """Tell ``progress`` the epochs (and DP-Adam steps) chosen for each trained class, if it
    has a ``planned(class_index, epochs, steps)`` method (the CLI's bars then show a known
    total)."""
    planned = getattr(progress, "planned", None)
    if planned is not None:
        for i, k in enumerate(kept):
            planned(k, epochs, None if steps is None else steps[i])


def batches(progress: ProgressCallback | None, kept: Sequence[int]
            ) -> Callable[[int, int], None] | None:
    """``progress.batch(class_index, steps_done)`` (if it has one) for a trained stack, the
    index of the stack's class mapped back to the schema's."""
    batch = getattr(progress, "batch", None)
    if batch is None:
        return None
    return lambda k, done: batch(kept[k], done)


def stage_callback(progress: ProgressCallback | None, what: str) -> Callable[[int, int], None] | None:
    """``progress.stage(what, done, total)`` (if it has one) as ``(done, total)``."""
    stage = getattr(progress, "stage", None)
    if stage is None:
        return None
    return lambda done, total: stage(what, done, total)


def reindexed(progress: ProgressCallback | None, kept: Sequence[int]) -> ProgressCallback | None:
    """``progress`` with the index of a trained stack's class mapped back to the schema's."""
    if progress is None:
        return None
    return lambda k, epoch, eps: progress(kept[k], epoch, eps)

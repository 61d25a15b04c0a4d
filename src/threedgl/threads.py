"""The one thread limiter: run torch and the BLAS/OpenMP pools on ``n`` threads.

The β-VAEs and the evaluation's classifiers work on small matrices (a few hundred
columns). On this project's 2-core machine a Titanic fit took 1.3 s on one torch thread
and 35 s on two while another process was busy, and scikit-learn's gradient boosting was
5 to 10 times slower with OpenMP oversubscribing the cores; so the library trains and
evaluates on one thread, and parallel work runs in processes (:func:`init_worker`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

__all__ = ["init_worker", "limit_threads", "single_thread"]


@contextmanager
def limit_threads(n: int = 1, *, torch: bool = False) -> Iterator[None]:
    """Within the block every BLAS/OpenMP pool, and torch's intra-op pool, use at most
    ``n`` threads; the previous settings are restored on exit.

    torch is limited when it is already imported, or imported for it with ``torch=True``
    (the block is about to train a model): a block that never needs torch does not pay
    for importing it.
    """
    if torch:
        import torch as _torch  # noqa: F401  (imported so that its pool can be limited)
    module = sys.modules.get("torch")
    before = module.get_num_threads() if module is not None else None
    if module is not None:
        module.set_num_threads(n)
    try:
        with _controller().limit(limits=n):
            yield
    finally:
        if module is not None and before is not None:
            module.set_num_threads(before)


_CONTROLLER: tuple[int, Any] | None = None


def _controller() -> Any:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries, found again only when a
    module was imported since (finding them reads ``/proc/self/maps``: 4 ms a call, 13 %
    of a Titanic simulation when every evaluation block looked again)."""
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    loaded = len(sys.modules)
    if _CONTROLLER is None or _CONTROLLER[0] != loaded:
        _CONTROLLER = (loaded, ThreadpoolController())
    return _CONTROLLER[1]


def single_thread() -> AbstractContextManager[None]:
    """``limit_threads(1, torch=True)``: what training a generator runs under."""
    return limit_threads(1, torch=True)


def init_worker() -> None:
    """Process-pool initializer: this worker process runs on one thread for good."""
    from threadpoolctl import threadpool_limits

    if "torch" in sys.modules or _torch_installed():
        import torch

        torch.set_num_threads(1)
    threadpool_limits(limits=1)


def _torch_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("torch") is not None

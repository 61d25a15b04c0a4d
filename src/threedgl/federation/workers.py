"""Workers: the two jobs of a 3DGL client, train and evaluate, as plain functions.

:func:`train_client` fits the client's generator on its fold and returns the ``.3dgl``
bytes it publishes; :func:`evaluate_artifacts` rebuilds the pool from the artifacts it
received and runs the scenarios (:mod:`threedgl.federation.scenarios`). Both run with one
torch and one BLAS thread, so results do not depend on where they run: in this process,
in the local engine's process pool (:func:`run_all`), or inside a Flower ClientApp.

**Reproducibility.** Every random choice is seeded from ``(random_state, seed index,
purpose[, client index])`` with :class:`numpy.random.SeedSequence` (:func:`derive_seed`);
there is no shared RNG.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.federation.scenarios import EvaluationOptions, evaluate_client
from threedgl.model.base import BaseGenerator
from threedgl.schema import Schema
from threedgl.threads import init_worker, single_thread

GeneratorFactory = Callable[[int, int], BaseGenerator]
"""``factory(client_index, random_state) -> unfitted generator``; must be picklable (a
module-level function, a :func:`functools.partial` or an instance of a module-level
class) when ``workers > 1``."""


def derive_seed(random_state: int, *path: int, bits: int = 32) -> int:
    """A seed of ``bits`` bits (a multiple of 32) for ``path`` (seed index, purpose,
    client...) under ``random_state``: 32 for splits and scoring (what scikit-learn takes),
    128 for a training's privacy noise."""
    words = np.random.SeedSequence(random_state, spawn_key=tuple(path)).generate_state(
        bits // 32, np.uint32)
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


@dataclass(frozen=True)
class PresetFactory:
    """The default generator factory, with privacy ``epsilon``, ``delta`` and ``epochs``.

    ``mode="anchored"``: DDP-βVAE's default (settings chosen from each client's schema and
    noisy class sizes); ``mode="paper"``: the paper's model with the Table I architecture
    for ``preset`` (default architecture when ``None``); ``generator="dp-marginals"``: the
    DP independent-marginals baseline.
    """

    preset: str | None = None
    epsilon: float = 1.9
    delta: float = 1e-4
    epochs: int | None = None
    mode: str = "anchored"
    generator: str = "ddp-betavae"

    def __call__(self, client: int, random_state: int) -> BaseGenerator:
        from threedgl.model.registry import create_generator

        params: dict[str, Any] = {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "random_state": random_state,
        }
        if self.generator != "ddp-betavae":  # dp-marginals, or an unknown kind it names
            return create_generator(self.generator, **params)
        params["mode"] = self.mode
        if self.epochs is not None:
            params["epochs"] = self.epochs
        preset = self.preset if self.mode == "paper" else None
        return create_generator(self.generator, preset, **params)


# -- tasks of the local engine (picklable: they cross to worker processes) ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainTask:
    client: int
    fold: pd.DataFrame
    schema: Schema
    factory: GeneratorFactory
    random_state: int


@dataclass(frozen=True)
class EvalTask:
    client: int
    fold: pd.DataFrame
    test: pd.DataFrame
    schema: Schema
    positive_label: Any
    artifacts: tuple[bytes, ...]
    own: bytes | None  # None: a participant without a generator (local-only scores)
    options: EvaluationOptions
    random_state: int


@dataclass(frozen=True)
class Trained:
    """What a client's training gave: its ``.3dgl`` bytes, or ``None`` and why not.

    A client that cannot train (too few noisy rows, or any refusal of its data) is a
    participant without a generator: the run goes on, it scores its own data only and,
    under contribute-to-access, gets no pool. ``shareable`` says whether ``reason`` is
    data-free (decided on DP outputs only: :class:`~threedgl.errors.NothingToTrain`) and
    may leave a deployed client as it is.
    """

    artifact: bytes | None
    warnings: list[str]
    reason: str | None = None
    shareable: bool = True


def train_client(
    fold: pd.DataFrame, schema: Schema, factory: GeneratorFactory, client: int, random_state: int
) -> Trained:
    """Fit client ``client``'s generator on its ``fold``: its ``.3dgl`` bytes and the
    distinct warnings training raised, or the reason it could not train."""
    from threedgl.errors import NothingToTrain

    with single_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen = factory(client, random_state)
        if not isinstance(gen, BaseGenerator):
            raise ThreedglError(
                f"the generator factory returned {type(gen).__name__}, not a threedgl generator"
            )
        data: bytes | None = None
        reason: str | None = None
        try:
            gen.fit(fold, target=schema.target, schema=schema)
        except ThreedglError as exc:
            reason, shareable = str(exc), isinstance(exc, NothingToTrain)
        else:
            data, shareable = gen.to_bytes(), True
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return Trained(data, list(dict.fromkeys(messages)), reason, shareable)


def evaluate_artifacts(
    fold: pd.DataFrame,
    test: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    pool: Sequence[bytes],
    own: bytes | None,
    options: EvaluationOptions,
    random_state: int,
) -> dict[str, dict[str, float]]:
    """The scenarios of one client (:func:`~threedgl.federation.scenarios.evaluate_client`)
    from the pool's artifacts and its own artifact, as received (``.3dgl`` bytes); without
    its own generator (``own=None``: it could not train, or its generator was refused),
    its own data's scores only (:func:`~threedgl.federation.scenarios.evaluate_local_only`)."""
    from threedgl.evaluation.encoding import encoded_once
    from threedgl.federation.scenarios import evaluate_local_only
    from threedgl.model.registry import load_generator_bytes
    from threedgl.pool import GeneratorsPool

    with single_thread(), warnings.catch_warnings(), encoded_once():
        warnings.simplefilter("ignore")
        if own is None:
            return evaluate_local_only(fold, test, schema, positive_label, options,
                                       random_state)
        generators = GeneratorsPool((load_generator_bytes(a) for a in pool),
                                    weighting=options.pool_weighting)
        own_generator = load_generator_bytes(own)
        return evaluate_client(
            fold, test, generators, own_generator, schema, positive_label, options, random_state
        )


def run_train(task: TrainTask) -> Trained:
    return train_client(task.fold, task.schema, task.factory, task.client, task.random_state)


def run_eval(task: EvalTask) -> dict[str, dict[str, float]]:
    return evaluate_artifacts(task.fold, task.test, task.schema, task.positive_label,
                              task.artifacts, task.own, task.options, task.random_state)


T = TypeVar("T")
R = TypeVar("R")


def run_all(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    executor: Executor | None,
    on_done: Callable[[], None],
) -> list[R]:
    if executor is None:
        results = []
        for t in tasks:
            results.append(fn(t))
            on_done()
        return results
    futures: list[Future[R]] = [executor.submit(fn, t) for t in tasks]
    for fut in futures:
        fut.add_done_callback(lambda _f: on_done())
    try:
        return [f.result() for f in futures]
    except BaseException:  # the others' results are not wanted: do not wait for them
        for f in futures:
            f.cancel()
        raise


def first_error(executor: Executor, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]`` run on ``executor``, in order; the first error is raised
    as soon as it happens, not after the items before it finished (their tasks cancelled
    when not started)."""
    from concurrent.futures import FIRST_EXCEPTION, wait

    futures = [executor.submit(fn, x) for x in items]
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for f in futures:
        if f in done and f.exception() is not None:
            for g in futures:
                g.cancel()
            raise f.exception()  # type: ignore[misc]
    return [f.result() for f in futures]


def mp_context() -> Any:
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Workers fork from a fresh server process that imported this module once.
        ctx.set_forkserver_preload(["threedgl.federation.workers"])
        return ctx
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    """min(2, number of usable cores)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def make_executor(workers: int) -> Executor | None:
    """The local engine's pool of ``workers`` processes (``None``: run in this process)."""
    if workers <= 1:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp_context(), initializer=init_worker)

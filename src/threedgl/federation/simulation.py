"""The 3DGL simulation: K clients, their DDP-βVAE generators, the pool, the scenarios.

Paper §III-D and §IV-B, SPEC §5. :func:`simulate` is the one entry point. For every seed:

1. the table is split stratified 90 % train / 10 % test (the *external data*) and the
   train part into K disjoint client folds (:mod:`threedgl.federation.plan`);
2. every client trains its own generator on its fold only, writes it to a ``.3dgl``
   artifact and *publishes* it; every client whose generator was accepted then *pulls* the
   pool (all accepted generators) (:mod:`threedgl.federation.transport`);
3. every client samples the pool and evaluates the scenarios
   (:mod:`threedgl.federation.scenarios`); the report is a :class:`SimulationResult`
   (:mod:`threedgl.federation.report`).

Two engines run the clients:

* ``engine="local"`` (default): a pool of ``workers`` processes of our own
  (:mod:`threedgl.federation.workers`); artifacts go through ``server``
  (:class:`InMemoryServer` by default, :class:`GlobalServerPool` for a real Global Server);
* ``engine="flower"``: Flower's simulation runtime (Ray backend), behind a local SuperLink
  this process starts and stops, runs one ClientApp per client and our ServerApp
  (:mod:`threedgl.federation.flower`); artifacts travel as Flower messages (bytes and
  JSON) and the ServerApp checks each with the Global Server's validation (``server``, a
  :class:`GlobalServerPool` when given, is where it keeps the pool).

Same seeds give the same scores on both engines and with any number of workers: every
random choice is seeded from ``(random_state, seed index, purpose[, client index])``.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import numpy as np

from threedgl.errors import ThreedglError
from threedgl.evaluation import utility_scores
from threedgl.federation import plan
from threedgl.federation.plan import SeedOutcome, SeedSplit, resolve_data, split_for_seed
from threedgl.federation.report import SimulationResult
from threedgl.federation.scenarios import (
    BASELINE_OF,
    METRICS,
    SCENARIO_TITLES,
    SCENARIOS,
    EvaluationOptions,
    _scores,
    evaluate_client,
    score_on_test,
    select_on_own_data,
)
from threedgl.federation.splits import SplitSpec, parse_split
from threedgl.federation.transport import GlobalServerPool, InMemoryServer, PoolServer
from threedgl.federation.workers import (
    EvalTask,
    GeneratorFactory,
    PresetFactory,
    TrainTask,
    default_workers,
    derive_seed,
    first_error,
    make_executor,
    run_all,
    run_eval,
    run_train,
    single_thread,
)
from threedgl.privacy.ledger import unrecorded
from threedgl.schema import Schema

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)`` with phase ``"train"`` or ``"evaluate"``."""

ENGINES: tuple[str, ...] = ("local", "flower")

__all__ = [
    "BASELINE_OF",
    "ENGINES",
    "METRICS",
    "SCENARIOS",
    "SCENARIO_TITLES",
    "EvaluationOptions",
    "GlobalServerPool",
    "InMemoryServer",
    "PoolServer",
    "PresetFactory",
    "ProgressFn",
    "SeedOutcome",
    "SimulationResult",
    "derive_seed",
    "evaluate_client",
    "score_on_test",
    "select_on_own_data",
    "simulate",
]


def _run_local(
    frame_split: SeedSplit,
    seed: int,
    *,
    schema: Schema,
    positive_label: Any,
    clients: int,
    factory: GeneratorFactory,
    server: PoolServer,
    options: EvaluationOptions,
    random_state: int,
    epsilon: float,
    delta: float,
    executor: Any,
    tick: Callable[[str], Callable[[], None]],
) -> SeedOutcome:
    """One seed on the local engine: train in the worker pool, publish and pull through
    ``server``, evaluate in the worker pool."""
    folds = frame_split.folds
    trained = run_all(
        run_train,
        [TrainTask(c, folds[c], schema, factory,
                   derive_seed(random_state, seed, plan.TRAIN, c, bits=128))
         for c in range(clients)],
        executor,
        tick("train"),
    )
    server.open(schema, clients, max_epsilon=epsilon, max_delta=delta)
    without: dict[int, str] = {}
    for c, t in enumerate(trained):
        if t.artifact is None:
            without[c] = f"could not train: {t.reason}"
            continue
        try:
            server.publish(c, t.artifact)
        except ThreedglError as exc:  # Refused, or a Global Server's answer
            without[c] = f"generator refused: {getattr(exc, 'reason', str(exc))}"
    pools = [() if c in without else tuple(server.pull(c)) for c in range(clients)]
    evaluated = run_all(
        run_eval,
        [EvalTask(c, folds[c], frame_split.test, schema, positive_label, pools[c],
                  None if c in without else trained[c].artifact,
                  options, derive_seed(random_state, seed, plan.EVAL, c))
         for c in range(clients)],
        executor,
        tick("evaluate"),
    )
    return SeedOutcome(warnings=[t.warnings for t in trained], evaluated=evaluated,
                       without_generator=without)


def central_scores(train: Any, test: Any, schema: Schema, positive_label: Any) -> dict[str, float]:
    """The ``centralized`` scenario of one seed: the classifier trained on every client's
    rows together, scored on the test split (a task of the worker pool)."""
    with single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _scores(utility_scores(train, test, schema, positive_label=positive_label))


def _run_rounds(
    engine: str,
    data: Any,
    frame: Any,
    splits: list[SeedSplit],
    *,
    schema: Schema,
    positive_label: Any,
    clients: int,
    seeds: int,
    spec: SplitSpec,
    test_size: float,
    min_rows: int,
    factory: GeneratorFactory,
    server: PoolServer | None,
    options: EvaluationOptions,
    random_state: int,
    epsilon: float,
    delta: float,
    workers: int,
    pool: Executor | None,
    tick: Callable[[str], Callable[[], None]],
) -> list[SeedOutcome]:
    """Every seed's round on ``engine``. On the local engine without a ``server`` of the
    caller's, each seed has its own in-memory server and, with a worker ``pool``, the seeds'
    rounds run at once: the pool takes a seed's evaluations while another seed's clients
    train, instead of waiting at the end of every phase for its slowest client."""
    if engine == "flower":
        from threedgl.federation.flower.engine import run_flower_simulation

        return run_flower_simulation(
            data=data if isinstance(data, str) else None, frame=frame, schema=schema,
            positive_label=positive_label, clients=clients, seeds=seeds, split=spec,
            test_size=test_size, min_rows=min_rows, random_state=random_state,
            factory=factory, options=options, epsilon=epsilon, delta=delta, workers=workers,
            server=server, tick=tick,
        )

    def one(s: int) -> SeedOutcome:
        return _run_local(splits[s], s, schema=schema, positive_label=positive_label,
                          clients=clients, factory=factory,
                          server=server if server is not None else InMemoryServer(),
                          options=options, random_state=random_state, epsilon=epsilon,
                          delta=delta, executor=pool, tick=tick)

    if pool is None or server is not None or seeds == 1:  # a caller's server: one round at a time
        return [one(s) for s in range(seeds)]
    rounds = ThreadPoolExecutor(max_workers=seeds, thread_name_prefix="threedgl-seed")
    try:
        return first_error(rounds, one, range(seeds))
    except BaseException:  # the pool's waiting tasks are cancelled by the pool's owner
        rounds.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        rounds.shutdown(wait=False)


def _check_int(name: str, value: Any, least: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ThreedglError(f"{name} must be {what}, got {value!r}")


@unrecorded
def simulate(
    data: Any,
    *,
    target: str | None = None,
    schema: Schema | None = None,
    positive_label: Any = None,
    name: str | None = None,
    clients: int = 10,
    split: str | SplitSpec = "stratified",
    epsilon: float = 1.9,
    delta: float = 1e-4,
    epochs: int | None = None,
    seeds: int = 1,
    workers: int | None = None,
    generator_factory: GeneratorFactory | None = None,
    random_state: int | None = 0,
    progress: ProgressFn | None = None,
    server: PoolServer | None = None,
    options: EvaluationOptions | None = None,
    test_size: float = 0.1,
    min_rows: int = 10,
    mode: str = "anchored",
    generator: str = "ddp-betavae",
    engine: str = "local",
    executor: Executor | None = None,
) -> SimulationResult:
    """Run the 3DGL simulation (see the module docstring).

    ``data`` is a bundled dataset name, a :class:`threedgl.datasets.Dataset` or a DataFrame
    (with ``target`` or ``schema``). Generators come from ``generator_factory(client,
    random_state)``, by default :class:`PresetFactory` (DDP-βVAE in ``mode``, Table I for a
    bundled dataset in paper mode, or the DP marginals baseline with
    ``generator="dp-marginals"``) with ``epsilon``, ``delta`` and ``epochs``. ``server`` is
    where generators are published and the pool pulled (default :class:`InMemoryServer`;
    :class:`GlobalServerPool` for a real Global Server). ``workers`` processes (default
    min(2, cores); 1 runs in this process). ``engine`` is ``"local"`` (our process pool) or
    ``"flower"`` (Flower's simulation runtime, ``pip install threedgl[flower]``; needs a
    finite ``epsilon`` and a :class:`PresetFactory`, whose settings travel as JSON).
    ``executor``: a process pool of the caller's for the local engine's clients (instead
    of ``workers`` new processes), e.g. one pool shared by several simulations run at once
    (:func:`threedgl.experiments.runs.federation_tables`); it must run each task on one
    thread (initializer :func:`threedgl.threads.init_worker`).
    """
    start_time = time.perf_counter()
    ds_name, frame, schema, pos, preset = resolve_data(data, target, schema, positive_label, name)
    spec = parse_split(split)
    opts = (options or EvaluationOptions()).check()
    _check_int("seeds", seeds, 1, "a positive int")
    _check_int("clients", clients, 2, "an int of at least 2")
    if workers is None:
        workers = default_workers()
    _check_int("workers", workers, 1, "a positive int")
    if epochs is not None:
        _check_int("epochs", epochs, 1, "a positive int")
    if not (0 < test_size < 1):
        raise ThreedglError(f"test_size must be in (0, 1), got {test_size!r}")
    if engine not in ENGINES:
        raise ThreedglError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if executor is not None and engine != "local":
        raise ThreedglError("executor is the local engine's worker pool: Flower runs its own")
    if random_state is None:
        random_state = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]  # 128 bits
    factory = generator_factory or PresetFactory(preset, epsilon, delta, epochs, mode, generator)
    target_col = schema.target
    assert target_col is not None

    config: dict[str, Any] = {
        "dataset": ds_name,
        "clients": clients,
        "split": str(spec),
        "epsilon": epsilon,
        "delta": delta,
        "epochs": epochs,
        "seeds": seeds,
        "workers": workers,
        "random_state": random_state,
        "test_size": test_size,
        "min_rows": min_rows,
        "positive_label": pos,
        "preset": preset,
        "generator_factory": repr(factory),
        "server": type(server).__name__ if server is not None else (
            "InMemoryServer" if engine == "local" else "CheckedPool"),
        "engine": engine,
        "options": asdict(opts),
        "rows": len(frame),
    }
    total = seeds * clients
    done = {"train": 0, "evaluate": 0}

    counting = threading.Lock()  # the seeds' rounds may run at once

    def tick(phase: str) -> Callable[[], None]:
        def _f() -> None:
            with counting:
                done[phase] += 1
                if progress is not None:
                    progress(phase, done[phase], total)

        return _f

    splits = [
        split_for_seed(frame, schema, clients, spec, random_state, s, test_size=test_size,
                       min_rows=min_rows)
        for s in range(seeds)
    ]
    pool = None
    if engine == "local":
        pool = executor if executor is not None else make_executor(workers)
    try:
        # the centralized scores run beside the clients (a task of the pool when there is one)
        central_jobs = [
            pool.submit(central_scores, sp.train, sp.test, schema, pos) if pool is not None
            else None for sp in splits
        ]
        try:
            outcomes = _run_rounds(
                engine, data, frame, splits, schema=schema, positive_label=pos,
                clients=clients, seeds=seeds, spec=spec, test_size=test_size,
                min_rows=min_rows, factory=factory, server=server, options=opts,
                random_state=random_state, epsilon=epsilon, delta=delta, workers=workers,
                pool=pool, tick=tick,
            )
        except BaseException:
            if pool is not None and pool is not executor:  # ours: nothing else waits on it
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        central = [job.result() if job is not None else central_scores(sp.train, sp.test,
                                                                       schema, pos)
                   for job, sp in zip(central_jobs, splits, strict=True)]
    finally:
        if pool is not None and pool is not executor:
            pool.shutdown(wait=True, cancel_futures=True)

    records: list[dict[str, Any]] = []
    messages: list[str] = []
    without: list[dict[str, Any]] = []
    for s, (sp, outcome) in enumerate(zip(splits, outcomes, strict=True)):
        for c, warns in enumerate(outcome.warnings):
            messages += [f"seed {s}, client {c}: {w}" for w in warns]
        without += [{"seed": s, "client": c, "reason": why}
                    for c, why in sorted(outcome.without_generator.items())]
        for c, result in enumerate(outcome.evaluated):
            result = {**result, "centralized": {**central[s], "synthetic_rows": 0}}
            fold_y = sp.folds[c][target_col].astype(str)
            share = float((fold_y == str(pos)).mean())
            for scenario in SCENARIOS:
                r = result[scenario]
                records.append(
                    {"seed": s, "client": c, "scenario": scenario,
                     **{m: float(r[m]) for m in METRICS},
                     "synthetic_rows": int(r["synthetic_rows"]),
                     "client_rows": len(sp.folds[c]),
                     "client_positive_share": share}
                )
    return SimulationResult(
        dataset=ds_name,
        config=config,
        records=records,
        elapsed_seconds=time.perf_counter() - start_time,
        warnings=list(dict.fromkeys(messages)),
        without_generator=without,
    )

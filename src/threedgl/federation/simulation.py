"""The 3DGL simulation: K clients, their DDP-βVAE generators, the pool, the scenarios.

Paper §III-D and §IV-B, SPEC §5. For every seed:

1. the table is split stratified 90 % train / 10 % test (the *external data*);
2. the train part is split into K disjoint client folds (:mod:`threedgl.federation.splits`);
3. every client trains its own generator on its fold only (in parallel, one process per
   client task), writes it to a ``.3dgl`` artifact and *publishes* it to the server;
   every client then *pulls* the pool (all K generators) — by default through
   :class:`InMemoryServer`; pass ``server=GlobalServerPool(url, admin_token)`` to go
   through a real Global Server (:mod:`threedgl.server`);
4. every client samples the pool once (``pool_rows``: 20 × its fold size, at least 2 000
   and at most 20 000 rows, classes interleaved so every prefix has the table's class mix;
   the mix, balanced as in the paper or the generators' released class sizes, is chosen by
   the size sweep's score on the client's own rows: ``EvaluationOptions.class_mix``) and
   evaluates, with logistic regression and the paper's evaluation encoding:

   ==================  =====================================================  =============
   scenario            what                                                   baseline
   ==================  =====================================================  =============
   ``local_cv``        10-fold CV of LR on its own data (Table IV "Real")      —
   ``fold_fold``       pool prefix, size selected on own data, scored on own   ``local_cv``
   ``local_test``      LR on its own data, scored on test (Table V "Real")     —
   ``fold_test``       pool prefix, size selected on own data, scored on test  ``local_test``
   ``test_test``       pool prefix, size selected and scored on test           ``local_test``
   ``own_generator``   own generator only, size selected on own data → test    ``local_test``
   ``real_plus_pool``  own rows + m pool rows, m by CV on own data → test      ``local_test``
   ``centralized``     LR on all train rows → test (upper bound)               ``local_test``
   ==================  =====================================================  =============

The cross-validation uses 10 stratified folds (``cv_folds``), fewer — down to 2 — when the
client's smallest class has fewer rows, so that every validation fold can hold every
class; per-fold scores are averaged (AUC ignoring folds where it is undefined).
``real_plus_pool`` chooses m among the sweep's sizes by ``rpp_cv_folds``-fold CV on the
client's data (the pool rows are added to each training fold, never to the validation
fold), and keeps m = 0 (its own data alone) unless a size beats it.

**The test set is sealed.** :func:`evaluate_client` first runs
:func:`select_on_own_data`, which receives only the client's fold and its synthetic
tables (no test set at all), then :func:`score_on_test`, which is the only code that reads
the test set: Fold-Test's size is fixed before the test set is touched.

**Reproducibility.** Every random choice is seeded from ``(random_state, seed index,
purpose[, client index])`` with :class:`numpy.random.SeedSequence`; there is no shared
RNG, so results are identical whatever the number of worker processes (workers run with
one torch and one BLAS thread, as does the in-process path with ``workers=1``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.evaluation import SweepResult, interleave_classes, size_sweep, utility_scores
from threedgl.federation.splits import SplitSpec, make_folds, parse_split
from threedgl.model.base import BaseGenerator
from threedgl.schema import Schema

METRICS: tuple[str, ...] = ("accuracy", "f1", "auc")
SCENARIOS: tuple[str, ...] = (
    "local_cv",
    "fold_fold",
    "local_test",
    "fold_test",
    "test_test",
    "own_generator",
    "real_plus_pool",
    "centralized",
)
#: The local-only baseline each scenario's gain is measured against.
BASELINE_OF: dict[str, str] = {
    "fold_fold": "local_cv",
    "fold_test": "local_test",
    "test_test": "local_test",
    "own_generator": "local_test",
    "real_plus_pool": "local_test",
    "centralized": "local_test",
}
SCENARIO_TITLES: dict[str, str] = {
    "local_cv": "Real, own data (10-fold CV) [Table IV Real]",
    "fold_fold": "Pool, Fold-Fold [Table IV Synth]",
    "local_test": "Real, own data → test [Table V Real]",
    "fold_test": "Pool, Fold-Test [Table V]",
    "test_test": "Pool, Test-Test [Table V, optimistic]",
    "own_generator": "Own generator only → test",
    "real_plus_pool": "Own rows + pool → test",
    "centralized": "Centralized real data → test (upper bound)",
}

# Purposes of derived seeds.
_SPLIT, _FOLDS, _TRAIN, _EVAL = 0, 1, 2, 3

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)`` with phase ``"train"`` or ``"evaluate"``."""

GeneratorFactory = Callable[[int, int], BaseGenerator]
"""``factory(client_index, random_state) -> unfitted generator``; must be picklable (a
module-level function, a :func:`functools.partial` or an instance of a module-level
class) when ``workers > 1``."""


def derive_seed(random_state: int, *path: int) -> int:
    """A 32-bit seed for ``path`` (seed index, purpose, client...) under ``random_state``."""
    return int(np.random.SeedSequence(random_state, spawn_key=tuple(path)).generate_state(1)[0])


# -- options -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationOptions:
    """How clients evaluate (defaults follow SPEC §4)."""

    metric: str = "accuracy"
    start: int = 200
    growth: float = 1.5
    patience: int = 3
    pool_factor: int = 20
    pool_min_rows: int = 2000
    pool_max_rows: int = 20_000
    cv_folds: int = 10
    rpp_cv_folds: int = 5
    #: Class mix of the synthetic tables: "balanced" (the paper), "released" (the class
    #: sizes the generators release), or "select": both are sampled and the one whose size
    #: sweep scores better on the client's own rows is kept (as Table II does on the train
    #: split; the test set is never read).
    class_mix: str = "select"

    def pool_rows(self, fold_rows: int) -> int:
        """Synthetic rows each client samples once: ``pool_factor × fold`` within bounds."""
        return int(min(self.pool_max_rows, max(self.pool_min_rows, self.pool_factor * fold_rows)))

    def check(self) -> EvaluationOptions:
        if self.metric not in METRICS:
            raise ThreedglError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")
        if self.class_mix not in CLASS_MIXES:
            raise ThreedglError(
                f"class_mix must be one of {list(CLASS_MIXES)}, got {self.class_mix!r}"
            )
        for name in ("start", "patience", "pool_factor", "pool_min_rows", "pool_max_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ThreedglError(f"{name} must be a positive int, got {value!r}")
        for name in ("cv_folds", "rpp_cv_folds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ThreedglError(f"{name} must be an int of at least 2, got {value!r}")
        if not (isinstance(self.growth, (int, float)) and self.growth > 1):
            raise ThreedglError(f"growth must be a number above 1, got {self.growth!r}")
        return self


CLASS_MIXES = ("select", "balanced", "released")


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
        if self.generator == "dp-marginals":
            return create_generator(self.generator, **params)
        if self.generator != "ddp-betavae":
            raise ThreedglError(
                f"generator must be 'ddp-betavae' or 'dp-marginals', got {self.generator!r}"
            )
        params["mode"] = self.mode
        if self.epochs is not None:
            params["epochs"] = self.epochs
        preset = self.preset if self.mode == "paper" else None
        return create_generator(self.generator, preset, **params)


# -- the server seam -------------------------------------------------------------------------------
class PoolServer(Protocol):
    """Where clients publish their generator and pull the Generators Pool from."""

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        """Start a federation of ``clients`` clients under ``schema`` (once per seed)."""

    def publish(self, client: int, artifact: bytes) -> None:
        """Client ``client`` uploads its ``.3dgl`` generator."""

    def pull(self, client: int) -> list[bytes]:
        """Client ``client`` downloads every generator of the pool (its own included)."""


class InMemoryServer:
    """The Global Server's job done in memory: store the artifacts, hand out the pool only to
    clients that published (as the real server does)."""

    def __init__(self) -> None:
        self._store: dict[int, bytes] = {}

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        self._store = {}

    def publish(self, client: int, artifact: bytes) -> None:
        self._store[client] = artifact

    def pull(self, client: int) -> list[bytes]:
        if client not in self._store:
            raise ThreedglError(f"client {client} must publish its generator before pulling the pool")
        return [self._store[c] for c in sorted(self._store)]


class GlobalServerPool:
    """Publish to and pull from a real Global Server (:class:`threedgl.server.client.ServerClient`).

    ``open`` creates a new federation named ``{prefix}-{random hex}`` (one per seed) with
    the schema and the policy (max ε, max δ) and one client account per simulated client;
    every client then uploads its artifact with its own token (the server checks schema
    and privacy; the answer's sha256 must be the file's) and, only once its own generator
    has been accepted, downloads the pool (each file verified by sha256). Needs the admin
    token of the server; :meth:`check` tests URL and token before any training.
    ``federations`` lists the federations created, in order.
    """

    def __init__(self, url: str, admin_token: str, *, prefix: str = "sim") -> None:
        self.url = url
        self.admin_token = admin_token
        self.prefix = prefix
        self.federations: list[str] = []
        self._tokens: dict[int, str] = {}
        self._accepted: dict[int, str] = {}  # client -> sha256 of its accepted generator

    def __repr__(self) -> str:  # never shows the admin token
        return f"GlobalServerPool({self.url!r})"

    @property
    def federation(self) -> str | None:
        """The federation of the current round (``None`` before :meth:`open`)."""
        return self.federations[-1] if self.federations else None

    def _client(self, token: str) -> Any:
        from threedgl.server.client import ServerClient

        return ServerClient(self.url, token)

    def check(self) -> None:
        """Raise :class:`threedgl.errors.ThreedglError` (one line) unless the server answers
        and accepts the admin token."""
        import secrets

        from threedgl.server.client import ServerError

        with self._client(self.admin_token) as admin:
            admin.health()
            probe = f"threedgl-probe-{secrets.token_hex(8)}"  # never created: 404 if admin
            try:
                admin.get_federation(probe)
            except ServerError as exc:
                if exc.status != 404:
                    raise ServerError(
                        f"the server at {self.url} did not accept the admin token: {exc}",
                        status=exc.status,
                    ) from None

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        import secrets

        if not math.isfinite(max_epsilon):
            raise ThreedglError(
                "a Global Server accepts only private generators: epsilon must be finite"
            )
        name = f"{self.prefix[:47]}-{secrets.token_hex(8)}"
        with self._client(self.admin_token) as admin:
            admin.create_federation(
                name, schema.to_dict(), max_epsilon=max_epsilon, max_delta=max_delta
            )
            self.federations.append(name)
            self._accepted = {}
            self._tokens = {
                c: str(admin.add_client(name, _client_name(c))["token"]) for c in range(clients)
            }

    def publish(self, client: int, artifact: bytes) -> None:
        import hashlib

        from threedgl.server.client import ServerError

        digest = hashlib.sha256(artifact).hexdigest()
        with self._client(self._tokens[client]) as me:
            accepted = me.publish(artifact)
        if accepted.get("sha256") != digest:
            raise ServerError(
                f"the server stored client {client}'s generator with sha256 "
                f"{accepted.get('sha256')}, not {digest}"
            )
        self._accepted[client] = digest

    def pull(self, client: int) -> list[bytes]:
        from threedgl.server.client import ServerError

        if client not in self._accepted:
            raise ThreedglError(
                f"client {client} must have its generator accepted before pulling the pool"
            )
        with self._client(self._tokens[client]) as me:
            index = {_client_name(c): c for c in self._tokens}
            entries = sorted(
                me.pool(), key=lambda e: (index.get(str(e["client"]), len(index)), str(e["client"]))
            )
            mine = [e for e in entries if e["client"] == _client_name(client)]
            if [str(e["sha256"]) for e in mine] != [self._accepted[client]]:
                raise ServerError(
                    f"the pool of federation '{self.federation}' does not hold client "
                    f"{client}'s accepted generator"
                )
            return [me.download(str(e["client"]), sha256=str(e["sha256"])) for e in entries]


def _client_name(client: int) -> str:
    """The server-side name of simulated client ``client`` (sorts as the index does)."""
    return f"client-{client:04d}"


# -- per-client evaluation ---------------------------------------------------------------------------
Scores = dict[str, float]


@dataclass(frozen=True)
class OwnSelection:
    """Everything a client decides from its own data (before the test set is opened)."""

    local_cv: Scores
    fold_fold: Scores
    pool_sweep: SweepResult
    own_sweep: SweepResult
    rpp_rows: int
    rpp_sweep: SweepResult | None


def _scores(d: Mapping[str, Any]) -> Scores:
    return {m: float(d[m]) for m in METRICS}


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


def cv_splits(y: Any, max_folds: int, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified CV folds: ``max_folds``, fewer (down to 2) when the smallest class present
    has fewer rows."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray([str(v) for v in y])
    _, counts = np.unique(labels, return_counts=True)
    n_splits = int(max(2, min(max_folds, counts.min(), len(labels))))
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [(tr, va) for tr, va in skf.split(np.zeros(len(labels)), labels)]


def _cv_scores(
    df: pd.DataFrame,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    schema: Schema,
    positive_label: Any,
    extra: pd.DataFrame | None = None,
) -> Scores:
    per_fold: dict[str, list[float]] = {m: [] for m in METRICS}
    for tr, va in folds:
        train = df.iloc[tr]
        if extra is not None and len(extra):
            train = pd.concat([train, extra], ignore_index=True)
        s = utility_scores(train, df.iloc[va], schema, positive_label=positive_label)
        for m in METRICS:
            per_fold[m].append(float(s[m]))
    return {m: _nanmean(v) for m, v in per_fold.items()}


def select_on_own_data(
    client_df: pd.DataFrame,
    pool_synthetic: pd.DataFrame,
    own_synthetic: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
    random_state: int,
) -> OwnSelection:
    """Every choice a client makes from its own data only (this function never sees the
    test set): the Fold-Fold / Fold-Test size, the own-generator size, the number of pool
    rows to add to its own rows, and the local cross-validation baseline."""
    sweep_kw: dict[str, Any] = {
        "start": options.start,
        "growth": options.growth,
        "patience": options.patience,
        "metric": options.metric,
        "positive_label": positive_label,
    }
    folds = cv_splits(client_df[schema.target], options.cv_folds, random_state)
    local_cv = _cv_scores(client_df, folds, schema, positive_label)
    pool_sweep = size_sweep(pool_synthetic, client_df, schema, **sweep_kw)
    fold_fold = _scores(
        utility_scores(pool_sweep.best_prefix(pool_synthetic), client_df, schema,
                       positive_label=positive_label)
    )
    own_sweep = size_sweep(own_synthetic, client_df, schema, **sweep_kw)

    rpp_folds = cv_splits(client_df[schema.target], options.rpp_cv_folds, random_state)
    rpp_base = _cv_scores(client_df, rpp_folds, schema, positive_label)[options.metric]

    def real_plus_pool_cv(prefix: pd.DataFrame, selection: pd.DataFrame) -> float:
        return _cv_scores(selection, rpp_folds, schema, positive_label, extra=prefix)[options.metric]

    rpp_sweep = size_sweep(
        pool_synthetic, client_df, schema, **{**sweep_kw, "metric": real_plus_pool_cv}
    )
    beats = not math.isnan(rpp_sweep.best_score) and (
        math.isnan(rpp_base) or rpp_sweep.best_score > rpp_base
    )
    return OwnSelection(
        local_cv=local_cv,
        fold_fold=fold_fold,
        pool_sweep=pool_sweep,
        own_sweep=own_sweep,
        rpp_rows=rpp_sweep.best_size if beats else 0,
        rpp_sweep=rpp_sweep,
    )


def score_on_test(
    selection: OwnSelection,
    client_df: pd.DataFrame,
    pool_synthetic: pd.DataFrame,
    own_synthetic: pd.DataFrame,
    test_df: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
) -> dict[str, dict[str, float]]:
    """The final scores on the external test set (the only code that reads it), then the
    optimistic Test-Test sweep (which selects on the test set by design)."""

    def on_test(train: pd.DataFrame) -> Scores:
        return _scores(utility_scores(train, test_df, schema, positive_label=positive_label))

    rpp_train = pd.concat([client_df, pool_synthetic.iloc[: selection.rpp_rows]], ignore_index=True)
    out: dict[str, dict[str, float]] = {
        "local_test": {**on_test(client_df), "synthetic_rows": 0},
        "fold_test": {
            **on_test(selection.pool_sweep.best_prefix(pool_synthetic)),
            "synthetic_rows": selection.pool_sweep.best_size,
        },
        "own_generator": {
            **on_test(selection.own_sweep.best_prefix(own_synthetic)),
            "synthetic_rows": selection.own_sweep.best_size,
        },
        "real_plus_pool": {**on_test(rpp_train), "synthetic_rows": selection.rpp_rows},
    }
    test_sweep = size_sweep(
        pool_synthetic,
        test_df,
        schema,
        start=options.start,
        growth=options.growth,
        patience=options.patience,
        metric=options.metric,
        positive_label=positive_label,
    )
    out["test_test"] = {
        **on_test(test_sweep.best_prefix(pool_synthetic)),
        "synthetic_rows": test_sweep.best_size,
    }
    return out


def sample_class_mix(
    generator: Any,
    n: int,
    sample_seed: int,
    order_seed: int,
    client_df: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
) -> pd.DataFrame:
    """``n`` rows of ``generator`` (a pool or a generator), classes interleaved, in the class
    mix of ``options.class_mix`` ("select": the mix whose size sweep scores better on the
    client's own rows; never the test set)."""
    mixes = ("balanced", "released") if options.class_mix == "select" else (options.class_mix,)
    best: tuple[float, pd.DataFrame] | None = None
    for mix in mixes:
        table = interleave_classes(
            generator.sample(n, balanced=mix == "balanced", random_state=sample_seed), schema,
            random_state=order_seed,
        )
        if len(mixes) == 1:
            return table
        score = size_sweep(table, client_df, schema, start=options.start, growth=options.growth,
                           patience=options.patience, metric=options.metric,
                           positive_label=positive_label).best_score
        if best is None or score > best[0]:
            best = (score, table)
    assert best is not None
    return best[1]


def evaluate_client(
    client_df: pd.DataFrame,
    test_df: pd.DataFrame,
    pool: Any,
    own: BaseGenerator,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
    random_state: int,
) -> dict[str, dict[str, float]]:
    """One client's scenarios: sample the pool and its own generator once, decide on its own
    data (:func:`select_on_own_data`), then score on the test set (:func:`score_on_test`).

    Returns ``scenario → {accuracy, f1, auc (fractions), synthetic_rows}`` for every
    scenario but ``centralized`` (the same for all clients; :func:`simulate` adds it).
    """
    n = options.pool_rows(len(client_df))
    s_pool, s_own, s_order, s_cv = np.random.SeedSequence(random_state).generate_state(4)
    pool_syn = sample_class_mix(pool, n, int(s_pool), int(s_order), client_df, schema,
                                positive_label, options)
    own_syn = sample_class_mix(own, n, int(s_own), int(s_order), client_df, schema,
                               positive_label, options)
    selection = select_on_own_data(
        client_df, pool_syn, own_syn, schema, positive_label, options, int(s_cv)
    )
    out = score_on_test(
        selection, client_df, pool_syn, own_syn, test_df, schema, positive_label, options
    )
    out["local_cv"] = {**selection.local_cv, "synthetic_rows": 0}
    out["fold_fold"] = {**selection.fold_fold, "synthetic_rows": selection.pool_sweep.best_size}
    return out


# -- worker tasks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TrainTask:
    client: int
    fold: pd.DataFrame
    schema: Schema
    factory: GeneratorFactory
    random_state: int


@dataclass(frozen=True)
class _EvalTask:
    client: int
    fold: pd.DataFrame
    test: pd.DataFrame
    schema: Schema
    positive_label: Any
    artifacts: tuple[bytes, ...]
    own: bytes
    options: EvaluationOptions
    random_state: int


@contextmanager
def _single_thread() -> Iterator[None]:
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _init_worker() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def _artifact_bytes(gen: BaseGenerator) -> bytes:
    with tempfile.TemporaryDirectory(prefix="threedgl-sim-") as tmp:
        path = Path(tmp) / "generator.3dgl"
        gen.save(path)
        return path.read_bytes()


def _run_train(task: _TrainTask) -> tuple[bytes, list[str]]:
    with _single_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen = task.factory(task.client, task.random_state)
        if not isinstance(gen, BaseGenerator):
            raise ThreedglError(
                f"the generator factory returned {type(gen).__name__}, not a threedgl generator"
            )
        gen.fit(task.fold, target=task.schema.target, schema=task.schema)
        data = _artifact_bytes(gen)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return data, list(dict.fromkeys(messages))


def _run_eval(task: _EvalTask) -> dict[str, dict[str, float]]:
    from threedgl.model.registry import load_generator_bytes
    from threedgl.pool import GeneratorsPool

    with _single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = GeneratorsPool(load_generator_bytes(a) for a in task.artifacts)
        own = load_generator_bytes(task.own)
        return evaluate_client(
            task.fold, task.test, pool, own, task.schema, task.positive_label, task.options,
            task.random_state,
        )


T = TypeVar("T")
R = TypeVar("R")


def _run_all(
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
    return [f.result() for f in futures]


def _mp_context() -> Any:
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Workers fork from a fresh server process that imported this module once.
        ctx.set_forkserver_preload(["threedgl.federation.simulation"])
        return ctx
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    """min(2, number of usable cores)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


# -- results ------------------------------------------------------------------------------------------
@dataclass
class SimulationResult:
    """Per-client scores of every scenario, for every seed (scores in % in the frames)."""

    dataset: str
    config: dict[str, Any]
    records: list[dict[str, Any]]
    elapsed_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per (seed, client, scenario): ``accuracy``, ``f1``, ``auc`` in %,
        ``synthetic_rows``, ``client_rows``, ``client_positive_share`` (%)."""
        frame = pd.DataFrame(self.records)
        for m in METRICS:
            frame[m] = frame[m] * 100.0
        frame["client_positive_share"] = frame["client_positive_share"] * 100.0
        order = {s: i for i, s in enumerate(SCENARIOS)}
        frame = frame.sort_values(
            ["seed", "client", "scenario"], key=lambda c: c.map(order) if c.name == "scenario" else c
        )
        return frame.reset_index(drop=True)

    def gains(self) -> pd.DataFrame:
        """Per (seed, client, scenario): ``<metric>_gain`` = scenario − its baseline, in points."""
        by_key = {(r["seed"], r["client"], r["scenario"]): r for r in self.records}
        rows = []
        for (seed, client, scenario), r in by_key.items():
            if scenario not in BASELINE_OF:
                continue
            ref = by_key[(seed, client, BASELINE_OF[scenario])]
            rows.append(
                {"seed": seed, "client": client, "scenario": scenario,
                 "baseline": BASELINE_OF[scenario],
                 **{f"{m}_gain": 100.0 * (float(r[m]) - float(ref[m])) for m in METRICS}}
            )
        return pd.DataFrame(rows)

    def per_client(self) -> pd.DataFrame:
        """Per (client, scenario): scores averaged over seeds, in %."""
        frame = self.to_frame()
        cols = [*METRICS, "synthetic_rows", "client_rows", "client_positive_share"]
        out = frame.groupby(["client", "scenario"], sort=False)[cols].mean().reset_index()
        order = {s: i for i, s in enumerate(SCENARIOS)}
        return out.sort_values(
            ["client", "scenario"], key=lambda c: c.map(order) if c.name == "scenario" else c
        ).reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Per scenario: the clients' average of Accuracy, F1, AUC (%; mean over seeds),
        their standard deviation over seeds (0 with one seed), the baseline and the gain
        over it (points)."""
        frame = self.to_frame()
        per_seed = frame.groupby(["seed", "scenario"])[list(METRICS)].agg(_nanmean_series)
        mean = per_seed.groupby(level="scenario").mean()
        std = per_seed.groupby(level="scenario").std(ddof=0)
        rows = []
        for s in SCENARIOS:
            if s not in mean.index:
                continue
            row: dict[str, Any] = {"scenario": s}
            row.update({m: _f(mean.loc[s, m]) for m in METRICS})
            row.update({f"{m}_std": _f(std.loc[s, m]) for m in METRICS})
            b = BASELINE_OF.get(s)
            row["baseline"] = b or ""
            row.update(
                {f"{m}_gain": _f(mean.loc[s, m]) - _f(mean.loc[b, m]) if b else float("nan")
                 for m in METRICS}
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("scenario")

    def to_markdown(self) -> str:
        c = self.config
        lines = [
            f"# 3DGL simulation: {self.dataset}",
            "",
            f"{c['clients']} clients, split `{c['split']}`, ε = {c['epsilon']}, "
            f"{c['seeds']} seed(s) (random_state {c['random_state']}), "
            f"epochs {c.get('epochs') or 'default'}, {c['workers']} worker(s), "
            f"{self.elapsed_seconds:.0f} s. Scores in %, logistic regression, the paper's "
            "evaluation encoding; gains in points over the local-only baseline.",
            "",
            "## Averages over clients",
            "",
        ]
        summary = self.summary().reset_index()
        summary.insert(1, "what", [SCENARIO_TITLES[s] for s in summary["scenario"]])
        lines += [_markdown_table(summary), ""]
        from threedgl.federation.paper import TABLE_IV, TABLE_V

        if self.dataset in TABLE_IV:
            s = self.summary()
            lines += ["## Beside the paper (Tables IV and V)", ""]
            rows = []
            for table, cols in (
                (TABLE_IV[self.dataset], {"real": "local_cv", "fold_fold": "fold_fold"}),
                (TABLE_V[self.dataset], {"real": "local_test", "fold_test": "fold_test",
                                         "test_test": "test_test"}),
            ):
                name = "IV" if "fold_fold" in table else "V"
                for col, scen in cols.items():
                    rows.append(
                        {"table": name, "column": col, "scenario": scen,
                         **{f"{m} paper": table[col][i] for i, m in enumerate(METRICS)},
                         **{f"{m} ours": _f(s.loc[scen, m]) for m in METRICS}}
                    )
            lines += [_markdown_table(pd.DataFrame(rows)), ""]
        lines += ["## Per client (mean over seeds)", "", _markdown_table(self.per_client()), ""]
        if self.warnings:
            lines += ["## Warnings", "", *[f"- {w}" for w in self.warnings], ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary().reset_index()
        return _json_clean(
            {
                "dataset": self.dataset,
                "config": self.config,
                "elapsed_seconds": self.elapsed_seconds,
                "summary": summary.to_dict(orient="records"),
                "records": self.to_frame().to_dict(orient="records"),
                "warnings": self.warnings,
            }
        )

    def plot_gains(self, path: str | os.PathLike[str]) -> Path:
        """A PNG of per-client gains (points over the local-only baseline), one panel per
        metric, one bar group per client (mean over seeds)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        gains = self.gains()
        scenarios = [s for s in SCENARIOS if s in BASELINE_OF and s != "centralized"]
        g = gains.groupby(["client", "scenario"])[[f"{m}_gain" for m in METRICS]].mean()
        clients = sorted(gains["client"].unique())
        fig = Figure(figsize=(max(8.0, 0.9 * len(clients) + 3), 9), constrained_layout=True)
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(METRICS), 1, sharex=True)
        width = 0.8 / len(scenarios)
        x = np.arange(len(clients))
        for ax, m in zip(axes, METRICS, strict=True):
            for i, s in enumerate(scenarios):
                vals = [g.loc[(c, s), f"{m}_gain"] if (c, s) in g.index else np.nan for c in clients]
                ax.bar(x + (i - (len(scenarios) - 1) / 2) * width, vals, width, label=s)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_ylabel(f"{m} gain (points)")
        axes[-1].set_xticks(x, [str(c) for c in clients])
        axes[-1].set_xlabel("client")
        axes[0].legend(ncols=min(3, len(scenarios)), fontsize="small")
        fig.suptitle(f"3DGL {self.dataset}: per-client gains over local-only data")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        return out

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``report.md``, ``clients.csv``, ``summary.csv``, ``results.json`` and
        ``gains.png`` to ``out_dir``; returns the paths by kind."""
        import json

        from threedgl.schema.io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / "report.md",
            "clients_csv": out / "clients.csv",
            "summary_csv": out / "summary.csv",
            "json": out / "results.json",
            "plot": out / "gains.png",
        }
        atomic_write_text(paths["markdown"], self.to_markdown())
        atomic_write_text(paths["clients_csv"], self.to_frame().to_csv(index=False))
        atomic_write_text(paths["summary_csv"], self.summary().to_csv())
        atomic_write_text(paths["json"], json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        self.plot_gains(paths["plot"])
        return paths


def _nanmean_series(s: pd.Series) -> float:
    return _nanmean(s.to_numpy(dtype=np.float64).tolist())


def _f(value: Any) -> float:
    return float(value)


def _markdown_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else floatfmt.format(v)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---:" if df[c].dtype.kind in "iuf" else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _json_clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


# -- the simulation ------------------------------------------------------------------------------------
def _resolve_data(
    data: Any, target: str | None, schema: Schema | None, positive_label: Any, name: str | None
) -> tuple[str, pd.DataFrame, Schema, Any, str | None]:
    from threedgl.datasets import NAMES, Dataset, load
    from threedgl.model.presets import PRESETS

    if isinstance(data, str):
        if data not in NAMES:
            raise ThreedglError(
                f"unknown dataset {data!r}; bundled datasets: {', '.join(NAMES)} "
                "(or pass a DataFrame with target=...)"
            )
        data = load(data)
    if isinstance(data, Dataset):
        pos = data.positive_label if positive_label is None else positive_label
        ds_name = name or data.name
        return (ds_name, data.frame, schema or data.schema, pos,
                ds_name if ds_name in PRESETS else None)
    if not isinstance(data, pd.DataFrame):
        raise ThreedglError(
            f"simulate expects a dataset name, a Dataset or a DataFrame, got {type(data).__name__}"
        )
    if schema is None:
        if target is None:
            raise ThreedglError("a DataFrame needs target=... (the class column) or a schema")
        from threedgl.schema import infer_schema

        warnings.warn(
            "no schema given: inferring one from the whole table (its bounds and categories "
            "are not protected by differential privacy; pass the federation's public schema)",
            UserWarning,
            stacklevel=3,
        )
        schema = infer_schema(data, target=target)
    elif target is not None and schema.target != target:
        schema = schema.with_target(target)
    if schema.target is None:
        raise ThreedglError("the simulation needs a class column (target)")
    frame = schema.validate(data, require_target=True, nan_policy="error", extra_columns="error")
    if positive_label is None:
        from threedgl.evaluation import minority_label

        positive_label = minority_label(frame, schema)
    ds_name = name or "data"
    return ds_name, frame, schema, positive_label, ds_name if ds_name in PRESETS else None


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
) -> SimulationResult:
    """Run the 3DGL simulation (see the module docstring).

    ``data`` is a bundled dataset name, a :class:`threedgl.datasets.Dataset` or a DataFrame
    (with ``target`` or ``schema``). Generators come from ``generator_factory(client,
    random_state)``, by default :class:`PresetFactory` (DDP-βVAE in ``mode``, Table I for a
    bundled dataset in paper mode, or the DP marginals baseline with
    ``generator="dp-marginals"``) with ``epsilon``, ``delta`` and ``epochs``. ``server`` is where generators are published and the pool
    pulled (default :class:`InMemoryServer`; :class:`GlobalServerPool` for a real Global
    Server). ``workers`` processes (default min(2, cores); 1 runs in this process).
    """
    start_time = time.perf_counter()
    ds_name, frame, schema, pos, preset = _resolve_data(data, target, schema, positive_label, name)
    spec = parse_split(split)
    opts = (options or EvaluationOptions()).check()
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ThreedglError(f"seeds must be a positive int, got {seeds!r}")
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 2:
        raise ThreedglError(f"clients must be an int of at least 2, got {clients!r}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ThreedglError(f"workers must be a positive int, got {workers!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ThreedglError(f"epochs must be a positive int, got {epochs!r}")
    if not (0 < test_size < 1):
        raise ThreedglError(f"test_size must be in (0, 1), got {test_size!r}")
    if random_state is None:
        random_state = int(np.random.SeedSequence().generate_state(1)[0])
    factory = generator_factory or PresetFactory(preset, epsilon, delta, epochs, mode, generator)
    server = server if server is not None else InMemoryServer()
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
        "server": type(server).__name__,
        "options": asdict(opts),
        "rows": len(frame),
    }
    total = seeds * clients
    done = {"train": 0, "evaluate": 0}

    def tick(phase: str) -> Callable[[], None]:
        def _f() -> None:
            done[phase] += 1
            if progress is not None:
                progress(phase, done[phase], total)

        return _f

    records: list[dict[str, Any]] = []
    messages: list[str] = []
    executor: Executor | None = None
    if workers > 1:
        executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=_mp_context(), initializer=_init_worker
        )
    try:
        from sklearn.model_selection import train_test_split

        for s in range(seeds):
            train, test = train_test_split(
                frame,
                test_size=test_size,
                stratify=frame[target_col].astype(str),
                random_state=derive_seed(random_state, s, _SPLIT),
            )
            folds = make_folds(train, target_col, clients, spec,
                               derive_seed(random_state, s, _FOLDS), min_rows=min_rows)
            with _single_thread(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                central = _scores(utility_scores(train, test, schema, positive_label=pos))
            trained = _run_all(
                _run_train,
                [_TrainTask(c, folds[c], schema, factory, derive_seed(random_state, s, _TRAIN, c))
                 for c in range(clients)],
                executor,
                tick("train"),
            )
            server.open(schema, clients, max_epsilon=epsilon, max_delta=delta)
            for c, (artifact, warns) in enumerate(trained):
                messages += [f"seed {s}, client {c}: {w}" for w in warns]
                server.publish(c, artifact)
            pools = [tuple(server.pull(c)) for c in range(clients)]
            evaluated = _run_all(
                _run_eval,
                [_EvalTask(c, folds[c], test, schema, pos, pools[c], trained[c][0], opts,
                           derive_seed(random_state, s, _EVAL, c)) for c in range(clients)],
                executor,
                tick("evaluate"),
            )
            for c, result in enumerate(evaluated):
                result["centralized"] = {**central, "synthetic_rows": 0}
                fold_y = folds[c][target_col].astype(str)
                share = float((fold_y == str(pos)).mean())
                for scenario in SCENARIOS:
                    r = result[scenario]
                    records.append(
                        {"seed": s, "client": c, "scenario": scenario,
                         **{m: float(r[m]) for m in METRICS},
                         "synthetic_rows": int(r["synthetic_rows"]),
                         "client_rows": len(folds[c]),
                         "client_positive_share": share}
                    )
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return SimulationResult(
        dataset=ds_name,
        config=config,
        records=records,
        elapsed_seconds=time.perf_counter() - start_time,
        warnings=list(dict.fromkeys(messages)),
    )

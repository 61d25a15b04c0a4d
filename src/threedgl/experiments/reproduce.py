"""``3dgl reproduce``: the paper's Tables II and III on the bundled datasets.

For each dataset and seed (SPEC §4, §7): a stratified 90/10 split; the Real baseline
(logistic regression on the train split, scored on test); DDP-βVAE with the Table I
preset at ε = 1.9, δ = 1e-4 in two modes (ours, the default: sampled bins, DP marginal
anchor, noisy class sizes, chosen settings; and the paper's, Table I), the DP
independent-marginals baseline at the same (ε, δ), and our DDP-βVAE without DP (ε = ∞),
each trained on the train split. For each generator: one
large balanced synthetic table, the size sweep selected on the real *train* split
(accuracy, logistic regression), then the test scores of logistic regression and
histogram gradient boosting trained on the selected prefix. Table III: a synthetic table
with as many rows as the train split (following the released class sizes), the
real-vs-synthetic discriminators (10-fold CV), KLD, TLD, pairwise fidelity and the k-way
marginal TVD (rows of model ``"marginals"``: each generator's same-size table, and the test
split as source ``"Real"``, the sampling floor, each against the train split). The test
split is read only for the final scores and the floor (and, for the plots only, to score
the models the size sweep fitted anyway).

Every (dataset, seed) is independent, and so is each of its parts (the real data's
scores, each generator's): :func:`reproduce` runs every part of every run as a task of
``jobs`` worker processes (each on one thread) and puts the rows back in (dataset, seed,
part) order, so the numbers do not depend on ``jobs``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from threedgl import datasets
from threedgl.errors import ThreedglError, check_int
from threedgl.evaluation.discriminator import discriminator_scores
from threedgl.evaluation.divergence import feature_kld, tld
from threedgl.evaluation.encoding import encoded_once
from threedgl.evaluation.fidelity import pairwise_fidelity
from threedgl.evaluation.marginals import kway_tvd
from threedgl.evaluation.sweep import SweepResult, interleave_classes, size_sweep
from threedgl.evaluation.utility import utility_scores
from threedgl.model.base import BaseGenerator
from threedgl.model.registry import create_generator
from threedgl.privacy.ledger import unrecorded
from threedgl.threads import init_worker, limit_threads

#: Generators compared in every table: name → (kind, ε, mode). "DDP-βVAE" is our default
#: (anchored) model with its chosen settings; "paper" is the paper's model with Table I.
GENERATORS: dict[str, tuple[str, float, str]] = {
    "DDP-βVAE (ε=1.9)": ("ddp-betavae", 1.9, "anchored"),
    "DDP-βVAE paper (ε=1.9)": ("ddp-betavae", 1.9, "paper"),
    "DP marginals (ε=1.9)": ("dp-marginals", 1.9, ""),
    "βVAE, no DP (ε=∞)": ("ddp-betavae", math.inf, "anchored"),
}
MAIN = "DDP-βVAE (ε=1.9)"
PAPER = "DDP-βVAE paper (ε=1.9)"
#: Rows shown beside the paper's DDP-βVAE numbers.
COMPARED = (MAIN, PAPER)

Progress = Callable[[str], None]


@dataclass
class ReproduceConfig:
    datasets: Sequence[str]
    seeds: int = 5
    quick: bool = False
    epochs: int | None = None
    max_synthetic: int = 40_000
    generators: Sequence[str] = tuple(GENERATORS)
    overrides: dict[str, Any] = field(default_factory=dict)
    table_iii: bool = True
    #: The k-way marginal TVD rows (cheap: also wanted when ``table_iii`` is off).
    marginals: bool = True
    #: Class mix of the synthetic table: "balanced" (the paper), "released" or "select".
    balance: str = "select"
    #: Cap on train rows (stratified subsample of the train split; the test split is whole).
    max_train_rows: int | None = None
    #: Worker processes for the (dataset, seed) runs (default: the CPUs, at most 2).
    jobs: int | None = None

    def __post_init__(self) -> None:
        unknown = [g for g in self.generators if g not in GENERATORS]
        if unknown or len(set(self.generators)) != len(self.generators):
            raise ThreedglError(
                f"generators must be distinct names among {list(GENERATORS)}, got "
                f"{list(self.generators)}")
        if self.quick and self.max_train_rows is None:
            self.max_train_rows = 5000

    def n_jobs(self, tasks: int) -> int:
        jobs = self.jobs if self.jobs is not None else min(2, os.cpu_count() or 1)
        return max(1, min(check_int("jobs", jobs, low=1), tasks))


@dataclass
class ReproduceResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    sweeps: dict[str, dict[str, SweepResult]] = field(default_factory=dict)
    marginals: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    seconds: float = 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def split(frame: pd.DataFrame, target: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's stratified 90/10 split."""
    train, test = train_test_split(frame, test_size=0.1, stratify=frame[target], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def make_generator(kind: str, epsilon: float, mode: str, dataset: str, seed: int,
                   epochs: int | None, overrides: dict[str, Any] | None = None) -> BaseGenerator:
    """One of the compared generators (see :data:`GENERATORS`), unfitted."""
    if kind == "dp-marginals":
        return create_generator(kind, epsilon=epsilon, random_state=seed)
    params: dict[str, Any] = {"epsilon": epsilon, "random_state": seed, **(overrides or {})}
    if epochs is not None:
        params["epochs"] = epochs
    if mode == "paper":
        return create_generator(kind, dataset, **params)
    params.pop("categorical", None)  # a paper-mode option
    return create_generator(kind, **params)


#: The part of a (dataset, seed) run that is not a generator's: the real data's scores.
REAL = "Real"

DatasetRun = tuple[list[dict[str, Any]], dict[str, SweepResult], tuple[pd.DataFrame, pd.DataFrame]]


def run_dataset(
    name: str,
    seed: int,
    config: ReproduceConfig,
    progress: Progress | None = None,
    parts: Sequence[str] | None = None,
) -> DatasetRun:
    """Every row of Tables II and III for one dataset and one seed, or of its ``parts``
    (:data:`REAL` and names of ``config.generators``; default all): each part's rows
    depend only on the dataset, the seed and the part, so parts run apart give the
    rows of the whole run (:func:`reproduce` runs them as tasks of their own).

    Also returns the sweep curves on the test split (for the plots: the scores of the
    models the selection fitted anyway) and (real train, DDP-βVAE sample) for the plots.
    Every table is validated and encoded once (:func:`encoded_once`).
    """
    with encoded_once():
        return _run_dataset(name, seed, config, progress, parts)


def _run_dataset(
    name: str,
    seed: int,
    config: ReproduceConfig,
    progress: Progress | None = None,
    parts: Sequence[str] | None = None,
) -> DatasetRun:
    ds = datasets.load(name)
    train, test = split(ds.frame, ds.target, seed)
    if config.max_train_rows is not None and len(train) > config.max_train_rows:
        train, _ = train_test_split(train, train_size=config.max_train_rows,
                                    stratify=train[ds.target], random_state=seed)
        train = train.reset_index(drop=True)
    pos = ds.positive_label
    rows: list[dict[str, Any]] = []
    sweeps: dict[str, SweepResult] = {}
    pair = (train, train.iloc[:0])
    base = {"dataset": name, "seed": seed}
    if parts is None or REAL in parts:
        for model in ("logreg", "hgb"):
            real = utility_scores(train, test, ds.schema, model=model, positive_label=pos,
                                  random_state=seed)
            rows.append({**base, "source": "Real", "model": model, **_scores(real),
                         "majority_accuracy": 100 * real["majority_accuracy"]})
        if config.marginals:  # the sampling floor: two real samples
            rows.append({**base, "source": "Real", "model": "marginals",
                         **kway_tvd(train, test, ds.schema)})
    for gen_name in config.generators:
        if parts is not None and gen_name not in parts:
            continue
        kind, eps, mode = GENERATORS[gen_name]
        if progress:
            progress(f"{name} seed {seed}: training {gen_name}")
        t0 = time.perf_counter()
        gen = make_generator(kind, eps, mode, name, seed, config.epochs, config.overrides)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            gen.fit(train, target=ds.target, schema=ds.schema)
        fit_seconds = time.perf_counter() - t0
        if progress:
            progress(f"{name} seed {seed}: size sweep for {gen_name}")
        synthetic, sweep, balance = select_synthetic(gen, train, ds.schema, pos, seed, config,
                                                     report_df=test)
        chosen = sweep.best_prefix(synthetic)
        # For the plot only (never for selection): the test score of each prefix tried.
        sweeps[gen_name] = sweep.report_curve("test accuracy")
        for model in ("logreg", "hgb"):
            scores = utility_scores(chosen, test, ds.schema, model=model, positive_label=pos,
                                    random_state=seed)
            rows.append({**base, "source": gen_name, "model": model, **_scores(scores),
                         "synthetic_size": sweep.best_size, "balance": balance,
                         "fit_seconds": fit_seconds,
                         "epsilon_reached": gen.epsilon_})
        if not (config.table_iii or config.marginals):
            continue
        # Table III: as many synthetic rows as real train rows.
        same_size = gen.sample(len(train), balanced=False, random_state=seed + 2)
        if config.marginals:
            rows.append({**base, "source": gen_name, "model": "marginals",
                         **kway_tvd(train, same_size, ds.schema)})
        if not config.table_iii:
            continue
        if gen_name == MAIN:
            pair = (train, same_size)
        disc = {"logreg": discriminator_scores(train, same_size, ds.schema, random_state=seed)}
        # The extra gradient-boosting discriminator on at most 10,000 rows a side, 5 folds.
        cap = min(len(train), 10_000)
        disc["hgb"] = discriminator_scores(train.sample(cap, random_state=seed),
                                           same_size.sample(cap, random_state=seed), ds.schema,
                                           model="hgb", folds=5, random_state=seed)
        per_feature = feature_kld(train, same_size, ds.schema)
        kld = float(np.mean(list(per_feature.values())))
        lr = disc["logreg"]
        rows.append({
            **base, "source": gen_name, "model": "discriminator",
            "disc_accuracy": 100 * lr["accuracy"], "disc_f1": 100 * lr["f1"], "disc_auc": 100 * lr["auc"],
            "disc_hgb_auc": 100 * disc["hgb"]["auc"], "kld": kld,
            "tld": tld(kld, max(lr["accuracy"], 1e-12), float(np.clip(lr["auc"], 0, 1))),
            "pairwise_fidelity": pairwise_fidelity(train, same_size, ds.schema),
        })
        if progress:
            progress(f"{name} seed {seed}: {gen_name} done ({fit_seconds:.0f} s training)")
    return rows, sweeps, pair


def select_synthetic(
    gen: Any, train: pd.DataFrame, schema: Any, pos: Any, seed: int, config: ReproduceConfig,
    *, report_df: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, SweepResult, str]:
    """Sample once, sweep the size on the real train split; return the table and its sweep.

    ``config.balance`` is ``"balanced"`` (the paper: equal rows per class), ``"released"``
    (the class sizes the generator releases) or ``"select"``: both are swept and the one
    with the better score *on the train split* is kept (never the test split).
    ``report_df`` is passed to :func:`size_sweep` (its scores are for plots only).
    """
    n_pool = int(min(config.max_synthetic, max(4 * len(train), 4000)))
    choices = ["balanced", "released"] if config.balance == "select" else [config.balance]
    best: tuple[pd.DataFrame, SweepResult, str] | None = None
    for choice in choices:
        table = gen.sample(n_pool, balanced=choice == "balanced", random_state=seed + 1)
        table = interleave_classes(table, schema, random_state=seed)
        sweep = size_sweep(table, train, schema, metric="accuracy", positive_label=pos,
                           random_state=seed, report_df=report_df)
        if best is None or sweep.best_score > best[1].best_score:
            best = (table, sweep, choice)
    assert best is not None
    return best


def _scores(s: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": 100 * s["accuracy"], "f1": 100 * s["f1"], "auc": 100 * s["auc"]}


def mp_context() -> Any:
    """Worker processes start from a fresh server process (never a fork of a process that
    has torch's threads running): forkserver on Linux, spawn elsewhere."""
    import multiprocessing
    import sys

    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["threedgl.experiments.reproduce"])
        return ctx
    return multiprocessing.get_context("spawn")


def check_datasets(names: Sequence[str]) -> None:
    unknown = [d for d in names if d not in datasets.NAMES]
    if unknown:
        raise ThreedglError(
            f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(datasets.NAMES)}"
        )


@unrecorded
def reproduce(config: ReproduceConfig, progress: Progress | None = None) -> ReproduceResult:
    """Tables II and III: every (dataset, seed) run, in ``config.n_jobs`` processes."""
    check_datasets(config.datasets)
    if config.seeds < 1:
        raise ThreedglError(f"--seeds must be at least 1, got {config.seeds}")
    runs = [(name, seed) for name in config.datasets for seed in range(config.seeds)]
    parts = [REAL, *config.generators]
    tasks = [(name, seed, part) for name, seed in runs for part in parts]
    jobs = config.n_jobs(len(tasks))
    result = ReproduceResult()
    start = time.perf_counter()
    outputs: dict[tuple[str, int, str], DatasetRun] = {}
    if jobs == 1:
        with limit_threads(1, torch=True):
            for name, seed in runs:
                whole = run_dataset(name, seed, config, progress)
                outputs.update({(name, seed, part): whole if part == REAL else ([], {}, whole[2])
                                for part in parts})
    else:
        # Every part of every run a task (a dataset's generators side by side, not one
        # after the other in one process), the costliest first: the last to finish is small.
        def cost(task: tuple[str, int, str]) -> float:
            weight = 0.3 if task[2] == REAL else 0.5 if "marginals" in task[2] else 1.0
            return -len(datasets.load(task[0]).frame) * weight

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp_context(),
                                 initializer=init_worker) as pool:
            futures = {pool.submit(run_dataset, name, seed, config, None, [part]):
                       (name, seed, part) for name, seed, part in sorted(tasks, key=cost)}
            for done, future in enumerate(as_completed(futures), start=1):
                task = futures[future]
                outputs[task] = future.result()
                if progress:
                    progress(f"Tables II and III: {done} of {len(tasks)} parts done "
                             f"({task[0]} seed {task[1]}: {task[2]}), {jobs} processes")
    for name, seed in runs:  # (dataset, seed, part) order, whatever order they finished in
        rows = [r for part in parts for r in outputs[(name, seed, part)][0]]
        sweeps = {k: v for part in parts for k, v in outputs[(name, seed, part)][1].items()}
        result.rows.extend(rows)
        if seed == 0:
            result.sweeps[name] = sweeps
            main = outputs.get((name, seed, MAIN))
            result.marginals[name] = main[2] if main is not None else outputs[(name, seed, REAL)][2]
    result.seconds = time.perf_counter() - start
    return result

"""The other parts of the reproduction: the 3DGL simulation (Tables IV and V) in both
DDP-βVAE modes, and the membership-inference privacy table, over the bundled datasets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import pandas as pd

from threedgl.experiments.privacy import audit_table, privacy_table
from threedgl.experiments.reproduce import mp_context
from threedgl.experiments.tables import tables_iv_v
from threedgl.privacy.ledger import unrecorded
from threedgl.threads import init_worker

__all__ = [
    "FEDERATION_MODES",
    "NONIID_SPLITS",
    "audit_tables",
    "federation_tables",
    "noniid_table",
    "privacy_and_audit_tables",
    "privacy_tables",
    "simulate_all",
]

Progress = Callable[[str], None]

#: (DDP-βVAE mode, table-name suffix, what it is) of the two federation runs.
FEDERATION_MODES: tuple[tuple[str, str, str], ...] = (
    ("anchored", "", "our DDP-βVAE"),
    ("paper", "_paper", "the paper's DDP-βVAE (Table I)"),
)


@unrecorded
def simulate_all(
    jobs: Mapping[Any, Mapping[str, Any]],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    what: str = "3DGL simulations",
) -> dict[Any, Any]:
    """``simulate(**jobs[key])`` for every key, every simulation at once on one pool of
    ``workers`` processes (default min(2, cores)), the largest table first: the pool never
    waits at the end of a simulation, a seed or a phase for its slowest client. The scores
    are those of each simulation run alone (every random choice is seeded per simulation,
    seed and client). Returns the results by key."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from threedgl import datasets
    from threedgl.federation.simulation import simulate
    from threedgl.federation.workers import default_workers, first_error, make_executor

    def size(key: Any) -> int:
        data = jobs[key]["data"]
        return len(datasets.load(data).frame if isinstance(data, str)
                   else getattr(data, "frame", data))

    if not jobs:
        return {}

    order = sorted(jobs, key=size, reverse=True)
    total = sum(int(jobs[k].get("clients", 10)) * int(jobs[k].get("seeds", 1)) for k in jobs)
    done = {"train": 0, "evaluate": 0}
    lock = threading.Lock()

    def tick(phase: str, _done: int, _total: int) -> None:
        with lock:
            done[phase] += 1
            if progress:
                progress(f"{what}: {done['train']} clients trained, {done['evaluate']} "
                         f"evaluated of {total}")

    n_workers = workers if workers is not None else default_workers()
    pool = make_executor(n_workers)

    def run(key: Any) -> Any:
        kwargs = dict(jobs[key])
        return simulate(kwargs.pop("data"), workers=n_workers, executor=pool, progress=tick,
                        **kwargs)

    try:
        if pool is None:  # one worker: in this process, one simulation after the other
            results = [run(key) for key in order]
        else:
            drivers = ThreadPoolExecutor(max_workers=len(order))
            try:
                results = first_error(drivers, run, order)
            except BaseException:  # an error or Ctrl-C: the others' waiting tasks go too
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            finally:
                drivers.shutdown(wait=False, cancel_futures=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return dict(zip(order, results, strict=True))


#: The splits of the label- and quantity-skew table (issue 21).
NONIID_SPLITS: tuple[str, ...] = ("dirichlet:0.5", "dirichlet:0.1", "quantity:0.3")


@unrecorded
def noniid_table(
    names: Sequence[str],
    *,
    splits: Sequence[str] = NONIID_SPLITS,
    seeds: int = 3,
    clients: int = 10,
    epochs: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Label and quantity skew in the default mode: for each dataset and split, the mean
    Fold-Test accuracy over clients and seeds of the pool of DDP-βVAE generators (our
    default mode) and of the pool of DP marginals (ε = 1.9 both), beside centralized real
    data and local-only, with the differences (points). One row per (dataset, split)."""
    jobs: dict[Any, dict[str, Any]] = {(name, split, generator): {"data": name, "split": split, "clients": clients,
                                       "seeds": seeds, "epochs": epochs,
                                       "generator": generator}
            for name in names for split in splits
            for generator in ("ddp-betavae", "dp-marginals")}
    results = simulate_all(jobs, workers=workers, progress=progress,
                           what=f"label and quantity skew, {len(jobs)} simulations")
    rows = []
    for name in names:
        for split in splits:
            ours = results[(name, split, "ddp-betavae")].summary()
            marginals = results[(name, split, "dp-marginals")].summary()
            central = float(ours.loc["centralized", "accuracy"])
            pool = float(ours.loc["fold_test", "accuracy"])
            base = float(marginals.loc["fold_test", "accuracy"])
            rows.append({
                "dataset": name, "split": split, "centralized": central,
                "local only": float(ours.loc["local_test", "accuracy"]),
                "pool, DDP-βVAE": pool, "pool, DP marginals": base,
                "Δ vs centralized": pool - central, "Δ vs DP marginals": pool - base,
            })
    return pd.DataFrame(rows)


@unrecorded
def federation_tables(
    names: Sequence[str],
    *,
    seeds: int,
    epochs: int | None = None,
    clients: int = 10,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Tables IV and V for ``names``, in both modes: ``{"table_iv": ..., "table_v": ...,
    "table_iv_paper": ..., "table_v_paper": ...}`` and the simulation results by key
    (``"<mode>/<dataset>"``), for the report. Every simulation's clients run in one pool
    of ``workers`` processes (the simulation's default: min(2, cores)); the scores do not
    depend on it, nor on the order the simulations run in."""
    jobs: dict[Any, dict[str, Any]] = {(mode, name): {"data": name, "mode": mode, "clients": clients, "seeds": seeds,
                           "epochs": epochs}
            for mode, _, _ in FEDERATION_MODES for name in names}
    by_run = simulate_all(jobs, workers=workers, progress=progress,
                          what=f"3DGL simulation, {len(names)} dataset(s) × 2 modes")
    tables: dict[str, pd.DataFrame] = {}
    runs: dict[str, Any] = {}
    for mode, suffix, _ in FEDERATION_MODES:
        mode_results = {name: by_run[(mode, name)] for name in names}
        runs.update({f"{mode}/{name}": r for name, r in mode_results.items()})
        table_iv, table_v = tables_iv_v(mode_results)
        tables[f"table_iv{suffix}"] = table_iv
        tables[f"table_v{suffix}"] = table_v
    return tables, runs


@unrecorded
def privacy_tables(
    names: Sequence[str],
    *,
    quick: bool = False,
    jobs: int = 1,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The privacy table of every dataset in ``names`` (both modes, seed 0), rows in the
    order of ``names``, one dataset per worker process when ``jobs > 1``.

    Full runs cap each dataset at 6,000 rows (3,000 members): the density and
    nearest-neighbour attacks grow quadratically with the rows.
    """
    return _attack_tables(names, quick=quick, jobs=jobs, progress=progress, audit=False)[0]


@unrecorded
def privacy_and_audit_tables(
    names: Sequence[str],
    *,
    quick: bool = False,
    jobs: int = 1,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`privacy_tables` and :func:`audit_tables` of ``names``, every dataset's
    attacks and audit a task of one pool of ``jobs`` worker processes, the costliest
    first (the same tables as the two functions give)."""
    privacy, audit = _attack_tables(names, quick=quick, jobs=jobs, progress=progress,
                                    audit=True)
    assert audit is not None
    return privacy, audit


def _attack_tables(
    names: Sequence[str],
    *,
    quick: bool,
    jobs: int,
    progress: Progress | None,
    audit: bool,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    from threedgl import datasets

    kwargs: dict[str, Any] = {"seed": 0, "quick": quick, "max_rows": None if quick else 6000}
    tasks: list[tuple[str, str]] = [("privacy", n) for n in names]
    if audit:
        tasks += [("audit", n) for n in names]
    out: dict[tuple[str, str], pd.DataFrame] = {}
    if jobs <= 1 or len(tasks) <= 1:
        for kind, name in tasks:
            out[(kind, name)] = _privacy_task(kind, name, kwargs, progress)
    else:
        # the attacks cost about twice an audit; both grow with the (capped) rows
        def cost(task: tuple[str, str]) -> float:
            rows = min(len(datasets.load(task[1]).frame), kwargs["max_rows"] or 1500)
            return rows * (2.0 if task[0] == "privacy" else 1.0)

        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=mp_context(),
                                 initializer=init_worker) as pool:
            futures = {pool.submit(_privacy_task, kind, name, kwargs): (kind, name)
                       for kind, name in sorted(tasks, key=cost, reverse=True)}
            for done, future in enumerate(as_completed(futures), start=1):
                out[futures[future]] = future.result()
                if progress:
                    progress(f"membership-inference attacks and audits: {done} of "
                             f"{len(tasks)} done")
    frames = [out[("privacy", n)] for n in names]
    table = pd.concat(frames, ignore_index=True)
    notes = [f.attrs.get("note", "") for f in frames]
    table.attrs["note"] = " | ".join(n for n in notes if n)
    spreads = [f.attrs["std"] for f in frames if isinstance(f.attrs.get("std"), list)]
    if len(spreads) == len(frames):
        table.attrs["std"] = [r for spread in spreads for r in spread]
    if not audit:
        return table, None
    return table, pd.concat([out[("audit", n)] for n in names], ignore_index=True)


def _privacy_task(kind: str, name: str, kwargs: dict[str, Any],
                  progress: Progress | None = None) -> pd.DataFrame:
    """One dataset's privacy table (``kind="privacy"``, both modes) or audit table."""
    if kind == "privacy":
        if progress:
            progress(f"membership-inference attacks: {name}")
        return privacy_table(name, modes=("anchored", "paper"), progress=progress, **kwargs)
    return audit_table(name, progress=progress, **kwargs)


def audit_tables(names: Sequence[str], *, quick: bool = False,
                 progress: Progress | None = None) -> pd.DataFrame:
    """The one-run privacy audit of both modes at ε = 1.9 and 10 on every dataset in
    ``names`` (seed 0; full runs capped at 6,000 rows as the privacy table)."""
    frames = [audit_table(name, 0, quick=quick, max_rows=None if quick else 6000,
                          progress=progress) for name in names]
    return pd.concat(frames, ignore_index=True)

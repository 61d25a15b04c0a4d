"""The other parts of the reproduction: the 3DGL simulation (Tables IV and V) in both
DDP-βVAE modes, and the membership-inference privacy table, over the bundled datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    "audit_tables",
    "federation_tables",
    "privacy_and_audit_tables",
    "privacy_tables",
]

Progress = Callable[[str], None]

#: (DDP-βVAE mode, table-name suffix, what it is) of the two federation runs.
FEDERATION_MODES: tuple[tuple[str, str, str], ...] = (
    ("anchored", "", "our DDP-βVAE"),
    ("paper", "_paper", "the paper's DDP-βVAE (Table I)"),
)


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
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from threedgl import datasets
    from threedgl.federation.simulation import simulate
    from threedgl.federation.workers import default_workers, make_executor

    # Every simulation at once on one worker pool, the largest dataset first: the pool
    # never waits at the end of a simulation, a seed or a phase for its slowest client.
    runs_todo = sorted(((mode, name) for mode, _, _ in FEDERATION_MODES for name in names),
                       key=lambda run: -len(datasets.load(run[1]).frame))
    total = 2 * len(runs_todo) * seeds * clients  # every client trains, then evaluates
    done = {"train": 0, "evaluate": 0}
    lock = threading.Lock()

    def tick(phase: str, _done: int, _total: int) -> None:
        with lock:
            done[phase] += 1
            if progress:
                progress(f"3DGL simulation, {len(names)} dataset(s) × 2 modes, {clients} "
                         f"clients × {seeds} seed(s): {done['train']} trained, "
                         f"{done['evaluate']} evaluated of {total // 2}")

    n_workers = workers if workers is not None else default_workers()
    pool = make_executor(n_workers)

    def run(job: tuple[str, str]) -> Any:
        mode, name = job
        return simulate(name, clients=clients, seeds=seeds, epochs=epochs, mode=mode,
                        workers=n_workers, executor=pool, progress=tick)

    try:
        if pool is None:  # one worker: in this process, one simulation after the other
            results = [run(job) for job in runs_todo]
        else:
            with ThreadPoolExecutor(max_workers=len(runs_todo)) as drivers:
                results = list(drivers.map(run, runs_todo))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    by_run = dict(zip(runs_todo, results, strict=True))
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

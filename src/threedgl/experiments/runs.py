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

__all__ = ["FEDERATION_MODES", "audit_tables", "federation_tables", "privacy_tables"]

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
    (``"<mode>/<dataset>"``), for the report. The clients of a simulation train in
    ``workers`` processes (the simulation's default: min(2, cores))."""
    from threedgl.federation.simulation import simulate

    tables: dict[str, pd.DataFrame] = {}
    runs: dict[str, Any] = {}
    for mode, suffix, what in FEDERATION_MODES:
        results = {}
        for name in names:
            if progress:
                progress(f"3DGL simulation: {name}, {clients} clients, {what}")
            results[name] = simulate(name, clients=clients, seeds=seeds, epochs=epochs,
                                     mode=mode, workers=workers)
            runs[f"{mode}/{name}"] = results[name]
        table_iv, table_v = tables_iv_v(results)
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
    """The privacy table of every dataset in ``names`` (both modes, seed 0), one dataset
    per worker process when ``jobs > 1`` (rows in the order of ``names``).

    Full runs cap each dataset at 6,000 rows (3,000 members): the density and
    nearest-neighbour attacks grow quadratically with the rows.
    """
    kwargs: dict[str, Any] = {"seed": 0, "quick": quick, "max_rows": None if quick else 6000,
                              "modes": ("anchored", "paper")}
    frames: dict[str, pd.DataFrame] = {}
    if jobs <= 1 or len(names) <= 1:
        for name in names:
            if progress:
                progress(f"membership-inference attacks: {name}")
            frames[name] = privacy_table(name, **kwargs)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(names)), mp_context=mp_context(),
                                 initializer=init_worker) as pool:
            futures = {pool.submit(privacy_table, name, **kwargs): name for name in names}
            for done, future in enumerate(as_completed(futures), start=1):
                frames[futures[future]] = future.result()
                if progress:
                    progress(f"membership-inference attacks: {done} of {len(names)} datasets")
    table = pd.concat([frames[n] for n in names], ignore_index=True)
    notes = [frames[n].attrs.get("note", "") for n in names]
    table.attrs["note"] = " | ".join(n for n in notes if n)
    return table


def audit_tables(names: Sequence[str], *, quick: bool = False,
                 progress: Progress | None = None) -> pd.DataFrame:
    """The one-run privacy audit of both modes at ε = 1.9 and 10 on every dataset in
    ``names`` (seed 0; full runs capped at 6,000 rows as the privacy table)."""
    frames = [audit_table(name, 0, quick=quick, max_rows=None if quick else 6000,
                          progress=progress) for name in names]
    return pd.concat(frames, ignore_index=True)

"""``3dgl simulate``: the 3DGL federation simulation (paper §IV-B, SPEC §5)."""

from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from threedgl.cli._common import console, fail, frame_table, progress_bar, user_errors, warn

if TYPE_CHECKING:
    from threedgl.federation import Reference


def paper_references(dataset: str) -> list[Reference]:
    """The paper's Tables IV and V for ``dataset`` (empty when the paper has none), to lay
    beside our scores in the report."""
    from threedgl.federation import TABLE_IV, TABLE_V, Reference
    from threedgl.federation import paper as fed_paper

    out = []
    for name, table, columns in (("IV", TABLE_IV, fed_paper.TABLE_IV_COLUMNS),
                                 ("V", TABLE_V, fed_paper.TABLE_V_COLUMNS)):
        if dataset in table:
            out.append(Reference(table=name, scores=table[dataset], columns=columns))
    return out


def simulate(
    dataset: str = typer.Argument(..., help="A bundled dataset (titanic, breast-cancer, mushrooms, adult, wine-quality) or a CSV/Parquet file with --target."),
    clients: int = typer.Option(10, "--clients", "-k", help="Number of clients K (paper: 10)."),
    split: str = typer.Option("stratified", "--split", help="Client folds: stratified, dirichlet:ALPHA (label skew) or quantity:ALPHA (size skew)."),
    seeds: int = typer.Option(1, "--seeds", help="Repetitions with different train/test splits and folds (mean and std reported)."),
    epsilon: float = typer.Option(1.9, "--epsilon", "-e", help="Privacy budget ε of every client generator ('inf' for no privacy)."),
    delta: float = typer.Option(1e-4, "--delta", "-d", help="Privacy parameter δ."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output directory (default runs/simulate-<dataset>)."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes (default min(2, cores); 1 runs in-process)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs of each generator (default: chosen automatically by the model)."),
    target: str | None = typer.Option(None, "--target", "-t", help="Class column (for a CSV/Parquet file)."),
    seed: int = typer.Option(0, "--seed", help="Random state of the whole simulation."),
    paper: bool = typer.Option(False, "--paper", help="Clients train the paper's DDP-βVAE (Table I for a bundled dataset) instead of the default model."),
    generator: str = typer.Option("ddp-betavae", "--generator", help="ddp-betavae, or dp-marginals (the DP independent-marginals baseline)."),
    class_mix: str = typer.Option("select", "--class-mix", help="Class mix of the synthetic rows: balanced (the paper), released (the generators' class sizes), or select (the better on each client's own rows)."),
    min_rows: int = typer.Option(10, "--min-rows", help="Dirichlet splits: every client gets at least this many rows."),
    server: str | None = typer.Option(None, "--server", envvar="THREEDGL_SERVER", show_default=False, help="Run through this Global Server (URL): a new federation per seed, clients publish and pull there (default: in memory)."),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="THREEDGL_ADMIN_TOKEN", show_default=False, help="The server's admin token (with --server)."),
    engine: str = typer.Option("local", "--engine", help="local: our own process pool; flower: Flower's simulation runtime (Ray backend; pip install 'threedgl\\[flower]'), its ServerApp checking every generator as the Global Server does."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="A data file: drop rows with missing values instead of failing."),
    encoding: str | None = typer.Option(None, "--encoding", help="A data file: its text encoding (default utf-8), e.g. latin-1.", show_default=False),
) -> None:
    """Simulate a 3DGL federation: K clients train DP generators, pool them, and compare the
    paper's scenarios (Fold-Fold, Fold-Test, Test-Test) and more baselines with local-only data."""
    from threedgl.datasets import NAMES
    from threedgl.federation import SCENARIO_TITLES, EvaluationOptions, parse_split
    from threedgl.federation import simulate as run

    with user_errors():
        spec = parse_split(split)
        if clients < 2:
            fail(f"--clients must be at least 2, got {clients}")
        if seeds < 1:
            fail(f"--seeds must be at least 1, got {seeds}")
        if workers is not None and workers < 1:
            fail(f"--workers must be at least 1, got {workers}")
        if epochs is not None and epochs < 1:
            fail(f"--epochs must be at least 1, got {epochs}")
        if not (epsilon > 0):
            fail(f"--epsilon must be positive, got {epsilon}")
        if class_mix not in ("select", "balanced", "released"):
            fail(f"--class-mix must be select, balanced or released, got '{class_mix}'")
        if generator not in ("ddp-betavae", "dp-marginals"):
            fail(f"--generator must be 'ddp-betavae' or 'dp-marginals', got '{generator}'")
        if engine not in ("local", "flower"):
            fail(f"--engine must be 'local' or 'flower', got '{engine}'")
        if engine == "flower":
            from threedgl.federation.flower import flower_missing

            missing = flower_missing()
            if missing:
                fail(missing)
            if math.isinf(epsilon):
                fail("--engine flower needs a finite --epsilon: its ServerApp accepts only private generators, as the Global Server does")
        kwargs: dict = {}
        if dataset in NAMES:
            data: object = dataset
            label = dataset
        else:
            path = Path(dataset)
            if not path.is_file():
                fail(f"'{dataset}' is neither a bundled dataset ({', '.join(NAMES)}) nor a file")
            if target is None:
                fail("a data file needs --target (the class column)")
            from threedgl.schema import read_table
            from threedgl.schema.conform import apply_nan_policy

            data = apply_nan_policy(read_table(path, encoding), "drop" if drop_missing else "error")
            label = path.stem
            kwargs = {"target": target, "name": label}
            warn("inferring the schema from the table: its bounds and categories are not private")
        out_dir = out if out is not None else Path("runs") / f"simulate-{label}"
        pool_server = None
        if server:
            from threedgl.federation import GlobalServerPool

            if math.isinf(epsilon):
                fail("--server needs a finite --epsilon: a Global Server accepts only private generators")
            if not admin_token:
                fail("--server needs the admin token: pass --admin-token or set THREEDGL_ADMIN_TOKEN")
            prefix = "sim-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-._") or "data")
            pool_server = GlobalServerPool(server, admin_token, prefix=prefix[:40])
            pool_server.check()  # unreachable server or wrong token: fail before training
            console.print(f"using the Global Server at {server}", soft_wrap=True, highlight=False)
        started = time.perf_counter()
        with progress_bar() as bar, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tasks = {
                "train": bar.add_task("training generators", total=clients * seeds, status=""),
                "evaluate": bar.add_task("evaluating clients", total=clients * seeds, status=""),
            }

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(tasks[phase], completed=done, total=total)

            result = run(
                data, clients=clients, split=spec, epsilon=epsilon, delta=delta, epochs=epochs,
                seeds=seeds, workers=workers, random_state=seed, progress=progress,
                min_rows=min_rows, server=pool_server, mode="paper" if paper else "anchored",
                generator=generator, options=EvaluationOptions(class_mix=class_mix),
                engine=engine, **kwargs,
            )
        paths = result.write(out_dir, references=paper_references(result.dataset))
    elapsed = time.perf_counter() - started
    per_client = result.per_client()
    per_client = per_client[["client", "scenario", "accuracy", "f1", "auc", "synthetic_rows", "client_rows"]]
    for rows in ("synthetic_rows", "client_rows"):  # means over seeds: whole rows to show
        per_client[rows] = per_client[rows].round().astype("Int64")
    console.print(frame_table(per_client.rename(columns=SHORT), title="Per client (%, mean over seeds)"))
    summary = result.summary().reset_index()
    cols = ["scenario", "accuracy", "f1", "auc", "accuracy_gain", "f1_gain", "auc_gain"]
    if seeds > 1:
        cols[4:4] = ["accuracy_std", "f1_std", "auc_std"]
    eps_text = "inf (NOT private)" if math.isinf(epsilon) else f"{epsilon:g}"
    console.print(frame_table(
        summary[cols].rename(columns=SHORT),
        title=f"{result.dataset}: averages over {clients} clients, split {spec}, ε = {eps_text}, "
              f"{seeds} seed(s), {engine} engine (%; Δ: points over local-only data)",
    ))
    width = max(len(str(s)) for s in summary["scenario"])
    for scenario in summary["scenario"]:  # what each scenario is, below the table (80 columns)
        console.print(f"  {scenario:<{width}}  {SCENARIO_TITLES[scenario]}", highlight=False,
                      soft_wrap=True)
    for nogen in result.without_generator:
        warn(f"seed {nogen['seed']}, client {nogen['client']}: no generator, local-only "
             f"scores and no pool ({nogen['reason']})")
    for w in result.warnings[:5]:
        warn(w)
    if len(result.warnings) > 5:
        warn(f"... and {len(result.warnings) - 5} more warnings (see {paths['markdown']})")
    if pool_server is not None:
        console.print(
            f"ran through the Global Server at {server}: federation(s) {', '.join(pool_server.federations)}",
            soft_wrap=True, highlight=False,
        )
    console.print(f"wrote {', '.join(str(p) for p in paths.values())} in {elapsed:.0f} s")


#: Shorter headers for the terminal (the CSV and JSON files keep the full names).
SHORT = {"accuracy": "acc", "accuracy_gain": "Δacc", "f1_gain": "Δf1", "auc_gain": "Δauc",
         "accuracy_std": "±acc", "f1_std": "±f1", "auc_std": "±auc",
         "synthetic_rows": "synthetic rows", "client_rows": "own rows"}


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)

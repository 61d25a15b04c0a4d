"""``3dgl evaluate`` and ``3dgl reproduce``: the paper's evaluation (Tables II to V)."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from threedgl.schema.columns import NanPolicy

from threedgl.cli._common import (
    EncodingOpt,
    console,
    err_console,
    fail,
    frame_table,
    progress_bar,
    user_errors,
    warn,
)


def evaluate(
    generators: list[Path] = typer.Option(..., "--generator", "-g", help="A .3dgl file (repeat for a pool)."),
    train: Path = typer.Option(..., "--train", help="Real data the size is selected on (CSV/Parquet)."),
    test: Path = typer.Option(..., "--test", help="Real data scored at the end (CSV/Parquet)."),
    target: str = typer.Option(..., "--target", "-t", help="The class column."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every figure as JSON here."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampling and models."),
    positive: str | None = typer.Option(None, "--positive", help="Positive class label for F1 (default: minority class of TRAIN)."),
    pool_size: int = typer.Option(20_000, "--pool-size", help="Synthetic rows sampled once for the size sweep."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing values instead of failing."),
    encoding: str | None = EncodingOpt,
) -> None:
    """Train on synthetic, test on real: utility, size sweep, discriminator, KLD, TLD, pairwise
    fidelity and the k-way marginal TVD (tvd_1way, tvd_2way, tvd_3way: lower is better)."""
    import pandas as pd

    from threedgl.evaluation import evaluate_generator_table
    from threedgl.evaluation.sweep import interleave_classes, size_sweep
    from threedgl.pool import GeneratorsPool
    from threedgl.schema import read_table
    from threedgl.schema.io import atomic_write_text

    with user_errors(), progress_bar(transient=True) as bar, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step = bar.add_task("evaluate", total=4, status="reading the generators and tables")
        pool = GeneratorsPool.from_files(generators)
        schema = pool.schema
        if schema.target != target:
            fail(f"--target '{target}' is not the generators' class column ('{schema.target}')")
        policy: NanPolicy = "drop" if drop_missing else "error"
        train_df = _validated(schema, read_table(train, encoding), policy, "--train")
        test_df = _validated(schema, read_table(test, encoding), policy, "--test")
        pos = None
        if positive is not None:
            matches = [lab for lab in schema.labels if str(lab) == positive]
            if not matches:
                fail(f"--positive '{positive}' is not a class label ({', '.join(map(str, schema.labels))})")
            pos = matches[0]
        bar.update(step, advance=1, status=f"sampling {pool_size:,} synthetic rows")
        synthetic = interleave_classes(pool.sample(pool_size, random_state=seed), schema, random_state=seed)
        bar.update(step, advance=1, status="size sweep: a model per synthetic size, scored on --train")
        sweep = size_sweep(synthetic, train_df, schema, positive_label=pos, random_state=seed)
        chosen = sweep.best_prefix(synthetic)
        bar.update(step, advance=1, status="utility, discriminator and fidelity on --test")
        report = evaluate_generator_table(train_df, test_df, chosen, schema, positive_label=pos,
                                          random_state=seed)
        bar.update(step, advance=1, status="done")
        report["sweep"] = sweep.to_dict()
        report["synthetic_size"] = sweep.best_size
        report["generators"] = [str(g) for g in generators]
        first: dict[str, Any] = next(iter(report["utility"].values()), {})
        report["majority_baselines"] = {  # the two majority baselines, named
            "train": report["majority_accuracy"],  # --train's majority class, on --test
            "synthetic": first.get("majority_accuracy"),  # the synthetic rows' (balanced)
        }
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(report, indent=2, default=float) + "\n")
    shown: set[str] = set()
    for w in caught:  # each once; the tables' clipping is named by file (_validated)
        text = str(w.message)
        if (issubclass(w.category, UserWarning) and text not in shown
                and not text.startswith("values outside the schema's bounds")):
            shown.add(text)
            warn(text)
    label = report.get("positive_label")
    rows = [{"figure": "synthetic size (selected on --train)", "value": f"{sweep.best_size}"}]
    for model, scores in report["utility"].items():
        rows.append({"figure": f"{model}: accuracy / F1 of {label!r} / AUC on --test (%)",
                     "value": f"{100 * scores['accuracy']:.2f} / {100 * scores['f1']:.2f} / {100 * scores['auc']:.2f}"})
    rows.append({"figure": "majority class of --train, on --test: accuracy (%)",
                 "value": f"{100 * report['majority_accuracy']:.2f}"})
    for model, scores in report["discriminator"].items():
        rows.append({"figure": f"discriminator {model}: accuracy / F1 / AUC (%)",
                     "value": f"{100 * scores['accuracy']:.2f} / {100 * scores['f1']:.2f} / {100 * scores['auc']:.2f}"})
    rows.append({"figure": "mean KLD (real ‖ synthetic)", "value": f"{report['kld']:.4f}"})
    rows.append({"figure": "TLD", "value": f"{report['tld']:.4f}"})
    rows.append({"figure": "pairwise fidelity (mean |Δ association|)", "value": f"{report['pairwise_fidelity']:.4f}"})
    rows.append({"figure": "k-way marginal TVD, 1 / 2 / 3-way (--train vs synthetic)",
                 "value": _tvds(report)})
    rows.append({"figure": "  sampling floor (--test vs --train)", "value": _tvds(report["tvd_floor"])})
    console.print(frame_table(pd.DataFrame(rows), title=f"Evaluation of {len(generators)} generator(s)"))


def _validated(schema: Any, df: pd.DataFrame, policy: NanPolicy, what: str) -> pd.DataFrame:
    """``schema.validate(df)``, its warnings (clipping) naming the file option."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = schema.validate(df, nan_policy=policy)
    for w in caught:
        warnings.warn(f"{what}: {w.message}", UserWarning, stacklevel=2)
    return out


def _tvds(scores: Mapping[str, Any]) -> str:
    """The 1-, 2- and 3-way TVD as ``0.0123 / 0.0456 / 0.0789`` (a dash for a k above the
    number of columns)."""
    from threedgl.evaluation.marginals import TVD_KEYS

    return " / ".join("—" if scores.get(k) is None else f"{scores[k]:.4f}" for k in TVD_KEYS)


def reproduce(
    datasets_opt: str | None = typer.Option(None, "--datasets", help="Comma-separated dataset names (default: all five)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per dataset (default 5; 1 with --quick)."),
    quick: bool = typer.Option(False, "--quick", help="One seed, at most 5,000 train rows per dataset, the federation and the attacks on Titanic only: a few minutes."),
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="Directory for report.html, Markdown, CSV, JSON and plots."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override DDP-βVAE epochs."),
    federation: bool = typer.Option(True, "--federation/--no-federation", help="Also run Tables IV and V (3DGL simulation)."),
    privacy: bool = typer.Option(True, "--privacy/--no-privacy", help="Also run the membership-inference privacy table."),
    utility: bool = typer.Option(True, "--utility/--no-utility", help="Run Tables II and III (turn off to run only the other parts)."),
    noniid: bool = typer.Option(False, "--noniid/--no-noniid", help="Also run label and quantity skew in the default mode: Dirichlet 0.5 and 0.1 and quantity 0.3, 10 clients, the pool of DDP-βVAE beside the pool of DP marginals and centralized data (long: 30 simulations of 3 seeds on the five datasets)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Worker processes (default: min(2, cores)); the numbers do not depend on it."),
) -> None:
    """Run the paper's experiments on the bundled datasets; write report.html (every table
    beside the paper's, with its plots) and print a compact summary."""
    import sys

    from rich.console import Console

    from threedgl import datasets
    from threedgl.experiments import reproduce as rep
    from threedgl.experiments.report import LoadSampler, RunInfo, write_outputs
    from threedgl.experiments.runs import (
        federation_tables,
        noniid_table,
        privacy_and_audit_tables,
    )
    from threedgl.experiments.tables import summary_tables

    start = time.perf_counter()
    names = [d.strip() for d in datasets_opt.split(",")] if datasets_opt else list(datasets.NAMES)
    n_seeds = seeds if seeds is not None else (1 if quick else 5)
    extra: dict[str, pd.DataFrame] = {}
    with user_errors():
        rep.check_datasets(names)
        config = rep.ReproduceConfig(datasets=names, seeds=n_seeds, quick=quick, epochs=epochs,
                                     jobs=jobs)
        n_jobs = config.n_jobs(len(names) * max(n_seeds, 1))  # checks --jobs
        n_jobs = config.jobs if config.jobs is not None else config.n_jobs(2)
        small = names[:1] if quick else names
        fed_seeds = 1 if quick else min(n_seeds, 3)
        info = RunInfo(command=" ".join(["3dgl", *sys.argv[1:]]) if sys.argv[1:] else "3dgl reproduce",
                       config=config if utility else None, federation_seeds=fed_seeds,
                       federation_datasets=small if federation else (),
                       privacy_datasets=small if privacy else ())
        result = rep.ReproduceResult()
        info.jobs = n_jobs
        if utility:
            with err_console.status("reproducing Tables II and III") as status, \
                    LoadSampler() as load:
                result = rep.reproduce(config, progress=lambda msg: status.update(msg))
            info.seconds["Tables II and III"] = result.seconds
            info.load["Tables II and III"] = load.summary()
        if federation:
            t0 = time.perf_counter()
            with err_console.status("3DGL simulation (Tables IV and V)") as status, \
                    LoadSampler() as load:
                tables, _ = federation_tables(small, seeds=fed_seeds, epochs=epochs,
                                              workers=n_jobs,
                                              progress=lambda msg: status.update(msg))
            extra.update(tables)
            info.seconds["Tables IV and V"] = time.perf_counter() - t0
            info.load["Tables IV and V"] = load.summary()
        if noniid:
            t0 = time.perf_counter()
            with err_console.status("label and quantity skew") as status, \
                    LoadSampler() as load:
                extra["noniid"] = noniid_table(small, seeds=fed_seeds, epochs=epochs,
                                               workers=n_jobs,
                                               progress=lambda msg: status.update(msg))
            info.seconds["label and quantity skew"] = time.perf_counter() - t0
            info.load["label and quantity skew"] = load.summary()
        if privacy:
            t0 = time.perf_counter()
            with err_console.status("membership-inference attacks") as status, \
                    LoadSampler() as load:
                extra["privacy"], extra["audit"] = privacy_and_audit_tables(
                    small, quick=quick, jobs=n_jobs,
                    progress=lambda msg: status.update(msg))
            info.seconds["privacy table"] = time.perf_counter() - t0
            info.load["privacy table"] = load.summary()
        info.seconds["total"] = time.perf_counter() - start
        written = write_outputs(result, out, extra, info)
    narrow = Console(width=min(100, console.width), force_terminal=console.is_terminal)
    for title, table in summary_tables(result.frame(), extra).items():
        narrow.print(frame_table(table, title=title, compact=True))
    minutes = (time.perf_counter() - start) / 60
    narrow.print(f"wrote {len(written)} files to {out} in {minutes:.1f} min", soft_wrap=True)
    narrow.print("the report (every table and plot, and how each number was obtained):")
    typer.echo(str(written[-1]))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("reproduce")(reproduce)



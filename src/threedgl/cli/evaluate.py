"""``3dgl evaluate`` and ``3dgl reproduce``: the paper's evaluation (Tables II to V)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import pandas as pd

from threedgl.cli._common import console, err_console, fail, frame_table, user_errors


def evaluate(
    generators: list[Path] = typer.Option(..., "--generator", "-g", help="A .3dgl file (repeat for a pool)."),
    train: Path = typer.Option(..., "--train", help="Real data the size is selected on (CSV/Parquet)."),
    test: Path = typer.Option(..., "--test", help="Real data scored at the end (CSV/Parquet)."),
    target: str = typer.Option(..., "--target", "-t", help="The class column."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every figure as JSON here."),
    seed: int = typer.Option(0, "--seed", help="Seed of sampling and models."),
    positive: str | None = typer.Option(None, "--positive", help="Positive class label for F1 (default: minority class of TRAIN)."),
    pool_size: int = typer.Option(20_000, "--pool-size", help="Synthetic rows sampled once for the size sweep."),
) -> None:
    """Train on synthetic, test on real: utility, size sweep, discriminator, KLD, TLD, fidelity."""
    import pandas as pd

    from threedgl.evaluation import evaluate_generator_table
    from threedgl.evaluation.sweep import interleave_classes, size_sweep
    from threedgl.pool import GeneratorsPool
    from threedgl.schema import read_table
    from threedgl.schema.io import atomic_write_text

    with user_errors():
        pool = GeneratorsPool.from_files(generators)
        schema = pool.schema
        if schema.target != target:
            fail(f"--target '{target}' is not the generators' class column ('{schema.target}')")
        train_df = schema.validate(read_table(train))
        test_df = schema.validate(read_table(test))
        pos = None
        if positive is not None:
            matches = [lab for lab in schema.labels if str(lab) == positive]
            if not matches:
                fail(f"--positive '{positive}' is not a class label ({', '.join(map(str, schema.labels))})")
            pos = matches[0]
        synthetic = interleave_classes(pool.sample(pool_size, random_state=seed), schema, random_state=seed)
        sweep = size_sweep(synthetic, train_df, schema, positive_label=pos, random_state=seed)
        chosen = sweep.best_prefix(synthetic)
        report = evaluate_generator_table(train_df, test_df, chosen, schema, positive_label=pos,
                                          random_state=seed)
        report["sweep"] = sweep.to_dict()
        report["synthetic_size"] = sweep.best_size
        report["generators"] = [str(g) for g in generators]
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(report, indent=2, default=float) + "\n")
    rows = [{"figure": "synthetic size (selected on --train)", "value": f"{sweep.best_size}"}]
    for model, scores in report["utility"].items():
        rows.append({"figure": f"{model}: accuracy / F1 / AUC on --test (%)",
                     "value": f"{100 * scores['accuracy']:.2f} / {100 * scores['f1']:.2f} / {100 * scores['auc']:.2f}"})
    rows.append({"figure": "majority-class accuracy (%)", "value": f"{100 * report['majority_accuracy']:.2f}"})
    for model, scores in report["discriminator"].items():
        rows.append({"figure": f"discriminator {model}: accuracy / F1 / AUC (%)",
                     "value": f"{100 * scores['accuracy']:.2f} / {100 * scores['f1']:.2f} / {100 * scores['auc']:.2f}"})
    rows.append({"figure": "mean KLD (real ‖ synthetic)", "value": f"{report['kld']:.4f}"})
    rows.append({"figure": "TLD", "value": f"{report['tld']:.4f}"})
    rows.append({"figure": "pairwise fidelity (mean |Δ association|)", "value": f"{report['pairwise_fidelity']:.4f}"})
    console.print(frame_table(pd.DataFrame(rows), title=f"Evaluation of {len(generators)} generator(s)"))


def reproduce(
    datasets_opt: str | None = typer.Option(None, "--datasets", help="Comma-separated dataset names (default: all five)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per dataset (default 5; 1 with --quick)."),
    quick: bool = typer.Option(False, "--quick", help="One seed, at most 5,000 train rows per dataset, the federation and the attacks on Titanic only: a few minutes."),
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="Directory for Markdown, CSV, JSON and plots."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override DDP-βVAE epochs."),
    federation: bool = typer.Option(True, "--federation/--no-federation", help="Also run Tables IV and V (3DGL simulation)."),
    privacy: bool = typer.Option(True, "--privacy/--no-privacy", help="Also run the membership-inference privacy table."),
    utility: bool = typer.Option(True, "--utility/--no-utility", help="Run Tables II and III (turn off to run only the other parts)."),
) -> None:
    """Run the paper's experiments on the bundled datasets and print each table beside the paper's."""

    from threedgl import datasets
    from threedgl.evaluation import reproduce as rep

    start = time.perf_counter()
    names = [d.strip() for d in datasets_opt.split(",")] if datasets_opt else list(datasets.NAMES)
    n_seeds = seeds if seeds is not None else (1 if quick else 5)
    config = rep.ReproduceConfig(datasets=names, seeds=n_seeds, quick=quick, epochs=epochs)
    extra: dict[str, pd.DataFrame] = {}
    with user_errors():
        result = rep.ReproduceResult()
        if utility:
            with err_console.status("reproducing Tables II and III") as status:
                result = rep.reproduce(config, progress=lambda msg: status.update(msg))
            frame = result.frame()
            console.print(frame_table(rep.table_ii(frame), title="Table II: logistic regression trained on Real or Synth, scored on the real test split (%), ours beside the paper"))
            console.print(frame_table(rep.table_ii(frame, model="hgb"), title="Table II (extra): histogram gradient boosting"))
            console.print(frame_table(rep.table_iii(frame), title="Table III: real-vs-synthetic discriminator (logistic regression, 10-fold CV), KLD, TLD; extra: HGB discriminator AUC, pairwise fidelity"))
        extra.update(_federation_tables(names, n_seeds, quick, epochs) if federation else {})
        extra.update(_privacy_table(names, quick) if privacy else {})
        written = rep.write_outputs(result, out, extra)
    console.print(f"wrote {len(written)} files to {out} in {(time.perf_counter() - start) / 60:.1f} min")


def _federation_tables(names: list[str], seeds: int, quick: bool, epochs: int | None) -> dict[str, pd.DataFrame]:
    try:
        from threedgl.federation import paper as fed_paper
        from threedgl.federation.simulation import simulate
    except ImportError:  # pragma: no cover - federation not installed
        return {}
    tables = {}
    for mode, suffix, what in (("anchored", "", "our DDP-βVAE"), ("paper", "_paper", "the paper's DDP-βVAE (Table I)")):
        results = {}
        with err_console.status("3DGL simulation (Tables IV and V)") as status:
            for name in (names[:1] if quick else names):
                status.update(f"3DGL simulation: {name}, 10 clients, {what}")
                results[name] = simulate(name, clients=10, seeds=1 if quick else min(seeds, 3),
                                         epochs=epochs, mode=mode)
        table_iv, table_v = fed_paper.tables_iv_v(results)
        console.print(frame_table(table_iv, title=f"Table IV: 3DGL with {what}, Fold-Fold vs local 10-fold CV (%), ours beside the paper"))
        console.print(frame_table(table_v, title=f"Table V: 3DGL with {what}, Fold-Test and Test-Test vs local-only on the external test set (%), ours beside the paper"))
        tables[f"table_iv{suffix}"] = table_iv
        tables[f"table_v{suffix}"] = table_v
    return tables


def _privacy_table(names: list[str], quick: bool) -> dict[str, pd.DataFrame]:
    import pandas as pd

    try:
        from threedgl.evaluation.attacks import privacy_table
    except ImportError:  # pragma: no cover
        return {}
    frames = []
    with err_console.status("membership-inference attacks") as status:
        for name in (names[:1] if quick else names):
            status.update(f"membership-inference attacks: {name}")
            # Full runs cap each dataset at 6,000 rows (3,000 members): the density and
            # nearest-neighbour attacks grow quadratically with the rows.
            frames.append(privacy_table(name, seed=0, quick=quick,
                                        max_rows=None if quick else 6000,
                                        modes=("anchored", "paper")))
    table = pd.concat(frames, ignore_index=True)
    console.print(frame_table(table, title="Privacy: membership-inference attacks (AUC 0.5 = no better than guessing)", floatfmt="{:.3f}"))
    return {"privacy": table}


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("reproduce")(reproduce)



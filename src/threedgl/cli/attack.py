"""``3dgl attack``: black-box membership-inference attacks on a released generator."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from threedgl.cli._common import console, user_errors


def attack(
    generator: Path = typer.Option(..., "--generator", help="The released generator (.3dgl file)."),
    members: Path = typer.Option(..., "--members", help="Its training rows (CSV or Parquet)."),
    non_members: Path = typer.Option(
        ..., "--non-members", help="Held-out rows of the same population (CSV or Parquet)."
    ),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="More population rows, disjoint from both (default: half of the non-members).",
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the results as JSON keyed by attack name."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of sampling, splits and bootstrap."),
    n_synthetic: int | None = typer.Option(
        None,
        "--n-synthetic",
        min=2,
        help="Synthetic rows to sample (default 5 × max(members, 1000)).",
    ),
) -> None:
    """Attack a generator: DCR, DOMIAS-style density ratio and LOGAN-style discriminator.

    Reports ROC AUC (0.5 = the attacker learns nothing about membership) and the true
    positive rate at 1 % and 10 % false positives, with 95 % bootstrap intervals.
    """
    from threedgl.evaluation.attacks import run_attacks
    from threedgl.model.registry import load_generator
    from threedgl.schema import read_table
    from threedgl.schema.io import atomic_write_text

    with user_errors():
        gen = load_generator(generator)
        member_df = read_table(members)
        non_member_df = read_table(non_members)
        reference_df = read_table(reference) if reference is not None else None
        results = run_attacks(
            gen,
            member_df,
            non_member_df,
            reference_df,
            n_synthetic=n_synthetic,
            random_state=seed,
        )
        if json_out is not None:
            payload = {name: r.to_dict() for name, r in results.items()}
            atomic_write_text(json_out, json.dumps(payload, indent=2) + "\n")

    first = next(iter(results.values()))
    table = Table(title=f"Membership inference on {escape(generator.name)}")
    table.add_column("attack", justify="left")
    table.add_column("AUC [95% CI]", justify="right")
    table.add_column("TPR@1%FPR [95% CI]", justify="right")
    table.add_column("TPR@10%FPR [95% CI]", justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            _fmt(r.auc, r.auc_ci),
            _fmt(r.tpr_at_1pct_fpr, r.tpr_at_1pct_fpr_ci),
            _fmt(r.tpr_at_10pct_fpr, r.tpr_at_10pct_fpr_ci),
        )
    console.print(table)
    console.print(
        f"{first.n_members} members vs {first.n_non_members} non-members (balanced), "
        f"{first.n_synthetic} synthetic rows, reference: {first.n_reference} rows "
        f"({first.reference_source}); AUC 0.5 = no membership signal",
        highlight=False,
    )
    if json_out is not None:
        console.print(f"wrote {escape(str(json_out))}", highlight=False)


def _fmt(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)

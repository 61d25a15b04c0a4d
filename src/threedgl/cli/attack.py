"""``3dgl attack``: black-box membership-inference attacks on a released generator; ``3dgl
audit``: an empirical privacy audit in one training run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from threedgl.schema.columns import NanPolicy

from threedgl.cli._common import EncodingOpt, console, err_console, user_errors


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
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing values instead of failing."),
    encoding: str | None = EncodingOpt,
) -> None:
    """Attack a generator: DCR, DOMIAS-style density ratio and LOGAN-style discriminator.

    Reports ROC AUC (0.5 = the attacker learns nothing about membership) and the true
    positive rate at 1 % and 10 % false positives, with 95 % bootstrap intervals.
    """
    from threedgl.evaluation.attacks import run_attacks
    from threedgl.model.registry import load_generator
    from threedgl.schema import read_table
    from threedgl.schema.conform import apply_nan_policy
    from threedgl.schema.io import atomic_write_text

    with user_errors():
        gen = load_generator(generator)
        policy: NanPolicy = "drop" if drop_missing else "error"
        member_df = apply_nan_policy(read_table(members, encoding), policy)
        non_member_df = apply_nan_policy(read_table(non_members, encoding), policy)
        reference_df = (apply_nan_policy(read_table(reference, encoding), policy)
                        if reference is not None else None)
        with err_console.status("attacking: sampling, then DCR, density ratio and "
                                "discriminator, with bootstrap intervals"):
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


def _eps(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _fmt(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def audit(
    data: Path = typer.Argument(..., help="The private table to audit on (CSV or Parquet)."),
    target: str = typer.Option(..., "--target", "-t", help="The class column."),
    epsilon: float = typer.Option(1.9, "--epsilon", "-e", help="The privacy budget ε to audit ('inf' for none)."),
    delta: float = typer.Option(1e-4, "--delta", "-d", help="Privacy parameter δ."),
    canaries: int | None = typer.Option(None, "--canaries", "-m", min=10, help="Canary rows, each inserted with probability 1/2 (default: as many as DATA's rows, at most 1,000)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the lower bound, in (0, 1)."),
    schema_path: Path | None = typer.Option(None, "--schema", "-s", help="The public schema (JSON); inferred from DATA otherwise."),
    paper: bool = typer.Option(False, "--paper", help="Audit the paper's model (DP-Adam alone) instead of the default mode."),
    kind: str = typer.Option("ddp-betavae", "--generator", help="ddp-betavae, or dp-marginals."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the canaries and the coins (the training's noise always takes 128 fresh bits)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result as JSON (epsilon_claimed, epsilon_lower_bound, canaries, confidence, ...)."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing values instead of failing."),
    ledger: Path | None = typer.Option(None, "--ledger", help="Privacy budget ledger file (the audit's training is recorded there)."),
    force: bool = typer.Option(False, "--force", help="Audit even if the ledger's budget for this table would be exceeded."),
) -> None:
    """An empirical privacy audit in one training run (Steinke, Nasr & Jagielski 2023).

    Inserts canary rows (uniform over the schema's domain), each with probability 1/2,
    trains the generator once, guesses which canaries were in from the generator's
    likelihood of them, and reports the ε that the correct guesses prove at the given
    confidence beside the claimed ε. The training spends budget on DATA (recorded in the
    ledger); the audited generator is not written anywhere.
    """
    import warnings

    from threedgl.cli._common import fail, progress_bar, warn
    from threedgl.evaluation.audit import audit_generator
    from threedgl.model.registry import GENERATORS, create_generator
    from threedgl.privacy import ledger as ledger_mod
    from threedgl.schema import Schema, infer_schema, read_table

    with user_errors():
        if kind not in GENERATORS:
            fail(f"--generator must be 'ddp-betavae' or 'dp-marginals', got '{kind}'")
        if not 0 < confidence < 1:
            fail(f"--confidence must be in (0, 1), got {confidence!r}")
        df = read_table(data)
        if target not in df.columns:
            fail(f"--target '{target}' is not a column of {data} ({', '.join(map(str, df.columns[:8]))})")
        if schema_path is not None:
            schema = Schema.read(schema_path)
        else:
            warn("no --schema: inferring the schema from the private table (its bounds and "
                 "categories are not protected by differential privacy)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                schema = infer_schema(df, target=target)
        if schema.target != target:
            fail(f"--target '{target}' is not the schema's class column ('{schema.target}')")
        frame = schema.validate(df, require_target=True,
                                nan_policy="drop" if drop_missing else "error")
        book = ledger_mod.Ledger.open(ledger)
        fingerprint = ledger_mod.fingerprint(df)
        if math.isfinite(epsilon):
            book.check(fingerprint, epsilon=epsilon, delta=delta, accountant="rdp", force=force)

        if paper and kind != "ddp-betavae":
            fail("--paper applies to --generator ddp-betavae only")

        def make(random_state: int | None) -> object:
            params: dict = {"epsilon": epsilon, "delta": delta, "random_state": random_state}
            if kind == "ddp-betavae" and paper:
                params["mode"] = "paper"
            return create_generator(kind, None, **params)

        with progress_bar() as bar, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from types import SimpleNamespace

            from threedgl.cli.generator import ClassBars

            progress = ClassBars(bar, SimpleNamespace(schema_=schema), None)

            result, gen = audit_generator(make, frame, schema, canaries=canaries,
                                          confidence=confidence, random_state=seed,
                                          progress=progress)
        if math.isfinite(gen.epsilon_):
            entry = book.entry(fingerprint, gen.manifest_, source=f"{data} (3dgl audit)")
            book.check_entry(entry, force=force)
            book.record(entry)
        if json_out is not None:
            from threedgl.schema.io import atomic_write_text

            atomic_write_text(json_out, json.dumps(result.to_dict(), indent=2) + "\n")
    table = Table(title=f"Privacy audit of {escape(data.name)} (one run, {result.canaries} canaries)")
    for name in ("claimed ε", f"ε lower bound ({result.confidence:.0%})", "guesses",
                 "correct", "canaries in"):
        table.add_column(name, justify="right")
    table.add_row(_eps(result.epsilon_claimed), _eps(result.epsilon_lower_bound),
                  str(result.guesses), str(result.correct), str(result.included))
    console.print(table)
    console.print(f"score: {result.score}; a bound at or below the claimed ε is consistent "
                  "with the claim, one above it is a violation", highlight=False)
    if result.epsilon_lower_bound > result.epsilon_claimed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
    app.command("audit")(audit)

"""``3dgl budget``: the local privacy budget ledger."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    pass

from threedgl.cli._common import console, frame_table, user_errors


def budget(
    ledger: Path | None = typer.Option(None, "--ledger", help="Ledger file (default ~/.threedgl/ledger.json or $THREEDGL_LEDGER)."),
    set_budget: float | None = typer.Option(None, "--set-budget", help="Set the ε budget (for --table, or for every table)."),
    table: str | None = typer.Option(None, "--table", help="A table fingerprint (or a prefix of one)."),
) -> None:
    """Show the ε spent on each private table by every training, and the composed total."""
    import pandas as pd

    from threedgl.errors import PrivacyError
    from threedgl.privacy.ledger import ALL_TABLES, Ledger, compose_entries, counted

    with user_errors():
        book = Ledger.open(ledger)
        key = ALL_TABLES
        if table is not None:
            matches = [t for t in book.tables() if t.startswith(table)]
            if len(matches) != 1:
                raise PrivacyError(f"--table {table!r} matches {len(matches)} tables in the ledger")
            key = matches[0]
        if set_budget is not None:
            if not set_budget > 0:
                raise PrivacyError(f"--set-budget must be a positive ε, got {set_budget!r}")
            book.budgets[key] = float(set_budget)
            book.save()
            console.print(f"budget of {'every table' if key == ALL_TABLES else key[:12]} set to ε = {set_budget:g}")
        rows = []
        for fp in book.tables():
            if table is not None and fp != key:
                continue
            entries = book.entries_for(fp)
            for e in entries:
                eps, _ = compose_entries([e])
                source = e.get("source", "") + ("" if counted(e) else " (no DP: not counted)")
                rows.append({"table": fp[:12], "source": source, "recorded": e["recorded"][:19],
                             "generator": e["generator"], "epsilon": eps})
            total, delta = compose_entries([e for e in entries if counted(e)])
            limit = book.budget(fp)
            rows.append({"table": fp[:12], "source": "TOTAL (composed)", "recorded": f"δ = {delta:g}",
                         "generator": f"budget {'none' if math.isinf(limit) else format(limit, 'g')}",
                         "epsilon": total})
    if not rows:
        console.print(f"the ledger {book.path} has no trainings yet")
        return
    console.print(frame_table(pd.DataFrame(rows), title=f"Privacy budget ledger ({book.path})", floatfmt="{:.3f}"))


def register(app: typer.Typer) -> None:
    app.command("budget")(budget)

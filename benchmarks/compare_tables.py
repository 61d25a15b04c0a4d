"""Compare a reproduction's Tables II and III with the ones recorded in README.md.

    python benchmarks/compare_tables.py runs/full            # the run's table_*.csv files
    python benchmarks/compare_tables.py runs/full --against benchmarks/results/reproduce-56ce257

With ``--against DIR`` (an earlier run's CSV files, e.g. the recorded run of issue 23) every
table the two runs share is compared cell by cell instead: Tables II to V in both modes, the
privacy and the audit table. A cell ``mean ± std`` agrees within seed noise when
|Δ| ≤ max(std, 0.05) as below. A cell without a recorded std (Tables IV and V print means
of 3 seeds, the privacy table seed 0 alone) takes its noise from the runs' ``<table>_std.csv`` (the
smaller of the two where both have one): the standard deviation over seeds of Tables IV and V's
cells, the bootstrap standard error of each privacy-table number (floor 0.0005 there: its
numbers are fractions); Table II's "synthetic size" (the sweep's choice, a mean over seeds)
its standard deviation over a run's seeds (``results.json``); without any it must be
equal up to 1e-6 (the audit table: the same seeds run the same computation, so anything
else is a change, not noise).

README.md holds each table between markers (``<!-- table-ii -->`` ... ``<!-- /table-ii -->``,
also ``table-ii-hgb`` and ``table-iii``). Every cell is ``mean ± std`` (with the paper's
number in brackets for some rows); for every (dataset, source, metric) this prints the new
mean minus the recorded one, in points and in units of the recorded std over seeds, and
says whether the two agree within seed noise: |Δ| ≤ max(std, 0.05), with std the recorded
standard deviation over seeds (two 5-seed means of the same experiment with independent
noise differ by about std · √(2/5) ≈ 0.63 std; with the same seeds they should be equal up
to floating-point differences). Only the cells recorded in README.md are compared: a column
or row the run has and the README does not (Table III's TVD columns and floor row, until
they are recorded) is skipped, and so is an empty cell.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

MARKERS = {"table_ii": "table-ii", "table_ii_hgb": "table-ii-hgb", "table_iii": "table-iii"}
CELL = re.compile(r"^\s*(-?[\d.]+) ± ([\d.]+)")
#: A run's cell: ``mean ± std``, or ``mean`` alone (one seed: no spread measured).
RUN_CELL = re.compile(r"^\s*(-?[\d.]+)(?: ± ([\d.]+))?(?:\s|$)")


def readme_table(readme: str, marker: str) -> pd.DataFrame:
    m = re.search(rf"<!-- {re.escape(marker)} -->\n(.*?)\n<!-- /{re.escape(marker)} -->", readme,
                  re.S)
    if m is None:
        raise SystemExit(f"README.md has no <!-- {marker} --> table")
    lines = [line for line in m.group(1).splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    # A row with fewer cells than the header (a column added later) gets empty ones.
    rows = [(row + [""] * len(head))[: len(head)] for row in rows]
    return pd.DataFrame(rows, columns=head)


def cells(df: pd.DataFrame, pattern: re.Pattern[str] = CELL
          ) -> dict[tuple[str, str, str], tuple[float, float]]:
    out = {}
    for _, row in df.iterrows():
        for col in df.columns:
            if col in ("dataset", "source"):
                continue
            m = pattern.match(str(row[col]))
            if m:
                out[(row["dataset"], row["source"], col)] = (float(m.group(1)),
                                                             float(m.group(2) or 0.0))
    return out


#: The tables of a run compared with ``--against`` (those present in both directories).
RUN_TABLES = ("table_ii", "table_ii_hgb", "table_iii", "table_iv", "table_v", "table_iv_paper",
              "table_v_paper", "privacy", "audit")
#: Columns that name a row rather than hold a number.
KEYS = ("dataset", "source", "mode", "setting", "epsilon", "attack", "epsilon_claimed")


#: Tables II's "synthetic size" (the size sweep's choice, a mean over seeds printed without
#: a std) takes its spread over seeds from the run's results.json (rows of this model).
SIZE_TABLES = {"table_ii": "logreg", "table_ii_hgb": "hgb"}


def size_spread(run: Path, model: str) -> dict[tuple[str, ...], dict[str, str]]:
    """``{(dataset, source): {"synthetic size": std over seeds}}`` from ``results.json``."""
    path = run / "results.json"
    if not path.exists():
        return {}
    rows = pd.DataFrame(json.loads(path.read_text(encoding="utf-8"))["rows"])
    if "synthetic_size" not in rows:
        return {}
    rows = rows[(rows["model"] == model) & rows["synthetic_size"].notna()]
    std = rows.groupby(["dataset", "source"])["synthetic_size"].std(ddof=1)
    return {key: {"synthetic size": f"{value:.6g}"} for key, value in std.dropna().items()}


def spread_of(run: Path, name: str, keys: list[str]) -> dict[tuple[str, ...], Any]:
    """A run's spread of each cell of table ``name``: its ``<name>_std.csv``, or for Table
    II's synthetic size its ``results.json``; empty when it has neither."""
    path = run / f"{name}_std.csv"
    if path.exists():
        spread = pd.read_csv(path, dtype=str).fillna("")
        return {tuple(r[k] for k in keys): r for _, r in spread.iterrows()}
    return size_spread(run, SIZE_TABLES[name]) if name in SIZE_TABLES else {}


def compare_runs(run: Path, against: Path, show_all: bool = False) -> int:
    """Every shared cell of two runs' CSV files (see the module docstring); 0 when all agree."""
    total = agree = identical = 0
    worst: list[tuple[float, str]] = []
    for name in RUN_TABLES:
        old_path, new_path = against / f"{name}.csv", run / f"{name}.csv"
        if not (old_path.exists() and new_path.exists()):
            print(f"{name}: not in both runs, skipped")
            continue
        old = pd.read_csv(old_path, dtype=str).fillna("")
        new = pd.read_csv(new_path, dtype=str).fillna("")
        keys = [k for k in KEYS if k in old.columns and k in new.columns]
        # each run's spread of a cell; the smaller one is the tolerance (a change that made
        # the results noisier must not widen its own)
        noises = [spread_of(d, name, keys) for d in (run, against)]
        floor = 0.0005 if name == "privacy" else 0.05
        old_rows = {tuple(r[k] for k in keys): r for _, r in old.iterrows()}
        new_keys = {tuple(r[k] for k in keys) for _, r in new.iterrows()}
        for key in sorted(set(old_rows) ^ new_keys):  # a row of one run only: a change
            total += 1
            side = "the recorded run" if key in old_rows else "this run"
            worst.append((float("inf"), f"{name:13} {' / '.join(key):40} only in {side} OUTSIDE"))
        for _, row in new.iterrows():
            key = tuple(row[k] for k in keys)
            before = old_rows.get(key)
            if before is None:
                continue
            for col in new.columns:
                if col in keys or col not in old.columns:
                    continue
                m0, m1 = RUN_CELL.match(before[col]), RUN_CELL.match(row[col])
                if m0 is None or m1 is None:
                    continue
                mean0, mean1 = float(m0.group(1)), float(m1.group(1))
                delta = mean1 - mean0
                std0 = float(m0.group(2)) if m0.group(2) else None
                if std0 is None:  # the runs' spread of this cell, where written
                    spreads = [float(m.group(1)) for m in (
                        RUN_CELL.match(str(n[key].get(col, ""))) for n in noises if key in n)
                        if m]
                    std0 = min(spreads) if spreads else None
                same = abs(delta) <= 1e-6 * max(1.0, abs(mean0))
                ok = same or (std0 is not None and abs(delta) <= max(std0, floor))
                total += 1
                agree += ok
                identical += same
                units = abs(delta) / std0 if std0 else (0.0 if same else float("inf"))
                line = (f"{name:13} {' / '.join(key):40} {col:28} before {mean0:10.4f}"
                        f"{f' ± {std0:.3f}' if std0 is not None else ''}  after {mean1:10.4f}"
                        f"  Δ {delta:+.2e} {'ok' if ok else 'OUTSIDE'}")
                worst.append((units if not same else 0.0, line))
                if show_all:
                    print(line)
    worst.sort(key=lambda t: t[0], reverse=True)
    if not show_all and worst and worst[0][0] > 0:
        print("largest differences (in recorded std; inf: a cell without std that moved):")
        for units, line in worst[:10]:
            if units > 0:
                print("  " + line)
    print(f"{agree} of {total} cells agree (within seed noise, or equal where no std is "
          f"recorded); {identical} equal up to 1e-6")
    return 0 if agree == total else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="output directory of 3dgl reproduce")
    parser.add_argument("--readme", type=Path, default=Path(__file__).parent.parent / "README.md")
    parser.add_argument("--against", type=Path, default=None,
                        help="an earlier run's directory: compare every shared table with it")
    parser.add_argument("--all", action="store_true", help="print every cell, not a summary")
    args = parser.parse_args(argv)
    if args.against is not None:
        return compare_runs(args.run, args.against, args.all)
    readme = args.readme.read_text(encoding="utf-8")
    total = agree = 0
    worst: list[tuple[float, str]] = []
    for key, marker in MARKERS.items():
        path = args.run / f"{key}.csv"
        if not path.exists():
            print(f"{path}: missing, skipped")
            continue
        before = cells(readme_table(readme, marker))
        after = cells(pd.read_csv(path, dtype=str).fillna(""), RUN_CELL)
        for cell, (mean0, std0) in before.items():
            if cell not in after:
                continue
            mean1, _ = after[cell]
            delta = mean1 - mean0
            ok = abs(delta) <= max(std0, 0.05)
            total += 1
            agree += ok
            units = abs(delta) / std0 if std0 > 0 else (0.0 if delta == 0 else float("inf"))
            line = (f"{key:13} {cell[0]:13} {cell[1]:24} {cell[2]:15} "
                    f"before {mean0:8.3f} ± {std0:6.3f}  after {mean1:8.3f}  Δ {delta:+7.3f} "
                    f"({units:4.2f} std) {'ok' if ok else 'OUTSIDE'}")
            worst.append((units, line))
            if args.all:
                print(line)
    worst.sort(reverse=True)
    if not args.all:
        print("largest differences, in units of the recorded std over seeds:")
        for _, line in worst[:10]:
            print("  " + line)
    exact = sum(1 for units, _ in worst if units == 0.0)
    print(f"{agree} of {total} cells within max(std, 0.05) of the recorded mean; "
          f"{exact} identical to the printed digits")
    return 0 if agree == total else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fidelity and utility of DDP-βVAE's default mode against DP marginals, MST and AIM.

For each bundled dataset and seed, the paper's stratified 90/10 split. Each generator is
trained on the train split at ε = 1.9, δ = 1e-4 (the peers MST and AIM from PyPI's dpmm in
their own venv, ``make peers``, all of their budget to the model); as many synthetic rows as
train rows are drawn with the released class mix. Reported per generator:

* k-way marginal TVD (``threedgl.evaluation.kway_tvd``: 1-, 2- and 3-way, 16 public bins
  per numeric column, the label as a column) of the synthetic rows against the train
  split; the *floor* row is the test split against the train split;
* train on synthetic, test on real: logistic regression and gradient boosting, accuracy
  on the test split;
* the gradient-boosting discriminator's AUC (real train vs synthetic, 5-fold);
* fit seconds (one process, one thread) and, for ours, sampling throughput.

``--dev`` never reads a test split (how the settings were chosen): the train split is cut
again into 80% to fit and 20% to score; TVD is measured against the fit rows, utility on
the held 20%, and ``--variant NAME=k=v,...`` compares settings of DDP-βVAE (its
parameters, and module constants written ``module.CONSTANT``).

    python benchmarks/fidelity.py [--seeds 3] [--datasets adult,titanic] [--peers mst,aim]
    python benchmarks/fidelity.py --from-csv run.csv aim.csv   # the tables and the bar again
    python benchmarks/fidelity.py --dev --variant 'pairs0=pairs_share=0' --peers ''
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from threedgl import DDPBetaVAE, DPMarginals, datasets
from threedgl.evaluation import discriminator_scores, kway_tvd, utility_scores
from threedgl.experiments.reproduce import split
from threedgl.threads import single_thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import run_peer

ROOT = Path(__file__).resolve().parent.parent
#: The default mode before the fidelity work (issue 18), run from a git worktree.
PREVIOUS = "86d8f56"
PREVIOUS_SCRIPT = """
import sys, time, warnings, json
sys.path.insert(0, sys.argv[1] + "/src")
warnings.simplefilter("ignore")
import pandas as pd
from threedgl import DDPBetaVAE
from threedgl.schema import Schema
from threedgl.threads import single_thread
schema = Schema.read(sys.argv[3])
train = schema.validate(pd.read_csv(sys.argv[2]), require_target=True)
with single_thread():
    t0 = time.perf_counter()
    gen = DDPBetaVAE(random_state=int(sys.argv[5])).fit(train, target=schema.target,
                                                        schema=schema, ledger=False)
    fit_s = time.perf_counter() - t0
gen.sample(len(train), balanced=False, random_state=int(sys.argv[5])).to_csv(sys.argv[4],
                                                                            index=False)
print(json.dumps({"fit_seconds": fit_s}))
"""


def previous_default(ref: str, train: pd.DataFrame, schema: Any, seed: int
                     ) -> tuple[pd.DataFrame, float]:
    """The default mode of commit ``ref`` trained on ``train``: its synthetic rows, fit s."""
    import json
    import subprocess
    import tempfile

    tree = ROOT / ".bench-worktrees" / ref
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
                       check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        schema.write(f"{tmp}/schema.json")
        train.to_csv(f"{tmp}/train.csv", index=False)
        run = subprocess.run([sys.executable, "-c", PREVIOUS_SCRIPT, str(tree),
                              f"{tmp}/train.csv", f"{tmp}/schema.json", f"{tmp}/out.csv",
                              str(seed)], check=True, capture_output=True, text=True)
        info = json.loads(run.stdout.strip().splitlines()[-1])
        synthetic = schema.validate(pd.read_csv(f"{tmp}/out.csv"), require_target=True)
    return synthetic, float(info["fit_seconds"])

OURS = "DDP-βVAE"
MARGINALS = "DP marginals"
NO_DP = "β-VAE, no DP"
FLOOR = "floor (test vs train)"
TVD = ("tvd_1way", "tvd_2way", "tvd_3way")
THROUGHPUT_ROWS = 100_000


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name=key=value,key=value`` → (name, {key: value})."""
    name, _, rest = text.partition("=")
    out: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        out[key] = eval(value, {"math": math})  # a developer's command line
    return name, out


class Patched:
    """Set module constants (``module.CONSTANT`` keys) for the duration of a fit."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = {k: v for k, v in settings.items() if "." in k}
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> None:
        for key, value in self.settings.items():
            mod_name, _, const = key.rpartition(".")
            mod = importlib.import_module(f"threedgl.{mod_name}")
            self.saved.append((mod, const, getattr(mod, const)))
            setattr(mod, const, value)

    def __exit__(self, *exc: object) -> None:
        for mod, const, value in reversed(self.saved):
            setattr(mod, const, value)


def run(name: str, seed: int, makers: dict[str, Callable[[int], Any]], peers: list[str],
        dev: bool, discriminator: bool, peer_timeout: float, previous: str | None
        ) -> list[dict[str, Any]]:
    ds = datasets.load(name)
    train, test = split(ds.frame, ds.target, seed)
    if dev:  # the test split is never read
        train, test = train_test_split(train, test_size=0.2, stratify=train[ds.target],
                                       random_state=seed)
        train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    rows: list[dict[str, Any]] = []

    def score(source: str, table: pd.DataFrame, fit_s: float = math.nan, **extra: Any) -> None:
        row: dict[str, Any] = {"dataset": name, "seed": seed, "source": source,
                               "fit_s": fit_s, **extra}
        row.update(kway_tvd(train, table, ds.schema))
        for model in ("logreg", "hgb"):
            s = utility_scores(table, test, ds.schema, model=model,
                               positive_label=ds.positive_label, random_state=seed)
            row[f"{model}_acc"] = 100 * s["accuracy"]
        if discriminator:
            d = discriminator_scores(train, table.sample(len(train), replace=len(table) < len(train),
                                                         random_state=seed),
                                     ds.schema, model="hgb", folds=5, random_state=seed)
            row["hgb_disc_auc"] = 100 * d["auc"]
        rows.append(row)

    floor = kway_tvd(train, test, ds.schema)
    rows.append({"dataset": name, "seed": seed, "source": FLOOR, **floor})
    for label, make in makers.items():
        gen = make(seed)
        with warnings.catch_warnings(), single_thread():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            gen.fit(train, target=ds.target, schema=ds.schema, ledger=False)
            fit_s = time.perf_counter() - t0
            synthetic = gen.sample(len(train), balanced=False, random_state=seed)
            t0 = time.perf_counter()  # throughput on a large draw (not the fixed costs)
            gen.sample(THROUGHPUT_ROWS, random_state=seed)
            rate = THROUGHPUT_ROWS / max(time.perf_counter() - t0, 1e-9)
        score(label, synthetic, fit_s, sample_rows_s=rate)
    if previous:
        synthetic, fit_s = previous_default(previous, train, ds.schema, seed)
        score(f"{OURS} @{previous}", synthetic, fit_s)
    for method in peers:
        synthetic, info = run_peer(method, train, ds.schema, 1.9, 1e-4, seed=seed,
                                   rows=len(train), timeout=peer_timeout)
        if synthetic is None:
            print(f"  {method} on {name} seed {seed}: {info.get('status')} "
                  f"({info.get('reason', '')})", flush=True)
            continue
        score(method.upper(), synthetic, float(info.get("fit_seconds", math.nan)))
    return rows


def summary(df: pd.DataFrame) -> str:
    cols = [c for c in (*TVD, "logreg_acc", "hgb_acc", "hgb_disc_auc", "fit_s") if c in df]
    g = df.groupby(["dataset", "source"], sort=False)[cols]
    mean, std = g.mean(), g.std(ddof=1)
    lines = ["| dataset | source | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for (dataset, source), row in mean.iterrows():
        cells = []
        for c in cols:
            v, s = row[c], std.loc[(dataset, source), c]
            digits = 3 if c.startswith("tvd") else 1
            cells.append("" if pd.isna(v) else f"{v:.{digits}f}"
                         + ("" if pd.isna(s) or c == "fit_s" else f" ± {s:.{digits}f}"))
        lines.append(f"| {dataset} | {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def criteria(df: pd.DataFrame, previous: str | None) -> list[str]:
    """The issue's bar, PASS or FAIL, from the mean over seeds."""
    mean = df.groupby(["dataset", "source"], sort=False).mean(numeric_only=True)
    names = list(dict.fromkeys(df.dataset))
    old = f"{OURS} @{previous}" if previous else None

    def get(name: str, source: str, col: str) -> float:
        try:
            return float(mean.loc[(name, source), col])
        except KeyError:
            return math.nan

    def line(ok: bool, text: str) -> str:
        return f"[{'PASS' if ok else 'FAIL'}] {text}"

    out = []
    d1 = {n: get(n, OURS, "tvd_1way") - get(n, MARGINALS, "tvd_1way") for n in names}
    out.append(line(all(v <= 0 for v in d1.values()),
                    "1-way TVD ≤ DP marginals on every dataset: "
                    + ", ".join(f"{n} {v:+.3f}" for n, v in d1.items())))
    if "adult" in names and not math.isnan(get("adult", "MST", "tvd_1way")):
        gap = get("adult", OURS, "tvd_1way") - get("adult", "MST", "tvd_1way")
        out.append(line(gap <= 0.005, f"1-way TVD within 0.005 of MST on Adult: {gap:+.3f}"))
    for k in ("tvd_2way", "tvd_3way"):
        vs_mst = {n: get(n, OURS, k) - get(n, "MST", k) for n in names}
        known = {n: v for n, v in vs_mst.items() if not math.isnan(v)}
        wins = [n for n, v in known.items() if v <= 0]
        if known:
            out.append(line(len(wins) >= min(3, len(known)) and ("adult" in wins or
                                                                  "adult" not in known),
                            f"{k} ≤ MST on {len(wins)} of {len(known)} (needs 3, Adult among "
                            "them): " + ", ".join(f"{n} {v:+.3f}" for n, v in known.items())))
        vs_m = {n: get(n, OURS, k) - get(n, MARGINALS, k) for n in names}
        out.append(line(all(v <= 0 for v in vs_m.values()),
                        f"{k} ≤ DP marginals on every dataset: "
                        + ", ".join(f"{n} {v:+.3f}" for n, v in vs_m.items())))
    floors = {n: get(n, NO_DP, "tvd_2way") - get(n, FLOOR, "tvd_2way")
              for n in ("adult", "wine-quality") if n in names}
    out.append(line(all(v <= 0.01 for v in floors.values()),
                    "without DP, 2-way TVD within 0.01 of the floor on Adult and Wine: "
                    + ", ".join(f"{n} {v:+.3f}" for n, v in floors.items())))
    if old:
        for model in ("hgb_acc", "logreg_acc"):
            gaps = {n: get(n, OURS, model) - get(n, old, model) for n in names}
            out.append(line(all(v >= -0.5 for v in gaps.values()),
                            f"{model} within 0.5 of {old} or better: "
                            + ", ".join(f"{n} {v:+.2f}" for n, v in gaps.items())))
        if "hgb_disc_auc" in df:
            gaps = {n: get(n, OURS, "hgb_disc_auc") - get(n, old, "hgb_disc_auc") for n in names}
            out.append(line(all(v < 0 for v in gaps.values()),
                            f"HGB discriminator AUC below {old}'s (the goal): "
                            + ", ".join(f"{n} {v:+.2f}" for n, v in gaps.items())))
    lr = {n: get(n, OURS, "logreg_acc") - get(n, MARGINALS, "logreg_acc") for n in names}
    out.append(line(all(v >= -1 for v in lr.values()), "LR accuracy ≥ DP marginals − 1: "
                    + ", ".join(f"{n} {v:+.2f}" for n, v in lr.items())))
    fits = {n: get(n, OURS, "fit_s") for n in names}
    out.append(line(all(v <= 15 for v in fits.values()), "fit ≤ 15 s per generator: "
                    + ", ".join(f"{n} {v:.1f} s" for n, v in fits.items())))
    rate = df[df.source == OURS]["sample_rows_s"].min() if "sample_rows_s" in df else math.nan
    out.append(line(rate >= 50_000, f"sampling ≥ 50,000 rows/s: slowest {rate:,.0f} rows/s"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--peers", default="mst,aim", help="comma-separated; '' for none")
    parser.add_argument("--peer-timeout", type=float, default=600.0)
    parser.add_argument("--dev", action="store_true", help="train split only (see above)")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=param=value,... (DDP-βVAE parameters or module.CONSTANT)")
    parser.add_argument("--no-ours", action="store_true",
                        help="only the floor, the baselines, the previous default and the peers")
    parser.add_argument("--no-baselines", action="store_true",
                        help="without DP marginals and the β-VAE without DP")
    parser.add_argument("--discriminator", action="store_true",
                        help="also the gradient-boosting discriminator's AUC")
    parser.add_argument("--previous", default=PREVIOUS,
                        help="also the default mode of this commit (a git worktree under "
                             ".bench-worktrees/); '' for none")
    parser.add_argument("--csv", default=None)
    parser.add_argument("--from-csv", nargs="+", default=None,
                        help="print the tables and the bar from earlier runs' CSVs instead")
    args = parser.parse_args()
    if args.from_csv:
        df = pd.concat([pd.read_csv(f) for f in args.from_csv], ignore_index=True)
        df = df.drop_duplicates(subset=["dataset", "seed", "source"], keep="first")
        print(summary(df))
        print()
        for text in criteria(df, args.previous or None):
            print(text)
        return

    def ours(settings: dict[str, Any]) -> Callable[[int], Any]:
        params = {k: v for k, v in settings.items() if "." not in k}

        class Variant(DDPBetaVAE):  # constants patched around fitting and sampling
            def fit(self, *a: Any, **kw: Any) -> Any:
                with Patched(settings):
                    return super().fit(*a, **kw)

            def sample(self, *a: Any, **kw: Any) -> Any:
                with Patched(settings):
                    return super().sample(*a, **kw)

        return lambda seed: Variant(random_state=seed, **params)

    makers: dict[str, Callable[[int], Any]] = {}
    for text in [] if args.no_ours else (args.variant or [f"{OURS}="]):
        label, settings = parse_variant(text)
        makers[label] = ours(settings)
    if not args.no_baselines:
        makers[MARGINALS] = lambda seed: DPMarginals(random_state=seed)
        makers[NO_DP] = lambda seed: DDPBetaVAE(epsilon=math.inf, random_state=seed)
    peers = [p for p in args.peers.split(",") if p]
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for name in args.datasets.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += run(name, seed, makers, peers, args.dev, args.discriminator,
                        args.peer_timeout, args.previous or None)
            print(f"{name} seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
            if args.csv:
                pd.DataFrame(rows).to_csv(args.csv, index=False)
    df = pd.DataFrame(rows)
    print()
    print(summary(df))
    if OURS in set(df.source) and not args.dev:
        print()
        for text in criteria(df, args.previous or None):
            print(text)
    print(f"\n{'dev: train splits only; ' if args.dev else ''}{args.seeds} seed(s), "
          f"{time.perf_counter() - start:.0f} s")
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()

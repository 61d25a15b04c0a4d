"""The pool's quality bar (issue 11): 10 stratified clients, ε = 1.9, ours against DP marginals.

For each bundled dataset: ``3dgl simulate DATASET --clients 10`` with our DDP-βVAE (the
default mode) and the same simulation (same splits and seeds) with DP marginals generators;
Fold-Test (pool rows, size selected on the client's own rows, scored on the external test
set) against local-only (logistic regression on the client's rows), averaged over the
clients and seeds. Prints one table and the criteria with PASS or FAIL:

* no dataset's pool does worse than the DP marginals pool (Fold-Test accuracy);
* Fold-Test accuracy gain ≥ 0 on Adult and Wine, ≥ −1 on Titanic;
* no collapse: Fold-Test F1 ≥ local F1 − 5 on Titanic, Mushrooms, Adult and Wine.

    python benchmarks/federation_quality.py [--seeds 3] [--datasets titanic,adult] [--paper]
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

from threedgl import datasets
from threedgl.federation import simulate

RUNS = {
    "DDP-βVAE": {"generator": "ddp-betavae"},
    "DP marginals": {"generator": "dp-marginals"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--paper", action="store_true", help="also the paper's model")
    args = parser.parse_args()
    runs = dict(RUNS)
    if args.paper:
        runs["DDP-βVAE paper"] = {"mode": "paper"}
    rows = []
    start = time.perf_counter()
    for name in args.datasets.split(","):
        for label, kwargs in runs.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = simulate(name, clients=10, seeds=args.seeds, workers=args.workers,
                                  **kwargs)
            s = result.summary()
            rows.append({
                "dataset": name, "generator": label,
                "local acc": s.loc["local_test", "accuracy"], "local f1": s.loc["local_test", "f1"],
                "fold-test acc": s.loc["fold_test", "accuracy"],
                "fold-test f1": s.loc["fold_test", "f1"],
                "acc gain": s.loc["fold_test", "accuracy_gain"],
                "f1 gain": s.loc["fold_test", "f1_gain"],
                "own+pool acc gain": s.loc["real_plus_pool", "accuracy_gain"],
                "seconds": time.perf_counter() - t0,
            })
            print(f"{name} {label}: {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    print()
    print(markdown(df))
    print()
    for line in criteria(df):
        print(line)
    print(f"\n{args.seeds} seed(s), {time.perf_counter() - start:.0f} s")


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v)
                                        for v in row) + " |")
    return "\n".join(lines)


def criteria(df: pd.DataFrame) -> list[str]:
    ours = df[df.generator == "DDP-βVAE"].set_index("dataset")
    marg = df[df.generator == "DP marginals"].set_index("dataset")
    names = list(ours.index)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    diff = {n: ours.loc[n, "fold-test acc"] - marg.loc[n, "fold-test acc"] for n in names}
    out = [f"[{verdict(all(d >= 0 for d in diff.values()))}] pool of DDP-βVAE ≥ pool of DP "
           "marginals (Fold-Test accuracy): " + ", ".join(f"{n} {d:+.2f}" for n, d in diff.items())]
    need = {"adult": 0.0, "wine-quality": 0.0, "titanic": -1.0}
    gains = {n: ours.loc[n, "acc gain"] for n in need if n in names}
    out.append(f"[{verdict(all(g >= need[n] for n, g in gains.items()))}] Fold-Test accuracy gain "
               "≥ 0 on Adult and Wine, ≥ −1 on Titanic: "
               + ", ".join(f"{n} {g:+.2f}" for n, g in gains.items()))
    keep = [n for n in ("titanic", "mushrooms", "adult", "wine-quality") if n in names]
    f1 = {n: ours.loc[n, "f1 gain"] for n in keep}
    out.append(f"[{verdict(all(g >= -5 for g in f1.values()))}] no collapse, Fold-Test F1 ≥ local "
               "F1 − 5: " + ", ".join(f"{n} {g:+.2f}" for n, g in f1.items()))
    return out


if __name__ == "__main__":
    main()

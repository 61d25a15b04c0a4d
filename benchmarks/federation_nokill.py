"""Issue 21's first bar: no split of a bundled dataset into 5 to 20 clients kills a run.

Every bundled dataset × {stratified, dirichlet:0.5, dirichlet:0.1, quantity:0.3} × {5, 20}
clients, one seed, through :func:`threedgl.federation.simulate` (local engine, default
mode) with a light evaluation (the scenarios of SPEC §4 at a fraction of their cost: what
is measured is that the run ends, not the scores). One CSV row per run, written as soon as
it ends: whether it finished, how many participants were left without a generator, the
Fold-Test accuracy and the seconds; an exception is recorded, never raised.

    python benchmarks/federation_nokill.py benchmarks/results/federation-nokill.csv
"""

from __future__ import annotations

import csv
import sys
import time
import warnings

from threedgl.federation import EvaluationOptions, simulate

LIGHT = {"pool_factor": 4, "pool_min_rows": 400, "cv_folds": 5, "rpp_cv_folds": 3,
         "class_mix": "balanced"}
DATASETS = ("titanic", "breast-cancer", "wine-quality", "mushrooms", "adult")
SPLITS = ("stratified", "dirichlet:0.5", "dirichlet:0.1", "quantity:0.3")


def main(out: str) -> int:
    warnings.simplefilter("ignore")
    failed = 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "split", "clients", "ok", "without_generator", "fold_test",
                         "seconds", "error"])
        for name in DATASETS:
            for clients in (5, 20):
                for split in SPLITS:
                    t = time.perf_counter()
                    try:
                        result = simulate(name, clients=clients, split=split, seeds=1,
                                          options=EvaluationOptions(**LIGHT))
                        accuracy = float(result.summary().loc["fold_test", "accuracy"])
                        row = [name, split, clients, 1, len(result.without_generator),
                               round(accuracy, 2), round(time.perf_counter() - t, 1), ""]
                    except Exception as exc:  # the bar: this must not happen
                        failed += 1
                        row = [name, split, clients, 0, "", "", round(time.perf_counter() - t, 1),
                               f"{type(exc).__name__}: {exc}"[:300]]
                    writer.writerow(row)
                    fh.flush()
                    print(row, flush=True)
    print(f"{failed} run(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "federation-nokill.csv"))

"""The one-run privacy audit (``3dgl audit``, issue 19) of the default DDP-βVAE, and its bar.

For each bundled dataset (the whole table, its declared schema) and run: canaries as many
as the rows up to 1,000, each inserted with probability 1/2, one training, the lower bound
at 95 % confidence. Then ε = 10 on every dataset, and without DP on 200 rows of Titanic
(the audit must have power: a bound of at least 1).

    python benchmarks/audit.py [--runs 3] [--datasets titanic,adult]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

from threedgl import DDPBetaVAE, datasets
from threedgl.evaluation.audit import audit_generator


def run(name: str, epsilon: float, seed: int, rows: int | None = None) -> dict:
    ds = datasets.load(name)
    frame = ds.frame.sample(rows, random_state=seed) if rows else ds.frame
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, _ = audit_generator(lambda s: DDPBetaVAE(epsilon=epsilon, random_state=s),
                                    frame, ds.schema, random_state=seed,
                                    # public data: a reproducible training seed
                                    training_seed=int(np.random.SeedSequence(seed)
                                                      .generate_state(2)[1]))
    return {"dataset": name if rows is None else f"{name} ({rows} rows)", "seed": seed,
            **result.to_dict(), "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    args = parser.parse_args()
    names = args.datasets.split(",")
    results = []
    for epsilon in (1.9, 10.0):
        for name in names:
            for seed in range(args.runs):
                results.append(run(name, epsilon, seed))
                print(results[-1], flush=True)
    power = [run("titanic", math.inf, seed, rows=200) for seed in range(args.runs)]
    results += power
    print("\n| dataset | claimed ε | canaries | lower bounds (95 %), one per run | correct / guesses |")
    print("|---|---|---|---|---|")
    seen: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        seen.setdefault((r["dataset"], str(r["epsilon_claimed"])), []).append(r)
    for (name, eps), rs in seen.items():
        bounds = " / ".join(f"{r['epsilon_lower_bound']:.2f}" for r in rs)
        hits = " / ".join(f"{r['correct']}/{r['guesses']}" for r in rs)
        claimed = eps if eps == "inf" else f"{float(eps):.3g}"
        print(f"| {name} | {claimed} | {rs[0]['canaries']} | {bounds} | {hits} |")
    print()
    for target in (1.9, 10.0):
        rs = [r for r in results if r["epsilon_claimed"] != "inf"
              and abs(float(r["epsilon_claimed"]) - target) < 0.05 * target]
        worst = max(r["epsilon_lower_bound"] for r in rs)
        print(f"[{'PASS' if worst <= target else 'FAIL'}] at ε = {target:g}, every lower bound "
              f"≤ {target:g}: highest {worst:.3f} of {len(rs)} audits")
    best = [r["epsilon_lower_bound"] for r in power]
    print(f"[{'PASS' if max(best) >= 1 else 'FAIL'}] without DP on 200 rows, a bound ≥ 1 "
          f"(the audit has power): {' / '.join(f'{b:.2f}' for b in best)}")


if __name__ == "__main__":
    main()

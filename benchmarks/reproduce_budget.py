"""Where the CPU of `3dgl reproduce` goes: every task of one seed, profiled (issue 23).

    python benchmarks/reproduce_budget.py              # every task of `--seeds 1`, 2 processes
    python benchmarks/reproduce_budget.py --stack      # and DP-Adam's cost per model in a stack
    python benchmarks/reproduce_budget.py --datasets titanic --no-privacy   # a quick look

Runs each task of `3dgl reproduce --seeds 1` under cProfile in a pool of ``--jobs`` worker
processes (one thread each, the costliest first; a simulation is one task here, where the
reproduction spreads its clients over the pool, so only the CPU seconds compare):
the parts of Tables II and III (the real data's scores, each generator's), the 3DGL
simulations of Tables IV and V (10 clients, one seed, both modes), the privacy table's
attacks and the audit (seed 0, at most 6,000 rows). It prints, per part, the CPU seconds
of the tasks and how much of them went where: the generators' training (of which DP-Adam's
steps, its Gaussian noise, the prior's fit to the DP measurements, the noise calibration)
and the rest (scikit-learn's fits, the attacks, ``Schema.validate``, sampling). An "of
which" line is inside the line above it; the attacks' line holds their scikit-learn fits
and sampling, which the lines for those count too. cProfile adds a quarter to a third
(more to Python-heavy code), so the shares are what to read. Not profiled: the parent's
work (the report, the plots; a few seconds).

``--stack`` also times DP-Adam on stacks of M models trained in lockstep (the way one
generator's per-class models train), per model and step, against M = 2 (a binary
table's generator) measured in the same run: how much of a step is per-call overhead
that more models per stack would share.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

PARTS = ("Tables II/III", "Tables IV/V", "privacy attacks", "privacy audit")

#: (label, file suffix, function names): each label's seconds are the functions' cumulative
#: time (none of a label's functions calls another of them)
WHERE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("generators' training (fit)", "threedgl/model/base.py", ("fit",)),
    ("  of which DP-Adam's steps", "model/training.py", ("run_stack",)),
    ("    of which (in the steps) the Gaussian noise", "privacy/dp_adam.py", ("_normal",)),
    ("  of which the prior's fit to the DP measurements", "model/matching.py", ("fit_prior",)),
    ("  of which the noise calibration and ε accounting", "privacy/accounting.py",
     ("calibrate_noise_multiplier", "calibrate_at_order", "compute_epsilon")),
    ("scikit-learn fits (utility, sweeps, discriminators, LOGAN)", "sklearn/base.py",
     ("wrapper",)),
    ("membership-inference attacks (their fits included)", "evaluation/attacks.py",
     ("run_attacks",)),
    ("Schema.validate", "schema/schema.py", ("validate",)),
    ("sampling synthetic rows (generators and pools)", "threedgl/model/base.py",
     ("sample_classes",)),
)


def tasks(names: list[str], privacy: bool) -> list[tuple[str, str, str]]:
    from threedgl.experiments.reproduce import GENERATORS, REAL

    out = [("Tables II/III", n, part) for n in names for part in (REAL, *GENERATORS)]
    out += [("Tables IV/V", n, mode) for n in names for mode in ("anchored", "paper")]
    if privacy:
        out += [(p, n, "") for n in names for p in ("privacy attacks", "privacy audit")]
    return out


def run_task(task: tuple[str, str, str]) -> tuple[tuple[str, str, str], float, dict[str, float]]:
    """(task, CPU s, seconds per WHERE label) of one task, in this worker process."""
    from threedgl.experiments.reproduce import ReproduceConfig, run_dataset
    from threedgl.experiments.runs import _privacy_task
    from threedgl.federation.simulation import simulate
    from threedgl.threads import limit_threads

    part, name, what = task
    profile = cProfile.Profile()
    start = time.process_time()
    with limit_threads(1, torch=True):
        profile.enable()
        if part == "Tables II/III":
            run_dataset(name, 0, ReproduceConfig(datasets=[name], seeds=1), None, [what])
        elif part == "Tables IV/V":
            simulate(name, mode=what, clients=10, seeds=1, workers=1)
        else:
            kind = "privacy" if part == "privacy attacks" else "audit"
            _privacy_task(kind, name, {"seed": 0, "quick": False, "max_rows": 6000})
        profile.disable()
    cpu = time.process_time() - start
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    where = {label: sum(v[3] for (file, _, func), v in stats.items()
                        if file.endswith(suffix) and func in functions)
             for label, suffix, functions in WHERE}
    return task, cpu, where


def budget(names: list[str], jobs: int, privacy: bool) -> None:
    from threedgl import datasets
    from threedgl.experiments.reproduce import mp_context
    from threedgl.threads import init_worker

    todo = tasks(names, privacy)
    weight = {"Tables II/III": 1.0, "Tables IV/V": 4.0, "privacy attacks": 3.0,
              "privacy audit": 1.5}
    todo.sort(key=lambda t: -weight[t[0]] * min(len(datasets.load(t[1]).frame), 6000))
    cpu: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    where: dict[str, dict[str, float]] = {p: {w[0]: 0.0 for w in WHERE} for p in PARTS}
    wall = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp_context(),
                             initializer=init_worker) as pool:
        futures = [pool.submit(run_task, t) for t in todo]
        for future in as_completed(futures):
            (part, name, what), seconds, split = future.result()
            cpu[part] += seconds
            for label, spent in split.items():
                where[part][label] += spent
            print(f"  {part:16} {name:14} {what:24} {seconds:6.1f} CPU s", flush=True)
    wall = time.perf_counter() - wall
    parts = [p for p in PARTS if cpu[p]]
    total = sum(cpu.values())
    print(f"\n{len(todo)} tasks of `3dgl reproduce --seeds 1` ({', '.join(names)}), "
          f"{jobs} processes, under cProfile: {total:.0f} CPU s, wall {wall:.0f} s\n")
    print(f"{'CPU s (share of the part)':60}" + "".join(f"{p:>18}" for p in parts)
          + f"{'all':>18}")
    print(f"{'the tasks':60}" + "".join(f"{cpu[p]:18.0f}" for p in parts) + f"{total:18.0f}")
    for label, *_ in WHERE:
        cells = [f"{where[p][label]:8.0f} ({where[p][label] / cpu[p]:4.0%})" for p in parts]
        every = sum(where[p][label] for p in parts)
        print(f"{label:60}" + "".join(f"{c:>18}" for c in cells)
              + f"{f'{every:8.0f} ({every / total:4.0%})':>18}")


def stack(steps: int = 150) -> None:
    """DP-Adam per model and step in stacks of M models, against M = 2, same run."""
    import numpy as np

    from threedgl.model.training import train_stack
    from threedgl.threads import limit_threads

    # shaped like a default-mode class model of an Adult client: 1,600 rows, 14 columns
    # of 8 bins (112 one-hot outputs: hidden (128, 64), latent 7, batch 256; anchored.py)
    n, width, blocks, batch = 1600, 8, 14, 256
    layout = [("categorical", i * width, (i + 1) * width) for i in range(blocks)]
    rng = np.random.default_rng(0)

    def rows() -> np.ndarray:
        a = np.zeros((n, blocks * width), np.float32)
        for i in range(blocks):
            a[np.arange(n), i * width + rng.integers(0, width, n)] = 1.0
        return a

    def seconds(m: int, k: int) -> float:
        arrays = [rows() for _ in range(m)]
        start = time.perf_counter()
        train_stack(arrays, layout, hidden=(128, 64), latent=7, beta=0.5, learning_rate=5e-3,
                    noise_multipliers=[1.0] * m, sample_rates=[batch / n] * m, steps=[k] * m,
                    expected_batch_sizes=[float(batch)] * m, max_grad_norm=1.0, epochs=1,
                    seed=0)
        return time.perf_counter() - start

    per_model: dict[int, float] = {}
    with limit_threads(1, torch=True):
        for m in (2, 1, 4, 8, 20):  # a step's time: the difference of two runs (no set-up)
            per_model[m] = (seconds(m, steps) - seconds(m, steps // 5)) / (steps - steps // 5) / m
    print(f"\nDP-Adam per model and step, stacks of M models ({n} rows each, batch {batch}, "
          f"{blocks * width} one-hot outputs, hidden (128, 64), one thread):")
    for m in sorted(per_model):
        print(f"  M = {m:2d}: {per_model[m] * 1e3:5.2f} ms per model and step "
              f"({per_model[m] * m * 1e3:5.2f} ms a step), {per_model[2] / per_model[m]:.2f}x "
              "vs M = 2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from threedgl import datasets

    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-privacy", action="store_true", help="skip the attacks and audit")
    parser.add_argument("--stack", action="store_true", help="also time DP-Adam per stack size")
    parser.add_argument("--stack-only", action="store_true", help="only the --stack timings")
    args = parser.parse_args(argv)
    if not args.stack_only:
        budget(args.datasets.split(","), args.jobs, not args.no_privacy)
    if args.stack or args.stack_only:
        stack()
    return 0


if __name__ == "__main__":
    sys.exit(main())

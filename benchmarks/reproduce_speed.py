"""Speed of `3dgl reproduce` against a baseline commit, both measured in the same run.

    python benchmarks/reproduce_speed.py --baseline f7cb010 --datasets adult,wine-quality

The baseline's ``src/`` is extracted with ``git archive`` into a temporary directory and run
with the same interpreter and packages (``PYTHONPATH``), so only the code differs. Each
side runs ``3dgl reproduce --seeds 1 --no-federation --no-privacy`` (Tables II and III) on
the given datasets, alternating baseline and current ``--repeats`` times. Printed: wall
time and CPU time (user + system of the whole process tree) of each run, and the ratios
baseline / current. CPU time is the fairer figure on a shared machine (it does not grow
when other jobs take the cores); wall time is what a user waits. The current side runs
with ``--jobs 1`` unless ``--jobs`` is given, so the CPU comparison is like for like.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(src: Path, args: list[str], out: Path) -> tuple[float, float]:
    """(wall s, CPU s) of ``python -m threedgl.cli.main reproduce ...`` with ``src`` first."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "threedgl.cli.main", "reproduce", *args,
                    "--out", str(out)], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="f7cb010", help="git revision to compare with")
    parser.add_argument("--datasets", default="wine-quality")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="--jobs of the current side")
    args = parser.parse_args(argv)
    common = ["--datasets", args.datasets, "--seeds", "1", "--no-federation", "--no-privacy"]
    with tempfile.TemporaryDirectory(prefix="threedgl-speed-") as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        sides = {
            f"baseline {args.baseline}": (base / "src", common),
            "current": (ROOT / "src", [*common, "--jobs", str(args.jobs)]),
        }
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        for i in range(args.repeats):
            for name, (src, extra) in sides.items():
                wall, cpu = run(src, extra, Path(tmp) / f"out-{i}-{name.split()[0]}")
                times[name].append((wall, cpu))
                print(f"{name:22} run {i + 1}: wall {wall:7.1f} s, CPU {cpu:7.1f} s", flush=True)
    (b_wall, b_cpu), (c_wall, c_cpu) = (
        tuple(min(t[k] for t in v) for k in (0, 1)) for v in times.values()
    )
    print(f"datasets {args.datasets}, Tables II and III, one seed (best of {args.repeats}):")
    print(f"baseline vs current, wall: {b_wall / c_wall:.2f}x  ({b_wall:.0f} s → {c_wall:.0f} s)")
    print(f"baseline vs current, CPU:  {b_cpu / c_cpu:.2f}x  ({b_cpu:.0f} s → {c_cpu:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

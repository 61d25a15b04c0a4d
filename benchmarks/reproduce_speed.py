"""Speed of `3dgl reproduce` against a baseline commit, both measured in the same run.

    python benchmarks/reproduce_speed.py --baseline f7cb010 --datasets adult,wine-quality
    python benchmarks/reproduce_speed.py --full             # the README's figure (issue 23)

``--full`` measures what the README records: ``git clone`` of this repository's HEAD into
a temporary directory (a fresh clone), ``make .venv/.threedgl-installed`` there (timed on
its own: pip's cache makes it vary), then ``make reproduce`` (5 datasets × 5 seeds, every
table). It prints the wall time of the whole run and of each part (Tables II and III,
Tables IV and V, the privacy tables) with the machine's 1-minute load average during each
(sampled by the run itself: ``results.json``'s ``run``; the run's own two workers count
about 2), then compares every table with the recorded run (``compare_tables.py
--against``, default ``benchmarks/results/reproduce-56ce257``). ``--seeds 1`` times
``3dgl reproduce --seeds 1`` in the clone instead.

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


def full_run(seeds: int | None, against: Path, keep: Path | None) -> int:
    """``make reproduce`` (or ``3dgl reproduce --seeds N``) in a fresh clone, timed."""
    import json
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="threedgl-fresh-"))
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    t0 = time.perf_counter()
    subprocess.run(["make", ".venv/.threedgl-installed"], cwd=clone, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    install = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    if seeds is None:
        command, out = ["make", "reproduce"], clone / "runs" / "full"
    else:
        out = clone / "runs" / f"seeds-{seeds}"
        command = [str(clone / ".venv" / "bin" / "3dgl"), "reproduce", "--seeds", str(seeds),
                   "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(command, cwd=clone, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    run = json.loads((out / "results.json").read_text())["run"]
    print(f"fresh clone of {head}; install {install:.0f} s (not counted); "
          f"load average before the run {load_before:.2f}; {os.cpu_count()} CPUs")
    print(f"{' '.join(command[-4:] if seeds else command)}: wall {wall / 60:.1f} min")
    for part, seconds in run["seconds"].items():
        load = run["load_average"].get(part, {})
        where = f"  (load average mean {load['mean']:.1f}, max {load['max']:.1f})" if load else ""
        print(f"  {part:18} {seconds / 60:5.1f} min{where}")
    status = 0
    if seeds is None or seeds >= 5:
        status = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_tables.py"),
                                 str(out), "--against", str(against)]).returncode
    if keep is not None:
        shutil.copytree(out, keep, dirs_exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="make reproduce in a fresh clone (see above)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="with --full: 3dgl reproduce --seeds N instead of make reproduce")
    parser.add_argument("--against", type=Path,
                        default=ROOT / "benchmarks" / "results" / "reproduce-56ce257",
                        help="with --full: the recorded run to compare the tables with")
    parser.add_argument("--keep", type=Path, default=None,
                        help="with --full: copy the run's outputs here")
    parser.add_argument("--baseline", default="f7cb010", help="git revision to compare with")
    parser.add_argument("--datasets", default="wine-quality")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="--jobs of the current side")
    args = parser.parse_args(argv)
    if args.full:
        return full_run(args.seeds, args.against, args.keep)
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

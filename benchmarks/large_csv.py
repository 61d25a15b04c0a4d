"""`3dgl train` on a large CSV: wall time, peak RSS and progress, against a baseline commit.

    python benchmarks/large_csv.py --rows 3600000 --baseline-rows 600000 --baseline 56ce257

Builds the CSVs (the bundled Adult table resampled to ``--rows`` rows, numeric columns
jittered so that values are not all repeats; written to ``--dir``), then runs ``3dgl train
DATA -t income --seed 0`` in a subprocess on each, with a fresh ledger, under a
pseudo-terminal (so the progress bars draw as they do for a user) and
``/usr/bin/time -v`` (peak RSS). Printed per run: wall time, CPU time (user + system: the
fairer figure on a shared machine), peak RSS, and what the DP-Adam bars showed while it
ran: how many different step counts ("1234/5292") a user saw, and when the first count
above zero appeared. The baseline commit's
``src/`` is extracted with ``git archive`` and run with the same interpreter
(``PYTHONPATH``), on ``--baseline-rows`` rows (the full size does not fit: see
benchmarks/results/large-csv.txt); the current code runs on both sizes, so the ratio is
like for like.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 400_000
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")  # colours and cursor moves of the bars


def build_csv(rows: int, path: Path, seed: int = 0) -> Path:
    """Adult resampled to ``rows`` rows (with replacement), numeric columns jittered."""
    if path.exists():
        return path
    from threedgl import datasets

    ds = datasets.load("adult")
    base = ds.frame
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".part")
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        part = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        for c in part.columns:
            if c == ds.target or not pd.api.types.is_numeric_dtype(part[c]):
                continue
            v = part[c].to_numpy()
            lo, hi = v.min(), v.max()
            jitter = rng.normal(0, 0.02 * (hi - lo + 1), n) * (rng.random(n) < 0.3)
            part[c] = np.clip(np.rint(v + jitter), lo, hi).astype(np.int64)
        part.to_csv(tmp, mode="w" if done == 0 else "a", header=done == 0, index=False)
        done += n
    tmp.replace(path)
    return path


def run_train(src: Path, data: Path, workdir: Path, name: str) -> dict[str, float | str]:
    """Train on ``data`` with the code in ``src``: wall and CPU s, peak RSS MB, progress."""
    out = workdir / f"{name}.3dgl"
    timing = workdir / f"{name}.time"
    env = {**os.environ, "PYTHONPATH": str(src), "THREEDGL_LEDGER": str(workdir / f"{name}.json"),
           "COLUMNS": "100", "TERM": "xterm"}
    cmd = ["/usr/bin/time", "-v", "-o", str(timing), sys.executable, "-m", "threedgl.cli.main",
           "train", str(data), "-t", "income", "-o", str(out), "--seed", "0"]
    master, slave = pty.openpty()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    first_bar: float | None = None
    last, text, counts = b"", b"", set()
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        text = ANSI.sub(b"", text + chunk)[-8000:]
        for label, done in re.findall(rb"income = (\S+)\s+\S*\s+(\d+)/", text):
            counts.add((label, done))  # a DP-Adam bar's count, as the user sees it
            if first_bar is None and int(done) > 0:
                first_bar = time.perf_counter() - t0
        text = text[-200:]
        last = (last + chunk)[-4000:]
    proc.wait()
    wall = time.perf_counter() - t0
    os.close(master)
    report = timing.read_text() if timing.exists() else ""
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)",
                                           report))
    status = "ok" if proc.returncode == 0 and out.exists() else f"exit {proc.returncode}"
    if "signal 9" in report:
        status = "killed (out of memory)"
    tail = ANSI.sub(b"", last).decode(errors="replace").strip()
    return {"wall": wall, "cpu": cpu,
            "peak_mb": int(peak.group(1)) / 1024 if peak else float("nan"),
            "counts": len(counts),
            "first_bar": first_bar if first_bar is not None else float("nan"),
            "status": status, "tail": tail.splitlines()[-1] if tail else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_600_000)
    parser.add_argument("--baseline-rows", type=int, default=600_000)
    parser.add_argument("--baseline", default="56ce257", help="git revision to compare with")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "threedgl-large")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-large", action="store_true", help="skip the run on --rows rows")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    big = build_csv(args.rows, args.dir / f"adult-{args.rows}.csv")
    small = build_csv(args.baseline_rows, args.dir / f"adult-{args.baseline_rows}.csv")
    print(f"{big.name}: {big.stat().st_size / 1e6:.0f} MB; {small.name}: "
          f"{small.stat().st_size / 1e6:.0f} MB", flush=True)
    results: dict[str, dict[str, float | str]] = {}
    with tempfile.TemporaryDirectory(prefix="threedgl-large-") as tmp:
        work = Path(tmp)
        runs = [("current", ROOT / "src", small, args.baseline_rows)]
        if not args.no_baseline:
            base = work / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "src"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            runs.insert(0, (f"baseline {args.baseline}", base / "src", small, args.baseline_rows))
        if not args.no_large:
            runs.append(("current", ROOT / "src", big, args.rows))
        for side, src, data, rows in runs:
            key = f"{side} @ {rows:,} rows"
            r = results[key] = run_train(src, data, work, f"{side.split()[0]}-{rows}")
            print(f"{key:30} wall {r['wall']:6.0f} s, CPU {r['cpu']:5.0f} s, peak RSS "
                  f"{r['peak_mb']:6.0f} MB; DP-Adam bars: {r['counts']} counts shown, the "
                  f"first above 0 at {r['first_bar']:.0f} s: {r['status']}", flush=True)
    if not args.no_baseline:
        b = results[f"baseline {args.baseline} @ {args.baseline_rows:,} rows"]
        c = results[f"current @ {args.baseline_rows:,} rows"]
        print(f"at {args.baseline_rows:,} rows, baseline / current: wall "
              f"{float(b['wall']) / float(c['wall']):.2f}x, CPU "
              f"{float(b['cpu']) / float(c['cpu']):.2f}x, peak RSS "
              f"{float(b['peak_mb']) / float(c['peak_mb']):.2f}x")
    if not args.no_large:
        big_run = results[f"current @ {args.rows:,} rows"]
        print(f"at {args.rows:,} rows: peak RSS {big_run['peak_mb']:.0f} MB "
              f"({'within' if float(big_run['peak_mb']) <= 2048 else 'ABOVE'} 2 GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a peer (MST or AIM, ``benchmarks/peers.py``) from the main venv, in a subprocess.

The peers live in their own venv, ``.venv-peers`` (``make peers``: dpmm 0.1.9 from PyPI,
whose MST and AIM ``peers.py`` calls; Python 3.11, no torch, no threedgl), never in the
runtime dependencies. :func:`run_peer` writes
the train split and the schema to a temporary directory, runs
``.venv-peers/bin/python benchmarks/peers.py`` niced and single-threaded, and reads the
synthetic table back with the schema's dtypes::

    from _peers import run_peer   # with benchmarks/ on sys.path (a script in benchmarks/)
    synthetic, info = run_peer("mst", train, ds.schema, 1.9, 1e-4, seed=0, rows=len(train))
    if synthetic is None:
        print("MST skipped:", info["reason"])

Run as a script, it is the end-to-end check: the paper's stratified 90/10 split, each
method on each dataset, one job at a time, and the k-way TVD of the synthetic table
against the train split (``threedgl.evaluation.marginals.kway_tvd``)::

    .venv/bin/python benchmarks/_peers.py --datasets titanic,wine-quality,adult --methods mst

``info`` holds the script's JSON line (``fit_seconds``: dpmm's fit alone,
``setup_seconds``, ``sample_seconds``, the domain, the cliques selected, the versions)
plus ``status`` (``"ok"``, ``"unavailable"``, ``"timeout"`` or ``"failed"``), ``reason``
when not ok, and ``wall_seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from threedgl.schema import Schema

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENV = ROOT / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
SCRIPT = HERE / "peers.py"
METHODS = ("mst", "aim")
EXIT_TIMEOUT = 3  # peers.py: not finished within --max-seconds
#: Seconds on top of ``timeout`` before the subprocess is killed (CSV writing, slack).
GRACE = 120

#: One thread everywhere: the machine's cores are shared with other work.
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def peers_available() -> bool:
    return PEERS_PYTHON.is_file() and os.access(PEERS_PYTHON, os.X_OK)


def run_peer(
    method: str,
    train_df: pd.DataFrame,
    schema: Schema,
    epsilon: float,
    delta: float,
    seed: int,
    rows: int | None = None,
    timeout: float = 600,
    *,
    bins: int = 32,
    extra_args: tuple[str, ...] = (),
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """``(synthetic table, info)``, or ``(None, info)`` with ``info["reason"]``.

    ``rows`` synthetic rows (default: as many as ``train_df``); ``timeout`` seconds for fit
    and sampling (``--max-seconds``; the subprocess is killed ``GRACE`` seconds later);
    ``bins`` per numeric column (see ``peers.py`` for the rule); ``extra_args`` go to
    ``peers.py`` as they are (``("--linear",)``, ``("--degree", "2")`` for AIM,
    ``("--seeded-noise",)`` to reproduce a table bit for bit; see its docstring).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    rows = len(train_df) if rows is None else int(rows)
    info: dict[str, Any] = {"method": method, "epsilon": epsilon, "delta": delta, "seed": seed,
                            "rows": rows}
    if not peers_available():
        info.update(status="unavailable",
                    reason=f"{PEERS_PYTHON} not found: run `make peers` (benchmark-only venv)")
        return None, info
    table = schema.validate(train_df, require_target=schema.target is not None,
                            extra_columns="drop")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(SINGLE_THREAD)
    with tempfile.TemporaryDirectory(prefix=f"peer-{method}-") as tmp:
        d = Path(tmp)
        table.to_csv(d / "train.csv", index=False)
        schema.write(d / "schema.json")
        out = d / "synthetic.csv"
        cmd = ["nice", "-n", "10", str(PEERS_PYTHON), str(SCRIPT), "--method", method,
               "--train", str(d / "train.csv"), "--schema", str(d / "schema.json"),
               "--epsilon", repr(float(epsilon)), "--delta", repr(float(delta)),
               "--seed", str(int(seed)), "--out", str(out), "--rows", str(rows),
               "--bins", str(int(bins)), "--max-seconds", repr(float(timeout)), *extra_args]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                                  timeout=timeout + GRACE, check=False)
        except subprocess.TimeoutExpired:
            info.update(status="timeout", wall_seconds=round(time.monotonic() - start, 3),
                        reason=f"killed after {timeout + GRACE:g} s")
            return None, info
        info["wall_seconds"] = round(time.monotonic() - start, 3)
        info.update(_last_json(proc.stdout))
        if proc.returncode == EXIT_TIMEOUT:
            info.update(status="timeout",
                        reason=info.get("reason") or f"not finished within {timeout:g} s")
            return None, info
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            info.update(status="failed", reason=f"exit code {proc.returncode}: {tail}")
            return None, info
        raw = pd.read_csv(out, keep_default_na=False, na_filter=False)
    synthetic = schema.validate(raw, require_target=schema.target is not None)
    # the dtypes of the real table (the schema's, unless the caller's differ)
    for name in synthetic.columns:
        if name in train_df.columns and synthetic[name].dtype != train_df[name].dtype:
            with contextlib.suppress(TypeError, ValueError):
                synthetic[name] = synthetic[name].astype(train_df[name].dtype)
    info["status"] = "ok"
    return synthetic.reset_index(drop=True), info


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def main() -> None:
    from sklearn.model_selection import train_test_split

    from threedgl import datasets
    from threedgl.evaluation.marginals import kway_tvd

    p = argparse.ArgumentParser(description="MST / AIM end to end: k-way TVD and fit time")
    p.add_argument("--datasets", default="titanic,wine-quality,adult")
    p.add_argument("--methods", default="mst")
    p.add_argument("--epsilon", type=float, default=1.9)
    p.add_argument("--delta", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--bins", type=int, default=32)
    p.add_argument("--linear", action="store_true", help="peers.py --linear")
    p.add_argument("--jsonl", default=None, help="append one JSON line per run here")
    args = p.parse_args()
    print(f"{'dataset':<14}{'method':<6}{'1-way':>8}{'2-way':>8}{'3-way':>8}{'fit s':>9}"
          f"{'sample s':>10}  status", flush=True)
    for name in args.datasets.split(","):
        ds = datasets.load(name)
        train, _ = train_test_split(ds.frame, test_size=0.1, stratify=ds.frame[ds.target],
                                    random_state=args.seed)
        for method in args.methods.split(","):
            syn, info = run_peer(method, train, ds.schema, args.epsilon, args.delta, args.seed,
                                 len(train), args.timeout, bins=args.bins,
                                 extra_args=("--linear",) if args.linear else ())
            tvd = kway_tvd(train, syn, ds.schema) if syn is not None else {}
            info.update(dataset=name, **tvd)
            cells = [f"{tvd[k]:8.3f}" if k in tvd else f"{'-':>8}"
                     for k in ("tvd_1way", "tvd_2way", "tvd_3way")]
            fit = info.get("fit_seconds")
            smp = info.get("sample_seconds")
            print(f"{name:<14}{method:<6}{''.join(cells)}"
                  f"{fit if fit is not None else '-':>9}{smp if smp is not None else '-':>10}"
                  f"  {info['status']} {info.get('reason', '')}", flush=True)
            if args.jsonl:
                with open(args.jsonl, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(info) + "\n")


if __name__ == "__main__":
    main()

"""How long the commands that train nothing take, against ``3dgl --help`` in the same run.

    python benchmarks/startup.py [--baseline COMMIT] [--repeats 5]

Each command runs as a whole process (``python -m threedgl.cli.main ...``) on small real
files made first (Titanic's CSV and schema, a DP-marginals generator); the server's figure
is the time from its start to its ``threedgl server ready on`` line. Runs alternate between
the commands, ``--repeats`` times; printed: the median wall time of each, and its excess
over ``--help``'s median (the issue's bar: ``inspect`` within 1.5 s, the server within
2.5 s). With ``--baseline``, that commit's ``src/`` (``git archive``) is measured the same
way in the same run, with the same interpreter and packages (``PYTHONPATH``), and the ratio
baseline / current is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "startup-benchmark-admin-token-0123456789abcdef"

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "inspect": ["inspect", "g.3dgl"],
    "budget": ["budget"],
    "schema validate": ["schema", "validate", "t.csv", "--schema", "s.json"],
    "train (missing file)": ["train", "missing.csv", "-o", "x.3dgl"],
    "pool list (no server)": ["pool", "list", "--server", "http://127.0.0.1:9",
                              "--token", "t" * 40],
}


def env_for(src: Path, work: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "THREEDGL_LEDGER": str(work / "ledger.json"),
            "THREEDGL_ADMIN_TOKEN": ADMIN}


def time_command(src: Path, work: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "threedgl.cli.main", *args], cwd=work,
                   env=env_for(src, work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)
    return time.perf_counter() - t0


def time_server(src: Path, work: Path) -> float:
    """Seconds from the start of ``3dgl server --port 0`` to its ready line (the old code,
    which has no ready line, is timed to its first answer on /api/v1/health)."""
    import httpx

    db = work / f"s{time.monotonic_ns()}.db"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "threedgl.cli.main", "server", "--db",
                             f"sqlite:///{db}", "--port", "0"], cwd=work, env=env_for(src, work),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "server ready on" in line:
                return time.perf_counter() - t0
            if "Uvicorn running on" in line:  # before the ready line existed
                url = line.split("running on ", 1)[1].split(" ", 1)[0]
                while httpx.get(f"{url}/api/v1/health").status_code != 200:
                    time.sleep(0.01)
                return time.perf_counter() - t0
        raise RuntimeError("the server stopped before it was ready")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_files(work: Path) -> None:
    env = env_for(ROOT / "src", work)
    cli = [sys.executable, "-m", "threedgl.cli.main"]
    subprocess.run([*cli, "datasets", "export", "titanic", "-o", "t.csv", "--schema", "s.json"],
                   cwd=work, env=env, check=True, capture_output=True)
    subprocess.run([*cli, "train", "t.csv", "-t", "survived", "-s", "s.json", "-o", "g.3dgl",
                    "--generator", "dp-marginals"], cwd=work, env=env, check=True,
                   capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a commit whose src/ is measured beside")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="threedgl-startup-") as tmp:
        work = Path(tmp)
        make_files(work)
        sides = {"current": ROOT / "src"}
        if args.baseline:
            base = work / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "src"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            sides["baseline"] = base / "src"
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for side, src in sides.items():
                for name, cmd in COMMANDS.items():
                    times.setdefault((side, name), []).append(time_command(src, work, cmd))
                times.setdefault((side, "server ready"), []).append(time_server(src, work))
        names = [*COMMANDS, "server ready"]
        print(f"median wall seconds over {args.repeats} runs (python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cores)")
        header = f"{'command':<24}" + "".join(f"{s:>12}{'- --help':>10}" for s in sides)
        print(header + ("   baseline/current" if len(sides) > 1 else ""))
        for name in names:
            line = f"{name:<24}"
            med = {}
            for side in sides:
                med[side] = statistics.median(times[(side, name)])
                help_med = statistics.median(times[(side, "--help")])
                line += f"{med[side]:>12.2f}{med[side] - help_med:>+10.2f}"
            if len(sides) > 1:
                line += f"   {med['baseline'] / med['current']:>8.1f}"
            print(line)


if __name__ == "__main__":
    main()

"""Commands that train nothing do not import torch or opacus (a design test, not a timing).

Importing torch and opacus costs seconds; ``3dgl inspect``, ``budget``, ``schema``,
``admin``, ``pool``, ``publish`` and the server's start must not pay it. Each case runs
in a fresh interpreter, does the command's real work (its files, an unreachable server
for the client commands, a real server for ``serve``) and reports which heavy modules
were imported. The times are in ``benchmarks/startup.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "opacus")

RUN_CLI = """
import json, sys
from threedgl.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
except Exception as exc:  # click's exceptions for usage errors, ours for bad input
    print(type(exc).__name__, exc, file=sys.stderr)
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""

RUN_SERVER = """
import json, os, sys, threading
from threedgl.server.run import serve
ready = threading.Event()
def say(line):
    if line.startswith("threedgl server ready on "):
        ready.set()
threading.Thread(target=serve, daemon=True, kwargs=dict(
    db="sqlite:///" + sys.argv[1], port=0, dev=True, log_level="warning", say=say)).start()
ready.wait(60)
print(json.dumps([m for m in {heavy!r} if m in sys.modules] if ready.is_set() else ["not ready"]))
sys.stdout.flush()
os._exit(0)
"""


def loaded(script: str, *args: str, cwd: Path) -> list[str]:
    r = subprocess.run([sys.executable, "-c", script.format(heavy=HEAVY), *args], cwd=cwd,
                       capture_output=True, text=True, timeout=120,
                       env={"THREEDGL_LEDGER": str(cwd / "ledger.json"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    result: list[str] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, titanic_file: Path) -> Path:
    from threedgl import datasets

    where = tmp_path_factory.mktemp("startup")
    ds = datasets.load("titanic")
    ds.frame.head(200).to_csv(where / "t.csv", index=False)
    ds.schema.write(where / "s.json")
    (where / "g.3dgl").write_bytes(titanic_file.read_bytes())
    return where


@pytest.mark.parametrize("args", [
    ["--help"],
    ["inspect", "g.3dgl"],
    ["inspect", "g.3dgl", "--json"],
    ["budget"],
    ["schema", "infer", "t.csv", "--target", "survived", "-o", "inferred.json"],
    ["schema", "validate", "t.csv", "--schema", "s.json"],
    ["admin", "federation", "show", "x", "--server", "http://127.0.0.1:9", "--token", "t" * 40],
    ["pool", "list", "--server", "http://127.0.0.1:9", "--token", "t" * 40],
    ["publish", "g.3dgl", "--server", "http://127.0.0.1:9", "--token", "t" * 40],
    ["train", "missing.csv", "-o", "x.3dgl"],  # a trivial error answers fast too
], ids=lambda a: " ".join(a[:2]))
def test_a_command_that_trains_nothing_imports_no_torch(files: Path, args: list[str]) -> None:
    assert loaded(RUN_CLI, *args, cwd=files) == []


def test_the_server_starts_without_torch(tmp_path: Path) -> None:
    assert loaded(RUN_SERVER, str(tmp_path / "s.db"), cwd=tmp_path) == []


def test_rdp_accounting_is_opacus_rdp_accountant() -> None:
    """The RDP composition done without importing opacus equals its RDPAccountant's."""
    from opacus.accountants import RDPAccountant

    from threedgl.privacy.accounting import RDP_ORDERS, compute_epsilon, rdp_optimal_order

    assert list(RDP_ORDERS) == RDPAccountant.DEFAULT_ALPHAS
    for sigma, q, steps, delta in [(1.1, 0.01, 1000, 1e-5), (0.6, 0.2, 50, 1e-4),
                                   (3.0, 1.0, 1, 1e-6), (0.9, 0.05, 20_000, 1e-5)]:
        acc = RDPAccountant()
        acc.history = [(sigma, q, steps)]
        eps, order = acc.get_privacy_spent(delta=delta)
        assert compute_epsilon(sigma, q, steps, delta) == eps
        assert rdp_optimal_order(sigma, q, steps, delta) == order

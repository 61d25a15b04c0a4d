"""The 3DGL simulation through a live Global Server (uvicorn, SQLite, a free port)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from server_fixtures import ADMIN_TOKEN, ServerProcess, free_port, server_env, sqlite_server
from threedgl.errors import ThreedglError
from threedgl.federation import GlobalServerPool, InMemoryServer, simulate
from threedgl.server.client import ServerClient, ServerError

__all__ = ["sqlite_server"]  # the shared fixture, imported for pytest

CLI = str(Path(sys.executable).with_name("3dgl"))


class RecordingPool(GlobalServerPool):
    """A :class:`GlobalServerPool` that remembers what each client published and pulled."""

    def __init__(self, url: str, admin_token: str) -> None:
        super().__init__(url, admin_token, prefix="sim-test")
        self.published: dict[int, str] = {}
        self.pulled: dict[int, list[str]] = {}

    def publish(self, client: int, artifact: bytes) -> None:
        super().publish(client, artifact)
        self.published[client] = hashlib.sha256(artifact).hexdigest()

    def pull(self, client: int) -> list[bytes]:
        pool = super().pull(client)
        self.pulled[client] = [hashlib.sha256(a).hexdigest() for a in pool]
        return pool


def _records(result) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return pd.DataFrame(result.records).sort_values(["seed", "client", "scenario"], ignore_index=True)


def test_simulation_through_live_server(sqlite_server: ServerProcess) -> None:
    pool = RecordingPool(sqlite_server.url, ADMIN_TOKEN)
    pool.check()
    # Seeds of their own: the shared server refuses weights it already holds (a replay).
    result = simulate("titanic", clients=3, epochs=1, server=pool, workers=1, random_state=21)
    assert result.records and result.config["server"] == "RecordingPool"

    # one new federation, whose pool holds the 3 generators the clients produced
    assert len(pool.federations) == 1 and pool.federation is not None
    assert pool.federation.startswith("sim-test-")
    with ServerClient(sqlite_server.url, pool._tokens[0]) as me:
        listing = me.pool()
    assert len(listing) == 3
    produced = [pool.published[c] for c in range(3)]
    assert sorted(e["sha256"] for e in listing) == sorted(produced)
    assert len(set(produced)) == 3
    # every client pulled the whole pool, in client order
    assert pool.pulled == {c: produced for c in range(3)}

    # the same files as with the in-memory server, so exactly the same scores
    memory = simulate("titanic", clients=3, epochs=1, server=InMemoryServer(), workers=1,
                      random_state=21)
    pd.testing.assert_frame_equal(_records(result), _records(memory))


def test_pull_needs_an_accepted_generator(sqlite_server: ServerProcess) -> None:
    from threedgl.datasets import load

    pool = GlobalServerPool(sqlite_server.url, ADMIN_TOKEN)
    pool.open(load("titanic").schema, 2, max_epsilon=1.9, max_delta=1e-4)
    with pytest.raises(ThreedglError, match="accepted before pulling"):
        pool.pull(0)
    with ServerClient(sqlite_server.url, pool._tokens[0]) as me, pytest.raises(ServerError) as exc:
        me.pool()  # and the server refuses too
    assert exc.value.status == 403
    with pytest.raises(ServerError) as bad:
        pool.publish(1, b"not a generator")
    assert bad.value.status == 422
    with pytest.raises(ThreedglError, match="accepted before pulling"):
        pool.pull(1)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**server_env(None), "COLUMNS": "200"}
    return subprocess.run(
        [CLI, "simulate", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_cli_simulate_with_server(sqlite_server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _cli(
        "titanic", "--clients", "3", "--epochs", "1", "--workers", "1", "--server", sqlite_server.url,
        "--admin-token", ADMIN_TOKEN, "--out", str(out), "--seed", "22", cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert f"using the Global Server at {sqlite_server.url}" in r.stdout
    assert "federation(s) sim-titanic-" in r.stdout
    assert ADMIN_TOKEN not in r.stdout + r.stderr
    assert any(out.iterdir())


@pytest.mark.parametrize(
    "server, token, message",
    [
        ("unreachable", ADMIN_TOKEN, "cannot reach the server"),
        ("live", "wrong-" + ADMIN_TOKEN, "did not accept the admin token"),
    ],
    ids=["unreachable", "wrong-token"],
)
def test_cli_simulate_bad_server(
    sqlite_server: ServerProcess, tmp_path: Path, server: str, token: str | None, message: str
) -> None:
    url = sqlite_server.url if server == "live" else f"http://127.0.0.1:{free_port()}"
    args = ["titanic", "--clients", "3", "--epochs", "1", "--server", url]
    if token is not None:
        args += ["--admin-token", token]
    r = _cli(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()

"""The ``3dgl`` commands of the Global Server, as subprocesses against a live server."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest

from server_fixtures import (
    ADMIN_TOKEN,
    PYTHON,
    SCHEMA,
    ServerProcess,
    free_port,
    generator_bytes,
    server_env,
    sqlite_server,
)
from threedgl.artifact.format import read_artifact

__all__ = ["sqlite_server"]  # the shared fixture, imported for pytest


def run_3dgl(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "threedgl.cli.main", *args],
        env=(env if env is not None else server_env(None)) | {"COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def server(sqlite_server: ServerProcess) -> ServerProcess:
    return sqlite_server


def test_cli_whole_flow(server: ServerProcess, tmp_path: Path) -> None:
    FED = f"hospitals-{uuid.uuid4().hex[:8]}"
    schema_file = tmp_path / "schema.json"
    SCHEMA.write(schema_file)
    admin_env = server_env(None, THREEDGL_SERVER=server.url, THREEDGL_ADMIN_TOKEN=ADMIN_TOKEN)

    r = run_3dgl(
        "admin",
        "federation",
        "create",
        FED,
        "--schema",
        str(schema_file),
        "--max-epsilon",
        "1.9",
        "--max-delta",
        "1e-4",
        "--accountant",
        "rdp",
        "--accountant",
        "prv",
        "--max-bytes",
        "1000000",
        env=admin_env,
    )
    assert r.returncode == 0, r.stderr
    assert f"created federation '{FED}'" in r.stdout

    r = run_3dgl("admin", "federation", "create", FED, "--schema", str(schema_file), env=admin_env)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "409" in r.stderr

    tokens = {}
    for name in ("a", "b", "c"):
        r = run_3dgl("admin", "client", "add", FED, name, env=admin_env)
        assert r.returncode == 0, r.stderr
        tokens[name] = r.stdout.strip().splitlines()[-1]
        assert len(tokens[name]) >= 40

    gens = {}
    for i, name in enumerate(("a", "b", "c")):
        path = tmp_path / f"{name}.3dgl"
        path.write_bytes(generator_bytes(tmp_path, seed=i))
        gens[name] = path
    env_a = server_env(None, THREEDGL_SERVER=server.url, THREEDGL_TOKEN=tokens["a"])

    r = run_3dgl("pool", "list", env=env_a)  # before contributing
    assert r.returncode == 2 and "contribute to access" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    for name in ("a", "b", "c"):  # --server / --token as options
        r = run_3dgl("publish", str(gens[name]), "--server", server.url, "--token", tokens[name])
        assert r.returncode == 0, r.stderr
        assert "accepted" in r.stdout and "version 1" in r.stdout

    bad = tmp_path / "bad.3dgl"
    bad.write_bytes(b"garbage" * 10)
    r = run_3dgl("publish", str(bad), env=env_a)
    assert r.returncode == 2 and "422" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    r = run_3dgl("pool", "list", env=env_a)
    assert r.returncode == 0, r.stderr
    assert "Generators Pool (3)" in r.stdout and "dp-marginals" in r.stdout

    out = tmp_path / "pool"
    r = run_3dgl("pool", "pull", "-o", str(out), env=env_a)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.3dgl", "b.3dgl", "c.3dgl"]
    for name, path in gens.items():
        pulled = out / f"{name}.3dgl"
        assert (
            hashlib.sha256(pulled.read_bytes()).digest()
            == hashlib.sha256(path.read_bytes()).digest()
        )
        read_artifact(pulled)

    r = run_3dgl("admin", "federation", "show", FED, env=admin_env)
    assert r.returncode == 0 and "Clients" in r.stdout

    r = run_3dgl("admin", "client", "rotate", FED, "b", env=admin_env)  # a lost token
    assert r.returncode == 0, r.stderr
    fresh = r.stdout.strip().splitlines()[-1]
    assert len(fresh) >= 40 and fresh != tokens["b"]
    r = run_3dgl("pool", "list", "--server", server.url, "--token", tokens["b"])
    assert r.returncode == 2 and "401" in r.stderr  # the old token no longer works
    r = run_3dgl("admin", "client", "token", FED, "b", env=admin_env)  # the earlier name
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] != fresh
    fresh = r.stdout.strip().splitlines()[-1]
    r = run_3dgl("pool", "list", "--server", server.url, "--token", fresh)
    assert r.returncode == 0, r.stderr

    r = run_3dgl("admin", "client", "revoke", FED, "c", env=admin_env)
    assert r.returncode == 0, r.stderr
    r = run_3dgl("pool", "list", "--server", server.url, "--token", tokens["c"])
    assert r.returncode == 2 and "revoked" in r.stderr

    r = run_3dgl(
        "admin",
        "client",
        "add",
        FED,
        "d",
        env=env_a | {"THREEDGL_ADMIN_TOKEN": tokens["a"]},
    )
    assert r.returncode == 2 and "403" in r.stderr

    r = run_3dgl("pool", "list", env=server_env(None, THREEDGL_SERVER=server.url))
    assert r.returncode == 2 and "THREEDGL_TOKEN" in r.stderr


def test_cli_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run_3dgl("pool", "list", "--server", url, "--token", "x" * 43)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot reach the server" in r.stderr


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("changeme", "placeholder"),
        ("secret", "placeholder"),
        ("admin", "placeholder"),
        ("abc123", "shorter than"),
        (None, "not set"),
    ],
)
def test_server_refuses_weak_admin_secret(token: str | None, words: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            PYTHON,
            "-m",
            "threedgl.server",
            "--db",
            f"sqlite:///{tmp_path / 's.db'}",
            "--port",
            str(free_port()),
        ],
        env=server_env(token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "THREEDGL_ADMIN_TOKEN" in lines[0]
    assert not (tmp_path / "s.db").exists()


def test_cli_server_command_dev_mode(tmp_path: Path) -> None:
    """`3dgl server --dev` without a secret generates one, prints it, and says when it is
    ready: the first request after the ready line is answered (no retry)."""
    import time

    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "threedgl.cli.main",
            "server",
            "--dev",
            "--storage",
            str(tmp_path / "state"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=server_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        token = None
        ready = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready:
            line = proc.stdout.readline()
            if "generated admin token:" in line:
                token = line.rsplit(":", 1)[1].strip()
            if line.startswith("threedgl server ready on "):
                ready = line.split(" on ", 1)[1].strip()
        assert token
        assert ready == f"http://127.0.0.1:{port}"
        r = httpx.get(
            f"{ready}/api/v1/federations/none",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 404
        assert (tmp_path / "state" / "threedgl-server.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)

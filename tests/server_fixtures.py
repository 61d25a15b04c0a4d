"""Shared helpers of the server tests: real ``.3dgl`` files, a live server process, databases."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from threedgl.artifact.format import FORMAT_NAME, FORMAT_VERSION, write_artifact
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

ADMIN_TOKEN = "adm-" + "Zq7xK2pL9vR4tY8w" + "N3mB6cD1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PYTHON = sys.executable

SCHEMA = Schema(
    columns=(
        NumericColumn("age", 0, 100, integer=True),
        NumericColumn("fare", 0.0, 600.0),
        CategoricalColumn("sex", ("female", "male")),
        CategoricalColumn("survived", ("0", "1")),
    ),
    target="survived",
)

# σ, q, steps, δ of a training that meets the paper's policy (ε ≈ 1.22 ≤ 1.9 with RDP).
SIGMA, SAMPLE_RATE, STEPS, DELTA = 1.2, 0.01, 1000, 1e-4

_CALLS = itertools.count()

_EPS_CACHE: dict[tuple[float, float, int, float, str], float] = {}


def epsilon(sigma: float, q: float, steps: int, delta: float, accountant: str = "rdp") -> float:
    from threedgl.privacy import compute_epsilon

    key = (sigma, q, steps, delta, accountant)
    if key not in _EPS_CACHE:
        _EPS_CACHE[key] = compute_epsilon(sigma, q, steps, delta, accountant)
    return _EPS_CACHE[key]


def manifest(
    schema: Schema = SCHEMA,
    *,
    sigma: float = SIGMA,
    sample_rate: float = SAMPLE_RATE,
    steps: int = STEPS,
    delta: float = DELTA,
    accountant: str = "rdp",
    recorded_epsilon: float | None = None,
) -> dict[str, Any]:
    """A manifest as the lead's generators write it, with ε computed by the accountant."""
    recorded: float | str = (epsilon(sigma, sample_rate, steps, delta, accountant)
                             if recorded_epsilon is None else recorded_epsilon)
    if recorded == float("inf"):
        recorded = "inf"  # as PrivacyRecord.to_dict writes it
    labels = list(schema.labels)
    record = {
        "noise_multiplier": sigma,
        "sample_rate": sample_rate,
        "steps": steps,
        "max_grad_norm": 1.0,
        "accountant": accountant,
        "delta": delta,
        "epsilon": recorded,
    }
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "ddp-betavae",
        "library_version": "0.1.0",
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "schema": schema.to_dict(),
        "labels": labels,
        "architecture": {"hidden": [8, 4], "latent_dim": 2, "beta": 0.1},
        "models": [{"label": label, "privacy": dict(record)} for label in labels],
        "privacy": {
            "epsilon": recorded,
            "delta": delta,
            "accountant": accountant,
            "adjacency": "add/remove one row",
            "composition": "parallel over classes (disjoint rows)",
            "released": ["decoders"],
            "statement": "test generator",
        },
        "training": {"epochs": 1},
    }


def training_table(schema: Schema, seed: int, rows: int = 120) -> pd.DataFrame:
    """Random rows that fit ``schema`` (stand-in private data)."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for col in schema.columns:
        if isinstance(col, NumericColumn):
            values = rng.uniform(col.minimum, col.maximum, rows)
            data[col.name] = np.round(values).astype(int) if col.integer else values
        else:
            data[col.name] = rng.choice(list(col.categories), rows)
    return pd.DataFrame(data)


def generator_bytes(
    tmp_path: Path,
    seed: int = 0,
    schema: Schema = SCHEMA,
    *,
    sigma: float | None = None,
    sample_rate: float = SAMPLE_RATE,
    steps: int = STEPS,
    delta: float | None = None,
    accountant: str | None = None,
    recorded_epsilon: float | None = None,
) -> bytes:
    """A real ``.3dgl`` file: a DP-marginals generator fitted on random rows (fast).

    With any privacy argument, the manifest's privacy records are rewritten to the given
    training parameters (ε computed by the accountant, or ``recorded_epsilon``) and the
    file is written again with :func:`write_artifact`: a valid file that claims them.
    """
    from threedgl.artifact.format import read_artifact
    from threedgl.artifact.statement import privacy_summary
    from threedgl.model.marginals import DPMarginals
    from threedgl.privacy.record import PrivacyRecord

    path = tmp_path / f"gen-{seed}-{uuid.uuid4().hex[:8]}.3dgl"
    # Every call trains distinct weights (the server refuses weights it already holds, in
    # any federation, and the live servers are shared by many tests): the noise seed is
    # salted with a per-process counter; the table still follows ``seed``.
    model = DPMarginals(random_state=seed * 1_000_003 + next(_CALLS)).fit(
        training_table(schema, seed), target=schema.target, schema=schema
    )
    model.save(path)
    if (sigma, delta, accountant, recorded_epsilon) != (None, None, None, None):
        artifact = read_artifact(path)
        fake = manifest(
            schema,
            sigma=SIGMA if sigma is None else sigma,
            sample_rate=sample_rate,
            steps=steps,
            delta=DELTA if delta is None else delta,
            accountant=accountant or "rdp",
            recorded_epsilon=recorded_epsilon,
        )
        rewritten = dict(artifact.manifest)
        record = fake["models"][0]["privacy"]
        rewritten["models"] = [{**m, "privacy": dict(record)} for m in artifact.manifest["models"]]
        # the statement as the library writes it for these records (the server refuses one
        # that claims anything else)
        rewritten["privacy"] = privacy_summary(
            rewritten, [PrivacyRecord.from_dict(m["privacy"]) for m in rewritten["models"]])
        write_artifact(path, rewritten, artifact.tensors)
    return path.read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(admin_token: str | None = ADMIN_TOKEN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREEDGL_")}
    if admin_token is not None:
        env["THREEDGL_ADMIN_TOKEN"] = admin_token
    env.update(extra)
    return env


class ServerProcess:
    """``python -m threedgl.server`` on 127.0.0.1 and a free port, until :meth:`stop`."""

    def __init__(
        self, db_url: str, *, cwd: Path, admin_token: str = ADMIN_TOKEN,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = dict(env or {})
        self.db_url = db_url
        self.cwd = cwd
        self.admin_token = admin_token
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log = cwd / f"server-{uuid.uuid4().hex[:6]}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, *, same_port: bool = False) -> ServerProcess:
        if not (same_port and self.port):
            self.port = free_port()
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "threedgl.server",
                    "--db",
                    self.db_url,
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                cwd=self.cwd,
                env=server_env(self.admin_token, **self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s: {self.log.read_text()}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no cleanup (a crash)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=60)

    def admin(self) -> httpx.Client:
        return self.http(self.admin_token)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"threedgl_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_federation(server: ServerProcess, *, schema: Schema = SCHEMA, **policy: Any) -> str:
    name = f"fed-{uuid.uuid4().hex[:10]}"
    with server.admin() as http:
        r = http.post(
            "/federations", json={"name": name, "schema": schema.to_dict(), "policy": policy}
        )
    assert r.status_code == 201, r.text
    return name


def add_client(server: ServerProcess, federation: str, name: str) -> str:
    with server.admin() as http:
        r = http.post(f"/federations/{federation}/clients", json={"name": name})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One live server on a SQLite file, shared by the API and CLI tests (one Opacus import)."""
    tmp = tmp_path_factory.mktemp("sqlite-server")
    proc = ServerProcess(f"sqlite:///{tmp / 'server.db'}", cwd=tmp).start()
    try:
        yield proc
    finally:
        proc.stop()

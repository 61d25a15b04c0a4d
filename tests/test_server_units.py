"""Server parts without a live process: settings, database version, upload validation."""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from server_fixtures import SCHEMA, generator_bytes
from threedgl.errors import ThreedglError
from threedgl.server.config import Settings, load_settings, secret_problem
from threedgl.server.db import DB_SCHEMA_VERSION, DatabaseError, init_database, make_engine
from threedgl.server.models import SchemaVersion
from threedgl.server.security import hashes_match, is_admin_token, new_token, token_sha256
from threedgl.server.validation import UploadRejected, validate_upload

GOOD = "Zq7xK2pL9vR4tY8wN3mB6cD1"


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "changeme",
        "CHANGEME",
        "secret",
        "admin",
        "password",
        "changemechangeme",
        "change-me",
        "abc",
        "aaaaaaaaaaaaaaaaaaaa",
        "123456789012345",
    ],
)
def test_weak_admin_secrets_refused(token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREEDGL_ADMIN_TOKEN", raising=False)
    assert secret_problem(token) is not None
    with pytest.raises(ThreedglError, match="THREEDGL_ADMIN_TOKEN") as info:
        load_settings(admin_token=token)
    assert "\n" not in str(info.value)


def test_dev_mode_generates_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREEDGL_ADMIN_TOKEN", raising=False)
    s = load_settings(admin_token="changeme", dev=True)
    assert s.admin_token_generated and secret_problem(s.admin_secret) is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THREEDGL_ADMIN_TOKEN", GOOD)
    monkeypatch.setenv("THREEDGL_MAX_UPLOAD_BYTES", "12345")
    monkeypatch.setenv("THREEDGL_DB_URL", "postgresql+psycopg://u@h/db")
    s = Settings()
    assert s.admin_secret == GOOD and s.max_upload_bytes == 12345
    assert s.database_url == "postgresql+psycopg://u@h/db"
    monkeypatch.delenv("THREEDGL_DB_URL")
    s = load_settings(storage=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'threedgl-server.db'}"
    env_file = tmp_path / "server.env"
    env_file.write_text("THREEDGL_MAX_UPLOAD_BYTES=777\n")
    assert load_settings(env_file).max_upload_bytes == 12345  # the environment wins
    monkeypatch.delenv("THREEDGL_MAX_UPLOAD_BYTES")
    assert load_settings(env_file).max_upload_bytes == 777
    with pytest.raises(ThreedglError, match="not supported"):
        load_settings(db_url="mysql://x@y/z")
    assert GOOD not in repr(s)  # the secret is not shown


def test_tokens() -> None:
    t = new_token()
    assert len(t) >= 43 and new_token() != t
    assert hashes_match(token_sha256(t), token_sha256(t))
    assert not hashes_match(None, token_sha256(t))
    assert not hashes_match(token_sha256("other"), token_sha256(t))
    assert is_admin_token(GOOD, GOOD) and not is_admin_token(GOOD[:-1], GOOD)


def test_database_version_is_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    engine = make_engine(url)
    assert init_database(engine) == DB_SCHEMA_VERSION
    assert init_database(engine) == DB_SCHEMA_VERSION  # idempotent
    with Session(engine) as session, session.begin():
        session.add(SchemaVersion(version=DB_SCHEMA_VERSION + 1))
    engine.dispose()
    with pytest.raises(DatabaseError, match="newer than this server"):
        init_database(make_engine(url))


def test_unreachable_database_is_one_line() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseError, match="cannot open the database") as info:
        init_database(engine)
    assert "\n" not in str(info.value)


def test_accountant_names_match_the_library() -> None:
    from threedgl.privacy import ACCOUNTANTS
    from threedgl.server.schemas import Accountant

    assert set(typing.get_args(Accountant)) == set(ACCOUNTANTS)


@dataclass
class Fed:
    name: str = "f"
    schema: dict[str, Any] = field(default_factory=SCHEMA.to_dict)
    max_epsilon: float = 1.9
    max_delta: float = 1e-4
    accountants: list[str] = field(default_factory=lambda: ["rdp", "prv"])
    max_artifact_bytes: int = 1_000_000


def test_validate_upload_accepts_and_recomputes(tmp_path: Path) -> None:
    data = generator_bytes(tmp_path)
    checked = validate_upload(data, Fed())
    assert checked.size == len(data) and len(checked.sha256) == 64
    assert 1.0 < checked.epsilon < 1.9 and checked.delta == 1e-4
    assert [m.label for m in checked.models] == ["0", "1"]
    prv = validate_upload(generator_bytes(tmp_path, accountant="prv"), Fed())
    assert prv.models[0].accountant == "prv"


@pytest.mark.parametrize(
    ("kwargs", "policy", "words"),
    [
        ({"sigma": 1.0}, {"max_epsilon": 1.5}, "above the policy's max_epsilon=1.5"),
        ({"recorded_epsilon": 1.0}, {}, "understates"),
        ({"delta": 1e-3}, {}, "max_delta"),
        ({"accountant": "prv"}, {"accountants": ["rdp"]}, "not accepted"),
        ({}, {"max_artifact_bytes": 100}, "above the limit of 100 bytes"),
    ],
)
def test_validate_upload_refuses(
    kwargs: dict[str, Any], policy: dict[str, Any], words: str, tmp_path: Path
) -> None:
    with pytest.raises(UploadRejected, match=words.replace("(", r"\(")):
        validate_upload(generator_bytes(tmp_path, **kwargs), Fed(**policy))


def test_a_forged_statement_is_refused(tmp_path: Path) -> None:
    """The statement is generated from the verified records: one that claims anything
    else (here (0.01, 1e-9) with ε written as a string) is refused."""
    from threedgl.artifact.format import read_artifact_bytes, write_artifact

    artifact = read_artifact_bytes(generator_bytes(tmp_path))
    for forged, words in (
        ({"epsilon": "0.01", "statement": "This generator is (0.01, 1e-9)-DP."}, "'epsilon'"),
        ({"statement": "Each row is protected with (0.01, 1e-09)-differential privacy."},
         "does not make the claim"),
    ):
        manifest = json.loads(json.dumps(artifact.manifest))
        manifest["privacy"].update(forged)
        path = tmp_path / "forged.3dgl"
        write_artifact(path, manifest, artifact.tensors)
        with pytest.raises(UploadRejected, match=f"privacy statement: .*{words}"):
            validate_upload(path.read_bytes(), Fed())


@pytest.mark.parametrize(
    ("kwargs", "policy", "words"),
    [
        ({"schema": "other"}, {}, "schema differs"),
        ({"accountant": "prv"}, {"accountants": ["rdp"]}, "not accepted"),
        ({"delta": 1e-3}, {}, "max_delta"),
        ({}, {"models": "too many"}, "lists 200 class models"),
    ],
)
def test_the_protocol_is_checked_before_any_accounting(
    kwargs: dict[str, Any], policy: dict[str, Any], words: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20: the schema, the number of class models and the policy's accountants and δ
    refuse a file before any record is verified (the accountant is the costly part)."""
    from threedgl.privacy.record import PrivacyRecord
    from threedgl.schema import NumericColumn, Schema

    if kwargs.get("schema") == "other":
        kwargs["schema"] = Schema((NumericColumn("age", 0, 120, integer=True),
                                   *SCHEMA.columns[1:]), target=SCHEMA.target)
    data = generator_bytes(tmp_path, **kwargs)
    if policy.pop("models", None) == "too many":  # 200 class models for 2 labels
        from threedgl.artifact.format import read_artifact_bytes, write_artifact

        artifact = read_artifact_bytes(data)
        manifest = json.loads(json.dumps(artifact.manifest))
        manifest["models"] = manifest["models"] * 100
        write_artifact(tmp_path / "many.3dgl", manifest, artifact.tensors)
        data = (tmp_path / "many.3dgl").read_bytes()

    def accounting(*_: Any, **__: Any) -> float:
        raise AssertionError("the accountant ran before the protocol was checked")

    monkeypatch.setattr(PrivacyRecord, "recompute_epsilon", accounting)
    monkeypatch.setattr(PrivacyRecord, "verify", accounting)
    with pytest.raises(UploadRejected, match=words):
        validate_upload(data, Fed(**policy))


def test_validate_upload_tolerates_one_percent(tmp_path: Path) -> None:
    from server_fixtures import DELTA, SAMPLE_RATE, SIGMA, STEPS, epsilon

    eps = epsilon(SIGMA, SAMPLE_RATE, STEPS, DELTA)
    validate_upload(generator_bytes(tmp_path, recorded_epsilon=eps * 0.995), Fed())
    with pytest.raises(UploadRejected, match="understates"):
        validate_upload(generator_bytes(tmp_path, recorded_epsilon=eps * 0.985), Fed())


def test_importing_the_server_creates_nothing(tmp_path: Path) -> None:
    """Importing the server's modules builds no engine and no app, connects to no database
    and writes no file: checked in a fresh interpreter, by the real types and on disk."""
    import subprocess
    import sys

    script = """
import gc, importlib, json, sys
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.pool import Pool
mods = ["threedgl.server", "threedgl.server.app", "threedgl.server.routes",
        "threedgl.server.deps", "threedgl.server.db", "threedgl.server.client"]
found = []
for name in mods:
    mod = importlib.import_module(name)
    found += [f"{name}.{k}" for k, v in vars(mod).items() if isinstance(v, (Engine, FastAPI))]
live = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (Engine, FastAPI, Pool))]
print(json.dumps({"globals": found, "live": live}))
"""
    env = {**os.environ, "THREEDGL_STORAGE": str(tmp_path / "storage"),
           "THREEDGL_DB_URL": f"sqlite:///{tmp_path / 'never.db'}"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120, check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"globals": [], "live": []}
    assert list(tmp_path.iterdir()) == []  # no database file, no storage directory


def test_validate_upload_rebuilds_the_model(tmp_path: Path) -> None:
    """A file that reads but whose tensors do not fit its architecture is refused."""
    from threedgl.artifact.format import read_artifact_bytes, write_artifact

    artifact = read_artifact_bytes(generator_bytes(tmp_path, seed=3))
    tensors = dict(artifact.tensors)
    tensors.pop(sorted(tensors)[0])
    path = tmp_path / "broken.3dgl"
    write_artifact(path, artifact.manifest, tensors)
    with pytest.raises(UploadRejected, match="invalid generator"):
        validate_upload(path.read_bytes(), Fed())


def _anchored_upload(tmp_path: Path) -> tuple[bytes, Any]:
    """A real default-mode DDP-βVAE (noisy counts, marginal anchor) on the test schema."""
    import warnings

    from server_fixtures import training_table
    from threedgl import DDPBetaVAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = DDPBetaVAE(epochs=1, random_state=0).fit(
            training_table(SCHEMA, 0, rows=400), target=SCHEMA.target, schema=SCHEMA
        )
    path = gen.save(tmp_path / "anchored.3dgl")
    return path.read_bytes(), gen


def test_validate_upload_recomputes_the_composed_budget_of_the_default_mode(tmp_path: Path) -> None:
    data, gen = _anchored_upload(tmp_path)
    checked = validate_upload(data, Fed())
    from threedgl.privacy.accounting import compute_epsilon

    for model, record in zip(checked.models, gen.privacy_, strict=True):
        # count + marginal anchor + DP-Adam, composed at the recorded Rényi order
        assert model.recomputed_epsilon == pytest.approx(record.recompute_epsilon(), rel=1e-12)
        assert 0.995 * record.epsilon <= model.recomputed_epsilon <= record.epsilon
        # DP-Adam's part alone is far below: the server counts every part
        alone = compute_epsilon(record.noise_multiplier, record.sample_rate, record.steps, 1e-4)
        assert alone < 0.8 * model.recomputed_epsilon
    # the policy sees the composed ε, not DP-Adam's part alone
    with pytest.raises(UploadRejected, match=r"above the policy.s max_epsilon=1\.8"):
        validate_upload(data, Fed(max_epsilon=1.8))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m["models"][0].update(rows=m["models"][0]["rows"] + 50), "do not follow from rows"),
        (lambda m: m["training"].update(epochs=m["training"]["epochs"] + 3), "do not follow from rows"),
        (lambda m: m["models"][0]["privacy"].update(rdp_order=3.0), "understates"),
        (lambda m: m["models"][1]["privacy"].pop("marginals_noise_multiplier"), "go together"),
        (lambda m: [p["privacy"].pop(k) for p in m["models"] for k in
                    ("rdp_order", "count_noise_multiplier", "marginals_noise_multiplier",
                     "pairs_noise_multiplier")],
         "needs its Rényi order"),
        (lambda m: [p["privacy"].update(rdp_order=9.0) for p in m["models"]],
         "not the order fixed by the target"),
        (lambda m: m["training"].update(epsilon="inf"), "target"),
        # issue 20: q underflowed and ceil(epochs / q) overflowed (a 500)
        (lambda m: m["training"].update(batch_size=1e-320), "'batch_size' must be an integer"),
        (lambda m: m["training"].update(epochs=2.5), "'epochs' must be an integer"),
        (lambda m: m["models"][0].update(rows=1e-300), "'rows' must be a number in \\[1"),
    ],
)
def test_validate_upload_cross_checks_the_sampling_of_the_default_mode(
    change: Any, words: str, tmp_path: Path
) -> None:
    import copy

    from threedgl.artifact.format import read_artifact_bytes, write_artifact

    data, _ = _anchored_upload(tmp_path)
    artifact = read_artifact_bytes(data)
    manifest = copy.deepcopy(artifact.manifest)
    change(manifest)
    path = tmp_path / "changed.3dgl"
    write_artifact(path, manifest, artifact.tensors)
    # Another order costs more than the target (the Gaussian parts' optimum is 8.5): a
    # generous policy lets the order check itself speak.
    policy = Fed(max_epsilon=2.5) if "order fixed" in words else Fed()
    with pytest.raises(UploadRejected, match=words):
        validate_upload(path.read_bytes(), policy)


def test_validate_upload_refuses_delta_at_least_one_over_rows(tmp_path: Path) -> None:
    """A class model of about 60 rows cannot claim δ = 0.05 ≥ 1/60, whatever the policy."""
    data = generator_bytes(tmp_path, delta=0.05, sigma=3.0)
    with pytest.raises(UploadRejected, match="at least 1/rows"):
        validate_upload(data, Fed(max_delta=0.5, max_epsilon=50.0))


def test_an_upload_with_a_costly_prv_record_is_refused_within_bounds(tmp_path: Path) -> None:
    """Issue 20, item 4: this record inside every documented bound gave MemoryError → 500."""
    import resource
    import time

    data = generator_bytes(tmp_path, sigma=0.8, sample_rate=0.5, steps=10_000,
                           accountant="prv", recorded_epsilon=500.0, delta=1e-5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    with pytest.raises(UploadRejected, match=r"points.*above the limit"):
        validate_upload(data, Fed(max_epsilon=1000.0))
    assert time.process_time() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB

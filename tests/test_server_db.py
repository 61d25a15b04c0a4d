"""The server's database layer: SQLite readers never queue behind a writer; migrations."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server_fixtures import postgres_database
from threedgl.server.db import (
    DB_SCHEMA_VERSION,
    init_database,
    make_engine,
    make_sessionmaker,
    writing,
)
from threedgl.server.models import Client, Federation, Generator, SchemaVersion


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A read used to start with BEGIN IMMEDIATE and queue behind every upload (60 s)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    init_database(engine)
    maker = make_sessionmaker(engine)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with maker() as session:
            writing(session)
            session.add(Federation(name="f", schema={}, max_epsilon=1.0, max_delta=1e-5,
                                   accountants=["rdp"], max_artifact_bytes=10))
            session.flush()  # holds SQLite's write lock until commit
            holding.set()
            release.wait(10)
            session.commit()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        t0 = time.perf_counter()
        with maker() as session:
            assert session.scalars(select(Federation)).all() == []  # its snapshot
            session.commit()
        assert time.perf_counter() - t0 < 2.0
    finally:
        release.set()
        thread.join()
    with maker() as session:
        assert [f.name for f in session.scalars(select(Federation))] == ["f"]


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    init_database(engine)
    with engine.begin() as conn:  # make it look like a version-1 database with one upload
        conn.execute(text("DROP INDEX ix_threedgl_generators_weights_sha256"))
        conn.execute(text("ALTER TABLE threedgl_generators DROP COLUMN weights_sha256"))
        conn.execute(text('ALTER TABLE threedgl_generators DROP COLUMN "table"'))
        conn.execute(text("UPDATE threedgl_schema_version SET version = 1"))
        conn.execute(text("INSERT INTO threedgl_federations (name, schema, max_epsilon, "
                          "max_delta, accountants, max_artifact_bytes, created) VALUES "
                          "('f', '{}', 1.9, 1e-4, '[\"rdp\"]', 100, '2026-01-01')"))
        conn.execute(text("INSERT INTO threedgl_clients (federation_id, name, token_sha256, "
                          "revoked, created) VALUES (1, 'c', 'aa', 0, '2026-01-01')"))
        conn.execute(text("INSERT INTO threedgl_generators (client_id, version, is_current, "
                          "sha256, size, generator, epsilon, delta, manifest, data, uploaded_at) VALUES "
                          "(1, 1, 1, 'bb', 3, 'dp-marginals', 1.0, 1e-4, "
                          "'{\"weights_sha256\": \"cc\"}', x'010203', '2026-01-01')"))
    assert init_database(make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")) == DB_SCHEMA_VERSION
    with Session(engine) as session:
        assert session.scalar(select(SchemaVersion.version)) == DB_SCHEMA_VERSION
        row = session.execute(text(
            'SELECT weights_sha256, "table" FROM threedgl_generators')).one()
    assert tuple(row) == ("cc", "default")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        with postgres_database() as url:
            yield url


def test_a_version_2_database_with_racing_duplicates_is_migrated(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Version 2 could hold the same weights twice (the PostgreSQL race of issue 20);
    version 3 makes the hash unique: the first upload keeps it, the copy keeps its bytes
    and loses its hash, logged for the administrator, and the index then refuses any copy."""
    engine = make_engine(database_url)
    init_database(engine)
    with engine.begin() as conn:  # make it a version-2 database (a plain index)
        conn.execute(text("DROP INDEX ix_threedgl_generators_weights_sha256"))
        conn.execute(text("CREATE INDEX ix_threedgl_generators_weights_sha256 "
                          "ON threedgl_generators (weights_sha256)"))
        conn.execute(text("UPDATE threedgl_schema_version SET version = 2"))
    with Session(engine) as session, session.begin():
        federation = Federation(name="f", schema={}, max_epsilon=1.9, max_delta=1e-4,
                                accountants=["rdp"], max_artifact_bytes=100)
        session.add(federation)
        session.flush()
        clients = [Client(federation_id=federation.id, name=n, token_sha256=n * 32)
                   for n in ("a", "b", "c")]
        session.add_all(clients)
        session.flush()
        for client, weights in zip(clients, ("w1", "w1", "w2"), strict=True):
            session.add(Generator(client_id=client.id, version=1, sha256="s" + client.name,
                                  weights_sha256=weights, size=3, generator="dp-marginals",
                                  epsilon=1.0, delta=1e-4, manifest={}, data=b"abc"))
    engine.dispose()

    engine = make_engine(database_url)
    with caplog.at_level("WARNING", logger="threedgl.server"):
        assert init_database(engine) == DB_SCHEMA_VERSION == 3
    assert "client 'b' in federation 'f'" in caplog.text
    with Session(engine) as session:
        rows = session.execute(
            select(Client.name, Generator.weights_sha256, Generator.data)
            .join(Client, Client.id == Generator.client_id).order_by(Client.name)).all()
        assert [tuple(r) for r in rows] == [("a", "w1", b"abc"), ("b", None, b"abc"),
                                            ("c", "w2", b"abc")]
        assert session.scalar(select(SchemaVersion.version)) == 3
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(Generator(client_id=3, version=2, sha256="x", weights_sha256="w1",
                              size=3, generator="dp-marginals", epsilon=1.0, delta=1e-4,
                              manifest={}, data=b"abc"))
    engine.dispose()

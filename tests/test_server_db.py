"""The server's database layer: SQLite readers never queue behind a writer; migrations."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from threedgl.server.db import (
    DB_SCHEMA_VERSION,
    init_database,
    make_engine,
    make_sessionmaker,
    writing,
)
from threedgl.server.models import Federation, SchemaVersion


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

"""The engine and the versioned creation of the tables.

:func:`make_engine` builds an engine for SQLite or PostgreSQL. :func:`init_database`
creates missing tables and checks the ``threedgl_schema_version`` table: an empty
database is stamped with :data:`DB_SCHEMA_VERSION`; a database written by a newer
server (a higher version) is refused, so an old server never corrupts it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from threedgl.errors import ThreedglError
from threedgl.server.models import Base, SchemaVersion

_log = logging.getLogger("threedgl.server")

#: Version of the server's tables. Bump it with a migration when a table changes.
#: 2: generators gained ``weights_sha256`` (replays) and ``table`` (budget across uploads).
#: 3: ``weights_sha256`` is unique: the database, not only the code, refuses a replay.
DB_SCHEMA_VERSION = 3


class DatabaseError(ThreedglError):
    """The database cannot be used by this server (unreachable, unknown version)."""


#: Connections per server process: at least the worker threads (anyio's 40), so a thread
#: never waits for a connection (each holds at most one, released before any thread hop).
POOL_SIZE, POOL_OVERFLOW = 10, 40


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and serialised writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE,
                         max_overflow=POOL_OVERFLOW, pool_timeout=60)


#: Execution option of a connection whose transaction will write (see :func:`writing`).
WRITE_OPTION = "threedgl_write"


def writing(session: Session) -> None:
    """Start ``session``'s next transaction as a write (SQLite: ``BEGIN IMMEDIATE``).

    Call it first in a function that writes, after ending any read transaction. Reads
    start with a plain deferred ``BEGIN`` and never take SQLite's write lock, so readers
    (authentication, the pool) never queue behind uploads; a writer takes the lock up
    front and queues on the busy timeout instead of failing halfway with "database is
    locked".
    """
    session.connection(execution_options={WRITE_OPTION: True})


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling is switched off (isolation_level None) and we
    # issue BEGIN ourselves: IMMEDIATE for writes (see ``writing``), deferred for reads.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _migrate_1_to_2(engine: Engine) -> None:
    """Add ``weights_sha256`` (filled from each stored manifest) and ``table``, in one go."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE threedgl_generators ADD COLUMN weights_sha256 VARCHAR(64)")
        conn.exec_driver_sql(
            "ALTER TABLE threedgl_generators ADD COLUMN \"table\" VARCHAR(64) "
            "NOT NULL DEFAULT 'default'")
        conn.exec_driver_sql(
            "CREATE INDEX ix_threedgl_generators_weights_sha256 "
            "ON threedgl_generators (weights_sha256)")
        rows = conn.execute(text("SELECT id, manifest FROM threedgl_generators")).all()
        for row_id, manifest in rows:
            if isinstance(manifest, str):
                import json

                manifest = json.loads(manifest)
            conn.execute(
                text("UPDATE threedgl_generators SET weights_sha256 = :w WHERE id = :i"),
                {"w": manifest.get("weights_sha256"), "i": row_id},
            )
        conn.execute(text("UPDATE threedgl_schema_version SET version = 2"))


def _migrate_2_to_3(engine: Engine) -> None:
    """Make ``weights_sha256`` unique (one stored copy of any weights, per server).

    A version-2 server could store the same weights twice when two clients uploaded them
    at the same instant on PostgreSQL (the check ran under READ COMMITTED, with only the
    uploader's row locked). The first upload keeps the hash; the later copies keep their
    bytes and versions but lose the hash, and each is logged for the administrator to
    review (``3dgl admin client revoke``). Nothing is deleted.
    """
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})  # SQLite: BEGIN IMMEDIATE
        with conn.begin():
            if engine.dialect.name == "postgresql":  # no insert between the check and the index
                conn.exec_driver_sql(
                    "LOCK TABLE threedgl_generators IN SHARE ROW EXCLUSIVE MODE")
            duplicates = conn.execute(text(
                "SELECT g.id, g.weights_sha256, c.name, f.name FROM threedgl_generators g "
                "JOIN threedgl_clients c ON c.id = g.client_id "
                "JOIN threedgl_federations f ON f.id = c.federation_id "
                "WHERE g.weights_sha256 IS NOT NULL AND g.id > (SELECT MIN(h.id) FROM "
                "threedgl_generators h WHERE h.weights_sha256 = g.weights_sha256) ORDER BY g.id"
            )).all()
            for row_id, weights, client, federation in duplicates:
                _log.warning(
                    "migration to server schema 3: generator %d of client '%s' in federation "
                    "'%s' holds weights (sha256 %s…) stored earlier by another upload; its hash "
                    "is cleared so the unique index can be built (review the client)",
                    row_id, client, federation, str(weights)[:12])
                conn.execute(text("UPDATE threedgl_generators SET weights_sha256 = NULL "
                                  "WHERE id = :i"), {"i": row_id})
            conn.exec_driver_sql("DROP INDEX ix_threedgl_generators_weights_sha256")
            conn.exec_driver_sql(
                "CREATE UNIQUE INDEX ix_threedgl_generators_weights_sha256 "
                "ON threedgl_generators (weights_sha256)")
            conn.execute(text("UPDATE threedgl_schema_version SET version = 3"))


#: Migrations by the version they start from; each brings the database one version up.
MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def init_database(engine: Engine) -> int:
    """Create the tables if needed and check their version; return the version.

    Raises :class:`DatabaseError` (one line) for an unreachable database or a database
    stamped with a version this server does not know.
    """
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        hint = ""
        if "does not exist" in first and engine.url.get_backend_name() == "postgresql":
            hint = (f" (the server creates its tables, not the database: create it first, "
                    f"e.g. createdb {engine.url.database})")
        raise DatabaseError(f"cannot open the database {where}: {first}{hint}") from None
    ours = {t.name for t in Base.metadata.sorted_tables}
    try:
        if SchemaVersion.__tablename__ in tables:
            with Session(engine) as session:
                versions = list(session.scalars(select(SchemaVersion.version)))
            if versions:
                found = max(versions)
                if found > DB_SCHEMA_VERSION:
                    raise DatabaseError(
                        f"the database {where} has server schema version {found}, newer than "
                        f"this server's version {DB_SCHEMA_VERSION}; upgrade threedgl"
                    )
                if found < DB_SCHEMA_VERSION:
                    if found not in MIGRATIONS:
                        raise DatabaseError(
                            f"the database {where} has server schema version {found}; this "
                            f"server needs version {DB_SCHEMA_VERSION} and has no migration "
                            "from it"
                        )
                    for version in range(found, DB_SCHEMA_VERSION):
                        MIGRATIONS[version](engine)
                Base.metadata.create_all(engine, checkfirst=True)
                return DB_SCHEMA_VERSION
        elif tables & ours:
            raise DatabaseError(
                f"the database {where} has threedgl tables but no schema version; "
                "refusing to touch it"
            )
        Base.metadata.create_all(engine, checkfirst=True)
        with Session(engine) as session, session.begin():
            if session.scalar(select(SchemaVersion.version)) is None:
                session.add(SchemaVersion(version=DB_SCHEMA_VERSION))
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DatabaseError(f"cannot prepare the database {where}: {first}") from None
    return DB_SCHEMA_VERSION

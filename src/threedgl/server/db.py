"""The engine and the versioned creation of the tables.

:func:`make_engine` builds an engine for SQLite or PostgreSQL. :func:`init_database`
creates missing tables and checks the ``threedgl_schema_version`` table: an empty
database is stamped with :data:`DB_SCHEMA_VERSION`; a database written by a newer
server (a higher version) is refused, so an old server never corrupts it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from threedgl.errors import ThreedglError
from threedgl.server.models import Base, SchemaVersion

#: Version of the server's tables. Bump it with a migration when a table changes.
DB_SCHEMA_VERSION = 1


class DatabaseError(ThreedglError):
    """The database cannot be used by this server (unreachable, unknown version)."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and serialised writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=8,
            max_overflow=24,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=24, pool_timeout=60)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take the write lock up
    # front; a reader that later writes could then fail with "database is locked". We
    # issue BEGIN IMMEDIATE ourselves so transactions queue on the busy timeout instead.
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
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
        raise DatabaseError(f"cannot open the database {where}: {first}") from None
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
                if found < DB_SCHEMA_VERSION:  # pragma: no cover - no older version exists yet
                    raise DatabaseError(
                        f"the database {where} has server schema version {found}; this server "
                        f"needs version {DB_SCHEMA_VERSION} and has no migration from it"
                    )
                Base.metadata.create_all(engine, checkfirst=True)
                return found
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

"""The server's tables (SQLAlchemy 2 ORM): federations, clients, generators.

A generator's bytes are stored in the database (``LargeBinary``), so one database is the
whole state of the server; earlier versions of a client's generator are kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    """One row: the version of these tables (see :data:`threedgl.server.db.DB_SCHEMA_VERSION`)."""

    __tablename__ = "threedgl_schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Federation(Base):
    """A federation: its protocol (the public schema) and its privacy policy."""

    __tablename__ = "threedgl_federations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_epsilon: Mapped[float] = mapped_column(Float)
    max_delta: Mapped[float] = mapped_column(Float)
    accountants: Mapped[list[str]] = mapped_column(JSON)
    max_artifact_bytes: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    clients: Mapped[list[Client]] = relationship(
        back_populates="federation", order_by="Client.name"
    )


class Client(Base):
    """A client of a federation. Its token is stored only as a sha256 hash.

    Tokens are random 32-byte URL-safe secrets (256 bits), so a fast hash is enough: no
    dictionary or brute-force attack on the hash is feasible, unlike a user password,
    which would need a slow salted hash (bcrypt, argon2).
    """

    __tablename__ = "threedgl_clients"
    __table_args__ = (UniqueConstraint("federation_id", "name", name="uq_client_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    federation_id: Mapped[int] = mapped_column(
        ForeignKey("threedgl_federations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    federation: Mapped[Federation] = relationship(back_populates="clients")
    generators: Mapped[list[Generator]] = relationship(
        back_populates="client", order_by="Generator.version"
    )


class Generator(Base):
    """One uploaded version of a client's generator (the ``.3dgl`` bytes and its manifest)."""

    __tablename__ = "threedgl_generators"
    __table_args__ = (UniqueConstraint("client_id", "version", name="uq_generator_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("threedgl_clients.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    #: The manifest's sha256 of the weights (layout-independent): a replay is the same
    #: weights in other bytes. Added in schema version 2, unique since version 3 (the
    #: database refuses the second of two identical uploads racing each other).
    weights_sha256: Mapped[str | None] = mapped_column(
        String(64), index=True, unique=True, default=None)
    #: The private table the client declared it trained on (``X-Threedgl-Table``);
    #: generators of one client on one table compose. Added in schema version 2.
    table: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    size: Mapped[int] = mapped_column(BigInteger)
    generator: Mapped[str] = mapped_column(String(64))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    client: Mapped[Client] = relationship(back_populates="generators")

"""Every write to the database, and the reads the routes share.

Functions take a :class:`~sqlalchemy.orm.Session` and commit their own transaction.
Conflicts (a duplicate name) raise :class:`Conflict`; missing rows raise :class:`NotFound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from threedgl.errors import ThreedglError
from threedgl.server.models import Client, Federation, Generator
from threedgl.server.schemas import FederationCreate
from threedgl.server.security import new_token, token_sha256
from threedgl.server.validation import ValidatedGenerator


class NotFound(ThreedglError):
    """HTTP 404."""


class Conflict(ThreedglError):
    """HTTP 409."""


# -- federations ------------------------------------------------------------------------
def create_federation(
    session: Session, body: FederationCreate, schema: dict[str, Any]
) -> Federation:
    federation = Federation(
        name=body.name,
        schema=schema,
        max_epsilon=body.policy.max_epsilon,
        max_delta=body.policy.max_delta,
        accountants=list(body.policy.accountants),
        max_artifact_bytes=body.policy.max_artifact_bytes,
    )
    session.add(federation)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a federation named '{body.name}' already exists") from None
    return federation


def get_federation(session: Session, name: str) -> Federation:
    federation = session.scalar(select(Federation).where(Federation.name == name))
    if federation is None:
        raise NotFound(f"no federation named '{name}'")
    return federation


# -- clients ----------------------------------------------------------------------------
def create_client(session: Session, federation: Federation, name: str) -> tuple[Client, str]:
    """Add a client; return it and its token (the only time the token exists in clear)."""
    token = new_token()
    client = Client(federation_id=federation.id, name=name, token_sha256=token_sha256(token))
    session.add(client)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"federation '{federation.name}' already has a client named '{name}'"
        ) from None
    return client, token


def get_client(session: Session, federation: Federation, name: str) -> Client:
    client = session.scalar(
        select(Client).where(Client.federation_id == federation.id, Client.name == name)
    )
    if client is None:
        raise NotFound(f"federation '{federation.name}' has no client named '{name}'")
    return client


def client_by_token_hash(session: Session, digest: str) -> Client | None:
    return session.scalar(
        select(Client).options(joinedload(Client.federation)).where(Client.token_sha256 == digest)
    )


def revoke_client(session: Session, client: Client) -> Client:
    client.revoked = True
    session.commit()
    return client


# -- generators -------------------------------------------------------------------------
def store_generator(
    session: Session, client: Client, checked: ValidatedGenerator, data: bytes
) -> Generator:
    """Store ``data`` as the client's new current version; earlier versions are kept.

    The client's row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
    serialises writers) so two uploads by one client get distinct version numbers.
    """
    session.commit()  # end any read transaction: the write below starts a fresh one
    for attempt in range(5):
        try:
            session.scalar(select(Client.id).where(Client.id == client.id).with_for_update())
            last = session.scalar(
                select(func.max(Generator.version)).where(Generator.client_id == client.id)
            )
            session.execute(
                update(Generator)
                .where(Generator.client_id == client.id, Generator.is_current.is_(True))
                .values(is_current=False)
            )
            generator = Generator(
                client_id=client.id,
                version=(last or 0) + 1,
                is_current=True,
                sha256=checked.sha256,
                size=checked.size,
                generator=checked.generator,
                epsilon=checked.epsilon,
                delta=checked.delta,
                manifest=checked.manifest,
                data=data,
            )
            session.add(generator)
            session.commit()
            return generator
        except IntegrityError:
            session.rollback()
            if attempt == 4:
                raise Conflict(
                    "another upload by this client was stored at the same time; retry"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def current_generator(session: Session, client: Client) -> Generator | None:
    return session.scalar(
        select(Generator).where(Generator.client_id == client.id, Generator.is_current.is_(True))
    )


def pool(session: Session, federation: Federation) -> Sequence[tuple[Client, Generator]]:
    """Current generators of the federation's clients that are not revoked, by client name."""
    rows = session.execute(
        select(Client, Generator)
        .join(Generator, Generator.client_id == Client.id)
        .where(
            Client.federation_id == federation.id,
            Client.revoked.is_(False),
            Generator.is_current.is_(True),
        )
        .order_by(Client.name)
    ).all()
    return [(c, g) for c, g in rows]


def pool_generator_bytes(
    session: Session, federation: Federation, name: str
) -> tuple[Generator, bytes]:
    client = get_client(session, federation, name)
    generator = current_generator(session, client)
    if client.revoked or generator is None:
        raise NotFound(
            f"client '{name}' of federation '{federation.name}' has no generator in the pool"
        )
    return generator, generator.data


def version_counts(session: Session, federation: Federation) -> dict[int, tuple[int, int | None]]:
    """client id -> (number of versions, current version)."""
    rows = session.execute(
        select(Generator.client_id, func.count(Generator.id), func.max(Generator.version))
        .join(Client, Client.id == Generator.client_id)
        .where(Client.federation_id == federation.id)
        .group_by(Generator.client_id)
    ).all()
    return {cid: (int(n), int(v) if v is not None else None) for cid, n, v in rows}

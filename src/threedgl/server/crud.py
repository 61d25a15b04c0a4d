"""Every write to the database, and the reads the routes share.

Functions take a :class:`~sqlalchemy.orm.Session` and commit their own transaction.
Conflicts (a duplicate name) raise :class:`Conflict`; missing rows raise :class:`NotFound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from threedgl.errors import ThreedglError
from threedgl.server.db import writing
from threedgl.server.models import Client, Federation, Generator
from threedgl.server.schemas import FederationCreate
from threedgl.server.security import new_token, token_sha256
from threedgl.server.validation import ValidatedGenerator

#: The table a generator is declared to be trained on, when the client names none.
DEFAULT_TABLE = "default"


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
    session.commit()
    writing(session)
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
    session.commit()
    writing(session)
    session.add(client)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"federation '{federation.name}' already has a client named '{name}'"
        ) from None
    return client, token


def new_client_token(session: Session, client: Client) -> str:
    """Replace a client's token (the old one stops working at once); return the new one.

    The recovery of a registration whose answer was lost: a retry of the registration is
    a 409 (the name is taken) and the token exists nowhere, so the admin issues a new one.
    A revoked client stays revoked (:class:`Conflict`)."""
    session.commit()
    writing(session)
    session.refresh(client)
    if client.revoked:
        session.rollback()
        raise Conflict(f"client '{client.name}' is revoked: it gets no new token")
    token = new_token()
    client.token_sha256 = token_sha256(token)
    session.commit()
    return token


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
    session.commit()
    writing(session)
    client.revoked = True
    session.commit()
    return client


# -- generators -------------------------------------------------------------------------
class Replay(Conflict):
    """The weights are already in the federation, uploaded by another client (HTTP 409)."""


class QuotaExceeded(Conflict):
    """The client's version limit or storage quota would be exceeded (HTTP 409)."""


class BudgetExceeded(ThreedglError):
    """The client's generators on one table, composed, exceed the policy (HTTP 422)."""


@dataclass(frozen=True)
class Limits:
    """Per-client limits of a server (``Settings``)."""

    max_versions: int
    max_client_bytes: int


def store_generator(
    session: Session,
    client: Client,
    checked: ValidatedGenerator,
    data: bytes,
    *,
    table: str = DEFAULT_TABLE,
    limits: Limits | None = None,
) -> tuple[Generator, bool]:
    """Store ``data`` as the client's new current version; return it and whether it is new.

    In one write transaction, with the client's row locked (``SELECT ... FOR UPDATE`` on
    PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``):

    * the same file already stored for this client (a retried upload): that version is
      returned and nothing is stored (idempotent); the same weights in another file:
      :class:`Conflict` (a stored manifest is never replaced);
    * the same weights stored for another client, in any federation of this server:
      :class:`Replay` (an exact match only: a perturbed copy is not detected);
    * the client's version limit or storage quota exceeded: :class:`QuotaExceeded`;
    * the client's generators declared on ``table``, this one included, composed by the
      RDP accountant (sequential composition over versions, parallel over classes), above
      the federation's ``max_epsilon``: :class:`BudgetExceeded`.
    """
    session.commit()  # end any read transaction: the write below starts a fresh one
    weights = str(checked.manifest["weights_sha256"])
    for attempt in range(5):
        try:
            writing(session)
            session.scalar(select(Client.id).where(Client.id == client.id).with_for_update())
            same = session.execute(
                select(Generator, Client.id)
                .join(Client, Client.id == Generator.client_id)
                .where(Generator.weights_sha256 == weights)  # in any federation
                .order_by(Generator.id)
            ).first()
            if same is not None:
                stored, owner = same
                if owner != client.id:  # the except clause below rolls back
                    raise Replay(
                        "these weights are already on this server, uploaded by another "
                        "client: a generator can be contributed once, by the client that "
                        "trained it"
                    )
                if stored.sha256 != checked.sha256:
                    raise Conflict(
                        f"these weights were already uploaded (version {stored.version}) in "
                        "another file: a stored generator's manifest cannot be changed"
                    )
                session.commit()  # a retry of the same file: the stored version
                return stored, False
            versions, stored_bytes, last = session.execute(
                select(func.count(Generator.id), func.coalesce(func.sum(Generator.size), 0),
                       func.max(Generator.version))
                .where(Generator.client_id == client.id)
            ).one()
            if limits is not None:
                _check_limits(limits, int(versions), int(stored_bytes), checked.size)
            _check_budget(session, client, table, checked)
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
                weights_sha256=weights,
                table=table,
                size=checked.size,
                generator=checked.generator,
                epsilon=checked.epsilon,
                delta=checked.delta,
                manifest=checked.manifest,
                data=data,
            )
            session.add(generator)
            session.commit()
            return generator, True
        except IntegrityError:
            session.rollback()
            if attempt == 4:
                raise Conflict(
                    "another upload by this client was stored at the same time; retry"
                ) from None
        except ThreedglError:
            session.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _check_limits(limits: Limits, versions: int, stored: int, size: int) -> None:
    if versions + 1 > limits.max_versions:
        raise QuotaExceeded(
            f"this client has {versions} stored versions, the server's limit "
            f"(THREEDGL_MAX_VERSIONS_PER_CLIENT={limits.max_versions}); ask the administrator"
        )
    if stored + size > limits.max_client_bytes:
        raise QuotaExceeded(
            f"this upload would bring the client's stored generators to {stored + size} bytes, "
            f"above the server's quota (THREEDGL_MAX_CLIENT_BYTES={limits.max_client_bytes})"
        )


def _check_budget(session: Session, client: Client, table: str,
                  checked: ValidatedGenerator) -> None:
    from threedgl.privacy.ledger import compose_entries

    federation = client.federation
    earlier = session.scalars(
        select(Generator.manifest).where(Generator.client_id == client.id,
                                         Generator.table == table)
    ).all()
    if not earlier:  # alone, it was checked with its own accountant (PRV is tighter)
        return
    entries = [{"models": m["models"], "target": m["schema"].get("target")}
               for m in [*earlier, checked.manifest]]
    epsilon, _ = compose_entries(entries, accountant="rdp")
    if epsilon > federation.max_epsilon:
        raise BudgetExceeded(
            f"this generator and the client's {len(earlier)} earlier one(s) on table "
            f"'{table}', composed, spend epsilon={epsilon:.4g}, above the policy's "
            f"max_epsilon={federation.max_epsilon!r} of federation '{federation.name}' "
            "(successive generators trained on the same table add up; declare another table "
            "with the X-Threedgl-Table header only if the rows are disjoint)"
        )


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

"""Dependencies injected into the routes: settings, the session, the admin and the client.

Authentication is a bearer token in the ``Authorization`` header. The client is found
by the sha256 of its token and compared with ``hmac.compare_digest``; a token that
matches nobody is compared against a dummy hash, so both cases cost the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from threedgl.server import crud
from threedgl.server.config import Settings
from threedgl.server.models import Client
from threedgl.server.security import hashes_match, is_admin_token, token_sha256

admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="The federation administrator's secret."
)
client_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ClientToken",
    description="A client's token (given once by the admin).",
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request, closed in the event loop when the request is done.

    Closing returns the connection to the pool (a rollback, microseconds on SQLite and on
    a local PostgreSQL). Done here rather than in a worker thread, a finished request
    never holds a connection while it waits for a thread: under load (200 clients) that
    wait used to exhaust the pool for 60 s (answers 500). Routes and dependencies end
    their read transactions before handing over to another thread.
    """
    maker: sessionmaker[Session] = request.app.state.sessionmaker
    session = maker()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _lookup_client(session: Session, token: str) -> Client | None:
    digest = token_sha256(token)
    client = crud.client_by_token_hash(session, digest)
    stored = client.token_sha256 if client is not None else None
    return client if hashes_match(stored, digest) else None


def require_admin(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
) -> None:
    if credentials is None:
        raise _unauthorized("missing admin token (send the header 'Authorization: Bearer <token>')")
    if is_admin_token(credentials.credentials, settings.admin_secret):
        return
    if _lookup_client(session, credentials.credentials) is not None:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="this route is for the federation administrator only; a client token "
            "cannot use it",
        )
    raise _unauthorized("wrong admin token")


def current_client(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(client_bearer)],
) -> Client:
    """The client whose token was presented: the only identity a client ever has."""
    if credentials is None:
        raise _unauthorized(
            "missing client token (send the header 'Authorization: Bearer <token>')"
        )
    client = _lookup_client(session, credentials.credentials)
    # End the lookup's transaction now (SQLite: release the lock) so an upload does not hold
    # one while its body streams in; the row and its federation stay loaded.
    session.commit()
    if client is None:
        raise _unauthorized("unknown client token")
    if client.revoked:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"client '{client.name}' of federation '{client.federation.name}' has been "
            "revoked by the federation administrator",
        )
    return client


AdminDep = Depends(require_admin)
ClientDep = Annotated[Client, Depends(current_client)]

"""The HTTP API: thin routes over :mod:`.crud` and :mod:`.validation`.

Admin routes need the admin token; client routes need a client token, and the client's
identity comes from its token only: the one write a client can make is to its own
generator (``PUT /api/v1/generator``), and there is no route that names another
client's generator for writing.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from threedgl import __version__
from threedgl.server import crud
from threedgl.server.db import DB_SCHEMA_VERSION
from threedgl.server.deps import AdminDep, ClientDep, SessionDep, SettingsDep
from threedgl.server.models import Client, Federation, Generator
from threedgl.server.schemas import (
    NAME_PATTERN,
    ClientCreate,
    ClientCreated,
    ClientPublic,
    ClientSummary,
    FederationCreate,
    FederationPublic,
    GeneratorPublic,
    Health,
    Me,
    Message,
    PolicyPublic,
    PoolEntry,
    PoolPublic,
)
from threedgl.server.validation import validate_upload

#: The header naming the private table an uploaded generator was trained on.
TABLE_HEADER = "X-Threedgl-Table"

CONTRIBUTE_TO_ACCESS = (
    "contribute to access: the Generators Pool is open only to clients whose own generator "
    "has been accepted; upload yours first (PUT /api/v1/generator, or `3dgl publish`)"
)

Name = Annotated[str, Path(pattern=NAME_PATTERN)]

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Message, "description": "Missing or wrong token"},
    403: {"model": Message, "description": "Not allowed"},
    404: {"model": Message, "description": "Not found"},
    422: {"model": Message, "description": "Invalid input"},
}

public = APIRouter(prefix="/api/v1", tags=["server"])
admin = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminDep], responses=ERRORS)
clients = APIRouter(prefix="/api/v1", tags=["client"], responses=ERRORS)


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


# -- public -----------------------------------------------------------------------------
@public.get("/health", response_model=Health)
def health() -> Health:
    return Health(version=__version__, db_schema_version=DB_SCHEMA_VERSION)


# -- admin ------------------------------------------------------------------------------
def _federation_public(session: SessionDep, federation: Federation) -> FederationPublic:
    counts = crud.version_counts(session, federation)
    return FederationPublic(
        name=federation.name,
        schema=federation.schema,
        policy=PolicyPublic(
            max_epsilon=federation.max_epsilon,
            max_delta=federation.max_delta,
            accountants=list(federation.accountants),
            max_artifact_bytes=federation.max_artifact_bytes,
        ),
        created=_utc(federation.created),
        clients=[
            ClientSummary(
                name=c.name,
                revoked=c.revoked,
                created=_utc(c.created),
                versions=counts.get(c.id, (0, None))[0],
                current_version=counts.get(c.id, (0, None))[1],
            )
            for c in federation.clients
        ],
    )


@admin.post(
    "/federations",
    status_code=status.HTTP_201_CREATED,
    response_model=FederationPublic,
    responses={409: {"model": Message, "description": "Name taken"}},
)
def create_federation(
    body: FederationCreate, session: SessionDep, settings: SettingsDep
) -> FederationPublic:
    """Create a federation: its protocol (the public schema) and its privacy policy."""
    from threedgl.schema.schema import Schema

    schema = Schema.from_dict(body.schema_)  # SchemaError -> 422
    if body.policy.max_artifact_bytes > settings.max_upload_bytes:
        raise HTTPException(
            status_code=422,
            detail=f"policy.max_artifact_bytes={body.policy.max_artifact_bytes} is above this "
            f"server's limit of {settings.max_upload_bytes} bytes (THREEDGL_MAX_UPLOAD_BYTES)",
        )
    federation = crud.create_federation(session, body, schema.to_dict())
    return _federation_public(session, federation)


@admin.get("/federations/{name}", response_model=FederationPublic)
def read_federation(name: Name, session: SessionDep) -> FederationPublic:
    """A federation's protocol, policy and clients (never their tokens)."""
    return _federation_public(session, crud.get_federation(session, name))


@admin.post(
    "/federations/{name}/clients",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    responses={409: {"model": Message, "description": "Name taken"}},
)
def create_client(name: Name, body: ClientCreate, session: SessionDep) -> ClientCreated:
    """Add a client; the answer holds its token, shown this once (the server keeps a hash)."""
    federation = crud.get_federation(session, name)
    client, token = crud.create_client(session, federation, body.name)
    return ClientCreated(
        federation=federation.name, name=client.name, token=token, created=_utc(client.created)
    )


@admin.post(
    "/federations/{name}/clients/{client}/token",
    response_model=ClientCreated,
    responses={409: {"model": Message, "description": "The client is revoked"}},
)
def new_client_token(name: Name, client: Name, session: SessionDep) -> ClientCreated:
    """Issue a client a new token (shown this once); its old token stops working. Recovers
    a registration whose answer was lost (a retry of the registration is a 409)."""
    federation = crud.get_federation(session, name)
    row = crud.get_client(session, federation, client)
    token = crud.new_client_token(session, row)
    return ClientCreated(
        federation=federation.name, name=row.name, token=token, created=_utc(row.created)
    )


@admin.post("/federations/{name}/clients/{client}/revoke", response_model=ClientPublic)
def revoke_client(name: Name, client: Name, session: SessionDep) -> ClientPublic:
    """Revoke a client: its token stops working and its generator leaves the pool."""
    federation = crud.get_federation(session, name)
    row = crud.revoke_client(session, crud.get_client(session, federation, client))
    return ClientPublic(
        federation=federation.name, name=row.name, revoked=row.revoked, created=_utc(row.created)
    )


# -- clients ----------------------------------------------------------------------------
def require_contribution(client: ClientDep, session: SessionDep) -> Client:
    """The caller, provided its own generator has been accepted ("contribute to access")."""
    contributed = crud.current_generator(session, client) is not None
    session.commit()  # end the read: the route may run in another worker thread
    if not contributed:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=CONTRIBUTE_TO_ACCESS)
    return client


ContributorDep = Annotated[Client, Depends(require_contribution)]


@clients.get("/me", response_model=Me)
def me(client: ClientDep, session: SessionDep) -> Me:
    """Who the token belongs to, and whether its generator has been accepted."""
    current = crud.current_generator(session, client)
    return Me(
        federation=client.federation.name,
        name=client.name,
        contributed=current is not None,
        current_version=current.version if current is not None else None,
    )


@clients.put(
    "/generator",
    status_code=status.HTTP_201_CREATED,
    response_model=GeneratorPublic,
    responses={
        200: {"model": GeneratorPublic, "description": "Already stored (a retried upload)"},
        409: {"model": Message, "description": "Replayed weights, or a quota exceeded"},
        413: {"model": Message, "description": "Generator file too large"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_generator(
    request: Request,
    response: Response,
    client: ClientDep,
    session: SessionDep,
    settings: SettingsDep,
    table: Annotated[str, Header(alias=TABLE_HEADER, pattern=NAME_PATTERN,
                                 description="The private table the generator was trained "
                                 "on; a client's generators on one table compose.")]
    = crud.DEFAULT_TABLE,
) -> GeneratorPublic:
    """Upload the caller's generator (a ``.3dgl`` file as the raw body).

    Checked against the federation's protocol (schema, privacy policy with ε recomputed
    by the server) and stored as the caller's new current version (201); earlier versions
    are kept. The caller's generators declared on the same table (``X-Threedgl-Table``,
    default ``default``) are composed and must stay within the policy. A retried upload
    (the same weights by the same client) returns the stored version (200); the weights
    of another client are refused (409, a replay). The size limit is enforced while the
    body streams in.
    """
    federation = client.federation
    limit = min(federation.max_artifact_bytes, settings.max_upload_bytes)
    too_large = HTTPException(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"the generator file is larger than the limit of {limit} bytes of federation "
        f"'{federation.name}'",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large
        chunks.append(chunk)
    data = b"".join(chunks)
    del chunks
    if not data:
        raise HTTPException(
            status_code=422,
            detail="empty body: send the .3dgl file as the request body (application/octet-stream)",
        )
    checked = await run_in_threadpool(validate_upload, data, federation, max_bytes=limit)
    limits = crud.Limits(settings.max_versions_per_client, settings.max_client_bytes)
    stored, created = await run_in_threadpool(
        functools.partial(crud.store_generator, table=table, limits=limits),
        session, client, checked, data,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return GeneratorPublic(
        federation=federation.name,
        **_entry(client, stored).model_dump(),
        models=list(checked.models),
        table=stored.table,
        created=created,
    )


def _entry(client: Client, generator: Generator) -> PoolEntry:
    """What anyone in the pool may know of a stored generator."""
    return PoolEntry(
        client=client.name,
        version=generator.version,
        sha256=generator.sha256,
        size=generator.size,
        generator=generator.generator,
        epsilon=generator.epsilon,
        delta=generator.delta,
        uploaded_at=_utc(generator.uploaded_at),
    )


@clients.get("/pool", response_model=PoolPublic)
def list_pool(client: ContributorDep, session: SessionDep) -> PoolPublic:
    """The Generators Pool: every current generator of the federation (own one included)."""
    from threedgl.pool.shares import class_shares

    federation = client.federation
    members = crud.pool(session, federation)
    session.commit()  # release the connection before the answer is sent
    rows = [{str(m.get("label")): m.get("rows", 1) for m in g.manifest.get("models", [])}
            for _, g in members]
    labels = list(dict.fromkeys(label for r in rows for label in r))
    shares = class_shares(rows, labels)
    entries = [_entry(c, g).model_copy(update={"shares": {k: round(v, 6) for k, v in s.items()}})
               for (c, g), s in zip(members, shares, strict=True)]
    return PoolPublic(federation=federation.name, generators=entries)


@clients.get(
    "/pool/{name}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The .3dgl file"}},
)
def download_generator(name: Name, client: ContributorDep, session: SessionDep) -> Response:
    """Download one generator of the pool; ``X-Threedgl-Sha256`` is the sha256 of the bytes."""
    generator, data = crud.pool_generator_bytes(session, client.federation, name)
    session.commit()  # release the connection before the bytes are sent
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={
            "X-Threedgl-Sha256": generator.sha256,
            "X-Threedgl-Version": str(generator.version),
            "Content-Disposition": f'attachment; filename="{name}.3dgl"',
        },
    )

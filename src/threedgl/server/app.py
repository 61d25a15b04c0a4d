"""The application factory: :func:`create_app` builds the engine, the tables and the routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from threedgl import __version__
from threedgl.errors import ThreedglError
from threedgl.server.config import Settings, describe_validation_error

DESCRIPTION = """\
The 3DGL Global Server: clients of a federation upload their differentially private
generator (checked against the federation's schema and privacy policy, with ε recomputed
by the server) and, once accepted, download the Generators Pool ("contribute to access").
"""


def encodable(text: str) -> str:
    """``text`` with anything that is not valid Unicode (lone surrogates) escaped.

    An error message may quote a value from a hostile file; the response must still encode.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


#: The largest body of any request but a generator upload (JSON: a federation, a client),
#: enforced before the body is parsed and before authentication.
MAX_JSON_BODY = 1 << 20
#: The routes that stream their body under their own limit (after authentication).
STREAMED = frozenset({("PUT", "/api/v1/generator")})


class BodyLimit:
    """ASGI middleware: a request body above ``limit`` bytes gets 413 before any route,
    parser or authentication sees it (the declared length first, then while it streams;
    at most ``limit`` bytes are ever held). The routes in :data:`STREAMED` enforce their
    own limit as they read."""

    def __init__(self, app: Any, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in STREAMED:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = JSONResponse(status_code=status.HTTP_413_CONTENT_TOO_LARGE, content={
            "detail": f"the request body is larger than the limit of {self.limit} bytes"})
        await response(scope, receive, send)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Build the server: engine (unless given), tables (versioned), routes, error handlers.

    Raises :class:`threedgl.server.db.DatabaseError` when the database cannot be used.
    """
    from threedgl.server import crud
    from threedgl.server.db import init_database, make_engine, make_sessionmaker
    from threedgl.server.routes import admin, clients, public
    from threedgl.server.validation import UploadRejected

    engine = engine if engine is not None else make_engine(settings.database_url)
    init_database(engine)

    app = FastAPI(
        title="threedgl Global Server",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.include_router(public)
    app.include_router(admin)
    app.include_router(clients)
    app.add_middleware(BodyLimit)

    status_of: list[tuple[type[Exception], int]] = [
        (crud.NotFound, status.HTTP_404_NOT_FOUND),
        (crud.Conflict, status.HTTP_409_CONFLICT),
        (UploadRejected, status.HTTP_422_UNPROCESSABLE_CONTENT),
    ]

    @app.exception_handler(ThreedglError)
    async def _threedgl_error(_request: Request, exc: Any) -> JSONResponse:
        code = next(
            (c for kind, c in status_of if isinstance(exc, kind)),
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
        return JSONResponse(status_code=code, content={"detail": encodable(str(exc))})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: Any) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": describe_validation_error(exc)},
        )

    return app

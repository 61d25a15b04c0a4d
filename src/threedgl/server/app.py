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

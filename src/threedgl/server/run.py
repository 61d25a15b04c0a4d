"""Running the Global Server: settings → app → uvicorn, shared by ``3dgl server`` and
``python -m threedgl.server`` (so the entry point needs nothing from the CLI layer)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

__all__ = ["READY", "serve"]

#: The start of the line printed once the server accepts requests.
READY = "threedgl server ready"


def serve(
    *,
    db: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    dev: bool = False,
    storage: Path | None = None,
    env_file: Path | None = None,
    log_level: str = "info",
    say: Callable[[str], None] = print,
) -> None:
    """Load the settings, build the app and serve it until stopped.

    Bad settings or an unusable database raise :class:`~threedgl.errors.ThreedglError`
    (one line) before anything listens. ``say`` prints the banner (the address, the
    database without its password, and in dev mode the generated admin token), then, once
    the socket accepts requests, ``threedgl server ready on http://HOST:PORT`` (the port
    the system gave when ``port`` is 0): scripts wait for that line.
    """
    from threedgl.server.config import load_settings

    settings = load_settings(env_file, db_url=db, storage=storage, dev=True if dev else None)
    if not settings.db_url:
        settings.storage.mkdir(parents=True, exist_ok=True)
    from threedgl.server.app import create_app

    app = create_app(settings)
    import uvicorn
    from sqlalchemy.engine import make_url

    where = make_url(settings.database_url).render_as_string(hide_password=True)
    say(f"threedgl server starting on http://{host}:{port} (database {where})")
    if settings.admin_token_generated:
        say(f"dev mode: generated admin token: {settings.admin_secret}")

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()[1] if self.servers else port
                say(f"{READY} on http://{host}:{bound}")

    _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run()

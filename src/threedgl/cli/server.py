"""``3dgl server``, ``3dgl admin``, ``3dgl publish`` and ``3dgl pool``: the Global Server.

Server URL and tokens come from ``--server`` / ``--token`` or the environment:
``THREEDGL_SERVER``, ``THREEDGL_TOKEN`` (a client's token) and ``THREEDGL_ADMIN_TOKEN``
(the admin secret, for ``3dgl admin``). Every refusal by the server, and an unreachable
server, is one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from threedgl.cli._common import console, fail, frame_table, user_errors

DEFAULT_SERVER = "http://127.0.0.1:8000"

admin_app = typer.Typer(
    help="Administer federations and clients (needs the admin token).", no_args_is_help=True
)
federation_app = typer.Typer(
    help="Federations: a protocol (schema) and a privacy policy.", no_args_is_help=True
)
client_app = typer.Typer(help="Clients of a federation and their tokens.", no_args_is_help=True)
pool_app = typer.Typer(
    help="The Generators Pool (open once your generator is accepted).", no_args_is_help=True
)
admin_app.add_typer(federation_app, name="federation")
admin_app.add_typer(client_app, name="client")

ServerOpt = typer.Option(DEFAULT_SERVER, "--server", envvar="THREEDGL_SERVER", help="Server URL.")
TokenOpt = typer.Option(
    None, "--token", envvar="THREEDGL_TOKEN", help="Your client token.", show_default=False
)
AdminTokenOpt = typer.Option(
    None, "--token", envvar="THREEDGL_ADMIN_TOKEN", help="The admin token.", show_default=False
)


def serve(
    db: str | None = typer.Option(
        None,
        "--db",
        help="Database URL (default: SQLite file threedgl-server.db in --storage; "
        "env THREEDGL_DB_URL), e.g. postgresql+psycopg://user@host/db.",
        show_default=False,
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    dev: bool = typer.Option(
        False, "--dev", help="Development mode: generate and print an admin token if none is set."
    ),
    storage: Path | None = typer.Option(
        None,
        "--storage",
        help="Directory of the default SQLite database (env THREEDGL_STORAGE; default '.').",
        show_default=False,
    ),
    env_file: Path | None = typer.Option(
        None, "--env-file", help="Settings file of THREEDGL_* variables.", show_default=False
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Run the Global Server (admin secret from THREEDGL_ADMIN_TOKEN)."""
    from threedgl.server.run import serve as run_server

    with user_errors():
        run_server(db=db, host=host, port=port, dev=dev, storage=storage, env_file=env_file,
                   log_level=log_level,
                   say=lambda line: console.print(line, soft_wrap=True, highlight=False))


def _client(server: str, token: str | None, what: str, env: str):  # type: ignore[no-untyped-def]
    from threedgl.server.client import ServerClient

    if not token:
        fail(f"no {what} token: pass --token or set {env}")
    return ServerClient(server, token)


# -- admin ------------------------------------------------------------------------------
@federation_app.command("create")
def federation_create(
    name: str = typer.Argument(..., help="Federation name."),
    schema: Path = typer.Option(..., "--schema", help="The public schema JSON (the protocol)."),
    max_epsilon: float = typer.Option(1.9, "--max-epsilon", help="Largest ε accepted."),
    max_delta: float = typer.Option(1e-4, "--max-delta", help="Largest δ accepted."),
    accountant: list[str] = typer.Option(
        ["rdp"], "--accountant", help="Accepted accountant (repeat for several: rdp, prv)."
    ),
    max_bytes: int | None = typer.Option(
        None,
        "--max-bytes",
        help="Largest generator file accepted (default 64 MiB).",
        show_default=False,
    ),
    server: str = ServerOpt,
    token: str | None = AdminTokenOpt,
) -> None:
    """Create a federation with its schema and privacy policy."""
    from threedgl.artifact.format import DEFAULT_MAX_BYTES
    from threedgl.schema.schema import Schema

    with user_errors():
        protocol = Schema.read(schema)
        with _client(server, token, "admin", "THREEDGL_ADMIN_TOKEN") as api:
            fed = api.create_federation(
                name,
                protocol.to_dict(),
                max_epsilon=max_epsilon,
                max_delta=max_delta,
                accountants=accountant,
                max_artifact_bytes=max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES,
            )
    p = fed["policy"]
    console.print(
        f"created federation '{fed['name']}': {len(fed['schema']['columns'])} columns, "
        f"max ε={p['max_epsilon']}, max δ={p['max_delta']}, accountants "
        f"{', '.join(p['accountants'])}, max {p['max_artifact_bytes']} bytes",
        soft_wrap=True,
        highlight=False,
    )


@federation_app.command("show")
def federation_show(
    name: str = typer.Argument(..., help="Federation name."),
    server: str = ServerOpt,
    token: str | None = AdminTokenOpt,
) -> None:
    """Print a federation's policy and clients."""
    import pandas as pd

    with user_errors(), _client(server, token, "admin", "THREEDGL_ADMIN_TOKEN") as api:
        fed = api.get_federation(name)
    p = fed["policy"]
    console.print(
        f"federation '{fed['name']}': max ε={p['max_epsilon']}, max δ={p['max_delta']}, "
        f"accountants {', '.join(p['accountants'])}, max {p['max_artifact_bytes']} bytes",
        soft_wrap=True,
        highlight=False,
    )
    rows = [
        {
            "client": c["name"],
            "revoked": c["revoked"],
            "versions": c["versions"],
            "current": c["current_version"] if c["current_version"] is not None else "-",
        }
        for c in fed["clients"]
    ]
    if rows:
        console.print(frame_table(pd.DataFrame(rows), title="Clients"))


@client_app.command("add")
def client_add(
    federation: str = typer.Argument(..., help="Federation name."),
    name: str = typer.Argument(..., help="Client name."),
    server: str = ServerOpt,
    token: str | None = AdminTokenOpt,
) -> None:
    """Add a client and print its token (shown only once: give it to the client)."""
    with user_errors(), _client(server, token, "admin", "THREEDGL_ADMIN_TOKEN") as api:
        created = api.add_client(federation, name)
    _show_token(created, f"added client '{created['name']}' to federation "
                         f"'{created['federation']}'; its token (shown only once):")


@client_app.command("rotate")
def client_rotate(
    federation: str = typer.Argument(..., help="Federation name."),
    name: str = typer.Argument(..., help="Client name."),
    server: str = ServerOpt,
    token: str | None = AdminTokenOpt,
) -> None:
    """Give a client a new token and print it (its old token stops working): recovers a
    registration whose answer was lost."""
    with user_errors(), _client(server, token, "admin", "THREEDGL_ADMIN_TOKEN") as api:
        created = api.new_client_token(federation, name)
    _show_token(created, f"new token for client '{created['name']}' of federation "
                         f"'{created['federation']}' (shown only once; the old one no "
                         "longer works):")


# The name this command had for one release; kept so that scripts written then still run.
client_app.command("token", hidden=True)(client_rotate)


def _show_token(created: dict[str, str], what: str) -> None:
    """What happened on stderr, the token alone on stdout (for scripts)."""
    typer.echo(what, err=True)
    typer.echo(created["token"])


@client_app.command("revoke")
def client_revoke(
    federation: str = typer.Argument(..., help="Federation name."),
    name: str = typer.Argument(..., help="Client name."),
    server: str = ServerOpt,
    token: str | None = AdminTokenOpt,
) -> None:
    """Revoke a client: its token stops working and its generator leaves the pool."""
    with user_errors(), _client(server, token, "admin", "THREEDGL_ADMIN_TOKEN") as api:
        api.revoke_client(federation, name)
    console.print(f"revoked client '{name}' of federation '{federation}'", highlight=False)


# -- clients ----------------------------------------------------------------------------
def publish(
    generator: Path = typer.Argument(..., help="Your generator (.3dgl file)."),
    server: str = ServerOpt,
    token: str | None = TokenOpt,
    table: str = typer.Option(
        "default", "--table",
        help="The private table the generator was trained on: the server composes the "
        "privacy loss of your generators on one table.",
    ),
) -> None:
    """Upload your generator to the federation's server (a new version of yours)."""
    with user_errors(), _client(server, token, "client", "THREEDGL_TOKEN") as api:
        accepted = api.publish(generator, table=table)
    verb = "accepted" if accepted.get("created", True) else "already stored"
    console.print(
        f"{verb}: '{accepted['client']}' version {accepted['version']} in federation "
        f"'{accepted['federation']}' (ε={accepted['epsilon']:.4g} recomputed by the server, "
        f"δ={accepted['delta']:.3g}, sha256 {accepted['sha256']})",
        soft_wrap=True,
        highlight=False,
    )


@pool_app.command("list")
def pool_list(server: str = ServerOpt, token: str | None = TokenOpt) -> None:
    """List the generators of the pool."""
    import pandas as pd

    with user_errors(), _client(server, token, "client", "THREEDGL_TOKEN") as api:
        entries = api.pool()
    rows = [
        {
            "client": e["client"],
            "version": e["version"],
            "generator": e["generator"],
            "epsilon": float(e["epsilon"]),
            "delta": f"{e['delta']:.3g}",
            "bytes": e["size"],
            # share of each class's pool rows (by released rows), e.g. "0:0.94 1:0.91"
            "shares": " ".join(f"{k}:{v:.2f}" for k, v in (e.get("shares") or {}).items()),
            "sha256": e["sha256"][:8],
            "uploaded": e["uploaded_at"][:16].replace("T", " "),
        }
        for e in entries
    ]
    if not rows:
        console.print("the pool is empty")
        return
    console.print(
        frame_table(pd.DataFrame(rows), title=f"Generators Pool ({len(rows)})", floatfmt="{:.4g}")
    )


@pool_app.command("pull")
def pool_pull(
    output: Path = typer.Option(..., "-o", "--output", help="Directory for the .3dgl files."),
    server: str = ServerOpt,
    token: str | None = TokenOpt,
) -> None:
    """Download every generator of the pool (each verified by sha256 and read back)."""
    with user_errors(), _client(server, token, "client", "THREEDGL_TOKEN") as api:
        written = api.pull(output)
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    console.print(f"pulled {len(written)} generator(s) into {output}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("server")(serve)
    app.add_typer(admin_app, name="admin")
    app.command("publish")(publish)
    app.add_typer(pool_app, name="pool")

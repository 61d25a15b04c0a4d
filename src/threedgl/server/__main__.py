"""``python -m threedgl.server``: the same server as ``3dgl server``, with the same options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from threedgl.errors import ThreedglError
from threedgl.server.run import serve


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 65535], got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 65535], got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m threedgl.server",
                                     description="Run the threedgl Global Server.")
    parser.add_argument("--db", help="database URL (default: SQLite in --storage; env "
                        "THREEDGL_DB_URL), e.g. postgresql+psycopg://user@host/db")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8000, metavar="PORT",
                        help="port to listen on (0-65535)")
    parser.add_argument("--dev", action="store_true",
                        help="development mode: generate and print an admin token if none is set")
    parser.add_argument("--storage", type=Path, help="directory of the default SQLite database")
    parser.add_argument("--env-file", type=Path, help="settings file of THREEDGL_* variables")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    args = parser.parse_args(argv)
    try:
        serve(db=args.db, host=args.host, port=args.port, dev=args.dev, storage=args.storage,
              env_file=args.env_file, log_level=args.log_level,
              say=lambda line: print(line, flush=True))
    except ThreedglError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

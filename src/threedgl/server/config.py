"""Server settings, from the environment (prefix ``THREEDGL_``), a settings file or arguments.

The admin secret is required: a missing, short (< 16 characters) or placeholder secret
("changeme", "secret", "admin", ...) is refused unless ``dev`` is set, in which case a
random one is generated (and printed by ``3dgl server --dev``).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from threedgl.artifact.format import DEFAULT_MAX_BYTES

#: Secrets refused as the admin token (compared case-insensitively, also as a substring
#: of very repetitive tokens such as "changemechangeme").
PLACEHOLDER_SECRETS: frozenset[str] = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "change-this",
        "secret",
        "password",
        "admin",
        "token",
        "default",
        "example",
        "test",
        "dev",
        "xxxxxxxx",
        "12345678",
        "1234567890",
        "your-token-here",
        "your-secret-here",
    }
)
MIN_SECRET_LENGTH = 16
DEFAULT_DB_FILE = "threedgl-server.db"


def secret_problem(token: str | None) -> str | None:
    """Why ``token`` is not an acceptable admin secret, or ``None`` when it is fine."""
    if token is None or not token.strip():
        return "THREEDGL_ADMIN_TOKEN is not set; set it to a random secret of 16+ characters"
    t = token.strip()
    low = t.lower()
    stripped = low.replace("-", "").replace("_", "")
    for p in PLACEHOLDER_SECRETS:
        q = p.replace("-", "").replace("_", "")
        if low == p or stripped == q or (stripped and stripped == q * (len(stripped) // len(q))):
            return (
                "THREEDGL_ADMIN_TOKEN is a placeholder secret; set it to a random secret "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    if len(t) < MIN_SECRET_LENGTH:
        return (
            f"THREEDGL_ADMIN_TOKEN is {len(t)} characters, shorter than the minimum of "
            f"{MIN_SECRET_LENGTH}; use a random secret"
        )
    if len(set(t)) < 4:
        return "THREEDGL_ADMIN_TOKEN is too repetitive to be a secret; use a random secret"
    return None


class Settings(BaseSettings):
    """Everything the server needs; each field also reads ``THREEDGL_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="THREEDGL_", extra="ignore", env_file=None, case_sensitive=False
    )

    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default a SQLite file threedgl-server.db in `storage`.",
    )
    storage: Path = Field(default=Path("."), description="Directory of the default SQLite file.")
    admin_token: SecretStr | None = Field(default=None, description="The admin bearer secret.")
    max_upload_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        gt=0,
        description="Server-wide cap on an uploaded generator (a federation may set less).",
    )
    max_versions_per_client: int = Field(
        default=50, gt=0,
        description="Versions of its generator a client may store (every version counts "
        "towards its privacy budget, so none is deleted).",
    )
    max_client_bytes: int = Field(
        default=512 * 1024 * 1024, gt=0,
        description="Bytes of generators a client may store, all versions together.",
    )
    dev: bool = Field(default=False, description="Development mode: generate an admin secret.")
    admin_token_generated: bool = Field(default=False, exclude=True)

    @field_validator("db_url")
    @classmethod
    def _check_db_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v.strip())
        except ArgumentError:
            raise ValueError(
                f"THREEDGL_DB_URL {v!r} is not a database URL "
                "(e.g. sqlite:///threedgl-server.db or postgresql+psycopg://user@host/db)"
            ) from None
        if url.get_backend_name() == "postgres":  # Heroku's and libpq's spelling
            raise ValueError(
                f"database URL scheme {url.drivername + '://'!r} is not one SQLAlchemy knows: "
                "write postgresql+psycopg://user@host:5432/db"
            )
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"database {url.get_backend_name()!r} is not supported (use sqlite or postgresql)"
            )
        return v.strip()

    @model_validator(mode="after")
    def _check_admin_token(self) -> Settings:
        token = self.admin_token.get_secret_value() if self.admin_token is not None else None
        problem = secret_problem(token)
        if problem is None:
            return self
        if not self.dev:
            raise ValueError(problem + " (or start with --dev for a generated one)")
        self.admin_token = SecretStr(secrets.token_urlsafe(32))
        self.admin_token_generated = True
        return self

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.storage / DEFAULT_DB_FILE).resolve()}"

    @property
    def admin_secret(self) -> str:
        assert self.admin_token is not None  # guaranteed by the validator
        return self.admin_token.get_secret_value()


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and ``env_file``, overridden by explicit values.

    Raises :class:`threedgl.errors.ThreedglError` with a one-line message when invalid.
    """
    from pydantic import ValidationError

    from threedgl.errors import ThreedglError

    if env_file is not None and not env_file.is_file():
        raise ThreedglError(f"settings file '{env_file}' does not exist")
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(_env_file=env_file, **values)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ThreedglError(describe_validation_error(exc)) from None


def describe_validation_error(exc: Any) -> str:
    """One line from a pydantic ``ValidationError``: ``where: message``."""
    parts = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)

"""One pydantic schema per operation (the request and response bodies of the API)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from threedgl.artifact.format import DEFAULT_MAX_BYTES

#: Names of federations and clients: safe in URLs and as file names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Accountant = Literal["rdp", "prv"]  # = threedgl.privacy.ACCOUNTANTS (checked by a test)


class Message(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    db_schema_version: int


# -- federations ------------------------------------------------------------------------
class PolicyCreate(BaseModel):
    """The federation's privacy policy: what every uploaded generator must meet."""

    model_config = ConfigDict(extra="forbid")

    max_epsilon: float = Field(1.9, gt=0, description="Largest ε accepted for any class model.")
    max_delta: float = Field(1e-4, gt=0, lt=1, description="Largest δ accepted.")
    accountants: list[Accountant] = Field(
        default_factory=lambda: ["rdp"],  # type: ignore[arg-type]
        min_length=1,
        description="Accountants whose ε the server recomputes and accepts.",
    )
    max_artifact_bytes: int = Field(
        DEFAULT_MAX_BYTES, gt=0, description="Largest generator file accepted, in bytes."
    )

    @field_validator("max_epsilon")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("max_epsilon must be finite (epsilon=inf means no privacy)")
        return v

    @field_validator("accountants")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


class FederationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    schema_: dict[str, Any] = Field(
        alias="schema", description="The public schema (threedgl.schema JSON): the protocol."
    )
    policy: PolicyCreate = Field(default_factory=PolicyCreate)  # type: ignore[arg-type]


class PolicyPublic(BaseModel):
    max_epsilon: float
    max_delta: float
    accountants: list[str]
    max_artifact_bytes: int


class ClientSummary(BaseModel):
    name: str
    revoked: bool
    created: dt.datetime
    versions: int
    current_version: int | None


class FederationPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    policy: PolicyPublic
    created: dt.datetime
    clients: list[ClientSummary] = Field(default_factory=list)


# -- clients ----------------------------------------------------------------------------
class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)


class ClientCreated(BaseModel):
    """Returned once, when a client is added: the only time its token is shown."""

    federation: str
    name: str
    token: str
    created: dt.datetime


class ClientPublic(BaseModel):
    federation: str
    name: str
    revoked: bool
    created: dt.datetime


class Me(BaseModel):
    federation: str
    name: str
    contributed: bool
    current_version: int | None


# -- generators and the pool ------------------------------------------------------------
class ModelPrivacy(BaseModel):
    """One class model's privacy record as the server checked it (ε recomputed)."""

    model_config = ConfigDict(frozen=True)

    label: Any
    accountant: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    recorded_epsilon: float
    recomputed_epsilon: float
    rdp_order: float | None = None


class PoolEntry(BaseModel):
    client: str
    version: int
    sha256: str
    size: int
    generator: str
    epsilon: float
    delta: float
    uploaded_at: dt.datetime
    #: In the pool listing: per class label (as text), the share of that class's pool rows
    #: this generator gives (by the rows it released; ``threedgl.pool.shares``).
    shares: dict[str, float] | None = None


class GeneratorPublic(PoolEntry):
    """What the server accepted and stored (the answer to an upload)."""

    federation: str
    models: list[ModelPrivacy]
    table: str = Field(default="default", description="The private table it was declared on.")
    created: bool = Field(
        default=True, description="False when these weights were already stored (a retry)."
    )


class PoolPublic(BaseModel):
    federation: str
    generators: list[PoolEntry]

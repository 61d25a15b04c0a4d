"""Transport: how the clients' artifacts reach the Generators Pool, and the pool them.

One protocol, :class:`PoolServer` (alias :data:`Transport`): ``open`` a federation (schema
and privacy policy), ``publish`` a client's ``.3dgl`` bytes, ``pull`` the pool (only for
a client whose own generator was accepted). Its implementations:

* :class:`InMemoryServer` — the pool in this process, no checks (the local engine's
  default: the simulation trusts its own clients);
* :class:`CheckedPool` — the pool in this process, each artifact checked with the Global
  Server's validation (:func:`check_artifact`); a refused client gets the reason and no
  pool. The Flower ServerApp keeps its pool in one (:mod:`threedgl.federation.flower`),
  where the artifacts travel as Flower messages;
* :class:`GlobalServerPool` — a real Global Server over HTTP (:mod:`threedgl.server`).

Only bytes travel: a ``.3dgl`` file is safetensors plus a JSON manifest, never pickle.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from threedgl.errors import ThreedglError
from threedgl.schema import Schema


class Refused(ThreedglError):
    """The keeper of the pool refused a client's generator; ``reason`` says why."""

    def __init__(self, client: int, reason: str) -> None:
        super().__init__(f"client {client}'s generator was refused: {reason}")
        self.client = client
        self.reason = reason


# -- the protocol --------------------------------------------------------------------------------
class PoolServer(Protocol):
    """Where clients publish their generator and pull the Generators Pool from.

    ``publish`` raises :class:`Refused` (with the reason the client sees) when the keeper
    of the pool does not accept the generator; ``pull`` is then refused to that client
    (contribute-to-access).
    """

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        """Start a federation of ``clients`` clients under ``schema`` (once per seed)."""

    def publish(self, client: int, artifact: bytes) -> None:
        """Client ``client`` uploads its ``.3dgl`` generator."""

    def pull(self, client: int) -> list[bytes]:
        """Client ``client`` downloads every generator of the pool (its own included)."""


class InMemoryServer:
    """The Global Server's job done in memory: store the artifacts, hand out the pool only to
    clients that published (as the real server does)."""

    def __init__(self) -> None:
        self._store: dict[int, bytes] = {}

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        self._store = {}

    def publish(self, client: int, artifact: bytes) -> None:
        self._store[client] = artifact

    def pull(self, client: int) -> list[bytes]:
        if client not in self._store:
            raise ThreedglError(f"client {client} must publish its generator before pulling the pool")
        return [self._store[c] for c in sorted(self._store)]


class GlobalServerPool:
    """Publish to and pull from a real Global Server (:class:`threedgl.server.client.ServerClient`).

    ``open`` creates a new federation named ``{prefix}-{random hex}`` (one per seed) with
    the schema and the policy (max ε, max δ) and one client account per simulated client;
    every client then uploads its artifact with its own token (the server checks schema
    and privacy; the answer's sha256 must be the file's) and, only once its own generator
    has been accepted, downloads the pool (each file verified by sha256). Needs the admin
    token of the server; :meth:`check` tests URL and token before any training.
    ``federations`` lists the federations created, in order.
    """

    def __init__(self, url: str, admin_token: str, *, prefix: str = "sim") -> None:
        self.url = url
        self.admin_token = admin_token
        self.prefix = prefix
        self.federations: list[str] = []
        self._tokens: dict[int, str] = {}
        self._accepted: dict[int, str] = {}  # client -> sha256 of its accepted generator

    def __repr__(self) -> str:  # never shows the admin token
        return f"GlobalServerPool({self.url!r})"

    @property
    def federation(self) -> str | None:
        """The federation of the current round (``None`` before :meth:`open`)."""
        return self.federations[-1] if self.federations else None

    def _client(self, token: str) -> Any:
        from threedgl.server.client import ServerClient

        return ServerClient(self.url, token)

    def check(self) -> None:
        """Raise :class:`threedgl.errors.ThreedglError` (one line) unless the server answers
        and accepts the admin token."""
        import secrets

        from threedgl.server.client import ServerError

        with self._client(self.admin_token) as admin:
            admin.health()
            probe = f"threedgl-probe-{secrets.token_hex(8)}"  # never created: 404 if admin
            try:
                admin.get_federation(probe)
            except ServerError as exc:
                if exc.status != 404:
                    raise ServerError(
                        f"the server at {self.url} did not accept the admin token: {exc}",
                        status=exc.status,
                    ) from None

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        import secrets

        if not math.isfinite(max_epsilon):
            raise ThreedglError(
                "a Global Server accepts only private generators: epsilon must be finite"
            )
        name = f"{self.prefix[:47]}-{secrets.token_hex(8)}"
        with self._client(self.admin_token) as admin:
            admin.create_federation(
                name, schema.to_dict(), max_epsilon=max_epsilon, max_delta=max_delta
            )
            self.federations.append(name)
            self._accepted = {}
            self._tokens = {
                c: str(admin.add_client(name, _client_name(c))["token"]) for c in range(clients)
            }

    def publish(self, client: int, artifact: bytes) -> None:
        from threedgl.server.client import ServerError

        digest = hashlib.sha256(artifact).hexdigest()
        with self._client(self._tokens[client]) as me:
            accepted = me.publish(artifact)
        if accepted.get("sha256") != digest:
            raise ServerError(
                f"the server stored client {client}'s generator with sha256 "
                f"{accepted.get('sha256')}, not {digest}"
            )
        self._accepted[client] = digest

    def pull(self, client: int) -> list[bytes]:
        from threedgl.server.client import ServerError

        if client not in self._accepted:
            raise ThreedglError(
                f"client {client} must have its generator accepted before pulling the pool"
            )
        with self._client(self._tokens[client]) as me:
            index = {_client_name(c): c for c in self._tokens}
            entries = sorted(
                me.pool(), key=lambda e: (index.get(str(e["client"]), len(index)), str(e["client"]))
            )
            mine = [e for e in entries if e["client"] == _client_name(client)]
            if [str(e["sha256"]) for e in mine] != [self._accepted[client]]:
                raise ServerError(
                    f"the pool of federation '{self.federation}' does not hold client "
                    f"{client}'s accepted generator"
                )
            return [me.download(str(e["client"]), sha256=str(e["sha256"])) for e in entries]


def _client_name(client: int) -> str:
    """The server-side name of simulated client ``client`` (sorts as the index does)."""
    return f"client-{client:04d}"


#: The protocol under its role's name.
Transport = PoolServer


# -- the Global Server's checks, in memory -------------------------------------------------------
@dataclass
class Policy:
    """A federation's protocol as :mod:`threedgl.server.validation` reads it (the fields of
    its ``FederationPolicy``): the schema (as a dict) and the privacy policy."""

    name: str
    schema: dict[str, Any]
    max_epsilon: float
    max_delta: float
    accountants: list[str] = field(default_factory=lambda: ["rdp"])
    max_artifact_bytes: int = 64 * 1024 * 1024


def check_artifact(data: bytes, policy: Policy) -> Any:
    """Check ``data`` (``.3dgl`` bytes) with the Global Server's validation, unchanged:
    format, sha256, no pickle, the model rebuilt, schema equal to the federation's, every
    class model's ε recomputed against the policy. Returns what the server would store
    (a ``ValidatedGenerator``); raises ``UploadRejected`` (a
    :class:`~threedgl.errors.ThreedglError`) with the reason.

    The one place this package calls :func:`threedgl.server.validation.validate_upload`.
    """
    from threedgl.server.validation import validate_upload

    return validate_upload(data, policy)


class CheckedPool:
    """The pool in memory, each published generator checked as the Global Server checks it
    (:func:`check_artifact`). A refused generator raises :class:`Refused`; its client's
    ``pull`` is refused. ``accepted`` maps client → sha256 of its generator; ``refused``
    client → reason."""

    def __init__(self, *, name: str = "3dgl", accountants: tuple[str, ...] = ("rdp",)) -> None:
        self.name = name
        self.accountants = list(accountants)
        self.policy: Policy | None = None
        self.accepted: dict[int, str] = {}
        self.refused: dict[int, str] = {}
        self._store: dict[int, bytes] = {}

    def open(self, schema: Schema, clients: int, *, max_epsilon: float, max_delta: float) -> None:
        if not math.isfinite(max_epsilon):
            raise ThreedglError(
                "a checked pool accepts only private generators: epsilon must be finite"
            )
        self.policy = Policy(self.name, schema.to_dict(), float(max_epsilon), float(max_delta),
                             list(self.accountants))
        self.accepted, self.refused, self._store = {}, {}, {}

    def publish(self, client: int, artifact: bytes) -> None:
        if self.policy is None:
            raise ThreedglError("open the pool before publishing to it")
        try:
            checked = check_artifact(artifact, self.policy)
        except ThreedglError as exc:
            self.refused[client] = str(exc)
            raise Refused(client, str(exc)) from None
        self.refused.pop(client, None)
        self._store[client] = artifact
        self.accepted[client] = str(checked.sha256)

    def pull(self, client: int) -> list[bytes]:
        if client not in self._store:
            why = self.refused.get(client, "it has not published a generator")
            raise Refused(client, f"no pool without an accepted generator ({why})")
        return [self._store[c] for c in sorted(self._store)]

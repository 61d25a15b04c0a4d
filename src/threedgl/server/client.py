"""A Python client of the Global Server (httpx).

>>> admin = ServerClient("http://127.0.0.1:8000", admin_token)      # doctest: +SKIP
>>> admin.create_federation("hospitals", schema)                     # doctest: +SKIP
>>> token = admin.add_client("hospitals", "clinic-a")["token"]       # doctest: +SKIP
>>> me = ServerClient("http://127.0.0.1:8000", token)                # doctest: +SKIP
>>> me.publish("clinic-a.3dgl"); me.pull("pool/")                    # doctest: +SKIP

Every error (HTTP error, unreachable server, a download that does not verify) is a
:class:`ServerError`, a :class:`threedgl.errors.ThreedglError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import httpx

from threedgl.artifact.format import ARTIFACT_SUFFIX, DEFAULT_MAX_BYTES
from threedgl.errors import ArtifactError, ThreedglError

API = "/api/v1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ServerError(ThreedglError):
    """The server refused a request (``status`` is the HTTP status) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServerClient:
    """Operations of the API; ``token`` is the admin secret or a client's token."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ServerError(f"server URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, API + path, **kwargs)
        except httpx.TimeoutException:
            raise ServerError(f"the server at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the server at {self.url}: {exc}") from None
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text.strip() or response.reason_phrase
        raise ServerError(
            f"server refused ({response.status_code} {response.reason_phrase}): {detail}",
            status=response.status_code,
        )

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # -- everyone -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    # -- admin --------------------------------------------------------------------------------
    def create_federation(
        self,
        name: str,
        schema: dict[str, Any],
        *,
        max_epsilon: float = 1.9,
        max_delta: float = 1e-4,
        accountants: list[str] | tuple[str, ...] = ("rdp",),
        max_artifact_bytes: int = DEFAULT_MAX_BYTES,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "schema": schema,
            "policy": {
                "max_epsilon": max_epsilon,
                "max_delta": max_delta,
                "accountants": list(accountants),
                "max_artifact_bytes": max_artifact_bytes,
            },
        }
        result: dict[str, Any] = self._json("POST", "/federations", json=body)
        return result

    def get_federation(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/federations/{_check_name(name)}")
        return result

    def add_client(self, federation: str, name: str) -> dict[str, Any]:
        """Add a client; the answer's ``token`` is shown only this once."""
        result: dict[str, Any] = self._json(
            "POST", f"/federations/{_check_name(federation)}/clients", json={"name": name}
        )
        return result

    def new_client_token(self, federation: str, name: str) -> dict[str, Any]:
        """A new token for a client (its old one stops working): ``{"token": ...}``."""
        result: dict[str, Any] = self._json(
            "POST", f"/federations/{_check_name(federation)}/clients/{_check_name(name)}/token"
        )
        return result

    def revoke_client(self, federation: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", f"/federations/{_check_name(federation)}/clients/{_check_name(name)}/revoke"
        )
        return result

    # -- client -------------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/me")
        return result

    def publish(
        self, generator: str | os.PathLike[str] | bytes, *, table: str = "default"
    ) -> dict[str, Any]:
        """Upload a ``.3dgl`` file (a path or its bytes) as this client's generator.

        ``table`` names the private table it was trained on: the server composes the
        privacy loss of this client's generators on one table. Retrying an upload is safe:
        the same weights return the version already stored (``created`` is False).
        """
        if isinstance(generator, bytes):
            data = generator
        else:
            path = Path(generator)
            if not path.is_file():
                raise ServerError(f"generator file '{path}' does not exist")
            data = path.read_bytes()
        result: dict[str, Any] = self._json(
            "PUT",
            "/generator",
            content=data,
            headers={"Content-Type": "application/octet-stream",
                     "X-Threedgl-Table": _check_name(table)},
        )
        return result

    def pool(self) -> list[dict[str, Any]]:
        """Metadata of every generator in the pool (needs an accepted generator of one's own)."""
        result: list[dict[str, Any]] = self._json("GET", "/pool")["generators"]
        return result

    def download(
        self, client: str, *, sha256: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> bytes:
        """One generator of the pool, verified: sha256 (header and ``sha256``) and readable."""
        from threedgl.artifact.format import read_artifact_bytes

        response = self._request("GET", f"/pool/{_check_name(client)}")
        data = response.content
        digest = hashlib.sha256(data).hexdigest()
        announced = response.headers.get("X-Threedgl-Sha256")
        for what, want in (
            ("the X-Threedgl-Sha256 header", announced),
            ("the pool listing", sha256),
        ):
            if want is not None and want != digest:
                raise ServerError(
                    f"the generator of '{client}' does not match {what} (sha256 {digest} vs "
                    f"{want}): corrupted in transit or changed on the server; not saved"
                )
        try:
            read_artifact_bytes(data, max_bytes=max_bytes)
        except ArtifactError as exc:
            raise ServerError(
                f"the generator of '{client}' is not valid: {exc}; not saved"
            ) from None
        return data

    def pull(
        self, directory: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> list[Path]:
        """Download every generator of the pool into ``directory/<client>.3dgl`` (atomically).

        Each file is verified against the listing's sha256 and read with the library's
        checks before it is written; a file that fails is not written.
        """
        from threedgl.schema.io import atomic_write_bytes

        out = Path(directory)
        written: list[Path] = []
        for entry in self.pool():
            name = _check_name(str(entry["client"]))
            data = self.download(name, sha256=str(entry["sha256"]), max_bytes=max_bytes)
            target = out / f"{name}{ARTIFACT_SUFFIX}"
            atomic_write_bytes(target, data)
            written.append(target)
        return written


def _check_name(name: str) -> str:
    """A federation or client name, safe in a URL and as a file name."""
    if not _NAME.match(name):
        raise ServerError(
            f"{name!r} is not a valid name (letters, digits, '.', '_', '-'; at most 64; "
            "starting with a letter or digit)"
        )
    return name

"""The 3DGL Global Server (SPEC §1.6, paper §III-D): a federation's collector of generators.

Clients authenticate with a bearer token, upload their differentially private generator
(checked against the federation's protocol: the public schema and the privacy policy,
with ε recomputed by the server's own accountant), and only then may download the
Generators Pool ("contribute to access").

Layout, after the full-stack-fastapi-template: :mod:`.config` (settings from the
environment), :mod:`.db` (engine and versioned schema creation), :mod:`.models` (ORM
tables), :mod:`.schemas` (one pydantic schema per operation), :mod:`.crud` (every
write), :mod:`.security` (tokens), :mod:`.deps` (session and caller by dependency
injection), :mod:`.validation` (upload checks), :mod:`.routes` (thin routes),
:mod:`.app` (the factory :func:`create_app`) and :mod:`.client` (a Python client).

Nothing is created at import time: the engine and the app are built by
:func:`threedgl.server.app.create_app`.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from threedgl.server.app import create_app

        return create_app
    raise AttributeError(name)

"""3DGL as a Flower app: the federation on the engine federated-learning teams already use.

``pip install 'threedgl[flower]'``. Three parts:

* :mod:`~threedgl.federation.flower.client_app` — ``app``, the ClientApp: trains its
  client's generator on its own data and sends the ``.3dgl`` bytes; once the pool comes
  back, samples it and reports the scenarios' scores as metrics;
* :mod:`~threedgl.federation.flower.server_app` — ``app``, the ServerApp: one 3DGL round
  per seed; checks every artifact with the Global Server's validation, tells a refused
  client why, and sends the pool only to the clients whose generator was accepted
  (contribute-to-access);
* :mod:`~threedgl.federation.flower.messages` — what travels: Flower records holding bytes
  (``.3dgl`` files: safetensors plus JSON) and JSON text, never pickle.

``simulate(..., engine="flower")`` runs both on Flower's simulation runtime behind a local
SuperLink (:mod:`~threedgl.federation.flower.engine`,
:mod:`~threedgl.federation.flower.superlink`; the outcome comes back as files:
:mod:`~threedgl.federation.flower.outcome`); ``flwr run`` runs them from the app's
``pyproject.toml`` (``flower-app/`` in the repository) on a simulation or a deployment
(SuperLink and SuperNodes); ``3dgl flower-run`` is ``flwr run`` with the run's status as
its exit code (:mod:`~threedgl.federation.flower.flwr_run`). Nothing in this package is
imported by ``threedgl`` itself unless asked for, so the extra stays optional.
"""

from __future__ import annotations

import importlib.util


def flower_missing() -> str | None:
    """``None`` when Flower and its simulation runtime are installed, else what to do."""
    missing = [m for m in ("flwr", "ray") if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        f"the Flower engine needs {' and '.join(missing)}: "
        "pip install 'threedgl[flower]'"
    )


__all__ = ["flower_missing"]

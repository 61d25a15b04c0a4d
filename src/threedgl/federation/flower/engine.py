"""``simulate(..., engine="flower")``: the 3DGL apps on Flower's simulation runtime (Ray).

One Flower run holds every seed's round: ``clients`` virtual SuperNodes run the ClientApp
(:mod:`~threedgl.federation.flower.client_app`), each as partition ``c`` of the same split
the local engine makes; our ServerApp (:class:`~.server_app.ThreedglServer`) runs in this
process, so its outcome comes straight back. Ray runs ``workers`` ClientApps at a time,
one CPU each.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.federation.plan import SeedOutcome
from threedgl.federation.scenarios import EvaluationOptions
from threedgl.federation.splits import SplitSpec
from threedgl.federation.transport import PoolServer
from threedgl.federation.workers import GeneratorFactory, PresetFactory
from threedgl.schema import Schema

#: Memory Ray may use for its object store (bytes); the apps pass only small messages.
OBJECT_STORE_BYTES = 256 * 1024 * 1024


def backend_config(workers: int) -> dict[str, Any]:
    """Ray: ``workers`` CPUs, one per ClientApp, quiet, no dashboard."""
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": int(workers),
            "num_gpus": 0,
            "include_dashboard": False,
            "object_store_memory": OBJECT_STORE_BYTES,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        },
    }


@contextmanager
def _quiet_flower() -> Any:
    logger = logging.getLogger("flwr")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def run_flower_simulation(
    *,
    data: str | None,
    frame: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    clients: int,
    seeds: int,
    split: SplitSpec,
    test_size: float,
    min_rows: int,
    random_state: int,
    factory: GeneratorFactory,
    options: EvaluationOptions,
    epsilon: float,
    delta: float,
    workers: int,
    server: PoolServer | None,
    tick: Callable[[str], Callable[[], None]] | None = None,
) -> list[SeedOutcome]:
    """Every seed's round on Flower's simulation runtime; the clients' outcomes by seed."""
    import math

    from threedgl.federation.flower import flower_missing

    missing = flower_missing()
    if missing:
        raise ThreedglError(missing)
    if not isinstance(factory, PresetFactory):
        raise ThreedglError(
            "the Flower engine sends the generator settings to its clients as JSON: it takes "
            f"a PresetFactory (or none), not {type(factory).__name__}"
        )
    if not math.isfinite(epsilon):
        raise ThreedglError(
            "the Flower engine's ServerApp accepts only private generators, as the Global "
            "Server does: epsilon must be finite"
        )
    from threedgl.federation.flower import messages as msg

    with tempfile.TemporaryDirectory(prefix="threedgl-flower-") as tmp:
        if data is not None:
            where = {"dataset": data}
        else:
            path = Path(tmp) / "data.parquet"
            frame.to_parquet(path, index=False)
            where = {"path": str(path)}
        spec = msg.RoundSpec(
            seed=0, random_state=random_state, clients=clients, schema=schema.to_dict(),
            factory=asdict(factory), options=asdict(options), split=str(split),
            test_size=test_size, min_rows=min_rows, positive_label=positive_label, data=where,
        )
        server_job = run_rounds(spec, seeds=seeds, max_epsilon=epsilon, max_delta=delta,
                                workers=workers, transport=server, tick=tick)
    return outcomes_by_seed(server_job, clients, seeds)


def run_rounds(
    spec: Any,
    *,
    seeds: int,
    max_epsilon: float,
    max_delta: float,
    workers: int,
    transport: PoolServer | None = None,
    tick: Callable[[str], Callable[[], None]] | None = None,
    client_app: Any = None,
) -> Any:
    """``seeds`` rounds of ``spec`` (a :class:`~.messages.RoundSpec`) on Flower's simulation
    runtime with ``spec.clients`` virtual SuperNodes running ``client_app`` (default: ours);
    returns the ServerApp's job (:class:`~.server_app.ThreedglServer`: its ``rounds`` and
    every message it sent and received)."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from threedgl.federation.flower.client_app import app as our_client_app
    from threedgl.federation.flower.server_app import ThreedglServer

    server_job = ThreedglServer(spec, seeds=seeds, max_epsilon=max_epsilon, max_delta=max_delta,
                                transport=transport, tick=tick)
    server_app = ServerApp()
    server_app.main()(server_job)
    with _quiet_flower():
        run_simulation(server_app=server_app, client_app=client_app or our_client_app,
                       num_supernodes=spec.clients, backend_config=backend_config(workers))
    return server_job


def outcomes_by_seed(server_job: Any, clients: int, seeds: int) -> list[SeedOutcome]:
    """The rounds as the simulation's per-seed outcomes; every client must have replied and
    been scored (a participant without a generator scores its own data), else a
    :class:`ThreedglError` says which and why."""
    if len(server_job.rounds) != seeds:
        raise ThreedglError(
            f"the Flower run ended after {len(server_job.rounds)} of {seeds} round(s)"
        )
    out = []
    for r in server_job.rounds:
        problems = list(r.failures)
        for c in range(clients):
            co = r.clients.get(c)
            if co is None:
                problems.append(f"client {c} sent no reply to the training request")
            elif co.scores is None:
                problems.append(f"client {c} sent no scores")
        if problems:
            raise ThreedglError(f"seed {r.seed} on the Flower engine: " + "; ".join(problems))
        out.append(SeedOutcome(
            # training warnings are decided on exact class sizes: they stay in the
            # clients' logs, nothing carries them to the ServerApp
            warnings=[[] for _ in range(clients)],
            evaluated=[r.clients[c].scores for c in range(clients)],
            without_generator={c: str(r.clients[c].refused) for c in range(clients)
                               if r.clients[c].refused is not None},
        ))
    return out

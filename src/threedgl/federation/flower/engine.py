"""``simulate(..., engine="flower")``: the 3DGL apps on Flower's simulation runtime, behind
a local SuperLink, as ``flwr run`` runs them.

One Flower run holds every seed's round: ``clients`` simulated SuperNodes run the ClientApp
(:mod:`~threedgl.federation.flower.client_app`), each as partition ``c`` of the same split
the local engine makes. This process starts a SuperLink of its own
(:class:`~.superlink.LocalSuperLink`) and submits the run with ``flwr run``; our ServerApp
(:mod:`~.server_app`) runs in Flower's simulation process and reads the round from a file
(:class:`~.outcome.EngineRun`, named by the run config's ``round-file``). Its outcome comes
back as files in the run's ``out`` directory (``outcome.json``, and ``progress.jsonl``
for the progress ticks: :mod:`~.outcome`). Ray runs ``workers`` ClientApps at a time, one
CPU each. Everything lives in a temporary directory, removed after the run, and the
SuperLink's processes are stopped after the run, an error or Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.federation.plan import SeedOutcome
from threedgl.federation.scenarios import EvaluationOptions
from threedgl.federation.splits import SplitSpec
from threedgl.federation.transport import GlobalServerPool, PoolServer
from threedgl.federation.workers import GeneratorFactory, PresetFactory
from threedgl.schema import Schema

#: The ClientApp a simulated SuperNode runs (``module:attribute``).
CLIENT_APP = "threedgl.federation.flower.client_app:app"
SERVER_APP = "threedgl.federation.flower.server_app:app"


def federation_config(clients: int, workers: int) -> dict[str, Any]:
    """``flwr run --federation-config``: ``clients`` SuperNodes; Ray with ``workers`` CPUs,
    one per ClientApp, so ``workers`` ClientApps run at once; quiet."""
    return {
        "num-supernodes": int(clients),
        "client-resources-num-cpus": 1,
        "client-resources-num-gpus": 0,
        "init-args-num-cpus": int(workers),
        "init-args-num-gpus": 0,
        "init-args-logging-level": "ERROR",
        "init-args-log-to-driver": False,
    }


def write_app(app_dir: Path, *, client_app: str, config: dict[str, str]) -> Path:
    """A Flower App directory: our two components and the run config ``config`` (strings)."""
    app_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by threedgl for simulate(engine='flower'); removed after the run.",
        "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
        "[project]", 'name = "threedgl-simulate"', 'version = "1.0.0"',
        'description = "3DGL simulate on Flower"', 'license = "Apache-2.0"',
        "dependencies = []", "",
        "[tool.flwr.app]", 'publisher = "threedgl"', "",
        "[tool.flwr.app.components]", f"serverapp = {json.dumps(SERVER_APP)}",
        f"clientapp = {json.dumps(client_app)}", "",
        "[tool.flwr.app.config]",
        *(f"{key} = {json.dumps(value)}" for key, value in config.items()), "",
    ]
    (app_dir / "pyproject.toml").write_text("\n".join(lines), encoding="utf-8")
    return app_dir


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
        flower_run = run_rounds(spec, seeds=seeds, max_epsilon=epsilon, max_delta=delta,
                                workers=workers, transport=server, tick=tick)
    return outcomes_by_seed(flower_run, clients, seeds)


@dataclass
class FlowerRun:
    """What the ServerApp of one Flower run did: its ``rounds``; with ``transcript``, every
    message it ``sent`` and ``received`` (:class:`~.outcome.Recorded`)."""

    rounds: list[Any]
    sent: list[Any]
    received: list[Any]


def _pool_location(transport: PoolServer | None) -> dict[str, str] | None:
    if transport is None:
        return None
    if isinstance(transport, GlobalServerPool):
        return {"url": transport.url, "admin_token": transport.admin_token,
                "prefix": transport.prefix}
    raise ThreedglError(
        "the Flower engine's ServerApp runs in Flower's simulation process: it keeps the "
        "pool itself (server=None) or on a Global Server (a GlobalServerPool), not in a "
        f"{type(transport).__name__}"
    )


def run_rounds(
    spec: Any,
    *,
    seeds: int,
    max_epsilon: float,
    max_delta: float,
    workers: int,
    transport: PoolServer | None = None,
    tick: Callable[[str], Callable[[], None]] | None = None,
    client_app: str = CLIENT_APP,
    transcript: bool = False,
) -> FlowerRun:
    """``seeds`` rounds of ``spec`` (a :class:`~.messages.RoundSpec`) on Flower's simulation
    runtime behind a local SuperLink, ``spec.clients`` simulated SuperNodes running
    ``client_app`` (``module:attribute``, importable from this process's path); the
    ServerApp keeps the pool in ``transport`` (``None`` or a :class:`GlobalServerPool`,
    whose ``federations`` are updated). ``tick(phase)`` is called once per reply."""
    from threedgl.federation.flower import outcome as files
    from threedgl.federation.flower.superlink import LocalSuperLink

    location = _pool_location(transport)
    with tempfile.TemporaryDirectory(prefix="3dgl-flwr-") as tmp:
        root = Path(tmp)
        out = root / "out"
        out.mkdir()
        files.EngineRun(spec, seeds, max_epsilon, max_delta, location, transcript).write(
            root / "round.json")
        app = write_app(root / "app", client_app=client_app,
                        config={files.ROUND_FILE: str(root / "round.json"), "out": str(out)})
        offset = [0]
        on_reply = {phase: tick(phase) for phase in ("train", "evaluate")} if tick else {}

        def poll() -> bool:
            """Tick per reply; ``True`` once the ServerApp has written its outcome (Flower
            then only shuts Ray down: the SuperLink's processes are stopped instead)."""
            phases, offset[0] = files.read_progress(out / files.PROGRESS, offset[0])
            for phase in phases:
                if phase in on_reply:
                    on_reply[phase]()
            return (out / files.OUTCOME).is_file()

        with LocalSuperLink(root, pythonpath=[p for p in sys.path if p]) as link:
            ran = link.run(app, federation_config(spec.clients, workers), poll=poll)
            got = files.Outcome.read(out)
            if got is None:
                raise ThreedglError(_no_outcome(link, ran))
        if isinstance(transport, GlobalServerPool):
            transport.federations += got.federations
        if got.error is not None and len(got.rounds) < seeds:
            raise ThreedglError(f"the Flower ServerApp failed: {got.error}")
        sent, received = files.read_transcript(out) if transcript else ([], [])
        return FlowerRun(got.rounds, sent, received)


def _no_outcome(link: Any, ran: Any) -> str:
    """Why a Flower run left no outcome: Flower's own status of the run, else the last
    line ``flwr run`` printed."""
    from threedgl.federation.flower.server_app import readable_error

    details = ""
    if ran.run_id is not None:
        details = str(link.status(ran.run_id).get("status-details", ""))
    if not details or details == "N/A":
        details = next((line for line in reversed(ran.lines) if line.strip()), "no output")
    return (f"the Flower run ended without the ServerApp's outcome (flwr run exited with "
            f"{ran.returncode}): {readable_error(details)}")


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

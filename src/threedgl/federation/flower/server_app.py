"""The 3DGL ServerApp: one 3DGL round per seed, the pool kept as the Global Server keeps it.

A round:

1. ``train`` to every node: the round (schema, privacy settings, seeds) as JSON;
2. each reply's ``.3dgl`` bytes are *published* to the transport — by default a
   :class:`~threedgl.federation.transport.CheckedPool`, which checks them with the Global
   Server's own validation (format, sha256, no pickle, schema equal to the federation's,
   every class model's ε recomputed against the policy);
3. ``evaluate`` to every node: the pool (accepted generators only) to the clients whose
   generator was accepted, the refusal's reason to the others (contribute-to-access);
4. the replies' scores are the round's outcome (:attr:`ThreedglServer.rounds`).

Run by ``flwr run`` (``app`` reads the run config of the app's ``pyproject.toml``) or by
``simulate(..., engine="flower")`` (:mod:`threedgl.federation.flower.engine`: the run
config's ``round-file`` then holds the round). With ``out`` set, the ServerApp leaves its
outcome there (:mod:`threedgl.federation.flower.outcome`): it runs in Flower's process.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from threedgl.errors import ThreedglError
from threedgl.federation.flower import messages as msg
from threedgl.federation.flower.outcome import (
    COMPLETED,
    FAILED,
    ROUND_FILE,
    ClientOutcome,
    EngineRun,
    Outcome,
    Progress,
    RoundOutcome,
    write_transcript,
)
from threedgl.federation.transport import CheckedPool, GlobalServerPool, PoolServer, Refused
from threedgl.schema import Schema

log = logging.getLogger("threedgl.flower")


Tick = Callable[[str], Callable[[], None]]

#: How Flower words a ClientApp's exception: ``<class 'pkg.mod.Error'>:<'message'>``; on the
#: simulation runtime the class is ``ray.exceptions.RayTaskError(ClientAppException)`` and
#: the message Ray's traceback of the exception the ClientApp raised.
_FLOWER_ERROR = re.compile(r"^<class '(?:[\w.]*\.)?([\w()]+)'>:<(['\"])(.*)\2>$", re.DOTALL)
#: A traceback's last line: ``pkg.mod.Error: message`` (at the start of a line).
_RAISED = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*): (\S.*)$", re.MULTILINE)
#: Ray's and Flower's wrappers around the exception a ClientApp raised.
_WRAPPERS = {"RayTaskError", "ClientAppException"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def readable_error(reason: str | None) -> str:
    """One line for a node's error: ``SchemaError: message`` instead of Flower's
    ``<class 'threedgl.errors.SchemaError'>:<'message'>`` or, on the simulation runtime, of
    Ray's colored traceback (the ClientApp's own exception is taken from it); whitespace
    folded, at most 300 characters."""
    text = _ANSI.sub("", str(reason)).strip()
    match = _FLOWER_ERROR.match(text)
    if match:
        kind, text = match.group(1), match.group(3)
        raised = [m for m in _RAISED.finditer(text) if m.group(1) not in _WRAPPERS]
        if raised and '  File "' in text:  # a traceback: its first exception is the app's
            text = f"{raised[0].group(1)}: {raised[0].group(2)}"
        else:
            text = f"{kind}: {text}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:299] + "…"


class ThreedglServer:
    """The ServerApp's job (its ``main``): ``seeds`` rounds with every node connected once
    at least ``spec.clients`` are (a simulation's partitions are split ``len(nodes)`` ways).

    ``spec`` is every round's :class:`~threedgl.federation.flower.messages.RoundSpec`
    (its ``seed`` is set per round, its ``client`` per node); ``transport`` keeps the pool
    (a fresh :class:`CheckedPool` when ``None``); ``tick(phase)`` is called once per reply;
    with ``record``, :attr:`sent` and :attr:`received` keep every message (for the tests of
    what travels: a pool is in every evaluate message).
    """

    def __init__(
        self,
        spec: msg.RoundSpec,
        *,
        seeds: int,
        max_epsilon: float,
        max_delta: float,
        transport: PoolServer | None = None,
        tick: Tick | None = None,
        wait_seconds: float = 60.0,
        timeout: float | None = None,
        record: bool = False,
    ) -> None:
        self.spec = spec
        self.seeds = seeds
        self.max_epsilon = max_epsilon
        self.max_delta = max_delta
        self.transport = transport if transport is not None else CheckedPool()
        self.tick = tick
        self.wait_seconds = wait_seconds
        self.timeout = timeout
        self.record = record
        self.rounds: list[RoundOutcome] = []
        self.sent: list[Message] = []  # every message this server sent, in order
        self.received: list[Message] = []  # every reply it received, in order

    # -- the grid ---------------------------------------------------------------------------------
    def _nodes(self, grid: Grid) -> list[int]:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            nodes = sorted(grid.get_node_ids())
            if len(nodes) >= self.spec.clients:
                return nodes  # all of them: a simulated node's partition id indexes them
            if time.monotonic() > deadline:
                raise ThreedglError(
                    f"{len(nodes)} SuperNode(s) connected within {self.wait_seconds:g} s; the "
                    f"round needs {self.spec.clients} (run config 'clients')"
                )
            time.sleep(0.5)

    def _exchange(self, grid: Grid, messages: list[Message], phase: str) -> list[Message]:
        if self.record:
            self.sent += messages
        ids = {i for i in grid.push_messages(messages) if i}
        on_reply = self.tick(phase) if self.tick is not None else None
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        replies: list[Message] = []
        while ids and (deadline is None or time.monotonic() < deadline):
            got = list(grid.pull_messages(ids))
            for reply in got:
                ids.discard(reply.metadata.reply_to_message_id)
                replies.append(reply)
                if self.record:
                    self.received.append(reply)
                if on_reply is not None:
                    on_reply()
            if ids:
                time.sleep(0.1)
        return replies

    # -- one round -------------------------------------------------------------------------------
    def run_round(self, grid: Grid, seed: int, nodes: list[int]) -> RoundOutcome:
        outcome = RoundOutcome(seed)
        specs = {n: msg.RoundSpec(**{**self.spec.__dict__, "seed": seed, "client": i,
                                     "clients": len(nodes)})
                 for i, n in enumerate(nodes)}
        group = str(seed)
        replies = self._exchange(grid, [
            Message(msg.train_request(specs[n]), n, msg.TRAIN, group_id=group) for n in nodes
        ], "train")
        artifacts: dict[int, bytes] = {}
        for reply in sorted(replies, key=lambda r: r.metadata.src_node_id):
            node = reply.metadata.src_node_id
            if reply.has_error():
                outcome.failures.append(
                    f"node {node}: training failed: {readable_error(reply.error.reason)}")
                continue
            try:
                got = msg.read_train_reply(reply.content)
            except ThreedglError as exc:
                outcome.failures.append(f"node {node}: {exc}")
                continue
            if got.client in outcome.clients:
                outcome.failures.append(f"node {node}: client index {got.client} is taken")
                continue
            outcome.clients[got.client] = ClientOutcome(got.client, node)
            if got.artifact is None:  # a participant without a generator: no pool for it
                outcome.clients[got.client].refused = f"could not train: {got.reason}"
                log.warning("3DGL: client %d could not train: %s", got.client, got.reason)
                continue
            artifacts[got.client] = got.artifact
        self.transport.open(Schema.from_dict(self.spec.schema), len(nodes),
                            max_epsilon=self.max_epsilon, max_delta=self.max_delta)
        for client in sorted(artifacts):
            try:
                self.transport.publish(client, artifacts[client])
            except ThreedglError as exc:  # Refused, or a Global Server's answer
                reason = exc.reason if isinstance(exc, Refused) else str(exc)
                outcome.clients[client].refused = f"generator refused: {reason}"
                log.warning("3DGL: refused client %d: %s", client, reason)
        accepted = {c: artifacts[c] for c in sorted(artifacts) if outcome.clients[c].refused is None}
        requests = []
        for client in sorted(outcome.clients):
            co = outcome.clients[client]
            spec = specs[co.node_id]
            if co.refused is not None:
                content = msg.refusal(spec, co.refused)
            else:
                pool = self.transport.pull(client)
                content = msg.evaluate_request(spec, dict(zip(sorted(accepted), pool, strict=True)))
            requests.append(Message(content, co.node_id, msg.EVALUATE, group_id=group))
        by_node = {co.node_id: co for co in outcome.clients.values()}
        for reply in self._exchange(grid, requests, "evaluate"):
            co = by_node[reply.metadata.src_node_id]
            if reply.has_error():
                outcome.failures.append(f"client {co.client}: evaluation failed: "
                                        f"{readable_error(reply.error.reason)}")
                continue
            try:
                scores = msg.read_scores_reply(reply.content)
            except ThreedglError as exc:
                outcome.failures.append(f"client {co.client}: {exc}")
                continue
            co.scores, co.kept = scores.scores, scores.status == "kept"
        return outcome

    def __call__(self, grid: Grid, context: Context) -> None:
        nodes = self._nodes(grid)
        log.info("3DGL: %d clients, %d round(s)", len(nodes), self.seeds)
        for seed in range(self.seeds):
            outcome = self.run_round(grid, seed, nodes)
            self.rounds.append(outcome)
            accepted = sum(co.refused is None for co in outcome.clients.values())
            log.info("3DGL round %d: %d generator(s) accepted, %d refused, %d failure(s)",
                     seed, accepted, len(outcome.clients) - accepted, len(outcome.failures))
            for failure in outcome.failures:
                log.warning("3DGL round %d: %s", seed, failure)


# -- the app for `flwr run` --------------------------------------------------------------------------
def spec_from_run_config(config: dict[str, Any]) -> tuple[msg.RoundSpec, dict[str, Any]]:
    """The round and the server's settings from the app's run config (``pyproject.toml``
    ``[tool.flwr.app.config]``, overridable with ``flwr run --run-config``)."""
    from threedgl.federation.plan import resolve_data
    from threedgl.federation.scenarios import EvaluationOptions

    def num(key: str, default: Any) -> Any:
        return config.get(key, default)

    dataset = str(num("dataset", "titanic"))
    schema_path = str(num("schema-path", ""))
    if schema_path:
        schema = Schema.from_dict(json.loads(Path(schema_path).read_text(encoding="utf-8")))
        given = str(num("positive-label", ""))
        positive = next((x for x in schema.labels if str(x) == given), None)
        if positive is None:
            raise ThreedglError(
                f"with schema-path, positive-label must be one of the class labels "
                f"{list(schema.labels)!r}, got {given!r}"
            )
        preset = None
    else:
        _, _, schema, positive, preset = resolve_data(dataset, None, None, None, None)
    epochs = int(num("epochs", 0)) or None
    epsilon, delta = float(num("epsilon", 1.9)), float(num("delta", 1e-4))
    mode = str(num("mode", "anchored"))
    spec = msg.RoundSpec(
        seed=0, random_state=int(num("random-state", 0)), clients=int(num("clients", 3)),
        schema=schema.to_dict(),
        factory={"preset": preset if mode == "paper" else None, "epsilon": epsilon,
                 "delta": delta, "epochs": epochs, "mode": mode,
                 "generator": str(num("generator", "ddp-betavae"))},
        options=EvaluationOptions(class_mix=str(num("class-mix", "select"))).check().__dict__,
        split=str(num("split", "stratified")), test_size=float(num("test-size", 0.1)),
        min_rows=int(num("min-rows", 10)), positive_label=positive,
        data=None if schema_path else {"dataset": dataset},
        share_scores=_flag(num("share-scores", False), "share-scores"),
    )
    settings = {"seeds": int(num("seeds", 1)), "max_epsilon": epsilon, "max_delta": delta,
                "wait_seconds": float(num("wait-seconds", 120)), "out": str(num("out", ""))}
    return spec, settings


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ThreedglError(f"run config {key!r} must be true or false, got {value!r}")


def report_rounds(
    rounds: Sequence[RoundOutcome], spec: msg.RoundSpec, out: str, elapsed: float = 0.0
) -> str:
    """The scenario table of the rounds (Markdown), written to ``out`` when set."""
    from threedgl.federation.report import SimulationResult
    from threedgl.federation.scenarios import METRICS

    records = []
    for r in rounds:
        for c, co in sorted(r.clients.items()):
            for scenario, s in (co.scores or {}).items():
                records.append({"seed": r.seed, "client": c, "scenario": scenario,
                                **{m: s[m] for m in METRICS},
                                "synthetic_rows": int(s["synthetic_rows"]),
                                # the server does not see the clients' data
                                "client_rows": float("nan"),
                                "client_positive_share": float("nan")})
    kept = sum(co.kept for r in rounds for co in r.clients.values())
    if not records:
        if kept:
            return (f"{kept} client evaluation(s), the scores kept on the clients: they are "
                    "computed on the clients' own rows (set share-scores = true to collect "
                    "them; they are not covered by the generators' DP guarantee)")
        return "no client was evaluated"
    result = SimulationResult(
        dataset=f"{(spec.data or {}).get('dataset', 'federation')} on Flower",
        # a deployment's nodes bring their own CSVs (data-path): nothing was split
        config={"clients": spec.clients,
                "split": spec.split if spec.data is not None else "each node's own data-path",
                "epsilon": spec.factory.get("epsilon"), "seeds": len(rounds),
                "random_state": spec.random_state, "epochs": spec.factory.get("epochs"),
                "engine": "flower", "workers": spec.clients},
        records=records,
        elapsed_seconds=elapsed,
    )
    text = result.to_markdown()
    if spec.share_scores:
        text += ("\n\nshare-scores = true: these scores were computed on the clients' own "
                 "rows and sent as they are; the generators' DP guarantee does not cover them.")
    if kept:
        text += f"\n\n{kept} client evaluation(s) kept their scores on the client."
    if out:
        result.write(out)
    return text


app = ServerApp()


def _evaluated(rounds: Sequence[RoundOutcome]) -> bool:
    return any(co.scores is not None or co.kept for r in rounds for co in r.clients.values())


def _no_client_evaluated(rounds: Sequence[RoundOutcome]) -> str:
    failures = [f for r in rounds for f in r.failures][:5]
    return "no client was evaluated" + (": " + "; ".join(failures) if failures else "")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """``flwr run``'s entry: the rounds of the run config (or of ``simulate``'s round file);
    logs the scenario table and writes it, with ``outcome.json``, to the run config's
    ``out``. A run in which no client was evaluated fails: the ServerApp says so in the log
    (``3DGL run FAILED: …``) and in ``outcome.json``, and raises (Flower marks the run
    ``finished:failed``)."""
    started = time.perf_counter()
    config = dict(context.run_config)
    out = Path(str(config.get("out", ""))) if config.get("out") else None
    engine = EngineRun.read(str(config[ROUND_FILE])) if config.get(ROUND_FILE) else None
    transport: PoolServer | None = None
    if engine is not None:
        spec, seeds = engine.spec, engine.seeds
        max_epsilon, max_delta, wait_seconds = engine.max_epsilon, engine.max_delta, 60.0
        if engine.pool is not None:
            transport = GlobalServerPool(engine.pool["url"], engine.pool["admin_token"],
                                         prefix=engine.pool["prefix"])
    else:
        spec, settings = spec_from_run_config(config)
        seeds, wait_seconds = settings["seeds"], settings["wait_seconds"]
        max_epsilon, max_delta = settings["max_epsilon"], settings["max_delta"]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    server = ThreedglServer(spec, seeds=seeds, max_epsilon=max_epsilon, max_delta=max_delta,
                            transport=transport, wait_seconds=wait_seconds,
                            tick=Progress(out) if out is not None else None,
                            record=engine is not None and engine.transcript)

    def finish(error: str | None) -> None:
        if error is not None:
            print(f"3DGL run FAILED: {error}", flush=True)
        if out is None:
            return
        if server.record:
            write_transcript(out, server.sent, server.received)
        federations = list(getattr(transport, "federations", []))  # the outcome comes last:
        Outcome(FAILED if error else COMPLETED, error, server.rounds, federations).write(out)
        if error is not None:
            print(f"3DGL: the outcome is in {out / 'outcome.json'}", flush=True)

    try:
        server(grid, context)
    except Exception as exc:
        finish(" ".join(f"{type(exc).__name__}: {exc}".split()))
        raise
    if engine is None:
        table = report_rounds(server.rounds, spec, str(out or ""), time.perf_counter() - started)
        print(table, flush=True)
    if not _evaluated(server.rounds):
        error = _no_client_evaluated(server.rounds)
        finish(error)
        raise ThreedglError(error)
    finish(None)

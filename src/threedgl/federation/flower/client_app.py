"""The 3DGL ClientApp: a client trains its generator on its own data, sends the ``.3dgl``
bytes, and, if its generator was accepted, samples the pool and scores the scenarios (a
deployed client sends its scores only when the round sets ``share_scores``; training
warnings stay in the node's log).

Where a client's data comes from:

* **a deployment** (a SuperNode started with ``--node-config "data-path='own.csv'"``): its
  own table, validated against the federation's schema from the ``train`` message; the
  test rows come from ``test-path`` when given (the external data), else ``test_size`` of
  its own rows are held out (stratified). Its training seed is 128 fresh random bits
  unless the node config sets ``seed`` — the server never knows the noise of a real
  client;
* **a simulation** (Flower's simulation runtime sets ``partition-id``): the table named in
  the round (a bundled dataset or a Parquet file), split exactly as the local engine
  splits it (:func:`threedgl.federation.plan.split_for_seed`); client = partition id.

Training and evaluation are the local engine's own functions
(:func:`~threedgl.federation.workers.train_client`,
:func:`~threedgl.federation.workers.evaluate_artifacts`).
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from threedgl.errors import ThreedglError
from threedgl.federation import plan
from threedgl.federation.flower import messages as msg
from threedgl.federation.scenarios import EvaluationOptions
from threedgl.federation.splits import parse_split
from threedgl.federation.workers import (
    PresetFactory,
    derive_seed,
    evaluate_artifacts,
    train_client,
)
from threedgl.schema import Schema

log = logging.getLogger("threedgl.flower")
Handler = Callable[[Message, Context], Message]

#: Node config keys a SuperNode may set.
DATA_PATH, TEST_PATH, CLIENT, SEED = "data-path", "test-path", "client", "seed"
PARTITION_ID = "partition-id"


@dataclass(frozen=True)
class ClientData:
    client: int
    fold: pd.DataFrame
    test: pd.DataFrame
    schema: Schema
    deployed: bool


_SPLITS: dict[str, plan.SeedSplit] = {}  # this process's last simulated split (one entry)


def _read(path: str, schema: Schema, what: str) -> pd.DataFrame:
    from threedgl.schema import read_table

    p = Path(path)
    if not p.is_file():
        raise ThreedglError(f"the node config's {what} {path!r} is not a file")
    return schema.validate(read_table(p), require_target=True, nan_policy="error",
                           extra_columns="error")


def client_data(spec: msg.RoundSpec, node_config: dict[str, Any]) -> ClientData:
    """This client's fold and test rows for the round ``spec`` (see the module docstring)."""
    schema = Schema.from_dict(spec.schema)
    target = schema.target
    if target is None:
        raise ThreedglError("the federation's schema has no class column")
    if DATA_PATH in node_config:
        own = _read(str(node_config[DATA_PATH]), schema, DATA_PATH)
        client = int(node_config.get(CLIENT, spec.client))
        if TEST_PATH in node_config:
            return ClientData(client, own, _read(str(node_config[TEST_PATH]), schema, TEST_PATH),
                              schema, True)
        from sklearn.model_selection import train_test_split

        fold, test = train_test_split(
            own, test_size=spec.test_size, stratify=own[target].astype(str),
            random_state=derive_seed(spec.random_state, spec.seed, plan.SPLIT, client),
        )
        return ClientData(client, fold, test, schema, True)
    if PARTITION_ID not in node_config:
        raise ThreedglError(
            f"this SuperNode has no data: start it with --node-config \"{DATA_PATH}='...'\""
        )
    if spec.data is None:
        raise ThreedglError("a simulated client needs the round's 'data' (dataset or path)")
    client = int(node_config[PARTITION_ID])
    key = msg.RoundSpec(**{**spec.__dict__, "client": 0, "factory": {}, "options": {}}).to_json()
    split = _SPLITS.get(key)
    if split is None:
        if "dataset" in spec.data:
            _, frame, _, _, _ = plan.resolve_data(spec.data["dataset"], None, schema,
                                                  spec.positive_label, None)
        else:
            frame = schema.validate(pd.read_parquet(spec.data["path"]), require_target=True,
                                    nan_policy="error", extra_columns="error")
        split = plan.split_for_seed(frame, schema, spec.clients, parse_split(spec.split),
                                    spec.random_state, spec.seed, test_size=spec.test_size,
                                    min_rows=spec.min_rows)
        _SPLITS.clear()
        _SPLITS[key] = split
    if not 0 <= client < len(split.folds):
        raise ThreedglError(f"partition {client} is outside the {len(split.folds)} client folds")
    return ClientData(client, split.folds[client], split.test, schema, False)


def _factory(spec: msg.RoundSpec) -> PresetFactory:
    try:
        return PresetFactory(**spec.factory)
    except TypeError as exc:
        raise msg.MessageError(f"the round's 'factory' is not a PresetFactory: {exc}") from None


def _train_seed(spec: msg.RoundSpec, data: ClientData, node_config: dict[str, Any]) -> int:
    if not data.deployed:
        return derive_seed(spec.random_state, spec.seed, plan.TRAIN, data.client,
                           bits=128)
    if SEED in node_config:
        log.warning("3DGL: the node config sets 'seed': this client's DP noise can be "
                    "replayed by anyone who knows it (for reproducible tests, not a release)")
        return int(node_config[SEED])
    return secrets.randbits(128)  # every DP draw of the fit derives from these 128 bits


class NodeError(ThreedglError):
    """A deployed client's failure, as the ServerApp sees it: which step failed, no more.

    Flower sends an exception's text to the ServerApp, and a failure on private rows
    names values, counts and row numbers ("'N/A' in column 'income', first at row 17"):
    the node logs the full error, and raises this data-free one instead."""


def _on_this_node(step: str) -> Callable[[Handler], Handler]:
    """Run a ClientApp handler; on a deployed node (its own data file), an error is logged
    here and replaced by a :class:`NodeError` that names the step only."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(message: Message, context: Context) -> Message:
            try:
                return handler(message, context)
            except Exception as exc:
                if DATA_PATH not in context.node_config:  # a simulation: the full error
                    raise
                log.error("3DGL %s failed on this node: %s: %s", step, type(exc).__name__,
                          exc)
                raise NodeError(f"3DGL {step} failed on a deployed client (its node's log "
                                "has the error: it may name private values)") from None

        return run

    return wrap


@_on_this_node("training")
def train(message: Message, context: Context) -> Message:
    """Train this client's generator on its own data; reply with its ``.3dgl`` bytes."""
    spec = msg.read_round(message.content)
    data = client_data(spec, dict(context.node_config))
    trained = train_client(data.fold, data.schema, _factory(spec), data.client,
                           _train_seed(spec, data, dict(context.node_config)))
    for text in trained.warnings:  # decided on the exact data: for this node only, never sent
        log.warning("3DGL (this node only): %s", text)
    if trained.artifact is None:
        log.warning("3DGL: this client could not train a generator: %s", trained.reason)
        reason = str(trained.reason)
        if data.deployed and not trained.shareable:
            reason = ("its data was refused (the node's log has the error: it may name "
                      "private values)")
        return Message(msg.no_generator_reply(data.client, reason), reply_to=message)
    return Message(msg.train_reply(data.client, trained.artifact), reply_to=message)


@_on_this_node("evaluation")
def evaluate(message: Message, context: Context) -> Message:
    """Sample the pool and score the scenarios, or log why this client got no pool."""
    request = msg.read_evaluate_request(message.content)
    spec = request.spec
    data = client_data(spec, dict(context.node_config))
    options = EvaluationOptions(**spec.options).check()
    own: bytes | None = None
    if request.pool is None:  # no pool (contribute-to-access): its own data's scores only
        log.warning("3DGL: no pool for this client: %s", request.refused)
    elif data.client not in request.pool_clients:
        raise msg.MessageError(f"the pool does not hold client {data.client}'s own generator")
    else:
        own = request.pool[request.pool_clients.index(data.client)]
    scores = evaluate_artifacts(
        data.fold, data.test, data.schema, spec.positive_label, request.pool or [], own,
        options, derive_seed(spec.random_state, spec.seed, plan.EVAL, data.client),
    )
    if data.deployed and not spec.share_scores:  # computed on this node's rows: kept here
        for scenario, row in scores.items():
            log.info("3DGL scores (this node only), %s: %s", scenario,
                     ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
        return Message(msg.kept_reply(data.client), reply_to=message)
    return Message(msg.scores_reply(data.client, scores), reply_to=message)


app = ClientApp()
app.train()(train)
app.evaluate()(evaluate)

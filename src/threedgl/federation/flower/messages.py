"""What travels between the 3DGL ServerApp and ClientApps: bytes and JSON, never pickle.

Every message carries one :class:`flwr.app.ConfigRecord` named ``"3dgl"`` (and a reply
with scores one :class:`flwr.app.MetricRecord` named ``"scores"``). Their values are only
``bytes`` (``.3dgl`` files: safetensors plus a JSON manifest), ``str`` (JSON text), numbers
and lists of these; :func:`check_plain` refuses anything else, so no ArrayRecord (or any
other record a peer could fill) is read.

================  ======================  =========================================
message           direction               ``"3dgl"`` keys
================  ======================  =========================================
``train``         ServerApp → ClientApp   ``round`` (JSON: :class:`RoundSpec`)
train reply       ClientApp → ServerApp   ``client``, ``artifact`` (bytes), ``sha256``
                                          — or ``client``, ``status`` (``no-generator``)
                                          and ``reason`` (data-free: see below)
``evaluate``      ServerApp → ClientApp   ``round``, then ``pool`` (list of bytes) and
                                          ``pool-clients`` — or ``refused`` (the reason)
evaluate reply    ClientApp → ServerApp   ``client``, ``status`` (``evaluated``: with
                                          ``"scores"``, ``<scenario>.<metric>`` → value;
                                          ``kept``: scored, the scores stay on the node;
                                          ``refused``: an older client's answer to a
                                          refusal)
================  ======================  =========================================

Nothing else leaves a client: the artifact is what its privacy statement covers, and the
rest is data-free status. A client that cannot train replies ``no-generator``: a deployed
client gives the reason only when it was decided on DP outputs alone (too few noisy
rows), otherwise a fixed text (its node's log has the error, which may name private
values). A client without a generator in the pool (it could not train, or its generator
was refused) gets the refusal and scores its own data only (NaN for the pool's
scenarios). Training warnings are logged on the node, never sent (they are
decided on exact class sizes). Scores are computed on the client's rows, so a deployed
client (its own data file) sends them only when the round's ``share_scores`` is set (run
config ``share-scores``), and the ServerApp's report then says they are not covered by
DP; a simulated client's rows are a split of a table the simulation holds whole.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from threedgl.errors import ThreedglError
from threedgl.federation.scenarios import METRICS, SCENARIOS

RECORD = "3dgl"
SCORES = "scores"
#: The ClientApp's actions (Flower message types).
TRAIN, EVALUATE = "train", "evaluate"
#: A train reply's status when the client could not train, and its reason's longest text.
NO_GENERATOR, MAX_REASON = "no-generator", 500
#: Scenarios a client scores itself (``centralized`` needs every row: only a simulation has it).
CLIENT_SCENARIOS: tuple[str, ...] = tuple(s for s in SCENARIOS if s != "centralized")


class MessageError(ThreedglError):
    """A message does not hold what the 3DGL protocol says it holds."""


@dataclass(frozen=True)
class RoundSpec:
    """One 3DGL round as the ServerApp announces it (sent as JSON).

    ``client`` is the index the server gives the receiving node (a simulated client uses
    its partition id instead); ``data`` says where a simulated client finds the table
    (``{"dataset": name}`` or ``{"path": parquet file}``; ``None`` in a deployment, where
    every SuperNode reads its own file); ``factory`` holds the fields of
    :class:`~threedgl.federation.workers.PresetFactory`; ``schema`` is the federation's.
    """

    seed: int
    random_state: int
    clients: int
    schema: dict[str, Any]
    factory: dict[str, Any]
    options: dict[str, Any]
    client: int = 0
    split: str = "stratified"
    test_size: float = 0.1
    min_rows: int = 10
    positive_label: Any = None
    data: dict[str, str] | None = None
    #: Deployed clients send their scores (computed on their own rows, not covered by DP).
    share_scores: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(_plain_json(asdict(self)), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RoundSpec:
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise MessageError(f"'round' is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise MessageError("'round' must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise MessageError(f"'round' has unknown keys {unknown}")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise MessageError(f"'round' is incomplete: {exc}") from None


@dataclass(frozen=True)
class TrainReply:
    client: int
    artifact: bytes | None  # None: the client could not train (``reason`` says why)
    reason: str | None = None


@dataclass(frozen=True)
class EvaluateRequest:
    spec: RoundSpec
    pool: list[bytes] | None  # None: refused
    pool_clients: list[int]
    refused: str | None


@dataclass(frozen=True)
class ScoresReply:
    client: int
    status: str  # "evaluated", "kept" (scores stay on the node) or "refused"
    scores: dict[str, dict[str, float]] | None


def _plain_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else None)
    return value


_SCALARS = (bytes, str, int, float, bool)


def check_plain(content: Any) -> None:
    """Raise :class:`MessageError` unless ``content`` (a ``RecordDict``) holds only config and
    metric records whose values are bytes, text, numbers or lists of them."""
    from flwr.app import ConfigRecord, MetricRecord

    for name, record in content.items():
        if not isinstance(record, (ConfigRecord, MetricRecord)):
            raise MessageError(
                f"record {name!r} is a {type(record).__name__}; 3DGL messages carry only "
                "config and metric records (bytes, JSON text, numbers)"
            )
        for key, value in record.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if not isinstance(v, _SCALARS):
                    raise MessageError(
                        f"record {name!r} key {key!r} holds a {type(v).__name__}"
                    )


def _record(content: Any) -> Mapping[str, Any]:
    check_plain(content)
    if RECORD not in content:
        raise MessageError(f"the message has no {RECORD!r} record")
    return content[RECORD]  # type: ignore[no-any-return]


def _get(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in record:
        raise MessageError(f"the {RECORD!r} record has no {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise MessageError(f"{key!r} must be {kind}, got {type(value).__name__}")
    return value


def _config(**values: Any) -> Any:
    from flwr.app import ConfigRecord

    return ConfigRecord(values)


def _content(**records: Any) -> Any:
    from flwr.app import RecordDict

    return RecordDict(records)


# -- ServerApp → ClientApp -------------------------------------------------------------------------
def train_request(spec: RoundSpec) -> Any:
    return _content(**{RECORD: _config(round=spec.to_json())})


def read_round(content: Any) -> RoundSpec:
    return RoundSpec.from_json(_get(_record(content), "round", str))


def evaluate_request(spec: RoundSpec, pool: Mapping[int, bytes]) -> Any:
    """The pool, in client order, for a client whose generator was accepted."""
    clients = sorted(pool)
    return _content(**{RECORD: _config(
        round=spec.to_json(), pool=[pool[c] for c in clients],
        **{"pool-clients": json.dumps(clients)},
    )})


def refusal(spec: RoundSpec, reason: str) -> Any:
    """No pool: the client's generator was refused, and this is why."""
    return _content(**{RECORD: _config(round=spec.to_json(), refused=reason)})


def read_evaluate_request(content: Any) -> EvaluateRequest:
    record = _record(content)
    spec = RoundSpec.from_json(_get(record, "round", str))
    if "refused" in record:
        return EvaluateRequest(spec, None, [], str(_get(record, "refused", str)))
    pool = _get(record, "pool", list)
    if not pool or not all(isinstance(a, bytes) for a in pool):
        raise MessageError("'pool' must be a non-empty list of .3dgl files (bytes)")
    clients = json.loads(_get(record, "pool-clients", str))
    if (not isinstance(clients, list) or len(clients) != len(pool)
            or not all(isinstance(c, int) for c in clients)):
        raise MessageError("'pool-clients' must list one client index per pool artifact")
    return EvaluateRequest(spec, list(pool), clients, None)


# -- ClientApp → ServerApp -------------------------------------------------------------------------
def train_reply(client: int, artifact: bytes) -> Any:
    return _content(**{RECORD: _config(
        client=int(client), artifact=artifact, sha256=hashlib.sha256(artifact).hexdigest(),
    )})


def no_generator_reply(client: int, reason: str) -> Any:
    """The client could not train a generator; ``reason`` must be data-free."""
    return _content(**{RECORD: _config(client=int(client), status=NO_GENERATOR,
                                       reason=str(reason)[:MAX_REASON])})


def read_train_reply(content: Any) -> TrainReply:
    record = _record(content)
    client = int(_get(record, "client", int))
    if "artifact" not in record and record.get("status") == NO_GENERATOR:
        return TrainReply(client, None, str(_get(record, "reason", str))[:MAX_REASON])
    artifact = _get(record, "artifact", bytes)
    digest = _get(record, "sha256", str)
    if hashlib.sha256(artifact).hexdigest() != digest:
        raise MessageError(f"client {client}'s artifact does not match its sha256 {digest}")
    return TrainReply(client, artifact)


def scores_reply(client: int, scores: Mapping[str, Mapping[str, float]]) -> Any:
    from flwr.app import MetricRecord

    metrics: dict[str, int | float | list[int] | list[float]] = {}
    for scenario in CLIENT_SCENARIOS:
        for m in METRICS:
            metrics[f"{scenario}.{m}"] = float(scores[scenario][m])
        metrics[f"{scenario}.synthetic_rows"] = int(scores[scenario]["synthetic_rows"])
    return _content(**{RECORD: _config(client=int(client), status="evaluated"),
                       SCORES: MetricRecord(metrics)})


def refused_reply(client: int) -> Any:
    return _content(**{RECORD: _config(client=int(client), status="refused")})


def kept_reply(client: int) -> Any:
    """Scored, the scores kept on the node (a deployed client without ``share_scores``)."""
    return _content(**{RECORD: _config(client=int(client), status="kept")})


def read_scores_reply(content: Any) -> ScoresReply:
    record = _record(content)
    client = int(_get(record, "client", int))
    status = _get(record, "status", str)
    if status in ("refused", "kept"):
        return ScoresReply(client, status, None)
    if status != "evaluated" or SCORES not in content:
        raise MessageError(f"client {client}'s reply has status {status!r} and no scores")
    metrics = content[SCORES]
    scores: dict[str, dict[str, float]] = {}
    for scenario in CLIENT_SCENARIOS:
        row: dict[str, float] = {}
        for key in (*METRICS, "synthetic_rows"):
            name = f"{scenario}.{key}"
            if name not in metrics:
                raise MessageError(f"client {client}'s scores lack {name!r}")
            row[key] = float(metrics[name])
        scores[scenario] = row
    return ScoresReply(client, status, scores)

"""What the ServerApp leaves in its ``out`` directory, and what ``simulate`` hands it.

On Flower's runtime the ServerApp runs in Flower's own process (``flwr-simulation``, started
by the SuperLink), so its outcome comes back through files:

* ``progress.jsonl`` — one line per reply, as it arrives (``{"phase": "train"}``);
* ``outcome.json`` — written at the end, whether the run completed or failed: ``status``
  (``completed`` or ``failed``), ``error`` (one line), every round's
  :class:`RoundOutcome`, and the Global Server federations it opened;
* ``transcript.json`` — only when asked: every message the ServerApp sent and received,
  its records as they were (bytes in base64), for the tests of what travels.

``simulate(..., engine="flower")`` writes an :class:`EngineRun` file (the round, the
privacy policy, where the pool is kept) and names it in the app's run config
(``round-file``); the ServerApp reads it instead of the run config's other keys.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from threedgl.errors import ThreedglError
from threedgl.federation.flower.messages import MessageError, RoundSpec
from threedgl.schema.io import atomic_write_text

PROGRESS, OUTCOME, TRANSCRIPT = "progress.jsonl", "outcome.json", "transcript.json"
#: The run-config key naming an :class:`EngineRun` file (set by ``simulate`` only).
ROUND_FILE = "round-file"
COMPLETED, FAILED = "completed", "failed"


@dataclass
class ClientOutcome:
    """What one client did in one round."""

    client: int
    node_id: int
    scores: dict[str, dict[str, float]] | None = None
    #: Why the client has no generator in the pool, worded as the local engine words it
    #: ("could not train: …" or "generator refused: …"); it then scores its own data only.
    refused: str | None = None
    #: Scored on the node, the scores kept there (a deployed client, share-scores off).
    kept: bool = False


@dataclass
class RoundOutcome:
    seed: int
    clients: dict[int, ClientOutcome] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "failures": list(self.failures),
                "clients": [asdict(co) for _, co in sorted(self.clients.items())]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RoundOutcome:
        clients = [ClientOutcome(**co) for co in raw["clients"]]
        return cls(int(raw["seed"]), {co.client: co for co in clients}, list(raw["failures"]))


@dataclass(frozen=True)
class EngineRun:
    """The run ``simulate`` asks of the ServerApp. ``pool`` is where the pool is kept:
    ``None`` (a :class:`~threedgl.federation.transport.CheckedPool` in the ServerApp) or
    ``{"url", "admin_token", "prefix"}`` of a Global Server; the file is written private
    (mode 0600) in a private temporary directory, as it may hold that token."""

    spec: RoundSpec
    seeds: int
    max_epsilon: float
    max_delta: float
    pool: dict[str, str] | None = None
    transcript: bool = False

    def write(self, path: Path) -> None:
        raw = {**asdict(self), "spec": self.spec.to_json()}
        atomic_write_text(path, json.dumps(raw), private=True)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> EngineRun:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**{**raw, "spec": RoundSpec.from_json(raw["spec"])})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ThreedglError(f"run config {ROUND_FILE!r}: cannot read {path}: {exc}") from None


@dataclass
class Outcome:
    """``outcome.json``: how the ServerApp's run ended."""

    status: str
    error: str | None
    rounds: list[RoundOutcome]
    federations: list[str] = field(default_factory=list)

    def write(self, out: Path) -> None:
        raw = {"status": self.status, "error": self.error, "federations": self.federations,
               "rounds": [r.to_dict() for r in self.rounds]}
        atomic_write_text(out / OUTCOME, json.dumps(raw, indent=1))

    @classmethod
    def read(cls, out: Path) -> Outcome | None:
        """The outcome in ``out``; ``None`` when the ServerApp wrote none."""
        path = out / OUTCOME
        if not path.is_file():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(str(raw["status"]), raw["error"],
                   [RoundOutcome.from_dict(r) for r in raw["rounds"]],
                   list(raw.get("federations", [])))


class Progress:
    """Appends a line to ``progress.jsonl`` per reply (the ServerApp's ``tick``)."""

    def __init__(self, out: Path) -> None:
        self.path = out / PROGRESS

    def __call__(self, phase: str) -> Any:
        def on_reply() -> None:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"phase": phase}) + "\n")

        return on_reply


def read_progress(path: Path, offset: int) -> tuple[list[str], int]:
    """The phases of the complete lines of ``progress.jsonl`` after byte ``offset``, and the
    offset after them (a line being written is read next time)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    phases = [json.loads(line)["phase"] for line in data[:end].splitlines() if line.strip()]
    return phases, offset + end


# -- the transcript ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    """One message as the ServerApp sent or received it (its records rebuilt)."""

    message_type: str
    src_node_id: int
    dst_node_id: int
    content: Any  # flwr.app.RecordDict


def _encode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_encode_value(v) for v in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


def encode_message(message: Any) -> dict[str, Any]:
    """A Flower message as JSON: its type, nodes and records, each record's kind named."""
    meta = message.metadata
    records = {name: {"kind": type(record).__name__,
                      "items": {k: _encode_value(v) for k, v in record.items()}}
               for name, record in message.content.items()}
    return {"message_type": meta.message_type, "src_node_id": meta.src_node_id,
            "dst_node_id": meta.dst_node_id, "records": records}


def decode_message(raw: dict[str, Any]) -> Recorded:
    """:func:`encode_message`'s output as a :class:`Recorded`; only config and metric
    records can be rebuilt (any other kind is refused, as the ServerApp refuses it)."""
    from flwr.app import ConfigRecord, MetricRecord, RecordDict

    kinds = {"ConfigRecord": ConfigRecord, "MetricRecord": MetricRecord}
    content = RecordDict()
    for name, record in raw["records"].items():
        if record["kind"] not in kinds:
            raise MessageError(f"record {name!r} is a {record['kind']}")
        content[name] = kinds[record["kind"]](
            {k: _decode_value(v) for k, v in record["items"].items()})
    return Recorded(str(raw["message_type"]), int(raw["src_node_id"]),
                    int(raw["dst_node_id"]), content)


def write_transcript(out: Path, sent: list[Any], received: list[Any]) -> None:
    atomic_write_text(out / TRANSCRIPT, json.dumps({
        "sent": [encode_message(m) for m in sent],
        "received": [encode_message(m) for m in received]}))


def read_transcript(out: Path) -> tuple[list[Recorded], list[Recorded]]:
    raw = json.loads((out / TRANSCRIPT).read_text(encoding="utf-8"))
    return ([decode_message(m) for m in raw["sent"]],
            [decode_message(m) for m in raw["received"]])

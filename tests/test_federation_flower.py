"""3DGL on Flower: the apps on Flower's simulation runtime (Ray) behind a local SuperLink,
engine equivalence, the ServerApp refusing a tampered artifact, what travels in the
messages (no pickle), ``3dgl flower-run`` of a failed and a completed run, Ctrl-C, and the
ClientApp's data for a deployment.

Five Flower runs over loopback (each starts a SuperLink, Flower's simulation process and
Ray: ~15 s of overhead on 2 cores), Titanic, 2 to 5 clients, one training epoch, small
evaluation settings.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from server_fixtures import ADMIN_TOKEN, ServerProcess, sqlite_server
from threedgl import datasets
from threedgl.artifact.format import read_artifact_bytes
from threedgl.errors import ThreedglError
from threedgl.federation import (
    CheckedPool,
    EvaluationOptions,
    GlobalServerPool,
    PresetFactory,
    Refused,
    simulate,
)
from threedgl.federation.flower import client_app, demo, engine, server_app
from threedgl.federation.flower import messages as msg
from threedgl.federation.flower.superlink import CONNECTION, LocalSuperLink
from threedgl.federation.scenarios import METRICS
from threedgl.server.client import ServerClient

__all__ = ["sqlite_server"]  # the shared fixture, imported for pytest

REPO = Path(__file__).resolve().parents[1]
FAST = EvaluationOptions(pool_min_rows=400, pool_factor=4, cv_folds=5, rpp_cv_folds=3)
EPSILON = 1.9  # the ServerApp, as the Global Server, accepts only private generators


def _spec(clients: int = 3, delta: float = 1e-4, **kw: Any) -> msg.RoundSpec:
    ds = datasets.load("titanic")
    factory = PresetFactory(None, EPSILON, delta, 1)
    return msg.RoundSpec(
        seed=0, random_state=11, clients=clients, schema=ds.schema.to_dict(),
        factory=factory.__dict__, options=FAST.__dict__, positive_label=ds.positive_label,
        data={"dataset": "titanic"}, **kw,
    )


# -- on Flower's simulation runtime --------------------------------------------------------------
def test_same_seeds_same_scores_on_both_engines(sqlite_server: ServerProcess) -> None:
    """Titanic, 3 clients, end to end on Flower, the ServerApp keeping its pool on a live
    Global Server (the transports compose); every score equals the local engine's."""
    kw: dict[str, Any] = {"clients": 3, "epochs": 1, "epsilon": EPSILON, "workers": 2,
                          "random_state": 11, "options": FAST}
    ticks: list[tuple[str, int, int]] = []
    pool = GlobalServerPool(sqlite_server.url, ADMIN_TOKEN, prefix="flower-test")
    flower = simulate("titanic", engine="flower", server=pool,
                      progress=lambda *a: ticks.append(a), **kw)
    local = simulate("titanic", engine="local", **kw)
    pd.testing.assert_frame_equal(flower.to_frame(), local.to_frame())
    pd.testing.assert_frame_equal(flower.summary(), local.summary())
    assert flower.config["engine"] == "flower" and local.config["engine"] == "local"
    assert flower.config["server"] == "GlobalServerPool"
    assert ("train", 3, 3) in ticks and ("evaluate", 3, 3) in ticks
    assert "flower engine" in flower.to_markdown()
    # the Global Server checked and stored the three generators of the one round
    assert len(pool.federations) == 1
    with ServerClient(sqlite_server.url, _client_token(sqlite_server.url, pool)) as me:
        assert len(me.pool()) == 3


def _client_token(url: str, pool: GlobalServerPool) -> str:
    """A fresh token of client 0 in the pool's last federation (the ServerApp, in Flower's
    simulation process, opened it; this process knows only its name)."""
    assert pool.federation is not None
    with ServerClient(url, ADMIN_TOKEN) as admin:
        return str(admin.new_client_token(pool.federation, "client-0000")["token"])


def test_a_client_that_cannot_train_does_not_stop_the_run(sqlite_server: ServerProcess) -> None:
    """Issue 21, item 1: Titanic split dirichlet:0.1 over 5 clients (random_state 2) gives
    client 3 ten rows whose noisy class counts all fall below 1. The run goes on, on both
    engines and through a Global Server: client 3 scores its own data only, gets no pool,
    and the report names it and the reason; every score is the same on both engines."""
    kw: dict[str, Any] = {"clients": 5, "split": "dirichlet:0.1", "epochs": 1,
                          "epsilon": EPSILON, "workers": 2, "random_state": 2, "options": FAST}
    pool = GlobalServerPool(sqlite_server.url, ADMIN_TOKEN, prefix="cannot-train")
    flower = simulate("titanic", engine="flower", server=pool, **kw)
    local = simulate("titanic", engine="local", **kw)
    reason = "could not train: every class has a noisy row count below 1: nothing to train on"
    for result in (flower, local):
        assert result.without_generator == [{"seed": 0, "client": 3, "reason": reason}]
        frame = result.to_frame().set_index(["client", "scenario"])
        assert frame.loc[(3, "local_test"), "accuracy"] > 0
        assert frame.loc[(3, "local_cv"), "accuracy"] > 0
        for scenario in ("fold_test", "fold_fold", "own_generator", "real_plus_pool"):
            assert math.isnan(frame.loc[(3, scenario), "accuracy"])
            assert not math.isnan(frame.loc[(2, scenario), "accuracy"])
        assert "client 3: " + reason in result.to_markdown()
        assert not math.isnan(result.summary().loc["fold_test", "accuracy_gain"])
    pd.testing.assert_frame_equal(flower.to_frame(), local.to_frame())
    pd.testing.assert_frame_equal(flower.summary(), local.summary())
    with ServerClient(sqlite_server.url, _client_token(sqlite_server.url, pool)) as me:
        # 4 generators, no client 3
        assert sorted(e["client"] for e in me.pool()) == [
            "client-0000", "client-0001", "client-0002", "client-0004"]


@pytest.fixture(scope="module")
def tampered_run() -> Any:
    """One round where client 1's artifact is tampered with after training."""
    return engine.run_rounds(_spec(), seeds=1, max_epsilon=EPSILON, max_delta=1e-4, workers=2,
                             client_app="flower_tamper:app", transcript=True)


def _node_messages(job: Any, node: int, kind: str) -> list[Any]:
    return [m for m in job.sent if m.dst_node_id == node and m.message_type == kind]


def test_tampered_artifact_is_refused_and_gets_no_pool(tampered_run: Any) -> None:
    (outcome,) = tampered_run.rounds
    assert outcome.failures == []
    assert sorted(outcome.clients) == [0, 1, 2]
    bad = outcome.clients[1]
    assert bad.refused is not None and "sha256" in bad.refused  # the weights' hash
    # a participant without a generator: its own data's scores, none of the pool's
    assert bad.scores is not None and bad.scores["local_test"]["accuracy"] > 0
    assert all(math.isnan(bad.scores[s]["accuracy"])
               for s in ("fold_test", "fold_fold", "own_generator", "real_plus_pool"))
    # the refused client was told why, and got no pool
    (told,) = _node_messages(tampered_run, bad.node_id, msg.EVALUATE)
    request = msg.read_evaluate_request(told.content)
    assert request.pool is None and request.refused == bad.refused
    assert "pool" not in told.content[msg.RECORD]
    # the others got the pool of accepted generators only, and scored every scenario
    for c in (0, 2):
        co = outcome.clients[c]
        assert co.refused is None
        (sent,) = _node_messages(tampered_run, co.node_id, msg.EVALUATE)
        request = msg.read_evaluate_request(sent.content)
        assert request.pool_clients == [0, 2] and request.pool is not None
        assert co.scores is not None and set(co.scores) == set(msg.CLIENT_SCENARIOS)
        assert all(0.0 <= co.scores[s]["accuracy"] <= 1.0 for s in co.scores)
    replies = [msg.read_scores_reply(r.content) for r in tampered_run.received
               if r.message_type == msg.EVALUATE]
    assert sorted((r.client, r.status) for r in replies) == [
        (0, "evaluated"), (1, "evaluated"), (2, "evaluated")]
    # the simulation's view: a participant without a generator, named with the reason
    (seed,) = engine.outcomes_by_seed(tampered_run, 3, 1)
    assert list(seed.without_generator) == [1]
    assert seed.without_generator[1].startswith("generator refused: ")
    assert "sha256" in seed.without_generator[1]


def test_no_pickle_in_the_message_path(tampered_run: Any) -> None:
    """Every record sent and received holds bytes (.3dgl files), JSON text and numbers (as
    the ServerApp saw them, recorded in its transcript)."""
    from flwr.app import ConfigRecord, MetricRecord

    messages = [*tampered_run.sent, *tampered_run.received]
    assert len(messages) == 12  # 3 train, 3 train replies, 3 evaluate, 3 replies
    artifacts = 0
    for m in messages:
        msg.check_plain(m.content)
        for name, record in m.content.items():
            assert isinstance(record, (ConfigRecord, MetricRecord)), name
            for key, value in record.items():
                for v in value if isinstance(value, list) else [value]:
                    assert isinstance(v, (bytes, str, int, float)), (name, key)
                    if isinstance(v, bytes):
                        # A pickle stream starts with PROTO (0x80) and a protocol number 2 to
                        # 5; a .3dgl file with its 8-byte header length then '{' (its low
                        # byte may well be 0x80).
                        assert not (v[:1] == b"\x80" and v[1:2] in (b"\x02", b"\x03", b"\x04",
                                                                     b"\x05")), "a pickle stream"
                        assert v[8:9] == b"{", "not a safetensors header"
                        artifacts += 1
                        if key == "pool":  # what the server forwards passed its checks
                            assert read_artifact_bytes(v).manifest["generator"]
                    if key in ("round", "pool-clients"):
                        json.loads(v)
    assert artifacts == 3 + 2 + 2  # the 3 trained, then a pool of 2 to each of 2 clients
    # nothing in threedgl.federation imports pickle (or a pickle-based serializer)
    root = Path(msg.__file__).parents[1]
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {"pickle", "cloudpickle", "dill", "joblib"} & {
                n.split(".")[0] for n in names}, path


def test_no_count_leaves_a_client(tampered_run: Any) -> None:
    """What the clients sent holds the protocol's keys only: the artifact (which the privacy
    statement covers), its sha256, the client index, a status, and a simulated client's
    scores under their protocol names. No warning text travels."""
    expected_scores = {f"{sc}.{m}" for sc in msg.CLIENT_SCENARIOS
                       for m in (*METRICS, "synthetic_rows")}
    replies = list(tampered_run.received)
    assert len(replies) == 6
    for reply in replies:
        for name, record in reply.content.items():
            if name == msg.SCORES:
                assert set(record) == expected_scores
                continue
            assert name == msg.RECORD
            assert set(record) <= {"client", "artifact", "sha256", "status"}, set(record)
    (outcome,) = tampered_run.rounds
    assert all(not hasattr(co, "warnings") for co in outcome.clients.values())


def _flower_run(link: LocalSuperLink, *args: str) -> subprocess.CompletedProcess[str]:
    """``3dgl flower-run ARGS`` against ``link`` (its ``flwr`` configuration)."""
    return subprocess.run([sys.executable, "-m", "threedgl.cli.main", "flower-run", *args],
                          env=link.env, capture_output=True, text=True, timeout=600)


def test_flower_run_exits_with_the_runs_status() -> None:
    """``3dgl flower-run`` (the real ``flwr run ... --stream`` of the app in ``flower-app/``
    on the simulation runtime) exits 1 when no client was evaluated and 0 when the run
    completed. The failed run has a deployment's run config (``schema-path``: simulated
    clients then have no data): every node fails training, each failure one readable line;
    the ServerApp says the run FAILED in the stream and in ``out/outcome.json``; Flower
    marks the run ``finished:failed``, and the wrapper's last line says so with the reason
    (Flower 1.42's ``flwr run`` alone exits 0 for it: the reason the wrapper exists). Ctrl-C
    once a run started exits 130 and says how to stop the run. No process of the SuperLink
    is left."""
    with tempfile.TemporaryDirectory(prefix="3dgl-test-") as tmp:
        root = Path(tmp)
        schema = demo.write_demo(root / "demo", "titanic", 2, "stratified", 0)[-1]
        out, done = root / "out", root / "done"
        with LocalSuperLink(root / "link") as link:
            failed = _flower_run(
                link, str(REPO / "flower-app"), CONNECTION,
                "--run-config", f"schema-path='{schema}' positive-label='1' clients=2 epochs=1 out='{out}'",
                "--federation-config", "num-supernodes=2 init-args-num-cpus=2")
            run_id = int(re.findall(r"Successfully started run (\d+)", failed.stdout)[0])
            status = link.status(run_id)
            completed = _flower_run(
                link, str(REPO / "flower-app"), CONNECTION, "--stream",
                "--run-config", f"clients=2 epochs=1 test-size=0.3 out='{done}'",
                "--federation-config", "num-supernodes=2 init-args-num-cpus=2")
            # Ctrl-C (to the process group, as a terminal sends it) once the run started
            ctrl_c = subprocess.Popen(
                [sys.executable, "-m", "threedgl.cli.main", "flower-run", str(REPO / "flower-app"),
                 CONNECTION, "--run-config", "clients=2 epochs=1",
                 "--federation-config", "num-supernodes=2 init-args-num-cpus=2"],
                env=link.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True)
            assert ctrl_c.stdout is not None
            for line in ctrl_c.stdout:
                if "Successfully started run" in line:
                    os.killpg(ctrl_c.pid, signal.SIGINT)
                    break
            rest, err = ctrl_c.communicate(timeout=60)
        assert link.leftovers() == []
        outcome = json.loads((out / "outcome.json").read_text())
    text = failed.stdout
    assert failed.returncode == 1, (failed.stdout[-2000:], failed.stderr)
    assert status["status"] == "finished:failed"
    assert "no client was evaluated" in status["status-details"]
    (last,) = failed.stderr.strip().splitlines()[-1:]
    assert re.fullmatch(rf"3dgl flower-run: run {run_id} finished:failed: .*no client was "
                        r"evaluated: node \d+: training failed: .*", last), last
    assert "Traceback" not in failed.stderr
    assert "3DGL run FAILED: no client was evaluated: node " in text
    assert outcome["status"] == "failed" and outcome["error"].startswith("no client was evaluated")
    (round0,) = outcome["rounds"]
    failures = round0["failures"]
    assert len(failures) == 2
    for failure in failures:  # one readable line per node, not Ray's colored traceback
        assert re.fullmatch(r"node \d+: training failed: ThreedglError: a simulated client "
                            r"needs the round's 'data' \(dataset or path\)", failure), failure
        assert any(line.endswith(f"3DGL round 0: {failure}") for line in text.splitlines())
    assert completed.returncode == 0, (completed.stdout[-2000:], completed.stderr)
    assert re.search(r"3dgl flower-run: run \d+ finished:completed$", completed.stderr.strip())
    assert ctrl_c.returncode == 130, (rest[-2000:], err)
    assert re.search(r"interrupted: run (\d+) goes on at the SuperLink \(flwr stop \1 stops it\)",
                     err), err
    assert "Traceback" not in err


def test_flower_run_arguments() -> None:
    """What the wrapper reads of ``flwr run``'s arguments and output, and its exit codes."""
    from threedgl.federation.flower.flwr_run import (
        FlwrOutcome,
        exit_code,
        flwr_env,
        run_id_of,
        shell_status,
        superlink_of,
    )

    assert superlink_of(["flower-app", "demo", "--stream"]) == "demo"
    assert superlink_of(["--run-config", "a=1 b='x'", "flower-app", "-c", "x=2", "demo"]) == "demo"
    assert superlink_of(["flower-app", "--federation-config", "num-supernodes=3"]) is None
    assert superlink_of(["--format=json", "app", "link"]) == "link"
    assert superlink_of([]) is None
    assert run_id_of("Successfully started run 4711\n") == 4711
    assert run_id_of('{"success": true, "run-id": "99", "federation-id": ""}') == 99
    assert run_id_of("INFO :      Starting logstream for run_id `5`") is None
    assert exit_code(FlwrOutcome(0, 1, {"status": "finished:completed"})) == 0
    assert exit_code(FlwrOutcome(0, 1, {"status": "finished:failed"})) == 1
    assert exit_code(FlwrOutcome(0, 1, {"status": "finished:stopped"})) == 1
    assert exit_code(FlwrOutcome(0, 1, {})) == 1  # status unreadable
    assert exit_code(FlwrOutcome(0, None)) == 1  # no run id announced
    assert exit_code(FlwrOutcome(2)) == 2  # flwr's own failure
    assert shell_status(-15) == 143 and shell_status(0) == 0 and shell_status(1) == 1
    # flwr prints the streamed log unflushed: it must not sit in a pipe's 8 KB buffer
    assert flwr_env({"PATH": "/bin"}) == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def _ours(marker: str) -> list[int]:
    """Live processes (not this one) whose environment holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_ctrl_c_leaves_no_flower_process(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) while the ClientApps train: ``simulate`` stops, and every process of
    its SuperLink (SuperExec, flwr-simulation, Ray's GCS, raylet, agents and workers) is
    gone. They are found by their environment: the run's temporary directory is under
    this test's (``TMPDIR``)."""
    marker = str(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", "from threedgl.federation import simulate; "
         "simulate('titanic', clients=2, epochs=1, engine='flower', workers=2)"],
        env={**os.environ, "TMPDIR": marker}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 900  # a loaded machine: Flower and Ray start slowly
        while not any(_cmdline(p).startswith(b"ray::ClientAppActor") for p in _ours(marker)):
            assert child.poll() is None and time.monotonic() < deadline, "no ClientApp started"
            time.sleep(0.5)
        assert len(_ours(marker)) >= 5  # SuperLink, SuperExec, flwr-simulation, Ray's
    finally:
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert _ours(marker) == []


def test_a_killed_driver_leaves_no_flower_process(tmp_path: Path) -> None:
    """SIGKILL to the process that runs ``simulate`` (nothing of it can clean up): the
    reaper started beside its SuperLink stops the SuperLink, SuperExec, flwr-simulation and
    Ray's processes, then ends itself. Found as in the Ctrl-C test, by ``TMPDIR``."""
    marker = str(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", "from threedgl.federation import simulate; "
         "simulate('titanic', clients=2, epochs=1, engine='flower', workers=2)"],
        env={**os.environ, "TMPDIR": marker}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900  # a loaded machine: Flower and Ray start slowly
        while not any(_cmdline(p).startswith(b"ray::ClientAppActor") for p in _ours(marker)):
            assert child.poll() is None and time.monotonic() < deadline, "no ClientApp started"
            time.sleep(0.5)
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 60
    while _ours(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ours(marker) == []


def test_a_clients_training_warning_holds_no_count() -> None:
    """δ ≥ 1/n warns on the client's exact class sizes (for its owner's log only): the text
    names the classes and 1/δ, never a size."""
    from threedgl.federation.plan import split_for_seed
    from threedgl.federation.splits import parse_split
    from threedgl.federation.workers import train_client

    ds = datasets.load("titanic")
    split = split_for_seed(ds.frame, ds.schema, 3, parse_split("stratified"), 11, 0,
                           test_size=0.1, min_rows=10)
    fold = split.folds[0]
    sizes = {str(int(n)) for n in fold[ds.target].value_counts()}
    warns = train_client(fold, ds.schema, PresetFactory(None, EPSILON, 0.05, 1), 0, 3).warnings
    texts = [w for w in warns if "at least 1/n" in w]
    assert texts  # it fired
    numbers = {t for w in texts for t in re.findall(r"\d+", w)}
    assert not sizes & numbers, sizes & numbers


def test_check_plain_refuses_other_records() -> None:
    import numpy as np
    from flwr.app import Array, ArrayRecord, RecordDict

    content = RecordDict({msg.RECORD: ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})})
    with pytest.raises(msg.MessageError, match="only config and metric records"):
        msg.check_plain(content)
    with pytest.raises(msg.MessageError, match="no 'round'"):
        msg.read_round(RecordDict({msg.RECORD: msg._config(other="x")}))


# -- the parts, without Ray ----------------------------------------------------------------------
def test_round_spec_travels_as_json() -> None:
    spec = _spec(extra={"note": "x"})
    assert msg.RoundSpec.from_json(spec.to_json()) == spec
    assert msg.read_round(msg.train_request(spec)) == spec
    with pytest.raises(msg.MessageError, match="unknown keys"):
        msg.RoundSpec.from_json(json.dumps({**json.loads(spec.to_json()), "pickle": 1}))
    with pytest.raises(msg.MessageError, match="not JSON"):
        msg.RoundSpec.from_json("{")


def test_replies_round_trip_and_sha256_is_checked() -> None:
    reply = msg.read_train_reply(msg.train_reply(2, b"abc"))
    assert (reply.client, reply.artifact) == (2, b"abc")
    assert set(msg.train_reply(2, b"abc")[msg.RECORD]) == {"client", "artifact", "sha256"}
    content = msg.train_reply(2, b"abc")
    content[msg.RECORD]["artifact"] = b"abd"
    with pytest.raises(msg.MessageError, match="does not match its sha256"):
        msg.read_train_reply(content)
    scores = {s: {"accuracy": 0.5, "f1": 0.25, "auc": math.nan, "synthetic_rows": 7}
              for s in msg.CLIENT_SCENARIOS}
    back = msg.read_scores_reply(msg.scores_reply(1, scores))
    assert back.client == 1 and back.scores is not None
    assert back.scores["fold_test"]["f1"] == 0.25 and math.isnan(back.scores["fold_test"]["auc"])
    assert msg.read_scores_reply(msg.refused_reply(4)).status == "refused"
    kept = msg.read_scores_reply(msg.kept_reply(5))
    assert (kept.status, kept.scores) == ("kept", None)
    assert set(msg.kept_reply(5)[msg.RECORD]) == {"client", "status"}


def test_a_deployed_clients_scores_stay_unless_the_run_shares_them() -> None:
    spec = _spec()
    assert spec.share_scores is False  # the default
    outcome = server_app.RoundOutcome(0, {0: server_app.ClientOutcome(0, 7, kept=True)})
    text = server_app.report_rounds([outcome], spec, "")
    assert "kept on the clients" in text and "share-scores" in text
    scores = {s: {"accuracy": 0.5, "f1": 0.25, "auc": 0.5, "synthetic_rows": 7}
              for s in msg.CLIENT_SCENARIOS}
    shared = server_app.RoundOutcome(0, {0: server_app.ClientOutcome(0, 7, scores=scores)})
    text = server_app.report_rounds([shared], msg.RoundSpec(**{**spec.__dict__,
                                                              "share_scores": True}), "")
    assert "not cover them" in text
    assert "split `stratified`" in text  # a simulation splits the bundled table
    deployed = msg.RoundSpec(**{**spec.__dict__, "share_scores": True, "data": None})
    text = server_app.report_rounds([shared], deployed, "")  # the nodes' own CSVs
    assert "stratified" not in text and "each node's own data-path" in text
    got, _ = server_app.spec_from_run_config({"dataset": "titanic", "share-scores": True})
    assert got.share_scores is True
    with pytest.raises(ThreedglError, match="share-scores"):
        server_app.spec_from_run_config({"dataset": "titanic", "share-scores": "yes"})


def test_checked_pool_uses_the_global_server_validation(titanic_file: Path, titanic: Any) -> None:
    good = titanic_file.read_bytes()
    pool = CheckedPool()
    pool.open(titanic.schema, 2, max_epsilon=100.0, max_delta=1e-3)
    pool.publish(0, good)
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(Refused) as refused:
        pool.publish(1, bytes(bad))
    assert "sha256" in refused.value.reason
    assert pool.pull(0) == [good]
    with pytest.raises(Refused, match="no pool without an accepted generator"):
        pool.pull(1)
    strict = CheckedPool()
    strict.open(titanic.schema, 1, max_epsilon=0.01, max_delta=1e-3)
    with pytest.raises(Refused, match="max_epsilon"):
        strict.publish(0, good)
    other = titanic.schema.to_dict()
    other["columns"] = other["columns"][1:]
    from threedgl.schema import Schema

    wrong = CheckedPool()
    wrong.open(Schema.from_dict(other), 1, max_epsilon=100.0, max_delta=1e-3)
    with pytest.raises(Refused, match="schema differs"):
        wrong.publish(0, good)
    with pytest.raises(ThreedglError, match="finite"):
        CheckedPool().open(titanic.schema, 1, max_epsilon=math.inf, max_delta=1e-3)


def test_client_data_simulated_is_the_local_split() -> None:
    from threedgl.federation.plan import split_for_seed
    from threedgl.federation.splits import parse_split

    spec = _spec()
    ds = datasets.load("titanic")
    want = split_for_seed(ds.frame, ds.schema, 3, parse_split("stratified"), 11, 0,
                          test_size=0.1, min_rows=10)
    got = client_app.client_data(spec, {"partition-id": 2, "num-partitions": 3})
    assert got.client == 2 and not got.deployed
    pd.testing.assert_frame_equal(got.fold, want.folds[2])
    pd.testing.assert_frame_equal(got.test, want.test)
    with pytest.raises(ThreedglError, match="no data"):
        client_app.client_data(spec, {})


def test_client_data_deployed_reads_its_own_csv(tmp_path: Path) -> None:
    paths = demo.write_demo(tmp_path, "titanic", 3, "stratified", 0)
    assert [p.name for p in paths] == ["client-0.csv", "client-1.csv", "client-2.csv",
                                       "test.csv", "schema.json"]
    spec = _spec()
    own = {"data-path": str(paths[1]), "test-path": str(paths[3])}
    got = client_app.client_data(spec, own)
    assert got.deployed and got.client == spec.client
    assert len(got.fold) == len(pd.read_csv(paths[1])) and len(got.test) == len(pd.read_csv(paths[3]))
    held = client_app.client_data(spec, {"data-path": str(paths[1]), "client": 5})
    assert held.client == 5 and len(held.fold) + len(held.test) == len(got.fold)
    # a deployed client's noise seed is its own, never derived from the server's numbers
    seeds = {client_app._train_seed(spec, got, {}) for _ in range(64)}
    assert len(seeds) == 64 and max(s.bit_length() for s in seeds) > 120  # 128 random bits
    assert client_app._train_seed(spec, got, {"seed": 3}) == 3
    with pytest.raises(ThreedglError, match="is not a file"):
        client_app.client_data(spec, {"data-path": str(tmp_path / "missing.csv")})


def test_server_app_reads_the_run_config(tmp_path: Path) -> None:
    spec, settings = server_app.spec_from_run_config(
        {"dataset": "titanic", "clients": 4, "seeds": 2, "epsilon": 3.0, "epochs": 0,
         "class-mix": "balanced", "out": str(tmp_path)})
    assert spec.clients == 4 and spec.data == {"dataset": "titanic"}
    assert spec.factory["epsilon"] == 3.0 and spec.factory["epochs"] is None
    assert spec.options["class_mix"] == "balanced"
    assert settings["seeds"] == 2 and settings["max_epsilon"] == 3.0
    schema_path = demo.write_demo(tmp_path, "titanic", 2, "stratified", 0)[-1]
    spec2, _ = server_app.spec_from_run_config(
        {"schema-path": str(schema_path), "positive-label": "1"})
    assert spec2.data is None and str(spec2.positive_label) == "1"
    with pytest.raises(ThreedglError, match="positive-label"):
        server_app.spec_from_run_config({"schema-path": str(schema_path)})


def test_flower_engine_refuses_what_cannot_travel() -> None:
    with pytest.raises(ThreedglError, match="finite"):
        simulate("titanic", clients=2, epsilon=math.inf, engine="flower")
    with pytest.raises(ThreedglError, match="PresetFactory"):
        simulate("titanic", clients=2, engine="flower",
                 generator_factory=lambda c, rs: PresetFactory()(c, rs))
    with pytest.raises(ThreedglError, match="engine must be one of"):
        simulate("titanic", clients=2, engine="spark")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "titanic", "--engine", "spark"], "--engine must be 'local' or 'flower'"),
        (["simulate", "titanic", "--engine", "flower", "--epsilon", "inf"], "finite --epsilon"),
    ],
)
def test_cli_engine_bad_input_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from threedgl.cli.main import app

    with pytest.raises(SystemExit) as exc:
        app(args, prog_name="3dgl")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_cli_help_names_the_engines() -> None:
    from typer.testing import CliRunner

    from threedgl.cli.main import app

    out = CliRunner().invoke(app, ["simulate", "--help"], terminal_width=200)
    assert out.exit_code == 0 and "--engine" in out.output and "flower" in out.output


def test_a_deployed_clients_error_reaches_the_server_without_its_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Flower sends an exception's text to the ServerApp: a deployed client's error on its
    own rows ('fifty' in a numeric column, first at row 3) is logged on the node and replaced
    by one that names the step only."""
    from types import SimpleNamespace

    from flwr.app import Context, RecordDict

    paths = demo.write_demo(tmp_path, "titanic", 3, "stratified", 0)
    frame = pd.read_csv(paths[0])
    numeric = next(c.name for c in datasets.load("titanic").schema.features
                   if c.kind == "numeric")
    frame[numeric] = frame[numeric].astype(object)
    frame.loc[3, numeric] = "fifty"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    # Flower builds its Message objects only inside a run: the handler reads .content only
    message = SimpleNamespace(content=msg.train_request(_spec()))
    node = Context(run_id=1, node_id=1, node_config={"data-path": str(bad)},
                   state=RecordDict(), run_config={})
    with pytest.raises(client_app.NodeError) as caught:
        client_app.train(message, node)  # type: ignore[arg-type]
    assert "fifty" not in str(caught.value) and numeric not in str(caught.value)
    assert "training failed on a deployed client" in str(caught.value)
    assert "fifty" in caplog.text  # the node's own log has the whole error
    simulated = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    with pytest.raises(ThreedglError, match="no data"):  # a simulation: the error itself
        client_app.train(message, simulated)  # type: ignore[arg-type]


def test_node_errors_are_one_readable_line() -> None:
    from threedgl.federation.flower.server_app import readable_error

    assert readable_error("<class 'threedgl.errors.SchemaError'>:<'column \\'age\\' has "
                          "\\'fifty\\''>") == "SchemaError: column \\'age\\' has \\'fifty\\'"
    assert readable_error('<class \'ValueError\'>:<"bad\n  value">') == "ValueError: bad value"
    assert readable_error("plain text") == "plain text"
    # the simulation runtime: Ray's colored traceback of the ClientApp's own exception
    ray = ("<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'\x1b[36mray::"
           "ClientAppActor.run()\x1b[39m (pid=7751, ip=192.0.2.2, actor_id=35307ede)\n"
           "                  ^^^^^^^^^^^^^^^^^^^^^\n"
           '  File "/x/flwr/clientapp/client_app.py", line 161, in __call__\n'
           "    return self._registered_funcs[full_name](message, context)\n"
           '  File "/x/threedgl/schema/schema.py", line 88, in validate\n'
           "    raise SchemaError(f\"column {name!r}: {problem}\")\n"
           "threedgl.errors.SchemaError: column 'Age': 'fifty' is not a number\n\n"
           "The above exception was the direct cause of the following exception:\n\n"
           "\x1b[36mray::ClientAppActor.run()\x1b[39m (pid=7751, ip=192.0.2.2)\n"
           '  File "/x/flwr/simulation/ray_transport/ray_actor.py", line 65, in run\n'
           "    raise ClientAppException(str(ex)) from ex\n"
           "flwr.clientapp.client_app.ClientAppException: \n"
           "Exception ClientAppException occurred. Message: column 'Age': 'fifty' is not a "
           "number'>")
    assert readable_error(ray) == "SchemaError: column 'Age': 'fifty' is not a number"
    assert len(readable_error("x" * 1000)) == 300

"""The Global Server over HTTP, against a real uvicorn process, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from server_fixtures import (
    SCHEMA,
    ServerProcess,
    add_client,
    generator_bytes,
    new_federation,
    postgres_database,
    sqlite_server,
)
from threedgl.artifact.format import read_artifact_bytes
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

__all__ = ["sqlite_server"]  # the shared fixture, imported for pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_server")
        return
    with postgres_database() as url:
        proc = ServerProcess(url, cwd=tmp_path_factory.mktemp("postgres-server")).start()
        try:
            yield proc
        finally:
            proc.stop()


def _publish(
    server: ServerProcess, token: str, data: bytes, table: str = "default"
) -> httpx.Response:
    with server.http(token) as http:
        return http.put(
            "/generator",
            content=data,
            headers={"Content-Type": "application/octet-stream", "X-Threedgl-Table": table},
        )


def _versions(server: ServerProcess, federation: str) -> dict[str, int]:
    with server.admin() as http:
        r = http.get(f"/federations/{federation}")
    assert r.status_code == 200, r.text
    return {c["name"]: c["versions"] for c in r.json()["clients"]}


def test_fig2_flow_three_clients(server: ServerProcess, tmp_path: Path) -> None:
    """Paper Fig. 2: each client builds a generator, sends it, receives the pool."""
    fed = new_federation(server, max_epsilon=1.9, max_delta=1e-4)
    names = ["clinic-a", "clinic-b", "clinic-c"]
    tokens = {n: add_client(server, fed, n) for n in names}
    uploads = {n: generator_bytes(tmp_path, seed=i) for i, n in enumerate(names)}

    for n in names:  # before contributing: no access to the pool
        with server.http(tokens[n]) as http:
            r = http.get("/pool")
            assert r.status_code == 403
            assert "contribute to access" in r.json()["detail"]
            assert http.get(f"/pool/{names[0]}").status_code == 403
            assert http.get("/me").json() == {
                "federation": fed,
                "name": n,
                "contributed": False,
                "current_version": None,
            }

    for n in names:
        r = _publish(server, tokens[n], uploads[n])
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["client"] == n and body["federation"] == fed and body["version"] == 1
        assert body["sha256"] == hashlib.sha256(uploads[n]).hexdigest()
        assert 0 < body["epsilon"] <= 1.9
        assert len(body["models"]) == 2

    for n in names:
        with server.http(tokens[n]) as http:
            listing = http.get("/pool").json()
            assert listing["federation"] == fed
            assert [g["client"] for g in listing["generators"]] == sorted(names)
            # each class's rows are shared by the rows each generator released for it
            released = {g["client"]: {str(m["label"]): m["rows"] for m in
                                      read_artifact_bytes(uploads[g["client"]]).manifest["models"]}
                        for g in listing["generators"]}
            for label in ("0", "1"):
                total = sum(r[label] for r in released.values())
                for g in listing["generators"]:
                    assert g["shares"][label] == pytest.approx(
                        released[g["client"]][label] / total, abs=1e-6)
            for entry in listing["generators"]:
                r = http.get(f"/pool/{entry['client']}")
                assert r.status_code == 200
                assert r.headers["content-type"] == "application/octet-stream"
                assert r.content == uploads[entry["client"]]
                assert r.headers["X-Threedgl-Sha256"] == entry["sha256"]
                assert entry["size"] == len(r.content)
                read_artifact_bytes(r.content)

    # A new upload (trained on new rows) is a new current version; the earlier one is kept.
    again = generator_bytes(tmp_path, seed=99)
    r = _publish(server, tokens["clinic-a"], again, table="visit-2")
    assert r.status_code == 201 and r.json()["version"] == 2
    assert _versions(server, fed)["clinic-a"] == 2
    with server.http(tokens["clinic-b"]) as http:
        assert http.get("/pool/clinic-a").content == again


def test_twenty_concurrent_uploads(server: ServerProcess, tmp_path: Path) -> None:
    fed = new_federation(server)
    names = [f"client-{i:02d}" for i in range(20)]
    tokens = {n: add_client(server, fed, n) for n in names}
    uploads = {n: generator_bytes(tmp_path, seed=100 + i) for i, n in enumerate(names)}

    def upload(name: str) -> tuple[int, str]:
        r = _publish(server, tokens[name], uploads[name])
        return r.status_code, r.text

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = dict(zip(names, pool.map(upload, names), strict=True))
    assert all(code == 201 for code, _ in results.values()), results

    with server.http(tokens[names[0]]) as http:
        listing = http.get("/pool").json()["generators"]
        assert sorted(g["client"] for g in listing) == names
        for g in listing:
            assert g["sha256"] == hashlib.sha256(uploads[g["client"]]).hexdigest()
            assert g["version"] == 1
        for n in names[:5]:
            assert http.get(f"/pool/{n}").content == uploads[n]


def test_one_client_concurrent_versions(server: ServerProcess, tmp_path: Path) -> None:
    """Concurrent uploads by one client get distinct versions; the last is current."""
    fed = new_federation(server)
    token = add_client(server, fed, "busy")
    uploads = [generator_bytes(tmp_path, seed=300 + i) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(pool.map(
            lambda i: _publish(server, token, uploads[i], table=f"t{i}").status_code, range(6)))
    assert codes == [201] * 6
    assert _versions(server, fed) == {"busy": 6}
    with server.http(token) as http:
        [entry] = http.get("/pool").json()["generators"]
        assert entry["version"] == 6
        assert entry["sha256"] in {hashlib.sha256(d).hexdigest() for d in uploads}


def test_bad_inputs_refused_and_nothing_stored(server: ServerProcess, tmp_path: Path) -> None:
    fed = new_federation(server, max_epsilon=1.9, max_delta=1e-4, max_artifact_bytes=20_000)
    mallory = add_client(server, fed, "mallory")
    victim = add_client(server, fed, "victim")
    good = generator_bytes(tmp_path, seed=1)

    def refused(data: bytes, status: int, words: str) -> None:
        r = _publish(server, mallory, data)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str) and words in detail, detail

    refused(b"this is not a generator at all, just some garbage bytes", 422, "not a threedgl")
    refused(pickle.dumps({"evil": 1}), 422, "pickle")
    refused(good[: len(good) - 37], 422, "truncated")
    refused(b"", 422, "empty body")
    other_schema = Schema(
        (NumericColumn("age", 0, 120, integer=True), *SCHEMA.columns[1:]), target="survived"
    )
    refused(generator_bytes(tmp_path, schema=other_schema), 422, "column 'age'")
    extra_col = Schema(
        (*SCHEMA.columns, CategoricalColumn("port", ("C", "Q", "S"))), target="survived"
    )
    refused(generator_bytes(tmp_path, schema=extra_col), 422, "columns added: port")
    refused(generator_bytes(tmp_path, sigma=0.8), 422, "above the policy's max_epsilon")
    refused(generator_bytes(tmp_path, recorded_epsilon=0.5), 422, "understates")
    refused(generator_bytes(tmp_path, delta=1e-3), 422, "max_delta")
    refused(generator_bytes(tmp_path, accountant="prv"), 422, "not accepted")
    refused(generator_bytes(tmp_path, sigma=0.0, recorded_epsilon=float("inf")), 422, "")

    # Oversize: refused by the declared length, and while streaming without one.
    big = good + b"\0" * 30_000
    refused(big, 413, "larger than the limit")

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\0" * 8192

    with server.http(mallory) as http:
        r = http.put("/generator", content=chunks())
        assert r.status_code == 413, r.text

    # Tokens: missing, wrong, revoked.
    with server.http() as http:
        r = http.put("/generator", content=good)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with server.http("not-a-real-token-" + "x" * 30) as http:
        assert http.put("/generator", content=good).status_code == 401
        assert http.get("/pool").status_code == 401
    with server.http(mallory) as http:  # a client cannot use admin routes
        assert http.post(f"/federations/{fed}/clients", json={"name": "sock"}).status_code == 403
        assert http.post(f"/federations/{fed}/clients/victim/revoke").status_code == 403
        assert http.get(f"/federations/{fed}").status_code == 403

    # The victim publishes; mallory can never write to the victim's generator.
    assert _publish(server, victim, good).status_code == 201
    with server.http(mallory) as http:
        for method, path in [
            ("PUT", "/generator/victim"),
            ("PUT", "/pool/victim"),
            ("POST", "/pool/victim"),
            ("DELETE", "/pool/victim"),
            ("DELETE", "/generator"),
            ("PATCH", "/pool/victim"),
            ("PUT", f"/federations/{fed}/clients/victim/generator"),
        ]:
            r = http.request(method, path, content=generator_bytes(tmp_path, seed=7))
            assert r.status_code in (403, 404, 405), (method, path, r.status_code)
        assert http.get("/pool").status_code == 403  # still has not contributed

    with server.admin() as http:
        assert http.post(f"/federations/{fed}/clients/mallory/revoke").status_code == 200
    r = _publish(server, mallory, good)
    assert r.status_code == 403 and "revoked" in r.json()["detail"]

    assert _versions(server, fed) == {"mallory": 0, "victim": 1}
    with server.http(victim) as http:
        [entry] = http.get("/pool").json()["generators"]
        assert entry["client"] == "victim" and entry["sha256"] == hashlib.sha256(good).hexdigest()
        assert http.get("/pool/mallory").status_code == 404


def test_admin_errors(server: ServerProcess) -> None:
    fed = new_federation(server)
    with server.admin() as http:
        r = http.post("/federations", json={"name": fed, "schema": SCHEMA.to_dict()})
        assert r.status_code == 409 and fed in r.json()["detail"]
        assert http.post(f"/federations/{fed}/clients", json={"name": "a"}).status_code == 201
        r = http.post(f"/federations/{fed}/clients", json={"name": "a"})
        assert r.status_code == 409 and "already has a client" in r.json()["detail"]
        assert http.get("/federations/nope").status_code == 404
        assert http.post("/federations/nope/clients", json={"name": "a"}).status_code == 404
        assert http.post(f"/federations/{fed}/clients/ghost/revoke").status_code == 404
        r = http.post("/federations", json={"name": "x1", "schema": {"columns": []}})
        assert r.status_code == 422 and "at least one column" in r.json()["detail"]
        r = http.post(
            "/federations",
            json={"name": "x2", "schema": SCHEMA.to_dict(), "policy": {"max_epsilon": -1}},
        )
        assert r.status_code == 422 and "max_epsilon" in r.json()["detail"]
        r = http.post(
            "/federations",
            json={"name": "x3", "schema": SCHEMA.to_dict(), "policy": {"accountants": ["gdp"]}},
        )
        assert r.status_code == 422
        r = http.post("/federations", json={"name": "../etc", "schema": SCHEMA.to_dict()})
        assert r.status_code == 422
    with server.http("wrong-admin-token-xxxxxxxxxxxx") as http:
        r = http.get(f"/federations/{fed}")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/api/v1/generator" in spec["paths"] and "/api/v1/pool/{name}" in spec["paths"]


def test_a_large_body_is_refused_before_parsing_or_auth(server: ServerProcess) -> None:
    """Issue 20: every route but the streamed upload refuses a body above 1 MiB with 413,
    before the JSON parser and before authentication (a declared length and a chunked
    body alike); a small body still reaches the route (401 without a token)."""

    big = b"{}" * (1 << 20)  # 2 MiB of tiny JSON containers
    with server.http() as http:  # no token
        r = http.post("/federations", content=big,
                      headers={"content-type": "application/json"})
        assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:
            for _ in range(40):
                yield b"[" * 65536

        r = http.post("/federations", content=chunks(),
                      headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert http.post("/federations", json={"name": "x"}).status_code == 401


def test_a_lost_registration_is_recovered_with_a_new_token(server: ServerProcess) -> None:
    """Issue 20: when the registration's answer is lost the retry is a 409 and the token
    exists nowhere; the admin issues a new one, and the old one stops working."""
    fed = new_federation(server)
    lost = add_client(server, fed, "clinic")
    with server.admin() as http:
        assert http.post(f"/federations/{fed}/clients", json={"name": "clinic"}).status_code == 409
        r = http.post(f"/federations/{fed}/clients/clinic/token")
        assert r.status_code == 200, r.text
        fresh = r.json()["token"]
        assert fresh != lost and r.json()["name"] == "clinic"
    with server.http(lost) as http:
        assert http.get("/me").status_code == 401
    with server.http(fresh) as http:
        assert http.get("/me").status_code == 200
    with server.admin() as http:
        assert http.post(f"/federations/{fed}/clients/clinic/revoke").status_code == 200
        r = http.post(f"/federations/{fed}/clients/clinic/token")
        assert r.status_code == 409 and "revoked" in r.json()["detail"]
        assert http.post(f"/federations/{fed}/clients/ghost/token").status_code == 404


def test_restart_loses_nothing(server: ServerProcess, tmp_path: Path) -> None:
    """Stop the server and start it again on the same database: everything is there.

    (Runs last for each database: it restarts the module's server.)
    """
    fed = new_federation(server)
    token = add_client(server, fed, "keeper")
    data = generator_bytes(tmp_path, seed=5)
    assert _publish(server, token, data).status_code == 201
    with server.http(token) as http:
        before = http.get("/pool").json()
    with server.admin() as http:
        federation_before = http.get(f"/federations/{fed}").json()
    server.stop()
    server.start()
    with server.http(token) as http:
        assert http.get("/pool").json() == before
        r = http.get("/pool/keeper")
        assert r.status_code == 200 and r.content == data
    with server.admin() as http:
        assert http.get(f"/federations/{fed}").json() == federation_before


# -- replay, retries, budget across uploads, quotas, the auth matrix ------------------------------
def _reserialised(data: bytes, tmp_path: Path) -> bytes:
    """The same weights in other bytes (a new ``created`` date): what a replayer would send."""
    from threedgl.artifact.format import write_artifact

    artifact = read_artifact_bytes(data)
    manifest = {**artifact.manifest, "created": "2030-01-01T00:00:00+00:00"}
    path = tmp_path / "replayed.3dgl"
    write_artifact(path, manifest, artifact.tensors)
    out = path.read_bytes()
    assert out != data
    return out


def test_replayed_generators_are_refused_and_give_no_access(
    server: ServerProcess, tmp_path: Path
) -> None:
    fed = new_federation(server)
    victim, mallory = add_client(server, fed, "victim"), add_client(server, fed, "mallory")
    data = generator_bytes(tmp_path, seed=501)
    assert _publish(server, victim, data).status_code == 201
    for replay in (data, _reserialised(data, tmp_path)):
        r = _publish(server, mallory, replay)
        assert r.status_code == 409, r.text
        assert "already on this server" in r.json()["detail"]
    with server.http(mallory) as http:
        assert http.get("/pool").status_code == 403
    assert _versions(server, fed) == {"mallory": 0, "victim": 1}


def test_identical_weights_racing_from_two_clients_are_stored_once(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 20, item 3: on PostgreSQL both copies were stored in 18 of 20 tries (the
    check ran under READ COMMITTED with only the uploader's row locked). The unique index
    on the weights' hash makes the database refuse the loser, which answers 409."""
    import threading

    fed = new_federation(server)
    outcomes = []
    for attempt in range(20):
        tokens = [add_client(server, fed, f"racer-{attempt}-{side}") for side in "ab"]
        data = generator_bytes(tmp_path, seed=700 + attempt)
        barrier = threading.Barrier(2)

        def upload(token: str, data: bytes = data, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return _publish(server, token, data).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(upload, tokens))
        outcomes.append(codes)
    assert outcomes == [[201, 409]] * 20, outcomes
    versions = _versions(server, fed)
    assert sum(versions.values()) == 20, versions


def test_a_retried_upload_returns_the_stored_version(server: ServerProcess, tmp_path: Path) -> None:
    fed = new_federation(server)
    token = add_client(server, fed, "retrier")
    data = generator_bytes(tmp_path, seed=502)
    first = _publish(server, token, data)
    assert first.status_code == 201 and first.json()["created"] is True
    with ThreadPoolExecutor(max_workers=4) as pool:  # a client retrying after timeouts
        again = list(pool.map(lambda _: _publish(server, token, data), range(4)))
    for r in again:
        assert r.status_code == 200, r.text
        assert r.json()["created"] is False and r.json()["version"] == 1
    r = _publish(server, token, _reserialised(data, tmp_path))  # same weights, new manifest
    assert r.status_code == 409 and "cannot be changed" in r.json()["detail"]
    assert _versions(server, fed) == {"retrier": 1}


def test_a_replay_into_another_federation_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    fed_a, fed_b = new_federation(server), new_federation(server)
    owner, copier = add_client(server, fed_a, "owner"), add_client(server, fed_b, "copier")
    data = generator_bytes(tmp_path, seed=506)
    assert _publish(server, owner, data).status_code == 201
    r = _publish(server, copier, data)
    assert r.status_code == 409 and "already on this server" in r.json()["detail"]


def test_generators_on_one_table_compose_within_the_policy(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Each upload alone meets ε ≤ 1.9 (ε ≈ 1.22); two on the same table do not."""
    fed = new_federation(server)
    token = add_client(server, fed, "steady")
    assert _publish(server, token, generator_bytes(tmp_path, seed=503)).status_code == 201
    r = _publish(server, token, generator_bytes(tmp_path, seed=504))
    assert r.status_code == 422, r.text
    assert "composed" in r.json()["detail"] and "max_epsilon=1.9" in r.json()["detail"]
    r = _publish(server, token, generator_bytes(tmp_path, seed=504), table="other-rows")
    assert r.status_code == 201 and r.json()["table"] == "other-rows"
    r = _publish(server, token, generator_bytes(tmp_path, seed=505), table="bad name!")
    assert r.status_code == 422
    assert _versions(server, fed) == {"steady": 2}


def test_the_version_limit_is_enforced(tmp_path: Path) -> None:
    proc = ServerProcess(f"sqlite:///{tmp_path / 'q.db'}", cwd=tmp_path,
                         env={"THREEDGL_MAX_VERSIONS_PER_CLIENT": "2"}).start()
    try:
        fed = new_federation(proc)
        token = add_client(proc, fed, "prolific")
        for i in range(2):
            data = generator_bytes(tmp_path, seed=510 + i)
            assert _publish(proc, token, data, table=f"t{i}").status_code == 201
        r = _publish(proc, token, generator_bytes(tmp_path, seed=512), table="t2")
        assert r.status_code == 409 and "MAX_VERSIONS_PER_CLIENT=2" in r.json()["detail"]
    finally:
        proc.stop()


def test_auth_matrix(server: ServerProcess, tmp_path: Path) -> None:
    """Every way in without the right token is refused with the right status."""
    fed, other = new_federation(server), new_federation(server)
    alice, bob = add_client(server, fed, "alice"), add_client(server, fed, "bob")
    outsider = add_client(server, other, "outsider")
    revoked = add_client(server, fed, "gone")
    data = generator_bytes(tmp_path, seed=520)
    assert _publish(server, alice, data).status_code == 201
    assert _publish(server, outsider, generator_bytes(tmp_path, seed=521)).status_code == 201
    with server.admin() as http:
        assert http.post(f"/federations/{fed}/clients/gone/revoke").status_code == 200
    cases: list[tuple[str, str | None, str, str, int]] = [
        ("no token", None, "GET", "/pool", 401),
        ("wrong token", "not-a-token", "GET", "/pool", 401),
        ("revoked", revoked, "GET", "/pool", 403),
        ("revoked upload", revoked, "PUT", "/generator", 403),
        ("pool before contributing", bob, "GET", "/pool", 403),
        ("download before contributing", bob, "GET", "/pool/alice", 403),
        ("other federation's generator", outsider, "GET", "/pool/alice", 404),
        ("admin route, client token", alice, "GET", f"/federations/{fed}", 403),
        ("admin create, client token", alice, "POST", f"/federations/{fed}/clients", 403),
        ("admin route, no token", None, "GET", f"/federations/{fed}", 401),
        ("admin route, wrong token", "x" * 40, "GET", f"/federations/{fed}", 401),
        ("replayed file", bob, "PUT", "/generator", 409),
        ("new token, client token", alice, "POST", f"/federations/{fed}/clients/bob/token", 403),
        ("new token, no token", None, "POST", f"/federations/{fed}/clients/bob/token", 401),
    ]
    for name, token, method, route, expected in cases:
        with server.http(token) as http:
            r = http.request(method, route, content=data if method == "PUT" else None,
                             json={"name": "x"} if method == "POST" else None)
        assert r.status_code == expected, (name, r.status_code, r.text)
        assert isinstance(r.json()["detail"], str), name

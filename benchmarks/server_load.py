"""Load on the Global Server: N concurrent clients, with kill -9 restarts mid-load.

Every client registers (the admin adds it), publishes its own generator, then pulls:
lists the pool and downloads its own generator and ``--downloads`` others, checking every
sha256. Clients retry on connection errors and 5xx answers (an upload retried after a
crash is answered 200 with the stored version: uploads are idempotent). While they run,
the server is killed with SIGKILL ``--kills`` times and restarted on the same database.

At the end it checks: every acknowledged upload is in the pool with the acknowledged
sha256 (0 lost), every client has exactly one stored version (0 duplicates), and counts
5xx answers. Prints p50/p95 of publish and pull (seconds, retries included).

Usage::

    python benchmarks/server_load.py --db sqlite --clients 200 --kills 2
    python benchmarks/server_load.py --db postgresql --clients 200 --kills 2
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import server_fixtures as sf  # noqa: E402  (the tests' real-server harness)

RETRY_FOR = 300.0  # seconds a client keeps retrying one request


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: collections.Counter[str] = collections.Counter()
        self.publish: list[float] = []
        self.pull: list[float] = []
        self.acknowledged: dict[str, str] = {}
        self.bad_sha = 0

    def code(self, key: str) -> None:
        with self.lock:
            self.codes[key] += 1


def request(stats: Stats, url: str, token: str, method: str, route: str, **kw: Any) -> httpx.Response:
    """One request, retried on connection errors and 5xx until RETRY_FOR seconds pass."""
    deadline = time.monotonic() + RETRY_FOR
    delay = 0.2
    while True:
        try:
            with httpx.Client(base_url=url() + "/api/v1", timeout=600,
                              headers={"Authorization": f"Bearer {token}"}) as http:
                r = http.request(method, route, **kw)
            stats.code(str(r.status_code))
            if r.status_code < 500:
                return r
        except httpx.HTTPError as exc:
            stats.code(type(exc).__name__)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{method} {route}: gave up after {RETRY_FOR} s")
        time.sleep(delay + random.random() * delay)
        delay = min(delay * 2, 5.0)


def client_run(stats: Stats, url: Any, name: str, token: str, data: bytes,
               others: list[str], downloads: int) -> None:
    t0 = time.perf_counter()
    r = request(stats, url, token, "PUT", "/generator", content=data,
                headers={"Content-Type": "application/octet-stream"})
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{name}: upload answered {r.status_code}: {r.text[:200]}")
    with stats.lock:
        stats.publish.append(time.perf_counter() - t0)
        stats.acknowledged[name] = r.json()["sha256"]
    t0 = time.perf_counter()
    listing = request(stats, url, token, "GET", "/pool").json()["generators"]
    shas = {g["client"]: g["sha256"] for g in listing}
    wanted = [name, *random.sample([o for o in others if o in shas and o != name],
                                   k=min(downloads, max(0, len(shas) - 1)))]
    for other in wanted:
        got = request(stats, url, token, "GET", f"/pool/{other}")
        digest = hashlib.sha256(got.content).hexdigest()
        if got.status_code != 200 or digest != shas[other] or \
                got.headers.get("X-Threedgl-Sha256") != digest:
            with stats.lock:
                stats.bad_sha += 1
    with stats.lock:
        stats.pull.append(time.perf_counter() - t0)


def run(db: str, clients: int, kills: int, downloads: int, seed: int) -> dict[str, Any]:
    random.seed(seed)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        database: contextlib.AbstractContextManager[str] = (
            contextlib.nullcontext(f"sqlite:///{tmp / 'load.db'}") if db == "sqlite"
            else sf.postgres_database())
        with database as db_url:
            server = sf.ServerProcess(db_url, cwd=tmp).start()
            try:
                fed = sf.new_federation(server)
                t0 = time.perf_counter()
                names = [f"client-{i:03d}" for i in range(clients)]
                tokens = {n: sf.add_client(server, fed, n) for n in names}
                register_s = time.perf_counter() - t0
                files = {n: sf.generator_bytes(tmp, seed=1000 + i) for i, n in enumerate(names)}
                stats = Stats()
                url = lambda: server.url  # noqa: E731  (the port survives restarts)
                killed: list[float] = []

                def killer() -> None:
                    for k in range(kills):
                        time.sleep(2.0 + 3.0 * k)
                        server.kill()
                        killed.append(time.perf_counter() - start)
                        server.start(same_port=True)

                start = time.perf_counter()
                kt = threading.Thread(target=killer)
                kt.start()
                with ThreadPoolExecutor(max_workers=clients) as pool:
                    futures = [pool.submit(client_run, stats, url, n, tokens[n], files[n],
                                           names, downloads) for n in names]
                    errors = [str(e) for f in futures if (e := f.exception()) is not None]
                kt.join()
                wall = time.perf_counter() - start
                drained = time.perf_counter()
                info = request(stats, url, sf.ADMIN_TOKEN, "GET", f"/federations/{fed}").json()
                drain_s = time.perf_counter() - drained
                versions = {c["name"]: c["versions"] for c in info["clients"]}
                with server.http(tokens[names[0]]) as http:
                    pool_now = {g["client"]: g["sha256"]
                                for g in http.get("/pool").json()["generators"]}
            finally:
                server.stop()
                keep = Path(tempfile.gettempdir()) / "threedgl-server-load-logs"
                keep.mkdir(exist_ok=True)
                for log in tmp.glob("server-*.log"):
                    (keep / f"{db}-{log.name}").write_bytes(log.read_bytes())
    lost = sum(1 for n, sha in stats.acknowledged.items() if pool_now.get(n) != sha)
    expected = {n: hashlib.sha256(files[n]).hexdigest() for n in names}
    wrong = sum(1 for n, sha in stats.acknowledged.items() if sha != expected[n])

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2) if values else float("nan")

    return {
        "database": db,
        "clients": clients,
        "kills": len(killed),
        "killed_at_s": [round(k, 1) for k in killed],
        "wall_s": round(wall, 1),
        "register_s": round(register_s, 1),
        "admin_read_after_s": round(drain_s, 1),
        "acknowledged": len(stats.acknowledged),
        "lost": lost,
        "acknowledged_wrong_sha": wrong,
        "duplicates": sum(max(0, v - 1) for v in versions.values()),
        "responses_5xx": sum(v for k, v in stats.codes.items() if k.startswith("5")),
        "connection_errors": sum(v for k, v in stats.codes.items() if not k[0].isdigit()),
        "codes": dict(sorted(stats.codes.items())),
        "bad_downloads": stats.bad_sha,
        "client_errors": errors[:5],
        "publish_p50_s": pct(stats.publish, 50),
        "publish_p95_s": pct(stats.publish, 95),
        "pull_p50_s": pct(stats.pull, 50),
        "pull_p95_s": pct(stats.pull, 95),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--downloads", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = run(args.db, args.clients, args.kills, args.downloads, args.seed)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    bad = out["lost"] + out["duplicates"] + out["responses_5xx"] + out["bad_downloads"]
    return 1 if bad or out["client_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

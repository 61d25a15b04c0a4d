"""The cost of issue 20's hostile requests on a real server: status, time, memory growth.

Each probe runs against a fresh ``python -m threedgl.server`` over loopback (SQLite, then
PostgreSQL). Before each probe the server's peak RSS is reset (``/proc/PID/clear_refs``);
the figure is its peak growth during the request (Linux only), with the server's CPU time
spent on it (``/proc/PID/stat``).

* ``unauth_64mb``: POST /federations, no token, 64 MB of ``{}`` with a declared length;
* ``unauth_64mb_chunked``: the same body streamed without a length;
* ``tiny_containers_8mb``: an upload whose manifest is 8 MB of ``[]`` (a client's token;
  above the manifest's size limit), and ``tiny_containers_3mb`` (1.5 M containers, within
  it: refused by their count);
* ``costly_prv``: a valid file whose record says PRV, σ 0.8, q 0.5, 10,000 steps;
* ``many_models``: 500 class models with distinct RDP records in one file;
* ``race``: 20 tries of two clients uploading the same weights at the same instant
  (how many tries stored it once).

Usage: ``python benchmarks/hostile_requests.py [--json out.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from upload_memory import kib  # noqa: E402  (a process's /proc status field, in KiB)

import server_fixtures as sf  # noqa: E402  (the tests' real-server harness)

MB = 1024 * 1024
OCTETS = {"Content-Type": "application/octet-stream"}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: sf.ServerProcess, request: Callable[[], Any]) -> dict[str, Any]:
    assert server.proc is not None
    pid = server.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before, cpu0, t0 = kib(pid, "VmRSS"), _cpu_seconds(pid), time.perf_counter()
    try:
        status: Any = request()
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return {"status": status, "seconds": round(time.perf_counter() - t0, 2),
            "server_cpu_s": round(_cpu_seconds(pid) - cpu0, 2),
            "server_growth_mb": round((kib(pid, "VmHWM") - before) / 1024, 1)}


def _rewritten(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    import fuzz_artifacts as fa

    header, manifest, body = fa.split(data)
    change(manifest)
    return fa.join(header, json.dumps(manifest), body)


def probes(server: sf.ServerProcess, tmp: Path) -> dict[str, Any]:
    fed = sf.new_federation(server, max_epsilon=1000.0, max_delta=1e-4,
                            max_artifact_bytes=16 * MB, accountants=["rdp", "prv"])
    tokens = [sf.add_client(server, fed, f"c{i}") for i in range(42)]
    out: dict[str, Any] = {}
    body = b"[" + b",".join([b"{}"] * (32 * MB - 1)) + b"]"  # 64 MB

    with httpx.Client(base_url=server.url + "/api/v1", timeout=120) as anonymous:
        out["unauth_64mb"] = measure(server, lambda: anonymous.post(
            "/federations", content=body, headers={"Content-Type": "application/json"}
        ).status_code)

        def chunks() -> Any:
            for i in range(0, len(body), MB):
                yield body[i:i + MB]

        out["unauth_64mb_chunked"] = measure(server, lambda: anonymous.post(
            "/federations", content=chunks(), headers={"Content-Type": "application/json"}
        ).status_code)

    good = sf.generator_bytes(tmp, seed=1)
    tiny = _rewritten(good, lambda m: m.update(extra=[[]] * (4 * MB)))
    with server.http(tokens[0]) as http:
        out["tiny_containers_8mb"] = measure(server, lambda: http.put(
            "/generator", content=tiny, headers=OCTETS).status_code)
        tiny = _rewritten(good, lambda m: m.update(extra=[[]] * 1_500_000))
        out["tiny_containers_3mb"] = measure(server, lambda: http.put(
            "/generator", content=tiny, headers=OCTETS).status_code)
        costly = sf.generator_bytes(tmp, seed=2, sigma=0.8, sample_rate=0.5, steps=10_000,
                                    accountant="prv", recorded_epsilon=500.0, delta=1e-5)
        out["costly_prv"] = measure(server, lambda: http.put(
            "/generator", content=costly, headers=OCTETS).status_code)

        def many(m: dict[str, Any]) -> None:
            first = m["models"][0]
            m["models"] = [{**first, "privacy": {**first["privacy"], "max_grad_norm": 1.0 + i}}
                           for i in range(500)]

        out["many_models"] = measure(server, lambda: http.put(
            "/generator", content=_rewritten(sf.generator_bytes(tmp, seed=3), many),
            headers=OCTETS).status_code)

    stored_once = 0
    for attempt in range(20):
        pair = tokens[2 + 2 * attempt: 4 + 2 * attempt]
        data = sf.generator_bytes(tmp, seed=100 + attempt)
        barrier = threading.Barrier(2)

        def upload(token: str, data: bytes = data, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            with server.http(token) as http:
                return http.put("/generator", content=data, headers=OCTETS).status_code

        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(upload, pair))
        stored_once += codes == [201, 409]
    out["race_stored_once_of_20"] = stored_once
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        databases: list[tuple[str, contextlib.AbstractContextManager[str]]] = [
            ("sqlite", contextlib.nullcontext(f"sqlite:///{tmp}/hostile.db")),
            ("postgresql", sf.postgres_database()),
        ]
        for label, db in databases:
            with db as url:
                server = sf.ServerProcess(url, cwd=tmp).start()
                try:
                    results[label] = probes(server, tmp)
                finally:
                    server.stop()
            print(label, json.dumps(results[label], indent=2), file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of one upload on the real server, as a multiple of the file's size.

Two large generators (DDP-βVAE with wide hidden layers, tens of MB) are trained; the
first is uploaded to warm the server up, then the server's peak RSS is reset
(``/proc/PID/clear_refs``) and the second is uploaded. The figure is
``(peak RSS during the upload - RSS before) / file size`` (Linux only).

Usage: ``python benchmarks/upload_memory.py [--hidden 2048]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import server_fixtures as sf  # noqa: E402  (the tests' real-server harness)


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> int:
    from threedgl import DDPBetaVAE, datasets
    from threedgl.privacy.ledger import suspended

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ds = datasets.load("titanic")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = []
        for seed in (0, 1):
            gen = DDPBetaVAE(hidden=(args.hidden, args.hidden), epochs=1, random_state=seed)
            with warnings.catch_warnings(), suspended():
                warnings.simplefilter("ignore")
                gen.fit(ds.frame, target=ds.target, schema=ds.schema)
            files.append(gen.save(tmp / f"big-{seed}.3dgl").read_bytes())
        server = sf.ServerProcess(f"sqlite:///{tmp / 'm.db'}", cwd=tmp).start()
        try:
            fed = sf.new_federation(server, schema=ds.schema, max_epsilon=1.9, max_delta=1e-4,
                                    max_artifact_bytes=64 * 1024 * 1024)
            tokens = [sf.add_client(server, fed, f"c{i}") for i in range(2)]
            headers = {"Content-Type": "application/octet-stream"}
            with server.http(tokens[0]) as http:
                assert http.put("/generator", content=files[0], headers=headers).status_code == 201
            assert server.proc is not None
            pid = server.proc.pid
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = kib(pid, "VmRSS")
            with server.http(tokens[1]) as http:
                r = http.put("/generator", content=files[1], headers=headers)
            assert r.status_code == 201, r.text
            peak = kib(pid, "VmHWM")
        finally:
            server.stop()
    size = len(files[1])
    out = {"file_bytes": size, "rss_before_kib": before, "peak_kib": peak,
           "peak_increase_over_file_size": round((peak - before) * 1024 / size, 2)}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

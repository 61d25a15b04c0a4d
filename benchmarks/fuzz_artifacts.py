"""Fuzz the ``.3dgl`` reader and the server's upload check with mutants of valid files.

Seeded and bounded. Every mutant goes through the library's loader
(:func:`threedgl.load_generator_bytes`) and the Global Server's check
(:func:`threedgl.server.validation.validate_upload`) in this process; with ``--http N``,
``N`` of the mutants that reached deepest (strict-JSON manifests rewritten with hostile
values) are also uploaded to a real server over loopback, on SQLite and on PostgreSQL.

Each outcome is one of:

* ``refused``: the project's own error (:class:`threedgl.errors.ThreedglError`) - expected;
* ``accepted``: loaded; then it must be *valid*: strict JSON (no NaN/Infinity, valid
  Unicode), sampling 20 rows gives values the schema allows, and every class model's ε
  recomputes to a finite number >= 0. An accepted file that is not valid is counted
  as ``invalid accepted`` - a defect;
* ``crash``: any other exception (a defect, listed by type);
* ``hang``: a mutant that took more than ``--timeout`` seconds (a defect).

Usage::

    python benchmarks/fuzz_artifacts.py --mutants 10000 --seed 0 [--http 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import signal
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Hostile JSON texts that replace a value of the manifest (raw text: json.dumps cannot
# write most of them).
HOSTILE_VALUES: tuple[str, ...] = (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "0", "-1", "-0.0",
    "1" + "0" * 5000, "1" + "0" * 30, "2147483648", "9.999e307", "1e-300", "null", "true",
    "false", '""', '"x"', '"\\ud800"', '"\\udfff\\ud800"', '"' + "A" * 200_000 + '"',
    '"[red]markup[/red]\\u001b[31m"', "[]", "{}", "[" * 5000 + "]" * 5000,
    '{"a":' * 200 + "1" + "}" * 200, "[1,2,3]", '{"x": 1}', "0.5", "1e-7", "100", "1000000000",
    "3.5", '"inf"', '"nan"', "[null]", '["a","a"]',
)


@dataclass
class Policy:
    """A federation's protocol and policy, as the server's check reads it."""

    name: str
    schema: dict[str, Any]
    max_epsilon: float = 1.9
    max_delta: float = 1e-4
    accountants: list[str] = field(default_factory=lambda: ["rdp", "prv"])
    max_artifact_bytes: int = 8 * 1024 * 1024


@dataclass
class Report:
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    crashes: collections.Counter[str] = field(default_factory=collections.Counter)
    invalid: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, str] = field(default_factory=dict)
    slowest: float = 0.0
    slowest_name: str = ""
    slowest_upload: float = 0.0  # the server's check alone (issue 20's bar: <= 2 s of CPU)
    baseline_rss_mb: float = 0.0
    rss_steps: dict[str, float] = field(default_factory=dict)  # mutation -> largest growth

    def defects(self) -> int:
        return self.counts["crash"] + self.counts["hang"] + self.counts["invalid accepted"]


# -- seeds ------------------------------------------------------------------------------------
def seed_files(workdir: Path) -> tuple[list[bytes], dict[str, Any]]:
    """Valid files of every kind and mode, trained quickly on Titanic; and its schema."""
    from threedgl import DDPBetaVAE, DPMarginals, datasets

    ds = datasets.load("titanic")
    frame = ds.frame.sample(300, random_state=0)
    models = [
        DDPBetaVAE(epsilon=1.9, delta=1e-4, epochs=1, random_state=0),
        DDPBetaVAE.from_preset("titanic", epochs=1, random_state=0),
        DPMarginals(epsilon=1.9, delta=1e-4, random_state=0),
    ]
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, model in enumerate(models):
            model.fit(frame, target=ds.target, schema=ds.schema)
            path = workdir / f"seed-{i}.3dgl"
            model.save(path)
            out.append(path.read_bytes())
    return out, ds.schema.to_dict()


# -- mutations --------------------------------------------------------------------------------
def split(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, text, body = split_raw(data)
    return header, json.loads(text), body


def join(header: dict[str, Any], manifest_text: str, body: bytes) -> bytes:
    header = dict(header)
    header["__metadata__"] = {"threedgl.manifest": "@@MANIFEST@@"}
    text = json.dumps(header, separators=(",", ":"))
    text = text.replace('"@@MANIFEST@@"', json.dumps(manifest_text))
    raw = text.encode("utf-8", "surrogatepass")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, (*prefix, i))


def set_raw(manifest: dict[str, Any], path: tuple[Any, ...], raw: str | None) -> str:
    """The manifest's JSON text with the value at ``path`` replaced by ``raw`` (or removed)."""
    marker = "@@HOSTILE@@"
    copy = json.loads(json.dumps(manifest))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if raw is None:
        if isinstance(node, dict):
            del node[path[-1]]
        else:
            node.pop(path[-1])
        return json.dumps(copy)
    node[path[-1]] = marker
    return json.dumps(copy).replace(json.dumps(marker), raw, 1)


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One mutant of ``data`` and the name of the mutation."""
    header, manifest, body = split(data)
    kind = int(rng.integers(0, 12))
    if kind >= 10:  # the defects of issue 20 (hardening 2), each with variations
        return issue20_mutant(data, rng)
    if kind == 0:  # flip bytes anywhere
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        return "byte flip", bytes(buf)
    if kind == 1:  # truncate or extend
        cut = int(rng.integers(0, len(data)))
        return ("truncate", data[:cut]) if rng.random() < 0.7 else ("append", data + data[:cut])
    if kind == 2:  # the header length field
        n = int(rng.choice([0, 1, 2, 0x80, 0x180, 2**63, 2**64 - 1, len(data), len(data) - 7,
                            struct.unpack("<Q", data[:8])[0] + int(rng.integers(-9, 9))]))
        return "header length", struct.pack("<Q", n % 2**64) + data[8:]
    if kind == 3:  # the tensors' header entries
        names = [k for k in header if k != "__metadata__"]
        name = names[int(rng.integers(0, len(names)))]
        info = dict(header[name])
        choice = int(rng.integers(0, 6))
        if choice == 0:
            info["dtype"] = str(rng.choice(["F64", "I64", "U8", "BOOL", "F16", "BF16", "x"]))
        elif choice == 1:
            info["shape"] = [int(x) for x in rng.integers(0, 1000, int(rng.integers(0, 4)))]
        elif choice == 2:
            start, end = info["data_offsets"]
            info["data_offsets"] = [int(start), int(end + rng.integers(-64, 64))]
        elif choice == 3:
            info = {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}
        elif choice == 4:
            header = {("x" * int(rng.integers(1, 300)) if k == name else k): v
                      for k, v in header.items()}
        else:  # an extra empty tensor: zero elements, consistent offsets
            start = max(int(v["data_offsets"][1]) for k, v in header.items()
                        if k != "__metadata__")
            header = {**header, "zz": {"dtype": "F32", "shape": [0, 3],
                                       "data_offsets": [start, start]}}
        if choice not in (4, 5):
            header = {**header, name: info}
        return "tensor header", join(header, json.dumps(manifest), body)
    if kind == 4:  # tensors with other values, re-hashed so the sha256 check passes
        return "tensor values", rehashed_tensors(data, rng)
    # kinds 5-9: a manifest value replaced by a hostile one (the sha256 of the weights holds)
    every = list(paths(manifest))[1:]
    path = every[int(rng.integers(0, len(every)))]
    if rng.random() < 0.1:
        return f"manifest drop {'/'.join(map(str, path[:3]))}", join(
            header, set_raw(manifest, path, None), body)
    raw = HOSTILE_VALUES[int(rng.integers(0, len(HOSTILE_VALUES)))]
    return f"manifest {'/'.join(map(str, path[:3]))}", join(
        header, set_raw(manifest, path, raw), body)


#: Tensor-name prefixes that once passed ``isdigit()`` and then failed ``int()``, or
#: aliased another index (issue 20, item 1).
HOSTILE_INDICES = ("\u00b2", "1" * 5000, "00", "01", "-1", "\u2163", "\uff11", "1_0", " 1")


def issue20_mutant(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """A mutant of one of the defects issue 20 found (each refused since)."""
    header, manifest, body = split(data)
    choice = int(rng.integers(0, 7))
    if choice == 0:  # a class index outside the grammar, the weights re-hashed
        from safetensors.numpy import load, save

        from threedgl.artifact.format import weights_sha256

        tensors = dict(load(data))
        names = [k for k in sorted(tensors) if k.startswith("class")]
        if not names:
            return "issue 20: tensor name (none)", data
        name = names[int(rng.integers(0, len(names)))]
        index = HOSTILE_INDICES[int(rng.integers(0, len(HOSTILE_INDICES)))]
        rest = name.split(".", 1)[1] if "." in name else "a"
        tensors[f"class{index}.{rest}"] = tensors.pop(name)
        manifest["weights_sha256"] = weights_sha256(tensors)
        return "issue 20: tensor name", save(
            tensors, metadata={"threedgl.manifest": json.dumps(manifest)})
    models = manifest["models"]
    if choice == 1:  # a costly PRV record inside every documented bound (item 4)
        sigma = float(rng.choice([0.5, 0.8, 1.0, 1.28, 2.0]))
        q = float(rng.choice([0.01, 0.08, 0.5, 1.0]))
        steps = int(rng.choice([100, 1000, 10_000]))
        for i, m in enumerate(models):
            m["privacy"] = {"noise_multiplier": sigma, "sample_rate": q, "steps": steps,
                            "max_grad_norm": 1.0 + i, "accountant": "prv", "delta": 1e-5,
                            "epsilon": float(rng.choice([0.5, 5.0, 1000.0]))}
        what = "costly prv record"
    elif choice == 2:  # many class models (item 5)
        copies = int(rng.choice([3, 10, 100, 500]))
        template = models[0]
        manifest["models"] = [
            {**template, "privacy": {**template["privacy"], "max_grad_norm": 1.0 + i}}
            for i in range(copies)]
        what = f"{copies} class models"
    elif choice == 3:  # the sampling fields that once overflowed (item 2)
        training = manifest.setdefault("training", {})
        key = str(rng.choice(["batch_size", "epochs"]))
        training[key] = float(rng.choice([1e-320, 0.5, 2.5, 1e300, -1.0, 5e-324]))
        what = f"training {key}"
    elif choice == 4:  # models in another order, or labels swapped (item 9)
        if len(models) > 1 and rng.random() < 0.5:
            manifest["models"] = models[::-1]
            what = "models reversed"
        elif len(models) > 1:
            models[0]["label"], models[1]["label"] = models[1]["label"], models[0]["label"]
            what = "labels swapped"
        else:
            what = "models (one)"
    elif choice == 5:  # a header of tiny JSON containers (item 7)
        count = int(rng.choice([1_000, 250_000, 1_000_000]))
        text = json.dumps(manifest)[:-1] + ', "extra": [' + ",".join(["[]"] * count) + "]}"
        return f"issue 20: {count} tiny containers", join(header, text, body)
    else:  # the statement's claim forged (issue 19's statement check)
        privacy = manifest.get("privacy")
        if isinstance(privacy, dict):
            privacy["epsilon"] = 0.01
        what = "statement epsilon"
    return f"issue 20: {what}", join(header, json.dumps(manifest), body)


def rehashed_tensors(data: bytes, rng: np.random.Generator) -> bytes:
    from safetensors.numpy import load, save

    from threedgl.artifact.format import weights_sha256

    _, manifest, _ = split(data)
    tensors = {k: v.copy() for k, v in load(data).items()}
    name = sorted(tensors)[int(rng.integers(0, len(tensors)))]
    arr = tensors[name]
    choice = int(rng.integers(0, 4))
    if choice == 0 and arr.size:
        arr.flat[int(rng.integers(0, arr.size))] = rng.choice([1e30, -1e30, 3.4e38, 0.0, 1e-45])
    elif choice == 1:
        tensors[name] = np.zeros(tuple(int(d) + int(rng.integers(-1, 2)) for d in arr.shape),
                                 np.float32).reshape(-1) if arr.ndim else arr
    elif choice == 2:
        tensors[name] = arr.reshape(-1)
    else:
        del tensors[name]
    manifest["weights_sha256"] = weights_sha256(tensors)
    return save(tensors, metadata={"threedgl.manifest": json.dumps(manifest)})


# -- the oracle -------------------------------------------------------------------------------
class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def _alarm(_sig: int, _frame: Any) -> None:
        raise Hang()

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def why_invalid(data: bytes, generator: Any) -> str | None:
    """Why an accepted file is not valid (an independent check), or None."""
    from threedgl.schema.schema import CategoricalColumn

    _, manifest_raw, _ = split_raw(data)
    try:
        json.loads(manifest_raw, parse_constant=_refuse)
        manifest_raw.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        return f"manifest not strict JSON: {type(exc).__name__}"
    for record in generator.privacy_:
        eps = record.recompute_epsilon()
        if not (eps >= 0 and (math.isfinite(eps) or record.noise_multiplier == 0)):
            return "epsilon not a number >= 0"
    frame = generator.sample(20, random_state=0)
    for col in generator.schema_.columns:
        values = frame[col.name]
        if isinstance(col, CategoricalColumn):
            bad = ~values.astype(object).isin(list(col.categories))
        else:
            v = values.to_numpy(dtype=float)
            bad = ~np.isfinite(v) | (v < col.minimum) | (v > col.maximum)
            if col.integer:
                bad |= v != np.round(v)
        if np.asarray(bad).any():
            return f"sampled values outside the schema (column {col.name})"
    return None


def _refuse(name: str) -> Any:
    raise ValueError(name)


def split_raw(data: bytes) -> tuple[dict[str, Any], str, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    return header, header["__metadata__"]["threedgl.manifest"], data[8 + n :]


def check(data: bytes, policy: Policy, timeout: float) -> tuple[str, str]:
    """(outcome, detail) of one mutant through the loader, the validity oracle and the server."""
    from threedgl.errors import ThreedglError
    from threedgl.model.registry import load_generator_bytes
    from threedgl.privacy.record import _recompute
    from threedgl.server.validation import validate_upload

    outcome, detail = "refused", ""
    check.last_upload = 0.0  # type: ignore[attr-defined]
    t0 = time.process_time()
    try:
        with time_limit(timeout), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                generator = load_generator_bytes(data)
            except ThreedglError:
                generator = None
            if generator is not None:
                reason = why_invalid(data, generator)
                if reason is not None:
                    return "invalid accepted", f"loader: {reason}"
            _recompute.cache_clear()  # the server's check costs what it would alone
            t_upload = time.process_time()
            try:
                validate_upload(data, policy)
                outcome = "accepted"
                if generator is None:
                    return "invalid accepted", "server accepted what the loader refused"
            except ThreedglError:
                pass
            finally:
                check.last_upload = time.process_time() - t_upload  # type: ignore[attr-defined]
            if generator is not None and outcome == "refused":
                outcome = "loaded, refused by policy"
    except Hang:
        return "hang", f"> {timeout} s"
    except Exception as exc:  # a defect: not the project's own error
        return "crash", type(exc).__name__ + ": " + str(exc)[:120]
    finally:
        check.last_seconds = time.process_time() - t0  # type: ignore[attr-defined]
    return outcome, detail


def fuzz(n: int, seed: int, timeout: float = 10.0, progress: Callable[[int], None] | None = None,
         keep: int = 0) -> tuple[Report, list[bytes]]:
    """Run ``n`` mutants; return the report and up to ``keep`` manifest mutants for HTTP."""
    rng = np.random.default_rng(seed)
    report = Report()
    kept: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        seeds, schema = seed_files(Path(tmp))
    policy = Policy(name="fuzz", schema=schema)
    check(seeds[0], policy, timeout)  # warm: imports and caches are not a mutant's cost
    report.baseline_rss_mb = _peak_rss_mb()
    for i in range(n):
        base = seeds[int(rng.integers(0, len(seeds)))]
        name, data = mutate(base, rng)
        if rng.random() < 0.15:  # a second mutation on top
            with contextlib.suppress(Exception):
                name2, data = mutate(data, rng)
                name = f"{name} + {name2}"
        before = _peak_rss_mb()
        outcome, detail = check(data, policy, timeout)
        grown = _peak_rss_mb() - before
        if grown > 1:
            key = name.split(" + ")[0].split("/")[0]
            report.rss_steps[key] = max(report.rss_steps.get(key, 0.0), grown)
        if check.last_seconds > report.slowest:  # type: ignore[attr-defined]
            report.slowest, report.slowest_name = check.last_seconds, name  # type: ignore[attr-defined]
        report.slowest_upload = max(report.slowest_upload, check.last_upload)  # type: ignore[attr-defined]
        report.counts[outcome] += 1
        if outcome == "crash":
            report.crashes[detail.split(":")[0]] += 1
        if outcome == "invalid accepted":
            report.invalid[detail] += 1
        if outcome in ("crash", "hang", "invalid accepted"):
            report.examples.setdefault(detail[:100], name)
        if name.startswith("manifest") and len(kept) < keep and rng.random() < 0.5:
            kept.append(data)
        if progress is not None:
            progress(i)
    return report, kept


# -- over HTTP --------------------------------------------------------------------------------
def over_http(mutants: list[bytes], schema: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Upload each mutant to a real server (SQLite, then PostgreSQL); status code counts."""
    sys.path.insert(0, str(ROOT / "tests"))
    import httpx

    import server_fixtures as sf

    out: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        databases: list[tuple[str, contextlib.AbstractContextManager[str]]] = [
            ("sqlite", contextlib.nullcontext(f"sqlite:///{tmp}/fuzz.db")),
            ("postgresql", sf.postgres_database()),
        ]
        for label, db in databases:
            with db as url:
                server = sf.ServerProcess(url, cwd=Path(tmp)).start()
                try:
                    codes: collections.Counter[int] = collections.Counter()
                    with server.admin() as http:
                        r = http.post("/federations", json={
                            "name": "fuzz", "schema": schema,
                            "policy": {"max_epsilon": 1.9, "max_delta": 1e-4}})
                        r.raise_for_status()
                    token = sf.add_client(server, "fuzz", "fuzzer")
                    with server.http(token) as http:
                        for data in mutants:
                            try:
                                r = http.put("/generator", content=data,
                                             headers={"Content-Type": "application/octet-stream"})
                                codes[r.status_code] += 1
                                r.json()  # every answer must be JSON that decodes
                            except (httpx.HTTPError, ValueError):
                                codes[0] += 1
                    out[label] = {str(k): v for k, v in sorted(codes.items())}
                finally:
                    server.stop()
    return out


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a hang")
    parser.add_argument("--http", type=int, default=0, help="mutants also sent over HTTP")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    def progress(i: int) -> None:
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} mutants, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    report, kept = fuzz(args.mutants, args.seed, args.timeout, progress, keep=args.http)
    figures: dict[str, Any] = {
        "mutants": args.mutants,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "slowest_mutant_cpu_seconds": round(report.slowest, 2),
        "slowest_mutant": report.slowest_name,
        "slowest_upload_check_cpu_seconds": round(report.slowest_upload, 2),
        "peak_rss_growth_mb": round(_peak_rss_mb() - report.baseline_rss_mb),
        "largest_rss_steps_mb": {k: round(v) for k, v in sorted(
            report.rss_steps.items(), key=lambda kv: -kv[1])[:5]},
        "outcomes": dict(report.counts),
        "crashes": dict(report.crashes),
        "invalid_accepted": dict(report.invalid),
        "examples": report.examples,
    }
    if args.http:
        with tempfile.TemporaryDirectory() as tmp:
            _, schema = seed_files(Path(tmp))
        figures["http"] = over_http(kept, schema)
        figures["http_mutants"] = len(kept)
    print(json.dumps(figures, indent=2, ensure_ascii=True))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=True) + "\n")
    http_500 = sum(v for codes in figures.get("http", {}).values()
                   for k, v in codes.items() if k.startswith("5") or k == "0")
    return 1 if report.defects() or http_500 else 0


if __name__ == "__main__":
    raise SystemExit(main())

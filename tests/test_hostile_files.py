"""Hostile ``.3dgl`` files: every malformed input is the project's own error, at bounded cost."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from threedgl.artifact.format import read_artifact_bytes, strict_json, write_artifact
from threedgl.cli.main import app
from threedgl.errors import ArtifactError, PrivacyError, PrivacyWarning, ThreedglError
from threedgl.model.registry import load_generator_bytes
from threedgl.privacy.record import PrivacyRecord
from threedgl.server.app import encodable
from threedgl.server.validation import UploadRejected, validate_upload

ROOT = Path(__file__).resolve().parents[1]


def _fuzzer() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_artifacts", ROOT / "benchmarks" /
                                                  "fuzz_artifacts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_artifacts"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    from threedgl import DPMarginals, datasets

    ds = datasets.load("titanic")
    path = tmp_path_factory.mktemp("hostile") / "m.3dgl"
    DPMarginals(random_state=0).fit(ds.frame, target=ds.target, schema=ds.schema).save(path)
    return path.read_bytes(), ds.schema.to_dict()


def _with_manifest_text(data: bytes, edit: Any) -> bytes:
    """``data`` with its manifest's JSON text passed through ``edit`` (weights unchanged)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    text = edit(header["__metadata__"]["threedgl.manifest"])
    header["__metadata__"] = {"threedgl.manifest": "@@M@@"}
    raw = json.dumps(header).replace('"@@M@@"', json.dumps(text)).encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


class _Fed:
    name = "f"
    max_epsilon = 1.9
    max_delta = 1e-4
    accountants: ClassVar[list[str]] = ["rdp", "prv"]
    max_artifact_bytes = 8 * 1024 * 1024

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema


HOSTILE = [
    ('"delta": 0.0001', '"delta": NaN', "NaN is not allowed"),
    ('"delta": 0.0001', '"delta": Infinity', "Infinity is not allowed"),
    ('"delta": 0.0001', '"delta": 1e400', "out of range"),
    ('"delta": 0.0001', '"delta": 1' + "0" * 5000, "digits is above the limit"),
    ('"created": "', '"created": "\\ud800', "lone surrogate"),
    ('"architecture": {', '"architecture": {"deep": ' + "[" * 100_000 + "]" * 100_000 + ",",
     "nested"),
    ('"architecture": {', '"architecture": {"deep": ' + "[" * 40 + "]" * 40 + ",", "nested"),
    ('"architecture": {', '"architecture": {"bins": 1, ', "appears twice"),
]


@pytest.mark.parametrize(("old", "new", "words"), HOSTILE)
def test_hostile_json_in_the_manifest_is_refused_by_name(
    valid: tuple[bytes, dict[str, Any]], old: str, new: str, words: str
) -> None:
    data, schema = valid
    mutant = _with_manifest_text(data, lambda t: t.replace(old, new, 1))
    assert mutant != data
    with pytest.raises(ArtifactError, match=words):
        load_generator_bytes(mutant)
    with pytest.raises(UploadRejected, match=words):
        validate_upload(mutant, _Fed(schema))


def test_an_empty_tensor_is_refused(valid: tuple[bytes, dict[str, Any]]) -> None:
    """A [0, 3] tensor with consistent offsets used to crash the hash (TypeError, HTTP 500)."""
    data, schema = valid
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    header["zz"] = {"dtype": "F32", "shape": [0, 3], "data_offsets": [end, end]}
    raw = json.dumps(header).encode()
    mutant = struct.pack("<Q", len(raw)) + raw + data[8 + n :]
    with pytest.raises(ArtifactError, match="invalid shape"):
        read_artifact_bytes(mutant)
    with pytest.raises(UploadRejected):
        validate_upload(mutant, _Fed(schema))


def test_strict_json_refuses_what_python_json_accepts() -> None:
    for text in ("NaN", "[Infinity]", '{"a": 1, "a": 2}', '"\\udfff"', "1" * 100, "-1e999"):
        json.loads(text)  # Python's own parser takes every one of them
        with pytest.raises(ArtifactError):
            strict_json(text, "x")
    assert strict_json('{"a": [1, 2.5, "é", null]}', "x") == {"a": [1, 2.5, "é", None]}


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("schema", "columns", 4, "maximum"), 9.999e307, "finite number in"),
        (("architecture", "bins", 4), None, "must be an int"),
        (("created",), "x" * 1_000_000, "limit of 64"),
        (("models", 0, "privacy", "noise_multiplier"), 1e-300, "noise_multiplier"),
        (("models", 0, "privacy", "steps"), 10**18, "steps"),
    ],
)
def test_values_that_used_to_crash_or_pass_are_refused(
    valid: tuple[bytes, dict[str, Any]], tmp_path: Path, path: tuple[Any, ...], value: Any,
    words: str,
) -> None:
    artifact = read_artifact_bytes(valid[0])
    manifest = json.loads(json.dumps(artifact.manifest))
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    out = tmp_path / "m.3dgl"
    try:
        write_artifact(out, manifest, artifact.tensors)
    except ThreedglError as exc:  # refused already when written: as good
        assert words in str(exc) or path[0] in ("created",)
        return
    with pytest.raises(ThreedglError, match=words):
        load_generator_bytes(out.read_bytes())


@pytest.mark.parametrize("layout", [7, None, True, [7], [[1, 2]], "x"])
def test_a_layout_of_the_wrong_type_is_refused(titanic_file: Path, tmp_path: Path,
                                               layout: Any) -> None:
    artifact = read_artifact_bytes(titanic_file.read_bytes())
    manifest = json.loads(json.dumps(artifact.manifest))
    manifest["architecture"]["layout"] = layout
    write_artifact(tmp_path / "l.3dgl", manifest, artifact.tensors)
    with pytest.raises(ArtifactError, match="layout"):
        load_generator_bytes((tmp_path / "l.3dgl").read_bytes())


def test_privacy_record_bounds_the_cost_of_recomputing_epsilon() -> None:
    base = {"noise_multiplier": 1.0, "sample_rate": 0.01, "steps": 1000, "max_grad_norm": 1.0,
            "accountant": "prv", "delta": 1e-5, "epsilon": 5.0}
    t0 = time.perf_counter()
    with pytest.raises(PrivacyError, match="prv"):
        PrivacyRecord.from_dict({**base, "steps": 1_000_000})  # used to take 23 GB
    for change in ({"noise_multiplier": 1e308}, {"noise_multiplier": 1e-300},
                   {"sample_rate": 1e-12}, {"steps": 10**18, "accountant": "rdp"},
                   {"delta": 0.0}, {"epsilon": -1.0}):
        with pytest.raises(PrivacyError):
            PrivacyRecord.from_dict({**base, **change})
    assert time.perf_counter() - t0 < 2.0


def test_recomputed_epsilon_is_never_negative() -> None:
    record = PrivacyRecord(100.0, 1e-6, 10_000_000, 1.0, "rdp", 0.9, 0.0)
    try:
        eps = record.recompute_epsilon()
    except PrivacyError:
        return
    assert eps >= 0


def test_an_understated_epsilon_is_refused_when_loading(
    valid: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    artifact = read_artifact_bytes(valid[0])
    manifest = json.loads(json.dumps(artifact.manifest))
    for m in manifest["models"]:
        m["privacy"]["epsilon"] = 0.01
    write_artifact(tmp_path / "lie.3dgl", manifest, artifact.tensors)
    with pytest.raises(ArtifactError, match="understates"):
        load_generator_bytes((tmp_path / "lie.3dgl").read_bytes())


def _forged(data: bytes, tmp_path: Path, **privacy: Any) -> Path:
    artifact = read_artifact_bytes(data)
    manifest = json.loads(json.dumps(artifact.manifest))
    manifest["privacy"].update(privacy)
    path = tmp_path / "forged.3dgl"
    write_artifact(path, manifest, artifact.tensors)
    return path


@pytest.mark.parametrize(
    ("privacy", "words"),
    [
        ({"epsilon": "0.01", "statement": "This generator is (0.01, 1e-9)-DP."},
         "stored privacy 'epsilon'"),
        ({"statement": "Each row is protected with (0.01, 1e-09)-differential privacy."},
         "does not make the claim"),
        ({"private": False}, "stored privacy 'private'"),
    ],
)
def test_a_forged_statement_is_flagged_by_load_and_inspect(
    valid: tuple[bytes, dict[str, Any]], tmp_path: Path, privacy: dict[str, Any], words: str
) -> None:
    from threedgl.model.registry import load_generator

    path = _forged(valid[0], tmp_path, **privacy)
    with pytest.warns(PrivacyWarning, match=words):
        gen = load_generator(path)
    flag, _, statement = gen.privacy_statement().partition("\n")
    assert flag.startswith("WARNING") and words.split("'")[0] in flag
    assert statement.startswith("Each row of the training table is protected with (")
    assert "0.01" not in statement.split(".")[0]  # generated from the records, not the file
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "WARNING: this file's stored privacy statement is not what" in " ".join(
        result.output.split())


@pytest.mark.parametrize("params", [{}, {"mode": "paper"}, {"epsilon": float("inf")}, None])
def test_an_honest_statement_is_not_flagged(valid: tuple[bytes, dict[str, Any]],
                                            params: dict[str, Any] | None) -> None:
    """Every kind of file the library writes (DDP-βVAE default, paper, ε = ∞; DP marginals)
    loads without a statement warning, and its statement is the generated one."""
    import warnings

    from threedgl import DDPBetaVAE, datasets

    data = valid[0]
    if params is not None:
        ds = datasets.load("titanic")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = DDPBetaVAE(epochs=1, random_state=0, **params).fit(
                ds.frame, target=ds.target, schema=ds.schema, ledger=False).to_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyWarning)
        gen = load_generator_bytes(data)
    assert not gen.privacy_statement().startswith("WARNING")
    assert gen.manifest_["privacy"]["statement"] in gen.privacy_statement()


def test_inspect_shows_hostile_strings_without_obeying_them(
    valid: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    artifact = read_artifact_bytes(valid[0])
    manifest = dict(artifact.manifest)
    manifest["created"] = "[red]x[/bogus] \x1b[31m"
    path = tmp_path / "markup.3dgl"
    write_artifact(path, manifest, artifact.tensors)
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "[red]x[/bogus]" in result.output
    assert "\x1b[31m" not in result.output


def test_error_messages_always_encode() -> None:
    text = encodable("bad \ud800 value")
    text.encode("utf-8")
    assert "\\ud800" in text


def test_a_small_seeded_fuzz_finds_no_defect() -> None:
    """200 mutants of valid files (the benchmark runs 10,000): no crash, hang or bad accept."""
    report, _ = _fuzzer().fuzz(200, seed=7, timeout=20.0)
    assert report.defects() == 0, (dict(report.crashes), dict(report.invalid), report.examples)
    assert report.counts["refused"] > 100
    assert report.counts["accepted"] > 5  # mutants that stay valid still load
    _ = np  # numpy is the fuzzer's random source


def test_a_header_of_tiny_json_containers_is_refused_before_it_is_built() -> None:
    """Issue 20: Python builds each "{}" at ~50x its bytes; the containers are counted
    first (brackets inside strings do not count)."""
    header = ('{"x": [' + ",".join(["{}"] * 300_000) + "]}").encode()
    data = struct.pack("<Q", len(header)) + header
    with pytest.raises(ArtifactError, match="300002 JSON objects and arrays, above the limit"):
        read_artifact_bytes(data)
    assert strict_json('{"a": "[[[{{{", "b": [1, {}]}', "x") == {"a": "[[[{{{", "b": [1, {}]}
    assert strict_json(r'{"a": "q\"[\\", "b": []}', "x") == {"a": 'q"[\\', "b": []}


def test_counting_the_containers_of_a_long_string_costs_its_size() -> None:
    """The manifest travels as one escaped string inside the header: counting brackets
    outside strings once kept a regex backtracking frame per character (376 MB for a
    3 MB string, found by the fuzzer's issue-20 mutations)."""
    import tracemalloc

    inner = json.dumps({"extra": [[]] * 1_000_000, "s": 'a"b'})
    header = json.dumps({"__metadata__": {"threedgl.manifest": inner}})
    tracemalloc.start()
    try:
        assert strict_json(header, "the header")["__metadata__"]["threedgl.manifest"] == inner
        with pytest.raises(ArtifactError, match="1000002 JSON objects and arrays"):
            strict_json(inner, "the manifest")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(header)


def test_prv_records_are_verified_within_a_bounded_cost(tmp_path: Path) -> None:
    """Issue 20, items 4 and 5: one PRV record (σ 0.8, q 0.5, 10,000 steps) exhausted
    memory, and ten costly ones took 45 s. The grid model refuses the first, a file's PRV
    records share one budget, and nothing is verified before the whole file is checked."""
    import resource

    from threedgl.privacy.record import MAX_PRV_POINTS_PER_FILE, check_verification_cost

    base = {"noise_multiplier": 1.0, "sample_rate": 0.01, "steps": 10_000,
            "max_grad_norm": 1.0, "accountant": "prv", "delta": 1e-5, "epsilon": 7.0}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    huge = PrivacyRecord.from_dict({**base, "noise_multiplier": 0.8, "sample_rate": 0.5,
                                    "epsilon": 500.0})
    with pytest.raises(PrivacyError, match="above the limit"):
        huge.verify()
    # distinct records of ~0.27 M points each: a file may hold three, not four
    small = {**base, "noise_multiplier": 2.0, "sample_rate": 0.1, "steps": 1000,
             "delta": 1e-4, "epsilon": 10.0}
    many = [PrivacyRecord.from_dict({**small, "max_grad_norm": 1.0 + i}) for i in range(4)]
    check_verification_cost(many[:3])
    check_verification_cost([many[0]] * 50)  # identical records are verified once
    with pytest.raises(PrivacyError, match=f"{MAX_PRV_POINTS_PER_FILE:,} per file"):
        check_verification_cost(many)
    # cheap records still cost their set-up: at most 10 distinct ones per file, counted
    # before any grid is computed
    tiny = {**base, "noise_multiplier": 2.0, "sample_rate": 0.5, "steps": 1}
    eleven = [PrivacyRecord.from_dict({**tiny, "max_grad_norm": 1.0 + i}) for i in range(11)]
    with pytest.raises(PrivacyError, match="11 distinct PRV records, above the limit of 10"):
        check_verification_cost(eleven)
    assert time.process_time() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB

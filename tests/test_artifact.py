"""Loading a .3dgl file from a stranger never runs code and refuses anything malformed."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from threedgl import DDPBetaVAE, load_generator
from threedgl.artifact import read_artifact, write_artifact
from threedgl.artifact.format import MANIFEST_KEY
from threedgl.errors import ArtifactError


def _header(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _with_header(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def test_round_trip_keeps_weights_and_manifest(titanic_generator, titanic_file):
    loaded = DDPBetaVAE.load(titanic_file)
    assert loaded.manifest_ == json.loads(json.dumps(titanic_generator.manifest_))
    a = titanic_generator.sample(100, random_state=0)
    b = loaded.sample(100, random_state=0)
    assert a.equals(b)


def test_manifest_holds_what_the_issue_lists(titanic_file):
    m = read_artifact(titanic_file).manifest
    for key in (
        "format_version",
        "schema",
        "labels",
        "architecture",
        "models",
        "privacy",
        "training",
        "library_version",
        "created",
        "weights_sha256",
    ):
        assert key in m
    for model in m["models"]:
        assert set(model["privacy"]) == {
            "noise_multiplier",
            "sample_rate",
            "steps",
            "max_grad_norm",
            "accountant",
            "delta",
            "epsilon",
        }
    assert m["privacy"]["epsilon"] <= 1.9
    assert "add/remove" in m["privacy"]["adjacency"]
    assert "parallel composition" in m["privacy"]["composition"]
    assert any("sampling rate" in r for r in m["privacy"]["released"])


def test_tampered_weights_are_refused(titanic_file, tmp_path):
    data = bytearray(titanic_file.read_bytes())
    data[-5] ^= 0x40
    bad = tmp_path / "tampered.3dgl"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_generator(bad)


def test_tampered_manifest_is_refused(titanic_file, tmp_path):
    header, body = _header(titanic_file.read_bytes())
    manifest = json.loads(header["__metadata__"][MANIFEST_KEY])
    manifest["models"][0]["privacy"]["epsilon"] = "lots"
    header["__metadata__"][MANIFEST_KEY] = json.dumps(manifest)
    bad = tmp_path / "manifest.3dgl"
    bad.write_bytes(_with_header(header, body))
    with pytest.raises(ArtifactError, match="epsilon"):
        load_generator(bad)


@pytest.mark.parametrize("swap", ["models", "labels"])
def test_class_models_out_of_label_order_are_refused(titanic_file, tmp_path, swap):
    """Issue 20: tensors class{k} bind to the k-th model, so a manifest whose models are
    reordered, or whose labels are swapped, would swap the classes' samples."""
    header, body = _header(titanic_file.read_bytes())
    manifest = json.loads(header["__metadata__"][MANIFEST_KEY])
    models = manifest["models"]
    if swap == "models":
        models.reverse()
    else:
        models[0]["label"], models[1]["label"] = models[1]["label"], models[0]["label"]
    header["__metadata__"][MANIFEST_KEY] = json.dumps(manifest)
    bad = tmp_path / "order.3dgl"
    bad.write_bytes(_with_header(header, body))
    with pytest.raises(ArtifactError, match="out of the schema's label order"):
        load_generator(bad)


def test_truncated_file_is_refused(titanic_file, tmp_path):
    data = titanic_file.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.3dgl"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArtifactError):
            load_generator(bad)


def test_oversized_file_is_refused_before_reading(titanic_file):
    with pytest.raises(ArtifactError, match="above the limit"):
        load_generator(titanic_file, max_bytes=1000)


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pwned",))


def test_pickle_is_refused_and_never_run(tmp_path, capsys):
    bad = tmp_path / "evil.3dgl"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ArtifactError, match="pickle"):
        load_generator(bad)
    assert "pwned" not in capsys.readouterr().out


def test_torch_save_archive_is_refused(tmp_path):
    import torch

    bad = tmp_path / "evil.3dgl"
    torch.save({"w": torch.zeros(2)}, bad)
    with pytest.raises(ArtifactError, match=r"pickle or a torch\.save"):
        load_generator(bad)


def test_garbage_is_refused(tmp_path):
    bad = tmp_path / "garbage.3dgl"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtifactError):
        load_generator(bad)


def test_wrong_tensor_shapes_are_refused_even_with_a_valid_hash(titanic_file, tmp_path):
    art = read_artifact(titanic_file)
    tensors = dict(art.tensors)
    tensors["class0.head.weight"] = np.zeros((3, 3), dtype=np.float32)
    bad = tmp_path / "shapes.3dgl"
    write_artifact(bad, art.manifest, tensors)
    with pytest.raises(ArtifactError, match=r"head\.weight"):
        load_generator(bad)


def test_unexpected_tensor_names_are_refused(titanic_file, tmp_path):
    art = read_artifact(titanic_file)
    tensors = dict(art.tensors)
    tensors["class0.extra"] = np.zeros(2, dtype=np.float32)
    bad = tmp_path / "names.3dgl"
    write_artifact(bad, art.manifest, tensors)
    with pytest.raises(ArtifactError, match="extra"):
        load_generator(bad)


def test_non_float32_tensors_are_refused(titanic_file, tmp_path):
    from safetensors.numpy import save

    art = read_artifact(titanic_file)
    tensors = {k: v.astype(np.float64) for k, v in art.tensors.items()}
    bad = tmp_path / "f64.3dgl"
    bad.write_bytes(save(tensors, metadata={MANIFEST_KEY: json.dumps(art.manifest)}))
    with pytest.raises(ArtifactError, match="float32"):
        load_generator(bad)


def test_unsupported_format_version_is_refused(titanic_file, tmp_path):
    art = read_artifact(titanic_file)
    manifest = dict(art.manifest, format_version=99)
    bad = tmp_path / "v99.3dgl"
    with pytest.raises(ArtifactError, match="version 99"):
        write_artifact(bad, manifest, art.tensors)
    assert not bad.exists()


def test_missing_file(tmp_path: Path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_generator(tmp_path / "nope.3dgl")


def test_a_header_length_ending_in_0x80_is_not_taken_for_a_pickle(titanic_file, tmp_path):
    """A pickle starts with 0x80; so may a safetensors header length (little-endian)."""
    artifact = read_artifact(titanic_file)
    for pad in range(256):
        manifest = dict(artifact.manifest, created="x" * pad)
        path = tmp_path / "padded.3dgl"
        write_artifact(path, manifest, artifact.tensors)
        if path.read_bytes()[0] == 0x80:
            break
    else:  # pragma: no cover - 256 paddings cover every low byte
        pytest.fail("no padding gave a header length ending in 0x80")
    assert read_artifact(path).manifest["created"] == "x" * pad
    assert load_generator(path).sample(3, random_state=0).shape == (3, 8)

"""Every privacy-relevant draw derives from at least 128 bits (issue 19).

A seed of 32 bits lets an attacker replay the noise of a released count from a guessed
seed (all 2^32 seeds: about 60 core-hours), and recover the exact value. These tests fail
on any shorter seed in the paths that release something: a fit without a seed, a
simulated or deployed client's training, DP-Adam's noise and the Gaussian releases.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import threedgl
from threedgl.federation import plan
from threedgl.federation.workers import derive_seed
from threedgl.model import anchored as anchored_module
from threedgl.model.base import _seed
from threedgl.privacy import dp_adam

SRC = Path(threedgl.__file__).parent


def _bits(seeds: list[int]) -> int:
    return max(s.bit_length() for s in seeds)


def test_a_fit_without_a_seed_takes_128_bits() -> None:
    assert _bits([_seed(None) for _ in range(32)]) > 120
    assert _bits([_seed(np.random.default_rng(i)) for i in range(32)]) > 120


def test_a_clients_training_seed_has_128_bits() -> None:
    seeds = [derive_seed(7, 0, plan.TRAIN, c, bits=128) for c in range(32)]
    assert _bits(seeds) > 120 and len(set(seeds)) == 32
    assert derive_seed(7, 0, plan.SPLIT) < 2**32  # what scikit-learn takes, for splits only


def test_dp_adam_and_the_gaussian_releases_draw_from_128_bits(monkeypatch: pytest.MonkeyPatch,
                                                              titanic: Any) -> None:
    """The DP-Adam seed handed to the training (and from it to its PCG64 noise sources)
    and the generator of the count and marginals are seeded with 128 bits."""
    seen: dict[str, Any] = {}
    train_stack = anchored_module.train_stack

    def spy_train(*args: Any, **kwargs: Any) -> Any:
        seen["dp_adam"] = kwargs["seed"]
        return train_stack(*args, **kwargs)

    default_rng = np.random.default_rng

    def spy_rng(seed: Any = None) -> np.random.Generator:
        if isinstance(seed, np.random.SeedSequence):
            seen.setdefault("releases", seed)
        return default_rng(seed)

    monkeypatch.setattr(anchored_module, "train_stack", spy_train)
    monkeypatch.setattr(anchored_module.np.random, "default_rng", spy_rng)
    from threedgl import DDPBetaVAE

    DDPBetaVAE(epochs=1).fit(titanic.frame, target=titanic.target, schema=titanic.schema,
                             ledger=False)
    monkeypatch.undo()
    assert seen["dp_adam"].bit_length() > 96
    state = seen["releases"].generate_state(4, np.uint32)  # the SeedSequence's pool
    assert seen["releases"].entropy.bit_length() > 96 and len(state) == 4
    sources = dp_adam.noise_sources(seen["dp_adam"], 2)
    assert all(isinstance(s.bit_generator, np.random.PCG64) for s in sources)


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "attr", None) == name or getattr(n.func, "id", None) == name)]


def test_no_short_seed_in_the_source() -> None:
    """``secrets.randbits`` below 128 bits, and a client's training seed derived without
    ``bits=128``, are refused wherever they appear."""
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for call in _calls(tree, "randbits"):
            (arg,) = call.args
            assert isinstance(arg, ast.Constant) and arg.value >= 128, (path, call.lineno)
        for call in _calls(tree, "derive_seed"):
            purpose = ast.unparse(call.args[2]) if len(call.args) > 2 else ""
            if "TRAIN" in purpose:
                bits = {k.arg: ast.unparse(k.value) for k in call.keywords}.get("bits")
                assert bits == "128", (path, call.lineno, "a training seed needs bits=128")
        assert not re.search(r"randbits\(\s*(?:[0-9]|[1-9][0-9]|1[01][0-9]|12[0-7])\s*\)", text)

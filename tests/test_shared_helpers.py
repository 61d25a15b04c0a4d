"""The one-of-each helpers: the generator factory, the integer check, the thread limiter,
the Markdown table writer, and the pool's use of the generators' public API only."""

from __future__ import annotations

import ast
import inspect
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from threedgl.errors import PrivacyError, ThreedglError, check_int
from threedgl.markdown import markdown_table
from threedgl.model.ddp_betavae import DDPBetaVAE
from threedgl.model.marginals import DPMarginals
from threedgl.model.registry import create_generator
from threedgl.threads import limit_threads


# -- check_int -------------------------------------------------------------------------------
@given(st.integers(min_value=-10**6, max_value=10**6))
def test_check_int_accepts_exactly_the_ints_in_range(value: int) -> None:
    inside = 0 <= value <= 1000
    if inside:
        assert check_int("n", value, low=0, high=1000) == value
        assert check_int("n", np.int32(value), low=0, high=1000) == value
    else:
        with pytest.raises(ThreedglError, match=r"The 'n' parameter must be an int in the range \[0, 1000\]"):
            check_int("n", value, low=0, high=1000)


@pytest.mark.parametrize("bad", [True, False, 1.0, 2.5, "3", None, math.nan, [1]])
def test_check_int_refuses_what_is_not_an_int(bad: object) -> None:
    with pytest.raises(ThreedglError, match=rf"Got {__import__('re').escape(repr(bad))} instead"):
        check_int("epochs", bad, low=0, owner="DDPBetaVAE")


def test_check_int_names_the_owner_and_raises_the_given_error() -> None:
    with pytest.raises(PrivacyError, match=r"The 'steps' parameter of X must be an int in the range \[1, inf\)"):
        check_int("steps", 0, low=1, owner="X", error=PrivacyError)


def test_the_hand_written_integer_checks_now_use_check_int() -> None:
    """Where an int parameter is checked, the message is check_int's."""
    from threedgl.evaluation.discriminator import discriminator_scores
    from threedgl.evaluation.sweep import sweep_sizes
    from threedgl.privacy.accounting import compute_epsilon

    with pytest.raises(ThreedglError, match=r"'start' parameter of size_sweep must be an int"):
        sweep_sizes(100, start=True)
    with pytest.raises(ThreedglError, match=r"'folds' parameter must be an int in the range \[2"):
        discriminator_scores(pd.DataFrame(), pd.DataFrame(), _schema(), folds=1)
    with pytest.raises(PrivacyError, match=r"'steps' parameter must be an int in the range \[1"):
        compute_epsilon(1.0, 0.01, 0, 1e-5)


def _schema():  # type: ignore[no-untyped-def]
    from threedgl.schema import CategoricalColumn, NumericColumn, Schema

    return Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", ("a", "b"))), target="y")


# -- create_generator ------------------------------------------------------------------------
def test_create_generator_builds_each_kind_with_its_parameters() -> None:
    vae = create_generator("ddp-betavae", epsilon=2.0, epochs=3, random_state=1)
    assert isinstance(vae, DDPBetaVAE)
    assert (vae.epsilon, vae.epochs, vae.random_state, vae.mode) == (2.0, 3, 1, "anchored")
    marg = create_generator("dp-marginals", epsilon=0.5, delta=1e-6)
    assert isinstance(marg, DPMarginals) and (marg.epsilon, marg.delta) == (0.5, 1e-6)


def test_create_generator_with_a_preset_is_the_papers_table_i_model() -> None:
    made = create_generator("ddp-betavae", "titanic", epsilon=1.9, random_state=0)
    direct = DDPBetaVAE.from_preset("titanic", epsilon=1.9, random_state=0)
    assert made.get_params() == direct.get_params() and made.mode == "paper"
    # Parameters override the preset, the mode included.
    assert create_generator("ddp-betavae", "titanic", mode="anchored").mode == "anchored"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: create_generator("gan"), r"'kind' parameter must be one of \['ddp-betavae', 'dp-marginals'\]"),
        (lambda: create_generator("dp-marginals", epochs=3), r"DPMarginals has no parameter 'epochs'"),
        (lambda: create_generator("ddp-betavae", hiden=(8, 4)), r"DDPBetaVAE has no parameter 'hiden'"),
        (lambda: create_generator("dp-marginals", "titanic"), r"'preset' parameter applies to 'ddp-betavae' only"),
        (lambda: create_generator("ddp-betavae", "iris"), r"unknown preset 'iris'"),
    ],
)
def test_create_generator_names_what_is_wrong(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ThreedglError, match=message):
        call()


def test_every_place_that_builds_a_generator_by_kind_uses_the_factory() -> None:
    import threedgl.cli.generator
    import threedgl.experiments.privacy
    import threedgl.experiments.reproduce
    import threedgl.federation.workers

    for module in (threedgl.cli.generator, threedgl.experiments.privacy,
                   threedgl.experiments.reproduce, threedgl.federation.workers):
        source = inspect.getsource(module)
        assert "create_generator(" in source, module.__name__
        calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
        direct = [ast.unparse(c.func) for c in calls
                  if ast.unparse(c.func) in ("DDPBetaVAE", "DPMarginals", "DDPBetaVAE.from_preset")]
        assert not direct, f"{module.__name__} builds generators directly: {direct}"


# -- the thread limiter ----------------------------------------------------------------------
def test_limit_threads_limits_torch_and_blas_and_restores_them() -> None:
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before


# -- the Markdown table writer ---------------------------------------------------------------
def test_markdown_table_formats_escapes_and_aligns() -> None:
    df = pd.DataFrame({"name": ["a|b", "c"], "score": [1.234, float("nan")], "n": [1, 2]})
    assert markdown_table(df).splitlines() == [
        "| name | score | n |",
        "|---|---:|---:|",
        "| a\\|b | 1.23 | 1 |",
        "| c |  | 2 |",
    ]
    assert "1.234" in markdown_table(df, floatfmt="{:.3f}")


# -- the pool samples through the public API -------------------------------------------------
def test_the_pool_uses_no_private_generator_attribute() -> None:
    import threedgl.pool.pool as pool_module

    tree = ast.parse(inspect.getsource(pool_module))
    private_attrs = sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                            and n.attr.startswith("_") and not n.attr.startswith("__")})
    imported = sorted({a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                       for a in n.names if a.name.startswith("_")})
    assert private_attrs == [] and imported == []


def test_limit_threads_finds_the_libraries_again_after_an_import(monkeypatch):
    """The thread limiter caches threadpoolctl's view of the loaded libraries; a module
    imported since (it may load an OpenMP or BLAS library) makes it look again."""
    import sys
    import types

    from threedgl import threads

    with threads.limit_threads(1):
        pass
    first = threads._controller()
    assert threads._controller() is first  # nothing imported: the same view
    monkeypatch.setitem(sys.modules, "threedgl_test_fake_module", types.ModuleType("fake"))
    assert threads._controller() is not first


def test_ledger_suspension_nests_across_threads(monkeypatch):
    """Two threads in suspended() at once: the first to leave does not lift the other's."""
    import os
    import threading

    from threedgl.privacy import ledger

    monkeypatch.delenv(ledger.SUSPENDED_ENV, raising=False)
    inside, leave_first = threading.Event(), threading.Event()

    def first() -> None:
        with ledger.suspended():
            inside.set()
            leave_first.wait(5)

    t = threading.Thread(target=first)
    t.start()
    inside.wait(5)
    with ledger.suspended():
        leave_first.set()
        t.join(5)
        assert os.environ.get(ledger.SUSPENDED_ENV) == "1"  # still suspended here
    assert ledger.SUSPENDED_ENV not in os.environ

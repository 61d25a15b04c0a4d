"""The one-run privacy audit (issue 19): the bound's known answers and properties, the
canaries, and ``3dgl audit`` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from typer.testing import CliRunner

from threedgl.cli.main import app
from threedgl.evaluation.audit import canary_rows, epsilon_lower_bound, p_value


def test_all_correct_guesses_prove_randomised_responses_epsilon() -> None:
    """r guesses all correct, δ = 0: the bound solves q^r = 1 − confidence, ε = ln(q/(1−q))."""
    for r in (10, 20, 100):
        q = 0.05 ** (1 / r)
        assert epsilon_lower_bound(5 * r, r, r, 0.0) == pytest.approx(math.log(q / (1 - q)),
                                                                      abs=2e-4)
    assert epsilon_lower_bound(1000, 200, 100, 0.0) == 0.0  # chance proves nothing
    assert epsilon_lower_bound(1000, 200, 90, 1e-4) == 0.0


def test_p_value_is_the_binomial_tail_plus_the_delta_term() -> None:
    m, r, v, eps = 400, 80, 60, 1.0
    q = math.exp(eps) / (1 + math.exp(eps))
    tail = stats.binom.sf(v - 1, r, q)
    assert p_value(m, r, v, eps, 0.0) == pytest.approx(tail, rel=1e-12)
    # δ term: 2 m δ max_i P[v − i ≤ B < v] / i
    alpha = max(sum(stats.binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i
                for i in range(1, v + 1))
    assert p_value(m, r, v, eps, 1e-3) == pytest.approx(min(1.0, tail + 2 * m * 1e-3 * alpha),
                                                        rel=1e-9)
    with pytest.raises(ValueError):
        p_value(10, 20, 5, 1.0, 0.0)


@settings(max_examples=50, deadline=None)
@given(r=st.integers(1, 200), extra=st.integers(0, 200), data=st.data())
def test_the_bound_grows_with_correct_guesses_and_shrinks_with_delta(r: int, extra: int,
                                                                    data: Any) -> None:
    v = data.draw(st.integers(0, r - 1))
    m = r + extra
    low, high = epsilon_lower_bound(m, r, v, 0.0), epsilon_lower_bound(m, r, v + 1, 0.0)
    assert 0.0 <= low <= high
    assert epsilon_lower_bound(m, r, v + 1, 1e-3) <= high + 1e-9
    assert epsilon_lower_bound(m, r, v + 1, 0.0, confidence=0.99) <= high + 1e-9


def test_canaries_lie_in_the_schemas_domain(titanic: Any) -> None:
    rows = canary_rows(titanic.schema, 300, np.random.default_rng(0))
    valid = titanic.schema.validate(rows, require_target=True)
    assert len(valid) == 300
    assert rows[titanic.target].nunique() == len(titanic.schema.labels)


def _write(titanic: Any, tmp_path: Path, n: int) -> tuple[Path, Path]:
    data, schema = tmp_path / "t.csv", tmp_path / "schema.json"
    titanic.frame.sample(n, random_state=0).to_csv(data, index=False)
    schema.write_text(json.dumps(titanic.schema.to_dict()), encoding="utf-8")
    return data, schema


def test_cli_audit_writes_the_bound_and_records_the_training(titanic: Any, tmp_path: Path) -> None:
    data, schema = _write(titanic, tmp_path, 300)
    out, ledger = tmp_path / "audit.json", tmp_path / "ledger.json"
    result = CliRunner().invoke(app, ["audit", str(data), "--target", titanic.target, "--schema",
                                      str(schema), "--generator", "dp-marginals", "--canaries",
                                      "100", "--json", str(out), "--ledger", str(ledger)])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text(encoding="utf-8"))
    assert {"epsilon_claimed", "epsilon_lower_bound", "canaries", "confidence"} <= set(got)
    assert got["canaries"] == 100 and got["confidence"] == 0.95
    assert got["epsilon_claimed"] == pytest.approx(1.9, rel=0.02)
    assert 0.0 <= got["epsilon_lower_bound"] <= got["epsilon_claimed"]
    assert got["guesses"] == 20 and 0 <= got["correct"] <= 20
    assert "3dgl audit" in ledger.read_text(encoding="utf-8")  # the training spent budget


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--target", "nope"], "--target 'nope'"),
        (["--target", "survived", "--confidence", "1.5"], "--confidence"),
        (["--target", "survived", "--canaries", "3"], "--canaries"),
        (["--target", "survived", "--generator", "gan"], "--generator"),
    ],
)
def test_cli_audit_bad_input_exit_2(titanic: Any, tmp_path: Path, args: list[str],
                                    words: str) -> None:
    data, schema = _write(titanic, tmp_path, 100)
    result = CliRunner().invoke(app, ["audit", str(data), "--schema", str(schema), *args,
                                      "--ledger", str(tmp_path / "l.json")])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_the_audit_has_power_without_dp(titanic: Any) -> None:
    """ε = ∞ on 200 rows: the canaries the model was fitted to are found (bound > 0.5; the
    benchmark records ≥ 1 on two seeds of three)."""
    from threedgl import DDPBetaVAE
    from threedgl.evaluation.audit import audit_generator

    frame = titanic.frame.sample(200, random_state=0)
    result, _ = audit_generator(lambda s: DDPBetaVAE(epsilon=math.inf, random_state=s), frame,
                                titanic.schema, random_state=1,
                                training_seed=int(np.random.SeedSequence(1).generate_state(2)[1]))
    assert result.canaries == 200 and result.guesses == 40
    assert result.epsilon_lower_bound > 0.5


def test_the_reproductions_audit_table_reports_the_bound_beside_the_claim() -> None:
    import pandas as pd

    from threedgl.experiments.privacy import AUDIT_TABLE_COLUMNS, audit_table
    from threedgl.experiments.tables import summary_tables

    table = audit_table("titanic", epsilons=(1.9,), modes=("anchored",), max_rows=300)
    assert list(table.columns) == list(AUDIT_TABLE_COLUMNS) and len(table) == 1
    row = table.iloc[0]
    assert row["canaries"] == 300 and row["guesses"] == 60
    assert 0.0 <= row["epsilon_lower_bound"] <= row["epsilon_claimed"] <= 1.9
    shown = summary_tables(pd.DataFrame(), {"audit": table})
    (title,) = [t for t in shown if "audit" in t]
    assert list(shown[title].columns) == ["dataset", "mode", "claimed ε", "ε lower bound (95 %)"]

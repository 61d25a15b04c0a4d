"""The privacy budget ledger: totals by the accountant's composition, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from threedgl.errors import PrivacyError
from threedgl.privacy import PrivacyRecord, compose_epsilon
from threedgl.privacy.ledger import Ledger, compose_entries, fingerprint


def _entry(table: str, records: list[tuple[str, PrivacyRecord]], target: str = "y") -> dict:
    return {
        "fingerprint": table,
        "source": "t.csv",
        "recorded": "2026-01-01T00:00:00Z",
        "generator": "ddp-betavae",
        "target": target,
        "weights_sha256": None,
        "models": [{"label": lab, "privacy": r.to_dict()} for lab, r in records],
    }


R1 = PrivacyRecord(1.1, 0.05, 400, 1.0, "rdp", 1e-4, 1.8)
R2 = PrivacyRecord(0.9, 0.10, 200, 1.0, "rdp", 1e-4, 2.5)


def test_total_is_the_accountants_composition_per_class():
    entries = [_entry("t", [("a", R1), ("b", R2)]), _entry("t", [("a", R2), ("b", R2)])]
    total, delta = compose_entries(entries)
    expected = max(compose_epsilon([R1, R2], 1e-4), compose_epsilon([R2, R2], 1e-4))
    assert total == pytest.approx(expected, rel=1e-12)
    assert delta == 1e-4
    # the worst class (b) saw R2 twice: tighter than adding its ε's, more than one alone
    assert total < 2 * R2.recompute_epsilon()
    assert total > R2.recompute_epsilon()


def test_different_class_columns_compose_everything():
    entries = [_entry("t", [("a", R1)], target="y"), _entry("t", [("c", R1)], target="z")]
    total, _ = compose_entries(entries)
    assert total == pytest.approx(compose_epsilon([R1, R1], 1e-4))


def test_budget_refuses_and_force_overrides(tmp_path):
    book = Ledger.open(tmp_path / "ledger.json")
    book.budgets["*"] = 3.0
    book.record(_entry("t", [("a", R1)]))
    again = _entry("t", [("a", R2)])
    with pytest.raises(PrivacyError, match="above its budget of 3"):
        book.check_entry(again)
    book.check_entry(again, force=True)
    reopened = Ledger.open(tmp_path / "ledger.json")
    assert reopened.entries == book.entries and reopened.budgets == {"*": 3.0}


def test_fingerprint_depends_on_content_only(titanic):
    frame = titanic.frame
    a = fingerprint(frame)
    # The same content held differently: a new index (other labels, not 0..n-1), object
    # dtype instead of numeric/categorical dtypes, a separate copy of the memory.
    reindexed = frame.set_axis(pd.RangeIndex(1000, 1000 + len(frame)), axis=0)
    as_objects = frame.astype(object).set_axis([f"row{i}" for i in range(len(frame))], axis=0)
    assert not reindexed.index.equals(frame.index) and all(d == np.dtype(object) for d in as_objects.dtypes)
    assert fingerprint(reindexed) == a
    assert fingerprint(as_objects) == a
    assert fingerprint(frame.copy(deep=True)) == a
    # Different content: one value, one column name, one row fewer.
    changed = frame.copy()
    changed.loc[changed.index[0], "age"] = 99.0
    renamed = frame.rename(columns={"age": "Age"})
    assert len({a, fingerprint(changed), fingerprint(renamed), fingerprint(frame.iloc[1:])}) == 4


def test_fingerprint_ignores_row_and_column_order(titanic) -> None:  # type: ignore[no-untyped-def]
    from threedgl.privacy.ledger import fingerprint

    df = titanic.frame
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled.equals(df)
    assert fingerprint(shuffled) == fingerprint(df)
    assert fingerprint(df[list(reversed(df.columns))]) == fingerprint(df)
    changed = df.copy()
    changed.loc[0, "age"] = changed.loc[0, "age"] + 1
    assert fingerprint(changed) != fingerprint(df)


def test_python_api_fits_are_recorded_and_composed(titanic, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from threedgl import DPMarginals
    from threedgl.errors import PrivacyError
    from threedgl.privacy.ledger import Ledger, fingerprint, suspended

    path = tmp_path / "api-ledger.json"
    df, schema = titanic.frame, titanic.schema
    DPMarginals(epsilon=1.0, random_state=0).fit(df, target=titanic.target, schema=schema,
                                                 ledger=path)
    book = Ledger.open(path)
    assert len(book.entries) == 1 and book.entries[0]["source"] == "python"
    book.budgets["*"] = 1.2
    book.save()
    shuffled = df.sample(frac=1.0, random_state=1)  # the same table, rows reordered
    gen = DPMarginals(epsilon=1.0, random_state=0)
    with pytest.raises(PrivacyError, match="budget"):
        gen.fit(shuffled, target=titanic.target, schema=schema, ledger=path)
    assert not hasattr(gen, "manifest_")  # nothing fitted, nothing to release
    with suspended():
        DPMarginals(epsilon=1.0, random_state=0).fit(df, target=titanic.target, schema=schema,
                                                     ledger=path)
    assert len(Ledger.open(path).entries_for(fingerprint(df))) == 1


def test_legacy_fingerprints_are_adopted(titanic, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from threedgl import DPMarginals
    from threedgl.privacy.ledger import Ledger, fingerprint, legacy_fingerprint

    path = tmp_path / "old.json"
    DPMarginals(epsilon=1.0, random_state=0).fit(
        titanic.frame, target=titanic.target, schema=titanic.schema, ledger=path)
    book = Ledger.open(path)
    book.entries[0]["fingerprint"] = legacy_fingerprint(titanic.frame)  # as written before
    book.save()
    DPMarginals(epsilon=1.0, random_state=1).fit(
        titanic.frame, target=titanic.target, schema=titanic.schema, ledger=path)
    assert len(Ledger.open(path).entries_for(fingerprint(titanic.frame))) == 2

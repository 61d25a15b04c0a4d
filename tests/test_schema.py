"""The public schema (SPEC §2): a frozen value type with an exact JSON round trip,
inference from data, validation of tables, and comparison of schemas."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threedgl.errors import SchemaError, ThreedglError
from threedgl.schema import (
    CategoricalColumn,
    NumericColumn,
    Schema,
    infer_schema,
    read_table,
    write_table,
)
from threedgl.schema.io import atomic_write_text

# -- strategies (also used by test_encoder.py) --------------------------------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8
)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@st.composite
def numeric_columns(draw: st.DrawFn, name: str) -> NumericColumn:
    integer = draw(st.booleans())
    if integer:
        lo = draw(st.integers(-(10**6), 10**6))
        hi = lo + draw(st.sampled_from([0, 1, 2, 10, 1000, 10**6]))
        return NumericColumn(name, lo, hi, integer=True)
    a, b = draw(finite), draw(finite)
    if draw(st.integers(0, 5)) == 0:
        b = a  # min == max
    return NumericColumn(name, min(a, b), max(a, b))


@st.composite
def categorical_columns(draw: st.DrawFn, name: str) -> CategoricalColumn:
    kind = draw(st.sampled_from(["str", "int", "bool"]))
    cats: list[str] | list[int] | list[bool]
    if kind == "str":
        cats = draw(st.lists(st.text(max_size=5), min_size=1, max_size=5, unique=True))
    elif kind == "int":
        cats = draw(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=5, unique=True))
    else:
        cats = draw(st.permutations([True, False]).map(list))
        cats = cats[: draw(st.integers(1, 2))]
    fallback = draw(st.none() | st.sampled_from(cats))
    return CategoricalColumn(name, tuple(cats), fallback=fallback)


@st.composite
def schemas(draw: st.DrawFn, max_columns: int = 6) -> Schema:
    cols_names = draw(st.lists(names, min_size=2, max_size=max_columns, unique=True))
    columns = []
    for n in cols_names:
        if draw(st.booleans()):
            columns.append(draw(numeric_columns(n)))
        else:
            columns.append(draw(categorical_columns(n)))
    cat_names = [c.name for c in columns if isinstance(c, CategoricalColumn)]
    target = draw(st.none() | st.sampled_from(cat_names)) if cat_names else None
    source = draw(st.sampled_from(["declared", "data"]))
    return Schema(tuple(columns), target=target, source=source)


# -- value type ----------------------------------------------------------------------------


def _example() -> Schema:
    return Schema(
        (
            NumericColumn("age", 0, 100, integer=True),
            NumericColumn("fare", 0.0, 512.5),
            CategoricalColumn("sex", ("female", "male")),
            CategoricalColumn("pclass", (1, 2, 3)),
            CategoricalColumn("alone", (False, True)),
            CategoricalColumn("y", ("no", "yes")),
        ),
        target="y",
    )


def test_schema_is_frozen_and_hashable() -> None:
    s = _example()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.target = "sex"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.columns[0].minimum = 3  # type: ignore[misc]
    assert hash(s) == hash(_example())
    assert s == _example()


def test_schema_accessors() -> None:
    s = _example()
    assert s.names == ("age", "fare", "sex", "pclass", "alone", "y")
    assert [c.name for c in s.features] == ["age", "fare", "sex", "pclass", "alone"]
    assert s.labels == ("no", "yes")
    assert s.version == 1
    assert "age" in s and "nope" not in s
    assert isinstance(s["pclass"], CategoricalColumn)
    with pytest.raises(SchemaError, match="'nope'"):
        s["nope"]
    assert s.with_target(None).labels == ()


def test_columns_normalise_values() -> None:
    c = NumericColumn("x", np.int64(1), np.float32(2.5), integer=np.bool_(True))
    assert (c.minimum, c.maximum, c.integer) == (1.0, 2.5, True)
    assert type(c.minimum) is float and type(c.integer) is bool
    cat = CategoricalColumn("c", (np.int64(2), np.int64(1)))
    assert cat.categories == (2, 1) and all(type(v) is int for v in cat.categories)
    b = CategoricalColumn("b", (np.bool_(True), np.bool_(False)))
    assert b.categories == (True, False) and b.category_type is bool


def test_fallback_is_stored_as_the_category() -> None:
    # "1" matches the category 1; the column keeps the category (an int), so the JSON
    # round trip is exact and a numpy integer does not break json.dumps.
    c = CategoricalColumn("c", (1, 2), fallback="1")
    assert c.fallback == 1 and type(c.fallback) is int
    c2 = CategoricalColumn("c", (1, 2), fallback=np.int64(2))
    s = Schema((c2, NumericColumn("x", 0, 1)))
    assert Schema.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: NumericColumn("x", 2, 1), "minimum 2.0 is above maximum 1.0"),
        (lambda: NumericColumn("x", float("nan"), 1), "finite"),
        (lambda: NumericColumn("x", 0, float("inf")), "finite"),
        (lambda: NumericColumn("x", "0", 1), "must be a number"),
        (lambda: NumericColumn("x", True, 1), "must be a number"),
        (lambda: NumericColumn("", 0, 1), "non-empty string"),
        (lambda: NumericColumn("x", 0, 1, integer="yes"), "integer must be"),  # type: ignore[arg-type]
        (lambda: CategoricalColumn("c", ()), "needs categories"),
        (lambda: CategoricalColumn("c", ("a", 1)), "mix types"),
        (lambda: CategoricalColumn("c", ("a", "a")), "'a' appears twice"),
        (lambda: CategoricalColumn("c", (1.5,)), "string, integer or boolean"),  # type: ignore[arg-type]
        (lambda: CategoricalColumn("c", ("a",), fallback="b"), "fallback 'b'"),
        (lambda: Schema(()), "at least one column"),
        (lambda: Schema((NumericColumn("x", 0, 1), NumericColumn("x", 0, 2))), "'x' appears twice"),
        (lambda: Schema((NumericColumn("x", 0, 1),), target="y"), "class column 'y' is not"),
        (
            lambda: Schema((NumericColumn("x", 0, 1), NumericColumn("z", 0, 1)), target="x"),
            "categorical",
        ),
        (lambda: Schema((CategoricalColumn("y", ("a",)),), target="y"), "at least one feature"),
        (lambda: Schema((NumericColumn("x", 0, 1),), source="made up"), "source"),  # type: ignore[arg-type]
        (lambda: Schema((NumericColumn("x", 0, 1),), version=2), "version 2"),
        (lambda: Schema(("x",)), "column objects"),  # type: ignore[arg-type]
    ],
)
def test_invalid_schemas_are_rejected(make, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SchemaError, match=match):
        make()


# -- JSON ----------------------------------------------------------------------------------


def test_json_layout_has_format_and_version() -> None:
    data = json.loads(_example().to_json())
    assert data["format"] == "threedgl.schema"
    assert data["version"] == 1
    assert data["target"] == "y"
    assert data["columns"][0] == {
        "name": "age",
        "kind": "numeric",
        "minimum": 0.0,
        "maximum": 100.0,
        "integer": True,
    }
    assert data["columns"][3]["categories"] == [1, 2, 3]
    assert data["columns"][4]["categories"] == [False, True]


@settings(max_examples=80, deadline=None)
@given(schemas())
def test_json_round_trip_is_exact(schema: Schema) -> None:
    """Schema -> JSON -> Schema gives an equal schema (floats, int/str/bool categories, target)."""
    text = schema.to_json()
    back = Schema.from_json(text)
    assert back == schema
    assert back.to_json() == text
    for a, b in zip(schema.columns, back.columns, strict=True):
        if isinstance(a, CategoricalColumn):
            assert isinstance(b, CategoricalColumn)
            assert [type(v) for v in a.categories] == [type(v) for v in b.categories]
    assert Schema.from_json(schema.to_json(indent=None)) == schema


def test_read_write_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = _example()
    path = tmp_path / "sub" / "schema.json"
    s.write(path)
    assert Schema.read(path) == s
    assert [p.name for p in path.parent.iterdir()] == ["schema.json"]  # no temp file left


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{bad", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"format": "other", "columns": []}', "not a threedgl schema"),
        ('{"columns": [], "extra": 1}', "unknown schema field"),
        ('{"columns": 3}', "'columns' must be a list"),
        ('{"columns": [{"name": "x", "kind": "numeric", "minimum": 0}]}', "'maximum' is required"),
        ('{"columns": [{"name": "x", "kind": "weird"}]}', "kind must be"),
        (
            '{"columns": [{"name": "x", "kind": "categorical", "categories": "ab"}]}',
            "must be a list",
        ),
        (
            '{"columns": [{"name": "x", "kind": "numeric", "minimum": 0, "maximum": 1, "lo": 1}]}',
            "unknown field",
        ),
        (
            '{"version": 99, "columns": [{"name": "x", "kind": "numeric", "minimum": 0, "maximum": 1}]}',
            "version 99",
        ),
        (
            '{"version": "1", "columns": [{"name": "x", "kind": "numeric", "minimum": 0, "maximum": 1}]}',
            "'version' must be an integer",
        ),
        (
            '{"target": 3, "columns": [{"name": "x", "kind": "numeric", "minimum": 0, "maximum": 1}]}',
            "'target' must be",
        ),
    ],
)
def test_bad_json_is_a_schema_error(text: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        Schema.from_json(text)


def test_read_missing_or_bad_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.read(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SchemaError, match=r"bad\.json"):
        Schema.read(bad)


# -- differences ----------------------------------------------------------------------------


def test_differences_name_the_difference() -> None:
    s = _example()
    assert s.differences(s) == [] and s.is_compatible(s)
    assert s.differences(dataclasses.replace(s, source="data")) == []  # source is ignored

    cols = list(s.columns)
    cols[1] = NumericColumn("fare", 0.0, 600.0)
    d = s.differences(Schema(tuple(cols), target="y"))
    assert len(d) == 1 and "'fare'" in d[0] and "512.5" in d[0] and "600.0" in d[0]

    cols = list(s.columns)
    cols[3] = CategoricalColumn("pclass", (1, 2))
    d = s.differences(Schema(tuple(cols), target="y"))
    assert len(d) == 1 and "'pclass'" in d[0] and "[1, 2, 3]" in d[0]

    cols = list(s.columns)
    cols[0] = NumericColumn("age", 0, 100, integer=False)
    assert "integer" in s.differences(Schema(tuple(cols), target="y"))[0]

    d = s.differences(s.with_target("sex"))
    assert any("class column 'y' vs 'sex'" in x for x in d)

    fewer = Schema(s.columns[1:], target="y")
    assert s.differences(fewer) == ["columns missing: age"]
    assert fewer.differences(s) == ["columns added: age"]

    swapped = Schema((s.columns[1], s.columns[0], *s.columns[2:]), target="y")
    assert s.differences(swapped) == ["columns in a different order"]
    assert not s.is_compatible(swapped)


# -- validate ----------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [1, 50, 99],
            "fare": [0.0, 10.5, 512.5],
            "sex": ["male", "female", "male"],
            "pclass": [1, 3, 2],
            "alone": [True, False, True],
            "y": ["yes", "no", "no"],
        }
    )


def test_validate_conforms_order_and_dtypes() -> None:
    s = _example()
    df = _frame()[["y", "sex", "pclass", "alone", "fare", "age"]]
    out = s.validate(df)
    assert list(out.columns) == list(s.names)
    assert out["age"].dtype == np.int64
    assert out["fare"].dtype == np.float64
    assert out["sex"].dtype == object
    assert out["pclass"].dtype == np.int64
    assert out["alone"].dtype == bool
    assert out["y"].tolist() == ["yes", "no", "no"]
    assert df.columns[0] == "y"  # input untouched


def test_validate_matches_categories_by_text() -> None:
    # a CSV can turn "1" into 1 or 1.0; the category matches whatever its spelling
    s = Schema((CategoricalColumn("c", ("1", "2")), CategoricalColumn("k", (1, 2))))
    df = pd.DataFrame({"c": [1.0, 2.0], "k": ["1", "2"]})
    out = s.validate(df)
    assert out["c"].tolist() == ["1", "2"] and out["k"].tolist() == [1, 2]
    assert out["k"].dtype == np.int64


def test_validate_numeric_text_and_out_of_range() -> None:
    s = Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", ("a", "b"))), target="y")
    out = s.validate(pd.DataFrame({"x": ["0.5", "7"], "y": ["a", "b"]}))
    assert out["x"].tolist() == [0.5, 7.0]  # kept here; the encoder clips
    with pytest.raises(SchemaError, match=r"column 'x' is numeric but holds text: 'abc' \(1 row"):
        s.validate(pd.DataFrame({"x": ["0.5", "abc"], "y": ["a", "b"]}))
    with pytest.raises(SchemaError, match="'x' holds infinite"):
        s.validate(pd.DataFrame({"x": [0.5, np.inf], "y": ["a", "b"]}))
    with pytest.raises(SchemaError, match="'x' is numeric in the schema but holds true/false"):
        s.validate(pd.DataFrame({"x": [True, False], "y": ["a", "b"]}))


def test_validate_errors_name_column_and_value() -> None:
    s = _example()
    df = _frame()
    with pytest.raises(SchemaError, match=r"column 'sex' holds 'other', not among its categories"):
        s.validate(df.assign(sex=["male", "other", "other"]))
    with pytest.raises(SchemaError, match=r"\(2 row\(s\)\)"):
        s.validate(df.assign(sex=["male", "other", "other"]))
    with pytest.raises(SchemaError, match="class column 'y' missing"):
        s.validate(df.drop(columns="y"))
    s.validate(df.drop(columns="y"), require_target=False)
    with pytest.raises(SchemaError, match=r"'age'.*missing from the table"):
        s.validate(df.drop(columns="age"))
    with pytest.raises(SchemaError, match="'extra' not in the schema"):
        s.validate(df.assign(extra=1))
    assert "extra" not in s.validate(df.assign(extra=1), extra_columns="drop").columns
    with pytest.raises(SchemaError, match="empty"):
        s.validate(df.iloc[:0])
    with pytest.raises(SchemaError, match="DataFrame"):
        s.validate(df.to_numpy())  # type: ignore[arg-type]


def test_validate_fallback_category() -> None:
    s = Schema((CategoricalColumn("c", ("a", "other"), fallback="other"), NumericColumn("x", 0, 1)))
    out = s.validate(pd.DataFrame({"c": ["a", "zzz"], "x": [0.1, 0.2]}))
    assert out["c"].tolist() == ["a", "other"]


def test_validate_nan_policy() -> None:
    s = _example()
    df = _frame().astype({"age": "float64"})
    df.loc[0, "age"] = np.nan
    df.loc[1, "age"] = np.nan
    df.loc[2, "sex"] = None
    with pytest.raises(SchemaError, match=r"column 'age' has 2 missing value\(s\) \(and 1 more"):
        s.validate(df)
    with pytest.raises(SchemaError, match="every row has a missing value"):
        s.validate(df, nan_policy="drop")
    df2 = _frame().astype({"fare": "float64"})
    df2.loc[1, "fare"] = np.nan
    out = s.validate(df2, nan_policy="drop")
    assert list(out.index) == [0, 2] and out["age"].dtype == np.int64
    with pytest.raises(SchemaError, match="nan_policy"):
        s.validate(df2, nan_policy="impute")  # type: ignore[arg-type]


def test_missing_value_is_reported_as_missing_not_as_text() -> None:
    s = Schema((NumericColumn("x", 0, 1), CategoricalColumn("c", ("a",))))
    with pytest.raises(SchemaError, match="'c' has 1 missing"):
        s.validate(pd.DataFrame({"x": [0.5, 0.5], "c": ["a", None]}))


# -- infer --------------------------------------------------------------------------------------


def test_infer_schema() -> None:
    df = _frame()
    s = infer_schema(df, target="y")
    assert s.source == "data" and s.target == "y"
    assert s["age"] == NumericColumn("age", 1, 99, integer=True)
    assert s["fare"] == NumericColumn("fare", 0.0, 512.5)
    assert s["sex"] == CategoricalColumn("sex", ("female", "male"))
    assert s["pclass"] == NumericColumn("pclass", 1, 3, integer=True)
    assert s["alone"] == CategoricalColumn("alone", (False, True))
    assert s.labels == ("no", "yes")
    s2 = infer_schema(df, target="y", categorical=["pclass"], integer=["fare"])
    assert s2["pclass"] == CategoricalColumn("pclass", (1, 2, 3))
    assert isinstance(s2["fare"], NumericColumn) and s2["fare"].integer
    # the inferred schema accepts its own data
    assert len(s.validate(df)) == 3


def test_infer_numeric_target_becomes_labels() -> None:
    s = infer_schema(pd.DataFrame({"x": [0.1, 0.2, 0.3], "y": [1, 0, 1]}), target="y")
    assert s.labels == (0, 1)


def test_infer_schema_errors() -> None:
    df = _frame()
    with pytest.raises(SchemaError, match="class column 'nope' is not in the table"):
        infer_schema(df, target="nope")
    with pytest.raises(SchemaError, match="'zzz' is not in the table"):
        infer_schema(df, categorical=["zzz"])
    with pytest.raises(SchemaError, match="empty"):
        infer_schema(df.iloc[:0])
    with pytest.raises(SchemaError, match="'e' has no values"):
        infer_schema(df.assign(e=np.nan))
    with pytest.raises(SchemaError, match="max_categories"):
        infer_schema(pd.DataFrame({"t": [str(i) for i in range(20)]}), max_categories=10)


def test_infer_mixed_values_become_strings() -> None:
    s = infer_schema(pd.DataFrame({"m": pd.Series([1, "a", 2], dtype=object), "x": [1, 2, 3]}))
    assert s["m"] == CategoricalColumn("m", ("1", "2", "a"))


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trip(tmp_path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    df = _frame()
    path = tmp_path / f"t{suffix}"
    write_table(df, path)
    back = read_table(path)
    assert back.shape == df.shape
    assert back["sex"].dtype == object
    s = infer_schema(df, target="y")
    pd.testing.assert_frame_equal(s.validate(back), s.validate(df))


def test_read_table_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ThreedglError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(ThreedglError, match="is not a file"):
        read_table(tmp_path)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(SchemaError, match="empty"):
        read_table(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(SchemaError, match="no rows"):
        read_table(tmp_path / "h.csv")
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(ThreedglError, match="unsupported file type"):
        read_table(tmp_path / "x.xlsx")
    (tmp_path / "g.parquet").write_text("garbage")
    with pytest.raises(ThreedglError, match="cannot read"):
        read_table(tmp_path / "g.parquet")
    with pytest.raises(ThreedglError, match="unsupported output type"):
        write_table(_frame(), tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_atomic_write_leaves_nothing_on_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "keep.txt"
    target.write_text("old")

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        atomic_write_text(target, Boom())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    # an OSError names the file asked for, not the temporary file
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "dir", "x")
    assert info.value.filename == str(tmp_path / "dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "keep.txt"]


def test_numeric_bounds_are_floats_in_json() -> None:
    s = Schema((NumericColumn("x", 1, 2),))
    raw = json.loads(s.to_json())["columns"][0]
    assert raw["minimum"] == 1.0 and isinstance(raw["minimum"], float)
    assert math.isclose(Schema.from_json(s.to_json())["x"].maximum, 2.0)  # type: ignore[union-attr]

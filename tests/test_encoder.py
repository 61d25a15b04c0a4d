"""The reversible encoder built from the schema alone (SPEC §2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_schema import schemas
from threedgl.errors import SchemaError
from threedgl.schema import CategoricalColumn, NumericColumn, Schema, Span, TableEncoder


def _schema() -> Schema:
    return Schema(
        (
            NumericColumn("age", 0, 100, integer=True),
            CategoricalColumn("sex", ("female", "male")),
            NumericColumn("fare", -1.0, 3.0),
            CategoricalColumn("y", ("no", "yes")),
            CategoricalColumn("pclass", (1, 2, 3)),
            CategoricalColumn("alone", (False, True)),
            NumericColumn("const", 5.0, 5.0),
        ),
        target="y",
    )


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [0, 37, 100],
            "sex": ["male", "female", "male"],
            "fare": [-1.0, 1.0, 3.0],
            "y": ["yes", "no", "no"],
            "pclass": [3, 1, 2],
            "alone": [True, False, False],
            "const": [5.0, 5.0, 5.0],
        }
    )


def test_layout_and_spans() -> None:
    enc = TableEncoder(_schema())
    assert enc.layout == [
        ("numeric", 0, 1),
        ("categorical", 1, 3),
        ("numeric", 3, 4),
        ("categorical", 4, 7),
        ("categorical", 7, 9),
        ("numeric", 9, 10),
    ]
    assert enc.n_outputs == 10
    assert enc.spans[1] == Span("sex", "categorical", 1, 3)
    assert enc.spans[3].width == 3
    assert "y" not in [s.name for s in enc.spans]  # class column is not encoded


def test_encode_values() -> None:
    enc = TableEncoder(_schema())
    x = enc.encode(_frame())
    assert x.dtype == np.float32 and x.shape == (3, 10)
    expected = np.array(
        [
            [0.0, 0, 1, 0.0, 0, 0, 1, 0, 1, 0.0],
            [0.37, 1, 0, 0.5, 1, 0, 0, 1, 0, 0.0],
            [1.0, 0, 1, 1.0, 0, 1, 0, 1, 0, 0.0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(x, expected, atol=1e-7)


def test_encode_clips_out_of_range_and_ignores_column_order() -> None:
    enc = TableEncoder(_schema())
    df = _frame()
    df["age"] = [-5, 50, 1000]
    df["fare"] = [-100.0, 1.0, 1e9]
    x = enc.encode(df[df.columns[::-1]])
    assert x[:, 0].tolist() == [0.0, 0.5, 1.0]
    assert x[:, 3].tolist() == [0.0, 0.5, 1.0]
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_encode_without_class_column_and_with_extra_columns() -> None:
    enc = TableEncoder(_schema())
    a = enc.encode(_frame())
    b = enc.encode(_frame().drop(columns="y").assign(note="ignored"))
    np.testing.assert_array_equal(a, b)


def test_encode_bad_input_names_column() -> None:
    enc = TableEncoder(_schema())
    with pytest.raises(SchemaError, match="column 'sex' holds 'x'"):
        enc.encode(_frame().assign(sex=["x", "male", "male"]))
    with pytest.raises(SchemaError, match="'fare' is numeric but holds text"):
        enc.encode(_frame().assign(fare=["a", "1", "2"]))
    df = _frame().astype({"fare": float})
    df.loc[0, "fare"] = np.nan
    with pytest.raises(SchemaError, match=r"'fare' has 1 missing"):
        enc.encode(df)
    assert enc.encode(df, nan_policy="drop").shape == (2, 10)
    with pytest.raises(SchemaError, match="needs a Schema"):
        TableEncoder("schema.json")  # type: ignore[arg-type]


def test_round_trip_fixed_example_with_labels() -> None:
    schema = _schema()
    enc = TableEncoder(schema)
    df = _frame()
    out = enc.decode(enc.encode(df), target_values=df["y"].to_numpy())
    assert list(out.columns) == list(schema.names)
    pd.testing.assert_frame_equal(out, schema.validate(df), check_exact=False, atol=1e-6)
    assert out["age"].dtype == np.int64
    assert out["pclass"].dtype == np.int64
    assert out["alone"].dtype == bool
    assert out["sex"].dtype == object
    assert out["y"].tolist() == ["yes", "no", "no"]
    # without target values: the feature columns, in schema order
    feats = enc.decode(enc.encode(df))
    assert list(feats.columns) == [c.name for c in schema.features]


def test_target_values_are_conformed_to_labels() -> None:
    schema = Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", (0, 1))), target="y")
    enc = TableEncoder(schema)
    out = enc.decode(np.zeros((2, 1)), target_values=["1", "0"])
    assert out["y"].tolist() == [1, 0] and out["y"].dtype == np.int64
    with pytest.raises(SchemaError, match=r"class label '2' is not among the labels \[0, 1\]"):
        enc.decode(np.zeros((2, 1)), target_values=["2", "0"])


def test_decode_non_one_hot_and_out_of_range() -> None:
    schema = Schema(
        (
            NumericColumn("n", 10, 20, integer=True),
            NumericColumn("f", -1, 1),
            CategoricalColumn("c", ("a", "b", "c")),
        )
    )
    enc = TableEncoder(schema)
    m = np.array(
        [
            [-0.5, 2.0, 0.1, 0.7, 0.2],  # below/above range; argmax -> b
            [0.26, -3.0, -5.0, -1.0, -2.0],  # rounding 12.6 -> 13; negative scores -> b
            [0.24, 0.5, 0.3, 0.3, 0.9],  # 12.4 -> 12; c
            [np.nan, np.nan, np.nan, 1.0, np.nan],  # NaN -> middle; NaN scores ignored
        ]
    )
    out = enc.decode(m)
    assert out["n"].tolist() == [10, 13, 12, 15]
    assert out["n"].dtype == np.int64
    assert out["f"].tolist() == [1.0, -1.0, 0.0, 0.0]
    assert out["c"].tolist() == ["b", "b", "c", "b"]


def test_decode_integer_with_fractional_bounds_stays_in_bounds() -> None:
    enc = TableEncoder(Schema((NumericColumn("n", 0.4, 2.6, integer=True),)))
    out = enc.decode(np.array([[0.0], [0.5], [1.0]]))
    assert out["n"].tolist() == [1, 2, 2]


def test_decode_sample() -> None:
    schema = Schema((CategoricalColumn("c", (True, False)), NumericColumn("x", 0, 1)))
    enc = TableEncoder(schema)
    n = 4000
    m = np.tile([0.25, 0.75, 0.5], (n, 1))
    out = enc.decode(m, categorical="sample", rng=np.random.default_rng(0))
    assert out["c"].dtype == bool
    assert abs(out["c"].mean() - 0.25) < 0.03
    same = enc.decode(m, categorical="sample", rng=np.random.default_rng(0))
    pd.testing.assert_frame_equal(out, same)
    # zero, negative or NaN scores: uniform; one positive score: always that one
    z = enc.decode(
        np.tile([-1.0, np.nan, 0.5], (n, 1)), categorical="sample", rng=np.random.default_rng(1)
    )
    assert abs(z["c"].mean() - 0.5) < 0.04
    one = enc.decode(
        np.tile([0.0, 3.0, 0.5], (100, 1)), categorical="sample", rng=np.random.default_rng(2)
    )
    assert not one["c"].any()


def test_decode_errors() -> None:
    enc = TableEncoder(_schema())
    with pytest.raises(SchemaError, match="10 columns, got shape"):
        enc.decode(np.zeros((2, 9)))
    with pytest.raises(SchemaError, match="10 columns"):
        enc.decode(np.zeros(10))
    with pytest.raises(SchemaError, match="needs a random generator"):
        enc.decode(np.zeros((2, 10)), categorical="sample")
    with pytest.raises(SchemaError, match="'argmax' or 'sample'"):
        enc.decode(np.zeros((2, 10)), categorical="max")  # type: ignore[arg-type]


@st.composite
def schema_and_table(draw: st.DrawFn) -> tuple[Schema, pd.DataFrame]:
    schema = draw(schemas())
    n = draw(st.integers(1, 12))
    data: dict[str, list[object]] = {}
    for col in schema.columns:
        if isinstance(col, NumericColumn):
            if col.integer:
                values = st.integers(int(col.minimum), int(col.maximum))
            else:
                values = st.floats(col.minimum, col.maximum, allow_nan=False)
        else:
            values = st.sampled_from(col.categories)
        data[col.name] = draw(st.lists(values, min_size=n, max_size=n))
    return schema, pd.DataFrame(data)


@settings(max_examples=80, deadline=None)
@given(schema_and_table())
def test_decode_encode_round_trip(case: tuple[Schema, pd.DataFrame]) -> None:
    """decode(encode(df)) gives back the table.

    Categorical columns (str, int and bool categories) and integer columns come back
    exactly, with the schema's dtypes and column order. Real-valued columns come back
    within 1e-6 of the column's range (``1e-6 * (max - min)``): the encoding is float32 in
    [0, 1], whose resolution is about 6e-8. (Integer columns are exact because the
    generated ranges are narrower than 2**23; wider ranges cannot be exact in float32.)
    A column with ``min == max`` decodes to that value.
    """
    schema, df = case
    enc = TableEncoder(schema)
    x = enc.encode(df)
    assert x.dtype == np.float32 and x.shape == (len(df), enc.n_outputs)
    assert np.all((x >= 0) & (x <= 1))
    for kind, start, stop in enc.layout:
        if kind == "categorical":
            np.testing.assert_array_equal(x[:, start:stop].sum(axis=1), 1.0)
    target = df[schema.target].to_numpy() if schema.target else None
    out = enc.decode(x, target_values=target)
    expected = schema.validate(df, require_target=target is not None)
    assert list(out.columns) == list(expected.columns)
    for col in schema.columns:
        got, want = out[col.name], expected[col.name]
        assert got.dtype == want.dtype, col.name
        if isinstance(col, NumericColumn) and not col.integer:
            tol = 1e-6 * (col.maximum - col.minimum)
            assert np.all(np.abs(got.to_numpy() - want.to_numpy()) <= tol), col.name
        else:
            assert got.tolist() == want.tolist(), col.name
            assert [type(v) for v in got.tolist()] == [type(v) for v in want.tolist()]

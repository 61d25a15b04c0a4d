"""Reading and preparing the bundled raw files (SPEC §7).

Every preparation reads only the gzip copies in ``threedgl/datasets/data/`` (package
data), and returns a frame whose columns follow one convention:

* integer-valued numeric columns are ``int64``, real-valued ones ``float64``;
* categorical columns, and the class column, hold Python ``str`` values in ``object``
  dtype (not the pandas 3 ``str`` dtype, so behaviour is the same under pandas 2 and 3);
* the class column is always the last column; there are no missing values.

Prepared frames are cached per process by :func:`prepare`; callers must copy them
before handing them out (``threedgl.datasets.load`` does).
"""

from __future__ import annotations

import functools
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd

DATA_PACKAGE = "threedgl.datasets"
DATA_DIR = "data"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one bundled dataset."""

    name: str
    target: str
    positive_label: str
    description: str
    source: str
    files: tuple[str, ...]
    build: Callable[[], pd.DataFrame]
    #: Numeric columns whose schema declares ``scale="log"``: public knowledge that they are
    #: heavily right-skewed (money amounts), so binned generators cut them in log steps.
    log_scale: tuple[str, ...] = ()


def _open(filename: str) -> io.BytesIO:
    """The decompressed content of one bundled raw file (all are small: < 7 MB)."""
    path = resources.files(DATA_PACKAGE).joinpath(DATA_DIR, filename)
    return io.BytesIO(gzip.decompress(path.read_bytes()))


def _as_object(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Make ``columns`` hold plain Python strings in ``object`` dtype."""
    for col in columns:
        frame[col] = frame[col].map(str).astype(object)
    return frame


# --------------------------------------------------------------------------- Titanic

TITANIC_FEATURES = ["pclass", "sex", "age", "sibsp", "parch", "fare", "embarked"]


def _titanic() -> pd.DataFrame:
    dtypes: dict[str, Any] = {
        "pclass": "int64",
        "survived": "int64",
        "sex": object,
        "age": "float64",
        "sibsp": "int64",
        "parch": "int64",
        "fare": "float64",
        "embarked": object,
    }
    with _open("titanic3.csv.gz") as fh:
        raw = pd.read_csv(
            fh,
            dtype=dtypes,
            keep_default_na=False,
            na_values={"age": [""], "fare": [""], "embarked": [""]},
            usecols=[*TITANIC_FEATURES, "survived"],
        )
    frame = raw[[*TITANIC_FEATURES, "survived"]].copy()
    frame["age"] = frame["age"].fillna(frame["age"].median()).astype("float64")
    frame["fare"] = frame["fare"].fillna(frame["fare"].median()).astype("float64")
    embarked_mode = frame["embarked"].dropna().mode().iloc[0]
    frame["embarked"] = frame["embarked"].fillna(embarked_mode)
    # pclass is a ticket class with three levels: treated as categorical ("1", "2",
    # "3") so generators emit only valid classes. Under the paper's evaluation encoding
    # (label codes, then min-max) it encodes exactly as the integer would.
    frame = _as_object(frame, ["pclass", "sex", "embarked", "survived"])
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------- Breast Cancer

_WDBC_MEASURES = [
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
]
WDBC_FEATURES = [f"{m}_{s}" for s in ("mean", "se", "worst") for m in _WDBC_MEASURES]


def _breast_cancer() -> pd.DataFrame:
    names = ["id", "diagnosis", *WDBC_FEATURES]
    dtypes: dict[str, Any] = {c: "float64" for c in WDBC_FEATURES}
    dtypes["id"] = "int64"
    dtypes["diagnosis"] = object
    with _open("wdbc.data.gz") as fh:
        raw = pd.read_csv(fh, header=None, names=names, dtype=dtypes, keep_default_na=False)
    frame = raw[[*WDBC_FEATURES, "diagnosis"]].copy()
    frame = _as_object(frame, ["diagnosis"])
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------- Mushrooms

MUSHROOM_FEATURES = [
    "cap-shape",
    "cap-surface",
    "cap-color",
    "bruises",
    "odor",
    "gill-attachment",
    "gill-spacing",
    "gill-size",
    "gill-color",
    "stalk-shape",
    "stalk-root",
    "stalk-surface-above-ring",
    "stalk-surface-below-ring",
    "stalk-color-above-ring",
    "stalk-color-below-ring",
    "veil-type",
    "veil-color",
    "ring-number",
    "ring-type",
    "spore-print-color",
    "population",
    "habitat",
]


def _mushrooms() -> pd.DataFrame:
    names = ["class", *MUSHROOM_FEATURES]
    with _open("agaricus-lepiota.data.gz") as fh:
        # '?' (stalk-root unknown) is kept as its own category: no NA parsing at all.
        raw = pd.read_csv(fh, header=None, names=names, dtype=object, keep_default_na=False)
    frame = raw[[*MUSHROOM_FEATURES, "class"]].copy()
    frame = _as_object(frame, [*MUSHROOM_FEATURES, "class"])
    return frame.reset_index(drop=True)


# ----------------------------------------------------------------------------- Adult

ADULT_FEATURES = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
]
ADULT_INTEGER = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
ADULT_CATEGORICAL = [c for c in ADULT_FEATURES if c not in ADULT_INTEGER]


def _read_adult(filename: str, skiprows: int) -> pd.DataFrame:
    names = [*ADULT_FEATURES, "income"]
    with _open(filename) as fh:
        # Read everything as text first: '?' rows would break integer parsing.
        raw = pd.read_csv(
            fh,
            header=None,
            names=names,
            dtype=object,
            keep_default_na=False,
            skiprows=skiprows,
            skip_blank_lines=True,
        )
    return raw


def _adult() -> pd.DataFrame:
    # adult.test starts with the junk line "|1x3 Cross validator".
    raw = pd.concat(
        [_read_adult("adult.data.gz", 0), _read_adult("adult.test.gz", 1)], ignore_index=True
    )
    for col in raw.columns:
        raw[col] = raw[col].map(lambda v: str(v).strip()).astype(object)
    # adult.test labels end with '.' ("<=50K.", ">50K.").
    raw["income"] = raw["income"].map(lambda v: v.rstrip(".")).astype(object)
    raw = raw[~(raw == "?").any(axis=1)]
    frame = raw[[*ADULT_FEATURES, "income"]].copy()
    for col in ADULT_INTEGER:
        frame[col] = frame[col].astype("int64")
    frame = _as_object(frame, [*ADULT_CATEGORICAL, "income"])
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------- Wine Quality

WINE_FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]


def _read_wine(color: str) -> pd.DataFrame:
    dtypes: dict[str, Any] = {c: "float64" for c in WINE_FEATURES}
    dtypes["quality"] = "int64"
    with _open(f"winequality-{color}.csv.gz") as fh:
        raw = pd.read_csv(fh, sep=";", dtype=dtypes)
    # Duplicates are dropped within each colour, on all 12 columns (quality included).
    raw = raw.drop_duplicates()
    frame = raw[WINE_FEATURES].copy()
    frame["color"] = color
    return frame


def _wine_quality() -> pd.DataFrame:
    frame = pd.concat([_read_wine("red"), _read_wine("white")], ignore_index=True)
    frame = _as_object(frame, ["color"])
    return frame.reset_index(drop=True)


# -------------------------------------------------------------------------- Registry

UCI = "UCI Machine Learning Repository (CC BY 4.0)"

DATASETS: dict[str, DatasetInfo] = {
    "titanic": DatasetInfo(
        name="titanic",
        target="survived",
        positive_label="1",
        description=(
            "Titanic passengers (titanic3): class, sex, age, siblings/spouses, "
            "parents/children, fare and port of embarkation; did the passenger survive."
        ),
        source=(
            "titanic3 data set, Vanderbilt University Department of Biostatistics "
            "(Frank E. Harrell Jr., Thomas Cason)"
        ),
        files=("titanic3.csv.gz",),
        build=_titanic,
        log_scale=("fare",),
    ),
    "breast-cancer": DatasetInfo(
        name="breast-cancer",
        target="diagnosis",
        positive_label="B",
        description=(
            "Breast Cancer Wisconsin (Diagnostic): 30 features of cell nuclei from "
            "fine-needle aspirate images; benign (B) or malignant (M)."
        ),
        source=f"Wolberg, Mangasarian, Street, Street (1993), {UCI}, doi:10.24432/C5DW2B",
        files=("wdbc.data.gz",),
        build=_breast_cancer,
    ),
    "mushrooms": DatasetInfo(
        name="mushrooms",
        target="class",
        positive_label="p",
        description=(
            "Mushroom (Agaricus and Lepiota): 22 categorical attributes of gilled "
            "mushrooms; edible (e) or poisonous (p)."
        ),
        source=f"Audubon Society Field Guide to North American Mushrooms (1981), {UCI}, doi:10.24432/C5959T",
        files=("agaricus-lepiota.data.gz",),
        build=_mushrooms,
    ),
    "adult": DatasetInfo(
        name="adult",
        target="income",
        positive_label=">50K",
        description=(
            "Adult (Census Income, 1994 US census extract): 14 demographic and "
            "employment attributes; income above 50K a year (>50K) or not (<=50K)."
        ),
        source=f"Becker, Kohavi (1996), {UCI}, doi:10.24432/C5XW20",
        files=("adult.data.gz", "adult.test.gz"),
        build=_adult,
        log_scale=("capital-gain", "capital-loss"),
    ),
    "wine-quality": DatasetInfo(
        name="wine-quality",
        target="color",
        positive_label="red",
        description=(
            "Wine Quality (vinho verde): 11 physico-chemical measurements of red and "
            "white wines; the class is the colour (quality is excluded)."
        ),
        source=f"Cortez, Cerdeira, Almeida, Matos, Reis (2009), {UCI}, doi:10.24432/C56S3T",
        files=("winequality-red.csv.gz", "winequality-white.csv.gz"),
        build=_wine_quality,
    ),
}


@functools.cache
def prepare(name: str) -> pd.DataFrame:
    """The prepared frame of dataset ``name`` (cached; do not mutate, copy it)."""
    return DATASETS[name].build()

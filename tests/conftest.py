"""Shared fixtures: small real generators trained once per session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")  # reproducible 'created' fields


@pytest.fixture(autouse=True)
def _private_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real budget ledger."""
    monkeypatch.setenv("THREEDGL_LEDGER", str(tmp_path / "ledger.json"))


@pytest.fixture(scope="session")
def titanic():  # type: ignore[no-untyped-def]
    from threedgl import datasets

    return datasets.load("titanic")


@pytest.fixture
def small(titanic, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """Titanic's first 300 rows as a CSV file and its schema file."""
    data, schema = tmp_path / "t.csv", tmp_path / "s.json"
    titanic.frame.head(300).to_csv(data, index=False)
    titanic.schema.write(schema)
    return data, schema


@pytest.fixture(scope="session")
def titanic_generator(titanic):  # type: ignore[no-untyped-def]
    from threedgl import DDPBetaVAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DDPBetaVAE.from_preset("titanic", epochs=2, random_state=0).fit(
            titanic.frame, target=titanic.target, schema=titanic.schema
        )


@pytest.fixture(scope="session")
def titanic_file(titanic_generator, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("gen") / "titanic.3dgl"
    titanic_generator.save(path)
    return path

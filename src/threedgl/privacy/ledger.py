"""A local privacy budget ledger: what every training has spent on each private table.

Each ``3dgl train`` records, under the table's fingerprint (a sha256 of its content), the
privacy records of the generator it wrote. Trainings on the same table compose: the
ledger's total is computed by the accountant over all of them (sequential composition
across trainings; within one training the classes are disjoint, so a row of class L is
touched by the class-L model of each training). A budget can be set per table or for all
tables; a training that would take a table's total above it is refused unless forced,
and refused *before* its generator file is written, so nothing is released.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from threedgl.errors import PrivacyError
from threedgl.privacy.record import PrivacyRecord, compose_epsilon

LEDGER_ENV = "THREEDGL_LEDGER"
DEFAULT_LEDGER = Path("~/.threedgl/ledger.json")
ALL_TABLES = "*"


F = TypeVar("F", bound=Callable[..., Any])

#: Set (to anything) while experiments on public data run: fits are not recorded.
SUSPENDED_ENV = "THREEDGL_LEDGER_SUSPENDED"


def fingerprint(df: pd.DataFrame) -> str:
    """A sha256 of a table's content, independent of its file, row order and column order.

    The column names (sorted), then the sorted 64-bit hashes of the rows: the same rows
    shuffled, or the same columns reordered, are the same table.
    """
    return fingerprints(df, legacy=False)[0]


def legacy_fingerprint(df: pd.DataFrame) -> str:
    """The fingerprint of ledgers written before row order stopped mattering."""
    legacy = fingerprints(df, legacy=True)[1]
    assert legacy is not None
    return legacy


def fingerprints(df: pd.DataFrame, *, legacy: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> tuple[str, str | None]:
    """:func:`fingerprint` and (if ``legacy``) :func:`legacy_fingerprint` in one pass.

    Both hash every row's values as text (``df.astype(str)``, then pandas'
    ``hash_pandas_object``). Computed here one column at a time: each distinct value of a
    column is turned into text and hashed once, its hash spread to the rows; the row hashes
    are combined column by column as ``hash_pandas_object`` combines a frame's (same
    value), without a text copy of the table. ``progress(done, total)`` counts columns.
    """
    names = [str(c) for c in df.columns]
    n = len(df)
    sorted_cols = sorted(range(len(names)), key=lambda i: names[i])
    combined = _RowHashes(n, len(names))
    in_order = _RowHashes(n, len(names)) if legacy else None
    hashes: dict[int, np.ndarray] = {}  # the legacy order's columns hashed ahead of it
    for done, i in enumerate(sorted_cols):
        hashes[i] = _column_hashes(df.iloc[:, i])
        combined.add(hashes[i] if in_order is not None else hashes.pop(i))
        while in_order is not None and in_order.count in hashes:
            in_order.add(hashes.pop(in_order.count))
        if progress is not None:
            progress(done + 1, len(names))
    h = hashlib.sha256(b"threedgl.table.v2")
    h.update(json.dumps([names[i] for i in sorted_cols]).encode())
    h.update(np.sort(combined.result()).tobytes())
    old = None
    if in_order is not None:
        h_old = hashlib.sha256()
        h_old.update(json.dumps(names).encode())
        h_old.update(in_order.result().tobytes())
        old = h_old.hexdigest()
    return h.hexdigest(), old


def _column_hashes(column: pd.Series) -> np.ndarray:
    """``hash_pandas_object(column.astype(str), index=False)``, from its distinct values."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=column.dtype
                     if not isinstance(column.dtype, pd.CategoricalDtype) else object)
    hashed = pd.util.hash_pandas_object(text.astype(str), index=False).to_numpy()
    return hashed[codes]


class _RowHashes:
    """Row hashes of a frame's columns, combined as pandas' ``combine_hash_arrays`` does
    for ``hash_pandas_object(frame)`` (columns added in the frame's order)."""

    def __init__(self, n_rows: int, n_columns: int) -> None:
        self.out = np.full(n_rows, 0x345678, dtype=np.uint64)
        self.mult = np.uint64(1000003)
        self.n_columns, self.count = n_columns, 0

    def add(self, hashes: np.ndarray) -> None:
        inverse = self.n_columns - self.count
        self.out ^= hashes
        self.out *= self.mult
        self.mult += np.uint64(82520 + inverse + inverse)
        self.count += 1

    def result(self) -> np.ndarray:
        return self.out + np.uint64(97531)


_SUSPENDED_LOCK = threading.Lock()
_SUSPENDED_DEPTH = 0
_SUSPENDED_BEFORE: str | None = None


@contextmanager
def suspended() -> Iterator[None]:
    """Do not record fits in the ledger meanwhile (child processes included).

    For experiments on the bundled public datasets (reproduction, simulation), which are
    not private tables and would otherwise fill the ledger with thousands of entries.
    """
    global _SUSPENDED_DEPTH, _SUSPENDED_BEFORE
    with _SUSPENDED_LOCK:  # threads of one process: the outermost block sets and restores
        if _SUSPENDED_DEPTH == 0:
            _SUSPENDED_BEFORE = os.environ.get(SUSPENDED_ENV)
            os.environ[SUSPENDED_ENV] = "1"
        _SUSPENDED_DEPTH += 1
    try:
        yield
    finally:
        with _SUSPENDED_LOCK:
            _SUSPENDED_DEPTH -= 1
            if _SUSPENDED_DEPTH == 0:
                if _SUSPENDED_BEFORE is None:
                    os.environ.pop(SUSPENDED_ENV, None)
                else:
                    os.environ[SUSPENDED_ENV] = _SUSPENDED_BEFORE


def unrecorded(func: F) -> F:
    """``func`` runs :func:`suspended`: an experiment driver (simulation, reproduction)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with suspended():
            return func(*args, **kwargs)

    return cast(F, wrapper)


def ledger_for_fit(ledger: str | os.PathLike[str] | bool | None) -> Ledger | None:
    """The ledger a Python ``fit`` records to: ``None`` or True the default one, a path that
    file, False none; none either while :func:`suspended`."""
    if ledger is False or os.environ.get(SUSPENDED_ENV):
        return None
    return Ledger.open(None if ledger is None or ledger is True else ledger)


@dataclass
class Ledger:
    """The ledger file: entries and budgets. Writes are atomic."""

    path: Path
    entries: list[dict[str, Any]]
    budgets: dict[str, float]

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Ledger:
        p = Path(path or os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER).expanduser()
        if not p.exists():
            return cls(p, [], {})
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            entries = list(data["entries"])
            budgets = {str(k): float(v) for k, v in data.get("budgets", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PrivacyError(f"ledger '{p}' is unreadable: {exc}") from None
        return cls(p, entries, budgets)

    def save(self) -> None:
        from threedgl.schema.io import atomic_write_text

        data = {"version": 1, "budgets": self.budgets, "entries": self.entries}
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n", private=True)

    # -- queries --------------------------------------------------------------------------
    def budget(self, table: str) -> float:
        return self.budgets.get(table, self.budgets.get(ALL_TABLES, math.inf))

    def entries_for(self, table: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["fingerprint"] == table]

    def total(self, table: str, extra: dict[str, Any] | None = None) -> tuple[float, float]:
        """(ε, δ) of every private training on ``table`` composed (plus ``extra``, a
        prospective entry). A training with ε = ∞ (no DP) spends nothing: it is not
        counted (its file protects nothing and says so; ``3dgl train`` warns)."""
        entries = self.entries_for(table) + ([extra] if extra else [])
        return compose_entries([e for e in entries if counted(e)])

    def tables(self) -> list[str]:
        seen: list[str] = []
        for e in self.entries:
            if e["fingerprint"] not in seen:
                seen.append(e["fingerprint"])
        return seen

    # -- updates --------------------------------------------------------------------------
    def check(
        self, table: str, *, epsilon: float, delta: float, accountant: str, force: bool = False
    ) -> None:
        """Refuse before training if the table's budget is already spent, or if the ε asked
        for alone exceeds it (composition only adds to it). Without a budget, never."""
        limit = self.budget(table)
        if force or math.isinf(limit):
            return
        spent, _ = self.total(table)
        if spent >= limit:
            raise PrivacyError(
                f"the privacy budget of this table is spent: ε = {spent:.3f} of {limit:g} "
                f"(ledger {self.path}); use --force to train anyway"
            )
        if math.isfinite(epsilon) and epsilon > limit:
            raise PrivacyError(
                f"ε = {epsilon:g} asked for is above this table's budget of {limit:g} "
                f"(ledger {self.path}); nothing was trained. Ask for a smaller epsilon, or "
                "use --force to train anyway"
            )

    def entry(self, table: str, manifest: dict[str, Any], source: str = "") -> dict[str, Any]:
        return {
            "fingerprint": table,
            "source": source,
            "recorded": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "generator": manifest["generator"],
            "target": manifest["schema"].get("target"),
            "weights_sha256": manifest.get("weights_sha256"),
            "models": [{"label": m["label"], "privacy": m["privacy"]} for m in manifest["models"]],
        }

    def planned_entry(self, table: str, generator: str, target: str | None,
                      models: list[tuple[Any, PrivacyRecord]]) -> dict[str, Any]:
        """The entry a training will record, from its class models' privacy records (known
        once the noise is calibrated, before any step): what :meth:`check_entry` needs."""
        return {"fingerprint": table, "generator": generator, "target": target,
                "models": [{"label": label, "privacy": r.to_dict()} for label, r in models]}

    def check_entry(self, entry: dict[str, Any], force: bool = False,
                    planned: bool = False) -> None:
        """Refuse (before anything is released) if ``entry`` would exceed the budget;
        ``planned``: before the training ran (the entry from :meth:`planned_entry`)."""
        table = entry["fingerprint"]
        if force or not counted(entry):
            return
        total, _ = self.total(table, entry)
        limit = self.budget(table)
        if total > limit:
            done = ("it was refused before training; nothing was trained or written. Ask for "
                    "a smaller epsilon, or use --force to train anyway" if planned else
                    "nothing was written. Use --force to release it anyway")
            raise PrivacyError(
                f"this training would bring the table's total to ε = {total:.3f}, above its "
                f"budget of {limit:g} (ledger {self.path}); {done}"
            )

    def identify(self, df: pd.DataFrame,
                 progress: Callable[[int, int], None] | None = None) -> str:
        """The table's :func:`fingerprint`, after filing any entries recorded under its
        legacy fingerprint under it (:meth:`adopt`). The legacy fingerprint is computed only
        when the ledger has entries to adopt from."""
        table, legacy = fingerprints(df, legacy=bool(self.entries), progress=progress)
        if legacy is not None:
            self.adopt(legacy, table)
        return table

    def adopt(self, legacy: str, table: str) -> None:
        """File the entries recorded under a table's legacy fingerprint under ``table``."""
        moved = [e for e in self.entries if e["fingerprint"] == legacy and legacy != table]
        for e in moved:
            e["fingerprint"] = table
        if moved:
            self.save()

    def record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.save()


def counted(entry: dict[str, Any]) -> bool:
    """Whether an entry spends budget: every training with DP does, ε = ∞ does not."""
    return all(math.isfinite(float(m["privacy"]["epsilon"])) for m in entry["models"])


def _records(entry: dict[str, Any]) -> list[tuple[Any, PrivacyRecord]]:
    return [(m["label"], PrivacyRecord.from_dict(m["privacy"])) for m in entry["models"]]


def compose_entries(
    entries: list[dict[str, Any]], accountant: str | None = None
) -> tuple[float, float]:
    """ε, δ of several trainings on one table, composed by their accountant.

    A row of class L is touched by the class-L model of every training with the same class
    column, and by every model of a training without one. When trainings used different
    class columns the grouping is unknown and every record is composed (an upper bound).
    """
    if not entries:
        return 0.0, 0.0
    per_entry = [_records(e) for e in entries]
    all_records = [r for recs in per_entry for _, r in recs]
    accountants = {r.accountant for r in all_records}
    if accountant is None:  # the server passes "rdp": its cost does not grow with steps
        accountant = "rdp" if "rdp" in accountants or len(accountants) > 1 else accountants.pop()
    # RDP composition gives (ε(δ), δ) for the δ asked; every training here used δ or less.
    delta = max(r.delta for r in all_records)
    if any(math.isinf(r.epsilon) for r in all_records):
        return math.inf, delta
    targets = {e.get("target") for e in entries if e.get("target") is not None}
    if len(targets) > 1:
        return compose_epsilon(all_records, max(r.delta for r in all_records), accountant), delta
    labels = {repr(lab) for recs in per_entry for lab, _ in recs if lab is not None} or {"None"}
    worst = 0.0
    for label in labels:
        group = [r for recs in per_entry for lab, r in recs if lab is None or repr(lab) == label]
        worst = max(worst, compose_epsilon(group, max(r.delta for r in group), accountant))
    return worst, delta

"""Reading and writing tables (CSV, Parquet) with clear errors, and atomic file writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from threedgl.errors import SchemaError, ThreedglError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


#: Rows of a CSV read at a time by ``read_table(compact=True)``.
CHUNK_ROWS = 100_000


def read_table(path: str | os.PathLike[str], encoding: str | None = None, *,
               compact: bool = False,
               progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file; text columns come back with ``object`` dtype.

    ``encoding`` is the CSV's text encoding (default UTF-8); a file that is not in it is
    refused naming its first bad line and the ``--encoding`` option.

    ``compact``: text columns come back as pandas ``category`` columns instead (a code per
    row and each distinct value once: what a table of millions of rows needs), the CSV
    read :data:`CHUNK_ROWS` rows at a time with ``progress(bytes_read, file_size)`` after
    each. The values are those of the plain read (a column numeric in some chunks and text
    in others comes back as ``object``, as pandas gives it).
    """
    p = Path(path)
    if encoding is not None:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ThreedglError(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, "
                                "cp1252)") from None
    if not p.exists():
        raise ThreedglError(f"file '{p}' does not exist")
    if not p.is_file():
        raise ThreedglError(f"'{p}' is not a file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif (suffix in (".csv", ".txt", ".gz") or suffix == "") and compact:
            df = _read_csv_chunked(p, encoding or "utf-8", progress)
        elif suffix in (".csv", ".txt", ".gz") or suffix == "":
            df = pd.read_csv(p, encoding=encoding or "utf-8")
        else:
            raise ThreedglError(
                f"'{p}': unsupported file type '{suffix}' (use {', '.join(TABLE_SUFFIXES)})"
            )
    except pd.errors.EmptyDataError:
        raise SchemaError(f"'{p}' is empty (no header, no rows)") from None
    except UnicodeDecodeError as exc:
        raise ThreedglError(_not_encoded(p, encoding or "utf-8", exc)) from None
    except pd.errors.ParserError as exc:
        raise SchemaError(f"'{p}' is not a valid CSV file: {str(exc).splitlines()[0]}") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ThreedglError):
            raise
        raise ThreedglError(f"cannot read '{p}': {str(exc).splitlines()[0]}") from None
    if len(df) == 0:
        raise SchemaError(f"'{p}' has no rows")
    for name in df.columns:
        dtype = df[name].dtype
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        if not compact:
            df[name] = df[name].astype(object)
        elif not isinstance(dtype, pd.CategoricalDtype):
            df[name] = _categorical(df[name])
    return df


def _categorical(column: pd.Series) -> pd.Series:
    """A text column as a ``category`` column of the same values (object categories)."""
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    cats = pd.Index(np.asarray(uniques, dtype=object), dtype=object)
    return pd.Series(pd.Categorical.from_codes(codes, categories=cats), index=column.index,
                     name=column.name)


def _read_csv_chunked(p: Path, encoding: str,
                      progress: Callable[[int, int], None] | None) -> pd.DataFrame:
    """A CSV read :data:`CHUNK_ROWS` rows at a time, text columns kept as categories."""
    size = p.stat().st_size
    parts: dict[str, list[pd.Series]] = {}
    with open(p, "rb") as raw:
        reader = pd.read_csv(raw, encoding=encoding, chunksize=CHUNK_ROWS,
                             compression="gzip" if p.suffix.lower() == ".gz" else None)
        with reader:
            for chunk in reader:
                for name in chunk.columns:
                    col = chunk[name]
                    numeric = (pd.api.types.is_numeric_dtype(col.dtype)
                               or pd.api.types.is_bool_dtype(col.dtype))
                    parts.setdefault(name, []).append(col if numeric else _categorical(col))
                if progress is not None:
                    progress(min(raw.tell(), size), size)
    if not parts:
        return pd.DataFrame()
    return pd.DataFrame({name: _joined(chunks) for name, chunks in parts.items()})


def _joined(chunks: list[pd.Series]) -> pd.Series:
    """One column from its chunks, as pandas joins the chunks of one read: numbers of one
    kind stay numbers (ints and floats: floats), categories stay categories, a mix of
    numbers and text becomes ``object``."""
    if any(isinstance(c.dtype, pd.CategoricalDtype) for c in chunks):
        # a chunk with no value at all is read as floats: as categories, it is the same NaN
        chunks = [_categorical(c) if c.isna().all() else c for c in chunks]
    kinds = {isinstance(c.dtype, pd.CategoricalDtype) for c in chunks}
    if kinds == {True}:
        joined = union_categoricals([c.array for c in chunks])  # type: ignore[arg-type]
        return pd.Series(joined, name=chunks[0].name)
    if kinds == {False}:
        return pd.concat(chunks, ignore_index=True)
    return pd.concat([c.astype(object) for c in chunks], ignore_index=True)


def _not_encoded(p: Path, encoding: str, exc: UnicodeDecodeError) -> str:
    """The first line of ``p`` that is not valid ``encoding``, for the error message."""
    where = f"the byte 0x{exc.object[exc.start:exc.start + 1].hex()}"
    if p.suffix.lower() != ".gz":  # a compressed file's lines are not its bytes' lines
        with open(p, "rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as bad:
                    where = f"line {line_no} holds the byte 0x{raw[bad.start:bad.start + 1].hex()}"
                    break
    return (f"'{p}' is not {encoding} text: {where}; pass its encoding, e.g. "
            "--encoding latin-1 (or cp1252)")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, private: bool = False,
                **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success, rename it over ``path``.

    Nothing half-written is ever left at ``path``: on any error the temporary file is
    removed and ``path`` is untouched. The file gets the mode a new file gets (0666 less
    the umask, as ``open`` gives), or 0600 when ``private`` (the ledger).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        if not private:
            os.fchmod(fd, 0o666 & ~_umask())
    except OSError as exc:
        raise _about(exc, target) from None
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _about(exc, target) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (threads)."""
    with contextlib.suppress(OSError, ValueError), \
            open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _about(exc: OSError, target: Path) -> OSError:
    """The same kind of OSError, naming the file the user asked for (not a temporary)."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(target))


def atomic_write_text(path: str | os.PathLike[str], text: str, *, private: bool = False) -> None:
    with atomic_open(path, "w", encoding="utf-8", private=private) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table as CSV or Parquet (by suffix), atomically."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        with atomic_open(p, "wb") as fh:
            df.to_parquet(fh, index=False)
    elif suffix == ".csv":
        with atomic_open(p, "w", encoding="utf-8", newline="") as fh:
            df.to_csv(fh, index=False)
    else:
        raise ThreedglError(f"'{p}': unsupported output type '{suffix}' (use .csv or .parquet)")

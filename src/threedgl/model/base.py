"""What every generator shares: fitting per class, sampling, the artifact, the statement.

A generator is a scikit-learn style estimator: ``__init__`` only stores parameters,
``fit`` splits the rows by class and trains one private model per class, learned
attributes end in ``_``. Subclasses implement three hooks:

* ``_fit_classes(groups, encoder, progress, planned)`` trains on the encoded rows of each
  class (:class:`~threedgl.schema.rows.EncodedRows`) and returns one :class:`PrivacyRecord`
  per class (the only place that touches private data); it calls ``planned(kept,
  records)`` with what it will spend once its noise is calibrated, before any DP step, so
  the ledger can refuse a fit before it runs;
* ``_sample_class(k, n, rng)`` returns ``n`` encoded rows of class ``k`` (post-processing);
* ``_state()`` / ``_restore(architecture, tensors)`` move the released state to and from
  an artifact.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from threedgl.apportion import class_counts
from threedgl.artifact import (
    Artifact,
    read_artifact,
    write_artifact,
    write_artifact_bytes,
)
from threedgl.artifact.manifest import ClassModel, build_manifest, read_manifest
from threedgl.artifact.statement import privacy_statement, statement_disagreement
from threedgl.errors import (
    ArtifactError,
    NotFittedError,
    PrivacyWarning,
    SchemaError,
    ThreedglError,
    check_int,
)
from threedgl.model.progress import (
    BudgetCheck,
    PlannedCheck,
    ProgressCallback,
    stage_callback,
)
from threedgl.privacy.record import PrivacyRecord
from threedgl.schema import Schema, TableEncoder, infer_schema
from threedgl.schema.rows import EncodedRows, encode_table
from threedgl.schema.schema import Category, NanPolicy


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (isinstance(random_state, (int, np.integer)) and random_state >= 0):
        return np.random.default_rng(random_state)
    raise ThreedglError(
        f"random_state must be None, a non-negative int or a numpy Generator, got {random_state!r}"
    )


def _seed(random_state: int | np.random.Generator | None) -> int:
    """A training seed: the given int, or fresh entropy (never recorded in the artifact).

    ``None`` takes 128 bits from the operating system (``numpy.random.SeedSequence()``);
    a numpy Generator gives 128 bits of its own stream.
    """
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ThreedglError(f"random_state must be non-negative, got {random_state!r}")
        return int(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    words = _rng(random_state).integers(0, 2**32, size=4, dtype=np.uint64)
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


#: A class released with fewer rows than this is noise in a balanced sample (a warning).
TINY_CLASS_ROWS = 20


class BaseGenerator(BaseEstimator):  # type: ignore[misc]
    """Shared behaviour of DDP-βVAE and the DP marginals baseline."""

    generator_kind: ClassVar[str] = ""
    epsilon: float
    delta: float
    accountant: str
    random_state: int | None

    # -- fitting --------------------------------------------------------------------------
    def fit(
        self,
        df: pd.DataFrame,
        target: str | None = None,
        schema: Schema | str | os.PathLike[str] | None = None,
        *,
        nan_policy: NanPolicy = "error",
        progress: ProgressCallback | None = None,
        ledger: str | os.PathLike[str] | bool | None = None,
        before_training: BudgetCheck | None = None,
    ) -> Self:
        """Train one private model per class of ``target`` (one model on all rows without).

        ``schema`` is the federation's public schema (a :class:`Schema`, or the path of its
        JSON file, read with :meth:`Schema.read`); without it a schema is inferred from
        ``df`` (with a warning: inferred bounds and categories are not private).

        The training is recorded in the local privacy ledger (``ledger``: None for the
        default, ``$THREEDGL_LEDGER`` or ``~/.threedgl/ledger.json``; a path; False for
        none): refused before training if the table's budget is spent, or if what the fit
        will spend (known once its noise is calibrated, before any DP step) would take the
        table's total above its budget.

        ``progress`` is called with each class's epochs (``progress(class_index, epoch,
        epsilon_spent)``); an object may also have ``planned(class_index, epochs, steps)``,
        ``batch(class_index, steps_done)`` (after every DP-Adam step) and ``stage(what,
        done, total)`` (the long steps before training). ``before_training([(label,
        record), ...])`` gets what each class model will spend before any DP step, and may
        raise to stop the fit (``3dgl train`` checks its ledger there).
        """
        from threedgl.privacy.ledger import ledger_for_fit

        self._check_params()
        if not isinstance(df, pd.DataFrame):
            raise ThreedglError(f"fit expects a pandas DataFrame, got {type(df).__name__}")
        if schema is None:
            warnings.warn(
                "no schema given: inferring one from the training data; its bounds and "
                "categories are functions of the data and are not protected by differential "
                "privacy (pass a public schema)",
                UserWarning,
                stacklevel=2,
            )
            schema = infer_schema(df, target=target,
                                  progress=stage_callback(progress, "inferring the schema"))
        elif isinstance(schema, (str, os.PathLike)):  # a schema.json file: Schema.read
            schema = Schema.read(schema)
        if not isinstance(schema, Schema):
            raise ThreedglError(f"schema must be a threedgl Schema or the path of a schema "
                                f"JSON file, got {type(schema).__name__}")
        elif target is not None and schema.target != target:
            if schema.target is not None:
                raise SchemaError(
                    f"target '{target}' differs from the schema's class column '{schema.target}'"
                )
            schema = schema.with_target(target)
        elif target is None and schema.target is not None:
            target = schema.target
        encoder = TableEncoder(schema)
        # validated and encoded one column at a time, kept compact (EncodedRows): the
        # batches are expanded when drawn
        rows, y = encode_table(encoder, df, require_target=target is not None,
                               nan_policy=nan_policy, extra_columns="error",
                               progress=stage_callback(progress, "checking and encoding columns"))
        labels: list[Category | None]
        groups: list[EncodedRows]
        if schema.target is None or y is None:
            labels, groups = [None], [rows]
        else:
            labels = list(schema.labels)
            groups = [rows.take(np.flatnonzero(y == k)) for k in range(len(labels))]
        del rows, y
        self.schema_ = schema
        self.encoder_ = encoder
        _warn_large_delta(self.delta, self.epsilon, labels, groups)
        book = ledger_for_fit(ledger) if math.isfinite(self.epsilon) else None
        if book is not None:
            table_id = book.identify(df)  # as `3dgl train` does: the table given
            book.check(table_id, epsilon=self.epsilon, delta=self.delta,
                       accountant=self.accountant)

        def planned(kept: Sequence[int], records: Sequence[PrivacyRecord]) -> None:
            spend = [(labels[k], r) for k, r in zip(kept, records, strict=True)]
            if book is not None:
                book.check_entry(book.planned_entry(table_id, self.generator_kind,
                                                    schema.target, spend), planned=True)
            if before_training is not None:
                before_training(spend)

        records, released_rows = self._fit_classes(groups, encoder, progress, planned)
        kept = [k for k, r in enumerate(records) if r is not None]
        missing = [labels[k] for k in range(len(labels)) if records[k] is None]
        if missing:
            warnings.warn(
                f"class label(s) {missing!r} are not modelled (no rows in the training table, "
                "or too few); the generator will not produce them",
                UserWarning,
                stacklevel=2,
            )
        self.labels_ = tuple(labels[k] for k in kept)
        self.class_rows_: list[float] = [float(released_rows[k]) for k in kept]
        self.privacy_ = [r for r in records if r is not None]
        self.manifest_ = self._build_manifest()
        if book is not None:
            entry = book.entry(table_id, self.manifest_, source="python")
            try:
                book.check_entry(entry)
            except ThreedglError:
                for name in ("labels_", "class_rows_", "privacy_", "manifest_"):
                    delattr(self, name)
                raise
            book.record(entry)
        return self

    def _check_params(self) -> None:
        from threedgl.errors import PrivacyError, check_range
        from threedgl.privacy.accounting import ACCOUNTANTS

        try:
            check_range("epsilon", self.epsilon, low=0, high=math.inf, high_inclusive=True,
                        owner=type(self).__name__)
            check_range("delta", self.delta, low=0, high=1, owner=type(self).__name__)
        except ThreedglError as exc:
            raise PrivacyError(str(exc)) from None
        if self.accountant not in ACCOUNTANTS:
            raise PrivacyError(
                f"The 'accountant' parameter of {type(self).__name__} must be one of "
                f"{list(ACCOUNTANTS)}. Got {self.accountant!r} instead."
            )

    # -- hooks ----------------------------------------------------------------------------
    def _fit_classes(
        self, groups: list[EncodedRows], encoder: TableEncoder, progress: ProgressCallback | None,
        planned: PlannedCheck,
    ) -> tuple[list[PrivacyRecord | None], list[float]]:
        raise NotImplementedError

    def _sample_class(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _architecture(self) -> dict[str, Any]:
        raise NotImplementedError

    def _tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, architecture: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _training_parameters(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _params_from_training(cls, training: dict[str, Any]) -> dict[str, Any]:
        return dict(training)

    # -- sampling -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "manifest_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this generator (or load one)."
            )

    @property
    def epsilon_(self) -> float:
        """ε of the whole generator: the largest class ε (parallel composition)."""
        self._check_fitted()
        return max(r.epsilon for r in self.privacy_)

    @property
    def delta_(self) -> float:
        self._check_fitted()
        return max(r.delta for r in self.privacy_)

    def sample_encoded(
        self, counts: Sequence[int], rng: np.random.Generator
    ) -> list[np.ndarray]:
        """Encoded rows, ``counts[k]`` of class ``k`` (in ``labels_`` order).

        Every row is final: numeric values in [0, 1] and exact one-hot categories, already
        drawn by this generator's own decoding.
        """
        self._check_fitted()
        return [self._sample_class(k, int(c), rng) if c else
                np.zeros((0, self.encoder_.n_outputs), np.float32)
                for k, c in enumerate(counts)]

    def sample_classes(
        self, counts: Sequence[int], random_state: int | np.random.Generator | None = None
    ) -> pd.DataFrame:
        """``counts[k]`` synthetic rows of class ``labels_[k]``, in class order (not shuffled).

        What :meth:`sample` and the Generators Pool both draw from.
        """
        self._check_fitted()
        if len(counts) != len(self.labels_):
            raise ThreedglError(
                f"counts must be {len(self.labels_)} non-negative ints (one per class label "
                f"{list(self.labels_)!r}), got {list(counts)!r}"
            )
        counts = [check_int("counts", c, low=0, owner="sample_classes") for c in counts]
        blocks = self.sample_encoded(counts, _rng(random_state))
        return decode_blocks(self.encoder_, self.labels_, blocks, counts)

    def sample(
        self,
        n: int,
        balanced: bool | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """``n`` synthetic rows in the original format (columns, dtypes, labels), shuffled.

        ``balanced=True`` (the paper) gives every class the same number of rows (±1);
        ``False`` follows the class sizes of the training table, as released in the
        artifact (noisy counts in the default mode). ``None`` (the default) is the mode's
        own: balanced for the paper's model, the released class sizes otherwise (a class
        learned from a handful of noisy rows then gets a handful of rows, not 1/K of
        them). Balanced sampling of a class released with fewer than
        :data:`TINY_CLASS_ROWS` rows warns: most of its rows are noise.
        """
        self._check_fitted()
        n = check_int("n", n, low=0, owner="sample")
        if balanced is None:
            balanced = self.balanced_by_default
        rng = _rng(random_state)
        if balanced and len(self.labels_) > 1:
            tiny = [(label, rows) for label, rows in zip(self.labels_, self.class_rows_,
                                                         strict=True) if rows < TINY_CLASS_ROWS]
            if tiny:
                warnings.warn(
                    f"class label(s) {[label for label, _ in tiny]!r} were learned from fewer "
                    f"than {TINY_CLASS_ROWS} rows (released: "
                    f"{', '.join(f'{rows:g}' for _, rows in tiny)}); balanced sampling gives "
                    f"each 1/{len(self.labels_)} of the rows, mostly noise (balanced=False "
                    "follows the released class sizes)", UserWarning, stacklevel=2)
        weights = [1.0] * len(self.labels_) if balanced else list(self.class_rows_)
        frame = self.sample_classes(class_counts(int(n), weights), rng)
        return shuffle_rows(frame, rng)

    @property
    def balanced_by_default(self) -> bool:
        """Whether :meth:`sample` balances classes when not told (the paper's model does;
        the others follow their released class sizes)."""
        return False

    # -- artifact -------------------------------------------------------------------------
    def _measurement_entries(self) -> list[list[dict[str, Any]] | None]:
        """Per class model, the manifest entries of its stored DP measurements (None: the
        generator stores none)."""
        return [None] * len(self.labels_)

    def _build_manifest(self) -> dict[str, Any]:
        models = [ClassModel(label, rows, record, measurements)
                  for label, rows, record, measurements
                  in zip(self.labels_, self._released_rows(), self.privacy_,
                         self._measurement_entries(), strict=True)]
        return build_manifest(generator=self.generator_kind, schema=self.schema_,
                              models=models, architecture=self._architecture(),
                              training=self._training_parameters())

    def _released_rows(self) -> list[float | int]:
        return [int(r) if float(r).is_integer() else r for r in self.class_rows_]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the generator to one ``.3dgl`` file (decoders + JSON manifest)."""
        self._check_fitted()
        digest = write_artifact(path, self.manifest_, self._tensors())
        self.manifest_["weights_sha256"] = digest
        return Path(path)

    def to_bytes(self) -> bytes:
        """The ``.3dgl`` file's bytes, without a file (what a client sends)."""
        self._check_fitted()
        data, digest = write_artifact_bytes(self.manifest_, self._tensors())
        self.manifest_["weights_sha256"] = digest
        return data

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Self:
        """Read a ``.3dgl`` file safely (no code runs; every field and tensor checked)."""
        kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
        return cls.from_artifact(read_artifact(path, **kwargs))

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        manifest = artifact.manifest
        if cls.generator_kind and manifest["generator"] != cls.generator_kind:
            raise ArtifactError(
                f"this file holds a '{manifest['generator']}' generator, not '{cls.generator_kind}'"
            )
        checked = read_manifest(manifest)
        schema = checked.schema
        training = manifest["training"]
        allowed = set(cls._get_param_names())
        params = {k: v for k, v in cls._params_from_training(training).items() if k in allowed}
        try:
            est = cls(**params)
        except TypeError as exc:
            raise ArtifactError(f"invalid training parameters in the manifest: {exc}") from None
        est.schema_ = schema
        est.encoder_ = TableEncoder(schema)
        est.labels_ = tuple(m.label for m in checked.models)
        est.class_rows_ = [m.rows for m in checked.models]
        est.privacy_ = [m.record for m in checked.models]
        est.manifest_ = manifest  # _restore reads the class models' entries
        problem = statement_disagreement(manifest, est.privacy_)
        if problem is not None:
            warnings.warn(f"{problem}: privacy_statement() shows the statement generated from "
                          "the records", PrivacyWarning, stacklevel=2)
        try:
            est._restore(manifest["architecture"], artifact.tensors)
        except ArtifactError:
            raise
        except ThreedglError as exc:
            raise ArtifactError(str(exc)) from None
        return est

    def privacy_statement(self) -> str:
        """What is protected, what is released and what is not covered, in plain words."""
        self._check_fitted()
        return privacy_statement(self.manifest_, self.privacy_)


def _warn_large_delta(delta: float, epsilon: float, labels: Sequence[Category | None],
                      groups: Sequence[EncodedRows]) -> None:
    """Warn when δ ≥ 1/n for a class: (ε, δ)-DP then allows publishing a row outright.

    The decision uses the exact class sizes, so the warning is for the data owner only:
    its text holds no number computed from the rows (it names the class and 1/δ, public),
    and nothing that travels (a federation's messages, an artifact) carries it.
    """
    if not math.isfinite(epsilon):
        return
    small = [labels[k] for k, g in enumerate(groups) if len(g) and delta >= 1 / len(g)]
    if small:
        where = ", ".join(repr(label) for label in small)
        warnings.warn(
            f"delta={delta!r} is at least 1/n for class(es) {where} (n: the class's rows, "
            f"at most 1/delta = {1 / delta:.4g}): a mechanism that publishes a random row "
            "outright meets (0, delta)-DP at this delta. Use a delta well below 1/n (1/n^2 "
            "or less is the usual choice)",
            PrivacyWarning,
            stacklevel=3,
        )


def decode_blocks(
    encoder: TableEncoder,
    labels: Sequence[Category | None],
    blocks: Sequence[np.ndarray],
    counts: Sequence[int],
) -> pd.DataFrame:
    """Decode per-class encoded rows (final values, exact one-hots) into one table with
    the class column, in class order."""
    matrix = np.concatenate(list(blocks), axis=0) if blocks else np.zeros((0, encoder.n_outputs))
    target = None
    if encoder.schema.target is not None:
        target = np.repeat(np.asarray(list(labels), dtype=object), counts)
    return encoder.decode(matrix, target_values=target).reset_index(drop=True)


def shuffle_rows(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The rows of ``frame`` in a random order drawn from ``rng``, index reset."""
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def one_hot_codes(probabilities: np.ndarray, layout: Sequence[tuple[str, int, int]],
                  rng: np.random.Generator | None) -> np.ndarray:
    """Categorical blocks of decoder outputs made exact one-hots: argmax (``rng`` None)
    or a draw from the block's probabilities; numeric columns are left as they are."""
    out = np.array(probabilities, dtype=np.float32, copy=True)
    n = len(out)
    rows = np.arange(n)
    for kind, start, stop in layout:
        if kind != "categorical":
            continue
        block = out[:, start:stop].astype(np.float64)
        if rng is None:
            code = np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)
        else:
            cdf = np.cumsum(np.clip(np.nan_to_num(block), 0.0, None), axis=1)
            u = rng.random((n, 1)) * cdf[:, -1:]
            code = np.minimum((cdf < u).sum(axis=1), stop - start - 1)
        out[:, start:stop] = 0.0
        out[rows, start + code] = 1.0
    return out


def random_generator(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """The numpy ``Generator`` a ``random_state`` stands for, as :meth:`BaseGenerator.sample`
    reads it (a Generator is used as is; an int seeds a new one; ``None`` draws entropy)."""
    return _rng(random_state)

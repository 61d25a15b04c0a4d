"""Errors that users see.

Every error a user can cause is a :class:`ThreedglError` (a ``ValueError``). Its message
names what was wrong and where (the column and the value, the parameter and its allowed
range, the file) and, where useful, what to do. The command line prints the message on
one line and exits with code 2.
"""

from __future__ import annotations


class ThreedglError(ValueError):
    """Base class of all errors caused by bad input."""


class SchemaError(ThreedglError):
    """A table does not fit a schema, or a schema is malformed."""


class ArtifactError(ThreedglError):
    """A generator file is malformed, tampered with, truncated or unsafe."""


class PrivacyError(ThreedglError):
    """A privacy parameter or budget is invalid or would be exceeded."""


class NothingToTrain(PrivacyError):
    """Too few rows to train a private generator on: decided on DP outputs only (the noisy
    class counts), so its fixed message is data-free and may leave a deployed client."""


class PrivacyWarning(UserWarning):
    """A setting that is allowed but weakens the privacy guarantee (e.g. δ ≥ 1/n)."""


class NotFittedError(ThreedglError, AttributeError):
    """An estimator was used before ``fit``."""


def check_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = False,
    high_inclusive: bool = False,
    owner: str = "",
    kind: str = "a float",
) -> None:
    """Raise a :class:`ThreedglError` in scikit-learn's wording if ``value`` is out of range.

    >>> check_range("epsilon", 1.0, low=0)
    """
    ok = True
    if low is not None:
        ok = ok and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if value != value:  # NaN
        ok = False
    if ok:
        return
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    lb = "[" if low_inclusive else "("
    hb = "]" if high_inclusive else ")"
    where = f" of {owner}" if owner else ""
    raise ThreedglError(
        f"The '{name}' parameter{where} must be {kind} in the range {lb}{lo}, {hi}{hb}. "
        f"Got {value!r} instead."
    )


def check_int(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    owner: str = "",
    error: type[ThreedglError] = ThreedglError,
) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) in ``[low, high]``;
    otherwise raise ``error`` (a :class:`ThreedglError`) in scikit-learn's wording.

    numpy integers are accepted; floats, even whole ones, are not.

    >>> check_int("epochs", 5, low=1)
    5
    """
    import numbers

    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        number = int(value)  # type: ignore[call-overload]
        ok = (low is None or number >= low) and (high is None or number <= high)
        if ok:
            return number
    lo = "-inf" if low is None else repr(low)
    hi = "inf)" if high is None else f"{high!r}]"
    lb = "(" if low is None else "["
    where = f" of {owner}" if owner else ""
    raise error(
        f"The '{name}' parameter{where} must be an int in the range {lb}{lo}, {hi}. "
        f"Got {value!r} instead."
    )

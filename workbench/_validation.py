"""Argument checks: one definition of "an integer", "a probability", "one of these", ...

Every ``check_*`` function returns the value as a plain Python ``int``, ``float`` or the chosen
item, or raises :class:`~workbench.errors.ParameterError` (a ``ValueError``, as in scikit-learn)
with a message that names the argument, says what it accepts and shows what it got, so the fix is
in the message: ``radius must be an integer from 0 to 64, got 2.5``. Callers that report through
another error class (the label store's :class:`~workbench.errors.LabelError`) pass ``error=``.

Conventions, the same everywhere:

- ``bool`` is never a number (Python's ``True`` is an ``int``, but a flag passed where a count
  belongs is a mistake); numpy integer and float scalars are numbers.
- Integers are integers: ``2.0`` is refused where a count is wanted.
- Reals are finite unless a check says otherwise (NaN passes every comparison silently).
- Bounds are inclusive unless ``low_open`` / ``high_open`` say otherwise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np

from workbench.errors import ParameterError

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A real number (Python or numpy, integers included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _interval(
    low: float | None, high: float | None, low_open: bool, high_open: bool, integer: bool = False
) -> str:
    if low is not None and high is not None:
        if integer:
            return f" from {low} to {high}"
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def _inside(
    value: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def check_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    error: type[Exception] = ParameterError,
) -> int:
    """``value`` as an ``int`` if it is an integer within ``[low, high]`` (``None``: unbounded)."""
    if not is_int(value) or not _inside(value, low, high, False, False):
        raise error(
            f"{name} must be an integer{_interval(low, high, False, False, True)}, got {value!r}"
        )
    return int(value)


def check_positive_int(value: Any, name: str, *, error: type[Exception] = ParameterError) -> int:
    """``value`` as an ``int`` if it is an integer >= 1 (a count, a size, a number of workers)."""
    return check_int(value, name, low=1, error=error)


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    error: type[Exception] = ParameterError,
) -> float:
    """``value`` as a ``float`` if it is a real number (finite unless ``finite=False``) within
    the bounds; ``low_open`` / ``high_open`` exclude a bound itself."""
    ok = is_real(value) and not math.isnan(value) and (not finite or math.isfinite(value))
    if not ok or not _inside(value, low, high, low_open, high_open):
        what = "a finite number" if finite else "a number"
        where = _interval(low, high, low_open, high_open)
        raise error(f"{name} must be {what}{where}, got {value!r}")
    return float(value)


def check_probability(value: Any, name: str, *, error: type[Exception] = ParameterError) -> float:
    """``value`` as a ``float`` if it is a number in [0, 1] (a probability, a threshold)."""
    return check_real(value, name, low=0, high=1, error=error)


def check_choice(
    value: T, name: str, choices: Iterable[T], *, error: type[Exception] = ParameterError
) -> T:
    """``value`` itself if it is one of ``choices`` (compared with ``==``)."""
    options = list(choices)
    try:
        found = any(isinstance(value, bool) == isinstance(c, bool) and value == c for c in options)
    except Exception:  # an array or another value that does not compare to a plain bool
        found = False
    if not found:
        shown = [repr(c) for c in options]
        listed = (
            f"either {shown[0]} or {shown[1]}" if len(shown) == 2 else f"one of {', '.join(shown)}"
        )
        raise error(f"{name} must be {listed}, got {value!r}")
    return value

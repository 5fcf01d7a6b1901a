"""Argument checks of the label package: each raises :class:`LabelError` saying what was expected.

Generic (no label concept in them; they move to the shared argument checks once those land):
:func:`_short`, :func:`_is_int`, :func:`_is_number`, :func:`_as_list`, and, apart from the error
class they raise, :func:`_need`, :func:`_text`, :func:`_round` and :func:`_seconds`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from workbench.errors import LabelError


def _short(value: Any, n: int = 80) -> str:
    """``repr(value)``, cut to ``n`` characters for an error message."""
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _need(ok: Any, message: str) -> None:
    """Raise :class:`LabelError` with ``message`` unless ``ok``."""
    if not ok:
        raise LabelError(message)


def _text(what: str, value: Any, *, empty_ok: bool = False) -> str:
    """``value`` if it is text that UTF-8 can encode (non-empty unless ``empty_ok``)."""
    if not isinstance(value, str) or (not value and not empty_ok):
        raise LabelError(f"{what} must be {'' if empty_ok else 'non-empty '}text, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LabelError(f"{what} {_short(value)} is not valid Unicode text") from None
    return value


def _round(value: Any) -> int:
    """A labeling round: a whole number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise LabelError(f"round must be a whole number >= 0, got {value!r}")
    return int(value)


def _seconds(value: Any) -> float | None:
    """A duration: None, or a finite real number >= 0 (not a bool)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LabelError(f"seconds must be a number or None, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise LabelError(f"seconds must be finite and >= 0, got {value!r}")
    return float(value)


def _is_int(v: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A real number that is not a ``bool``."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _as_list(names: str | Iterable[str]) -> list[Any]:
    """One name or many, as a list."""
    return [names] if isinstance(names, str) else list(names)

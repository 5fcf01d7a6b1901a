"""Argument checks of the label package: each raises :class:`LabelError` saying what was expected.

Numbers are checked by the shared :mod:`workbench._validation` (one meaning of "an integer" and
"a number" everywhere: never a bool, numpy scalars included), raising :class:`LabelError` here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from workbench._validation import check_int, check_real, is_int, is_real
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
    return check_int(value, "round", low=0, error=LabelError)


def _seconds(value: Any) -> float | None:
    """A duration: None, or a finite real number >= 0 (not a bool)."""
    return None if value is None else check_real(value, "seconds", low=0, error=LabelError)


#: An integer (Python or numpy), not a bool.
_is_int = is_int
#: A real number (Python or numpy), not a bool.
_is_number = is_real


def _as_list(names: str | Iterable[str]) -> list[Any]:
    """One name or many, as a list."""
    return [names] if isinstance(names, str) else list(names)


#: Most characters an event's ``extra`` may take as JSON (it rides along with every read).
MAX_EXTRA = 65_536


def _extra(value: Any) -> dict[str, Any] | None:
    """``value`` as a plain JSON dict for an event's ``extra``, or None; LabelError otherwise.

    Keys must be text (JSON would silently turn others into text), values JSON-serialisable
    and finite, and the whole at most :data:`MAX_EXTRA` characters as JSON. The result is a
    copy made through JSON, so what is stored is exactly what a later read gives back.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise LabelError(f"extra must be a dict of JSON values, got {_short(value)}")
    if not all(isinstance(k, str) for k in value):
        bad = next(k for k in value if not isinstance(k, str))
        raise LabelError(f"extra keys must be text, got {_short(bad)}")
    try:
        text = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise LabelError(f"extra must hold only finite JSON values (text, numbers, lists, "
                         f"dicts, true/false/null): {e}") from None  # fmt: skip
    except RecursionError:
        raise LabelError("extra is nested too deeply (or refers to itself)") from None
    if len(text) > MAX_EXTRA:
        raise LabelError(
            f"extra is {len(text)} characters as JSON, more than {MAX_EXTRA}; keep bulky data "
            "in a file and store its name"
        )
    return json.loads(text)

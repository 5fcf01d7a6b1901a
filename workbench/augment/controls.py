"""How a parameter is shown by a control and read back from it: slider grid, readout, text.

A slider can only stand at ``min + k * step`` and shows the decimals of ``step``. The browser's
slider snaps a value to that grid when it is created or re-synced and sends the snapped value
back, computed in binary floating point (``0.01 + 3 * 0.1 == 0.31000000000000005``). Taken as an
edit, that would change a parameter nobody touched. The functions here make a control's report
harmless and exact:

* :func:`from_slider` turns what a slider reports into the value to store, or :data:`UNCHANGED`
  when the report is only the current value as the slider can show it (creation, re-sync). A
  moved slider gives the value its readout shows: rounded to the step's decimals. For a range,
  each end is judged alone, so the end that did not move keeps its exact value.
* :func:`text` and :func:`parse` are the number field next to a slider: ``text`` writes a value
  as clean short numbers (``0.3, 3.3``), ``parse`` reads what was typed; a number left as shown
  keeps its exact value (``4/3`` shown as ``1.33333`` stays ``4/3``).

Guarantees: ``from_slider(spec, snap(spec, v), v)`` and ``parse(spec, text(spec, v), v)`` are
:data:`UNCHANGED` for every value ``v`` a parameter can hold; every value returned is a plain
Python ``int``/``float`` (or a tuple of them), never a float with binary noise from the grid.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from workbench.augment.registry import ParamSpec
from workbench.errors import ParameterError

__all__ = ["P_SPEC", "UNCHANGED", "decimals", "from_slider", "parse", "snap", "text"]

#: The apply probability of a step, described like a registry parameter (for its slider).
P_SPEC: Final = ParamSpec(
    "p", "float", 1.0, 0.0, 1.0, 0.05, doc="probability that the step is applied"
)

#: Returned when a control reports no change of the parameter.
UNCHANGED: Final = type("Unchanged", (), {"__repr__": lambda self: "UNCHANGED"})()

_NUMERIC = ("float", "int", "range", "size")


def _integer(spec: ParamSpec) -> bool:
    return spec.kind in ("int", "size") or (spec.kind == "range" and spec.integer)


def decimals(spec: ParamSpec) -> int:
    """Decimals a slider of ``spec`` shows: those of its step (0 for integer parameters)."""
    step = spec.step
    if _integer(spec) or not step or step >= 1:
        return 0
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _shown(spec: ParamSpec, x: float) -> float | int:
    """``x`` as a readout with the step's decimals shows it, as a plain number."""
    if _integer(spec):
        return round(float(x))
    return round(float(x), decimals(spec)) + 0.0  # + 0.0: no "-0.0"


def snap(spec: ParamSpec, x: float) -> float | int:
    """The slider position nearest ``x`` (``min + k * step`` inside ``[min, max]``), as shown."""
    lo, hi, step = spec.min, spec.max, spec.step
    if lo is None or hi is None or not step:
        return _shown(spec, x)
    k = round((min(max(float(x), lo), hi) - lo) / step)
    k = min(k, math.floor((hi - lo) / step + 1e-9))
    return _shown(spec, lo + k * step)


def _elements(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def from_slider(spec: ParamSpec, reported: Any, current: Any) -> Any:
    """The value to store when a slider of ``spec`` reports ``reported`` while the parameter
    holds ``current``; :data:`UNCHANGED` when nothing moved.

    An element is unmoved when the readout of ``reported`` equals the slider position of
    ``current`` (:func:`snap`); it keeps ``current`` exactly. A moved element becomes its
    readout. Non-numeric controls (menus, check boxes, text) report their value as it is.
    """
    if spec.kind not in ("float", "int", "range"):
        return UNCHANGED if reported == current else reported
    now = _elements(current)
    got = _elements(reported)
    if len(got) != len(now):
        return reported
    out = tuple(
        c if _shown(spec, r) == snap(spec, c) else _shown(spec, r)
        for r, c in zip(got, now, strict=True)
    )
    if out == now:
        return UNCHANGED
    return out if spec.kind == "range" else out[0]


def _number_text(spec: ParamSpec, x: Any) -> str:
    if _integer(spec) or isinstance(x, int):
        return str(int(x))
    shown = format(float(x), ".6g")
    return "0" if shown == "-0" else shown


def text(spec: ParamSpec, value: Any) -> str:
    """``value`` as the number field of ``spec`` shows it: ``0.3``, ``0.3, 3.3``, ``224, 224``."""
    if spec.kind not in _NUMERIC:
        return str(value)
    return ", ".join(_number_text(spec, v) for v in _elements(value))


# Separators between the numbers of a pair: commas, spaces, semicolons, brackets, "x" in sizes
# and the dashes of a readout ("0.3 – 3.3"). A minus sign is never one: "-0.05, 0.05".
_SEPARATORS = re.compile(r"[\s,;()\[\]x×–—]+")


def _read_number(spec: ParamSpec, token: str) -> int | float:
    try:
        return int(token)
    except ValueError:
        pass
    try:
        x = float(token)
    except ValueError:
        example = text(spec, spec.default)
        raise ParameterError(
            f"parameter {spec.name!r}: {token!r} is not a number; type e.g. {example}"
        ) from None
    return int(x) if _integer(spec) and x.is_integer() else x


def parse(spec: ParamSpec, typed: str, current: Any) -> Any:
    """The value typed into the number field of ``spec`` (``current`` is what it holds).

    One number, or two for a range or a size. A number typed as :func:`text` shows it keeps its
    exact current value; :data:`UNCHANGED` when the result is ``current``. Whether the value is
    allowed is for ``Pipeline.set_param`` to say (one number for a range follows torchvision's
    rule, e.g. ``0.2`` means ``(-0.2, 0.2)`` for an angle).

    Raises
    ------
    ParameterError
        Not one or two numbers.
    """
    tokens = [t for t in _SEPARATORS.split(typed.replace("−", "-").strip()) if t]
    if not 1 <= len(tokens) <= 2:
        example = text(spec, spec.default)
        raise ParameterError(
            f"parameter {spec.name!r}: type one number or two (min, max), e.g. {example}; "
            f"got {typed!r}"
        )
    now = _elements(current)
    shown = [_number_text(spec, c) for c in now]
    values: list[Any] = []
    for i, token in enumerate(tokens):
        same = len(tokens) == len(now) and token == shown[i]
        values.append(now[i] if same else _read_number(spec, token))
    value = values[0] if len(values) == 1 else tuple(values)
    if _elements(value) == now and type(value) is type(current):
        return UNCHANGED
    return value

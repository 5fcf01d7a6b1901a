"""Parameter checks: every value a step, a seed or a backend can take is checked here.

A refused value raises :class:`~workbench.errors.ParameterError` with a message that names the step
(index and transform) and the parameter, and says what is allowed. Accepted values come back in
canonical form (tuples for pairs, ints or floats as the registry says), so two pipelines with the
same meaning compare equal and serialise alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from workbench._validation import check_choice, check_probability, is_int, is_real
from workbench.augment.registry import REGISTRY, ParamSpec, TransformSpec
from workbench.errors import ParameterError

Backend = Literal["tensor", "pil"]


class _Bad(Exception):
    """A value is wrong; the message completes "parameter 'x' ..."."""


def _number(spec: ParamSpec, x: Any, integer: bool, what: str = "") -> float | int:
    if not is_real(x) or (not is_int(x) and not math.isfinite(x)):
        raise _Bad(f"{what}must be a finite number, got {x!r}")
    if integer:
        if float(x) != int(x):
            raise _Bad(f"{what}must be a whole number, got {x!r}")
        x = int(x)
    else:
        x = float(x)
    lo, hi = spec.min, spec.max
    if lo is not None and (x < lo or (spec.min_open and x == lo)):
        bound = f"> {lo}" if spec.min_open else f">= {lo}"
        raise _Bad(f"{what}must be {bound}, got {x}")
    if hi is not None and x > hi:
        raise _Bad(f"{what}must be <= {hi}, got {x}")
    return x


def _normalize(spec: ParamSpec, value: Any) -> Any:
    """Return ``value`` in canonical form (tuples, ints/floats) or raise ``_Bad``."""
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise _Bad(f"must be True or False, got {value!r}")
        return bool(value)
    if kind == "choice":
        if value not in spec.choices:
            raise _Bad(f"must be one of {list(spec.choices)}, got {value!r}")
        return value
    if kind == "float":
        return _number(spec, value, integer=False)
    if kind == "int":
        n = _number(spec, value, integer=True)
        if spec.odd and n % 2 == 0:
            raise _Bad(f"must be odd and positive, got {n}")
        return n
    if kind == "size":
        if is_real(value):
            return _number(spec, value, integer=True)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return tuple(_number(spec, v, integer=True, what="(height, width) ") for v in value)
        raise _Bad(f"must be an int or an (height, width) pair, got {value!r}")
    if kind == "range":
        if is_real(value):
            if spec.scalar is None:
                raise _Bad(f"must be a (min, max) pair, got {value!r}")
            x = float(value)
            if spec.scalar in ("symmetric", "around_one") and x < 0:
                raise _Bad(f"given as one number must be >= 0 (it means (-x, x)), got {x}")
            if spec.scalar == "symmetric":
                value = (-x, x)
            elif spec.scalar == "around_one":
                value = (max(0.0, 1.0 - x), 1.0 + x)
            else:
                value = (value, value)
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise _Bad(f"must be a (min, max) pair, got {value!r}")
        lo, hi = (_number(spec, v, integer=spec.integer, what="(min, max) ") for v in value)
        if lo > hi:
            raise _Bad(f"is a (min, max) range but min {lo} > max {hi}")
        return (lo, hi)
    raise AssertionError(f"unknown parameter kind {kind!r}")  # pragma: no cover


def _label(i: int | None, name: str) -> str:
    return f"step {i} ({name})" if i is not None else f"step ({name})"


def _where(i: int | None) -> str:
    return f"step {i}" if i is not None else "step"


def _spec_for(i: int | None, name: Any) -> TransformSpec:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ParameterError(
            f"{_where(i)}: unknown transform {name!r}; choose one of {sorted(REGISTRY)}"
        )
    return REGISTRY[name]


def _check_p(label: str, p: Any) -> float:
    return check_probability(p, f"{label}: parameter 'p' (apply probability)")


def _check_params(i: int | None, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return complete, canonical params for transform ``name`` or raise ParameterError."""
    spec = _spec_for(i, name)
    label = _label(i, name)
    unknown = [k for k in params if k not in spec.param_names]
    if unknown:
        if "p" in unknown:
            raise ParameterError(f"{label}: 'p' is the step's apply probability; set it as Step.p")
        valid = list(spec.param_names) or "none"
        raise ParameterError(
            f"{label}: unknown parameter {unknown[0]!r}; valid parameters: {valid}"
        )
    out = spec.defaults()
    for key, value in params.items():
        try:
            out[key] = _normalize(spec.param(key), value)
        except _Bad as exc:
            raise ParameterError(f"{label}: parameter {key!r} {exc}") from None
    if spec.check is not None:
        for key, message in spec.check(out):
            raise ParameterError(f"{label}: parameter {key!r} {message}")
    return out


def _check_seed(seed: Any) -> int:
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ParameterError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _check_backend(backend: Any) -> Backend:
    return check_choice(backend, "backend", ("tensor", "pil"))

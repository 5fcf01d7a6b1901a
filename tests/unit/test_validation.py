"""The shared argument checks: what each accepts, what it refuses, and what the message says."""

import math

import numpy as np
import pytest

from workbench._validation import (
    check_choice,
    check_int,
    check_positive_int,
    check_probability,
    check_real,
    is_int,
    is_real,
)
from workbench.errors import LabelError, ParameterError, WorkbenchError


def test_predicates_never_take_a_bool_for_a_number():
    for v in (0, -3, 2**70, np.int64(5), np.uint8(1)):
        assert is_int(v) and is_real(v), v
    for v in (1.5, np.float32(0.25), float("inf")):
        assert is_real(v) and not is_int(v), v
    for v in (True, False, np.bool_(True), "3", None, [1], np.array([1])):
        assert not is_int(v) and not is_real(v), v


@pytest.mark.parametrize("value", [0, 64, 17, np.int32(3), np.uint64(64)])
def test_check_int_accepts_integers_in_range(value):
    got = check_int(value, "radius", low=0, high=64)
    assert got == value and type(got) is int


@pytest.mark.parametrize("value", [-1, 65, 2.0, 2.5, True, "3", None, np.float64(3), math.nan])
def test_check_int_refuses_the_rest_and_says_what_it_wants(value):
    with pytest.raises(ParameterError) as e:
        check_int(value, "radius", low=0, high=64)
    assert str(e.value) == f"radius must be an integer from 0 to 64, got {value!r}"
    assert isinstance(e.value, ValueError) and isinstance(e.value, WorkbenchError)


def test_bounds_in_messages():
    with pytest.raises(ParameterError, match=r"^workers must be an integer >= 1, got 0$"):
        check_positive_int(0, "workers")
    assert check_positive_int(np.int16(4), "workers") == 4
    with pytest.raises(ParameterError, match=r"n must be an integer <= 3, got 4"):
        check_int(4, "n", high=3)
    assert check_int(-(10**30), "anything") == -(10**30)
    with pytest.raises(ParameterError, match=r"strength must be a finite number > 0, got 0"):
        check_real(0, "strength", low=0, low_open=True)
    with pytest.raises(ParameterError, match=r"w must be a finite number in \[0, 1\), got 1"):
        check_real(1, "w", low=0, high=1, high_open=True)
    with pytest.raises(ParameterError, match=r"x must be a finite number in \(0.5, 2.5\]"):
        check_real(0.5, "x", low=0.5, high=2.5, low_open=True)
    with pytest.raises(ParameterError, match=r"y must be a finite number < 0"):
        check_real(0.0, "y", high=0, high_open=True)


def test_check_real():
    assert check_real(3, "x") == 3.0 and type(check_real(3, "x")) is float
    assert check_real(np.float32(0.5), "x", low=0, high=1) == 0.5
    assert check_real(math.inf, "x", finite=False) == math.inf
    for bad in (math.nan, math.inf, -math.inf, True, "1.0", None, np.array([1.0])):
        with pytest.raises(ParameterError, match="must be a finite number"):
            check_real(bad, "x")
    with pytest.raises(ParameterError, match="must be a number"):
        check_real(math.nan, "x", finite=False)  # NaN is never a value


@pytest.mark.parametrize("value", [0, 1, 0.25, np.float64(1.0)])
def test_check_probability_accepts(value):
    assert check_probability(value, "p") == float(value)


@pytest.mark.parametrize("value", [-0.01, 1.5, math.nan, True, "0.5"])
def test_check_probability_refuses(value):
    with pytest.raises(ParameterError, match=r"^p must be a finite number in \[0, 1\], got"):
        check_probability(value, "p")


def test_check_choice():
    assert check_choice("pad", "mode", ("keep", "pad")) == "pad"
    with pytest.raises(
        ParameterError, match=r"^action must be either 'exclude' or 'keep', got 'x'"
    ):
        check_choice("x", "action", ["exclude", "keep"])
    with pytest.raises(ParameterError, match=r"mode must be one of 'L', 'RGB', 'F', got 'P'"):
        check_choice("P", "mode", ["L", "RGB", "F"])
    with pytest.raises(ParameterError):  # True == 1, but a flag is not a choice of number
        check_choice(True, "n", [1, 2, 3])
    with pytest.raises(ParameterError):  # arrays do not compare to one truth value
        check_choice(np.array([1, 2]), "n", [1, 2])
    assert check_choice(2, "n", range(1, 4)) == 2


def test_callers_choose_their_error_class():
    with pytest.raises(LabelError, match="round must be an integer >= 0"):
        check_int(-1, "round", low=0, error=LabelError)
    with pytest.raises(LabelError):
        check_probability(2, "probability", error=LabelError)
    with pytest.raises(LabelError):
        check_choice("z", "kind", "ab", error=LabelError)

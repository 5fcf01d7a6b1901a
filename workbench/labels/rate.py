"""How fast a person labels: decisions per minute over a sliding window of wall time.

A rate is shown only once it means something: at least ``min_count`` decisions, spanning at
least ``min_span`` seconds of wall time, inside the last ``window`` seconds. A decision made
faster than ``min_seconds`` after its item was shown is a script's (no person reads an image
that fast) and does not count, so a loop of scripted submits never shows an absurd rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from workbench._validation import check_int, check_real

__all__ = ["RateMeter"]


class RateMeter:
    """Decisions per minute over the last ``window`` seconds of wall time.

    Parameters
    ----------
    window
        Seconds of wall time the rate looks back over; older decisions drop out, so a pause
        longer than this starts the rate afresh.
    min_count, min_span
        No rate (``None``) until the window holds at least ``min_count`` decisions that span at
        least ``min_span`` seconds.
    min_seconds
        Decisions made less than this many seconds after their item was shown are not counted.
    clock
        Wall clock in seconds (``time.monotonic``); tests pass their own.
    """

    def __init__(
        self,
        window: float = 300.0,
        *,
        min_count: int = 5,
        min_span: float = 20.0,
        min_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = check_real(window, "window", low=0, low_open=True)
        self.min_count = check_int(min_count, "min_count", low=2)
        self.min_span = check_real(min_span, "min_span", low=0)
        self.min_seconds = check_real(min_seconds, "min_seconds", low=0)
        self.clock = clock
        self._times: deque[tuple[float, object]] = deque()

    def add(self, seconds: float, key: object = None) -> bool:
        """Count a decision made now, ``seconds`` after its item was shown; ``key`` names it
        for :meth:`remove`. Returns whether it counted (a person's pace, not a script's)."""
        if seconds < self.min_seconds:
            return False
        self._times.append((self.clock(), key))
        self._drop_old()
        return True

    def remove(self, key: object) -> None:
        """Forget the decision ``key`` (it was undone); nothing happens if it is not counted."""
        for k, (_, found) in enumerate(self._times):
            if found == key:
                del self._times[k]
                return

    def _drop_old(self) -> None:
        start = self.clock() - self.window
        while self._times and self._times[0][0] < start:
            self._times.popleft()

    @property
    def per_minute(self) -> float | None:
        """Decisions per minute in the window, or ``None`` while too few to mean anything."""
        self._drop_old()
        if len(self._times) < self.min_count:
            return None
        span = self._times[-1][0] - self._times[0][0]
        if span < self.min_span or span <= 0:
            return None
        return 60.0 * (len(self._times) - 1) / span

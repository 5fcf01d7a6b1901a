"""Render the items coming next ahead of time, on one background thread.

Showing the next item then costs a look-up, not a decode. Each rendering is taken once; a
prefetch that failed is rendered again (in the caller's thread) when taken, so its error is
the caller's to see.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from workbench._validation import check_int
from workbench.errors import ParameterError

__all__ = ["Prefetcher"]


class Prefetcher:
    """Runs ``render(sample_id)`` ahead for up to ``n`` items; results are taken once.

    Parameters
    ----------
    render
        The function to run ahead (``None``: no rendering at all).
    n
        How many items ahead (0: render only on demand).
    """

    def __init__(self, render: Callable[[str], Any] | None, n: int) -> None:
        self.render = render
        self.n = check_int(n, "prefetch", low=0) if render is not None else 0
        self._lock = threading.Lock()
        self._futures: OrderedDict[str, Future] = OrderedDict()
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="wb-label-prefetch") if self.n else None
        )

    def ahead(self, ids: list[str]) -> None:
        """Start rendering ``ids`` (the items coming next) unless already started."""
        if self._pool is None:
            return
        with self._lock:
            for sid in ids:
                if sid not in self._futures:
                    self._futures[sid] = self._pool.submit(self.render, sid)
            while len(self._futures) > 4 * self.n:  # items the order moved away from
                self._futures.popitem(last=False)

    def take(self, sample_id: str) -> Any:
        """The rendering of ``sample_id``: the prefetched one when there is one, else run now."""
        if self.render is None:
            raise ParameterError("this session has no render function")
        with self._lock:
            fut = self._futures.pop(sample_id, None)
        if fut is not None:
            with contextlib.suppress(Exception):  # a failed prefetch: render it here instead
                return fut.result()
        return self.render(sample_id)

    def ids(self) -> list[str]:
        """Ids rendered (or being rendered) ahead, oldest request first."""
        with self._lock:
            return list(self._futures)

    def wait(self, timeout: float) -> None:
        """Block until the renderings started so far have finished (or ``timeout`` seconds)."""
        with self._lock:
            futures = list(self._futures.values())
        futures_wait(futures, timeout=timeout)

    def close(self) -> None:
        """Stop the thread; renderings not started are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

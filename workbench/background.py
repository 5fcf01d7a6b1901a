"""Background work where only the latest request matters.

A preview render, an assistant refit or a queue re-rank is asked for again each time the user
moves a control or labels a sample. Running every request would fall behind; dropping the running
one would waste it. :class:`Latest` runs requests one at a time on its own thread, and a request
that is overtaken by a newer one before it starts is never run: its future resolves to the
``superseded`` value at once. So at most one job runs and at most one waits, and the last request
made is always the last one run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["Latest"]


class Latest:
    """One worker thread that runs the newest request and skips the overtaken ones.

    Parameters
    ----------
    name
        Thread-name prefix (shows in debuggers and ``py-spy`` dumps).
    superseded
        What the future of a request that never ran resolves to.
    initializer
        Called once on the worker thread before its first job (e.g. to set torch's thread count).
    """

    def __init__(
        self,
        name: str,
        *,
        superseded: Any = None,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.superseded = superseded
        self._initializer = initializer
        self._lock = threading.Lock()
        self._pending: tuple[Future, Callable[..., Any], tuple, dict] | None = None
        self._running = False
        self._idle = threading.Event()
        self._idle.set()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Latest({self.name!r}, busy={self.busy})"

    @property
    def busy(self) -> bool:
        """Whether a job runs or waits."""
        return not self._idle.is_set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Ask for ``fn(*args, **kwargs)``; a request still waiting is superseded by this one.

        Returns a future of the result (or of ``superseded`` if a newer request overtakes it
        before it starts). An exception raised by ``fn`` is held by the future.
        """
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: submit after close")
            overtaken = self._pending
            self._pending = (future, fn, args, kwargs)
            self._idle.clear()
            if not self._running:
                self._running = True
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        1, thread_name_prefix=self.name, initializer=self._initializer
                    )
                self._executor.submit(self._drain)
        if overtaken is not None and overtaken[0].set_running_or_notify_cancel():
            overtaken[0].set_result(self.superseded)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                job = self._pending
                self._pending = None
                if job is None:
                    self._running = False
                    self._idle.set()
                    return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # held by the future: the caller decides what to show
                future.set_exception(e)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing runs or waits; ``False`` if ``timeout`` seconds passed first."""
        return self._idle.wait(timeout)

    def close(self, wait: bool = False) -> None:
        """Supersede the waiting request and stop the thread after the running job."""
        with self._lock:
            self._closed = True
            overtaken, self._pending = self._pending, None
            executor = self._executor
        if overtaken is not None and overtaken[0].set_running_or_notify_cancel():
            overtaken[0].set_result(self.superseded)
        if executor is not None:
            executor.shutdown(wait=wait)

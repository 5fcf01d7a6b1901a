"""The assistant side of a :class:`~workbench.labels.session.LabelingSession`: suggestions,
background refits as labels arrive and the active-learning order of the queue ahead.

A mixin of the session (it reads and re-ranks the session's queue under the session's lock);
the guarantees are the session's (see :mod:`workbench.labels.session`).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.errors import ParameterError

if TYPE_CHECKING:
    import numpy as np

    from workbench.background import Latest

#: Queue orders that rank by the assistant's uncertainty.
ACTIVE_ORDERS = ("least_confidence", "margin", "entropy")
log = logging.getLogger("workbench.labels")


class AssistedQueue:
    """Suggestions, refits and active-learning order for a session (mixed into it)."""

    # the session's state this part uses (set by LabelingSession.__init__)
    assistant: Any
    order: str
    seed: int | None
    refit_every: int
    refit_error: Exception | None
    lock: threading.RLock
    queue: list[str]
    position: int
    rows: dict[str, int]
    current: str | None
    _embeddings: np.ndarray | None
    _values: dict[str, Any]
    _done: set[str]
    _refits: Latest
    _since_refit: int
    _closed: bool
    _callbacks: dict[str, list[Callable[..., None]]]

    if TYPE_CHECKING:

        def _prefetch_ahead(self) -> None: ...  # the session's

    @property
    def assistant_ready(self) -> bool:
        """Whether the assistant has a model to suggest and rank with."""
        a = self.assistant
        if a is None:
            return False
        ready = getattr(a, "__sklearn_is_fitted__", None)
        return bool(ready()) if ready is not None else hasattr(a, "classes_")

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: embeddings and class names of this annotator's single-class labels."""
        import numpy as np

        if self._embeddings is None:
            raise ParameterError("this session has no assistant and embeddings")
        with self.lock:
            pairs = [(self.rows[s], v) for s, v in self._values.items() if s in self.rows]
        pairs = [(r, v) for r, v in pairs if isinstance(v, str)]
        rows = np.fromiter((r for r, _ in pairs), np.int64, len(pairs))
        y = np.array([v for _, v in pairs], dtype=object)
        return self._embeddings[rows], y

    def suggest(self, sample_id: str | None = None, k: int = 3) -> list[tuple[str, float]]:
        """The assistant's top ``k`` ``(class, probability)`` for a sample (default: current).

        Empty without an assistant, before its first fit, or when every item is done.
        """
        sid = self.current if sample_id is None else sample_id
        if sid is None or not self.assistant_ready:
            return []
        top = self.assistant.suggest(self._embeddings[[self.rows[sid]]], k=k)[0]
        return [(str(c), float(p)) for c, p in top]

    def _rank(self, todo: list[str]) -> list[str]:
        """``todo`` in the active-learning order (a seeded shuffle before the first fit)."""
        if not todo:
            return []
        if not self.assistant_ready:
            todo = list(todo)
            random.Random(self.seed).shuffle(todo)
            return todo
        from workbench.assist import order

        rows = [self.rows[s] for s in todo]
        probs = self.assistant.predict_proba(self._embeddings[rows])
        return [todo[k] for k in order(probs, self.order, seed=self.seed)]

    def _after_label(self) -> None:
        if self.assistant is None or self._closed:
            return
        self._since_refit += 1
        first = not self.assistant_ready and not self._refits.busy
        if first or self._since_refit >= self.refit_every:
            self.refit()

    def refit(self) -> None:
        """Refit the assistant on this annotator's labels, on a background thread.

        Requests that arrive while a refit runs are merged into one more refit afterwards, on
        the labels of that moment. When it finishes, with an active order the queue ahead is
        re-ranked, and ``on_assistant`` callbacks run.
        """
        if self.assistant is None:
            raise ParameterError("this session has no assistant")
        with self.lock:
            self._since_refit = 0
            self._refits.submit(self._refit_job)

    def _refit_job(self) -> None:
        if self._closed:
            return
        try:
            X, y = self.training_set()  # the labels now, not those of the request
            if len(y) == 0:
                return
            self.assistant.refit_async(X, y).result()
            if self.order in ACTIVE_ORDERS:
                self._merge_ranked()
            error: Exception | None = None
        except Exception as e:  # never let a failed fit go unseen, nor stop labeling
            error = e
        with self.lock:
            if self._closed:
                return
            self.refit_error = error
            if error is not None and not self._callbacks["assistant"]:
                log.warning("assistant refit failed: %s", error)
            for fn in self._callbacks["assistant"]:
                fn(error)
        self._prefetch_ahead()

    def _merge_ranked(self) -> None:
        """Re-rank the items ahead; merge into the queue as it is *now* (it may have moved)."""
        with self.lock:
            tail = self.queue[self.position + 1 :]
        todo = [s for s in tail if s not in self._done]
        ranked = {s: k for k, s in enumerate(self._rank(todo))}  # slow: outside the lock
        with self.lock:  # the queue may have moved on meanwhile: merge, do not overwrite
            head = self.queue[: self.position + 1]
            tail = self.queue[self.position + 1 :]
            ahead = sorted(
                (s for s in tail if s not in self._done), key=lambda s: ranked.get(s, math.inf)
            )
            self.queue = head + ahead + [s for s in tail if s in self._done]

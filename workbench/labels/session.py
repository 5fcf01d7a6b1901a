"""LabelingSession: one annotator working through a catalog, every decision going to a LabelStore.

The session is the labeling views' core (``labeler.session``) and works the same from a plain
script. It owns the queue of samples and where the annotator is in it; the views only draw it.
What it guarantees:

- A label, skip or undo is committed to the store (durable on return, see
  :meth:`LabelStore.label`) *before* the session moves on, and ``on_submit`` / ``on_skip`` /
  ``on_undo`` callbacks run after the commit and before the move.
- A new session over the same store (after a kernel restart, say) resumes where this annotator
  left off (:meth:`LabelStore.last_position`), skipping what is already done; moving on wraps
  round to items passed over, and :attr:`current` is ``None`` only when every item is done.
- With an :class:`~workbench.assist.Assistant` and embeddings, the assistant is refit in the
  background as labels arrive (never delaying a submit). Refit requests made while one runs are
  merged into one more refit on the labels of that moment; with an active-learning order the
  queue *ahead* of the current item is then re-ranked in place: nothing done, shown or passed
  moves, and no sample is lost or repeated.
- With a ``render`` function, the next ``prefetch`` items are rendered ahead on a background
  thread, so showing the next item costs a look-up, not a decode.
- ``progress["session"]`` counts this session's decisions that stand: an undo of one of them
  takes it back, as it takes back ``done``. ``per_minute`` is a person's pace over a sliding
  window of wall time (:class:`~workbench.labels.rate.RateMeter`), ``None`` until there are
  enough decisions over enough time to mean something; scripted submits never count.
- :attr:`last_action` says what the latest submit, skip or undo recorded, for a view to confirm.
- ``blind`` hides which sample is shown (ids and paths give classes away); it is on by default
  when other annotators have labeled items of this queue, where independent judgements matter,
  and when the session serves an assignment.
- With an assignment for its round and task (:func:`workbench.quality.assign`), the session serves
  only the items assigned to its annotator. It never exposes other annotators' labels or gold
  answers: it reads only its own annotator's decisions and assigned ids (gold answers are
  ``gold`` events, never current labels), and while blind it refuses pre-annotations named after
  a person's or a consensus's labels.
- Boxes drawn by hand are clipped to their image by :func:`~.schema.clip_boxes`; a box value
  given explicitly is checked (by the session for its class, by the store for its geometry), never
  silently changed.

Example
-------
>>> session = LabelingSession(catalog, store, annotator="ana")  # doctest: +SKIP
>>> while session.current is not None:  # doctest: +SKIP
...     session.submit(my_label_for(session.current))
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench._validation import check_choice, check_positive_int
from workbench.background import Latest
from workbench.catalog import Catalog
from workbench.errors import LabelError, ParameterError
from workbench.labels import LabelStore
from workbench.labels._assisted import ACTIVE_ORDERS, AssistedQueue
from workbench.labels.prefetch import Prefetcher
from workbench.labels.rate import RateMeter
from workbench.labels.schema import clip_boxes
from workbench.labels.values import (
    KINDS,
    assigned_ids,
    assistant_embeddings,
    check_value,
    start_values,
    stored_value,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ACTIVE_ORDERS", "KINDS", "ORDERS", "LabelingSession", "clip_boxes"]

#: Orders that need no model; the active-learning ones are :data:`ACTIVE_ORDERS`.
ORDERS = ("catalog", "random")
_MAX_SECONDS = 600.0  # time on an item beyond this is a coffee break, not labeling effort


class LabelingSession(AssistedQueue):
    """The queue of one annotator over a catalog: order, resume, submit, skip, undo, progress.

    Parameters
    ----------
    catalog
        The samples to label (unreadable ones are left out).
    store
        Where decisions go. Its ``catalog`` (if any) validates sample ids.
    annotator
        Who is labeling; progress, resume and undo are per annotator.
    blind
        Whether views hide sample ids and paths (they may give the class away). ``None``
        (default): on when serving an assignment, or when other annotators have labels on items
        of this queue (same round and task), so each judges the image alone.
    assigned_only
        Serve only the items assigned to ``annotator`` in this round and task. ``None``
        (default): when the store holds an assignment for them. ``True`` without one is an
        error, as is an assignment that gives this annotator nothing.
    round, task
        The store's ``round`` and ``task`` the labels go to.
    kind
        ``"single"`` (one class name per sample), ``"multi"`` (a list of class names, a set:
        ``[]`` is a valid answer) or ``"boxes"`` (``[[x, y, w, h, class], ...]`` in
        original-image pixels; ``[]``: nothing to box).
    classes
        The classes offered (added to the store if missing); a box must have one of them.
        Default: the store's classes, or (single and multi) the catalog's when the store has
        none.
    pre_annotations
        Values to start from on samples this annotator has not decided yet (their own label
        wins once there is one): ``{sample id: value}``, or the name of an annotator or model in
        the store whose current labels (an import, a detector's :meth:`~LabelStore.suggest`
        events) to start from.
    order
        ``"catalog"``, ``"random"`` (seeded shuffle) or an active-learning strategy of
        :func:`workbench.assist.order` (``"least_confidence"``, ``"margin"``, ``"entropy"``:
        most uncertain first; needs ``assistant`` and ``embeddings``). Until the assistant has
        been fitted an active order starts as a seeded shuffle.
    seed
        Seed of the ``"random"`` order and of tie-breaking in active orders.
    assistant
        A :class:`workbench.assist.Assistant` (``kind="single"`` only), refit in the background
        every ``refit_every`` labels. A default Assistant without ``scale_on`` gets
        ``scale_on=embeddings`` here.
    embeddings
        ``(len(catalog), d)`` features of the catalog's rows, in ``catalog.ids`` order. Needed
        with ``assistant``.
    refit_every
        Refit the assistant after this many new labels.
    render, prefetch
        ``render(sample_id)`` (e.g. a thumbnail) is run ahead for the next ``prefetch`` items
        on a background thread; :meth:`rendered` returns it.
    lease
        Seconds an item taken from a pool (:func:`workbench.quality.assignment.open_pool`)
        stays this annotator's before another may get it; the pool serves the round and task
        when it has one (unless ``assigned_only=False``), one claim at a time.

    Attributes
    ----------
    queue : list of str
        The sample ids in the order they are offered.
    position : int
        Index of :attr:`current` in :attr:`queue` (``len(queue)`` once every item is done).
    lock : threading.RLock
        Held while the session changes and while its callbacks run.
    refit_error : Exception or None
        Why the latest background refit failed (``None`` after a refit that worked).
    blind : bool
        Whether sample ids and paths are to be hidden from the annotator.
    rate : RateMeter
        The annotator's pace (``progress["per_minute"]``).

    Notes
    -----
    One concept in about 600 lines: a position in a queue that two parties move, the annotator
    (go, submit, skip, undo) and the assistant's background re-ranking. Both work under one
    lock on one queue and one set of decisions; split apart, each half would reach into the
    other's state. Rendering ahead, which only reads the queue, is a helper of its own.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: LabelStore,
        *,
        annotator: str,
        blind: bool | None = None,
        assigned_only: bool | None = None,
        round: int = 0,
        task: str = "class",
        kind: str = "single",
        classes: Sequence[str] | None = None,
        pre_annotations: Mapping[str, Any] | str | None = None,
        order: str = "catalog",
        seed: int = 0,
        assistant: Any = None,
        embeddings: np.ndarray | None = None,
        refit_every: int = 10,
        render: Callable[[str], Any] | None = None,
        prefetch: int = 0,
        lease: float = 600.0,
    ) -> None:
        if not isinstance(catalog, Catalog):
            raise ParameterError(f"catalog must be a workbench Catalog, got {type(catalog)}")
        if not isinstance(store, LabelStore):
            raise ParameterError(f"store must be a LabelStore, got {type(store)}")
        if not isinstance(annotator, str) or not annotator:
            raise ParameterError(f"annotator must be a non-empty name, got {annotator!r}")
        check_choice(kind, "kind", KINDS)
        check_choice(order, "order", (*ORDERS, *ACTIVE_ORDERS))
        if order in ACTIVE_ORDERS and assistant is None:
            raise ParameterError(f"order={order!r} needs an assistant and embeddings")
        if assistant is not None and kind != "single":
            raise ParameterError(
                "the assistant suggests single labels: use kind='single' (Labeler: task='single')"
            )
        refit_every = check_positive_int(refit_every, "refit_every")
        if blind is not None:
            check_choice(blind, "blind", (True, False))
        if assigned_only is not None:
            check_choice(assigned_only, "assigned_only", (True, False))
        self.catalog, self.store, self.annotator = catalog, store, annotator
        self.round, self.task, self.kind = round, task, kind
        self.order, self.seed, self.assistant = order, seed, assistant
        self.refit_every = refit_every
        self._prefetch = Prefetcher(render, prefetch)
        self.render = render
        self.prefetch = self._prefetch.n
        ok = catalog.df["status"] == "ok"
        #: Samples that can be shown, in catalog order (unreadable files are left out).
        self.ids: list[str] = catalog.df.loc[ok, "id"].astype(str).tolist()
        if not self.ids:
            raise ParameterError("the catalog has no readable samples to label")
        mine = assigned_ids(store, annotator, round=round, task=task, assigned_only=assigned_only)
        #: Whether the queue is this annotator's share of an assignment.
        self.assigned: bool = mine is not None
        #: Whether items come one at a time from the store's pool, leased for ``lease`` seconds.
        self.pooled: bool = (
            mine is None and assigned_only is not False and store.has_pool(round=round, task=task)
        )
        self.lease = float(lease)
        if self.pooled:
            if order != "catalog":
                raise ParameterError("a pool serves items in its own order: use order='catalog'")
            mine = self._first_from_pool()
            readable = set(self.ids)
            self.ids = [i for i in mine if i in readable]
        elif mine is not None:
            self.ids = [i for i in self.ids if i in mine]
            if not self.ids:
                raise ParameterError(f"none of {annotator!r}'s assigned items can be read")
        self.classes = self._setup_classes(classes)
        self._class_rank = {c: k for k, c in enumerate(store.classes)}
        self.blind: bool = (
            (self.assigned or self.pooled or self._shared()) if blind is None else blind
        )
        self.pre_annotations: dict[str, Any] = start_values(
            store, pre_annotations, annotator=annotator, blind=self.blind, task=task, kind=kind
        )
        unknown = [i for i in self.pre_annotations if i not in catalog]
        if unknown:
            raise ParameterError(f"pre_annotations name samples not in the catalog: {unknown[:5]}")
        #: catalog row of each sample id (the row of its embedding)
        self.rows: dict[str, int] = {s: k for k, s in enumerate(catalog.df["id"].astype(str))}

        self.lock = threading.RLock()
        self.refit_error: Exception | None = None
        self._callbacks: dict[str, list[Callable[..., None]]] = {
            "submit": [], "skip": [], "undo": [], "assistant": [],
        }  # fmt: skip
        self.rate = RateMeter()
        self._mine: list[int] = []  # this session's decisions that stand (event ids)
        self.last_action: dict[str, Any] | None = None
        self._shown_at = time.monotonic()
        self._since_refit = 0
        self._closed = False
        self._refits = Latest("wb-label-assistant")
        self._embeddings = assistant_embeddings(assistant, embeddings, catalog)
        self._load_decisions()
        self._set_queue(self._initial_queue())
        self._resume()
        self._prefetch_ahead()

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"LabelingSession(annotator={self.annotator!r}, kind={self.kind!r}, "
            f"order={self.order!r}, done={p['done']}/{p['total']})"
        )

    # ------------------------------------------------------------------ construction
    def _setup_classes(self, classes: Sequence[str] | None) -> list[str]:
        store = self.store
        if classes is not None:
            store.add_classes(list(classes))
        if not store.classes and self.kind != "boxes" and self.catalog.classes:
            store.add_classes(self.catalog.classes)  # image-level classes: not box classes
        out = list(classes) if classes else store.classes
        if not out:
            what = "box classes" if self.kind == "boxes" else "classes"
            raise ParameterError(f"no {what}: pass classes=[...] or add them to the store")
        return out

    def _first_from_pool(self) -> list[str]:
        """What this annotator took from the pool before (resume), then one more claim."""
        where = {"round": self.round, "task": self.task}
        mine = self.store.leased_ids(self.annotator, **where)
        first = self.store.claim(self.annotator, lease=self.lease, **where)
        if first is None and not mine:
            raise ParameterError(
                f"the pool of round {self.round}, task {self.task!r} has nothing left for "
                f"{self.annotator!r}"
            )
        return [*mine, first] if first is not None and first not in mine else mine

    def _initial_queue(self) -> list[str]:
        ids = list(self.ids)
        if self.pooled:
            return ids
        if self.order == "random":
            random.Random(self.seed).shuffle(ids)
            return ids
        if self.order == "catalog":
            return ids
        # Active order: what is done first (browsable backwards), then the rest by uncertainty.
        done = [i for i in ids if i in self._done]
        todo = [i for i in ids if i not in self._done]
        X, y = self.training_set()
        if len(y) and not self.assistant_ready:
            self.assistant.fit(X, y)  # once, so the first order already means something
        return done + self._rank(todo)

    # ------------------------------------------------------------------ store state
    def _load_decisions(self) -> None:
        """This annotator's decisions from the store: what is done, and the current values."""
        who, rnd, task = self.annotator, self.round, self.task
        self._done = self.store.labeled_ids(who, round=rnd, task=task, include_skipped=True)
        cur = self.store.current(annotator=who, round=rnd, task=task)
        self._values: dict[str, Any] = dict(zip(cur["id"], cur["value"], strict=True))

    def _set_queue(self, queue: list[str]) -> None:
        self.queue = queue
        self._queue_set = set(queue)
        self._n_done = len(self._done & self._queue_set)

    def _shared(self) -> bool:
        """Whether other annotators have labels (or skips) on items of this queue."""
        others = self.store.current(annotator=None, round=self.round, task=self.task)
        others = others[others["annotator"] != self.annotator]
        return bool(others["id"].isin(set(self.ids)).any())

    def _resume(self) -> None:
        """Start at this annotator's last position, then at the first item not done yet."""
        last = self.store.last_position(self.annotator, round=self.round, task=self.task)
        start = self.queue.index(last) if last in self._queue_set else 0
        self.position = start
        if self.queue[start] in self._done:
            self._advance()

    # ------------------------------------------------------------------ navigation
    @property
    def current(self) -> str | None:
        """The sample id to label now; ``None`` once every item is done."""
        return self.queue[self.position] if self.position < len(self.queue) else None

    def go(self, where: int | str) -> None:
        """Move to queue position ``where`` (clipped), or to the sample with that id."""
        with self.lock:
            if isinstance(where, str):
                if where not in self._queue_set:
                    raise ParameterError(f"{where!r} is not one of the samples in this view")
                self.position = self.queue.index(where)
            else:
                self.position = min(max(0, int(where)), len(self.queue) - 1)
            self._moved()

    def next(self) -> None:
        """Browse forward one item (done or not)."""
        self.go(self.position + 1)

    def prev(self) -> None:
        """Browse back one item."""
        self.go(self.position - 1)

    def upcoming(self, n: int) -> list[str]:
        """The next ``n`` items the session will move to after the current one (not done)."""
        out: list[str] = []
        for sid in self.queue[self.position + 1 :]:
            if len(out) >= n:
                break
            if sid not in self._done:
                out.append(sid)
        return out

    def _advance(self) -> None:
        """Move to the next item not done (wrapping round); past the end when all are done.

        From a pool, the next item not done ahead, else a new claim, else the wrap-around.
        """
        if self.pooled and self._claim_next():
            return
        n = len(self.queue)
        for k in range(1, n + 1):
            j = (self.position + k) % n
            if self.queue[j] not in self._done:
                self.position = j
                return
        self.position = n

    def _claim_next(self) -> bool:
        ahead = [s for s in self.queue[self.position + 1 :] if s not in self._done]
        sid = (
            ahead[0]
            if ahead
            else self.store.claim(
                self.annotator, round=self.round, task=self.task, lease=self.lease
            )
        )
        if sid is None:
            return False
        if sid not in self._queue_set:
            self.queue.append(sid)
            self.ids.append(sid)
            self._queue_set.add(sid)
        self.position = self.queue.index(sid)
        return True

    def _moved(self) -> None:
        self._shown_at = time.monotonic()
        self._prefetch_ahead()

    def mark_shown(self) -> None:
        """The current item is in front of the annotator now: its labeling time starts here.

        Moving already starts the clock; a view calls this once the item is drawn.
        """
        self._shown_at = time.monotonic()

    # ------------------------------------------------------------------ decisions
    def _require_current(self) -> str:
        sid = self.current
        if sid is None:
            raise LabelError("every item is done; use prev() or go(i) to revisit one")
        return sid

    def _seconds(self) -> float:
        return min(time.monotonic() - self._shown_at, _MAX_SECONDS)

    def submit(self, value: Any, *, source: str = "human") -> int:
        """Label the current item, then move on to the next one not done.

        Parameters
        ----------
        value
            A class name (``kind="single"``), a list of class names (``"multi"``; a single
            name is taken as a list of one) or ``[[x, y, w, h, class], ...]`` (``"boxes"``).
        source
            ``"human"``, or ``"model"`` for an accepted suggestion.

        Returns
        -------
        int
            The label's event id; the label is committed before this returns.

        Raises
        ------
        LabelError
            Unknown class, malformed value, or nothing left to label; nothing is recorded.
        """
        with self.lock:
            value = check_value(value, self.kind, self.classes)
            sid = self._require_current()
            seconds = self._seconds()
            event = self.store.label(
                sid,
                value,
                annotator=self.annotator,
                round=self.round,
                task=self.task,
                seconds=seconds,
                source=source,
            )
            # Committed: from here on the label survives anything that happens to the caller.
            self._record(sid, seconds, event)
            self._values[sid] = stored_value(value, self.kind, self._class_rank)
            self.last_action = {
                "kind": "label", "id": sid, "value": self._values[sid], "event": event,
            }  # fmt: skip
            for fn in self._callbacks["submit"]:
                fn(sid, self._values[sid])
            self._after_label()
            self._advance()
            self._moved()
            return event

    def skip(self) -> int:
        """Pass on the current item (recorded as a ``skip``: done, no label); move on.

        Returns the event id.
        """
        with self.lock:
            sid = self._require_current()
            seconds = self._seconds()
            event = self.store.skip(
                sid, annotator=self.annotator, round=self.round, task=self.task, seconds=seconds
            )
            self._record(sid, seconds, event)
            self._values.pop(sid, None)
            self.last_action = {"kind": "skip", "id": sid, "value": None, "event": event}
            for fn in self._callbacks["skip"]:
                fn(sid)
            self._advance()
            self._moved()
            return event

    def undo(self) -> str | None:
        """Cancel this annotator's latest label or skip and move back to that item.

        Calling it again cancels the decision before, and so on. Returns the sample id whose
        decision was undone, or ``None`` when there was nothing to undo.
        """
        with self.lock:
            event = self.store.undo(annotator=self.annotator, round=self.round, task=self.task)
            if event is None:
                return None
            sid = self.store.last_position(self.annotator, round=self.round, task=self.task)
            self._forget(self._undone_target(sid))
            self._load_decisions()  # the undone item may show an older label, or none
            self._n_done = len(self._done & self._queue_set)
            if self.assistant is not None and not self._closed:
                self.refit()
            if sid in self._queue_set:
                self.position = self.queue.index(sid)
            self.last_action = {"kind": "undo", "id": sid, "value": None, "event": event}
            for fn in self._callbacks["undo"]:
                fn(sid)
            self._moved()
            return sid

    def _record(self, sid: str, seconds: float, event: int) -> None:
        if sid not in self._done:
            self._done.add(sid)
            self._n_done += sid in self._queue_set
        self._mine.append(event)
        self.rate.add(seconds, event)

    def _undone_target(self, sid: str | None) -> int | None:
        """The event the latest undo (on ``sid``) cancelled."""
        if sid is None:
            return None
        undos = self.store.history(sid, self.annotator, kind="undo", task=self.task)
        return None if undos.empty else int(undos["target"].iloc[-1])

    def _forget(self, event: int | None) -> None:
        """An undo cancelled ``event``: if it was this session's, it no longer counts."""
        if event in self._mine:
            self._mine.remove(event)
            self.rate.remove(event)

    # ------------------------------------------------------------------ callbacks
    def on_submit(self, fn: Callable[[str, Any], None]) -> None:
        """Call ``fn(sample_id, value)`` after each label is committed, before moving on."""
        self._callbacks["submit"].append(fn)

    def on_skip(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(sample_id)`` after each skip is committed."""
        self._callbacks["skip"].append(fn)

    def on_undo(self, fn: Callable[[str | None], None]) -> None:
        """Call ``fn(sample_id)`` after an undo, with the sample whose decision was undone."""
        self._callbacks["undo"].append(fn)

    def on_assistant(self, fn: Callable[[Exception | None], None]) -> None:
        """Call ``fn(error)`` after each background refit, on its thread with :attr:`lock` held.

        ``error`` is ``None`` when the new model is in use (its suggestions, and with an active
        order the queue ahead, changed), else the exception that stopped the refit (labeling
        goes on with the previous model). Without such a callback a failure is logged.
        """
        self._callbacks["assistant"].append(fn)

    # ------------------------------------------------------------------ progress
    def value_of(self, sample_id: str) -> Any:
        """This annotator's current label of a sample (``None`` if unlabeled or skipped)."""
        return self._values.get(sample_id)

    def status(self, sample_id: str) -> str:
        """``"labeled"``, ``"skipped"`` or ``"todo"`` for this annotator."""
        if sample_id in self._values:
            return "labeled"
        return "skipped" if sample_id in self._done else "todo"

    def start_value(self, sample_id: str) -> Any:
        """What to show for editing: this annotator's label, else a pre-annotation, else None."""
        if sample_id in self._values:
            return self._values[sample_id]
        if sample_id in self._done:
            return None  # skipped: the annotator saw the pre-annotation and passed
        return self.pre_annotations.get(sample_id)

    def original_size(self, sample_id: str) -> tuple[int, int]:
        """``(width, height)`` of a sample's image in original pixels (the catalog's)."""
        row = self.catalog.df.iloc[self.rows[sample_id]]
        return int(row["width"]), int(row["height"])

    @property
    def progress(self) -> dict[str, Any]:
        """``done`` and ``total`` (items of this session), ``session`` (this session's
        decisions that stand: an undo takes one back) and ``per_minute`` (the annotator's pace
        over the last minutes of wall time, ``None`` until it means something: see
        :class:`~workbench.labels.rate.RateMeter`)."""
        return {
            "done": self._n_done,
            "total": len(self.queue),
            "session": len(self._mine),
            "per_minute": self.rate.per_minute,
        }

    # ------------------------------------------------------------------ prefetch
    def rendered(self, sample_id: str) -> Any:
        """``render(sample_id)``: taken from the prefetch when it is there, else run now."""
        return self._prefetch.take(sample_id)

    @property
    def prefetched(self) -> list[str]:
        """Ids rendered (or being rendered) ahead, oldest request first."""
        return self._prefetch.ids()

    def _prefetch_ahead(self) -> None:
        if self.prefetch and not self._closed:
            with self.lock:
                self._prefetch.ahead(self.upcoming(self.prefetch))

    # ------------------------------------------------------------------ lifetime
    def wait(self, timeout: float = 120.0) -> None:
        """Block until background refits, reorders and prefetches have finished.

        For scripts and tests; labeling never needs to wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self._refits.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"the assistant was still fitting after {timeout} s")
            self._prefetch.wait(max(0.0, deadline - time.monotonic()))
            if not self._refits.busy:
                return

    def close(self) -> None:
        """Stop the background threads (a refit in progress finishes, unseen)."""
        self._closed = True
        self._refits.close()
        self._prefetch.close()

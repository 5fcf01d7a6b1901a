"""Labeler: label images one at a time, mostly from the keyboard; every decision goes to a store.

The view is a VBox over one :class:`~workbench.labels.LabelStore` (``labeler.store``). What it
guarantees:

- A label, skip or undo is committed to the store (durable on return, see
  :meth:`LabelStore.label`) *before* the view moves on: when the next image appears, the decision
  is on disk. ``on_submit`` callbacks run after the commit and before the view moves.
- The next images are rendered ahead on a background thread, so moving on costs a dictionary
  look-up, not a decode.
- Re-creating the view over the same store (after a kernel restart, say) resumes where this
  annotator left off (:meth:`LabelStore.last_position`), skipping what is already done.
- With an :class:`~workbench.assist.Assistant` and embeddings, its top-3 suggestions show next to
  the image (one key accepts one), it is refit on a background thread as labels arrive (never
  delaying a submit), and an active-learning order puts the most uncertain images next.

Keyboard (with the pointer over the image, buttons or suggestions)::

    1 2 … 9 0 q w   the class shown on each button (multi-label: toggles it)
    Enter           submit the selected classes (multi-label)
    Escape          clear the selection (multi-label)
    a, ⇧1 ⇧2 ⇧3     accept the assistant's 1st / 1st, 2nd, 3rd suggestion
    s               skip (done, no label)
    Backspace       undo the last decision (the view goes back to that image)
    ← →             browse back / forward
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Any

import ipywidgets as W
from ipyevents import Event

from workbench.catalog import Catalog
from workbench.errors import ParameterError
from workbench.labels import LabelError, LabelStore
from workbench.thumbs import Thumb, escape
from workbench.views._common import ErrorBanner, guarded

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CLASS_KEYS", "ORDERS", "Labeler"]

#: Hotkeys of the class buttons, in class order ("a" and "s" are taken: accept, skip).
CLASS_KEYS = "1234567890qwertyuiop"
#: Class buttons shown by default; past this many classes a search box takes any class.
MAX_BUTTONS = 12
#: Orders that need no model; the active-learning ones are :data:`ACTIVE_ORDERS`.
ORDERS = ("catalog", "random")
ACTIVE_ORDERS = ("least_confidence", "margin", "entropy")
_SHIFT_DIGITS = {"Digit1": 1, "Digit2": 2, "Digit3": 3, "!": 1, "@": 2, "#": 3}
_MAX_SECONDS = 600.0  # time on an item beyond this is a coffee break, not labeling effort


def _done_tile(size: int, text: str) -> Thumb:
    """A light tile with a line of text: shown when there is nothing left to label."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, max(48, size // 3)), (240, 246, 240))
    ImageDraw.Draw(im).text((12, im.height // 2 - 6), text, fill=(40, 110, 40))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return Thumb(buf.getvalue(), "png")


class _SampleQueue:
    """The part every labeling view shares: the queue of samples, the store, resume, undo.

    Subclasses set up their widgets, then call :meth:`_start`, and implement :meth:`_render`
    (show ``self.current``) and :meth:`_error_banner`.
    """

    catalog: Catalog
    store: LabelStore
    error: ErrorBanner

    def _setup_queue(
        self,
        catalog: Catalog,
        store: LabelStore,
        *,
        annotator: str,
        round: int,
        store_task: str,
        seed: int,
    ) -> None:
        if not isinstance(catalog, Catalog):
            raise ParameterError(f"catalog must be a workbench Catalog, got {type(catalog)}")
        if not isinstance(store, LabelStore):
            raise ParameterError(f"store must be a LabelStore, got {type(store)}")
        if not isinstance(annotator, str) or not annotator:
            raise ParameterError(f"annotator must be a non-empty name, got {annotator!r}")
        self.catalog = catalog
        self.store = store
        self.annotator = annotator
        self.round = round
        self.store_task = store_task
        self.seed = seed
        ok = catalog.df["status"] == "ok"
        #: Samples that can be shown, in catalog order (unreadable files are left out).
        self.ids: list[str] = catalog.df.loc[ok, "id"].astype(str).tolist()
        if not self.ids:
            raise ParameterError("the catalog has no readable samples to label")
        self._lock = threading.RLock()
        self._submit_callbacks: list[Callable[[str, Any], None]] = []
        self._skip_callbacks: list[Callable[[str], None]] = []
        self._undo_callbacks: list[Callable[[str | None], None]] = []
        self._durations: deque[float] = deque(maxlen=20)
        self._session = 0
        self._shown_at = time.monotonic()
        self._load_decisions()

    # ------------------------------------------------------------------ store state
    def _load_decisions(self) -> None:
        """This annotator's decisions from the store: what is done, and the current values."""
        who, rnd, task = self.annotator, self.round, self.store_task
        self._done = self.store.labeled_ids(who, round=rnd, task=task, include_skipped=True)
        cur = self.store.current(annotator=who, round=rnd, task=task)
        self._values: dict[str, Any] = dict(zip(cur["id"], cur["value"], strict=True))

    def _set_queue(self, queue: list[str]) -> None:
        self.queue = queue
        self._queue_set = set(queue)
        self._n_done = len(self._done & self._queue_set)

    def _resume(self) -> None:
        """Start at this annotator's last position, then at the first item not done yet."""
        last = self.store.last_position(self.annotator, round=self.round, task=self.store_task)
        start = self.queue.index(last) if last in self._queue_set else 0
        self.position = start
        if self.queue[start] in self._done:
            self._advance()

    # ------------------------------------------------------------------ navigation
    @property
    def current(self) -> str | None:
        """The sample id shown now; ``None`` once every item is done."""
        return self.queue[self.position] if self.position < len(self.queue) else None

    @property
    def index(self) -> int:
        """Position of the current item in :attr:`queue` (``len(queue)`` when all are done)."""
        return self.position

    def go(self, where: int | str) -> None:
        """Show the item at queue position ``where`` (clipped), or the sample with that id."""
        with self._lock:
            if isinstance(where, str):
                if where not in self._queue_set:
                    raise ParameterError(f"{where!r} is not one of the samples in this view")
                self.position = self.queue.index(where)
            else:
                self.position = min(max(0, int(where)), len(self.queue) - 1)
            self._show()

    def next(self) -> None:
        """Browse forward one item (done or not)."""
        self.go(self.position + 1)

    def prev(self) -> None:
        """Browse back one item."""
        self.go(self.position - 1)

    def _upcoming(self, n: int) -> list[str]:
        """The next ``n`` items the view will move to after the current one (not done)."""
        out: list[str] = []
        for sid in self.queue[self.position + 1 :]:
            if len(out) >= n:
                break
            if sid not in self._done:
                out.append(sid)
        return out

    def _advance(self) -> None:
        """Move to the next item not done (wrapping round); past the end when all are done."""
        n = len(self.queue)
        for k in range(1, n + 1):
            j = (self.position + k) % n
            if self.queue[j] not in self._done:
                self.position = j
                return
        self.position = n

    # ------------------------------------------------------------------ decisions
    def _seconds(self) -> float:
        return min(time.monotonic() - self._shown_at, _MAX_SECONDS)

    def _commit(self, value: Any, *, source: str = "human") -> int:
        """Write a label for the current item, then move on; errors show inline and raise."""
        with self._lock:
            sid = self._require_current()
            seconds = self._seconds()
            try:
                event = self.store.label(
                    sid,
                    value,
                    annotator=self.annotator,
                    round=self.round,
                    task=self.store_task,
                    seconds=seconds,
                    source=source,
                )
            except LabelError as e:
                self.error.show(str(e))
                raise
            # Committed: from here on the label survives anything that happens to the view.
            self.error.clear()
            self._record(sid, seconds)
            self._values[sid] = self._stored_value(value)
            for fn in self._submit_callbacks:
                fn(sid, self._values[sid])
            self._after_label(sid)
            self._advance()
            self._show()
            return event

    def _stored_value(self, value: Any) -> Any:
        """The value as the store gives it back (a multi-label set comes in class order)."""
        return value

    def _after_label(self, sample_id: str) -> None:
        """Hook: a label was committed (the assistant refits here)."""

    def _record(self, sid: str, seconds: float) -> None:
        if sid not in self._done:
            self._done.add(sid)
            self._n_done += sid in self._queue_set
        self._durations.append(seconds)
        self._session += 1

    def _require_current(self) -> str:
        sid = self.current
        if sid is None:
            err = LabelError("every item is done; use prev() or go(i) to revisit one")
            self.error.show(str(err))
            raise err
        return sid

    def skip(self) -> int:
        """Pass on the current item (recorded as a ``skip``: done, no label); move on.

        Returns the event id.
        """
        with self._lock:
            sid = self._require_current()
            seconds = self._seconds()
            try:
                event = self.store.skip(
                    sid,
                    annotator=self.annotator,
                    round=self.round,
                    task=self.store_task,
                    seconds=seconds,
                )
            except LabelError as e:
                self.error.show(str(e))
                raise
            self.error.clear()
            self._record(sid, seconds)
            self._values.pop(sid, None)
            for fn in self._skip_callbacks:
                fn(sid)
            self._advance()
            self._show()
            return event

    def undo(self) -> str | None:
        """Cancel this annotator's latest label or skip and show that item again.

        Calling it again cancels the decision before, and so on. Returns the sample id whose
        decision was undone, or ``None`` when there was nothing to undo.
        """
        with self._lock:
            try:
                event = self.store.undo(
                    annotator=self.annotator, round=self.round, task=self.store_task
                )
            except LabelError as e:
                self.error.show(str(e))
                raise
            if event is None:
                self.error.show("nothing to undo")
                return None
            self.error.clear()
            sid = self.store.last_position(self.annotator, round=self.round, task=self.store_task)
            self._load_decisions()  # the undone item may show an older label, or none
            self._n_done = len(self._done & self._queue_set)
            self._after_undo(sid)
            if sid in self._queue_set:
                self.position = self.queue.index(sid)
            for fn in self._undo_callbacks:
                fn(sid)
            self._show()
            return sid

    def _after_undo(self, sample_id: str | None) -> None:
        """Hook: a decision was undone."""

    # ------------------------------------------------------------------ callbacks
    def on_submit(self, fn: Callable[[str, Any], None]) -> None:
        """Call ``fn(sample_id, value)`` after each label is committed, before the view moves."""
        self._submit_callbacks.append(fn)

    def on_skip(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(sample_id)`` after each skip is committed."""
        self._skip_callbacks.append(fn)

    def on_undo(self, fn: Callable[[str | None], None]) -> None:
        """Call ``fn(sample_id)`` after an undo, with the sample whose decision was undone."""
        self._undo_callbacks.append(fn)

    # ------------------------------------------------------------------ progress
    def value_of(self, sample_id: str) -> Any:
        """This annotator's current label of a sample (``None`` if unlabeled or skipped)."""
        return self._values.get(sample_id)

    @property
    def progress(self) -> dict[str, Any]:
        """``done`` and ``total`` (items of this view), ``session`` (decisions since the view
        was built) and ``per_minute`` (from the time spent on the last 20 items, or None)."""
        spent = sum(self._durations)
        return {
            "done": self._n_done,
            "total": len(self.queue),
            "session": self._session,
            "per_minute": 60.0 * len(self._durations) / spent if spent > 0 else None,
        }

    def _progress_html(self) -> str:
        p = self.progress
        rate = "–" if p["per_minute"] is None else f"{p['per_minute']:.1f}"
        pct = 100.0 * p["done"] / p["total"] if p["total"] else 100.0
        return (
            f'<span class="wb-progress-text"><b>{p["done"]:,}</b> / {p["total"]:,} done '
            f"({pct:.0f} %) · {p['session']:,} this session · {rate} per minute</span>"
        )

    def _show(self) -> None:  # pragma: no cover - implemented by the views
        raise NotImplementedError


class Labeler(_SampleQueue, W.VBox):
    """Label the images of a catalog one at a time (single- or multi-label).

    Parameters
    ----------
    catalog
        The samples to label (unreadable ones are left out). ``labeler.catalog``.
    store
        Where decisions go. ``labeler.store``. Its ``catalog`` (if any) validates sample ids.
    annotator
        Who is labeling; progress, resume and undo are per annotator.
    task
        ``"single"`` (one class per image: a class key submits) or ``"multi"`` (a set of
        classes: class keys toggle, Enter submits; an empty set is a valid answer).
    order
        ``"catalog"`` (catalog order), ``"random"`` (seeded shuffle) or an active-learning
        strategy of :func:`workbench.assist.order` (``"least_confidence"``, ``"margin"``,
        ``"entropy"``: most uncertain first; needs ``assistant`` and ``embeddings``). Until the
        assistant has been fitted an active order starts as a seeded shuffle.
    assistant
        A :class:`workbench.assist.Assistant` (single-label only). Its top-3 suggestions show
        beside the image; it is refit in the background every ``refit_every`` labels. A default
        Assistant without ``scale_on`` gets ``scale_on=embeddings`` here.
    embeddings
        ``(len(catalog), d)`` features of the catalog's rows, in ``catalog.ids`` order
        (:meth:`workbench.assist.Embedder.embed`). Needed with ``assistant``.
    classes
        Class names to make sure exist in the store (added if missing). The view offers all of
        the store's classes; with none given and none in the store, ``catalog.classes``.
    pinned
        Classes that get a button and hotkey (at most 20); default: the first 12.
    image_size
        Edge of the box the image is fitted into, in pixels (tiny images are enlarged with
        nearest-neighbour, so their pixels stay sharp).
    prefetch
        How many upcoming images to render ahead on a background thread (0: none).
    refit_every
        Refit the assistant after this many new labels.
    round, store_task
        The store's ``round`` and ``task`` the labels go to (``task="class"`` by default).
    seed
        Seed of the ``"random"`` order and of tie-breaking in active orders.

    Attributes
    ----------
    queue : list of str
        The sample ids in the order they are offered.
    suggestions : list of (str, float)
        The assistant's top-3 for the current item (empty without a fitted assistant).
    image : ipywidgets.Image
        The large image (class ``wb-image``).
    """

    def __init__(
        self,
        catalog: Catalog,
        store: LabelStore,
        *,
        annotator: str,
        task: str = "single",
        order: str = "catalog",
        assistant: Any = None,
        embeddings: np.ndarray | None = None,
        classes: Sequence[str] | None = None,
        pinned: Sequence[str] | None = None,
        image_size: int = 384,
        prefetch: int = 5,
        refit_every: int = 10,
        round: int = 0,
        store_task: str = "class",
        seed: int = 0,
    ) -> None:
        if task not in ("single", "multi"):
            raise ParameterError(f"task must be 'single' or 'multi', got {task!r}")
        if order not in (*ORDERS, *ACTIVE_ORDERS):
            raise ParameterError(f"order must be one of {[*ORDERS, *ACTIVE_ORDERS]}, got {order!r}")
        if order in ACTIVE_ORDERS and assistant is None:
            raise ParameterError(f"order={order!r} needs an assistant and embeddings")
        if assistant is not None and task != "single":
            raise ParameterError("the assistant suggests single labels: use task='single'")
        if not isinstance(image_size, int) or image_size < 16:
            raise ParameterError(f"image_size must be an integer >= 16, got {image_size!r}")
        if not isinstance(refit_every, int) or refit_every < 1:
            raise ParameterError(f"refit_every must be a positive integer, got {refit_every!r}")
        self.task = task
        self.order = order
        self.assistant = assistant
        self.image_size = image_size
        self.prefetch = max(0, int(prefetch))
        self.refit_every = refit_every
        self.suggestions: list[tuple[str, float]] = []
        self._pending: set[str] = set()
        self._syncing = False
        self._since_refit = 0
        self._refit_wanted = False
        self._refit_job: Future | None = None
        self._closed = False
        self._prefetched: OrderedDict[str, Future] = OrderedDict()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wb-label-prefetch")
        self._bg = ThreadPoolExecutor(1, thread_name_prefix="wb-label-assistant")
        self.error = ErrorBanner()
        self._setup_queue(
            catalog, store, annotator=annotator, round=round, store_task=store_task, seed=seed
        )
        self._embeddings = self._check_embeddings(embeddings)
        self._row = {sid: k for k, sid in enumerate(catalog.df["id"].astype(str))}

        if classes is not None:
            store.add_classes(list(classes))
        if not store.classes:
            if not catalog.classes:
                raise ParameterError("no classes: pass classes=[...] or add them to the store")
            store.add_classes(catalog.classes)
        self.classes: list[str] = store.classes
        self._build_widgets(pinned)
        self._set_queue(self._initial_queue())
        self._resume()
        self._show()

    # ------------------------------------------------------------------ construction
    def _check_embeddings(self, embeddings: Any) -> np.ndarray | None:
        if self.assistant is None:
            return None
        import numpy as np

        if embeddings is None:
            raise ParameterError(
                "an assistant needs embeddings: Embedder().embed(catalog, cache=workspace)"
            )
        X = np.asarray(embeddings)
        if X.ndim != 2 or len(X) != len(self.catalog.df):
            raise ParameterError(
                f"embeddings must have one row per catalog sample ({len(self.catalog.df)}, d), "
                f"got shape {X.shape}"
            )
        from workbench.assist import Assistant

        a = self.assistant
        if isinstance(a, Assistant) and a.classifier is None and a.scale_on is None:
            a.scale_on = X  # scale on every sample, not the biased labelled set (see Assistant)
        return X

    def _build_widgets(self, pinned: Sequence[str] | None) -> None:
        if pinned is None:
            pinned = self.classes[:MAX_BUTTONS]
        pinned = list(dict.fromkeys(pinned))
        unknown = [c for c in pinned if c not in self.classes]
        if unknown:
            raise ParameterError(f"pinned classes {unknown} are not classes of the store")
        if len(pinned) > len(CLASS_KEYS):
            raise ParameterError(f"at most {len(CLASS_KEYS)} classes can be pinned")
        #: hotkey -> class name
        self.keymap: dict[str, str] = dict(zip(CLASS_KEYS, pinned, strict=False))

        self.progress_label = W.HTML().add_class("wb-progress")
        self.assistant_label = W.HTML(layout=W.Layout(margin="0 0 0 24px"))
        self.assistant_label.add_class("wb-assistant")
        self.image = W.Image(
            format="png",
            layout=W.Layout(
                width=f"{self.image_size}px", height=f"{self.image_size}px", object_fit="contain"
            ),
        ).add_class("wb-image")
        self.info = W.HTML().add_class("wb-info")
        self.suggestion_header = W.HTML("<b>Suggestions</b>", layout=W.Layout(display="none"))
        self.suggestion_buttons: list[W.Button] = []
        for k in (1, 2, 3):
            b = W.Button(layout=W.Layout(width="260px", display="none")).add_class("wb-suggestion")
            b.button_style = "info" if k == 1 else ""
            b.on_click(lambda _b, k=k: self._on_suggestion_click(k))
            self.suggestion_buttons.append(b)
        self.suggestion_box = W.VBox([self.suggestion_header, *self.suggestion_buttons]).add_class(
            "wb-suggestions"
        )
        self.class_buttons: dict[str, W.Button | W.ToggleButton] = {}
        for key, name in self.keymap.items():
            if self.task == "single":
                b = W.Button(description=f"{key} · {name}", tooltip=name)
                b.on_click(lambda _b, name=name: self._on_class_click(name))
            else:
                b = W.ToggleButton(description=f"{key} · {name}", tooltip=name)
                b.observe(lambda ch, name=name: self._on_class_toggle(name, ch), "value")
            b.add_class("wb-class")
            b.layout = W.Layout(width="auto", min_width="90px")
            self.class_buttons[name] = b
        self.buttons = W.HBox(
            list(self.class_buttons.values()), layout=W.Layout(flex_flow="row wrap")
        ).add_class("wb-classes")
        self.search: W.Combobox | None = None
        if len(self.classes) > len(self.keymap):
            self.search = W.Combobox(
                options=self.classes,
                placeholder=f"any of {len(self.classes)} classes: type, then Enter",
                ensure_option=False,
                continuous_update=False,
                layout=W.Layout(width="340px"),
            ).add_class("wb-class-search")
            self.search.observe(self._on_search_change, "value")

        def button(text: str, cls: str, handler: Callable[[W.Button], None]) -> W.Button:
            b = W.Button(description=text, layout=W.Layout(width="auto")).add_class(cls)
            b.on_click(handler)
            return b

        self.prev_button = button("◀ Back", "wb-prev", self._on_prev_click)
        self.skip_button = button("Skip (s)", "wb-skip", self._on_skip_click)
        self.undo_button = button("Undo (⌫)", "wb-undo", self._on_undo_click)
        self.next_button = button("Forward ▶", "wb-next", self._on_next_click)
        self.submit_button = button("Submit (Enter)", "wb-submit", self._on_submit_click)
        self.submit_button.button_style = "primary"
        nav = [self.prev_button, self.skip_button, self.undo_button, self.next_button]
        if self.task == "multi":
            nav.insert(0, self.submit_button)
        keys = "".join(self.keymap)
        first = f"{keys[0]}–{keys[-1]}" if len(keys) > 1 else keys
        what = "toggle a class · Enter submit · Esc clear" if self.task == "multi" else "label"
        help_text = (
            f"Keys (pointer over the image): {first} {what} · "
            + ("a or ⇧1–3 accept a suggestion · " if self.assistant is not None else "")
            + "s skip · ⌫ undo · ← → browse"
        )
        self.help = W.HTML(f'<span style="color:#666;font-size:12px">{escape(help_text)}</span>')

        side = W.VBox(
            [self.info, self.suggestion_box], layout=W.Layout(padding="0 0 0 12px", width="320px")
        )
        #: Keys are read while the pointer is over this part (not over the search box, so
        #: typing a class name there works).
        self.board = W.VBox([W.HBox([self.image, side]), self.buttons, W.HBox(nav)]).add_class(
            "wb-board"
        )
        rows: list[W.Widget] = [
            W.HBox([self.progress_label, self.assistant_label]),
            self.error,
            self.board,
        ]
        if self.search is not None:
            rows.append(self.search)
        rows.append(self.help)
        W.VBox.__init__(self, rows)
        self.add_class("wb-labeler")
        self._keys = Event(
            source=self.board, watched_events=["keydown"], prevent_default_action=True
        )
        self._keys.on_dom_event(self._on_key)

    def _initial_queue(self) -> list[str]:
        ids = list(self.ids)
        if self.order == "random":
            random.Random(self.seed).shuffle(ids)
            return ids
        if self.order == "catalog":
            return ids
        # Active order: what is done first (browsable with ←), then the rest by uncertainty.
        done = [i for i in ids if i in self._done]
        todo = [i for i in ids if i not in self._done]
        X, y = self._training_set()
        if len(y) and not self._assistant_ready():
            self.assistant.fit(X, y)  # once, so the first order already means something
        return done + self._rank(todo)

    # ------------------------------------------------------------------ assistant
    def _assistant_ready(self) -> bool:
        a = self.assistant
        if a is None:
            return False
        ready = getattr(a, "__sklearn_is_fitted__", None)
        return bool(ready()) if ready is not None else hasattr(a, "classes_")

    def _training_set(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        with self._lock:
            pairs = [(self._row[s], v) for s, v in self._values.items() if s in self._row]
        pairs = [(r, v) for r, v in pairs if isinstance(v, str)]
        rows = np.fromiter((r for r, _ in pairs), np.int64, len(pairs))
        y = np.array([v for _, v in pairs], dtype=object)
        return self._embeddings[rows], y

    def _rank(self, todo: list[str]) -> list[str]:
        """``todo`` in the active-learning order (a seeded shuffle before the first fit)."""
        if not todo:
            return []
        if not self._assistant_ready():
            todo = list(todo)
            random.Random(self.seed).shuffle(todo)
            return todo
        from workbench.assist import order

        rows = [self._row[s] for s in todo]
        probs = self.assistant.predict_proba(self._embeddings[rows])
        return [todo[k] for k in order(probs, self.order, seed=self.seed)]

    def _after_label(self, sample_id: str) -> None:
        if self.assistant is None:
            return
        self._since_refit += 1
        first = not self._assistant_ready() and self._refit_job is None
        if first or self._since_refit >= self.refit_every:
            self.refit()

    def _after_undo(self, sample_id: str | None) -> None:
        if self.assistant is not None:
            self.refit()

    def refit(self) -> None:
        """Refit the assistant on this annotator's labels, on a background thread.

        Requests that arrive while a refit runs are merged into one more refit afterwards. When
        it finishes, the suggestions and (with an active order) the queue ahead are updated.
        """
        if self.assistant is None:
            raise ParameterError("this Labeler has no assistant")
        with self._lock:
            self._since_refit = 0
            self._refit_wanted = True
            if self._refit_job is None:
                self._refit_job = self._bg.submit(self._refit_loop)

    def _refit_loop(self) -> None:
        while True:
            with self._lock:
                if not self._refit_wanted or self._closed:
                    self._refit_job = None
                    return
                self._refit_wanted = False
            try:
                X, y = self._training_set()
                if len(y) == 0:
                    continue
                self.assistant.refit_async(X, y).result()
                self._after_refit()
            except Exception as e:  # never let a failed fit go unseen, nor stop labeling
                import logging

                logging.getLogger("workbench.views").warning("assistant refit failed: %s", e)
                with self._lock:
                    self.error.show(f"the assistant could not be refit: {e}")

    def _after_refit(self) -> None:
        if self.order in ACTIVE_ORDERS:
            with self._lock:
                tail = self.queue[self.position + 1 :]
            todo = [s for s in tail if s not in self._done]
            ranked = {s: k for k, s in enumerate(self._rank(todo))}
            with self._lock:  # the queue may have moved on meanwhile: merge, do not overwrite
                head = self.queue[: self.position + 1]
                tail = self.queue[self.position + 1 :]
                ahead = sorted(
                    (s for s in tail if s not in self._done), key=lambda s: ranked.get(s, math.inf)
                )
                self.queue = head + ahead + [s for s in tail if s in self._done]
        with self._lock:
            self._update_suggestions()
            self._render_assistant()
            self._prefetch_ahead()

    def wait(self, timeout: float = 120.0) -> None:
        """Block until background refits, reorders and prefetches have finished.

        For scripts and tests; labeling never needs to wait.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                job = self._refit_job
                fetches = list(self._prefetched.values())
            futures_wait(fetches, timeout=max(0.0, deadline - time.monotonic()))
            if job is None:
                return
            try:
                job.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"the assistant was still fitting after {timeout} s") from None

    def _update_suggestions(self) -> None:
        sid = self.current
        if sid is None or not self._assistant_ready():
            self.suggestions = []
        else:
            top = self.assistant.suggest(self._embeddings[[self._row[sid]]], k=3)[0]
            self.suggestions = [(str(c), float(p)) for c, p in top]
        for k, b in enumerate(self.suggestion_buttons, start=1):
            if k <= len(self.suggestions):
                name, p = self.suggestions[k - 1]
                keys = "a / ⇧1" if k == 1 else f"⇧{k}"
                b.description = f"{keys}   {name}   {p:.0%}"
                b.tooltip = f"accept {name}"
                b.layout.display = None
            elif b.layout.display != "none":
                b.layout.display = "none"
        self.suggestion_header.layout.display = None if self.suggestions else "none"

    def _render_assistant(self) -> None:
        if self.assistant is None:
            self.assistant_label.value = ""
            return
        if not self._assistant_ready():
            text = "assistant: waiting for labels"
        else:
            acc = getattr(self.assistant, "cv_accuracy_", float("nan"))
            n = getattr(self.assistant, "n_labels_", None)
            acc_s = "n/a (needs 2 labels in 2 classes)" if acc != acc else f"{acc:.1%}"
            text = f"assistant: cross-validated accuracy {acc_s}" + (
                f" on {n:,} labels" if n is not None else ""
            )
        self.assistant_label.value = f'<span style="color:#555">{escape(text)}</span>'

    # ------------------------------------------------------------------ public API
    def submit(self, value: str | Sequence[str] | None = None) -> int:
        """Label the current item and move on to the next one not done.

        Parameters
        ----------
        value
            Single-label: a class name. Multi-label: a list of class names (``[]``: none of
            them); ``None`` submits the classes selected with the keys or buttons.

        Returns
        -------
        int
            The label's event id; the label is committed before this returns (and before the
            next image is shown).

        Raises
        ------
        LabelError
            Unknown class, malformed value, or nothing left to label. The message also shows
            in the view; nothing is recorded.
        """
        with self._lock:
            if self.task == "single":
                if not isinstance(value, str):
                    err = LabelError(f"a single-label Labeler takes one class name, got {value!r}")
                    self.error.show(str(err))
                    raise err
                return self._commit(value)
            if value is None:
                value = sorted(self._pending, key=self._class_order)
            elif isinstance(value, str):
                value = [value]
            return self._commit(list(value))

    def accept(self, k: int = 1) -> int:
        """Accept the assistant's ``k``-th suggestion (1 = most probable) for the current item.

        Recorded with ``source="model"`` (a suggestion a person accepted), so accepted
        suggestions can be told apart from labels typed in.
        """
        with self._lock:
            if not 1 <= k <= len(self.suggestions):
                err = LabelError(
                    f"no suggestion {k} for this item"
                    + ("" if self.suggestions else " (the assistant has no model yet)")
                )
                self.error.show(str(err))
                raise err
            return self._commit(self.suggestions[k - 1][0], source="model")

    def toggle(self, name: str) -> None:
        """Multi-label: add the class to the selection, or remove it."""
        with self._lock:
            if name not in self.classes:
                err = LabelError(f"unknown class {name!r}; the classes are {self.classes}")
                self.error.show(str(err))
                raise err
            self._pending ^= {name}
            self._sync_toggles()

    @property
    def selected(self) -> list[str]:
        """Multi-label: the classes selected for the current item, not yet submitted."""
        return sorted(self._pending, key=self._class_order)

    def close(self) -> None:
        """Stop the background threads and close the widgets."""
        self._closed = True
        for name in ("_pool", "_bg"):
            pool = self.__dict__.get(name)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        keys = self.__dict__.get("_keys")
        if keys is not None:
            keys.close()
        super().close()

    # ------------------------------------------------------------------ handlers
    @guarded
    def _on_key(self, event: dict) -> None:
        kind = event.get("event", event.get("type"))
        if kind != "keydown" or event.get("ctrlKey") or event.get("metaKey"):
            return
        if event.get("altKey"):
            return
        key = str(event.get("key") or "")
        code = str(event.get("code") or "")
        if key == "ArrowRight":
            self.next()
            return
        if key == "ArrowLeft":
            self.prev()
            return
        if event.get("repeat"):  # a held-down key must not label a run of images
            return
        if event.get("shiftKey") and (code in _SHIFT_DIGITS or key in _SHIFT_DIGITS):
            self.accept(_SHIFT_DIGITS.get(code) or _SHIFT_DIGITS[key])
            return
        if key == "Backspace":
            self.undo()
        elif key == "Enter":
            if self.task == "multi":
                self.submit()
        elif key == "Escape":
            self._pending.clear()
            self._sync_toggles()
        elif len(key) == 1:
            low = key.lower()
            if low == "s":
                self.skip()
            elif low == "a" and self.assistant is not None:
                self.accept(1)
            elif low in self.keymap:
                self._choose(self.keymap[low])

    def _choose(self, name: str) -> None:
        if self.task == "single":
            self.submit(name)
        else:
            self.toggle(name)

    @guarded
    def _on_class_click(self, name: str) -> None:
        self.submit(name)

    @guarded
    def _on_class_toggle(self, name: str, change: dict) -> None:
        if self._syncing:
            return
        if change["new"]:
            self._pending.add(name)
        else:
            self._pending.discard(name)

    @guarded
    def _on_search_change(self, change: dict) -> None:
        if self._syncing or not change["new"]:
            return
        name = change["new"]
        try:
            if name not in self.classes:
                raise LabelError(
                    f"unknown class {name!r}; pick one of the {len(self.classes)} classes"
                )
            self._choose(name)
        finally:
            self._syncing = True
            try:
                assert self.search is not None
                self.search.value = ""
            finally:
                self._syncing = False

    @guarded
    def _on_suggestion_click(self, k: int) -> None:
        self.accept(k)

    @guarded
    def _on_submit_click(self, _b: W.Button) -> None:
        self.submit()

    @guarded
    def _on_skip_click(self, _b: W.Button) -> None:
        self.skip()

    @guarded
    def _on_undo_click(self, _b: W.Button) -> None:
        self.undo()

    @guarded
    def _on_prev_click(self, _b: W.Button) -> None:
        self.prev()

    @guarded
    def _on_next_click(self, _b: W.Button) -> None:
        self.next()

    # ------------------------------------------------------------------ rendering
    def _stored_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return sorted(dict.fromkeys(value), key=self._class_order)
        return value

    def _class_order(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            return len(self.classes)

    def _render_thumb(self, sid: str) -> Thumb:
        return self.catalog.thumbnail(sid, self.image_size)

    def _thumb(self, sid: str) -> Thumb:
        fut = self._prefetched.pop(sid, None)
        if fut is not None:
            with contextlib.suppress(Exception):  # a failed prefetch: render it here instead
                return fut.result()
        return self._render_thumb(sid)

    def _prefetch_ahead(self) -> None:
        if not self.prefetch:
            return
        for sid in self._upcoming(self.prefetch):
            if sid not in self._prefetched:
                self._prefetched[sid] = self._pool.submit(self._render_thumb, sid)
        while len(self._prefetched) > 4 * self.prefetch:  # items the order moved away from
            self._prefetched.popitem(last=False)

    def _sync_toggles(self) -> None:
        if self.task != "multi":
            return
        self._syncing = True
        try:
            for name, b in self.class_buttons.items():
                want = name in self._pending
                if b.value != want:
                    b.value = want
        finally:
            self._syncing = False

    def _show(self) -> None:
        sid = self.current
        thumb = self._thumb(sid) if sid is not None else _done_tile(self.image_size, "All done")
        value = self._values.get(sid) if sid is not None else None
        if self.task == "multi":
            self._pending = set(value) if isinstance(value, list) else set()
        with self.image.hold_sync():
            self.image.format = thumb.format
            self.image.value = thumb.data
        self._shown_at = time.monotonic()
        if sid is None:
            info = "<b>Every item is done.</b> ◀ Back or go(i) to revisit one."
        else:
            state = ""
            if sid in self._done:
                label = value if value is None or isinstance(value, str) else ", ".join(value)
                state = (
                    " · <i>skipped</i>"
                    if value is None
                    else f" · your label: <b>{escape(label if label else '(none)')}</b>"
                )
            info = (
                f'<div style="word-break:break-all"><b>{escape(sid)}</b></div>'
                f'<div style="color:#666">item {self.position + 1:,} of {len(self.queue):,}'
                f"{state}</div>"
            )
        self.info.value = info
        self.progress_label.value = self._progress_html()
        if self.task == "single":
            for name, b in self.class_buttons.items():
                style = "success" if value == name else ""
                if b.button_style != style:
                    b.button_style = style
        else:
            self._sync_toggles()
        if self.assistant is not None:
            self._update_suggestions()
            self._render_assistant()
        self._prefetch_ahead()

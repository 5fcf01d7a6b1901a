"""Labeler: label images one at a time, mostly from the keyboard; every decision goes to a store.

The view is a VBox over one :class:`~workbench.labels.session.LabelingSession`
(``labeler.session``; ``labeler.store`` is its store), which holds the queue, resume, undo, the
rate, the assistant's refits and the prefetch; the view draws it. What it guarantees:

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

- After each decision the view confirms what was recorded ("dog ✓ saved", "skipped",
  "undone"); the progress line counts this session's decisions that stand (an undo takes one
  back) and shows a rate only once it is a person's pace over enough time.
- Blind labeling (``blind=True``; by default on when other annotators have labeled items of this
  queue): the sample id and path, which can give the class away, are not shown.

Keyboard (with the pointer over the labeler; never while a text field, such as the class search
box, has the focus: there typing types)::

    1 2 … 9 0 q w   the class shown on each button (multi-label: toggles it)
    Enter           submit the selected classes (multi-label)
    Escape          clear the selection (multi-label)
    a, ⇧1 ⇧2 ⇧3     accept the assistant's 1st / 1st, 2nd, 3rd suggestion
    s               skip (done, no label)
    Backspace       undo the last decision (the view goes back to that image)
    ← →             browse back / forward

Enter, s, Backspace and the arrows do the same in the :class:`~workbench.views.boxes.BoxLabeler`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from workbench._validation import check_choice, check_int
from workbench.catalog import Catalog
from workbench.errors import ParameterError
from workbench.labels import LabelError, LabelStore
from workbench.labels.session import ACTIVE_ORDERS, ORDERS, LabelingSession
from workbench.views._common import ErrorBanner, escape, guarded, log, reports_inline
from workbench.views._labeling import (
    CARD_CSS,
    LabelCard,
    LabelingView,
    done_tile,
    session_attribute,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ACTIVE_ORDERS", "CLASS_KEYS", "ORDERS", "Labeler"]

#: Hotkeys of the class buttons, in class order ("a" and "s" are taken: accept, skip).
CLASS_KEYS = "1234567890qwertyuiop"
#: Class buttons shown by default; past this many classes a search box takes any class.
MAX_BUTTONS = 12
_SHIFT_DIGITS = {"Digit1": 1, "Digit2": 2, "Digit3": 3, "!": 1, "@": 2, "#": 3}


class Labeler(LabelingView):
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
    blind
        Hide sample ids and paths (they may give the class away). ``None``: on when other
        annotators have labeled items of this queue (see :class:`LabelingSession`).

    Attributes
    ----------
    session : LabelingSession
        The queue, decisions and assistant refits this view draws; ``store``, ``catalog``,
        ``queue``, ``current``, ``progress`` and the other session attributes read through.
    queue : list of str
        The sample ids in the order they are offered.
    suggestions : list of (str, float)
        The assistant's top-3 for the current item (empty without a fitted assistant).
    card : LabelCard
        Progress, confirmation, the large image (class ``wb-image``) and the item's info as one
        widget; ``image``, ``info``, ``progress_label`` and ``status`` are its parts (each a
        ``value``).
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
        blind: bool | None = None,
    ) -> None:
        check_choice(task, "task", ("single", "multi"))
        check_int(image_size, "image_size", low=16)
        self.task = task
        self.image_size = image_size
        self.suggestions: list[tuple[str, float]] = []
        self._pending: set[str] = set()
        self._syncing = False
        self.error = ErrorBanner()
        self.session = LabelingSession(
            catalog, store, annotator=annotator, round=round, task=store_task, kind=task,
            classes=classes, order=order, seed=seed, assistant=assistant, embeddings=embeddings,
            refit_every=refit_every, render=lambda sid: catalog.thumbnail(sid, image_size),
            prefetch=prefetch, blind=blind,
        )  # fmt: skip
        #: The classes offered: all of the store's.
        self.classes: list[str] = self.store.classes
        self._build_widgets(pinned)
        self.session.on_assistant(self._on_assistant_change)
        self._show()

    _alt_ignored = True  # Alt+key types symbols on some layouts: not a class key

    order: str = session_attribute("order", "The order items are offered in.")
    assistant: Any = session_attribute("assistant", "The assistant (or None).")
    prefetch: int = session_attribute("prefetch", "How many items are rendered ahead.")
    refit_every: int = session_attribute("refit_every", "Labels between assistant refits.")
    _prefetched: list[str] = session_attribute("prefetched", "Ids rendered ahead.")
    _row: dict[str, int] = session_attribute("rows", "Catalog row of each sample id.")

    # ------------------------------------------------------------------ construction
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

        #: Progress, confirmation, image and item info: one widget, one message per key.
        self.card = LabelCard(size=self.image_size).add_class("wb-card")
        self.progress_label = self.card.part("progress")
        self.status = self.card.part("status")
        self.image = self.card.part("image")
        self.info = self.card.part("info")
        self.assistant_label = W.HTML(layout=W.Layout(margin="0 0 4px 0"))
        self.assistant_label.add_class("wb-assistant")
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
        self._class_search(self.classes, len(self.keymap), self._on_search_change)

        nav = self._make_tools()
        if self.task == "single":
            nav.remove(self.submit_button)  # a class key or button submits
        keys = "".join(self.keymap)
        first = f"{keys[0]}–{keys[-1]}" if len(keys) > 1 else keys
        what = "toggle a class · Enter submit · Esc clear" if self.task == "multi" else "label"
        help_text = (
            f"Keys (pointer over the labeler, not while typing): {first} {what} · "
            + ("a or ⇧1–3 accept a suggestion · " if self.assistant is not None else "")
            + "s skip · ⌫ undo · ← → browse"
        )
        self.help = W.HTML(f'<span style="color:#666;font-size:12px">{escape(help_text)}</span>')

        side = W.VBox(
            [self.assistant_label, self.suggestion_box],
            layout=W.Layout(padding="0 0 0 12px", width="300px"),
        )
        choose = [self.buttons] if self.search is None else [self.buttons, self.search]
        self.board = W.VBox(
            [W.HBox([self.card, side]), *choose, W.HBox(nav).add_class("wb-tools")]
        ).add_class("wb-board")
        style = W.HTML(CARD_CSS, layout=W.Layout(height="0px", margin="0"))
        rows: list[W.Widget] = [style, self.error, self.board, self.help]
        W.VBox.__init__(self, rows)
        self.add_class("wb-labeler")
        keys = [*self.keymap, "Escape"]
        if self.assistant is not None:
            keys += ["a", *_SHIFT_DIGITS]
        self._listen_keys("wb-labeler", keys)

    # ------------------------------------------------------------------ assistant
    def refit(self) -> None:
        """Refit the assistant on this annotator's labels, on a background thread.

        Requests that arrive while a refit runs are merged into one more refit afterwards. When
        it finishes, the suggestions and (with an active order) the queue ahead are updated.
        """
        if self.assistant is None:
            raise ParameterError("this Labeler has no assistant")
        self.session.refit()

    @guarded
    def _on_assistant_change(self, error: Exception | None) -> None:
        # On the refit's thread, with the session's lock held.
        if error is not None:
            log.warning("assistant refit failed: %s", error)
            self.error.show(f"the assistant could not be refit: {error}")
            return
        self._update_suggestions()
        self._render_assistant()

    def _update_suggestions(self) -> None:
        self.suggestions = self.session.suggest(k=3)
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
        if not self.session.assistant_ready:
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
    @reports_inline
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
        with self.session.lock:
            if self.task == "multi" and value is None:
                value = self.selected
            return self._commit(value)

    @reports_inline
    def accept(self, k: int = 1) -> int:
        """Accept the assistant's ``k``-th suggestion (1 = most probable) for the current item.

        Recorded with ``source="model"`` (a suggestion a person accepted), so accepted
        suggestions can be told apart from labels typed in.
        """
        with self.session.lock:
            if not 1 <= k <= len(self.suggestions):
                raise LabelError(
                    f"no suggestion {k} for this item"
                    + ("" if self.suggestions else " (the assistant has no model yet)")
                )
            return self._commit(self.suggestions[k - 1][0], source="model")

    @reports_inline
    def toggle(self, name: str) -> None:
        """Multi-label: add the class to the selection, or remove it."""
        with self.session.lock:
            if name not in self.classes:
                raise LabelError(f"unknown class {name!r}; the classes are {self.classes}")
            self._pending ^= {name}
            self._sync_toggles()

    @property
    def selected(self) -> list[str]:
        """Multi-label: the classes selected for the current item, not yet submitted."""
        return sorted(self._pending, key=self._class_order)

    # ------------------------------------------------------------------ handlers
    def _on_view_key(self, key: str, code: str, event: dict) -> bool:
        if event.get("shiftKey") and (code in _SHIFT_DIGITS or key in _SHIFT_DIGITS):
            self.accept(_SHIFT_DIGITS.get(code) or _SHIFT_DIGITS[key])
        elif key == "Escape":
            self._pending.clear()
            self._sync_toggles()
        elif len(key) == 1 and key.lower() == "a" and self.assistant is not None:
            self.accept(1)
        elif len(key) == 1 and key.lower() in self.keymap:
            self._choose(self.keymap[key.lower()])
        else:
            return False
        return True

    def _on_enter(self) -> None:
        if self.task == "multi":
            self.submit()

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
        self._pick_searched(change, self._choose_known)

    def _choose_known(self, name: str) -> None:
        if name not in self.classes:
            raise LabelError(f"unknown class {name!r}; pick one of the {len(self.classes)} classes")
        self._choose(name)

    @guarded
    def _on_suggestion_click(self, k: int) -> None:
        self.accept(k)

    # ------------------------------------------------------------------ rendering
    def _value_text(self, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(value) if value else "(none)"
        return str(value)

    def _class_order(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            return len(self.classes)

    def _sync_toggles(self) -> None:
        if self.task != "multi":
            return
        with self._syncing_controls():
            for name, b in self.class_buttons.items():
                want = name in self._pending
                if b.value != want:
                    b.value = want

    def _show(self) -> None:
        s = self.session
        sid = s.current
        thumb = s.rendered(sid) if sid is not None else done_tile(self.image_size, "All done")
        value = s.value_of(sid) if sid is not None else None
        if self.task == "multi":
            self._pending = set(value) if isinstance(value, list) else set()
        with self.card.hold_sync():
            self._draw(s, sid, thumb, value)
        s.mark_shown()

    def _batch(self) -> contextlib.AbstractContextManager:
        return self.card.hold_sync()

    def _draw(self, s: Any, sid: str | None, thumb: Any, value: Any) -> None:
        self.card.format = thumb.format
        self.card.image = thumb.data
        if sid is None:
            info = "<b>Every item is done.</b> ◀ Back or go(i) to revisit one."
        else:
            state = ""
            if s.status(sid) != "todo":
                label = value if value is None or isinstance(value, str) else ", ".join(value)
                state = (
                    "<i>skipped</i>"
                    if value is None
                    else f"your label: <b>{escape(label if label else '(none)')}</b>"
                )
            info = f'<div>{self._where_html(sid)}</div><div style="color:#666">{state}</div>'
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

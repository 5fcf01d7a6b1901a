"""ReviewQueue: a reviewer goes through disagreements, suspected label errors, ties and failed gold
items, most severe first, and decides each from the keyboard.

A VBox over one :class:`~workbench.quality.review.ReviewSession` (``queue.session``), which
gathers the items, orders them and records every decision as a ``review`` event in the review
round (see that module for the events). The view shows the image large, every annotator's label
with its event id (the reviewer sees them; annotators never do), the consensus with its
confidence, the model's suggestion and, for a gold item, the known answer; after each decision
it confirms what was recorded.

Keyboard (with the pointer over the view; never while a text field or a filter has the focus:
there typing types)::

    Enter or a      accept the consensus label
    1 2 … 9 0       decide the class on that button
    u               unsure (recorded; the item stays open)
    s               skip (nothing recorded)
    Backspace       undo the last decision (the view goes back to that item)
    ← →             browse back / forward
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from workbench.quality.review import REASONS, ReviewSession
from workbench.views._common import ErrorBanner, KeyReader, escape, guarded, reports_inline
from workbench.views._labeling import CONFIRM_SECONDS, DecisionControls, done_tile

if TYPE_CHECKING:
    import pandas as pd

    from workbench.catalog import Catalog
    from workbench.labels import LabelStore
    from workbench.quality.label_errors import LabelIssueReport

__all__ = ["CLASS_KEYS", "ReviewQueue"]

#: Hotkeys of the class buttons, in class order (letters are taken by the actions).
CLASS_KEYS = "1234567890"
_ACTION_KEYS = ("Enter", "a", "u", "s", "Backspace", "ArrowLeft", "ArrowRight")
_ANY = "(any)"
_FADE = "<style>@keyframes wb-fade{0%{opacity:1}70%{opacity:1}100%{opacity:0}}</style>"


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


class ReviewQueue(DecisionControls, W.VBox):
    """Review the items that need a second look; every decision is a ``review`` event.

    Parameters
    ----------
    catalog
        The samples (the image of each item comes from it).
    store
        The label store with the annotators' labels; decisions go there.
    reviewer
        Who reviews.
    probs, report, gold, method, round, task
        See :class:`~workbench.quality.review.ReviewSession`.
    image_size
        Edge of the box the image is fitted into, in pixels.

    Attributes
    ----------
    session : ReviewSession
        The queue and decisions this view draws (usable from a script on its own).
    store, catalog : LabelStore, Catalog
        Read through to the session / given.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: LabelStore,
        *,
        reviewer: str,
        probs: pd.DataFrame | None = None,
        report: LabelIssueReport | None = None,
        gold: Mapping[str, Any] | None = None,
        method: str = "majority",
        round: int | None = None,
        task: str = "class",
        image_size: int = 384,
    ) -> None:
        self.catalog = catalog
        self.image_size = int(image_size)
        self.error = ErrorBanner()
        self.session = ReviewSession(
            store, reviewer=reviewer, catalog=catalog, probs=probs, report=report, gold=gold,
            method=method, round=round, task=task,
        )  # fmt: skip
        self._build()
        self._show()

    @property
    def store(self) -> LabelStore:
        """Where decisions go (``session.store``)."""
        return self.session.store

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        s = self.session
        self.progress_label = W.HTML().add_class("wb-progress")
        self.status = W.HTML(layout=W.Layout(margin="0 0 0 16px")).add_class("wb-status")
        small = W.Layout(width="210px")
        self.reason_filter = W.Dropdown(
            options=[_ANY, *REASONS], description="reason", layout=small
        ).add_class("wb-filter-reason")
        self.class_filter = W.Dropdown(
            options=[_ANY, *s.classes], description="class", layout=small
        ).add_class("wb-filter-class")
        self.annotator_filter = W.Dropdown(
            options=[_ANY, *s.annotators], description="annotator", layout=W.Layout(width="240px")
        ).add_class("wb-filter-annotator")
        for dd in (self.reason_filter, self.class_filter, self.annotator_filter):
            dd.style.description_width = "64px"
            dd.observe(self._on_filter_change, "value")
        self.note = W.Text(
            placeholder="note for the next decision (optional)", layout=W.Layout(width="300px")
        ).add_class("wb-note")
        filters = W.HBox(
            [self.reason_filter, self.class_filter, self.annotator_filter, self.note],
            layout=W.Layout(flex_flow="row wrap"),
        ).add_class("wb-filters")

        self.image = self._image_box(self.image_size)
        self.info = W.HTML().add_class("wb-info")
        self.labels_html = W.HTML().add_class("wb-labels")
        self.consensus_html = W.HTML().add_class("wb-consensus")
        self.model_html = W.HTML().add_class("wb-model")
        side = W.VBox(
            [self.info, self.labels_html, self.consensus_html, self.model_html],
            layout=W.Layout(padding="0 0 0 12px", width="340px"),
        )
        self.keymap: dict[str, str] = dict(zip(CLASS_KEYS, s.classes, strict=False))
        self.class_buttons: dict[str, W.Button] = {}
        for key, name in self.keymap.items():
            b = W.Button(description=f"{key} · {name}", tooltip=f"the label is {name}")
            b.layout = W.Layout(width="auto", min_width="90px")
            b.add_class("wb-class")
            b.on_click(lambda _b, name=name: self._click(lambda: self.set_label(name)))
            self.class_buttons[name] = b
        choose: list[W.Widget] = [
            W.HBox(list(self.class_buttons.values()), layout=W.Layout(flex_flow="row wrap"))
        ]
        if self._class_search(s.classes, len(self.keymap), self._on_search_change) is not None:
            choose.append(self.search)
        self.accept_button = self._button("Accept (Enter)", "wb-accept", self.accept)
        self.accept_button.button_style = "primary"
        self.unsure_button = self._button("Unsure (u)", "wb-unsure", self.unsure)
        tools = W.HBox(
            [self.accept_button, self.unsure_button, *self._browse_buttons()],
            layout=W.Layout(flex_flow="row wrap"),
        ).add_class("wb-tools")
        keys = "".join(self.keymap)
        first = f"{keys[0]}–{keys[-1]}" if len(keys) > 1 else keys
        self.help = W.HTML(
            '<span style="color:#666;font-size:12px">'
            + escape(
                "Keys (pointer over the view, not while typing): Enter or a accept the consensus · "
                f"{first} decide a class · u unsure · s skip · ⌫ undo · ← → browse"
            )
            + "</span>"
        )
        board = W.VBox([W.HBox([self.image, side]), *choose, tools]).add_class("wb-board")
        super().__init__(
            [W.HBox([self.progress_label, self.status]), self.error, filters, board, self.help]
        )
        self.add_class("wb-review")
        self._keys = KeyReader("wb-review", [*_ACTION_KEYS, *self.keymap])
        self._keys.on_key(self._on_key)
        self.children = (*self.children, self._keys)

    # ------------------------------------------------------------------ public API
    @property
    def queue(self) -> list[str]:
        """The ids in the order offered (filtered)."""
        return self.session.queue

    @property
    def current(self) -> str | None:
        """The item shown (``None``: nothing left)."""
        return self.session.current

    def _take_note(self) -> str | None:
        note = self.note.value.strip()
        return note or None

    def _decided(self, event: int) -> int:
        self.note.value = ""
        self.error.clear()
        self._show()
        self.status.value = self._status_html()
        return event

    @reports_inline
    def accept(self, event_id: int | None = None) -> int:
        """Accept the consensus label of the current item (or the label event ``event_id``);
        returns the review's event id."""
        return self._decided(self.session.accept(event_id=event_id, note=self._take_note()))

    @reports_inline
    def set_label(self, value: str) -> int:
        """Decide the current item's label (see :meth:`ReviewSession.set_label`)."""
        return self._decided(self.session.set_label(value, note=self._take_note()))

    @reports_inline
    def unsure(self) -> int:
        """Record that the current item cannot be decided; it stays open."""
        return self._decided(self.session.unsure(note=self._take_note()))

    @reports_inline
    def skip(self) -> None:
        """Move on without recording anything."""
        self.session.skip()
        self.error.clear()
        self._show()
        self.status.value = self._status_html()

    @reports_inline
    def undo(self) -> str | None:
        """Take back the latest decision of this session and show that item again."""
        sid = self.session.undo()
        if sid is None:
            self.error.show("nothing to undo")
            return None
        self.error.clear()
        self._show()
        self.status.value = self._status_html()
        return sid

    @reports_inline
    def filter(
        self, *, reason: str | None = None, cls: str | None = None, annotator: str | None = None
    ) -> list[str]:
        """Show only some items (see :meth:`ReviewSession.filter`); the dropdowns follow."""
        queue = self.session.filter(reason=reason, cls=cls, annotator=annotator)
        self._sync_filters()
        self._show()
        return queue

    def go(self, where: int | str) -> None:
        """Show the item at queue position ``where`` or with that id."""
        self.session.go(where)
        self.status.value = ""
        self._show()

    def next(self) -> None:
        """Browse forward one item."""
        self.go(self.session.position + 1)

    def prev(self) -> None:
        """Browse back one item."""
        self.go(self.session.position - 1)

    def refresh(self) -> None:
        """Re-read the store (new labels, other reviewers' decisions)."""
        self.session.refresh()
        self._show()

    # ------------------------------------------------------------------ handlers
    def _sync_filters(self) -> None:
        f = self.session.filters
        self._syncing = True
        try:
            self.reason_filter.value = f["reason"] or _ANY
            self.class_filter.value = f["cls"] or _ANY
            self.annotator_filter.value = f["annotator"] or _ANY
        finally:
            self._syncing = False

    @guarded
    def _on_filter_change(self, _change: dict) -> None:
        if self._syncing:
            return

        def pick(dd: W.Dropdown) -> str | None:
            return None if dd.value == _ANY else dd.value

        self.filter(
            reason=pick(self.reason_filter),
            cls=pick(self.class_filter),
            annotator=pick(self.annotator_filter),
        )

    @guarded
    def _on_search_change(self, change: dict) -> None:
        self._pick_searched(change, self.set_label)

    @guarded
    def _on_key(self, event: dict) -> None:
        if event.get("type") != "keydown" or event.get("ctrlKey") or event.get("metaKey"):
            return
        key = str(event.get("key") or "")
        if key == "ArrowRight":
            self.next()
        elif key == "ArrowLeft":
            self.prev()
        elif event.get("repeat") or event.get("altKey"):
            return  # a held key must not decide a run of items
        elif key == "Enter" or key.lower() == "a":
            self.accept()
        elif key.lower() == "u":
            self.unsure()
        elif key.lower() == "s":
            self.skip()
        elif key == "Backspace":
            self.undo()
        elif key in self.keymap:
            self.set_label(self.keymap[key])

    # ------------------------------------------------------------------ drawing
    _confirmations = itertools.count()

    def _status_html(self) -> str:
        a = self.session.last_action
        if a is None:
            return ""
        kind = a["kind"]
        if kind in ("accept", "correct"):
            done = "accepted" if kind == "accept" else "corrected"
            text, colour = f"{a['value']} ✓ {done}", "#1b5e20"
        else:
            text = {"unsure": "marked unsure", "skip": "skipped", "undo": "undone"}[kind]
            colour = "#555"
        n = next(self._confirmations)  # a new number each time restarts the fade
        return (
            f'{_FADE}<span class="wb-confirm" data-n="{n}" style="color:{colour};'
            f'font-weight:600;animation:wb-fade {CONFIRM_SECONDS}s forwards">'
            f"{escape(text)}</span>"
        )

    def _progress_html(self) -> str:
        p = self.session.progress
        pct = 100.0 * p["done"] / p["total"] if p["total"] else 100.0
        reasons = " · ".join(f"{escape(k)} {v:,}" for k, v in p["by_reason"].items() if v)
        return (
            f'<span class="wb-progress-text"><b>{p["done"]:,}</b> / {p["total"]:,} reviewed '
            f"({pct:.0f} %) · {p['session']:,} this session · round {self.session.round}"
            f'</span><br><span style="color:#666;font-size:12px">{reasons}</span>'
        )

    def _thumb(self, sid: str | None) -> Any:
        if sid is None:
            return done_tile(self.image_size, "Every item is reviewed")
        try:
            return self.catalog.thumbnail(sid, self.image_size)
        except Exception as e:  # an id the catalog does not hold: say so, keep reviewing
            from workbench.thumbs import placeholder

            self.error.show(f"no image for {sid!r}: {e}")
            return placeholder(self.image_size, "no image")

    def _show(self) -> None:
        s = self.session
        sid = s.current
        thumb = self._thumb(sid)
        with self.image.hold_sync():
            self.image.format = thumb.format
            self.image.value = thumb.data
        self.progress_label.value = self._progress_html()
        it = s.item
        if it is None:
            empty = "No item matches the filters." if not s.queue else "Every item is reviewed."
            self.info.value = f"<b>{empty}</b> ◀ Back or a filter to revisit one."
            for w in (self.labels_html, self.consensus_html, self.model_html):
                w.value = ""
            self._style_buttons(None)
            return
        d = s.decision(it.id)
        state = "" if d is None else f' · <i class="wb-decision">{escape(d["verdict"])}</i>'
        self.info.value = (
            f'<div><b style="word-break:break-all">{escape(it.id)}</b> · item '
            f"{s.position + 1:,} of {len(s.queue):,}{state}</div>"
            f'<div style="color:#a33">{escape(", ".join(it.reasons))} · severity '
            f"{it.severity:.2f}</div>"
        )
        rows = "".join(
            f'<tr><td style="padding-right:8px">{escape(r["annotator"])}</td>'
            f"<td><b>{escape(r['value'])}</b></td>"
            f'<td style="color:#888;padding-left:8px">event {r["event"]}</td></tr>'
            for r in it.labels
        )
        gold = (
            ""
            if it.gold is None
            else f'<div class="wb-gold">gold answer: <b>{escape(it.gold)}</b></div>'
        )
        self.labels_html.value = (
            f'<div style="margin-top:6px"><b>Annotators</b></div><table style="font-size:13px">'
            f"{rows or '<tr><td><i>no labels</i></td></tr>'}</table>{gold}"
        )
        c = it.consensus
        if c["tied"]:
            cons = "<i>tied</i>: pick a class"
        elif c["label"] is None:
            cons = "<i>none</i>"
        else:
            where = "stored" if c["stored"] else "computed"
            cons = (
                f"<b>{escape(c['label'])}</b> · confidence {_pct(c['confidence'])} · "
                f"{escape(c['method'])} ({where})"
            )
        self.consensus_html.value = f'<div style="margin-top:6px">Consensus: {cons}</div>'
        m = it.model
        self.model_html.value = (
            "<div>Model: <i>none</i></div>"
            if m is None
            else f"<div>Model: <b>{escape(m['label'])}</b> · {_pct(m['confidence'])} · "
            f"{escape(m['source'])}</div>"
        )
        self._style_buttons(it)

    def _style_buttons(self, it: Any) -> None:
        chosen = None if it is None else it.consensus["label"]
        for name, b in self.class_buttons.items():
            style = "info" if name == chosen else ""
            if b.button_style != style:
                b.button_style = style

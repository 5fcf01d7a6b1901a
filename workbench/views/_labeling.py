"""What the labeling views share: one LabelingSession, navigation, keys, progress, the done tile.

A labeling view is a VBox over one :class:`~workbench.labels.session.LabelingSession`
(``view.session``); the session decides, the view draws. Every method that changes the session
holds ``session.lock`` until the view has been redrawn, so a background refit never sees (or
draws) a half-updated view. ``view.store``, ``view.catalog``, ``view.queue`` and the other
session attributes read through to the session.

Both views read the same keys for the same actions (:data:`SHARED_KEYS`: Enter submits, s skips,
Backspace undoes, arrows browse) through a :class:`~workbench.views._common.KeyReader`: with the
pointer over the view and never while a text field has the focus. After each decision the view
confirms what was recorded ("dog ✓ saved", "skipped", "undone") for a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anywidget
import ipywidgets as W
import traitlets

from workbench.catalog import Catalog
from workbench.labels import LabelStore
from workbench.labels.session import LabelingSession
from workbench.thumbs import Thumb, escape
from workbench.views._common import ErrorBanner, KeyReader, guarded, reports_inline

__all__ = [
    "CARD_CSS", "SHARED_KEYS", "DecisionControls", "LabelCard", "LabelingView", "done_tile",
    "session_attribute",
]  # fmt: skip

#: Keys that do the same in every labeling view: submit, skip, undo, browse back and forward.
SHARED_KEYS = ("Enter", "s", "Backspace", "ArrowLeft", "ArrowRight")
#: How long a confirmation ("dog ✓ saved") stays before it fades, in seconds.
CONFIRM_SECONDS = 2.5
_FADE = "<style>@keyframes wb-fade{0%{opacity:1}70%{opacity:1}100%{opacity:0}}</style>"


def done_tile(size: int, text: str) -> Thumb:
    """A light tile with a line of text: shown when there is nothing left to label."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, max(48, size // 3)), (240, 246, 240))
    ImageDraw.Draw(im).text((12, im.height // 2 - 6), text, fill=(40, 110, 40))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return Thumb(buf.getvalue(), "png")


def session_attribute(name: str, doc: str) -> property:
    """A read-only view attribute that reads ``view.session.<name>``."""
    return property(lambda self: getattr(self.session, name), doc=doc)


_CARD_ESM = r"""
function render({ model, el }) {
  el.innerHTML = `<div class="wb-card-top"><span class="wb-progress"></span>
    <span class="wb-status"></span></div><div class="wb-card-main">
    <img class="wb-image" alt="the item to label"><div class="wb-info"></div></div>`;
  const [progress, status, img, info] = [".wb-progress", ".wb-status", ".wb-image", ".wb-info"]
    .map((s) => el.querySelector(s));
  let url = null;
  const draw = () => {
    const size = model.get("size") + "px";
    img.style.width = img.style.height = size;
    const bytes = model.get("image");
    if (url) URL.revokeObjectURL(url);
    url = bytes && bytes.byteLength
      ? URL.createObjectURL(new Blob([bytes], { type: "image/" + model.get("format") }))
      : null;
    if (url) img.src = url; else img.removeAttribute("src");
    info.innerHTML = model.get("info");
    progress.innerHTML = model.get("progress");
    status.innerHTML = model.get("status");
  };
  draw();
  model.on("change", draw);
  return () => { model.off("change", draw); if (url) URL.revokeObjectURL(url); };
}
export default { render };
"""

CARD_CSS = """<style>
.wb-card .wb-card-top { display: flex; align-items: baseline; gap: 16px; min-height: 1.5em; }
.wb-card .wb-card-main { display: flex; align-items: flex-start; }
.wb-card .wb-image { object-fit: contain; flex: 0 0 auto; }
.wb-card .wb-info { padding: 0 0 0 12px; width: 320px; overflow-wrap: anywhere; }
</style>"""


class LabelCard(anywidget.AnyWidget):
    """The part of a labeling view that changes on every decision, as ONE widget: progress,
    the confirmation, the large image and which item it is (classes ``wb-progress``,
    ``wb-status``, ``wb-image``, ``wb-info``). A key press then reaches the browser as one
    message (four widgets made it four, each decoded and drawn in turn).

    Change several parts in ``with card.hold_sync():`` to send them together. ``parts()``
    gives each part as an object with a ``value`` trait, so the view's ``image``, ``info``,
    ``progress_label`` and ``status`` keep reading and writing like the widgets they were.
    """

    _esm = _CARD_ESM
    image = traitlets.Bytes(b"").tag(sync=True)
    format = traitlets.Unicode("png").tag(sync=True)
    size = traitlets.Int(384).tag(sync=True)
    info = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("wb-html-board")  # browser tests check the text drawn inside for cuts

    def part(self, name: str) -> _CardPart:
        """The part ``name`` as an object whose ``value`` reads and writes it."""
        return _CardPart(self, name)


class _CardPart(traitlets.HasTraits):
    """One part of a :class:`LabelCard`: ``value`` mirrors the card's trait both ways."""

    value = traitlets.Any()

    def __init__(self, card: LabelCard, name: str) -> None:
        super().__init__(value=getattr(card, name))
        self.observe(lambda ch: setattr(card, name, ch["new"]), "value")
        card.observe(lambda ch: setattr(self, "value", ch["new"]), name)


class DecisionControls:
    """Controls every view that records label decisions builds the same way: the labeling
    views and :class:`~workbench.views.review.ReviewQueue`.

    Buttons that run an action (an error shows in the view's ``error`` banner), the Skip, Undo,
    Back and Forward buttons over the view's methods of those names, the large image, the
    type-ahead class field for the classes beyond the keyed buttons, and closing the key reader.
    """

    error: ErrorBanner
    search: W.Combobox | None = None
    #: True while the view itself sets a control, so the control's handler ignores the change.
    _syncing = False

    def _button(self, text: str, cls: str, action: Callable[[], Any]) -> W.Button:
        """A button that runs ``action()``; an error shows in the view."""
        b = W.Button(description=text, layout=W.Layout(width="auto")).add_class(cls)
        b.on_click(lambda _b: self._from_view(action))
        return b

    def _from_view(self, action: Callable[[], Any]) -> None:
        """Run ``action()`` the browser asked for (a button, a key); an error shows in the
        view. A view whose widgets send their state lazily runs it once that state is in."""
        self._click(action)

    @guarded
    def _click(self, action: Callable[[], Any]) -> None:
        action()

    @staticmethod
    def _image_box(size: int) -> W.Image:
        """The large image (class ``wb-image``): a square of ``size`` px, the image fit inside."""
        return W.Image(
            format="png",
            layout=W.Layout(width=f"{size}px", height=f"{size}px", object_fit="contain"),
        ).add_class("wb-image")

    def _browse_buttons(self) -> list[W.Button]:
        """Skip, Undo, Back and Forward (``skip_button`` ...), running the view's methods."""
        view: Any = self
        self.skip_button = self._button("Skip (s)", "wb-skip", view.skip)
        self.undo_button = self._button("Undo (⌫)", "wb-undo", view.undo)
        self.prev_button = self._button("◀ Back", "wb-prev", view.prev)
        self.next_button = self._button("Forward ▶", "wb-next", view.next)
        return [self.skip_button, self.undo_button, self.prev_button, self.next_button]

    def _class_search(
        self, classes: Sequence[str], keyed: int, on_change: Callable[[dict], None]
    ) -> W.Combobox | None:
        """Set ``self.search``: a type-ahead field when there are more classes than keys."""
        self.search = None
        if len(classes) > keyed:
            self.search = W.Combobox(
                options=list(classes),
                placeholder=f"any of {len(classes)} classes: type, then Enter",
                ensure_option=False,
                continuous_update=False,
                layout=W.Layout(width="340px"),
            ).add_class("wb-class-search")
            self.search.observe(on_change, "value")
        return self.search

    @contextlib.contextmanager
    def _syncing_controls(self) -> Iterator[None]:
        """Set controls from code without their handlers acting on the change."""
        old, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = old

    def _pick_searched(self, change: dict, pick: Callable[[str], Any]) -> None:
        """Run ``pick(name)`` for a name typed in the class field, then empty the field."""
        if self._syncing or not change["new"]:
            return
        try:
            pick(change["new"])
        finally:
            with self._syncing_controls():
                assert self.search is not None
                self.search.value = ""

    def close(self) -> None:
        """Close the key reader and the widgets."""
        keys = self.__dict__.get("_keys")
        if keys is not None:
            keys.close()
        super().close()  # type: ignore[misc]


class LabelingView(DecisionControls, W.VBox):
    """Base of :class:`~workbench.views.labeler.Labeler` and
    :class:`~workbench.views.boxes.BoxLabeler`.

    Subclasses set ``session``, ``error`` (an :class:`ErrorBanner`), ``info``,
    ``progress_label`` and ``status`` (HTML: the confirmation of the latest decision), build
    their widgets, call :meth:`_listen_keys` and implement :meth:`_show` (draw
    ``session.current``), :meth:`_value_text` and ``submit``.
    """

    session: LabelingSession
    error: ErrorBanner
    info: W.HTML
    progress_label: W.HTML
    status: W.HTML
    #: Whether keys pressed with Alt are left to the browser.
    _alt_ignored = False

    catalog: Catalog = session_attribute("catalog", "The samples (``session.catalog``).")
    store: LabelStore = session_attribute("store", "Where decisions go (``session.store``).")
    annotator: str = session_attribute("annotator", "Who is labeling.")
    round: int = session_attribute("round", "The store's round the labels go to.")
    store_task: str = session_attribute("task", "The store's task the labels go to.")
    seed: int = session_attribute("seed", "Seed of the random and active orders.")
    ids: list[str] = session_attribute("ids", "Samples that can be shown, in catalog order.")
    queue: list[str] = session_attribute("queue", "The sample ids in the order offered.")
    current: str | None = session_attribute("current", "The sample shown (None: all done).")
    position: int = session_attribute("position", "Index of the current item in the queue.")
    index: int = session_attribute("position", "Index of the current item in the queue.")
    progress: dict[str, Any] = session_attribute("progress", "See LabelingSession.progress.")
    blind: bool = session_attribute("blind", "Whether sample ids and paths are hidden.")

    # ------------------------------------------------------------------ session pass-through
    def value_of(self, sample_id: str) -> Any:
        """This annotator's current label of a sample (``None`` if unlabeled or skipped)."""
        return self.session.value_of(sample_id)

    def on_submit(self, fn: Callable[[str, Any], None]) -> None:
        """Call ``fn(sample_id, value)`` after each label is committed, before the view moves."""
        self.session.on_submit(fn)

    def on_skip(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(sample_id)`` after each skip is committed."""
        self.session.on_skip(fn)

    def on_undo(self, fn: Callable[[str | None], None]) -> None:
        """Call ``fn(sample_id)`` after an undo, with the sample whose decision was undone."""
        self.session.on_undo(fn)

    def wait(self, timeout: float = 120.0) -> None:
        """Block until background refits, reorders and prefetches have finished.

        For scripts and tests; labeling never needs to wait.
        """
        self.session.wait(timeout)

    # ------------------------------------------------------------------ navigation
    def go(self, where: int | str) -> None:
        """Show the item at queue position ``where`` (clipped), or the sample with that id."""
        with self.session.lock, self._batch():
            self.session.go(where)
            self._show()
            self.status.value = ""  # a confirmation belongs to the item it was made on

    def next(self) -> None:
        """Browse forward one item (done or not)."""
        with self.session.lock:
            self.go(self.session.position + 1)

    def prev(self) -> None:
        """Browse back one item."""
        with self.session.lock:
            self.go(self.session.position - 1)

    # ------------------------------------------------------------------ decisions
    def _commit(self, value: Any, *, source: str = "human") -> int:
        """Label the current item through the session (committed), then show the next one."""
        with self.session.lock:
            event = self.session.submit(value, source=source)
            self._after_decision()
            return event

    @reports_inline
    def skip(self) -> int:
        """Pass on the current item (recorded as a ``skip``: done, no label); move on.

        Returns the event id.
        """
        with self.session.lock:
            event = self.session.skip()
            self._after_decision()
            return event

    @reports_inline
    def undo(self) -> str | None:
        """Cancel this annotator's latest label or skip and show that item again.

        Calling it again cancels the decision before, and so on. Returns the sample id whose
        decision was undone, or ``None`` when there was nothing to undo.
        """
        with self.session.lock:
            sid = self.session.undo()
            if sid is None:
                self.error.show("nothing to undo")
                return None
            self._after_decision()
            return sid

    def _after_decision(self) -> None:
        self.error.clear()
        with self._batch():
            self._show()
            self.status.value = self._status_html()

    def _batch(self) -> contextlib.AbstractContextManager:
        """Changes made inside reach the browser together (a view with one card: one message)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ drawing
    def _progress_html(self) -> str:
        p = self.session.progress
        rate = "" if p["per_minute"] is None else f" · {p['per_minute']:.0f} per minute"
        pct = 100.0 * p["done"] / p["total"] if p["total"] else 100.0
        return (
            f'<span class="wb-progress-text"><b>{p["done"]:,}</b> / {p["total"]:,} done '
            f"({pct:.0f} %) · {p['session']:,} this session{rate}</span>"
        )

    _confirmations = itertools.count()

    def _status_html(self) -> str:
        """The latest decision, confirmed: "dog ✓ saved", "skipped" or "undone"; it fades."""
        action = self.session.last_action
        if action is None:
            return ""
        if action["kind"] == "label":
            text, colour = f"{self._value_text(action['value'])} ✓ saved", "#1b5e20"
        else:
            text, colour = ("skipped" if action["kind"] == "skip" else "undone"), "#555"
        # A new number each time: the same text twice must still restart the fade.
        n = next(self._confirmations)
        return (
            f'{_FADE}<span class="wb-confirm" data-n="{n}" style="color:{colour};'
            f'font-weight:600;animation:wb-fade {CONFIRM_SECONDS}s forwards">'
            f"{escape(text)}</span>"
        )

    def submit(self, value: Any = None) -> int:  # pragma: no cover - implemented by the views
        """Record ``value`` (``None``: what the view shows as chosen) and move on."""
        raise NotImplementedError

    def _value_text(self, value: Any) -> str:  # pragma: no cover - implemented by the views
        raise NotImplementedError

    def _where_html(self, sid: str) -> str:
        """Which item this is: its id, or (blind labeling) only its place in the queue."""
        s = self.session
        place = f"item {s.position + 1:,} of {len(s.queue):,}"
        if s.blind:
            return f'<b class="wb-blind" title="ids are hidden: blind labeling">{place}</b>'
        return f'<b style="word-break:break-all">{escape(sid)}</b> · {place}'

    def _make_tools(self) -> list[W.Button]:
        """The toolbar both views share, in one order, named after the shared keys."""
        self.submit_button = self._button("Submit (Enter)", "wb-submit", self.submit)
        self.submit_button.button_style = "primary"
        return [self.submit_button, *self._browse_buttons()]

    def _show(self) -> None:  # pragma: no cover - implemented by the views
        raise NotImplementedError

    # ------------------------------------------------------------------ keys
    def _listen_keys(
        self, root_class: str, keys: Sequence[str], inner: tuple[str, Sequence[str]] = ("", ())
    ) -> None:
        """Read :data:`SHARED_KEYS` and ``keys`` while the pointer is over this view (whose
        root has the class ``root_class``); ``inner`` = (selector, keys) leaves those keys to
        a part of the view that reads its own while it has the focus."""
        self._keys = KeyReader(
            root_class, [*SHARED_KEYS, *keys], inner_selector=inner[0], inner_keys=list(inner[1])
        )
        self._keys.on_key(self._on_key)
        self.children = (*self.children, self._keys)

    @guarded
    def _on_key(self, event: dict) -> None:
        kind = event.get("event", event.get("type"))
        if kind != "keydown" or event.get("ctrlKey") or event.get("metaKey"):
            return
        if event.get("altKey") and self._alt_ignored:
            return
        key = str(event.get("key") or "")
        code = str(event.get("code") or "")
        if key == "ArrowRight":
            self._from_view(self.next)
            return
        if key == "ArrowLeft":
            self._from_view(self.prev)
            return
        # A held-down key must not label a run of images; the view's own keys come first.
        if event.get("repeat") or self._on_view_key(key, code, event):
            return
        if key == "Backspace":
            self._from_view(self.undo)
        elif key == "Enter":
            self._from_view(self._on_enter)
        elif len(key) == 1 and key.lower() == "s":
            self._from_view(self.skip)

    def _on_view_key(self, key: str, code: str, event: dict) -> bool:
        """Keys of one view (class keys, ...); ``True`` when the key was handled."""
        return False

    def _on_enter(self) -> None:
        self.submit()

    def close(self) -> None:
        """Stop the session's background threads and close the widgets."""
        session = self.__dict__.get("session")
        if session is not None:
            session.close()
        super().close()

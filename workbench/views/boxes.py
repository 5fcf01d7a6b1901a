"""BoxLabeler: draw class boxes on images with ``jupyter_bbox_widget``; boxes go to a LabelStore.

The widget shows each image fitted into ``display_size`` pixels (tiny images enlarged with
nearest-neighbour, large ones reduced), so its boxes are in *display* pixels. The store keeps
boxes ``[x, y, w, h, class]`` in *original-image* pixels (the catalog's ``width`` and
``height``): :meth:`BoxLabeler.to_original` and :meth:`BoxLabeler.to_display` convert, and
every value read from or written to the store passes through them.

The view is a VBox over one :class:`~workbench.labels.session.LabelingSession` of kind
``"boxes"`` (``boxer.session``), so it has the same guarantees as
:class:`~workbench.views.labeler.Labeler`: a submit is committed before the next image shows,
re-creating the view resumes where the annotator left off, undo goes back. Clipping drawn boxes
to the image is the core's :func:`~workbench.labels.session.clip_boxes`.

One of each: the class picker is the drawing widget's own (its class list under the image, the
colours of the boxes; :meth:`BoxLabeler.select_class` and the digit keys set it), and one toolbar
under the image holds Submit, Skip, Undo, Back and Forward (the widget's own buttons are hidden).
Each image starts with the first class chosen, whatever was chosen before (in the view or in
code), so a box never gets a class picked for another image by accident.

Keyboard, one map shared with the :class:`~workbench.views.labeler.Labeler` (pointer over the
view; never while a text field has the focus): 1-9, 0 choose the class of new boxes; Enter
submits; s skips; Backspace undoes; ← → browse. Inside the image (click it first) the widget's
editing keys come on top: Tab cycles through boxes, Delete removes the selected box, W A S D
move it (so s moves a box there; Escape leaves the image), Q E R F resize it (Shift: 10 px),
C gives it the chosen class.

A key or a button acts on what was drawn before it: the view first asks the browser to flush
the drawing's state (:class:`FlushingBBox`), so a box drawn while the kernel was busy is
submitted with its image, never dropped or carried over to the next one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as W
import traitlets
from jupyter_bbox_widget import BBoxWidget
from PIL import Image

from workbench._validation import check_int
from workbench.catalog import Catalog
from workbench.labels import LabelError, LabelStore
from workbench.labels.schema import clip_boxes
from workbench.labels.session import LabelingSession
from workbench.views._common import ErrorBanner, escape, reports_inline
from workbench.views._labeling import LabelingView, done_tile, session_attribute

__all__ = ["BoxLabeler"]

_DIGITS = "1234567890"
#: Keys the drawing widget reads itself while it has the focus (and ours would also read).
_WIDGET_KEYS = (*_DIGITS, "s")

#: The drawing widget's own module, loaded as it is, plus an answer to "flush" requests.
_FLUSH_ESM = """
const url = URL.createObjectURL(new Blob([%s], { type: "text/javascript" }));
const bbox = (await import(url)).default;
URL.revokeObjectURL(url);
function initialize({ model }) {
  const answer = (msg) => {
    if (msg && msg.type === "flush") {
      model.set("flushed", [...(model.get("flushed") || []).slice(-63), msg.n]);
      model.save_changes();
    }
  };
  model.on("msg:custom", answer);
  return () => model.off("msg:custom", answer);
}
export default { initialize, render: bbox.render };
"""


class FlushingBBox(BBoxWidget):
    """``jupyter_bbox_widget``'s drawing widget that answers a flush request in order.

    The browser sends a widget's state one message at a time: while the kernel handles one,
    later changes wait in the browser. A box drawn while the kernel is busy (the press is one
    message, the release another) can so reach the kernel after an Enter pressed right after
    it, which travels on its own. :meth:`flush` asks the browser to add the request's number to
    ``flushed`` (its last 64 answers); that change queues behind the drawing's, so ``then``
    runs once every box drawn before it is in. A request no page answered (the page reloaded
    meanwhile) is dropped when a later one is answered, so one key press never acts twice.
    """

    _esm = _FLUSH_ESM % json.dumps(BBoxWidget._esm)
    flushed = traitlets.List(traitlets.Int()).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._requested = 0
        self._waiting: list[tuple[int, Callable[[], Any]]] = []
        self.observe(self._on_flushed, "flushed")

    def flush(self, then: Callable[[], Any]) -> None:
        """Run ``then()`` once the browser's state sent before this call has arrived."""
        self._requested += 1
        self._waiting.append((self._requested, then))
        self.send({"type": "flush", "n": self._requested})

    def _on_flushed(self, change: dict) -> None:
        answered = set(change["new"])
        latest = max(answered, default=0)
        ready = [f for n, f in self._waiting if n in answered]
        self._waiting = [(n, f) for n, f in self._waiting if n > latest]
        for then in ready:
            then()


class BoxLabeler(LabelingView):
    """Label objects with boxes, one image at a time.

    Parameters
    ----------
    catalog
        The images (unreadable ones are left out). ``boxer.catalog``.
    store
        Where boxes go (``boxer.store``): values ``[[x, y, w, h, class], ...]`` in
        original-image pixels; ``[]`` records "nothing to box here".
    annotator
        Who is labeling.
    classes
        Box classes (added to the store if missing); default: the store's classes.
    pre_annotations
        Boxes shown for editing on images this annotator has not labeled yet (their own label
        wins once there is one): ``{sample id: [[x, y, w, h, class], ...]}`` in original
        pixels, or the name of an annotator or model in the store whose current boxes (an
        import, a detector's :meth:`~LabelStore.suggest` events) to start from.
    display_size
        Edge of the box the image is fitted into, in pixels.
    round, store_task
        The store's ``round`` and ``task`` (``"boxes"`` by default).
    blind
        Hide sample ids and paths. ``None``: on when other annotators have boxes on images of
        this queue (see :class:`LabelingSession`).

    Attributes
    ----------
    session : LabelingSession
        The queue and decisions this view draws (``store``, ``queue``, ``current`` ... read
        through to it).
    bbox : FlushingBBox
        The drawing widget (class ``wb-bbox``); its ``bboxes`` are in display pixels.
    scale : tuple of float
        ``(sx, sy)``: original pixels per display pixel of the current image.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: LabelStore,
        *,
        annotator: str,
        classes: Sequence[str] | None = None,
        pre_annotations: Mapping[str, Sequence[Sequence[Any]]] | str | None = None,
        display_size: int = 512,
        round: int = 0,
        store_task: str = "boxes",
        blind: bool | None = None,
    ) -> None:
        self.display_size = check_int(display_size, "display_size", low=16)
        self.scale = (1.0, 1.0)
        self._size = (1, 1)
        self.error = ErrorBanner()
        self.session = LabelingSession(
            catalog, store, annotator=annotator, round=round, task=store_task, kind="boxes",
            classes=classes, pre_annotations=pre_annotations, blind=blind,
        )  # fmt: skip
        self.classes: list[str] = self.session.classes
        self._build_widgets()
        self._show()

    pre_annotations: dict[str, list] = session_attribute(
        "pre_annotations", "Boxes shown on images not labeled yet, by sample id."
    )

    def _build_widgets(self) -> None:

        # The widget's class list is the one class picker; its Submit/Skip buttons give way to
        # the toolbar (hide_buttons also stops its own Enter/Space keys: ours read those).
        self.bbox = FlushingBBox(classes=self.classes, label=self.classes[0], hide_buttons=True)
        self.bbox.add_class("wb-bbox")
        self.bbox.on_submit(self._on_bbox_submit)
        self.bbox.on_skip(self._on_bbox_skip)
        self.progress_label = W.HTML().add_class("wb-progress")
        self.status = W.HTML(layout=W.Layout(margin="0 0 0 16px")).add_class("wb-status")
        self.info = W.HTML().add_class("wb-info")
        self.tools = W.HBox(self._make_tools(), layout=W.Layout(flex_flow="row wrap"))
        self.tools.add_class("wb-box-tools")
        help_text = (
            "Keys (pointer over the view, not while typing): drag to draw · 1–9 0 class · "
            "Enter submit · s skip · ⌫ undo · ← → browse. In the image: Tab select · Del remove · "
            "WASD move · QERF resize · C set class · Esc leave"
        )
        help_html = W.HTML(f'<span style="color:#666;font-size:12px">{escape(help_text)}</span>')
        W.VBox.__init__(
            self,
            [
                W.HBox([self.progress_label, self.status]),
                self.error,
                self.info,
                self.bbox,
                self.tools,
                help_html,
            ],
        )
        self.add_class("wb-boxlabeler")
        self._listen_keys("wb-boxlabeler", _DIGITS, inner=(".wb-bbox", _WIDGET_KEYS))

    pre_annotations: dict[str, list] = session_attribute(
        "pre_annotations", "Boxes shown on images not labeled yet, by sample id."
    )

    # ------------------------------------------------------------------ coordinates
    def to_display(self, boxes: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """``[[x, y, w, h, class], ...]`` in original pixels -> the widget's ``bboxes``."""
        sx, sy = self.scale
        out = []
        for b in boxes:
            if len(b) != 5:
                raise LabelError(f"a box is [x, y, w, h, class]; got {b!r}")
            x, y, w, h = (float(v) for v in b[:4])
            out.append({"x": x / sx, "y": y / sy, "width": w / sx, "height": h / sy, "label": b[4]})
        return out

    def to_original(self, bboxes: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """The widget's ``bboxes`` (display pixels) -> ``[[x, y, w, h, class], ...]`` in
        original pixels: corners ordered, clipped to the image, empty boxes dropped, values
        rounded to 1/1000 pixel."""
        sx, sy = self.scale
        drawn = (
            [
                float(b["x"]) * sx,
                float(b["y"]) * sy,
                float(b["width"]) * sx,
                float(b["height"]) * sy,
                b.get("label", ""),
            ]
            for b in bboxes
        )
        return clip_boxes(drawn, self._size)

    @property
    def boxes(self) -> list[list[Any]]:
        """The boxes drawn on the current image, in original pixels."""
        return self.to_original(self.bbox.bboxes)

    @boxes.setter
    def boxes(self, boxes: Sequence[Sequence[Any]]) -> None:
        self.bbox.bboxes = self.to_display(boxes)

    def add_box(self, x: float, y: float, w: float, h: float, cls: str | None = None) -> None:
        """Draw one box (original pixels) on the current image; ``cls`` defaults to the
        selected class."""
        name = cls if cls is not None else self.bbox.label or self.classes[0]
        self.bbox.bboxes = [*self.bbox.bboxes, *self.to_display([[x, y, w, h, name]])]

    @reports_inline
    def select_class(self, name: str) -> None:
        """Choose the class that new boxes get (what the digit keys do)."""
        if name not in self.classes:
            raise LabelError(f"unknown class {name!r}; the box classes are {self.classes}")
        self.bbox.label = name

    # ------------------------------------------------------------------ decisions
    @reports_inline
    def submit(self, value: Sequence[Sequence[Any]] | None = None) -> int:
        """Store boxes for the current image and move on.

        Parameters
        ----------
        value
            ``[[x, y, w, h, class], ...]`` in original pixels; ``None`` takes the boxes drawn
            in the widget. ``[]`` records that the image has nothing to box.

        Returns
        -------
        int
            The event id; committed before the next image shows.

        Raises
        ------
        LabelError
            A box without one of :attr:`classes`, or one that leaves its image (boxes given
            here are checked, not clipped). The message also shows in the view.
        """
        with self.session.lock:
            return self._commit(self.boxes if value is None else value)

    # ------------------------------------------------------------------ handlers
    def _from_view(self, action: Callable[[], Any]) -> None:
        # A key or a button acts on the boxes drawn before it, never on a half-sent drawing;
        # and no late drawing state lands on the next image.
        self.bbox.flush(lambda: self._click(action))

    def _on_bbox_submit(self) -> None:
        self._from_view(self.submit)

    def _on_bbox_skip(self) -> None:
        self._from_view(self.skip)

    def _on_view_key(self, key: str, code: str, event: dict) -> bool:
        if len(key) != 1 or key not in _DIGITS:
            return False
        k = _DIGITS.index(key)
        if k < len(self.classes):
            self.select_class(self.classes[k])
        return True

    # ------------------------------------------------------------------ rendering
    def _show(self) -> None:
        s = self.session
        sid = s.current
        if sid is None:
            thumb = done_tile(self.display_size, "All done")
            self._size, self.scale = (1, 1), (1.0, 1.0)
            boxes: list = []
        else:
            thumb = self.catalog.thumbnail(sid, self.display_size)
            dw, dh = Image.open(io.BytesIO(thumb.data)).size  # reads the header only
            w, h = s.original_size(sid)
            self._size = (w, h)
            self.scale = (w / dw, h / dh) if dw and dh else (1.0, 1.0)
            boxes = s.start_value(sid) or []  # stored, else pre-annotated; skipped: none
        with self.bbox.hold_sync():
            self.bbox.image_bytes = thumb.data
            self.bbox.bboxes = self.to_display(boxes)
            self.bbox.selected_index = -1
            self.bbox.label = self.classes[0]  # a new image starts from the first class
        s.mark_shown()
        if sid is None:
            self.info.value = "<b>Every image is done.</b>"
        else:
            w, h = self._size
            state = ""
            status = s.status(sid)
            if status == "labeled":
                state = f" · {self._value_text(boxes)} stored"
            elif status == "skipped":
                state = " · <i>skipped</i>"
            elif sid in self.pre_annotations:
                state = f" · {len(boxes)} pre-annotated box(es)"
            self.info.value = f"<span>{self._where_html(sid)} · {w}×{h} px{state}</span>"
        self.progress_label.value = self._progress_html()

    def _value_text(self, value: Any) -> str:
        n = len(value)
        return "no boxes" if n == 0 else f"{n} box" if n == 1 else f"{n} boxes"

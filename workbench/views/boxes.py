"""BoxLabeler: draw class boxes on images with ``jupyter_bbox_widget``; boxes go to a LabelStore.

The widget shows each image fitted into ``display_size`` pixels (tiny images enlarged with
nearest-neighbour, large ones reduced), so its boxes are in *display* pixels. The store keeps
boxes ``[x, y, w, h, class]`` in *original-image* pixels (the catalog's ``width`` and
``height``): :meth:`BoxLabeler.to_original` and :meth:`BoxLabeler.to_display` convert, and
every value read from or written to the store passes through them.

Same guarantees as :class:`~workbench.views.labeler.Labeler`: a submit is committed before the
next image shows, re-creating the view resumes where the annotator left off, undo goes back.

Keyboard. Inside the image (click it first), the widget's own keys: 1-9, 0 choose the class of
new boxes; Tab cycles through boxes; Delete removes the selected box; W A S D move it, Q E R F
resize it (Shift: 10 px); C gives it the chosen class; Enter submits; Space skips. With the pointer
over the class buttons and tools below: 1-9, 0 choose the class, Enter submits, s skips,
Backspace undoes, ← → browse.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as W
from ipyevents import Event
from jupyter_bbox_widget import BBoxWidget
from PIL import Image

from workbench.catalog import Catalog
from workbench.errors import ParameterError
from workbench.labels import LabelError, LabelStore
from workbench.thumbs import escape
from workbench.views._common import ErrorBanner, guarded
from workbench.views.labeler import _done_tile, _SampleQueue

__all__ = ["BoxLabeler"]

_DIGITS = "1234567890"


class BoxLabeler(_SampleQueue, W.VBox):
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

    Attributes
    ----------
    bbox : jupyter_bbox_widget.BBoxWidget
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
    ) -> None:
        if not isinstance(display_size, int) or display_size < 16:
            raise ParameterError(f"display_size must be an integer >= 16, got {display_size!r}")
        self.display_size = display_size
        if isinstance(pre_annotations, str):
            pre_annotations = _from_store(store, pre_annotations, store_task)
        self.pre_annotations = dict(pre_annotations or {})
        self.scale = (1.0, 1.0)
        self._size = (1, 1)
        self.error = ErrorBanner()
        self._setup_queue(
            catalog, store, annotator=annotator, round=round, store_task=store_task, seed=0
        )
        unknown = [i for i in self.pre_annotations if i not in self.catalog]
        if unknown:
            raise ParameterError(f"pre_annotations name samples not in the catalog: {unknown[:5]}")
        if classes is not None:
            store.add_classes(list(classes))
        self.classes: list[str] = list(classes) if classes is not None else store.classes
        if not self.classes:
            raise ParameterError("no box classes: pass classes=[...] or add them to the store")
        self._sizes = {
            str(i): (int(w), int(h))
            for i, w, h in zip(
                catalog.df["id"], catalog.df["width"], catalog.df["height"], strict=True
            )
        }

        self.bbox = BBoxWidget(classes=self.classes, label=self.classes[0], hide_buttons=False)
        self.bbox.add_class("wb-bbox")
        self.bbox.on_submit(self._on_bbox_submit)
        self.bbox.on_skip(self._on_bbox_skip)
        self.bbox.observe(self._on_bbox_label_change, "label")
        self.progress_label = W.HTML().add_class("wb-progress")
        self.info = W.HTML().add_class("wb-info")
        self.class_buttons: dict[str, W.Button] = {}
        for k, name in enumerate(self.classes):
            key = _DIGITS[k] if k < len(_DIGITS) else ""
            b = W.Button(
                description=f"{key} · {name}" if key else name,
                tooltip=f"new boxes get the class {name}",
                layout=W.Layout(width="auto", min_width="80px"),
            ).add_class("wb-class")
            b.on_click(lambda _b, name=name: self._on_class_click(name))
            self.class_buttons[name] = b
        self.class_buttons[self.classes[0]].button_style = "info"  # the widget's first class

        def button(text: str, cls: str, handler: Callable[[W.Button], None]) -> W.Button:
            b = W.Button(description=text, layout=W.Layout(width="auto")).add_class(cls)
            b.on_click(handler)
            return b

        self.prev_button = button("◀ Back", "wb-prev", self._on_prev_click)
        self.undo_button = button("Undo (⌫)", "wb-undo", self._on_undo_click)
        self.next_button = button("Forward ▶", "wb-next", self._on_next_click)
        self.tools = W.VBox(
            [
                W.HBox(list(self.class_buttons.values()), layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self.prev_button, self.undo_button, self.next_button, self.info]),
            ]
        ).add_class("wb-box-tools")
        help_text = (
            "In the image: drag to draw · 1–9 0 class · Tab select · Del remove · WASD move · "
            "QERF resize · C set class · Enter submit · Space skip. "
            "Over the buttons: 1–9 0 class · Enter submit · s skip · ⌫ undo · ← → browse"
        )
        help_html = W.HTML(f'<span style="color:#666;font-size:12px">{escape(help_text)}</span>')
        W.VBox.__init__(self, [self.progress_label, self.error, self.bbox, self.tools, help_html])
        self.add_class("wb-boxlabeler")
        # Keys over the tools only: over the image the widget reads its own keys, and an
        # ipyevents listener there would swallow them.
        self._keys = Event(
            source=self.tools, watched_events=["keydown"], prevent_default_action=True
        )
        self._keys.on_dom_event(self._on_key)
        self._set_queue(list(self.ids))
        self._resume()
        self._show()

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
        width, height = self._size
        out = []
        for b in bboxes:
            x0, y0 = float(b["x"]) * sx, float(b["y"]) * sy
            x1, y1 = x0 + float(b["width"]) * sx, y0 + float(b["height"]) * sy
            x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
            y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
            if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:
                continue  # a click without a drag
            box = [round(v, 3) + 0.0 for v in (x0, y0, x1 - x0, y1 - y0)]
            out.append([*box, str(b.get("label", ""))])
        return out

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

    def select_class(self, name: str) -> None:
        """Choose the class that new boxes get (what the digit keys do)."""
        if name not in self.classes:
            err = LabelError(f"unknown class {name!r}; the box classes are {self.classes}")
            self.error.show(str(err))
            raise err
        self.bbox.label = name

    # ------------------------------------------------------------------ decisions
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
        """
        with self._lock:
            boxes = self.boxes if value is None else [list(b) for b in value]
            for b in boxes:
                if len(b) != 5 or b[4] not in self.classes:
                    err = LabelError(
                        f"box {b!r} needs one of the classes {self.classes} as its 5th value"
                    )
                    self.error.show(str(err))
                    raise err
            return self._commit(boxes)

    def _stored_value(self, value: Any) -> Any:
        return [[float(v) for v in b[:4]] + [b[4]] for b in value]

    # ------------------------------------------------------------------ handlers
    @guarded
    def _on_bbox_submit(self) -> None:
        self.submit()

    @guarded
    def _on_bbox_skip(self) -> None:
        self.skip()

    @guarded
    def _on_class_click(self, name: str) -> None:
        self.select_class(name)

    @guarded
    def _on_bbox_label_change(self, change: dict) -> None:
        for name, b in self.class_buttons.items():
            style = "info" if name == change["new"] else ""
            if b.button_style != style:
                b.button_style = style

    @guarded
    def _on_prev_click(self, _b: W.Button) -> None:
        self.prev()

    @guarded
    def _on_next_click(self, _b: W.Button) -> None:
        self.next()

    @guarded
    def _on_undo_click(self, _b: W.Button) -> None:
        self.undo()

    @guarded
    def _on_key(self, event: dict) -> None:
        kind = event.get("event", event.get("type"))
        if kind != "keydown" or event.get("ctrlKey") or event.get("metaKey"):
            return
        key = str(event.get("key") or "")
        if key == "ArrowRight":
            self.next()
        elif key == "ArrowLeft":
            self.prev()
        elif event.get("repeat"):
            return
        elif key and key in _DIGITS:
            k = _DIGITS.index(key)
            if k < len(self.classes):
                self.select_class(self.classes[k])
        elif key == "Enter":
            self.submit()
        elif key.lower() == "s":
            self.skip()
        elif key == "Backspace":
            self.undo()

    def close(self) -> None:
        keys = self.__dict__.get("_keys")
        if keys is not None:
            keys.close()
        super().close()

    # ------------------------------------------------------------------ rendering
    def _show(self) -> None:
        sid = self.current
        if sid is None:
            thumb = _done_tile(self.display_size, "All done")
            self._size, self.scale = (1, 1), (1.0, 1.0)
            boxes: list = []
        else:
            thumb = self.catalog.thumbnail(sid, self.display_size)
            dw, dh = Image.open(io.BytesIO(thumb.data)).size  # reads the header only
            w, h = self._sizes[sid]
            self._size = (w, h)
            self.scale = (w / dw, h / dh) if dw and dh else (1.0, 1.0)
            if sid in self._values:
                boxes = self._values[sid] or []
            elif sid in self._done:
                boxes = []  # skipped
            else:
                boxes = list(self.pre_annotations.get(sid, []))
        with self.bbox.hold_sync():
            self.bbox.image_bytes = thumb.data
            self.bbox.bboxes = self.to_display(boxes)
            self.bbox.selected_index = -1
        self._shown_at = time.monotonic()
        if sid is None:
            self.info.value = "<b>Every image is done.</b>"
        else:
            w, h = self._size
            state = ""
            if sid in self._values:
                state = f" · {len(boxes)} box(es) stored"
            elif sid in self._done:
                state = " · <i>skipped</i>"
            elif sid in self.pre_annotations:
                state = f" · {len(boxes)} pre-annotated box(es)"
            self.info.value = (
                f'<span style="margin-left:12px"><b>{escape(sid)}</b> · {w}×{h} px{state}</span>'
            )
        self.progress_label.value = self._progress_html()


def _from_store(store: LabelStore, name: str, task: str) -> dict[str, list]:
    """Boxes by ``name`` in the store: its current labels, else its latest suggestions."""
    sug = store.suggestions(model=name, task=task)
    out = {i: v for i, v in zip(sug["id"], sug["value"], strict=True) if isinstance(v, list)}
    cur = store.current(annotator=name, task=task)
    out.update((i, v) for i, v in zip(cur["id"], cur["value"], strict=True) if isinstance(v, list))
    if not out:
        raise ParameterError(f"the store holds no boxes (task {task!r}) by {name!r} to start from")
    return out

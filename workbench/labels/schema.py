"""The class schema and the value codec: names at the API, stable integer codes on disk.

Guarantees
----------
- A class code never changes and is never reused. :meth:`_Schema.replay` rebuilds the class list
  from the schema events (``class_add``, ``class_rename``, ``class_merge``) in event order, so any
  two readers of the same events see the same classes.
- A rename changes a name only; a merge retires codes, which then read as the class they were
  merged into (also through merge chains).
- :meth:`_Schema.store` accepts exactly the three value shapes (a class, a set of classes, boxes
  in pixels) and checks each box: numbers, finite, ``w, h > 0``, starting inside the image and,
  when the image size is known, ending inside it (within :data:`EDGE_TOLERANCE`).
- :func:`clip_boxes` turns boxes as a person drew them into boxes :meth:`_Schema.store` takes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import LabelError
from workbench.labels._checks import _is_number, _short

#: How far (pixels) a box may stick out of its image: float noise from normalised formats.
EDGE_TOLERANCE = 1e-3


def clip_boxes(boxes: Iterable[Sequence[Any]], size: tuple[int, int]) -> list[list[Any]]:
    """Boxes as drawn -> boxes the store accepts, in the same (original-image) pixels.

    Each ``[x, y, w, h, class]`` may have a negative width or height (dragged up or left) and
    may stick out of the image. Corners are ordered, clipped to the ``(width, height)`` image,
    boxes left empty (a click without a drag) dropped, values rounded to 1/1000 pixel and the
    class made text.
    """
    width, height = size
    out = []
    for b in boxes:
        x0, y0 = float(b[0]), float(b[1])
        x1, y1 = x0 + float(b[2]), y0 + float(b[3])
        x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
        y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
        if x1 - x0 < 1e-3 or y1 - y0 < 1e-3:
            continue  # a click without a drag
        box = [round(v, 3) + 0.0 for v in (x0, y0, x1 - x0, y1 - y0)]
        out.append([*box, str(b[4])])
    return out


def _dumps(obj: Any) -> str | None:
    """Compact JSON of a stored value (None stays None); NaN and infinity are refused."""
    if obj is None:
        return None
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass
class _Schema:
    """The class list, replayed from the schema events in event order."""

    names: dict[int, str] = field(default_factory=dict)  # active code -> name, code order
    codes: dict[str, int] = field(default_factory=dict)  # active name -> code
    merged: dict[int, int] = field(default_factory=dict)  # retired code -> code merged into
    next_code: int = 0

    @classmethod
    def replay(cls, rows: Iterable[tuple[str, str]]) -> _Schema:
        s = cls()
        for kind, raw in rows:
            v = json.loads(raw)
            if kind == "class_add":
                s.names[v["code"]] = v["name"]
                s.codes[v["name"]] = v["code"]
                s.next_code = max(s.next_code, v["code"] + 1)
            elif kind == "class_rename":
                del s.codes[s.names[v["code"]]]
                s.names[v["code"]] = v["new"]
                s.codes[v["new"]] = v["code"]
            else:  # class_merge
                for c in v["codes"]:
                    del s.codes[s.names.pop(c)]
                    s.merged[c] = v["into"]
        s.names = dict(sorted(s.names.items()))
        return s

    def code(self, name: Any) -> int:
        if not isinstance(name, str):
            raise LabelError(f"a class name is text, got {type(name).__name__} {_short(name)}")
        try:
            return self.codes[name]
        except KeyError:
            known = ", ".join(_short(k, 40) for k in list(self.codes)[:20])
            more = ", ..." if len(self.codes) > 20 else ""
            raise LabelError(
                f"unknown class {_short(name)}; the classes are [{known}{more}]. "
                "Add it first with store.add_classes([...])."
            ) from None

    def name(self, code: int) -> str:
        for _ in range(len(self.merged) + 1):  # follow merge chains (a -> b, later b -> c)
            if code not in self.merged:
                break
            code = self.merged[code]
        try:
            return self.names[code]
        except KeyError:
            raise LabelError(f"unknown class code {code!r}; codes are {list(self.names)}") from None

    def store(self, value: Any, size: tuple[int, int] | None) -> Any:
        """API value (names) -> stored value (codes), validating it."""
        if isinstance(value, str):
            return {"class": self.code(value)}
        if isinstance(value, (list, tuple)):
            items = list(value)
            if not items:
                return []
            if all(isinstance(v, str) for v in items):
                return {"classes": sorted({self.code(v) for v in items})}
            if all(isinstance(v, (list, tuple)) for v in items):
                return {"boxes": [self._box(b, size) for b in items]}
        raise LabelError(
            "a label value is a class name, a list of class names, or a list of boxes "
            f"[x, y, w, h, class] in pixels; got {_short(value)}"
        )

    def _box(self, box: Sequence[Any], size: tuple[int, int] | None) -> list[Any]:
        if len(box) != 5 or not all(_is_number(v) for v in box[:4]):
            raise LabelError(f"a box is [x, y, w, h, class] with numbers; got {_short(box)}")
        x, y, w, h = (float(v) for v in box[:4])
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise LabelError(f"a box needs finite x, y and w, h > 0; got {_short(box)}")
        if x < 0 or y < 0:
            raise LabelError(f"a box must start inside the image (x, y >= 0); got {_short(box)}")
        if size is not None and size[0] > 0 and size[1] > 0:
            width, height = size
            if x + w > width + EDGE_TOLERANCE or y + h > height + EDGE_TOLERANCE:
                raise LabelError(
                    f"box {_short(box)} leaves the {width}x{height} image (boxes are in "
                    "original-image pixels)"
                )
        return [x, y, w, h, self.code(box[4])]

    def load(self, stored: Any) -> Any:
        """Stored value (codes) -> API value (today's names)."""
        if not isinstance(stored, dict):
            return stored  # None (skip / undo), [] (empty set) or a review verdict
        if "class" in stored:
            return self.name(stored["class"])
        if "classes" in stored:  # a merge can fold two codes into one name
            return list(dict.fromkeys(self.name(c) for c in stored["classes"]))
        if "boxes" in stored:
            return [[*b[:4], self.name(b[4])] for b in stored["boxes"]]
        return stored


def _load_extra(raw: str | None, s: _Schema) -> Any:
    """An event's ``extra`` JSON, with suggestion probabilities keyed by today's names."""
    if raw is None:
        return None
    extra = json.loads(raw)
    if isinstance(extra, dict) and "probs" in extra:
        extra = {**extra, "probs": {s.name(c): p for c, p in extra["probs"]}}
    return extra


def _class_names(value: Any) -> list[str]:
    """Class names in a (maybe malformed) API value, so an import can add them first."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    for v in value if isinstance(value, list) else []:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list) and len(v) == 5 and isinstance(v[4], str):
            out.append(v[4])
    return out

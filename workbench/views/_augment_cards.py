"""The step card of the augment tuner: one registry step's controls, built from its registry entry.

A :class:`_StepCard` shows a step's title, its enable check box, move / remove / "only" buttons,
one control per registry parameter and its apply probability. It holds no pipeline state: the
tuner reads the controls and writes the pipeline. ``_param_widget`` maps each parameter kind to a
control (sliders, range sliders, menus, check boxes, a text field for sizes) and
``_widget_value`` reads it back in the form ``Pipeline.set_param`` takes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import ipywidgets as W

from workbench.augment import ParamSpec
from workbench.thumbs import escape

_CONTROL_WIDTH = "360px"
_DESC = {"description_width": "120px"}


def _decimals(step: float | None) -> int:
    if not step or step >= 1:
        return 0
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _size_text(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


def _parse_size(text: str) -> Any:
    parts = [p for p in re.split(r"[\s,x×()\[\]]+", text.strip()) if p]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) == 2:
        return tuple(numbers)
    return text  # the pipeline refuses it with a message that names the step


def _param_widget(spec: ParamSpec, value: Any) -> W.Widget:
    """The control for one registry parameter (class ``wb-param wb-param-<name>``)."""
    common: dict[str, Any] = {
        "description": spec.name,
        "tooltip": spec.doc,
        "style": _DESC,
        "layout": W.Layout(width=_CONTROL_WIDTH),
    }
    fmt = f".{_decimals(spec.step)}f"
    kind = spec.kind
    if kind == "float":
        w: W.Widget = W.FloatSlider(
            value=value, min=spec.min, max=spec.max, step=spec.step, readout_format=fmt, **common
        )
    elif kind == "int":
        w = W.IntSlider(value=value, min=spec.min, max=spec.max, step=spec.step or 1, **common)
    elif kind == "range" and spec.integer:
        w = W.IntRangeSlider(
            value=tuple(value), min=spec.min, max=spec.max, step=spec.step or 1, **common
        )
    elif kind == "range":
        w = W.FloatRangeSlider(
            value=tuple(value),
            min=spec.min,
            max=spec.max,
            step=spec.step,
            readout_format=fmt,
            **common,
        )
    elif kind == "choice":
        w = W.Dropdown(options=list(spec.choices), value=value, **common)
    elif kind == "bool":
        w = W.Checkbox(value=bool(value), indent=True, **common)
    else:  # size: an int or (height, width), typed
        w = W.Text(value=_size_text(value), continuous_update=False, **common)
        w.placeholder = "224  or  224, 224"
    w.add_class("wb-param")
    w.add_class(f"wb-param-{spec.name}")
    return w


def _widget_value(spec: ParamSpec, widget: W.Widget) -> Any:
    if spec.kind == "size":
        return _parse_size(widget.value)
    if spec.kind == "range":
        return tuple(widget.value)
    return widget.value


def _close_tree(widget: W.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


class _StepCard(W.VBox):
    """The controls of one step: header buttons, its parameters and its probability."""

    def __init__(self, uid: int, index: int, step: Any) -> None:
        self.uid = uid
        spec = step.spec
        self.title = W.HTML(layout=W.Layout(flex="1 1 auto", min_width="0")).add_class(
            "wb-step-title"
        )
        self.enabled = W.Checkbox(
            value=step.enabled, description="on", indent=False, layout=W.Layout(width="48px")
        ).add_class("wb-enabled")
        small = W.Layout(width="30px", padding="0")
        self.up = W.Button(description="↑", tooltip="move up", layout=small).add_class("wb-up")
        self.down = W.Button(description="↓", tooltip="move down", layout=small).add_class(
            "wb-down"
        )
        self.remove = W.Button(description="✕", tooltip="remove", layout=small).add_class(
            "wb-remove"
        )
        self.only = W.ToggleButton(
            description="only", tooltip="show only this step", layout=W.Layout(width="52px")
        ).add_class("wb-only")
        self.params: dict[str, W.Widget] = {
            ps.name: _param_widget(ps, step.params[ps.name]) for ps in spec.params
        }
        self.p = W.FloatSlider(
            value=step.p,
            min=0.0,
            max=1.0,
            step=0.05,
            description="p (apply)",
            tooltip="probability that the step is applied",
            readout_format=".2f",
            style=_DESC,
            layout=W.Layout(width=_CONTROL_WIDTH),
        )
        for c in ("wb-param", "wb-param-p", "wb-p"):
            self.p.add_class(c)
        header = W.HBox(
            [self.title, self.enabled, self.up, self.down, self.only, self.remove],
            layout=W.Layout(align_items="center"),
        )
        super().__init__(
            [header, *self.params.values(), self.p],
            layout=W.Layout(border="1px solid #ddd", padding="2px 4px", margin="2px 0"),
        )
        self.add_class("wb-step")
        self.set_position(index, step)

    def set_position(self, index: int, step: Any) -> None:
        self.title.value = (
            f'<div title="{escape(step.spec.doc)}" style="white-space:nowrap;overflow:hidden;'
            f'text-overflow:ellipsis"><b>{index}.</b> {escape(step.name)}</div>'
        )
        self.layout.opacity = "1" if step.enabled else "0.55"

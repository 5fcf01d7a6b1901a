"""The step card of the augment tuner: one registry step's controls, built from its registry entry.

A :class:`_StepCard` shows a step's header (collapse, title, enable check box, move / "only" /
remove buttons) and one :class:`_ParamRow` per registry parameter plus the apply probability.
A row is the parameter's name, its control (slider, range slider, menu, check box, or a text
field for sizes) and, for numbers, an editable number field that shows the exact value held.
Cards hold no pipeline state: the tuner reads a row (:meth:`_ParamRow.read`, which goes through
:mod:`workbench.augment.controls`, so a slider snapping its start value to its grid is no edit)
and shows the pipeline's value back (:meth:`_ParamRow.show`).

Cards keep their natural height (``flex: 0 0 auto``): the step column scrolls as a whole and
never squeezes a card into an inner scroll area. A collapsed card shows only its header.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from workbench.augment import ParamSpec, controls
from workbench.views._common import escape

_NAME_WIDTH = "128px"
_NUMBER_WIDTH = {"range": "112px"}
_NUMBER_DEFAULT_WIDTH = "76px"


def _name(spec: ParamSpec) -> W.HTML:
    """The parameter's name; long names wrap after an underscore instead of being cut."""
    wrapped = escape(spec.name).replace("_", "_<wbr>")
    return W.HTML(
        f'<div title="{escape(spec.doc)}" style="line-height:1.2;overflow-wrap:anywhere">'
        f"{wrapped}</div>",
        layout=W.Layout(width=_NAME_WIDTH, min_width=_NAME_WIDTH, flex="0 0 auto"),
    ).add_class("wb-param-name")


def _control(spec: ParamSpec, value: Any) -> W.Widget:
    """The control for one registry parameter (class ``wb-param wb-param-<name>``).

    Sliders show no readout of their own: the number field next to them is the readout.
    """
    common: dict[str, Any] = {
        "tooltip": spec.doc,
        "layout": W.Layout(width="auto", min_width="120px", flex="1 1 auto"),
    }
    slider = {"min": spec.min, "max": spec.max, "readout": False, **common}
    kind = spec.kind
    if kind == "float":
        w: W.Widget = W.FloatSlider(value=value, step=spec.step, **slider)
    elif kind == "int":
        w = W.IntSlider(value=value, step=spec.step or 1, **slider)
    elif kind == "range" and spec.integer:
        w = W.IntRangeSlider(value=tuple(value), step=spec.step or 1, **slider)
    elif kind == "range":
        w = W.FloatRangeSlider(value=tuple(value), step=spec.step, **slider)
    elif kind == "choice":
        w = W.Dropdown(options=list(spec.choices), value=value, **common)
    elif kind == "bool":
        w = W.Checkbox(value=bool(value), indent=False, **common)
    else:  # size: an int or (height, width), typed
        w = W.Text(value=controls.text(spec, value), continuous_update=False, **common)
        w.placeholder = "224  or  224, 224"
    w.add_class("wb-param")
    w.add_class(f"wb-param-{spec.name}")
    return w


class _ParamRow(W.HBox):
    """One parameter: its name, its control and, for numbers, a number field (``wb-number``)."""

    def __init__(self, spec: ParamSpec, value: Any) -> None:
        self.spec = spec
        self.control = _control(spec, value)
        self.number: W.Text | None = None
        children = [_name(spec), self.control]
        if spec.kind in ("float", "int", "range"):
            width = _NUMBER_WIDTH.get(spec.kind, _NUMBER_DEFAULT_WIDTH)
            self.number = W.Text(
                value=controls.text(spec, value),
                continuous_update=False,  # applied on Enter or when the field loses focus
                tooltip=f"{spec.doc}: type a value, Enter applies it",
                layout=W.Layout(width=width, min_width=width, flex="0 0 auto"),
            )
            self.number.add_class("wb-number")
            self.number.add_class(f"wb-number-{spec.name}")
            children.append(self.number)
        super().__init__(children, layout=W.Layout(align_items="center", width="100%"))
        self.add_class("wb-param-row")

    def read(self, source: str, current: Any) -> Any:
        """The value the ``"control"`` or the ``"number"`` field asks for, or ``UNCHANGED``.

        Raises
        ------
        ParameterError
            The text typed is not a number (or pair).
        """
        if source == "number":
            assert self.number is not None
            return controls.parse(self.spec, self.number.value, current)
        value = self.control.value
        if self.spec.kind == "size":
            return controls.parse(self.spec, value, current)
        return controls.from_slider(self.spec, value, current)

    def show(self, value: Any) -> None:
        """Show ``value`` (the caller keeps the change handlers quiet)."""
        if self.spec.kind == "size":
            self.control.value = controls.text(self.spec, value)
        elif controls.from_slider(self.spec, self.control.value, value) is not controls.UNCHANGED:
            # a slider already standing where ``value`` is shown is left alone
            self.control.value = tuple(value) if isinstance(value, (tuple, list)) else value
        if self.number is not None:
            self.number.value = controls.text(self.spec, value)


def _close_tree(widget: W.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _button(label: str, tooltip: str, cls: str, width: str = "30px") -> W.Button:
    return W.Button(
        description=label, tooltip=tooltip, layout=W.Layout(width=width, padding="0")
    ).add_class(cls)


class _StepCard(W.VBox):
    """The controls of one step: header buttons, its parameters and its probability.

    Attributes
    ----------
    rows : dict
        ``_ParamRow`` by parameter name; ``"p"`` is the apply probability.
    params : dict
        The control of each registry parameter (``rows[name].control``).
    p : FloatSlider
        The apply-probability slider.
    numbers : dict
        The number field of each numeric parameter and of ``"p"``.
    """

    def __init__(self, uid: int, index: int, step: Any, collapsed: bool = False) -> None:
        self.uid = uid
        spec = step.spec
        self.collapse = _button("▾", "collapse", "wb-collapse", "28px")
        self.title = W.HTML(layout=W.Layout(flex="1 1 auto", min_width="0")).add_class(
            "wb-step-title"
        )
        self.enabled = W.Checkbox(
            value=step.enabled,
            description="on",
            indent=False,
            layout=W.Layout(width="52px", min_width="52px"),
        ).add_class("wb-enabled")
        self.up = _button("↑", "move up", "wb-up")
        self.down = _button("↓", "move down", "wb-down")
        self.only = W.ToggleButton(
            description="only", tooltip="show only this step", layout=W.Layout(width="52px")
        ).add_class("wb-only")
        self.remove = _button("✕", "remove", "wb-remove")
        self.rows: dict[str, _ParamRow] = {
            ps.name: _ParamRow(ps, step.params[ps.name]) for ps in spec.params
        }
        self.rows["p"] = _ParamRow(controls.P_SPEC, step.p)
        self.params: dict[str, W.Widget] = {k: r.control for k, r in self.rows.items() if k != "p"}
        self.p = self.rows["p"].control
        self.p.add_class("wb-p")
        self.numbers: dict[str, W.Text] = {
            k: r.number for k, r in self.rows.items() if r.number is not None
        }
        header = W.HBox(
            [self.collapse, self.title, self.enabled, self.up, self.down, self.only, self.remove],
            layout=W.Layout(align_items="center", width="100%", flex="0 0 auto"),
        ).add_class("wb-step-header")
        self.body = W.VBox(list(self.rows.values()), layout=W.Layout(flex="0 0 auto"))
        self.body.add_class("wb-step-body")
        super().__init__(
            [header, self.body],
            layout=W.Layout(
                border="1px solid #ddd",
                padding="2px 4px",
                margin="2px 0",
                flex="0 0 auto",  # natural height: the column scrolls, cards never shrink
                overflow="visible",
            ),
        )
        self.add_class("wb-step")
        self.set_position(index, step)
        self.set_collapsed(collapsed)

    def set_position(self, index: int, step: Any) -> None:
        self.title.value = (
            f'<div title="{escape(step.spec.doc)}" style="overflow-wrap:anywhere;'
            f'line-height:1.2"><b>{index}.</b> {escape(step.name)}</div>'
        )
        self.layout.opacity = "1" if step.enabled else "0.55"

    @property
    def collapsed(self) -> bool:
        """Whether only the header shows."""
        return self.body.layout.display == "none"

    def set_collapsed(self, flag: bool) -> None:
        self.body.layout.display = "none" if flag else None
        self.collapse.description = "▸" if flag else "▾"
        self.collapse.tooltip = "expand" if flag else "collapse"

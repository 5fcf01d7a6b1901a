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
from ipywidgets.widgets.widget_bool import CheckboxStyle, ToggleButtonStyle
from ipywidgets.widgets.widget_description import DescriptionStyle
from ipywidgets.widgets.widget_string import HTMLStyle, TextStyle

from workbench.augment import ParamSpec, controls
from workbench.views._common import escape

_SHARED: dict[tuple, W.Widget] = {}


def _shared(cls: type, **kw: Any) -> Any:
    """One ``cls(**kw)`` (a Layout or a style) for every card that asks for it: a card's own
    layouts and styles doubled the messages of a tuner's first draw (see
    ``AugmentTuner._build_cards``). Only for static ones: a shared layout changes everywhere."""
    key = (cls, tuple(sorted(kw.items())))
    w = _SHARED.get(key)
    if w is None or w.comm is None:  # never made, or closed
        w = _SHARED[key] = cls(**kw)
    return w


_NAME_WIDTH = "128px"
_NUMBER_WIDTH = {"range": "112px"}
_NUMBER_DEFAULT_WIDTH = "76px"


def _name(spec: ParamSpec) -> W.HTML:
    """The parameter's name; long names wrap after an underscore instead of being cut."""
    wrapped = escape(spec.name).replace("_", "_<wbr>")
    return W.HTML(
        f'<div title="{escape(spec.doc)}" style="line-height:1.2;overflow-wrap:anywhere">'
        f"{wrapped}</div>",
        layout=_shared(W.Layout, width=_NAME_WIDTH, min_width=_NAME_WIDTH, flex="0 0 auto"),
        style=_shared(HTMLStyle),
        _dom_classes=("wb-param-name",),
    )


def _control(spec: ParamSpec, value: Any, classes: tuple[str, ...] = ()) -> W.Widget:
    """The control for one registry parameter (class ``wb-param wb-param-<name>``, and
    ``classes``).

    Sliders show no readout of their own: the number field next to them is the readout.
    """
    common: dict[str, Any] = {
        "tooltip": spec.doc,
        "layout": _shared(W.Layout, width="auto", min_width="120px", flex="1 1 auto"),
        "_dom_classes": ("wb-param", f"wb-param-{spec.name}", *classes),
    }
    slider = {"min": spec.min, "max": spec.max, "readout": False, "style": _shared(W.SliderStyle)}
    slider.update(common)
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
        w = W.Dropdown(
            options=list(spec.choices), value=value, style=_shared(DescriptionStyle), **common
        )
    elif kind == "bool":
        w = W.Checkbox(value=bool(value), indent=False, style=_shared(CheckboxStyle), **common)
    else:  # size: an int or (height, width), typed
        w = W.Text(
            value=controls.text(spec, value),
            continuous_update=False,
            placeholder="224  or  224, 224",
            style=_shared(TextStyle),
            **common,
        )
    return w


class _ParamRow(W.HBox):
    """One parameter: its name, its control and, for numbers, a number field (``wb-number``)."""

    def __init__(self, spec: ParamSpec, value: Any, classes: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.control = _control(spec, value, classes)
        self.number: W.Text | None = None
        children = [_name(spec), self.control]
        if spec.kind in ("float", "int", "range"):
            width = _NUMBER_WIDTH.get(spec.kind, _NUMBER_DEFAULT_WIDTH)
            self.number = W.Text(
                value=controls.text(spec, value),
                continuous_update=False,  # applied on Enter or when the field loses focus
                tooltip=f"{spec.doc}: type a value, Enter applies it",
                layout=_shared(W.Layout, width=width, min_width=width, flex="0 0 auto"),
                style=_shared(TextStyle),
                _dom_classes=("wb-number", f"wb-number-{spec.name}"),
            )
            children.append(self.number)
        super().__init__(
            children,
            layout=_shared(W.Layout, align_items="center", width="100%"),
            _dom_classes=("wb-param-row",),
        )

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
        description=label,
        tooltip=tooltip,
        layout=_shared(W.Layout, width=width, padding="0"),
        style=_shared(W.ButtonStyle),
        _dom_classes=(cls,),
    )


_COLLAPSE = {False: ("▾", "collapse"), True: ("▸", "expand")}  # button text and tooltip


def _title(index: int, step: Any) -> str:
    return (
        f'<div title="{escape(step.spec.doc)}" style="overflow-wrap:anywhere;'
        f'line-height:1.2"><b>{index}.</b> {escape(step.name)}</div>'
    )


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
        # Every widget is created in its final state (classes, title, collapse): a card sends
        # the page its opening messages and no update after them.
        self.uid = uid
        spec = step.spec
        arrow, tip = _COLLAPSE[collapsed]
        self.collapse = _button(arrow, tip, "wb-collapse", "28px")
        self.title = W.HTML(
            _title(index, step),
            layout=_shared(W.Layout, flex="1 1 auto", min_width="0"),
            style=_shared(HTMLStyle),
            _dom_classes=("wb-step-title",),
        )
        self.enabled = W.Checkbox(
            value=step.enabled,
            description="on",
            indent=False,
            layout=_shared(W.Layout, width="52px", min_width="52px"),
            style=_shared(CheckboxStyle),
            _dom_classes=("wb-enabled",),
        )
        self.up = _button("↑", "move up", "wb-up")
        self.down = _button("↓", "move down", "wb-down")
        self.only = W.ToggleButton(
            description="only",
            tooltip="show only this step",
            layout=_shared(W.Layout, width="52px"),
            style=_shared(ToggleButtonStyle),
            _dom_classes=("wb-only",),
        )
        self.remove = _button("✕", "remove", "wb-remove")
        self.rows: dict[str, _ParamRow] = {
            ps.name: _ParamRow(ps, step.params[ps.name]) for ps in spec.params
        }
        self.rows["p"] = _ParamRow(controls.P_SPEC, step.p, classes=("wb-p",))
        self.params: dict[str, W.Widget] = {k: r.control for k, r in self.rows.items() if k != "p"}
        self.p = self.rows["p"].control
        self.numbers: dict[str, W.Text] = {
            k: r.number for k, r in self.rows.items() if r.number is not None
        }
        header = W.HBox(
            [self.collapse, self.title, self.enabled, self.up, self.down, self.only, self.remove],
            layout=_shared(W.Layout, align_items="center", width="100%", flex="0 0 auto"),
            _dom_classes=("wb-step-header",),
        )
        self.body = W.VBox(
            list(self.rows.values()),
            layout=W.Layout(flex="0 0 auto", display="none" if collapsed else None),
            _dom_classes=("wb-step-body",),
        )
        super().__init__(
            [header, self.body],
            layout=_shared(
                W.Layout,
                border="1px solid #ddd",
                padding="2px 4px",
                margin="2px 0",
                flex="0 0 auto",  # natural height: the column scrolls, cards never shrink
                overflow="visible",
            ),
            _dom_classes=("wb-step",) if step.enabled else ("wb-step", "wb-step-off"),
        )

    def set_position(self, index: int, step: Any) -> None:
        self.title.value = _title(index, step)
        if step.enabled:  # dimmed when off (the tuner's style sheet)
            self.remove_class("wb-step-off")
        else:
            self.add_class("wb-step-off")

    @property
    def collapsed(self) -> bool:
        """Whether only the header shows."""
        return self.body.layout.display == "none"

    def set_collapsed(self, flag: bool) -> None:
        self.body.layout.display = "none" if flag else None
        self.collapse.description, self.collapse.tooltip = _COLLAPSE[flag]

"""One description of each step gives both the torchvision object and its Python source.

A step becomes a tree of :class:`_Call` nodes (``v2.<name>(*args, **kwargs)``); :func:`_instantiate`
builds the real transforms from it and :func:`_source` writes the code that builds the same
objects, so :meth:`Pipeline.to_torchvision` and :meth:`Pipeline.to_code` cannot drift apart.
Steps that need float pixels are wrapped in a dtype round trip; steps without their own ``p`` and
``p < 1`` in ``v2.RandomApply``.
"""

from __future__ import annotations

import json
import keyword
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from workbench.augment._params import _label
from workbench.augment.registry import REGISTRY, _plain_build
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.augment.pipeline import Pipeline, Step

__all__ = ["pipeline_code"]


@dataclass
class _Call:
    """``v2.<name>(*args, **kwargs)``: one description gives both the object and its source."""

    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


def _instantiate(node: Any) -> Any:
    if isinstance(node, _Call):
        cls = getattr(v2, node.name)
        return cls(
            *[_instantiate(a) for a in node.args],
            **{k: _instantiate(v) for k, v in node.kwargs.items()},
        )
    if isinstance(node, list):
        return [_instantiate(a) for a in node]
    if isinstance(node, dict):
        return {k: _instantiate(v) for k, v in node.items()}
    return node


def _source(node: Any, imports: set[str]) -> str:
    if isinstance(node, _Call):
        parts = [_source(a, imports) for a in node.args]
        parts += [f"{k}={_source(v, imports)}" for k, v in node.kwargs.items()]
        return f"v2.{node.name}({', '.join(parts)})"
    if isinstance(node, list):
        return "[" + ", ".join(_source(a, imports) for a in node) + "]"
    if isinstance(node, tuple):
        inner = ", ".join(_source(a, imports) for a in node)
        return f"({inner},)" if len(node) == 1 else f"({inner})"
    if isinstance(node, dict):
        items = ", ".join(f"{_source(k, imports)}: {_source(v, imports)}" for k, v in node.items())
        return "{" + items + "}"
    if isinstance(node, torch.dtype):
        imports.add("torch")
        return str(node)  # "torch.float32"
    if isinstance(node, type) and issubclass(node, tv_tensors.TVTensor):
        imports.add("tv_tensors")
        return f"tv_tensors.{node.__name__}"
    if isinstance(node, Enum):
        return f"v2.{type(node).__name__}.{node.name}"
    if isinstance(node, str):
        return json.dumps(node)
    if node is None or isinstance(node, (bool, int, float)):
        return repr(node)
    raise TypeError(f"cannot write {node!r} as source")  # pragma: no cover


def _step_node(step: Step) -> _Call:
    """Describe one enabled, valid step as a ``_Call`` tree."""
    spec = REGISTRY[step.name]
    kwargs = (spec.build or _plain_build)(step.params)
    if spec.has_p:
        kwargs["p"] = step.p
    node = _Call(spec.name, kwargs=kwargs)
    chain = [node]
    if spec.dtype == "float":
        chain = [
            _Call("ToImage"),
            _Call("ToDtype", [torch.float32], {"scale": True}),
            node,
            _Call("ToDtype", [torch.uint8], {"scale": True}),
        ]
    if not spec.has_p and step.p < 1.0:
        return _Call("RandomApply", [chain], {"p": step.p})
    return chain[0] if len(chain) == 1 else _Call("Compose", [chain])


def _box_nodes() -> list[_Call]:
    return [
        _Call("ClampBoundingBoxes", kwargs={"clamping_mode": "hard"}),
        _Call("SanitizeBoundingBoxes"),
    ]


def _image_only_names(pipeline: Pipeline) -> str:
    return ", ".join(sorted({s.name for s in pipeline.steps if s.enabled and s.spec.image_only}))


def _pipeline_nodes(pipeline: Pipeline, boxes: bool) -> list[tuple[str, _Call]]:
    """``(label, node)`` per enabled step (and the box clean-up); validates the pipeline."""
    pipeline.validate()
    if boxes and pipeline.image_only:
        raise ParameterError(
            f"boxes=True but the pipeline has image-only steps ({_image_only_names(pipeline)}) "
            "that cannot move boxes; disable them"
        )
    nodes = [(_label(i, s.name), _step_node(s)) for i, s in enumerate(pipeline.steps) if s.enabled]
    if boxes:
        nodes += [("box clean-up", n) for n in _box_nodes()]
    return nodes


def pipeline_code(pipeline: Pipeline, boxes: bool = False, variable: str = "transform") -> str:
    """Python source (imports included) that assigns ``pipeline``'s ``v2.Compose`` to ``variable``.

    Disabled steps are written as comments. See :meth:`Pipeline.to_code`.
    """
    if not variable.isidentifier() or keyword.iskeyword(variable):
        raise ParameterError(f"to_code: variable must be a Python name, got {variable!r}")
    _pipeline_nodes(pipeline, boxes)  # validates
    imports: set[str] = set()
    lines: list[str] = []
    for step in pipeline.steps:
        code = _source(_step_node(step), imports)
        lines.append(f"    {code}," if step.enabled else f"    # disabled: {code},")
    if boxes:
        lines += [f"    {_source(n, imports)}," for n in _box_nodes()]
    if not any(line.lstrip().startswith("v2.") for line in lines):
        lines.append("    v2.Identity(),")
    header = ["import torch"] if "torch" in imports else []
    if "tv_tensors" in imports:
        header.append("from torchvision import tv_tensors")
    header.append("from torchvision.transforms import v2")
    return "\n".join(
        [
            *header,
            "",
            f"{variable} = v2.Compose(",
            "    [",
            *["    " + line for line in lines],
            "    ]",
            ")",
            "",
        ]
    )

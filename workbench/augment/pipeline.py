"""Augmentation pipelines: an editable, JSON-able spec of torchvision v2 transforms.

A :class:`Pipeline` is an ordered list of :class:`Step` objects. Each step names a transform of
``torchvision.transforms.v2`` listed in :data:`~workbench.augment.registry.REGISTRY`, holds its
tunable parameters and an apply probability ``p``. The pipeline can be

* checked (:meth:`Pipeline.validate`) with messages that name the step and the parameter,
* turned into a real ``v2.Compose`` (:meth:`Pipeline.to_torchvision`) or into Python source that
  builds the same object (:meth:`Pipeline.to_code`),
* saved and loaded exactly (:meth:`Pipeline.to_json` / :meth:`Pipeline.from_json`),
* replayed with a seed (:meth:`Pipeline.apply`, :meth:`Pipeline.draws`) without touching the
  caller's random state (see :mod:`workbench.augment.replay`).

Guarantees: every step in a pipeline has complete, canonical parameters (an edit that would break
one is refused and leaves the step as it was); ``from_json(to_json())`` gives an equal pipeline,
``enabled`` flags included.

Working domain
--------------
Pipelines work on **uint8** images with 1 or 3 channels (what :mod:`workbench.io` decodes), before
normalisation. Steps that need float pixels (``GaussianNoise``) are wrapped in
``ToImage -> ToDtype(float32) -> step -> ToDtype(uint8)`` so a uint8 image in gives a uint8 image
out; steps that need uint8 (``JPEG``, ``RandomPosterize``, ``RandomEqualize``, the policies) get it
because nothing else changes the dtype. :meth:`Pipeline.apply` converts PIL images to
``tv_tensors.Image`` first and back at the end, so a PIL image and its tensor give the same pixels.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torchvision.transforms import v2

from workbench._validation import check_int, is_int
from workbench.augment._params import Backend, _check_p, _check_params, _label, _spec_for
from workbench.augment.codegen import (
    _instantiate,
    _pipeline_nodes,
    _step_node,
    pipeline_code,
)
from workbench.augment.registry import TransformSpec
from workbench.augment.replay import Replay, variant_seeds
from workbench.errors import ParameterError

__all__ = ["JSON_VERSION", "Pipeline", "Step"]

#: Version of the JSON layout written by :meth:`Pipeline.to_json`.
JSON_VERSION = 1


@dataclass
class Step:
    """One transform of a pipeline.

    Attributes
    ----------
    name : str
        Class name in ``torchvision.transforms.v2`` (a key of :data:`REGISTRY`).
    params : dict
        Tunable parameters (complete once the step is in a pipeline).
    enabled : bool
        Disabled steps are kept (and saved) but not applied.
    p : float
        Apply probability: passed as the transform's own ``p`` when it has one, else the step is
        wrapped in ``v2.RandomApply`` when ``p < 1``. ``1.0`` means always.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    p: float = 1.0

    @property
    def spec(self) -> TransformSpec:
        """The registry entry of this step."""
        return _spec_for(None, self.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            "name": self.name,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "enabled": self.enabled,
            "p": self.p,
        }


class Pipeline:
    """An ordered, editable list of augmentation steps.

    Parameters
    ----------
    steps : iterable of Step, optional
        Initial steps (copied and checked).

    Examples
    --------
    >>> pipe = Pipeline().add("RandomHorizontalFlip").add("GaussianBlur", kernel_size=3, p=0.3)
    >>> transform = pipe.to_torchvision()
    >>> out = pipe.apply(image, seed=7)  # doctest: +SKIP
    """

    def __init__(self, steps: Iterable[Step] | None = None) -> None:
        self.steps: list[Step] = []
        for step in steps or ():
            self._append(copy.deepcopy(step))

    # -- container protocol ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, i: int) -> Step:
        return self.steps[self.check_index(i, "getitem")]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.steps == other.steps

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{s.name}(p={s.p:g}{'' if s.enabled else ', disabled'})" for s in self.steps
        )
        return f"Pipeline([{inner}])"

    def copy(self) -> Pipeline:
        """Deep copy."""
        return Pipeline(self.steps)

    # -- editing --------------------------------------------------------------------------------

    def check_index(self, i: Any, action: str = "check_index") -> int:
        """The index of step ``i`` counted from the start (``-1`` is the last step).

        Raises
        ------
        ParameterError
            ``i`` is not an int or there is no step ``i``; the message names ``action``
            (``"Pipeline.<action>: no step at index ..."``).
        """
        n = len(self.steps)
        if not is_int(i) or not -n <= i < n:
            raise ParameterError(
                f"Pipeline.{action}: no step at index {i!r} (the pipeline has {n} steps)"
            )
        return int(i) % n

    def _append(self, step: Step) -> None:
        i = len(self.steps)
        spec = _spec_for(i, step.name)
        params = _check_params(i, step.name, step.params)
        p = _check_p(_label(i, step.name), step.p)
        if not isinstance(step.enabled, bool):
            raise ParameterError(f"{_label(i, spec.name)}: 'enabled' must be True or False")
        self.steps.append(Step(spec.name, params, step.enabled, p))

    def add(
        self, name: str, *, p: float | None = None, enabled: bool = True, **params: Any
    ) -> Pipeline:
        """Append a step and return the pipeline (for chaining).

        Parameters
        ----------
        name : str
            Transform class name, a key of :data:`REGISTRY`.
        p : float, optional
            Apply probability; default the registry's ``default_p`` (torchvision's default for
            transforms with their own ``p``, else 1.0).
        enabled : bool
            Whether the step is applied.
        **params
            Parameters; missing ones get their registry defaults.

        Raises
        ------
        ParameterError
            Unknown transform or parameter, or a value outside its domain.
        """
        spec = _spec_for(len(self.steps), name)
        self._append(Step(name, dict(params), enabled, spec.default_p if p is None else p))
        return self

    def remove(self, i: int) -> Step:
        """Remove step ``i`` and return it."""
        return self.steps.pop(self.check_index(i, "remove"))

    def move(self, i: int, j: int) -> None:
        """Move step ``i`` so that it ends up at index ``j``."""
        i = self.check_index(i, "move")
        j = self.check_index(j, "move")
        self.steps.insert(j, self.steps.pop(i))

    def set_param(self, i: int, key: str, value: Any) -> None:
        """Set parameter ``key`` of step ``i`` (``"p"`` sets the apply probability).

        The step is left unchanged when the value is refused.

        Raises
        ------
        ParameterError
            Unknown parameter or a value outside its domain.
        """
        i = self.check_index(i, "set_param")
        step = self.steps[i]
        if key == "p":
            step.p = _check_p(_label(i, step.name), value)
            return
        step.params = _check_params(i, step.name, {**step.params, key: value})

    def enable(self, i: int, flag: bool = True) -> None:
        """Enable (or, with ``flag=False``, disable) step ``i``."""
        self.steps[self.check_index(i, "enable")].enabled = bool(flag)

    def validate(self) -> None:
        """Check every step, including ones edited by hand through ``steps``.

        Raises
        ------
        ParameterError
            Naming the step (index and transform) and the parameter: unknown transform or
            parameter, min > max, even or non-positive blur kernel, negative one-number angle,
            scale outside (0, 1], probability outside [0, 1], ... and anything torchvision's
            constructor itself refuses.
        """
        for i, step in enumerate(self.steps):
            spec = _spec_for(i, step.name)
            label = _label(i, spec.name)
            _check_p(label, step.p)
            step_params = step.params if isinstance(step.params, Mapping) else {}
            checked = _check_params(i, spec.name, step_params)
            missing = [k for k in spec.param_names if k not in step_params]
            if missing:
                raise ParameterError(f"{label}: parameter {missing[0]!r} is missing")
            self._construct(i, Step(spec.name, checked, True, float(step.p)))

    @staticmethod
    def _construct(i: int, step: Step) -> Any:
        try:
            return _instantiate(_step_node(step))
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"{_label(i, step.name)}: torchvision refused it: {exc}") from exc

    # -- views ----------------------------------------------------------------------------------

    @property
    def image_only(self) -> bool:
        """True if an enabled step cannot move boxes or masks."""
        return any(s.spec.image_only for s in self.steps if s.enabled)

    def only(self, i: int) -> Pipeline:
        """A pipeline with just step ``i`` (enabled), to show it in isolation."""
        step = copy.deepcopy(self.steps[self.check_index(i, "only")])
        step.enabled = True
        return Pipeline([step])

    # -- torchvision ----------------------------------------------------------------------------

    def to_torchvision(self, boxes: bool = False) -> v2.Compose:
        """Build the ``v2.Compose`` the steps describe.

        Parameters
        ----------
        boxes : bool
            Append ``ClampBoundingBoxes(clamping_mode="hard")`` and ``SanitizeBoundingBoxes()``
            so boxes end inside the canvas and degenerate ones are dropped with their labels.

        Notes
        -----
        An empty pipeline gives ``v2.Compose([v2.Identity()])`` (``Compose`` refuses an empty
        list). ``SanitizeBoundingBoxes`` filters every ``Mask`` in the sample by the kept boxes;
        :meth:`apply` only lets it filter instance masks (``N`` first), not semantic ones.
        """
        modules = [_instantiate(node) for _, node in _pipeline_nodes(self, boxes)]
        return v2.Compose(modules or [v2.Identity()])

    def to_code(self, boxes: bool = False, variable: str = "transform") -> str:
        """Python source (imports included) that assigns the same ``v2.Compose`` to ``variable``.

        Disabled steps are written as comments.
        """
        return pipeline_code(self, boxes, variable)

    # -- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"version": JSON_VERSION, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pipeline:
        """Rebuild from :meth:`to_dict` output (missing parameters get their defaults)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list):
            raise ParameterError("pipeline JSON: expected an object with a 'steps' list")
        version = data.get("version", JSON_VERSION)
        if not isinstance(version, int) or version > JSON_VERSION:
            raise ParameterError(
                f"pipeline JSON: version {version!r} is not one this workbench reads "
                f"(up to {JSON_VERSION}); upgrade workbench"
            )
        pipe = cls()
        for i, raw in enumerate(data["steps"]):
            if not isinstance(raw, Mapping) or "name" not in raw:
                raise ParameterError(f"pipeline JSON: step {i} has no 'name'")
            if not isinstance(raw.get("params", {}), Mapping):
                raise ParameterError(f"pipeline JSON: step {i} 'params' is not an object")
            spec = _spec_for(i, raw["name"])
            pipe._append(
                Step(
                    raw["name"],
                    dict(raw.get("params", {})),
                    raw.get("enabled", True),
                    raw.get("p", spec.default_p),
                )
            )
        return pipe

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to JSON text (exact: floats keep every digit)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """Rebuild from :meth:`to_json` text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"pipeline JSON: not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    # -- seeded replay --------------------------------------------------------------------------

    def apply(
        self,
        sample: Any,
        seed: int,
        *,
        step_keys: Sequence[int] | None = None,
        backend: Backend = "tensor",
    ) -> Any:
        """Apply the pipeline to ``sample`` with random draws fixed by ``seed``.

        Parameters
        ----------
        sample : PIL.Image.Image, torch.Tensor, tv_tensors.Image or dict
            A uint8 image (PIL mode ``L``/``RGB`` or a ``(C, H, W)`` tensor), or a dict with key
            ``"image"`` and optional ``"boxes"`` (``tv_tensors.BoundingBoxes``), ``"masks"``
            (``tv_tensors.Mask`` or tensor, ``(H, W)`` or ``(N, H, W)``) and ``"labels"``;
            other keys are passed through.
        seed : int
            Non-negative seed; the same seed gives the same output.
        step_keys : sequence of int, optional
            ``None`` (default): one random stream for the whole pipeline, exactly what
            ``torch.manual_seed(seed); pipeline.to_torchvision()(sample)`` draws. Otherwise one
            non-negative key per step (disabled ones included): each enabled step gets its own
            stream seeded from ``(seed, key)`` (see :func:`step_seed`), so enabling, disabling or
            retuning one step leaves the random draws of the others as they were. The augment
            tuner's preview uses this; training and :func:`expand` use the single stream.
        backend : {"tensor", "pil"}
            How PIL images are transformed (tensors always go through the tensor kernels).
            ``"tensor"`` (default): converted to a uint8 tensor first, so a PIL image and its
            tensor give the same pixels. ``"pil"``: handed to torchvision as they are, so its
            PIL kernels run: exactly what ``pipeline.to_torchvision()(pil_image)`` draws, which
            is what training on ``catalog.to_torch(transform=pipeline.to_torchvision())`` sees,
            and several times faster on a CPU (measured in ``benchmarks/bench_augment.py``).
            The two backends draw the same random parameters but give slightly different
            pixels (other resampling and rounding).

        Returns
        -------
        Same form as ``sample``: PIL in, PIL out; plain tensor in, plain tensor out; dict in,
        dict with the same keys out (boxes kept inside the canvas, degenerate boxes dropped
        together with their labels and instance masks).

        Raises
        ------
        ParameterError
            Bad sample or seed, an image-only pipeline given boxes or masks, or a step that
            fails on this sample (e.g. a crop larger than the image without padding).
        """
        return self.replayer(step_keys=step_keys, backend=backend)(sample, seed)

    def draws(
        self,
        sample: Any,
        n: int,
        seed: int,
        *,
        step_keys: Sequence[int] | None = None,
        backend: Backend = "tensor",
    ) -> list[Any]:
        """``n`` reproducible variants of ``sample``.

        Variant ``k`` is ``apply(sample, variant_seeds(seed, n)[k])``; seeds come from
        ``numpy.random.SeedSequence(seed)``, so neighbouring ``seed`` values do not share variants
        (as ``seed + k`` would).
        """
        n = check_int(n, "draws: n", low=0)
        replay = self.replayer(step_keys=step_keys, backend=backend)
        return [replay(sample, s) for s in variant_seeds(seed, n)]

    def replayer(
        self, *, step_keys: Sequence[int] | None = None, backend: Backend = "tensor"
    ) -> Replay:
        """A frozen copy of the pipeline whose transforms are built once, for many samples.

        ``pipeline.replayer()(sample, seed)`` equals ``pipeline.apply(sample, seed)``; later
        edits of the pipeline do not change the replayer. Use it to apply one pipeline to many
        samples (previews, :func:`expand`) without rebuilding the torchvision objects each time.
        """
        return Replay(self, step_keys=step_keys, backend=backend)

    @property
    def pixel_scale_steps(self) -> list[str]:
        """Names of the enabled steps whose parameters or effect are measured in pixels.

        When this is empty, running the pipeline on a downscaled copy gives (up to resampling)
        the downscaled result, so previews may work on a reduced-resolution copy; see
        ``TransformSpec.pixel_scale``.
        """
        return [s.name for s in self.steps if s.enabled and s.spec.pixel_scale]

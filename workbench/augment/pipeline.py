"""Augmentation pipelines: an editable, JSON-able spec of torchvision v2 transforms.

A :class:`Pipeline` is an ordered list of :class:`Step` objects. Each step names a transform of
``torchvision.transforms.v2`` listed in :data:`REGISTRY`, holds its tunable parameters and an
apply probability ``p``. The pipeline can be

* checked (:meth:`Pipeline.validate`) with messages that name the step and the parameter,
* turned into a real ``v2.Compose`` (:meth:`Pipeline.to_torchvision`) or into Python source that
  builds the same object (:meth:`Pipeline.to_code`),
* saved and loaded exactly (:meth:`Pipeline.to_json` / :meth:`Pipeline.from_json`),
* replayed with a seed (:meth:`Pipeline.apply`, :meth:`Pipeline.draws`) without touching the
  caller's random state.

Working domain
--------------
Pipelines work on **uint8** images with 1 or 3 channels (what :mod:`workbench.io` decodes), before
normalisation. Steps that need float pixels (``GaussianNoise``) are wrapped in
``ToImage -> ToDtype(float32) -> step -> ToDtype(uint8)`` so a uint8 image in gives a uint8 image
out; steps that need uint8 (``JPEG``, ``RandomPosterize``, ``RandomEqualize``, the policies) get it
because nothing else changes the dtype. :meth:`Pipeline.apply` converts PIL images to
``tv_tensors.Image`` first and back at the end, so a PIL image and its tensor give the same pixels.

Randomness
----------
torchvision v2 draws every random number in ``make_params`` from torch's default CPU generator
(torchvision 0.29 does not use Python's ``random`` or numpy's; checked in its source).
:meth:`Pipeline.apply` seeds that generator inside ``torch.random.fork_rng`` and also saves,
seeds and restores Python's ``random`` state, so a replay is exact and the caller's streams are
untouched.
"""

from __future__ import annotations

import contextlib
import copy
import json
import keyword
import math
import os
import random
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from workbench.errors import ParameterError

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "REGISTRY",
    "ParamSpec",
    "Pipeline",
    "Replay",
    "Step",
    "TransformSpec",
    "copy_seed",
    "downscale",
    "draw_boxes",
    "expand",
    "mask_outline",
    "pipeline_fingerprint",
    "step_seed",
    "variant_seeds",
]

ParamKind = Literal["float", "int", "range", "choice", "bool", "size"]
Backend = Literal["tensor", "pil"]
ScalarRule = Literal["symmetric", "around_one", "fixed"]

#: Version of the JSON layout written by :meth:`Pipeline.to_json`.
JSON_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter of a transform.

    Attributes
    ----------
    name : str
        Keyword of the torchvision constructor (or of the step, see ``TransformSpec.build``).
    kind : {"float", "int", "range", "choice", "bool", "size"}
        ``range`` is a ``(min, max)`` pair; ``size`` is an int or an ``(height, width)`` pair.
    default : Any
        Value a new step gets.
    min, max : float or None
        Accepted domain (inclusive unless ``min_open``); also the natural ends of a slider.
        For ``range`` and ``size`` they bound each element.
    step : float or None
        Slider step.
    choices : tuple
        Allowed values of a ``choice``.
    min_open : bool
        ``min`` itself is not allowed (e.g. a crop scale must be > 0).
    integer : bool
        The elements of a ``range`` are ints.
    odd : bool
        An ``int`` that must be odd (blur kernels).
    scalar : {"symmetric", "around_one", "fixed"} or None
        How one number given for a ``range`` is read, as torchvision does: ``x -> (-x, x)``,
        ``x -> (max(0, 1 - x), 1 + x)`` or ``x -> (x, x)``. ``None``: a pair is required.
    doc : str
        One line for tooltips.
    """

    name: str
    kind: ParamKind
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    min_open: bool = False
    integer: bool = False
    odd: bool = False
    scalar: ScalarRule | None = None
    doc: str = ""


@dataclass(frozen=True)
class TransformSpec:
    """What the workbench knows about one ``torchvision.transforms.v2`` class.

    Attributes
    ----------
    name : str
        Class name in ``torchvision.transforms.v2``.
    params : tuple of ParamSpec
        Tunable parameters (the apply probability is ``Step.p``, never listed here).
    has_p : bool
        The transform has its own ``p``; ``Step.p`` is passed to it. Otherwise ``Step.p < 1``
        wraps the transform in ``v2.RandomApply``.
    default_p : float
        ``Step.p`` of a new step (torchvision's default for transforms with their own ``p``).
    image_only : bool
        The transform cannot move boxes or masks (the policies refuse them).
    geometric : bool
        The transform moves pixels (and so boxes and masks).
    random : bool
        The output depends on the seed with the default parameters.
    dtype : {"any", "uint8", "float"}
        Pixel dtype the transform needs; ``float`` steps get a dtype round trip.
    pixel_scale : bool
        A parameter or the effect is measured in pixels (an output size, a padding, a kernel,
        JPEG's 8x8 blocks, per-pixel noise, the policies' sharpness op), so the result on a
        downscaled copy is not the downscaled result. Everything else is relative (fractions of
        the size, angles, colour factors) or a point operation. Previews may only work on a
        reduced-resolution copy when no enabled step has this flag
        (:attr:`Pipeline.pixel_scale_steps`).
    doc : str
        One line for tooltips.
    build : callable or None
        ``params -> constructor kwargs`` when they differ from the params (``None``: the same,
        with ``fill`` protected for masks).
    check : callable or None
        ``params -> [(param, message), ...]`` for rules that involve several parameters.
    """

    name: str
    params: tuple[ParamSpec, ...] = ()
    has_p: bool = False
    default_p: float = 1.0
    image_only: bool = False
    geometric: bool = False
    random: bool = True
    dtype: Literal["any", "uint8", "float"] = "any"
    pixel_scale: bool = False
    doc: str = ""
    build: Callable[[Mapping[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = field(
        default=None, repr=False
    )

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the tunable parameters, in display order."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> ParamSpec:
        """Return the spec of parameter ``name`` (``KeyError`` if unknown)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        """Default value of every parameter."""
        return {p.name: p.default for p in self.params}


def _fill_arg(value: int) -> Any:
    # A plain number fills masks too (a rotated mask would gain class ``value`` in its corners);
    # the dict keeps masks at 0 (background) and fills everything else with ``value``.
    if value == 0:
        return 0
    return {tv_tensors.Mask: 0, "others": value}


def _plain_build(params: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(params)
    if "fill" in kwargs:
        kwargs["fill"] = _fill_arg(kwargs["fill"])
    return kwargs


def _affine_build(params: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = _plain_build(params)
    tx, ty = kwargs.pop("translate_x"), kwargs.pop("translate_y")
    kwargs["translate"] = None if tx == ty == 0 else (tx, ty)
    if kwargs["scale"] == (1.0, 1.0):
        kwargs["scale"] = None
    if kwargs["shear"] == (0.0, 0.0):
        kwargs["shear"] = None
    return _ordered(kwargs, ("degrees", "translate", "scale", "shear", "interpolation", "fill"))


def _crop_build(params: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = _plain_build(params)
    if kwargs["padding"] == 0:
        kwargs["padding"] = None
    return kwargs


def _policy_build(params: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(params)
    kwargs["policy"] = v2.AutoAugmentPolicy(kwargs["policy"])
    return kwargs


def _ordered(kwargs: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    rest = {k: v for k, v in kwargs.items() if k not in order}
    return {**{k: kwargs[k] for k in order if k in kwargs}, **rest}


def _randaugment_check(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    if params["magnitude"] >= params["num_magnitude_bins"]:
        return [
            (
                "magnitude",
                f"must be below num_magnitude_bins={params['num_magnitude_bins']}, "
                f"got {params['magnitude']}",
            )
        ]
    return []


def _augmix_check(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    if params["chain_depth"] == 0:
        return [("chain_depth", "must be -1 (random depth 1-3) or 1..10, got 0")]
    return []


def _interp(default: str = "bilinear", resize: bool = False) -> ParamSpec:
    choices = ("nearest", "bilinear", "bicubic") if resize else ("nearest", "bilinear")
    return ParamSpec("interpolation", "choice", default, choices=choices, doc="pixel resampling")


def _fill() -> ParamSpec:
    return ParamSpec(
        "fill", "int", 0, 0, 255, 1, doc="value of pixels brought in from outside (masks get 0)"
    )


# min 2: torch 2.14's uint8 bilinear/bicubic resize to 1x1 hits an internal assert.
def _size(default: Any) -> ParamSpec:
    return ParamSpec("size", "size", default, 2, 4096, 1, doc="output (height, width)")


def _jitter(name: str, default: tuple[float, float]) -> ParamSpec:
    return ParamSpec(
        name, "range", default, 0.0, 5.0, 0.05, scalar="around_one", doc=f"{name} factor range"
    )


def _float(
    name: str, default: float, lo: float, hi: float, step: float, doc: str, **kw: Any
) -> ParamSpec:
    return ParamSpec(name, "float", float(default), lo, hi, step, doc=doc, **kw)


def _int(name: str, default: int, lo: int, hi: int, doc: str, **kw: Any) -> ParamSpec:
    return ParamSpec(name, "int", default, lo, hi, kw.pop("step", 1), doc=doc, **kw)


def _range(
    name: str, default: tuple, lo: float, hi: float, step: float, doc: str, **kw: Any
) -> ParamSpec:
    return ParamSpec(name, "range", default, lo, hi, step, doc=doc, **kw)


def _bool(name: str, default: bool, doc: str) -> ParamSpec:
    return ParamSpec(name, "bool", default, doc=doc)


def _choice(name: str, default: str, choices: tuple[str, ...], doc: str) -> ParamSpec:
    return ParamSpec(name, "choice", default, choices=choices, doc=doc)


_DEG = "angle range in degrees (one number d means (-d, d))"

_SPECS: tuple[TransformSpec, ...] = (
    TransformSpec(
        "RandomHorizontalFlip", has_p=True, default_p=0.5, geometric=True, doc="mirror left-right"
    ),
    TransformSpec(
        "RandomVerticalFlip", has_p=True, default_p=0.5, geometric=True, doc="mirror top-bottom"
    ),
    TransformSpec(
        "RandomRotation",
        (
            _range("degrees", (-15.0, 15.0), -180.0, 180.0, 1.0, _DEG, scalar="symmetric"),
            _interp("nearest"),
            _bool("expand", False, "grow the canvas to keep the corners"),
            _fill(),
        ),
        geometric=True,
        doc="rotate by a random angle",
    ),
    TransformSpec(
        "RandomAffine",
        (
            _range("degrees", (-10.0, 10.0), -180.0, 180.0, 1.0, _DEG, scalar="symmetric"),
            _float("translate_x", 0.1, 0.0, 1.0, 0.01, "max shift, fraction of the width"),
            _float("translate_y", 0.1, 0.0, 1.0, 0.01, "max shift, fraction of the height"),
            _range("scale", (0.9, 1.1), 0.01, 4.0, 0.01, "zoom factor range"),
            _range("shear", (0.0, 0.0), -60.0, 60.0, 1.0, "x-" + _DEG, scalar="symmetric"),
            _interp("nearest"),
            _fill(),
        ),
        geometric=True,
        build=_affine_build,
        doc="random rotation, shift, zoom and shear",
    ),
    TransformSpec(
        "RandomResizedCrop",
        (
            _size((224, 224)),
            _range("scale", (0.08, 1.0), 0.0, 1.0, 0.01, "crop area fraction", min_open=True),
            _range("ratio", (0.75, 4 / 3), 0.1, 10.0, 0.01, "crop aspect (w/h)"),
            _interp("bilinear", resize=True),
            _bool("antialias", True, "antialias when shrinking"),
        ),
        geometric=True,
        pixel_scale=True,
        doc="crop a random area and aspect ratio, resize to size",
    ),
    TransformSpec(
        "RandomCrop",
        (
            _size((224, 224)),
            _int("padding", 0, 0, 512, "border added before cropping"),
            _bool("pad_if_needed", True, "pad images smaller than size"),
            _fill(),
            _choice(
                "padding_mode",
                "constant",
                ("constant", "edge", "reflect", "symmetric"),
                "how padding is filled",
            ),
        ),
        geometric=True,
        build=_crop_build,
        pixel_scale=True,
        doc="crop a random window of a fixed size",
    ),
    TransformSpec(
        "CenterCrop",
        (_size((224, 224)),),
        geometric=True,
        random=False,
        pixel_scale=True,
        doc="crop the centre",
    ),
    TransformSpec(
        "Resize",
        (
            ParamSpec("size", "size", 224, 2, 4096, 1, doc="one number: shorter side; or (h, w)"),
            _interp("bilinear", resize=True),
            _bool("antialias", True, "antialias when shrinking"),
        ),
        geometric=True,
        random=False,
        pixel_scale=True,
        doc="resize to a fixed size",
    ),
    TransformSpec(
        "RandomZoomOut",
        (
            _fill(),
            _range("side_range", (1.0, 2.0), 1.0, 8.0, 0.1, "canvas side / image side"),
        ),
        has_p=True,
        default_p=0.5,
        geometric=True,
        doc="place the image on a larger canvas",
    ),
    TransformSpec(
        "RandomPerspective",
        (
            _float("distortion_scale", 0.5, 0.0, 1.0, 0.01, "how far corners may move"),
            _interp("bilinear"),
            _fill(),
        ),
        has_p=True,
        default_p=0.5,
        geometric=True,
        doc="random perspective warp",
    ),
    TransformSpec(
        "ElasticTransform",
        (
            _float("alpha", 50.0, 0.0, 1000.0, 1.0, "displacement magnitude"),
            _float("sigma", 5.0, 0.01, 50.0, 0.5, "displacement smoothness"),
            _interp("bilinear"),
            _fill(),
        ),
        geometric=True,
        pixel_scale=True,
        doc="elastic (rubber-sheet) distortion",
    ),
    TransformSpec(
        "ColorJitter",
        (
            _jitter("brightness", (0.8, 1.2)),
            _jitter("contrast", (0.8, 1.2)),
            _jitter("saturation", (0.8, 1.2)),
            _range("hue", (0.0, 0.0), -0.5, 0.5, 0.01, "hue shift range", scalar="symmetric"),
        ),
        doc="random brightness, contrast, saturation and hue",
    ),
    TransformSpec("RandomGrayscale", has_p=True, default_p=0.1, doc="convert to gray"),
    TransformSpec(
        "GaussianBlur",
        (
            _int("kernel_size", 5, 1, 51, "kernel side (odd, positive)", step=2, odd=True),
            _range("sigma", (0.1, 2.0), 0.01, 20.0, 0.1, "blur std range", scalar="fixed"),
        ),
        pixel_scale=True,
        doc="blur with a random sigma",
    ),
    TransformSpec(
        "GaussianNoise",
        (
            _float("mean", 0.0, -1.0, 1.0, 0.01, "noise mean (fraction of 255)"),
            _float("sigma", 0.1, 0.0, 1.0, 0.01, "noise std (fraction of 255)"),
            _bool("clip", True, "clip to the valid range"),
        ),
        dtype="float",
        pixel_scale=True,
        doc="add Gaussian pixel noise",
    ),
    TransformSpec("RandomInvert", has_p=True, default_p=0.5, doc="invert colours"),
    TransformSpec(
        "RandomPosterize",
        (_int("bits", 4, 0, 8, "bits kept per channel"),),
        has_p=True,
        default_p=0.5,
        dtype="uint8",
        doc="reduce the number of bits per channel",
    ),
    TransformSpec(
        "RandomSolarize",
        (_float("threshold", 128.0, 0.0, 255.0, 1.0, "invert pixels at or above this"),),
        has_p=True,
        default_p=0.5,
        doc="invert the pixels above a threshold",
    ),
    TransformSpec(
        "RandomAdjustSharpness",
        (_float("sharpness_factor", 2.0, 0.0, 20.0, 0.1, "0 blurs, 1 keeps, >1 sharpens"),),
        has_p=True,
        default_p=0.5,
        pixel_scale=True,
        doc="sharpen or soften",
    ),
    TransformSpec("RandomAutocontrast", has_p=True, default_p=0.5, doc="stretch contrast"),
    TransformSpec(
        "RandomEqualize", has_p=True, default_p=0.5, dtype="uint8", doc="equalize the histogram"
    ),
    TransformSpec(
        "RandomErasing",
        (
            _range("scale", (0.02, 0.33), 0.0, 1.0, 0.01, "erased area fraction", min_open=True),
            _range("ratio", (0.3, 3.3), 0.01, 10.0, 0.1, "erased aspect (h/w)"),
            _int("value", 0, 0, 255, "value written into the rectangle"),
        ),
        has_p=True,
        default_p=0.5,
        doc="erase a random rectangle (boxes and masks are left as they are)",
    ),
    TransformSpec(
        "JPEG",
        (
            _range(
                "quality", (50, 95), 1, 100, 1, "JPEG quality range", integer=True, scalar="fixed"
            ),
        ),
        dtype="uint8",
        pixel_scale=True,
        doc="JPEG compression artefacts",
    ),
    TransformSpec(
        "AutoAugment",
        (
            _choice("policy", "imagenet", ("imagenet", "cifar10", "svhn"), "learned policy"),
            _interp("nearest"),
        ),
        image_only=True,
        geometric=True,  # some of their ops rotate, shear or translate
        dtype="uint8",
        build=_policy_build,
        pixel_scale=True,
        doc="AutoAugment learned policy",
    ),
    TransformSpec(
        "RandAugment",
        (
            _int("num_ops", 2, 1, 10, "operations per image"),
            _int("magnitude", 9, 0, 99, "strength (below num_magnitude_bins)"),
            _int("num_magnitude_bins", 31, 2, 100, "strength levels"),
            _interp("nearest"),
        ),
        image_only=True,
        geometric=True,  # some of their ops rotate, shear or translate
        dtype="uint8",
        check=_randaugment_check,
        pixel_scale=True,
        doc="RandAugment",
    ),
    TransformSpec(
        "TrivialAugmentWide",
        (_int("num_magnitude_bins", 31, 2, 100, "strength levels"), _interp("nearest")),
        image_only=True,
        geometric=True,  # some of their ops rotate, shear or translate
        dtype="uint8",
        pixel_scale=True,
        doc="TrivialAugment (one random op, random strength)",
    ),
    TransformSpec(
        "AugMix",
        (
            _int("severity", 3, 1, 10, "strength of the base operations"),
            _int("mixture_width", 3, 1, 10, "number of chains"),
            _int("chain_depth", -1, -1, 10, "ops per chain (-1: random 1-3)"),
            _float("alpha", 1.0, 0.01, 10.0, 0.1, "mixing prior"),
            _bool("all_ops", True, "include the colour-changing ops"),
            _interp("bilinear"),
        ),
        image_only=True,
        geometric=True,  # some of their ops rotate, shear or translate
        dtype="uint8",
        check=_augmix_check,
        pixel_scale=True,
        doc="AugMix",
    ),
)

#: Every supported transform, by class name.
REGISTRY: dict[str, TransformSpec] = {spec.name: spec for spec in _SPECS}


# ----------------------------------------------------------------------------------------------
# Parameter checking
# ----------------------------------------------------------------------------------------------


class _Bad(Exception):
    """A value is wrong; the message completes "parameter 'x' ..."."""


def _is_number(x: Any) -> bool:
    is_bool = isinstance(x, (bool, np.bool_))
    return isinstance(x, (int, float, np.integer, np.floating)) and not is_bool


def _number(spec: ParamSpec, x: Any, integer: bool, what: str = "") -> float | int:
    if not _is_number(x) or (isinstance(x, (float, np.floating)) and not math.isfinite(x)):
        raise _Bad(f"{what}must be a finite number, got {x!r}")
    if integer:
        if float(x) != int(x):
            raise _Bad(f"{what}must be a whole number, got {x!r}")
        x = int(x)
    else:
        x = float(x)
    lo, hi = spec.min, spec.max
    if lo is not None and (x < lo or (spec.min_open and x == lo)):
        bound = f"> {lo}" if spec.min_open else f">= {lo}"
        raise _Bad(f"{what}must be {bound}, got {x}")
    if hi is not None and x > hi:
        raise _Bad(f"{what}must be <= {hi}, got {x}")
    return x


def _normalize(spec: ParamSpec, value: Any) -> Any:
    """Return ``value`` in canonical form (tuples, ints/floats) or raise ``_Bad``."""
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise _Bad(f"must be True or False, got {value!r}")
        return bool(value)
    if kind == "choice":
        if value not in spec.choices:
            raise _Bad(f"must be one of {list(spec.choices)}, got {value!r}")
        return value
    if kind == "float":
        return _number(spec, value, integer=False)
    if kind == "int":
        n = _number(spec, value, integer=True)
        if spec.odd and n % 2 == 0:
            raise _Bad(f"must be odd and positive, got {n}")
        return n
    if kind == "size":
        if _is_number(value):
            return _number(spec, value, integer=True)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return tuple(_number(spec, v, integer=True, what="(height, width) ") for v in value)
        raise _Bad(f"must be an int or an (height, width) pair, got {value!r}")
    if kind == "range":
        if _is_number(value):
            if spec.scalar is None:
                raise _Bad(f"must be a (min, max) pair, got {value!r}")
            x = float(value)
            if spec.scalar in ("symmetric", "around_one") and x < 0:
                raise _Bad(f"given as one number must be >= 0 (it means (-x, x)), got {x}")
            if spec.scalar == "symmetric":
                value = (-x, x)
            elif spec.scalar == "around_one":
                value = (max(0.0, 1.0 - x), 1.0 + x)
            else:
                value = (value, value)
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise _Bad(f"must be a (min, max) pair, got {value!r}")
        lo, hi = (_number(spec, v, integer=spec.integer, what="(min, max) ") for v in value)
        if lo > hi:
            raise _Bad(f"is a (min, max) range but min {lo} > max {hi}")
        return (lo, hi)
    raise AssertionError(f"unknown parameter kind {kind!r}")  # pragma: no cover


def _label(i: int | None, name: str) -> str:
    return f"step {i} ({name})" if i is not None else f"step ({name})"


def _where(i: int | None) -> str:
    return f"step {i}" if i is not None else "step"


def _spec_for(i: int | None, name: Any) -> TransformSpec:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ParameterError(
            f"{_where(i)}: unknown transform {name!r}; choose one of {sorted(REGISTRY)}"
        )
    return REGISTRY[name]


def _check_p(label: str, p: Any) -> float:
    if not _is_number(p) or not 0.0 <= float(p) <= 1.0:
        raise ParameterError(
            f"{label}: parameter 'p' (apply probability) must be in [0, 1], got {p!r}"
        )
    return float(p)


def _check_params(i: int | None, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return complete, canonical params for transform ``name`` or raise ParameterError."""
    spec = _spec_for(i, name)
    label = _label(i, name)
    unknown = [k for k in params if k not in spec.param_names]
    if unknown:
        if "p" in unknown:
            raise ParameterError(f"{label}: 'p' is the step's apply probability; set it as Step.p")
        valid = list(spec.param_names) or "none"
        raise ParameterError(
            f"{label}: unknown parameter {unknown[0]!r}; valid parameters: {valid}"
        )
    out = spec.defaults()
    for key, value in params.items():
        try:
            out[key] = _normalize(spec.param(key), value)
        except _Bad as exc:
            raise ParameterError(f"{label}: parameter {key!r} {exc}") from None
    if spec.check is not None:
        for key, message in spec.check(out):
            raise ParameterError(f"{label}: parameter {key!r} {message}")
    return out


# ----------------------------------------------------------------------------------------------
# Build and code generation from one description
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Steps and pipelines
# ----------------------------------------------------------------------------------------------


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
        return self.steps[self._index(i, "getitem")]

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

    def _index(self, i: Any, action: str) -> int:
        n = len(self.steps)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not -n <= i < n:
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
        return self.steps.pop(self._index(i, "remove"))

    def move(self, i: int, j: int) -> None:
        """Move step ``i`` so that it ends up at index ``j``."""
        i = self._index(i, "move")
        j = self._index(j, "move")
        self.steps.insert(j, self.steps.pop(i))

    def set_param(self, i: int, key: str, value: Any) -> None:
        """Set parameter ``key`` of step ``i`` (``"p"`` sets the apply probability).

        The step is left unchanged when the value is refused.

        Raises
        ------
        ParameterError
            Unknown parameter or a value outside its domain.
        """
        i = self._index(i, "set_param")
        step = self.steps[i]
        if key == "p":
            step.p = _check_p(_label(i, step.name), value)
            return
        step.params = _check_params(i, step.name, {**step.params, key: value})

    def enable(self, i: int, flag: bool = True) -> None:
        """Enable (or, with ``flag=False``, disable) step ``i``."""
        self.steps[self._index(i, "enable")].enabled = bool(flag)

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
        step = copy.deepcopy(self.steps[self._index(i, "only")])
        step.enabled = True
        return Pipeline([step])

    # -- torchvision ----------------------------------------------------------------------------

    def _image_only_names(self) -> str:
        return ", ".join(sorted({s.name for s in self.steps if s.enabled and s.spec.image_only}))

    def _nodes(self, boxes: bool) -> list[tuple[str, _Call]]:
        self.validate()
        if boxes and self.image_only:
            raise ParameterError(
                f"boxes=True but the pipeline has image-only steps ({self._image_only_names()}) "
                "that cannot move boxes; disable them"
            )
        nodes = [(_label(i, s.name), _step_node(s)) for i, s in enumerate(self.steps) if s.enabled]
        if boxes:
            nodes += [("box clean-up", n) for n in _box_nodes()]
        return nodes

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
        modules = [_instantiate(node) for _, node in self._nodes(boxes)]
        return v2.Compose(modules or [v2.Identity()])

    def to_code(self, boxes: bool = False, variable: str = "transform") -> str:
        """Python source (imports included) that assigns the same ``v2.Compose`` to ``variable``.

        Disabled steps are written as comments.
        """
        if not variable.isidentifier() or keyword.iskeyword(variable):
            raise ParameterError(f"to_code: variable must be a Python name, got {variable!r}")
        self._nodes(boxes)  # validates
        imports: set[str] = set()
        lines: list[str] = []
        for step in self.steps:
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
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ParameterError(f"draws: n must be a non-negative int, got {n!r}")
        replay = self.replayer(step_keys=step_keys, backend=backend)
        return [replay(sample, s) for s in variant_seeds(seed, int(n))]

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


class Replay:
    """:meth:`Pipeline.apply` with the transforms built once (see :meth:`Pipeline.replayer`).

    Parameters
    ----------
    pipeline : Pipeline
        Copied; later edits of it do not change this object.
    step_keys : sequence of int, optional
        One key per step for per-step random streams (see :meth:`Pipeline.apply`).
    backend : {"tensor", "pil"}
        How PIL images are transformed (see :meth:`Pipeline.apply`).

    Notes
    -----
    The pipeline is validated on first use (so a bad seed or sample is reported first, as by
    :meth:`Pipeline.apply`). Calls from several threads are safe: the seeded section holds a
    process-wide lock, since torchvision draws from torch's one default generator.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        step_keys: Sequence[int] | None = None,
        backend: Backend = "tensor",
    ) -> None:
        self.backend = _check_backend(backend)
        # A plain deep copy: steps edited by hand are reported by validate() on first use,
        # with the same messages as Pipeline.apply.
        self.pipeline = Pipeline()
        self.pipeline.steps = copy.deepcopy(pipeline.steps)
        if step_keys is not None:
            keys = list(step_keys)
            if len(keys) != len(self.pipeline) or not all(
                isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0
                for k in keys
            ):
                raise ParameterError(
                    f"step_keys: expected one non-negative int per step ({len(self.pipeline)}), "
                    f"got {step_keys!r}"
                )
            step_keys = [int(k) for k in keys]
        self.step_keys: list[int] | None = step_keys
        self._modules: dict[bool, list[tuple[str, Any, Any]]] = {}

    def _build(self, boxes: bool) -> list[tuple[str, Any, Any]]:
        """``(label, module, signature)`` per node; the signature of a step node with a key is
        ``(key, name, params, p)``, which fixes its output given its input (per-step stream)."""
        built = self._modules.get(boxes)
        if built is None:
            pipe = self.pipeline
            labelled = pipe._nodes(boxes)  # validates
            sigs: list[Any] = [
                None
                if self.step_keys is None
                else (self.step_keys[i], s.name, json.dumps(s.to_dict()["params"]), s.p)
                for i, s in enumerate(pipe.steps)
                if s.enabled
            ]
            sigs += [None] * (len(labelled) - len(sigs))  # box clean-up: no randomness
            built = [
                (label, _instantiate(node), sig)
                for (label, node), sig in zip(labelled, sigs, strict=True)
            ]
            self._modules[boxes] = built
        return built

    def __call__(self, sample: Any, seed: int, *, memo: dict[str, Any] | None = None) -> Any:
        """Apply to ``sample`` with draws fixed by ``seed`` (see :meth:`Pipeline.apply`).

        Parameters
        ----------
        memo : dict, optional
            Only with ``step_keys``. A dict the caller keeps for one ``(sample, seed)`` pair
            across calls (e.g. one preview cell while a slider moves): the output after each
            step is stored in it, and a later call whose first steps have the same key, name,
            parameters and ``p`` starts from the stored output instead of recomputing them.
            Exact, because each step draws from its own stream. It is reset when the sample
            object or the seed differ.
        """
        seed = _check_seed(seed)
        data, restore = _to_internal(sample, self.backend)
        geo = isinstance(data, dict) and any(k in data for k in ("boxes", "masks"))
        if geo and self.pipeline.image_only:
            raise ParameterError(
                "the pipeline has image-only steps "
                f"({self.pipeline._image_only_names()}) that cannot move "
                "boxes or masks; disable them or apply the pipeline to the image alone"
            )
        has_boxes = isinstance(data, dict) and "boxes" in data
        modules = self._build(has_boxes)
        start = 0
        if memo is not None:
            if self.step_keys is None:
                raise ParameterError("memo= needs per-step streams: pass step_keys")
            if memo.get("sample") is not sample or memo.get("seed") != (seed, has_boxes):
                memo.clear()
                memo.update(sample=sample, seed=(seed, has_boxes), sigs=[], outs=[])
            sigs, outs = memo["sigs"], memo["outs"]
            while (
                start < min(len(sigs), len(modules))
                and modules[start][2] is not None
                and sigs[start] == modules[start][2]
            ):
                start += 1
            del sigs[start:], outs[start:]
            if start:
                data = outs[start - 1]
        with _seeded(seed), warnings.catch_warnings():
            # RandomErasing warns that it passes boxes and masks through: that is intended.
            warnings.filterwarnings("ignore", message=r".*currently passing through inputs")
            # JPEG goes through torchvision.io.encode_jpeg, deprecated in torchvision 0.29.
            warnings.filterwarnings(
                "ignore", message=r"The image decoding and encoding", category=DeprecationWarning
            )
            for label, module, sig in modules[start:]:
                if sig is not None:
                    _reseed(step_seed(seed, sig[0]))
                try:
                    if isinstance(module, v2.SanitizeBoundingBoxes):
                        data = _sanitize(module, data)
                    else:
                        data = module(data)
                except (ValueError, TypeError, RuntimeError, IndexError) as exc:
                    raise ParameterError(f"{label} failed on this sample: {exc}") from exc
                if memo is not None and sig is not None:
                    memo["sigs"].append(sig)
                    memo["outs"].append(dict(data) if isinstance(data, dict) else data)
        return restore(data)


_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def step_seed(seed: int, key: int) -> int:
    """Seed of the step with ``key`` in a per-step replay with ``seed`` (``< 2**63``).

    SplitMix64 of SplitMix64(seed) xor key: neighbouring seeds or keys give unrelated streams,
    and it costs a microsecond (``SeedSequence`` costs 200 per call, too much per step and draw).
    """
    return _splitmix64(_splitmix64(int(seed)) ^ (int(key) & _M64)) >> 1


def variant_seeds(seed: int, n: int) -> list[int]:
    """The ``n`` per-variant seeds :meth:`Pipeline.draws` uses for ``seed``."""
    seed = _check_seed(seed)
    if n == 0:
        return []
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


# ----------------------------------------------------------------------------------------------
# Sample handling
# ----------------------------------------------------------------------------------------------


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ParameterError(f"seed must be an int in [0, 2**63), got {seed!r}")
    return int(seed)


# torchvision draws from torch's one default generator: two threads replaying at once would
# interleave their draws. A fork while another thread holds the lock must not leave the child
# with a lock nobody will release.
_RNG_LOCK = threading.RLock()


def _new_rng_lock() -> None:
    global _RNG_LOCK
    _RNG_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_rng_lock)


# Set while an outer _rng_guard() in this thread owns the RNG state (and the lock).
_RNG_GUARD = threading.local()


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    if getattr(_RNG_GUARD, "active", False):  # the guard saves and restores, once
        with _RNG_LOCK:
            _reseed(seed)
            yield
        return
    with _RNG_LOCK:
        py_state = random.getstate()
        # devices=[]: CPU generator only. torch.manual_seed would also (lazily) reseed every CUDA
        # generator, which fork_rng(devices=[]) would not restore.
        with torch.random.fork_rng(devices=[]):
            _reseed(seed)
            try:
                yield
            finally:
                random.setstate(py_state)


@contextmanager
def _rng_guard() -> Iterator[None]:
    """Save torch's and Python's RNG states once around many seeded replays in this thread.

    Saving and restoring them costs ~0.1 ms per replay, as much as augmenting a small image.
    Each replay still holds the lock while it runs (other threads may replay in between).
    """
    if getattr(_RNG_GUARD, "active", False):
        yield
        return
    with _RNG_LOCK:
        py_state, torch_state = random.getstate(), torch.get_rng_state()
    _RNG_GUARD.active = True
    try:
        yield
    finally:
        _RNG_GUARD.active = False
        with _RNG_LOCK:
            torch.set_rng_state(torch_state)
            random.setstate(py_state)


def _reseed(seed: int) -> None:
    torch.default_generator.manual_seed(seed)
    random.seed(seed)


def _image_in(
    image: Any, where: str, backend: Backend = "tensor"
) -> tuple[Any, Callable[[Any], Any]]:
    if isinstance(image, PIL.Image.Image):
        if image.mode not in ("L", "RGB"):
            raise ParameterError(
                f"{where}: PIL mode {image.mode!r} is not supported; convert to 'RGB' or 'L' "
                "(workbench.io.decode does this)"
            )
        if backend == "pil":  # torchvision's own PIL path; a float step hands back a tensor
            return image, _pil_out
        # contiguous: pil_to_tensor gives a CHW view of HWC memory, and ``randn_like`` (noise)
        # fills in memory order, so the same seed would give a PIL image other noise.
        pixels = F.pil_to_tensor(image).contiguous()
        return tv_tensors.Image(pixels), lambda x: F.to_pil_image(x)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ParameterError(
                f"{where}: expected a uint8 (C, H, W) tensor with 1 or 3 channels, got dtype "
                f"{image.dtype} and shape {tuple(image.shape)}; convert floats with "
                "v2.ToDtype(torch.uint8, scale=True)"
            )
        if isinstance(image, tv_tensors.Image):
            return tv_tensors.Image(image.contiguous()), lambda x: x
        return tv_tensors.Image(image.contiguous()), lambda x: x.as_subclass(torch.Tensor)
    raise ParameterError(
        f"{where}: expected a PIL image, a uint8 tensor or a dict with 'image', got "
        f"{type(image).__name__}"
    )


def _pil_out(x: Any) -> PIL.Image.Image:
    return x if isinstance(x, PIL.Image.Image) else F.to_pil_image(x.as_subclass(torch.Tensor))


def _check_backend(backend: Any) -> Backend:
    if backend not in ("tensor", "pil"):
        raise ParameterError(f"backend must be 'tensor' or 'pil', got {backend!r}")
    return backend


def _to_internal(sample: Any, backend: Backend = "tensor") -> tuple[Any, Callable[[Any], Any]]:
    if not isinstance(sample, Mapping):
        return _image_in(sample, "sample", backend)
    if "image" not in sample:
        raise ParameterError("sample: a dict sample needs an 'image' key")
    image, restore_image = _image_in(sample["image"], "sample['image']", backend)
    h, w = (image.height, image.width) if isinstance(image, PIL.Image.Image) else image.shape[-2:]
    data = {k: v for k, v in sample.items() if v is not None}
    data["image"] = image
    plain_masks = False
    if "boxes" in data:
        boxes = data["boxes"]
        if not isinstance(boxes, tv_tensors.BoundingBoxes):
            raise ParameterError(
                "sample['boxes']: expected tv_tensors.BoundingBoxes (it carries the format and "
                f"canvas size), got {type(boxes).__name__}"
            )
        if tuple(boxes.canvas_size) != (h, w):
            raise ParameterError(
                f"sample['boxes']: canvas_size {tuple(boxes.canvas_size)} does not match the "
                f"image size {(h, w)}"
            )
        labels = data.get("labels")
        if labels is not None and not (
            isinstance(labels, torch.Tensor) and labels.ndim >= 1 and len(labels) == len(boxes)
        ):
            raise ParameterError(
                "sample['labels']: with boxes, labels must be a tensor with one entry per box "
                f"(boxes that leave the image are dropped with their labels); got {labels!r}"
            )
    if "masks" in data:
        masks = data["masks"]
        if not isinstance(masks, torch.Tensor) or masks.ndim not in (2, 3):
            raise ParameterError("sample['masks']: expected an (H, W) or (N, H, W) tensor")
        if tuple(masks.shape[-2:]) != (h, w):
            raise ParameterError(
                f"sample['masks']: size {tuple(masks.shape[-2:])} does not match the image {(h, w)}"
            )
        plain_masks = not isinstance(masks, tv_tensors.Mask)
        data["masks"] = tv_tensors.Mask(masks)

    def restore(out: dict[str, Any]) -> dict[str, Any]:
        result = dict(out)
        result["image"] = restore_image(out["image"])
        if plain_masks:
            result["masks"] = out["masks"].as_subclass(torch.Tensor)
        for key, value in sample.items():
            if value is None:
                result[key] = None
        return {k: result[k] for k in sample}

    return data, restore


def _sanitize(module: v2.SanitizeBoundingBoxes, data: Any) -> Any:
    # SanitizeBoundingBoxes indexes *every* Mask with the kept-box mask and silently passes it
    # through when the shapes do not fit; a semantic (H, W) mask with H == N boxes would be cut.
    # Only instance masks (N, H, W) with N == number of boxes go through it.
    if not isinstance(data, dict):
        return module(data)
    if "labels" not in data:
        module = v2.SanitizeBoundingBoxes(labels_getter=None)
    if "masks" not in data:
        return module(data)
    masks = data["masks"]
    n = data["boxes"].shape[0]
    if masks.ndim == 3 and masks.shape[0] == n:
        return module(data)
    rest = module({k: v for k, v in data.items() if k != "masks"})
    return {**rest, "masks": masks}


# ----------------------------------------------------------------------------------------------
# Preview helpers
# ----------------------------------------------------------------------------------------------

_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)


def _color_for(key: str) -> tuple[int, int, int]:
    return _PALETTE[zlib.crc32(key.encode()) % len(_PALETTE)]


def _rgb_tensor(image: Any) -> torch.Tensor:
    if isinstance(image, PIL.Image.Image):
        image = F.pil_to_tensor(image.convert("RGB"))
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ParameterError("expected a PIL image or a (C, H, W) tensor")
    image = image.as_subclass(torch.Tensor)
    if image.is_floating_point():
        image = F.to_dtype(image, torch.uint8, scale=True)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image.contiguous()


def draw_boxes(
    image: Any,
    boxes: torch.Tensor,
    labels: Sequence[Any] | torch.Tensor | None = None,
    width: int = 1,
) -> PIL.Image.Image:
    """Draw boxes (and their labels) on a copy of ``image``.

    Parameters
    ----------
    image : PIL.Image.Image or torch.Tensor
        The image; uint8 or float ``(C, H, W)`` tensors are accepted.
    boxes : tv_tensors.BoundingBoxes or torch.Tensor
        ``(N, 4)`` boxes; a plain tensor is read as XYXY.
    labels : sequence or tensor, optional
        One label per box (class ids or names); boxes of one label share a colour.
    width : int
        Line width in pixels.

    Returns
    -------
    PIL.Image.Image
        An RGB image.
    """
    rgb = _rgb_tensor(image)
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        boxes = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    boxes = torch.as_tensor(boxes).as_subclass(torch.Tensor).reshape(-1, 4).float()
    if boxes.shape[0] == 0:
        return F.to_pil_image(rgb)
    names: list[str] | None = None
    if labels is not None:
        names = [str(x.item() if isinstance(x, torch.Tensor) else x) for x in labels]
        if len(names) != boxes.shape[0]:
            raise ParameterError(
                f"draw_boxes: {len(names)} labels for {boxes.shape[0]} boxes; pass one per box"
            )
    colors = [_color_for(n) for n in names] if names else [_PALETTE[0]] * boxes.shape[0]
    from torchvision.utils import draw_bounding_boxes

    out = draw_bounding_boxes(rgb, boxes, labels=names, colors=colors, width=width)
    return F.to_pil_image(out)


def _outline(masks: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of boolean ``(K, H, W)`` masks (pixels with a 4-neighbour outside)."""
    m = masks.float().unsqueeze(1)
    inner = -torch.nn.functional.max_pool2d(-m, kernel_size=3, stride=1, padding=1)
    return (m.bool() & ~inner.bool()).squeeze(1)


def mask_outline(image: Any, mask: torch.Tensor) -> PIL.Image.Image:
    """Draw the outlines of ``mask`` on a copy of ``image``.

    Parameters
    ----------
    image : PIL.Image.Image or torch.Tensor
        The image.
    mask : torch.Tensor
        ``(H, W)`` bool mask, ``(H, W)`` integer label map (one outline per non-zero value) or
        ``(N, H, W)`` instance masks (non-zero = inside).

    Returns
    -------
    PIL.Image.Image
        An RGB image with one coloured outline per mask or class.
    """
    rgb = _rgb_tensor(image)
    mask = torch.as_tensor(mask).as_subclass(torch.Tensor)
    if mask.shape[-2:] != rgb.shape[-2:] or mask.ndim not in (2, 3):
        raise ParameterError(
            f"mask_outline: mask shape {tuple(mask.shape)} does not fit the image "
            f"{tuple(rgb.shape[-2:])}"
        )
    if mask.ndim == 3:
        masks, keys = mask != 0, [str(k) for k in range(mask.shape[0])]
    elif mask.dtype == torch.bool:
        masks, keys = mask[None], ["1"]
    else:
        values = [v for v in torch.unique(mask).tolist() if v != 0]
        masks = torch.stack([mask == v for v in values]) if values else mask[None] != 0
        keys = [str(v) for v in values] or ["1"]
    if masks.shape[0] == 0 or not masks.any():
        return F.to_pil_image(rgb)
    from torchvision.utils import draw_segmentation_masks

    edges = _outline(masks)
    out = draw_segmentation_masks(rgb, edges, alpha=1.0, colors=[_color_for(k) for k in keys])
    return F.to_pil_image(out)


def downscale(sample: Any, max_side: int) -> Any:
    """A copy of ``sample`` whose longer side is at most ``max_side`` (never enlarged).

    Boxes and masks are scaled with the image (masks with nearest-neighbour), so a dict sample
    stays consistent. A sample that is already small enough is returned as is.

    Parameters
    ----------
    sample : PIL.Image.Image, torch.Tensor or dict
        As for :meth:`Pipeline.apply`.
    max_side : int
        Largest allowed height or width, at least 2.
    """
    if not isinstance(max_side, (int, np.integer)) or isinstance(max_side, bool) or max_side < 2:
        raise ParameterError(f"downscale: max_side must be an int >= 2, got {max_side!r}")
    image = sample["image"] if isinstance(sample, Mapping) else sample
    if isinstance(image, PIL.Image.Image):
        h, w = image.height, image.width
    elif isinstance(image, torch.Tensor) and image.ndim >= 2:
        h, w = image.shape[-2:]
    else:
        raise ParameterError(
            f"downscale: expected a PIL image, a tensor or a dict with 'image', got "
            f"{type(image).__name__}"
        )
    if max(h, w) <= max_side:
        return sample
    scale = max_side / max(h, w)
    size = [max(1, round(h * scale)), max(1, round(w * scale))]
    small = F.resize(image, size, antialias=True)
    if not isinstance(sample, Mapping):
        return small
    out = dict(sample)
    out["image"] = small
    boxes = out.get("boxes")
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        out["boxes"] = F.resize(boxes, size)
    masks = out.get("masks")
    if isinstance(masks, torch.Tensor):
        resized = F.resize(tv_tensors.Mask(masks), size, interpolation=v2.InterpolationMode.NEAREST)
        out["masks"] = (
            resized if isinstance(masks, tv_tensors.Mask) else resized.as_subclass(torch.Tensor)
        )
    return out


# ----------------------------------------------------------------------------------------------
# Offline expansion
# ----------------------------------------------------------------------------------------------

#: Name of the manifest :func:`expand` writes into its output folder.
MANIFEST = "manifest.csv"

#: Columns of the manifest, in order.
MANIFEST_COLUMNS = (
    "path", "source_id", "copy", "seed", "pipeline", "backend", "source_hash", "label",
    "split", "width", "height", "mode", "channels", "bits", "bytes", "hash", "format",
)  # fmt: skip
_SCAN_FIELDS = ("width", "height", "mode", "channels", "bits", "bytes", "hash", "format")


def pipeline_fingerprint(pipeline: Pipeline) -> str:
    """A short content hash of the pipeline's JSON (names its file in ``<out>/pipelines/``)."""
    import hashlib

    text = json.dumps(pipeline.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def copy_seed(seed: int, source_id: str, copy: int) -> int:
    """Seed of augmented copy ``copy`` of ``source_id`` in an :func:`expand` run with ``seed``.

    SplitMix64 over ``seed``, a 64-bit BLAKE2b of the id and ``copy`` (``< 2**63``): independent
    of the order and number of sources, so a subset or a resumed run gives every file the same
    seed, and neighbouring run seeds share no file seeds.
    """
    import hashlib

    key = int.from_bytes(hashlib.blake2b(source_id.encode(), digest_size=8).digest(), "little")
    mixed = _splitmix64(_splitmix64(_check_seed(seed)) ^ key)
    return _splitmix64(mixed ^ (int(copy) & _M64)) >> 1


_REPLAYS: dict[tuple[str, str], Replay] = {}
_THREADS_CHECKED_PID: int | None = None  # a pid, not a flag: forked children inherit globals


def _replay_for(pipeline_json: str, backend: Backend) -> Replay:
    replay = _REPLAYS.get((pipeline_json, backend))
    if replay is None:
        if len(_REPLAYS) >= 4:
            _REPLAYS.clear()
        pipe = Pipeline.from_json(pipeline_json)
        replay = _REPLAYS[(pipeline_json, backend)] = pipe.replayer(backend=backend)
    return replay


@contextmanager
def _one_intraop_thread() -> Iterator[None]:
    """One torch intra-op thread in this thread for the duration (restored after).

    Per-image tensors are small: splitting each op over cores costs more than it saves, badly
    so when the cores are busy (10x slower measured on a loaded 2-core machine). OpenMP's
    thread count is per thread, so other threads are not affected.
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _expand_one(pipeline_json: str, backend: Backend, task: tuple[str, str, int]) -> tuple:
    """Decode one source, augment it with its seed, write it atomically; return its scan row."""
    global _THREADS_CHECKED_PID
    import multiprocessing

    from workbench.io import _pixel_hash, decode

    if os.getpid() != _THREADS_CHECKED_PID:
        if multiprocessing.parent_process() is not None:
            # A pool worker. One intra-op thread per process (as torch's DataLoader workers
            # do): the pool already uses every core, and OpenMP's thread pool is not fork-safe
            # (a forked child whose parent had used it hangs in its first parallel op). And no
            # saving of RNG states around each replay: nobody else reads a worker's.
            torch.set_num_threads(1)
            _RNG_GUARD.active = True
        _THREADS_CHECKED_PID = os.getpid()
    src, dst, seed = task
    out = _replay_for(pipeline_json, backend)(decode(src), seed)
    size = _save_png_atomic(out, dst)
    mode = out.mode
    return (out.width, out.height, mode, len(mode), 8, size, _pixel_hash(out), "PNG")


def _save_png_atomic(image: PIL.Image.Image, dst: str) -> int:
    """Save as PNG under a temporary name, then rename; return the file size.

    No reader, and no resumed run, ever sees half a file after a crash of this process. Not
    fsynced (the manifest's byte count catches a file a power loss truncated). Like
    ``fsutil.atomic_open`` but leaner, since per-file costs decide the speed for small images:
    a fixed temporary name per process and thread (no random names), the folder created only
    when missing, and files readable by others (0644 under the umask).
    """
    folder, name = os.path.split(dst)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, "PNG")
            size = f.tell()
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


def _output_names(ids: Sequence[str], copies: int) -> list[list[str]]:
    """``<id without extension>_aug<k>.png`` per copy; ids that would collide get a hash."""
    import posixpath

    stems = []
    for sid in ids:
        stem = posixpath.splitext(sid.lstrip("/"))[0]
        parts = [p for p in stem.split("/") if p not in ("", ".", "..")]
        stems.append("/".join(parts) or "_")
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    names = []
    for sid, stem in zip(ids, stems, strict=True):
        if seen[stem] > 1:
            stem = f"{stem}_{zlib.crc32(sid.encode()):08x}"
        names.append([f"{stem}_aug{k}.png" for k in range(copies)])
    return names


def _read_manifest(path: Any) -> dict[str, dict[str, Any]]:
    import pandas as pd

    if not path.exists():
        return {}
    try:
        df = pd.read_csv(path, dtype={"path": str, "source_id": str, "pipeline": str})
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}  # unreadable: everything is redone (never trusted)
    if not set(MANIFEST_COLUMNS) <= set(df.columns):
        return {}
    return {r["path"]: r for r in df.to_dict("records")}


def _write_manifest(path: Any, rows: Iterable[dict[str, Any]]) -> None:
    import pandas as pd

    from workbench.fsutil import atomic_open

    df = pd.DataFrame(list(rows), columns=list(MANIFEST_COLUMNS))
    with atomic_open(path, "w") as f:
        df.to_csv(f, index=False)


def expand(
    catalog: Any,
    pipeline: Pipeline,
    copies: int = 1,
    out: Any = None,
    *,
    seed: int = 0,
    executor: Any = None,
    workers: int | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    backend: Backend = "pil",
) -> Any:
    """Write ``copies`` augmented PNG files per readable image and return them as a Catalog.

    Parameters
    ----------
    catalog : Catalog
        The sources; unreadable rows (``status != "ok"``) are skipped.
    pipeline : Pipeline
        Applied with :meth:`Pipeline.apply` (one random stream per file).
    copies : int
        Augmented files per source image.
    out : str, os.PathLike or Workspace
        Output folder; a Workspace means ``<workspace>/augmented``. Files are
        ``<source id without extension>_aug<k>.png`` (so ``<class>/`` folders are kept).
    seed : int
        Run seed. File ``k`` of source ``id`` gets ``copy_seed(seed, id, k)``.
    executor, workers, progress
        Passed to :func:`workbench.parallel.pmap` (``progress`` shows its tqdm bar).
    batch_size : int, optional
        Files between manifest checkpoints (default: about 1/20 of the work, at least 1024).
        An interrupted run loses at most one batch of manifest rows; those files are written
        again on resume.
    backend : {"pil", "tensor"}
        See :meth:`Pipeline.apply`. ``"pil"`` (default) writes exactly what
        ``pipeline.to_torchvision()`` gives for the decoded image, i.e. what online training
        on ``catalog.to_torch(transform=pipeline.to_torchvision())`` would draw, and is several
        times faster; ``"tensor"`` matches ``Pipeline.apply``'s default.

    Returns
    -------
    Catalog
        One row per augmented file of this call (skipped ones included), rooted at the output
        folder, with the source's ``label`` and ``split`` and metadata columns ``source_id``,
        ``copy``, ``seed``, ``pipeline`` and ``backend``. ``df.attrs`` has ``written``,
        ``skipped`` and ``manifest`` (its path).

    Notes
    -----
    ``<out>/manifest.csv`` (written atomically after every batch) has one row per file:
    :data:`MANIFEST_COLUMNS`, where ``pipeline`` names ``<out>/pipelines/<pipeline>.json``.
    Every file can be regenerated bit for bit::

        pipe = Pipeline.from_json((out / "pipelines" / f"{row.pipeline}.json").read_text())
        pipe.apply(catalog.image(row.source_id), seed=row.seed, backend=row.backend)

    Each file is written to a temporary name and renamed, so an interrupted run leaves no half
    file. A re-run resumes: a file that is listed with the same source, source hash, copy, seed
    pipeline and backend, exists and has the listed size is skipped; everything else is
    written. Rows of earlier runs that this call does not plan are kept while their files exist.
    Work done in this process (``workers=1``, or few files) uses one torch intra-op thread, as
    pool workers do.
    """
    import functools
    import math
    from pathlib import Path

    import pandas as pd

    from workbench.catalog import COLUMNS, Catalog, _tidy
    from workbench.fsutil import atomic_write
    from workbench.parallel import pmap
    from workbench.workspace import Workspace

    if not isinstance(copies, (int, np.integer)) or isinstance(copies, bool) or copies < 1:
        raise ParameterError(f"expand: copies must be an int >= 1, got {copies!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ParameterError(f"expand: batch_size must be an int >= 1, got {batch_size!r}")
    seed = _check_seed(seed)
    backend = _check_backend(backend)
    if not isinstance(pipeline, Pipeline):
        raise ParameterError(f"expand: pipeline must be a Pipeline, got {type(pipeline).__name__}")
    pipeline.validate()
    ws = out if isinstance(out, Workspace) else None
    if out is None:
        raise ParameterError("expand: pass out= (a folder or a Workspace) for the new files")
    out_dir = (ws.path / "augmented") if ws is not None else Path(out).expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)

    fp = pipeline_fingerprint(pipeline)
    pipeline_json = pipeline.to_json(indent=None)
    pipe_file = out_dir / "pipelines" / f"{fp}.json"
    if not pipe_file.exists():
        atomic_write(pipe_file, pipeline.to_json())
    manifest_path = out_dir / MANIFEST
    for stale in out_dir.rglob(".*.tmp"):  # left by a killed run (SIGKILL skips clean-up)
        stale.unlink(missing_ok=True)

    src = catalog.df[catalog.df["status"] == "ok"]
    ids = src["id"].astype(str).tolist()
    names = _output_names(ids, int(copies))
    old = _read_manifest(manifest_path)
    plan: list[dict[str, Any]] = []
    todo: list[int] = []
    labels = src["label"].astype(object).where(src["label"].notna(), None).tolist()
    splits = src["split"].astype(object).where(src["split"].notna(), None).tolist()
    for sid, path, shash, label, split, row_names in zip(
        ids, src["path"], src["hash"], labels, splits, names, strict=True
    ):
        for k, rel in enumerate(row_names):
            row = {
                "path": rel, "source_id": sid, "copy": k, "seed": copy_seed(seed, sid, k),
                "pipeline": fp, "backend": backend, "source_hash": shash, "label": label,
                "split": split, "_src": path,
            }  # fmt: skip
            prev = old.get(rel)
            if prev is not None and _still_valid(prev, row, out_dir / rel):
                row.update({f: prev[f] for f in _SCAN_FIELDS})
            else:
                todo.append(len(plan))
            plan.append(row)

    planned = {r["path"] for r in plan}
    kept = [r for p, r in old.items() if p not in planned and (out_dir / p).exists()]
    todo_set = set(todo)
    done = {i for i in range(len(plan)) if i not in todo_set}

    def checkpoint() -> None:  # rows in plan order, whatever order the batches finished in
        rows = ({k: v for k, v in plan[i].items() if k != "_src"} for i in sorted(done))
        _write_manifest(manifest_path, [*kept, *rows])

    # First checkpoint: the skipped rows stay listed; rows about to be redone are dropped, so
    # the manifest never lists a file that is being replaced. (Nothing to say without one.)
    if old or not todo:
        checkpoint()
    size = batch_size or max(1024, math.ceil(len(todo) / 20))
    fn = functools.partial(_expand_one, pipeline_json, backend)
    n_batches = math.ceil(len(todo) / size)
    with _one_intraop_thread(), _rng_guard():
        for b in range(n_batches):
            index = todo[b * size : (b + 1) * size]
            batch = [plan[i] for i in index]
            tasks = [(r["_src"], str(out_dir / r["path"]), r["seed"]) for r in batch]
            desc = "expand" if n_batches == 1 else f"expand {b + 1}/{n_batches}"
            results = pmap(
                fn, tasks, executor=executor, workers=workers, progress=progress, desc=desc
            )
            for r, scan in zip(batch, results, strict=True):
                r.update(zip(_SCAN_FIELDS, scan, strict=True))
            done.update(index)
            checkpoint()

    df = pd.DataFrame(
        {
            "id": [r["path"] for r in plan],
            "path": [str(out_dir / r["path"]) for r in plan],
            "label": [r["label"] for r in plan],
            "split": [r["split"] for r in plan],
            **{f: [r[f] for r in plan] for f in _SCAN_FIELDS},
            "status": "ok",
            "error": "",
            "source_id": [r["source_id"] for r in plan],
            "copy": [int(r["copy"]) for r in plan],
            "seed": [int(r["seed"]) for r in plan],
            "pipeline": fp,
            "backend": backend,
        },
        columns=[*COLUMNS, "source_id", "copy", "seed", "pipeline", "backend"],
    )
    for c in ("width", "height", "channels", "bits"):
        df[c] = df[c].astype("int32")
    df["bytes"] = df["bytes"].astype("int64")
    result = Catalog(_tidy(df), out_dir, thumbs=ws.thumbs if ws is not None else None)
    result.df.attrs.update(
        written=len(todo), skipped=len(plan) - len(todo), manifest=str(manifest_path)
    )
    return result


def _still_valid(prev: Mapping[str, Any], row: Mapping[str, Any], file: Any) -> bool:
    """Whether a listed file is the one ``row`` plans (same inputs) and is complete on disk."""
    try:
        same = (
            str(prev["source_id"]) == row["source_id"]
            and int(prev["copy"]) == row["copy"]
            and int(prev["seed"]) == row["seed"]
            and str(prev["pipeline"]) == row["pipeline"]
            and str(prev["backend"]) == row["backend"]
            and str(prev["source_hash"]) == str(row["source_hash"])
        )
        return same and file.stat().st_size == int(prev["bytes"])
    except (OSError, ValueError, TypeError, KeyError):
        return False

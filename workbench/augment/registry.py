"""The parameter registry: what the workbench knows about each torchvision v2 transform.

:data:`REGISTRY` maps a ``torchvision.transforms.v2`` class name to a :class:`TransformSpec`: its
tunable parameters (:class:`ParamSpec`: kind, default, domain, slider step), whether it has its own
``p``, moves boxes and masks, needs a pixel dtype or works in pixels, and how its parameters become
constructor arguments (``build``) or are checked together (``check``).

Guarantees: every entry names a real ``v2`` class; every default is valid (so
``Pipeline().add(name)`` works for every name); ``fill`` never paints masks (they keep 0, the
background).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["REGISTRY", "ParamSpec", "TransformSpec"]

ParamKind = Literal["float", "int", "range", "choice", "bool", "size"]
ScalarRule = Literal["symmetric", "around_one", "fixed"]


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
        Slider step. A slider's positions are ``min + k * step``; every default lies on them
        (but torchvision's ``4/3`` aspect), so a new slider shows the default exactly.
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
            _float("sigma", 5.0, 0.01, 50.0, 0.01, "displacement smoothness"),
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
            _range("sigma", (0.1, 2.0), 0.01, 20.0, 0.01, "blur std range", scalar="fixed"),
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
            _range("ratio", (0.3, 3.3), 0.01, 10.0, 0.01, "erased aspect (h/w)"),
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
            _float("alpha", 1.0, 0.01, 10.0, 0.01, "mixing prior"),
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

"""Preview drawing: boxes and mask outlines on images, reduced working copies, and the one
conversion between PIL images and uint8 tensors.

:func:`convert_sample` is the only place a sample's image changes form (PIL <-> tensor): the
replay uses it on the way in and out, and the augment tuner uses it for its working copies and
preview cells, so what the tuner shows is what :meth:`Pipeline.apply` gives. Every function here
returns new objects and leaves its inputs as they were.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from workbench._validation import check_int
from workbench.errors import ParameterError

__all__ = ["convert_sample", "downscale", "draw_boxes", "mask_outline"]


def convert_sample(sample: Any, to: Literal["tensor", "pil"]) -> Any:
    """``sample`` with its image as a uint8 tensor (``to="tensor"``) or a PIL image (``"pil"``).

    Parameters
    ----------
    sample : PIL.Image.Image, torch.Tensor or dict
        An image, or a dict with key ``"image"`` (the other entries are shared, not copied).
    to : {"tensor", "pil"}
        ``"tensor"``: a PIL image becomes a contiguous ``(C, H, W)`` uint8 tensor, exactly what
        :meth:`Pipeline.apply` turns it into, so converting once and replaying many times gives
        the pixels of replaying the PIL image. ``"pil"``: a ``(C, H, W)`` tensor (plain or a
        ``tv_tensors.Image``) becomes a PIL image. An image already in that form is kept as is.

    Returns
    -------
    The same form as ``sample``: an image, or a new dict with the converted image.
    """
    if isinstance(sample, Mapping):
        return {**sample, "image": convert_sample(sample["image"], to)}
    if to == "tensor":
        if isinstance(sample, PIL.Image.Image):
            # contiguous: pil_to_tensor gives a CHW view of HWC memory, and ``randn_like``
            # (noise) fills in memory order, so the same seed would give a PIL image other noise.
            return F.pil_to_tensor(sample).contiguous()
        return sample
    if to == "pil":
        if isinstance(sample, PIL.Image.Image):
            return sample
        return F.to_pil_image(sample.as_subclass(torch.Tensor))
    raise ParameterError(f"convert_sample: to must be 'tensor' or 'pil', got {to!r}")


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
        image = convert_sample(image.convert("RGB"), "tensor")
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
    font_size: int | None = None,
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
    font_size : int, optional
        Height of the label text in pixels; default about 1/25 of the longer side (at least
        10), so labels stay legible when the image is shown fitted to a preview cell.

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
        return convert_sample(rgb, "pil")
    names: list[str] | None = None
    if labels is not None:
        names = [str(x.item() if isinstance(x, torch.Tensor) else x) for x in labels]
        if len(names) != boxes.shape[0]:
            raise ParameterError(
                f"draw_boxes: {len(names)} labels for {boxes.shape[0]} boxes; pass one per box"
            )
    colors = [_color_for(n) for n in names] if names else [_PALETTE[0]] * boxes.shape[0]
    from torchvision.utils import draw_bounding_boxes

    out = convert_sample(draw_bounding_boxes(rgb, boxes, colors=colors, width=width), "pil")
    if names:
        # torchvision draws labels in PIL's fixed 11 px bitmap font (tiny on a photo shown
        # fitted to a preview cell) unless given a font file; PIL's own scalable font needs none.
        if font_size is None:
            font_size = max(10, round(max(rgb.shape[-2:]) / 25))
        _draw_labels(out, boxes, names, colors, font_size)
    return out


def _draw_labels(
    image: PIL.Image.Image,
    boxes: torch.Tensor,
    names: Sequence[str],
    colors: Sequence[tuple[int, int, int]],
    font_size: int,
) -> None:
    """Write each name on a filled tag at its box's top-left corner (in place)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(1, int(font_size)))
    draw = ImageDraw.Draw(image)
    pad = max(1, font_size // 6)
    for (x0, y0, _x1, _y1), name, color in zip(boxes.tolist(), names, colors, strict=True):
        _, _, right, bottom = draw.textbbox((x0 + pad, y0 + pad), name, font=font)
        draw.rectangle((x0, y0, right + pad, bottom + pad), fill=color)
        dark = sum(color) > 3 * 140  # dark text on light tags
        draw.text(
            (x0 + pad, y0 + pad), name, fill=(0, 0, 0) if dark else (255, 255, 255), font=font
        )


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
        return convert_sample(rgb, "pil")
    from torchvision.utils import draw_segmentation_masks

    edges = _outline(masks)
    out = draw_segmentation_masks(rgb, edges, alpha=1.0, colors=[_color_for(k) for k in keys])
    return convert_sample(out, "pil")


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
    max_side = check_int(max_side, "downscale: max_side", low=2)
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

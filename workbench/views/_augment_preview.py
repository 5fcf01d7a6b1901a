"""The augment tuner's preview: its samples, their working copies, the grid and the render loop.

:class:`_Samples` holds user samples or catalog rows and caches the last 64 sources and working
copies (so a slider drag decodes and downscales nothing); it converts with
:func:`workbench.augment.convert_sample`, the conversion ``Pipeline.apply`` itself uses, so a
preview cell is exactly the core's replay. Boxes and masks are drawn on the cells with the core's
``draw_boxes`` and ``mask_outline``. :class:`_PreviewGrid` shows the encoded cells.
:class:`_PreviewRendering` is the tuner's render loop (see the tuner's notes on staying live).
"""

from __future__ import annotations

import base64
import io
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from workbench.augment import (
    Replay,
    convert_sample,
    downscale,
    draw_boxes,
    mask_outline,
    variant_seeds,
)
from workbench.background import Latest
from workbench.errors import ParameterError
from workbench.views._common import HtmlBoard, escape, guarded

_NEAREST = InterpolationMode.NEAREST

# Set on the render threads of every tuner: render() there runs inline (no waiting on itself).
_ON_RENDER_THREAD = threading.local()
# What the future of a render request resolves to when a newer request replaced it.
_SUPERSEDED = object()


def _init_render_thread() -> None:
    # OpenMP's thread count is per thread: one intra-op thread here, whatever the kernel uses.
    # Preview tensors are small; splitting each op over cores that other work is using costs
    # far more than it saves (5-20x slower on a busy 2-core machine, measured).
    torch.set_num_threads(1)
    _ON_RENDER_THREAD.active = True


def _thumb(im: PIL.Image.Image, size: int) -> tuple[bytes, str]:
    """Encode a preview cell: tiny images as PNG at their own size (the grid enlarges them
    crisply, see :func:`_enlarged`), others fitted into ``size`` as JPEG."""
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    longest = max(im.width, im.height)
    if longest * 2 <= size:  # silhouettes, digits: 64x fewer pixels to encode, send and decode
        return _png(im), "png"
    buf = io.BytesIO()
    if longest > size:
        scale = size / longest
        fit = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(fit, PIL.Image.Resampling.BILINEAR, reducing_gap=2.0)
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue(), "jpeg"


def _png(im: PIL.Image.Image) -> bytes:
    """A lossless PNG of an ``L`` or ``RGB`` image: the four chunks, rows unfiltered, zlib level 1.

    Our own because PIL's ``save`` costs ~40 us per tiny cell, three times the compression
    itself; the decoded pixels are the image's (unit test).
    """
    w, h = im.size
    raw = im.tobytes()
    stride = len(raw) // h
    rows = b"".join(b"\0" + raw[y * stride : (y + 1) * stride] for y in range(h))
    colour = 0 if im.mode == "L" else 2  # greyscale or truecolour, 8 bits per sample

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes((8, colour, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


def _enlarged(data: bytes, fmt: str, size: int) -> str:
    """``<img>`` attributes that show a tiny PNG cell enlarged by a whole factor with its pixels
    kept crisp (the browser scales it: cheaper than sending the enlarged pixels); ``""`` else."""
    if fmt != "png" or len(data) < 24:
        return ""
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
    longest = max(w, h, 1)
    if longest * 2 > size:
        return ""
    f = size // longest
    return f' width="{w * f}" height="{h * f}"'


class _Source:
    """One preview sample: the pixels (PIL image or dict with boxes/masks) and a caption."""

    def __init__(self, sample: Any, caption: str, classes: list[str] | None = None) -> None:
        self.sample = sample
        self.caption = caption
        self.classes = classes  # names of label indices, for drawing boxes

    @property
    def has_geometry(self) -> bool:
        return isinstance(self.sample, dict) and ("boxes" in self.sample or "masks" in self.sample)


def _prepare_sample(raw: Any, index: int) -> _Source:
    """Normalise a user sample (a PIL image, a tensor, or a dict with image/boxes/labels)."""
    if not isinstance(raw, dict):
        raw = {"image": raw}
    if "image" not in raw:
        raise ParameterError(f"samples[{index}]: a dict sample needs an 'image' key")
    image = raw["image"]
    if isinstance(image, PIL.Image.Image) and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    if isinstance(image, PIL.Image.Image):
        h, w = image.height, image.width
    elif isinstance(image, torch.Tensor) and image.ndim == 3:
        h, w = image.shape[-2:]
    else:
        raise ParameterError(
            f"samples[{index}]['image']: expected a PIL image or a uint8 (C, H, W) tensor, "
            f"got {type(image).__name__}"
        )
    sample: dict[str, Any] = {"image": image}
    classes: list[str] | None = None
    if raw.get("boxes") is not None:
        boxes = raw["boxes"]
        if not isinstance(boxes, tv_tensors.BoundingBoxes):
            boxes = tv_tensors.BoundingBoxes(
                torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                format="XYXY",
                canvas_size=(h, w),
            )
        sample["boxes"] = boxes
        labels = raw.get("labels")
        if labels is None:
            labels = ["box"] * len(boxes)
        names = [str(x.item() if isinstance(x, torch.Tensor) else x) for x in labels]
        if len(names) != len(boxes):
            raise ParameterError(
                f"samples[{index}]: {len(names)} labels for {len(boxes)} boxes; give one per box"
            )
        classes = sorted(set(names))
        sample["labels"] = torch.tensor([classes.index(n) for n in names], dtype=torch.int64)
    if raw.get("masks") is not None:
        sample["masks"] = raw["masks"]
    caption = str(raw.get("caption", f"sample {index}"))
    return _Source(sample if len(sample) > 1 else image, caption, classes)


class _Samples:
    """The preview sources by key (sample index or catalog id), their working copies and cells.

    Parameters
    ----------
    catalog : Catalog or None
        Where catalog ids are read from (decoded on first use, then cached).
    samples : sequence, optional
        User samples (see :func:`_prepare_sample`), keyed by their index; never evicted.
    ids : sequence of str, optional
        Catalog ids to preview; default every readable sample of the catalog.

    Attributes
    ----------
    pool : list
        The keys rows are picked from.
    """

    def __init__(
        self, catalog: Any, samples: Sequence[Any] | None, ids: Sequence[str] | None
    ) -> None:
        self.catalog = catalog
        self.samples: dict[Any, _Source] = {}
        self._random = samples is None and ids is None
        if samples is not None:
            prepared = [_prepare_sample(s, i) for i, s in enumerate(samples)]
            if not prepared:
                raise ParameterError("AugmentTuner: samples is empty")
            self.samples = dict(enumerate(prepared))
            self.pool: list[Any] = list(self.samples)
        else:
            ok = catalog.df[catalog.df["status"] == "ok"]["id"].astype(str).tolist()
            if ids is not None:
                unknown = [i for i in ids if i not in set(ok)]
                if unknown:
                    raise ParameterError(
                        f"AugmentTuner: ids {unknown[:3]} are not readable samples of the catalog"
                    )
                self.pool = list(ids)
            else:
                self.pool = ok
                if not ok:
                    raise ParameterError("AugmentTuner: the catalog has no readable samples")
        # Catalog sources and working copies, least recently used first (at most 64 sources).
        self._cache: OrderedDict[Any, Any] = OrderedDict()

    def first_rows(self, rows: int, rng: np.random.Generator) -> list[Any]:
        """The keys of the first ``rows`` rows: the first samples or ids, else a random pick."""
        if not self._random:
            return self.pool[:rows]
        pick = rng.choice(len(self.pool), size=min(rows, len(self.pool)), replace=False)
        return [self.pool[i] for i in sorted(pick)]

    @property
    def has_geometry(self) -> bool:
        """Whether a user sample has boxes or masks."""
        return any(s.has_geometry for s in self.samples.values())

    def source(self, key: Any) -> _Source:
        """The sample and caption of ``key``."""
        src = self.samples.get(key)
        if src is not None:
            return src
        cached = self._cache.get(key)
        if cached is None:
            row = self.catalog.row(key)
            label = row.get("label")
            caption = key if label in (None, "", "nan") else f"{key} · {label}"
            cached = _Source(self.catalog.image(key), caption)
            self._cache[key] = cached
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return cached

    def working(
        self, key: Any, reduce: bool, size: int, backend: str
    ) -> tuple[Any, tuple[bytes, str]]:
        """The sample the pipeline runs on (reduced to ``size`` or not) and its encoded original.

        With the tensor backend, images are kept as contiguous uint8 tensors (the pipeline gives
        the same pixels for a PIL image and its tensor), so a draw does not convert each time.
        """
        ckey = ("work", key, reduce, size, backend)
        hit = self._cache.get(ckey)
        if hit is None:
            src = self.source(key)
            work = downscale(src.sample, size) if reduce else src.sample
            if backend == "tensor":
                work = convert_sample(work, "tensor")
            hit = (work, self.encode(work, src, size))
            self._cache[ckey] = hit
        self._cache.move_to_end(ckey)
        return hit

    def cells(
        self,
        keys: Sequence[Any],
        replay: Replay,
        seeds: Sequence[int],
        draws: int,
        reduce: bool,
        size: int,
        backend: str,
        memos: dict[Any, dict],
    ) -> tuple[list[list[tuple[bytes, str]]], tuple[int, ...] | None, dict[Any, dict]]:
        """The encoded cells of one render, the first working sample's shape and the memos.

        Row ``r`` is the original of ``keys[r]`` and its draws ``k``, replayed with seed
        ``seeds[r * draws + k]``. ``memos`` holds the previous render's per-cell replay memos
        (reused where the cell is the same); the dict returned holds this render's only.
        """
        cells: list[list[tuple[bytes, str]]] = []
        new_memos: dict[Any, dict] = {}
        shape = None
        with replay.batch():
            for r, key in enumerate(keys):
                work, original = self.working(key, reduce, size, backend)
                src = self.source(key)
                if shape is None:
                    shape = tuple(F.get_size(work["image"] if isinstance(work, dict) else work))
                row = [original]
                for k in range(draws):
                    cell_seed = seeds[r * draws + k]
                    memo = memos.get((key, reduce, cell_seed), {})
                    new_memos[(key, reduce, cell_seed)] = memo
                    out = replay(work, cell_seed, memo=memo)
                    row.append(self.encode(out, src, size))
                cells.append(row)
        return cells, shape, new_memos

    def encode(self, out: Any, src: _Source, size: int) -> tuple[bytes, str]:
        """One preview cell: ``out`` (a draw or the original) with its boxes and masks drawn."""
        if not isinstance(out, dict):
            return _thumb(convert_sample(out, "pil"), size)
        im = out["image"]
        if "masks" in out:
            im = mask_outline(im, out["masks"])
        if "boxes" in out:
            labels = out.get("labels")
            names = None
            if labels is not None and src.classes is not None:
                names = [src.classes[int(i)] for i in labels]
            boxes = out["boxes"]
            h, w = F.get_size(im)
            f = size // max(h, w)
            if f >= 2:  # a small image is enlarged for the cell: draw on the enlarged pixels
                im = F.resize(convert_sample(im, "tensor"), [h * f, w * f], interpolation=_NEAREST)
                if isinstance(boxes, tv_tensors.BoundingBoxes):
                    boxes = F.resize(boxes, [h * f, w * f])
                else:
                    boxes = torch.as_tensor(boxes) * f
            scale = max(F.get_size(im)) / size  # image pixels per preview pixel
            # Lines about 2 and labels about 12 preview pixels, whatever the image size.
            im = draw_boxes(
                im, boxes, names, width=max(1, round(2 * scale)), font_size=round(12 * scale)
            )
        return _thumb(convert_sample(im, "pil"), size)


@dataclass
class _Cell:
    """One encoded preview cell, as drawn: ``value`` (bytes) and ``format``."""

    value: bytes = b""
    format: str = "png"


@dataclass
class _Caption:
    """One row's caption, as drawn (HTML, escaped)."""

    value: str = ""


class _PreviewGrid(HtmlBoard):
    """The preview grid: a header row, then per sample the original (captioned) and its draws.

    The whole grid is one widget value: a render is one message, not one per changed cell (each
    of which the browser decodes and draws in turn). Cells are ``<img>`` with classes
    ``wb-preview-image`` and ``wb-original`` or ``wb-draw``; captions are ``wb-caption``. The
    grid itself is ``wb-grid``. ``images`` and ``captions`` hold what is drawn.
    """

    def __init__(self, rows: int, draws: int, size: int) -> None:
        super().__init__(layout=W.Layout(width="100%"))
        self.add_class("wb-grid")
        self.draws, self.size = draws, size
        self.images: list[list[_Cell]] = [[_Cell() for _ in range(1 + draws)] for _ in range(rows)]
        self.captions: list[_Caption] = [_Caption() for _ in range(rows)]
        #: The timing line above the cells (class ``wb-timing``), HTML: drawn with them.
        self.timing = _Caption()
        self._draw()

    @property
    def preview_bytes(self) -> list[list[bytes]]:
        """Encoded bytes of every cell, row by row (original first)."""
        return [[img.value for img in row] for row in self.images]

    def show(
        self, cells: list[list[tuple[bytes, str]]], captions: list[str], timing: str = ""
    ) -> None:
        """Set the encoded ``(bytes, format)`` cells, the captions (escaped here) and the timing
        line (HTML); the grid is sent once, and only when something changed."""
        self.timing.value = timing
        for r, row in enumerate(cells):
            for k, (data, fmt) in enumerate(row):
                self.images[r][k] = _Cell(data, fmt)
            caption = escape(captions[r])
            # Wrapped, never cut: ids and paths are long and differ at the end.
            self.captions[r].value = (
                f'<div class="wb-caption" title="{caption}" style="font-size:11px;'
                f'line-height:1.25;overflow-wrap:anywhere">{caption}</div>'
            )
        self._draw()

    def _draw(self) -> None:
        head = "".join(
            f"<div><b>{'original' if k == 0 else f'draw {k}'}</b></div>"
            for k in range(1 + self.draws)
        )
        cells = []
        for row, caption in zip(self.images, self.captions, strict=True):
            for k, cell in enumerate(row):
                kind = "wb-original" if k == 0 else "wb-draw"
                big = _enlarged(cell.value, cell.format, self.size)
                crisp = ";height:auto;image-rendering:pixelated" if big else ""
                img = (
                    f'<img class="wb-preview-image {kind}"{big} '
                    f'style="max-width:100%;display:block{crisp}" '
                    f'src="data:image/{cell.format};base64,'
                    f'{base64.b64encode(cell.value).decode("ascii")}">'
                    if cell.value
                    else ""
                )
                cells.append(f"<div>{img}{caption.value}</div>" if k == 0 else f"<div>{img}</div>")
        html = (
            f'<div class="wb-timing" style="min-height:1.4em">{self.timing.value}</div>'
            f'<div style="display:grid;grid-template-columns:repeat({1 + self.draws},'
            f' minmax(0, {self.size}px));gap:4px;align-items:start">{head}{"".join(cells)}</div>'
        )
        if self.html != html:
            self.html = html


class _PreviewRendering:
    """The tuner's render loop: renders run one at a time on the tuner's own thread, and a
    request still waiting when a newer one arrives is dropped (``Latest``).

    A mixin of ``AugmentTuner``, which owns what a render reads (under ``_state_lock``):
    ``pipeline``, ``rows_keys``, ``seed``, ``_isolated``, ``_uids``, ``backend``, ``size``,
    ``n_draws``, ``_samples``, ``_memos``, ``grid``, ``timing``, ``_errors`` (shown by
    ``_show_errors``), ``live``, ``_closed`` and ``_render_callbacks``.
    """

    _renderer: Latest
    _replay: Replay | None = None  # the last render's (its transforms are reused)
    last_render: dict[str, Any]
    render_count: int
    _generation: int
    _render_callbacks: list[Callable[[dict], None]]

    def _start_renderer(self) -> None:
        self._renderer = Latest(
            "wb-augment-render", superseded=_SUPERSEDED, initializer=_init_render_thread
        )

    def render(self) -> dict[str, Any]:
        """Render the grid now from the current state and return ``last_render``.

        Synchronous: the work runs on the render thread (after any render already running
        there) and this call waits for it. Errors are shown in the banner; the previous images
        stay. A closed tuner renders nothing.
        """
        if self._closed:
            return self.last_render
        if getattr(_ON_RENDER_THREAD, "active", False):
            self._render_now()
        elif self._renderer.submit(self._render_now).result() is _SUPERSEDED:
            self._renderer.wait()  # a newer request renders the latest state: wait for it
        return self.last_render

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until background rendering is idle; ``False`` on timeout."""
        return self._renderer.wait(timeout)

    def _request_render(self, sync: bool = False) -> None:
        """Ask for a render of the latest state (a waiting request is replaced by this one)."""
        with self._state_lock:
            self._generation += 1
        if self._closed:
            return
        if sync or not self.live:
            self.render()
        else:
            self._renderer.submit(self._render_now)

    @guarded
    def _render_now(self) -> None:
        with self._state_lock:
            generation = self._generation
            keys = list(self.rows_keys)
            seed = self.seed
            if self._isolated is not None and self._isolated in self._uids:
                i = self._uids.index(self._isolated)
                pipe, step_keys = self.pipeline.only(i), [self._isolated]
            else:
                pipe, step_keys = self.pipeline, list(self._uids)
            last = self._replay
            if (
                last is not None
                and last.backend == self.backend
                and last.step_keys == step_keys
                and last.pipeline == pipe
            ):
                replay = last  # shuffle, reroll: the same transforms
            else:
                replay = Replay(pipe, step_keys=step_keys, backend=self.backend, like=last)
            reduce = not pipe.pixel_scale_steps
        t0 = time.perf_counter()
        seeds = variant_seeds(seed, len(keys) * self.n_draws)
        try:
            cells, shape, memos = self._samples.cells(
                keys, replay, seeds, self.n_draws, reduce, self.size, self.backend, self._memos
            )
        except ParameterError as e:
            self._errors["render"] = f"preview: {e}"
            self._show_errors()
            return
        self._memos = memos  # only this render's cells: memory stays rows x draws x steps
        self._replay = replay
        ms = (time.perf_counter() - t0) * 1000
        self.render_count += 1
        self.last_render = {
            "ms": ms,
            "reduced": reduce,
            "shape": shape,
            "generation": generation,
            "seed": seed,
        }
        how = (
            f"working copy ≤ {self.size} px"
            if reduce
            else "full resolution: "
            + escape(", ".join(dict.fromkeys(pipe.pixel_scale_steps)))
            + " work in pixels"
        )
        # the timing line is part of the grid: a render reaches the browser as one message
        self.grid.show(
            cells,
            [self._samples.source(key).caption for key in keys],
            f'<span style="font-size:11px;color:#555">last render {ms:.0f} ms · {how}</span>',
        )
        if self._errors.pop("render", None) is not None:
            self._show_errors()
        for fn in self._render_callbacks:
            fn(self.last_render)

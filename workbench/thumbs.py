"""Thumbnails: rendered once, kept in a memory LRU and (in a Workspace) on disk.

Cache keys are the content hash of the decoded pixels plus the size, so a thumbnail survives
renames and moving the dataset root, and a file whose pixels changed gets a new one.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, ImageDraw

from workbench.fsutil import atomic_write
from workbench.io import decode


class Thumb(NamedTuple):
    """Encoded image bytes and their format (``"png"`` or ``"jpeg"``), ready for a widget."""

    data: bytes
    format: str

    def data_uri(self) -> str:
        """The image as a ``data:`` URI, for ``<img src=...>`` in HTML."""
        return f"data:image/{self.format};base64,{base64.b64encode(self.data).decode('ascii')}"


def render(im: Image.Image, size: int) -> Thumb:
    """Fit ``im`` into a ``size``×``size`` box and encode it.

    Small images (digits, 28 px silhouettes) are enlarged with nearest-neighbour so their pixels
    stay crisp and are encoded as PNG; larger ones are reduced with a good filter and encoded as
    JPEG, which is 5-10x smaller for photos.
    """
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    scale = size / max(im.width, im.height)
    w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
    buf = io.BytesIO()
    if scale >= 1:
        im.resize((w, h), Image.Resampling.NEAREST).save(buf, "PNG", compress_level=1)
        return Thumb(buf.getvalue(), "png")
    im = im.copy()
    im.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    im.save(buf, "JPEG", quality=88)
    return Thumb(buf.getvalue(), "jpeg")


def placeholder(size: int, text: str = "") -> Thumb:
    """A grey tile with a red cross, shown for files that could not be decoded."""
    im = Image.new("RGB", (size, size), (236, 236, 236))
    d = ImageDraw.Draw(im)
    m = size // 4
    d.line((m, m, size - m, size - m), fill=(200, 40, 40), width=max(2, size // 24))
    d.line((m, size - m, size - m, m), fill=(200, 40, 40), width=max(2, size // 24))
    if text:
        d.text((4, size - 14), text[: size // 6], fill=(90, 90, 90))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return Thumb(buf.getvalue(), "png")


def __getattr__(name: str) -> Any:
    # ``escape`` lives with the views now (HTML is theirs); the old import path keeps working,
    # lazily, so importing this core module never imports the widget layer.
    if name == "escape":
        from workbench.views._common import escape

        return escape
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ThumbnailCache:
    """Memory LRU in front of an optional on-disk cache folder.

    Parameters
    ----------
    folder
        Where encoded thumbnails are kept between sessions; ``None`` keeps them in memory only.
    max_items
        Size of the memory LRU.
    """

    def __init__(self, folder: str | os.PathLike | None = None, max_items: int = 2048) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.max_items = max_items
        self._mem: OrderedDict[tuple[str, int], Thumb] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0

    def _disk_path(self, key: str, size: int, fmt: str) -> Path:
        assert self.folder is not None
        return self.folder / str(size) / key[:2] / f"{key}.{fmt}"

    def in_memory(self, key: str, size: int) -> bool:
        """Whether :meth:`get` would answer from memory (no file read, no decode)."""
        return (key, size) in self._mem

    def get(self, key: str, size: int, path: str | os.PathLike) -> Thumb:
        """Return the thumbnail of the file at ``path`` whose content hash is ``key``."""
        with self._lock:
            hit = self._mem.get((key, size))
            if hit is not None:
                self._mem.move_to_end((key, size))
                self.hits += 1
                return hit
        thumb = self._from_disk(key, size)
        if thumb is None:
            self.misses += 1
            thumb = render(decode(path), size)
            self._to_disk(key, size, thumb)
        else:
            self.disk_hits += 1
        with self._lock:
            self._mem[(key, size)] = thumb
            while len(self._mem) > self.max_items:
                self._mem.popitem(last=False)
        return thumb

    def _from_disk(self, key: str, size: int) -> Thumb | None:
        if self.folder is None:
            return None
        for fmt in ("png", "jpeg"):
            p = self._disk_path(key, size, fmt)
            try:
                return Thumb(p.read_bytes(), fmt)
            except OSError:
                continue
        return None

    def _to_disk(self, key: str, size: int, thumb: Thumb) -> None:
        if self.folder is None:
            return
        p = self._disk_path(key, size, thumb.format)
        with contextlib.suppress(OSError):  # a read-only or full disk costs speed, not the view
            atomic_write(p, thumb.data, fsync=False)

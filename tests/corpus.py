"""A generated corpus of good and bad image files, made fresh for each test that asks."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _rng_image(seed: int, size=(40, 30), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "L":
        return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring a huge image (the pixel data is tiny and wrong)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def make_corpus(root: Path) -> dict[str, str]:
    """Write the corpus under ``root``; return {relative id: expected status}."""
    expect: dict[str, str] = {}

    def put(rel: str, data: bytes, status: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        expect[rel] = status

    rgb = _rng_image(0)
    put("good/plain.png", encode(rgb, "PNG"), "ok")
    put("good/plain.jpg", encode(rgb, "JPEG", quality=90), "ok")
    put("good/plain.bmp", encode(rgb, "BMP"), "ok")
    put("good/plain.webp", encode(rgb, "WEBP", lossless=True), "ok")
    put("good/plain.tiff", encode(rgb, "TIFF"), "ok")
    frames = [_rng_image(i, mode="L").convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    put("good/anim.gif", buf.getvalue(), "ok")
    a16 = (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16)
    put("good/sixteen.png", encode(Image.fromarray(a16), "PNG"), "ok")
    put("good/sixteen.tif", encode(Image.fromarray(a16), "TIFF"), "ok")
    put("good/cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG"), "ok")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    put("good/palette_transparent.png", encode(pal, "PNG", transparency=0), "ok")
    la = Image.merge("LA", [rgb.convert("L"), Image.new("L", rgb.size, 128)])
    put("good/gray_alpha.png", encode(la, "PNG"), "ok")
    put("good/rgba.png", encode(rgb.convert("RGBA"), "PNG"), "ok")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    put("good/exif_rotated.jpg", encode(rgb, "JPEG", exif=exif.tobytes()), "ok")
    put("good/ñandú ü/猫 with space.png", encode(rgb, "PNG"), "ok")

    jpg = encode(_rng_image(1, (200, 150)), "JPEG", quality=95)
    put("bad/truncated.jpg", jpg[: len(jpg) // 2], "corrupt")
    png = encode(_rng_image(2, (200, 150)), "PNG")
    put("bad/truncated.png", png[: len(png) // 2], "corrupt")
    put("bad/zero.png", b"", "empty")
    put("bad/text.jpg", b"this is not an image, just some text\n" * 4, "not_image")
    put("bad/bomb.png", bomb_png(), "too_large")
    os.symlink("loop_b.png", root / "bad" / "loop_a.png")
    os.symlink("loop_a.png", root / "bad" / "loop_b.png")
    expect["bad/loop_a.png"] = "unreadable"
    expect["bad/loop_b.png"] = "unreadable"
    os.symlink("nowhere.png", root / "bad" / "dangling.png")
    expect["bad/dangling.png"] = "missing"
    os.symlink("..", root / "bad" / "dir_loop")  # a folder loop the walk must cut
    (root / "notes.txt").write_text("not scanned: not an image ending")
    (root / ".hidden.png").write_bytes(png)  # hidden files are skipped
    return expect

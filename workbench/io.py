"""Safe image decoding.

Every image the workbench reads goes through :func:`decode` (pixels) or :func:`probe`
(metadata and content hash for the catalog scan). Both turn every way a file can be bad into a
:class:`~workbench.errors.DecodeError` with a ``status`` and a sentence a person can act on; the
scan turns those into catalog rows, so a bad file never stops a scan.

Modes after decoding (the documented set)
-----------------------------------------
=============================  ==========================================================
source mode                    decoded mode
=============================  ==========================================================
``1``, ``L``, ``LA``           ``L`` (8-bit gray; alpha composited on ``background``)
``RGB(A)``, ``P``, ``CMYK``…   ``RGB`` (8-bit colour; alpha composited on ``background``)
``I;16*``, ``I``               ``I;16`` with ``keep_16bit=True``, else ``L`` (value >> 8)
``F`` (float)                  ``L`` by min–max stretch (``F`` kept with ``keep_16bit=True``)
=============================  ==========================================================

EXIF orientation is applied before anything else, so width/height are as a person sees them.
Multi-frame files (GIF, TIFF) give their first frame. 16-bit RGB PNGs are reduced to 8 bits by
Pillow itself; their ``bits`` column says 8.

RGB and gray JPEGs up to 1 MiB are decoded by libjpeg-turbo (simplejpeg) into one array, the
same library and settings as Pillow's decoder (the same pixels, tested); the scan and the
Normalizer take a plain JPEG's array as it is, without a Pillow image (:func:`_decode_jpeg`).
8-bit RGB and gray PNGs up to 1 MiB whose chunks cannot change what Pillow makes of them are
decoded by libspng (pyspng) into one array, Pillow's pixels exactly (:func:`_decode_png`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyspng
import simplejpeg
import xxhash
from PIL import Image, ImageOps, UnidentifiedImageError

from workbench.errors import DecodeError
from workbench.parallel import once_in_pool_worker

#: Default decompression-bomb limit: 179 megapixels, Pillow's own warning threshold.
DEFAULT_MAX_PIXELS = 178_956_970

#: File endings the folder scan treats as images (case-insensitive).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif", ".ppm",
     ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k"}
)  # fmt: skip

#: Every ``status`` value a catalog row can have.
STATUSES = ("ok", "missing", "unreadable", "empty", "not_image", "corrupt", "too_large")

_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def _channels(mode: str) -> int:
    return Image.getmodebands(mode)


@dataclass(frozen=True)
class Probe:
    """What the scan records about one file."""

    width: int
    height: int
    mode: str
    channels: int
    bits: int
    format: str
    hash: str
    bytes: int
    phash: int | None = None
    dhash: int | None = None


#: Files up to this size are read with one system call and decoded from memory: Pillow's own
#: open of a path reads through a buffered file in many small reads. Measured per file (CPU
#: µs, interleaved): 28 px PNG 30.6 against 36.8, 256 px JPEG 495 against 510. Larger files
#: are opened by path, so no more than this is ever held besides the pixels...
_READ_WHOLE_UP_TO = 1 << 20
#: ... except a JPEG up to this size read for its pixels alone (the scan, the Normalizer): the
#: direct decode into one array (:func:`_decode_jpeg`) needs its bytes, and takes 39.5 ms of a
#: 12-megapixel camera JPEG (2.6 MB) against Pillow's 63.3.
_READ_JPEG_UP_TO = 64 << 20

# O_NONBLOCK: opening a pipe with no writer returns at once (then fstat rejects it); it does
# nothing to reads of a regular file.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_regular(path: str, jpeg_whole: bool = False) -> tuple[bytes | None, int]:
    """The bytes of a small regular file (``None`` above :data:`_READ_WHOLE_UP_TO`, or with
    ``jpeg_whole`` above :data:`_READ_JPEG_UP_TO` for a JPEG) and its size, or a DecodeError
    for missing, looping, unreadable, special or empty files."""
    try:
        fd = os.open(path, _READ_FLAGS)  # follows symlinks; ELOOP for a symlink loop
    except FileNotFoundError:
        if os.path.islink(path):
            raise DecodeError(
                "broken symbolic link: its target does not exist", "missing"
            ) from None
        raise DecodeError("file not found", "missing") from None
    except PermissionError:
        raise DecodeError(
            "permission denied: the file cannot be read by this user", "unreadable"
        ) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DecodeError(
                "symbolic link loop: the link points back at itself", "unreadable"
            ) from None
        raise DecodeError(f"cannot read file: {e.strerror}", "unreadable") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a folder" if stat.S_ISDIR(st.st_mode)
                else "a special file (pipe, socket or device)"
            )  # fmt: skip
            raise DecodeError(f"not a regular file: it is {kind}", "unreadable")
        size = st.st_size
        if size == 0:
            raise DecodeError("empty file (0 bytes)", "empty")
        if size > _READ_WHOLE_UP_TO and not (
            jpeg_whole and size <= _READ_JPEG_UP_TO and os.pread(fd, 3, 0) == _JPEG_START
        ):
            return None, size
        data = os.read(fd, size)
        while len(data) < size:  # a short read (a network file system): read on to the end
            more = os.read(fd, size - len(data))
            if not more:
                break  # shrunk since fstat: the decoder reports it truncated
            data += more
        return data, size
    except OSError as e:
        raise DecodeError(f"cannot read file: {e.strerror or e}", "unreadable") from None
    finally:
        os.close(fd)


def _open(path: str, max_pixels: int | None) -> Image.Image:
    """Open lazily (header only), enforce the pixel limit, then load the pixels."""
    im, direct, _ = _open_sized(path, max_pixels)
    return im if direct is None else _as_image(im, direct)


# Set while a quiet_bomb_warnings() context is open in this thread (or, in a pool worker
# process of ours, for good): an open then skips its own warnings context, which costs ~12 µs,
# 2 % of scanning a 256 px JPEG.
_BOMB_QUIET = threading.local()


@contextlib.contextmanager
def quiet_bomb_warnings() -> Iterator[None]:
    """Pillow's decompression-bomb warning filtered once around many opens in this thread.

    Our own ``max_pixels`` limit replaces Pillow's (whose threshold is process-wide); the
    warnings context is entered once here instead of once per file.
    """
    if getattr(_BOMB_QUIET, "active", False):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _BOMB_QUIET.active = True
        try:
            yield
        finally:
            _BOMB_QUIET.active = False


def _quiet_for_good() -> None:
    """In a pool worker process, filter the warning once and for all."""
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    _BOMB_QUIET.active = True


class _PlainFile:
    """Stands in for the Pillow image of a plain JPEG or PNG (:func:`_plain_jpeg`,
    :func:`_plain_png`), whose header Pillow never parsed: its format, and no ``info`` (nothing
    in it could turn the pixels)."""

    __slots__ = ("format",)

    def __init__(self, format: str) -> None:
        self.format = format

    @property
    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def _open_sized(
    path: str, max_pixels: int | None, plain: bool = False
) -> tuple[Image.Image | _PlainFile, np.ndarray | None, int]:
    """The opened image, the pixels decoded directly (see :func:`_decode_jpeg` and
    :func:`_decode_png`; the image is then not loaded) or ``None`` (the image is loaded), and
    the file's size. With ``plain``, a plain JPEG or PNG comes back as a :class:`_PlainFile`,
    its pixels, its size: no Pillow image at all, for callers that need nothing but the pixels."""
    once_in_pool_worker("bomb-warning", _quiet_for_good)
    data, size = _read_regular(path, jpeg_whole=plain)
    if plain and data is not None:
        if (a := _plain_jpeg(data, max_pixels)) is not None:
            return _PlainFile("JPEG"), a, size
        if (a := _plain_png(data, max_pixels)) is not None:
            return _PlainFile("PNG"), a, size
    # a PNG that was not plain is not one _decode_png decodes either: no second chunk walk
    # (nor a second libspng pass over damaged data)
    if getattr(_BOMB_QUIET, "active", False):
        return _open_sized_quietly(path, max_pixels, data, size, png_tried=plain)
    with quiet_bomb_warnings():  # one context for open and load
        return _open_sized_quietly(path, max_pixels, data, size, png_tried=plain)


def _open_sized_quietly(
    path: str, max_pixels: int | None, data: bytes | None, size: int, png_tried: bool
) -> tuple[Image.Image, np.ndarray | None, int]:
    try:
        im = Image.open(path if data is None else io.BytesIO(data))
    except UnidentifiedImageError:
        raise DecodeError(
            "not an image: the file's bytes are not in any format Pillow can read "
            "(check the file ending matches its content)",
            "not_image",
        ) from None
    except Image.DecompressionBombError as e:
        raise DecodeError(f"{e} Raise max_pixels to read it.", "too_large") from None
    except PermissionError:
        raise DecodeError(
            "permission denied: the file cannot be read by this user", "unreadable"
        ) from None
    except OSError as e:
        raise DecodeError(f"cannot open image: {e}", "corrupt") from None
    w, h = im.size
    if max_pixels is not None and w * h > max_pixels:
        im.close()
        raise DecodeError(
            f"image is {w}×{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(a possible decompression bomb); pass a larger max_pixels to read it",
            "too_large",
        )
    direct = None
    if data is not None and im.format == "JPEG" and im.mode in _JPEG_MODES:
        direct = _decode_jpeg(data, _JPEG_MODES[im.mode])
    elif data is not None and im.format == "PNG" and not png_tried:
        direct = _decode_png(data)
    if direct is not None and direct.shape[1::-1] == im.size:
        return im, direct, size
    try:
        im.load()
    except Image.DecompressionBombError as e:
        raise DecodeError(f"{e} Raise max_pixels to read it.", "too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg:
            msg = f"file is truncated: {msg}"
        raise DecodeError(f"cannot decode image data ({msg})", "corrupt") from None
    return im, None, size


_JPEG_START = b"\xff\xd8\xff"
#: Pillow's JPEG modes that :func:`_decode_jpeg` decodes (simplejpeg's colour space for each).
_JPEG_MODES = {"RGB": "RGB", "L": "GRAY"}
#: A JPEG's colour space (libjpeg-turbo's name, from the file's header) -> the mode Pillow
#: opens it in: three components become RGB, one gray; CMYK and YCCK are left to Pillow.
_JPEG_SPACES = {"YCbCr": "RGB", "RGB": "RGB", "Gray": "L"}


def _decode_jpeg(data: bytes, colorspace: str) -> np.ndarray | None:
    """A JPEG's pixels decoded by libjpeg-turbo (simplejpeg) straight into one
    ``(height, width, channels)`` uint8 array; ``None`` (Pillow decodes it) for any file libjpeg
    warns about, so damaged files keep Pillow's verdict and message.

    Same library, same settings (accurate integer DCT, smooth upsampling) as Pillow's decoder,
    so the same pixels (a test compares them over JPEGs of every subsampling, progressive,
    restart-marker, grayscale, EXIF-rotated and multi-picture kind). Why not Pillow's decoder:
    it copies each row out of a scratch buffer just written by libjpeg, and that copy runs at
    two speeds set by where the buffer lands in the heap (slow whenever its address was 32 mod
    64 in the layouts tried): a 256 px JPEG took 258 or 395 µs through Pillow, 208 µs here in
    every layout (``benchmarks/bench_scan.py`` prints both bare loops).
    """
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True)
    except (ValueError, RuntimeError):
        return None


def _plain_jpeg(data: bytes, max_pixels: int | None) -> np.ndarray | None:
    """The pixels of a plain JPEG, without Pillow's header parse (about 20 µs, 7 % of a 256 px
    JPEG's decode): one that Pillow opens as RGB or L, that has no APP1 block (EXIF or XMP:
    a possible rotation) and is not a multi-picture file (MPO); its size within ``max_pixels``
    and Pillow's own bomb limit. ``None`` for anything else, which goes through Pillow."""
    if data[:3] != _JPEG_START or not _no_rotation_or_frames(data):
        return None
    try:
        h, w, space, _ = simplejpeg.decode_jpeg_header(data)
    except (ValueError, RuntimeError):
        return None
    if space not in _JPEG_SPACES or not _within_limits(w * h, max_pixels):
        return None
    return _decode_jpeg(data, _JPEG_MODES[_JPEG_SPACES[space]])


def _within_limits(pixels: int, max_pixels: int | None) -> bool:
    """Within ``max_pixels`` and Pillow's own bomb limit (else Pillow gives the verdict)."""
    bomb = Image.MAX_IMAGE_PIXELS
    return (max_pixels is None or pixels <= max_pixels) and (bomb is None or pixels <= 2 * bomb)


def _no_rotation_or_frames(data: bytes) -> bool:
    """Walks a JPEG's marker segments up to the start of the scan: False at an APP1 segment
    (where EXIF and XMP live) or an APP2 "MPF" one (a multi-picture file) or a malformed
    segment list (Pillow then decides)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: no more header segments
            return True
        if marker == 0xE1 or (marker == 0xE2 and data[i + 4 : i + 8] == b"MPF\x00"):
            return False
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return False


_PNG_START = b"\x89PNG\r\n\x1a\n"
#: PNG chunks that leave Pillow's pixels, mode and ``info`` as libspng's decode leaves them:
#: colour management and physical size, which Pillow records but never applies. Anything else
#: (``tRNS``: transparency; ``eXIf`` and text chunks: an orientation, possibly after the pixels,
#: which Pillow finds only when it loads them; ``acTL``: animation; a private chunk) goes to
#: Pillow.
_PNG_PLAIN_CHUNKS = frozenset(
    {b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"cHRM", b"iCCP", b"pHYs", b"sBIT", b"tIME"}
)


def _decode_png(data: bytes) -> np.ndarray | None:
    """An 8-bit RGB or gray PNG's pixels decoded by libspng (pyspng) into one ``(height, width,
    channels)`` uint8 array; ``None`` (Pillow decodes it) for any other kind of PNG, one with a
    chunk outside :data:`_PNG_PLAIN_CHUNKS`, a malformed chunk list or data libspng refuses,
    so damaged files keep Pillow's verdict and message.

    Why not Pillow's decoder: libspng inflates and unfilters the rows in about 60 % of Pillow's
    time (a 200 px photo crop: 0.53 against 0.90 ms a file; OpenCV's libpng 0.79), for the same
    pixels (tested over every row filter, interlacing, gray and colour).
    """
    if data[:8] != _PNG_START or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    if data[24] != 8 or data[25] not in (0, 2):
        return None  # the IHDR's bit depth and colour type: 8-bit gray or RGB only
    i, n = 8, len(data)
    while i + 8 <= n:
        kind = data[i + 4 : i + 8]
        if kind not in _PNG_PLAIN_CHUNKS:
            return None
        if kind == b"IEND":
            break
        i += 12 + int.from_bytes(data[i : i + 4], "big")
    else:
        return None  # no IEND: a truncated file, Pillow's verdict
    try:
        a = pyspng.load(data)
    except (RuntimeError, ValueError):
        return None
    return a if a.ndim == 3 else a[..., None]


def _plain_png(data: bytes, max_pixels: int | None) -> np.ndarray | None:
    """The pixels of a PNG that :func:`_decode_png` decodes, without Pillow's header parse
    (about 40 µs a file with Pillow's Python around it), its size within ``max_pixels`` and
    Pillow's bomb limit; ``None`` for anything else, which goes through Pillow."""
    if data[:8] != _PNG_START or len(data) < 33:
        return None
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return _decode_png(data) if _within_limits(w * h, max_pixels) else None


def _as_image(im: Image.Image | _PlainFile, a: np.ndarray) -> Image.Image:
    """The directly decoded pixels ``a`` of ``im`` as a Pillow image with its format and info."""
    out = Image.fromarray(a if a.shape[2] == 3 else a[..., 0], "RGB" if a.shape[2] == 3 else "L")
    out.info, out.format = im.info, im.format
    im.close()
    return out


#: Where Pillow's ``getexif`` looks for an orientation (besides a TIFF's own tags).
_ORIENTATION_SOURCES = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


def _may_be_rotated(im: Image.Image | _PlainFile) -> bool:
    """False when ``im`` has no EXIF or XMP block: getexif would find no orientation (checking
    so instead of calling it saves about 1 % of a small JPEG's decode)."""
    return hasattr(im, "tag_v2") or any(k in im.info for k in _ORIENTATION_SOURCES)


def _orientation(im: Image.Image | _PlainFile) -> int:
    """The EXIF orientation :func:`_oriented` applies to ``im``: 1 (as stored) without an EXIF
    or XMP block (a plain file has none), or for a block that cannot be read."""
    if not _may_be_rotated(im):
        return 1
    try:
        o = im.getexif().get(0x0112, 1)  # where ImageOps.exif_transpose looks
    except Exception:  # _oriented keeps the pixels of a broken block as they are
        return 1
    return o if o in _TURNS else 1


#: EXIF orientation -> the same turn as ImageOps.exif_transpose's, on an (h, w, c) array.
_TURNS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: a[::-1].transpose(1, 0, 2),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: a[:, ::-1].transpose(1, 0, 2),
}


def _oriented(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation in place (no copy when there is nothing to do)."""
    if not _may_be_rotated(im):
        return im
    with contextlib.suppress(Exception):  # a broken EXIF block must not hide good pixels
        ImageOps.exif_transpose(im, in_place=True)
    return im


def _content_hasher(mode: str, width: int, height: int) -> Any:
    """The content hash's xxh3-128 state before the pixels: mode and size come first."""
    return xxhash.xxh3_128(f"{mode}:{width}x{height}:".encode())


def _pixel_hash(im: Image.Image) -> str:
    """128-bit xxh3 of mode, size and raw pixels: equal for equal decoded content in any format."""
    h = _content_hasher(im.mode, im.width, im.height)
    # Image.tobytes() without its chunking and join: the raw encoder in one call, same bytes.
    encoder = Image._getencoder(im.mode, "raw", im.mode)
    encoder.setimage(im.im, (0, 0, *im.size))
    while True:
        # 64 kB pieces, not one of the image's size: 3-5 % less time per 256 px JPEG scanned,
        # measured (a buffer that size is reused; a larger one means fresh pages per image).
        _, status, data = encoder.encode(65536)
        h.update(data)
        if status:
            break
    return h.hexdigest()


def probe(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    perceptual_hash: bool = False,
) -> Probe:
    """Read a file's pixels once and return its metadata and a content hash.

    ``perceptual_hash=True`` also computes the pHash and dHash of the decoded image
    (:func:`workbench.hashindex.perceptual_hashes`) from the same decode.

    Raises
    ------
    DecodeError
        With ``status`` one of :data:`STATUSES` (never ``"ok"``) and a readable message.
    """
    f = _fields(os.fspath(path), max_pixels, perceptual_hash)
    return Probe(
        width=f[0],
        height=f[1],
        mode=f[2],
        channels=f[3],
        bits=f[4],
        bytes=f[5],
        hash=f[6],
        format=f[7],
        phash=f[8],
        dhash=f[9],
    )


def _fields(path: str, max_pixels: int | None, perceptual_hash: bool) -> tuple:
    """Probe's fields as a plain tuple in scan-row order (width, height, mode, channels, bits,
    bytes, hash, format, phash, dhash): the scan builds its row from this without a Probe object
    (the frozen dataclass costs about 3 µs a file, 0.5 % of a small JPEG's scan)."""
    im, direct, size = _open_sized(path, max_pixels, plain=True)
    if direct is not None and not perceptual_hash:  # a JPEG or PNG decoded into one array: it
        # is all it takes, turned as its EXIF orientation says (a copy only then)
        upright = np.ascontiguousarray(_TURNS[_orientation(im)](direct))
        fmt = im.format
        im.close()
        (h, w, c), mode = upright.shape, "RGB" if upright.shape[2] == 3 else "L"
        digest = _content_hasher(mode, w, h)
        digest.update(upright)  # the bytes _pixel_hash hashes: packed rows, no Pillow image
        return (w, h, mode, c, 8, size, digest.hexdigest(), fmt, None, None)
    if direct is not None:
        im = _as_image(im, direct)
    fmt = im.format or ""
    mode = im.mode
    im = _oriented(im)
    # Palette indices mean nothing on their own: hash the colours.
    colours = im.convert("RGBA" if "transparency" in im.info else "RGB") if mode == "P" else im
    content = _pixel_hash(colours)  # first, while the decoded pixels are in the CPU cache
    if not perceptual_hash:
        return (im.width, im.height, mode, _channels(mode), _BITS.get(mode, 8), size, content,
                fmt, None, None)  # fmt: skip
    from workbench.hashindex import perceptual_hashes

    ph, dh = perceptual_hashes(normalize_mode(colours))  # exactly what decode() gives
    return (im.width, im.height, mode, _channels(mode), _BITS.get(mode, 8), size, content, fmt,
            ph, dh)  # fmt: skip


def scan_file(
    path: str, max_pixels: int | None = DEFAULT_MAX_PIXELS, perceptual_hash: bool = False
) -> tuple:
    """One catalog row's scanned fields; never raises for a bad file (the error is in the row).

    Returns ``(width, height, mode, channels, bits, bytes, hash, format, status, error)``, and
    ``phash, dhash`` after them with ``perceptual_hash=True`` (0, 0 for a bad file).
    """
    try:
        f = _fields(os.fspath(path), max_pixels, perceptual_hash)
    except Exception as e:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        if isinstance(e, DecodeError):
            row: tuple = (0, 0, "", 0, 0, size, "", "", e.status, str(e))
        else:  # a decoder bug must cost one row, not the scan
            row = (0, 0, "", 0, 0, size, "", "", "corrupt", f"{type(e).__name__}: {e}")
        return (*row, 0, 0) if perceptual_hash else row
    row = (*f[:8], "ok", "")
    return (*row, f[8], f[9]) if perceptual_hash else row


def normalize_mode(
    im: Image.Image, *, keep_16bit: bool = False, background: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """Convert any Pillow mode to the documented set (``L``, ``RGB``; ``I;16``/``F`` on request)."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode == "I":
        if mode == "I;16" and keep_16bit:
            return im  # already native little-endian uint16: no copy (a third of a 16-bit decode)
        a = np.asarray(im)
        if a.dtype != np.dtype("<u2"):  # I (int32), big-endian I;16B: clip to 16 bits
            a = np.clip(a.astype(np.int64), 0, 65535).astype("<u2")
        if keep_16bit:
            return Image.fromarray(a)
        return Image.fromarray((a >> 8).astype(np.uint8))
    if mode == "F":
        if keep_16bit:
            return im
        a = np.asarray(im, dtype=np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        scaled = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).round().astype(np.uint8))
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        out = Image.alpha_composite(base, rgba).convert("RGB")
        return out.convert("L") if mode in ("LA", "La") else out
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...


def decode(
    path: str | os.PathLike,
    *,
    keep_16bit: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = (255, 255, 255),
    orient: bool = True,
) -> Image.Image:
    """Decode an image file to a Pillow image in one of the documented modes.

    Parameters
    ----------
    path
        The file.
    keep_16bit
        Keep 16-bit gray data as ``I;16`` (and float data as ``F``) instead of reducing to 8 bits.
    max_pixels
        Refuse images with more pixels than this (decompression-bomb guard); ``None`` disables.
    background
        Colour that transparent pixels are composited onto.
    orient
        Apply the EXIF orientation (default). ``False`` keeps the stored pixel order, for code
        that only needs the pixel values (statistics): a camera JPEG rotated by EXIF then
        decodes about 2x faster, because Pillow's 90-degree transpose costs about as much
        as the decode.

    Raises
    ------
    DecodeError
        If the file is missing, empty, not an image, truncated or too large.
    """
    im = _open(os.fspath(path), max_pixels)
    if orient:
        im = _oriented(im)
    return normalize_mode(im, keep_16bit=keep_16bit, background=background)


def decode_scanned(
    path: str | os.PathLike,
    *,
    sample_id: str | None = None,
    keep_16bit: bool = False,
    orient: bool = True,
) -> Image.Image:
    """:func:`decode` for a file that a catalog scan found readable: if it no longer is, the
    error names the file (and ``sample_id``, if given) and says to re-scan.

    Raises
    ------
    DecodeError
        With the status of the underlying failure (``"missing"`` for a file gone since).
    """
    return _scanned(path, sample_id, lambda p: decode(p, keep_16bit=keep_16bit, orient=orient))


def _pixels_scanned(path: str | os.PathLike, *, orient: bool = True) -> Image.Image | np.ndarray:
    """``decode_scanned(path, keep_16bit=True, orient=orient)``, except that a JPEG or PNG
    decoded directly (:func:`_decode_jpeg`, :func:`_decode_png`) comes back as its ``(height,
    width, channels)`` uint8 array (RGB, or gray with one channel), without the copy into a
    Pillow image."""

    def pixels(p: str) -> Image.Image | np.ndarray:
        im, direct, _ = _open_sized(p, DEFAULT_MAX_PIXELS, plain=True)
        if direct is not None and not (orient and _orientation(im) != 1):
            im.close()
            return direct
        im = im if direct is None else _as_image(im, direct)
        return normalize_mode(_oriented(im) if orient else im, keep_16bit=True)

    return _scanned(path, None, pixels)


def _scanned(path: str | os.PathLike, sample_id: str | None, read: Any) -> Any:
    """``read(path)``, its DecodeError reworded for a file the scan found readable."""
    try:
        return read(os.fspath(path))
    except DecodeError as e:
        which = os.fspath(path) + ("" if sample_id is None else f" (sample {sample_id!r})")
        raise DecodeError(
            f"{which}: {e}; the file changed since the catalog was made, re-scan the folder "
            "(Catalog.from_folder, from_csv or from_dataframe) to update it",
            e.status,
        ) from None


def to_array(im: Image.Image) -> np.ndarray:
    """Pixels as an HWC numpy array (HW for single-channel), dtype uint8 or uint16."""
    a = np.asarray(im)
    if im.mode == "I;16" and a.dtype != np.uint16:
        a = a.astype(np.uint16)
    return a

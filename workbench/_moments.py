"""Streaming moments of pixels: count, mean and sum of squared deviations per channel.

The machinery behind :class:`workbench.normalize.Normalizer` (and the gray statistics of
:mod:`workbench.clean`): :class:`Moments`, and the reduction of each input the Normalizer fits
on (:func:`catalog_moments` in worker processes, :func:`iterable_moments`,
:func:`table_moments`). :class:`Moments` and :func:`image_moments` are public through
:mod:`workbench.normalize`.

Guarantees
----------
Images are never held together. Each image (in blocks of about a million pixels) is reduced to
:class:`Moments` -- the pixel count and, per channel, the mean and the sum of squared
deviations ``M2`` -- in float64 with an exact two-pass computation inside the block. Moments
of blocks, images and chunks of a catalog are merged with the pairwise formula of Chan, Golub
and LeVeque (1979), which is exact in exact arithmetic and numerically stable in floating point,
so chunks can be computed anywhere (a local process pool, a Dask cluster) and merged in any
grouping. 8-bit images are reduced to exact integer sums ``Σx`` and ``Σx²`` per channel instead
(OpenCV's SIMD ``meanStdDev`` over Pillow's pixel memory or a JPEG's or PNG's decoded array,
no copy), summed over a chunk and turned into moments once; 16-bit images to exact integer sums
over float64 blocks. For a Catalog, workers decode the files themselves (the pixels of
``workbench.io.decode`` with ``keep_16bit=True``; RGB and gray JPEGs and PNGs as the decoders'
arrays) and send back one small :class:`Moments` per chunk (:func:`_moments_of_files`).

Moments of a different channel count or bit depth never merge: :class:`ParameterError` names
the image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from workbench import io as wb_io
from workbench.errors import ParameterError
from workbench.parallel import MIN_PARALLEL_ITEMS, pmap

if TYPE_CHECKING:  # pandas is imported where a table is reduced: workers decoding images skip it
    import pandas as pd

__all__ = ["Moments", "catalog_moments", "image_moments", "iterable_moments", "table_moments"]

#: Pixels reduced at once inside one image; bounds the float64 temporaries (24 MB for RGB).
_BLOCK_PIXELS = 1 << 20
#: 8/16-bit values summed at once in float64: 2**16 * 65535**2 < 2**53, so the sums are exact.
_EXACT_BLOCK = 1 << 16
#: Rows of a DataFrame reduced at once.
_BLOCK_ROWS = 1 << 16
#: Most images per chunk sent to a worker.
_MAX_CHUNK = 256

_SCALE_OF_DTYPE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_DTYPE_OF_SCALE = {255.0: np.dtype(np.uint8), 65535.0: np.dtype(np.uint16)}
#: Pillow modes whose pixels are 8-bit or 16-bit unsigned integers or floats per channel.
_PIL_MODES = frozenset(
    {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "F",
     "I;16", "I;16L", "I;16B", "I;16N"}
)  # fmt: skip


#: Most 8-bit values per channel whose sum of squares fits in int64 (1.4e14).
_MAX_COUNTED = (2**63 - 1) // 255**2


def _depth(scale: float | None) -> str:
    return {255.0: "8-bit", 65535.0: "16-bit", 1.0: "float"}.get(scale, f"scale {scale}")


# ---------------------------------------------------------------------------- moments


@dataclass(frozen=True, eq=False)
class Moments:
    """Count, mean and sum of squared deviations per channel: a mergeable partial result.

    Parameters
    ----------
    n
        Values per channel (pixels, or rows of a table).
    mean
        ``(C,)`` float64 mean of each channel, in the data's own units (0..255 for 8-bit).
    m2
        ``(C,)`` float64 sum of squared deviations from the mean, per channel.
    scale
        The maximum value of the data type the values came from (255, 65535, or 1 for floats);
        ``None`` when unknown. Moments with different scales do not merge.

    Examples
    --------
    >>> import numpy as np
    >>> a = Moments.from_values(np.array([[1.0], [2.0]]))
    >>> b = Moments.from_values(np.array([[3.0], [4.0], [5.0]]))
    >>> m = a.merge(b)
    >>> int(m.n), float(m.mean[0]), float(m.var()[0])
    (5, 3.0, 2.0)
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    scale: float | None = None

    @classmethod
    def empty(cls) -> Moments:
        """The neutral element of :meth:`merge` (no values, no channels yet)."""
        return cls(0, np.zeros(0), np.zeros(0), None)

    @classmethod
    def from_values(cls, values: np.ndarray, scale: float | None = None) -> Moments:
        """Moments of an ``(N, C)`` (or ``(N,)``) array of values, one column per channel.

        Reduced in blocks of rows: an exact two-pass computation in float64 inside each block,
        then merged, so the temporaries stay small for any ``N``.
        """
        values = np.asarray(values)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ParameterError(f"values must be (N, C), got shape {values.shape}")
        total = cls.empty()
        n, c = values.shape
        if c == 0:
            raise ParameterError("values have no channels")
        for start in range(0, n, _BLOCK_PIXELS):
            # A (C, b) C-ordered copy (never the caller's memory: it is modified in place), so
            # that each channel's reduction is a contiguous, pairwise sum.
            block = np.array(values[start : start + _BLOCK_PIXELS].T, dtype=np.float64, order="C")
            mean = block.mean(axis=1)
            block -= mean[:, None]
            np.square(block, out=block)
            total = total.merge(cls(block.shape[1], mean, block.sum(axis=1), scale))
        if total.n == 0:
            return cls(0, np.zeros(c), np.zeros(c), scale)
        return total

    @classmethod
    def from_image(cls, image: Any, *, where: str = "the image") -> Moments:
        """Moments of one image: a PIL image or an HW / HWC uint8, uint16 or float array."""
        if isinstance(image, Image.Image) and image.mode in ("L", "RGB"):
            return cls._from_8bit(image)
        pixels, scale = _pixels(image, where=where)
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        if channels == 0:
            raise ParameterError(f"{where} has no channels (shape {pixels.shape})")
        flat = pixels.reshape(-1, channels)
        if flat.dtype in (np.uint8, np.uint16) and 0 < len(flat) < 1 << 32:
            return cls._from_integers(flat, scale)
        return cls.from_values(flat, scale)

    @classmethod
    def _from_8bit(cls, image: Image.Image) -> Moments:
        """Exact moments of an 8-bit PIL image from integer sums computed in C without copying
        the pixels (:func:`_sums8`): cheaper than any numpy pass over them."""
        return cls.from_sums(*_sums8(image), 255.0)

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> Moments:
        """Exact moments of 8-bit values from their counts: ``(C * 256,)`` or ``(C, 256)``
        integers, as ``PIL.Image.histogram()`` gives them (summed over any number of images)."""
        h = np.asarray(counts, dtype=np.int64).reshape(-1, 256)
        n = int(h[0].sum())
        if n == 0:
            return cls.empty()
        v = np.arange(256, dtype=np.int64)
        if n > _MAX_COUNTED:
            raise ParameterError(f"{n:,} values per channel: too many to sum exactly in 64 bits")
        return cls.from_sums(n, h @ v, h @ (v * v), 255.0)  # exact: n * 255**2 < 2**63

    @classmethod
    def from_sums(
        cls, n: int, s1: Iterable[int], s2: Iterable[int], scale: float | None
    ) -> Moments:
        """Exact moments from integer sums ``s1 = Σx`` and ``s2 = Σx²`` per channel over ``n``
        values: no rounding until the final division, ``M2 = (n * s2 - s1**2) / n`` in Python
        integers."""
        if n == 0:
            return cls.empty()
        pairs = [(int(a), int(b)) for a, b in zip(s1, s2, strict=True)]
        mean = np.array([a / n for a, _ in pairs])
        m2 = np.array([(n * b - a * a) / n for a, b in pairs])
        return cls(n, mean, m2, scale)

    @classmethod
    def _from_integers(cls, flat: np.ndarray, scale: float | None) -> Moments:
        """Exact moments of 8/16-bit pixels from integer sums (:meth:`from_sums`), taken over
        float64 blocks of 65,536 values: every partial sum is an integer below 2**53, so the
        float sum and dot product are exact in any order. One reused 512 kB buffer instead of
        a squared uint32 copy of the image: the temporary memory does not grow with the image,
        and 16-bit images are a little faster than with squaring in uint32."""
        rows = np.ascontiguousarray(flat.T)  # one contiguous row per channel
        n = rows.shape[1]
        buf = np.empty(min(n, _EXACT_BLOCK))
        s1, s2 = [0] * len(rows), [0] * len(rows)
        for c, row in enumerate(rows):
            for i in range(0, n, _EXACT_BLOCK):
                block = buf[: min(_EXACT_BLOCK, n - i)]
                np.copyto(block, row[i : i + len(block)])
                s1[c] += int(block.sum())
                s2[c] += int(np.einsum("i,i->", block, block))  # no BLAS threads
        return cls.from_sums(n, s1, s2, scale)

    @property
    def channels(self) -> int:
        """Number of channels (0 for :meth:`empty`)."""
        return len(self.mean)

    def var(self) -> np.ndarray:
        """Population variance (``ddof=0``) per channel; NaN when there are no values."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.m2 / self.n if self.n else np.full(self.channels, np.nan)

    def std(self) -> np.ndarray:
        """Population standard deviation (``ddof=0``) per channel."""
        return np.sqrt(self.var())

    def merge(self, other: Moments) -> Moments:
        """Moments of the union of both sets of values (Chan, Golub and LeVeque's formula).

        ``n = na + nb``, ``mean = ma + d * nb / n``, ``M2 = M2a + M2b + d**2 * na * nb / n``
        with ``d = mb - ma``. Merging with :meth:`empty` returns the other side unchanged.
        """
        if other.n == 0 and other.channels == 0:
            return self
        if self.n == 0 and self.channels == 0:
            return other
        if self.channels != other.channels:
            raise ParameterError(
                f"cannot merge statistics of {self.channels}-channel and {other.channels}-channel "
                "images; convert every image to one mode first (e.g. image.convert('RGB'))"
            )
        if self.scale is not None and other.scale is not None and self.scale != other.scale:
            raise ParameterError(
                f"cannot merge statistics of {_depth(self.scale)} and {_depth(other.scale)} "
                "images; convert every image to one bit depth first"
            )
        scale = self.scale if self.scale is not None else other.scale
        n = self.n + other.n
        if n == 0:
            return Moments(0, self.mean, self.m2, scale)
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        return Moments(n, mean, m2, scale)

    @classmethod
    def merge_all(cls, parts: Iterable[Moments]) -> Moments:
        """Merge many partial results, left to right."""
        total = cls.empty()
        for part in parts:
            total = total.merge(part)
        return total

    def pooled(self) -> Moments:
        """One channel holding all values of all channels (for ``per_channel=False``)."""
        total = Moments.empty()
        for c in range(self.channels):
            total = total.merge(Moments(self.n, self.mean[c : c + 1], self.m2[c : c + 1]))
        return Moments(total.n, total.mean, total.m2, self.scale)


def image_moments(image: Any) -> Moments:
    """:class:`Moments` of one image (PIL image, or HW / HWC uint8, uint16 or float array)."""
    return Moments.from_image(image)


def _pixels(image: Any, *, where: str, max_ndim: int = 3) -> tuple[np.ndarray, float]:
    """The pixels of an image as an array, and the maximum value of its data type."""
    if isinstance(image, Image.Image):
        if image.mode not in _PIL_MODES:
            raise ParameterError(
                f"{where} has Pillow mode {image.mode!r}; convert it to 'L', 'RGB' or 'I;16' "
                "first (image.convert(...)), or decode it with workbench.io.decode"
            )
        a = _view(image) if image.mode == "I;16" else None
        a = np.asarray(image) if a is None else a
    else:
        if isinstance(image, (str, bytes, os.PathLike)):
            raise ParameterError(
                f"{where} is a path, not pixels; open it first (workbench.io.decode) or fit on "
                "a Catalog"
            )
        try:
            a = np.asarray(image)
        except Exception as e:  # anything numpy cannot turn into an array
            raise ParameterError(f"{where} is not an image or array: {e}") from None
    if a.dtype.kind == "u" and a.dtype.itemsize in (1, 2):
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        scale = _SCALE_OF_DTYPE[a.dtype]
    elif a.dtype.kind == "f":
        scale = 1.0
        if not np.isfinite(a).all():
            raise ParameterError(f"{where} contains NaN or infinite values")
    else:
        raise ParameterError(
            f"{where} has dtype {a.dtype}; expected uint8, uint16 or float pixels "
            "(convert e.g. with array.astype(np.uint8) or image.convert('L'))"
        )
    if not 2 <= a.ndim <= max_ndim:
        raise ParameterError(
            f"{where} has shape {a.shape}; expected an HW (gray) or HWC array"
            + (" or an NHWC batch" if max_ndim == 4 else "")
        )
    return a, scale


def _merge_checked(total: Moments, part: Moments, where: str) -> Moments:
    """Merge, with an error that names the image when channels or bit depth disagree."""
    if total.channels and part.channels:
        if part.channels != total.channels:
            raise ParameterError(
                f"{where} has {part.channels} channel(s) but the images before it have "
                f"{total.channels}. Mixed modes are not normalised together: convert every image "
                "to one mode first (e.g. image.convert('RGB') or catalog.image(...).convert)"
            )
        if None not in (part.scale, total.scale) and part.scale != total.scale:
            raise ParameterError(
                f"{where} is {_depth(part.scale)} but the images before it are "
                f"{_depth(total.scale)}; convert every image to one bit depth first"
            )
    return total.merge(part)


#: Pillow mode -> (numpy dtype, values per pixel) of its pixel memory; RGB is stored as RGBX.
_VIEW_LAYOUT = {"L": (np.uint8, 1), "RGB": (np.uint8, 4), "I;16": (np.dtype("<u2"), 1)}


def _view(image: Image.Image) -> np.ndarray | None:
    """A read-only numpy view of the pixel memory of an ``L``, ``RGB`` (stored as RGBX, so
    ``(H, W, 4)``) or ``I;16`` Pillow image, through Pillow's Arrow export: no copy, where
    ``np.asarray`` copies. ``None`` when the rows are not one block of memory (over 16 MB), or
    for a Pillow without Arrow export."""
    if image.mode not in _VIEW_LAYOUT:
        return None
    dtype, step = _VIEW_LAYOUT[image.mode]
    try:
        import pyarrow as pa

        buffer = pa.array(image).buffers()[-1]
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    h, w = image.height, image.width
    view = np.frombuffer(buffer, dtype, count=h * w * step)
    return view.reshape(h, w, step) if step > 1 else view.reshape(h, w)


def _sums8(image: Image.Image | np.ndarray) -> tuple[int, list[int], list[int]]:
    """Exact ``(n, Σx, Σx²)`` per channel of an 8-bit ``L`` or ``RGB`` Pillow image, or of a
    ``(height, width, channels)`` uint8 array.

    OpenCV's ``meanStdDev`` (SIMD, integer accumulators) over a zero-copy Arrow view of Pillow's
    pixel memory, quicker than Pillow's histogram and its conversion to numpy for a freshly
    decoded RGB JPEG. Its float mean and std give the integer sums
    back exactly after rounding (error below 0.1 up to 2**30 pixels). Images whose rows are not
    one block of memory (over 16 MB), or a Pillow without Arrow export, take the histogram.
    """
    if isinstance(image, np.ndarray):
        n, c, view = image.shape[0] * image.shape[1], image.shape[2], image
    else:
        n, c = image.width * image.height, len(image.mode)
        view = _view(image)
    view = view if 0 < n <= 1 << 30 else None
    if view is None:
        h = np.asarray(image.histogram(), dtype=np.int64).reshape(-1, 256)
        v = np.arange(256, dtype=np.int64)
        return n, (h @ v).tolist(), (h @ (v * v)).tolist()
    import cv2  # here, not at the top: only fitting needs it (0.1 s to import)

    mean, std = cv2.meanStdDev(view)
    # Python floats are the same doubles as numpy's; Python ints never overflow when summed.
    mean, std = mean.ravel().tolist()[:c], std.ravel().tolist()[:c]
    s2 = [round((s * s + m * m) * n) for m, s in zip(mean, std, strict=True)]
    return n, [round(m * n) for m in mean], s2


@contextmanager
def _opencv_on_one_thread() -> Iterator[None]:
    """OpenCV's thread pool spins a second core beside the decode while a worker sums its images
    (a 1-worker fit used 1.9 CPU s per wall s; 1.0 on one thread, and no slower): one image's
    sums are too small to share out."""
    import cv2  # here, not at the top: only fitting needs it (0.1 s to import)

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _moments_of_files(paths: Sequence[str]) -> Moments:
    """Worker: decode each file (the pixels ``workbench.io.decode`` gives) and merge the moments
    of its pixels.

    Module-level so that process pools and clusters can pickle it; returns one small result.
    """
    total, mode, n, s1, s2 = Moments.empty(), None, 0, [], []
    with _opencv_on_one_thread(), wb_io.quiet_bomb_warnings():
        for path in paths:
            # orient=False: moments ignore pixel order
            image = wb_io._pixels_scanned(path, orient=False)  # an array for most JPEGs and PNGs
            if isinstance(image, np.ndarray):
                if mode == ("RGB" if image.shape[2] == 3 else "L"):
                    k, a, b = _sums8(image)
                    n, s1, s2 = n + k, [*map(int.__add__, s1, a)], [*map(int.__add__, s2, b)]
                    continue
                image = Image.fromarray(image if image.shape[2] == 3 else image[..., 0])
            if image.mode == mode:  # 8-bit like the first image: only add up its integer sums
                k, a, b = _sums8(image)
                n, s1, s2 = n + k, [*map(int.__add__, s1, a)], [*map(int.__add__, s2, b)]
                continue
            total = _merge_checked(total, Moments.from_image(image, where=path), where=path)
            if mode is None and image.mode in ("L", "RGB"):
                mode, s1, s2 = image.mode, [0] * len(image.mode), [0] * len(image.mode)
    # Summed integers are exact; their moments are computed once per chunk, not per image.
    return total.merge(Moments.from_sums(n, s1, s2, 255.0))


def _chunk_size(n: int) -> int:
    """Images per worker task for ``n`` images: enough chunks for the pool to balance and to
    show progress, and at least ``MIN_PARALLEL_ITEMS`` of them from that many images on (fewer
    would make ``pmap`` run in-process); up to 16 images each below that (a chunk's overhead is
    small next to decoding its images); few enough that the results stay tiny for a million
    images."""
    return max(1, min(_MAX_CHUNK, max(n // 128, min(16, n // MIN_PARALLEL_ITEMS))))


# ---------------------------------------------------------------------------- inputs


def table_moments(df: pd.DataFrame) -> Moments:
    """Moments of the columns of a numeric DataFrame, in blocks of rows."""
    import pandas as pd

    if df.shape[1] == 0 or df.shape[0] == 0:
        raise ParameterError(f"the DataFrame is empty (shape {df.shape}); nothing to fit")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise ParameterError(
            f"non-numeric column(s) {bad[:10]}; select the numeric feature columns first"
        )
    total = Moments.empty()
    for start in range(0, len(df), _BLOCK_ROWS):
        block = df.iloc[start : start + _BLOCK_ROWS].to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(block).all():
            cols = df.columns[~np.isfinite(block).all(axis=0)].tolist()
            raise ParameterError(
                f"column(s) {cols[:10]} contain NaN or infinite values; impute or drop them"
            )
        total = total.merge(Moments.from_values(block))
    return total


def catalog_moments(
    catalog: Any, executor: Executor | None, workers: int | None, progress: bool
) -> tuple[Moments, int]:
    """Moments of a Catalog's readable images (decoded by the workers) and their number."""
    df = catalog.df
    for col in ("id", "path"):
        if col not in df.columns:
            raise ParameterError(f"the catalog table has no {col!r} column")
    table = df.set_index("id")
    if "status" in table.columns:
        table = table[table["status"] == "ok"]
    ok = set(table.index)
    ids = [i for i in catalog.ids if i in ok]
    if not ids:
        raise ParameterError(
            "the catalog has no readable images (status 'ok'); nothing to fit. "
            "Check catalog.df['status'] and catalog.df['error']"
        )
    root = Path(catalog.root)
    paths = [str(p if Path(p).is_absolute() else root / p) for p in table.loc[ids, "path"]]
    size = _chunk_size(len(paths))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    parts = pmap(
        _moments_of_files,
        chunks,
        executor=executor,
        workers=workers,
        progress=progress,
        desc="Normalizer.fit",
    )
    total = Moments.empty()
    for k, part in enumerate(parts):
        first = ids[k * size]
        where = repr(first) if size == 1 else f"the chunk of images starting at {first!r}"
        total = _merge_checked(total, part, where=where)
    return total, len(ids)


def iterable_moments(data: Any, progress: bool) -> tuple[Moments, int]:
    """Moments of images from an iterable (or an NHWC array), in this process, and their number."""
    from scipy.sparse import issparse  # here: workers that only decode files never need it

    if isinstance(data, Image.Image):
        raise ParameterError("fit takes a collection of images; wrap one image in a list")
    if issparse(data):
        raise ParameterError("sparse input is not supported; pass a DataFrame for a table")
    if isinstance(data, (str, bytes, os.PathLike)):
        raise ParameterError(
            "fit takes a Catalog, a list of images or a DataFrame, not a path; build a "
            "Catalog of the folder first"
        )
    if isinstance(data, np.ndarray) and data.ndim != 4:
        raise ParameterError(
            f"an array of shape {data.shape} is ambiguous; pass a list of HW / HWC images, "
            "an (N, H, W, C) array, or a DataFrame for tabular data"
        )
    try:
        iterator = iter(data)
    except TypeError:
        raise ParameterError(
            f"cannot fit on {type(data).__name__}; pass a Catalog, a list of images or a DataFrame"
        ) from None
    from tqdm.auto import tqdm

    total = Moments.empty()
    count = 0
    length = len(data) if hasattr(data, "__len__") else None
    with tqdm(total=length, desc="Normalizer.fit", disable=not progress, leave=False) as bar:
        for image in iterator:
            where = f"image {count}"
            total = _merge_checked(total, Moments.from_image(image, where=where), where)
            count += 1
            bar.update(1)
    if count == 0:
        raise ParameterError("no images to fit on")
    return total, count

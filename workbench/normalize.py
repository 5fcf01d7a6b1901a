"""Per-channel mean and standard deviation of a dataset, in one streaming pass.

:class:`Normalizer` learns the statistics behind ``torchvision.transforms.v2.Normalize``: the mean
and (population, ``ddof=0``) standard deviation of every channel over all pixels of all images,
on the ``[0, 1]`` scale that ``v2.ToDtype(torch.float32, scale=True)`` produces. It follows the
scikit-learn estimator conventions: ``__init__`` only stores parameters, :meth:`Normalizer.fit`
returns the estimator, learned attributes end in ``_``.

How the statistics are computed
-------------------------------
Images are never held together. Each image (in blocks of about a million pixels) is reduced to
:class:`Moments` -- the pixel count and, per channel, the mean and the sum of squared
deviations ``M2`` -- in float64 with an exact two-pass computation inside the block. Moments
of blocks, images and chunks of a catalog are merged with the pairwise formula of Chan, Golub
and LeVeque (1979), which is exact in exact arithmetic and numerically stable in floating point,
so chunks can be computed anywhere (a local process pool, a Dask cluster) and merged in any
grouping. 8-bit images are reduced to exact integer sums ``Σx`` and ``Σx²`` per channel instead
(OpenCV's SIMD ``meanStdDev`` over Pillow's pixel memory, no copy), summed over a chunk and turned
into moments once. For a Catalog, workers decode the files themselves (``workbench.io.decode``
with ``keep_16bit=True``) and send back one small :class:`Moments` per chunk.

Rules
-----
* Every image must have the same channel count and bit depth. A gray image among RGB ones (or an
  8-bit among 16-bit ones) raises :class:`~workbench.errors.ParameterError` naming the image:
  convert the images to one mode first (``image.convert("RGB")``); nothing is broadcast silently.
* uint8 data is divided by 255, uint16 by 65535 (``scale_``), as ``ToDtype(scale=True)`` does.
  Float images (Pillow mode ``F``, float arrays) are taken as they are (``scale_ = 1``), again as
  ``ToDtype`` leaves float data unscaled.
* A channel with zero spread (constant images) cannot be normalised: ``fit`` raises, unless
  ``eps > 0`` is given, in which case every reported std is ``max(std, eps)``. Never NaN.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.base import BaseEstimator

from workbench import io as wb_io
from workbench.errors import ParameterError
from workbench.fsutil import atomic_write
from workbench.parallel import MIN_PARALLEL_ITEMS, pmap

__all__ = ["Moments", "Normalizer", "image_moments"]

#: Pixels reduced at once inside one image; bounds the float64 temporaries (24 MB for RGB).
_BLOCK_PIXELS = 1 << 20
#: 8/16-bit values summed at once in float64: 2**16 * 65535**2 < 2**53, so the sums are exact.
_EXACT_BLOCK = 1 << 16
#: Rows of a DataFrame reduced at once.
_BLOCK_ROWS = 1 << 16
#: Most images per chunk sent to a worker.
_MAX_CHUNK = 256
_JSON_FORMAT = "workbench.Normalizer"
_JSON_VERSION = 1

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
        the pixels (:func:`_sums8`): 3x cheaper than any numpy pass over them."""
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
        a squared copy of the image: 5x faster on 16-bit images than squaring in uint32."""
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


def _sums8(image: Image.Image) -> tuple[int, list[int], list[int]]:
    """Exact ``(n, Σx, Σx²)`` per channel of an 8-bit ``L`` or ``RGB`` Pillow image.

    OpenCV's ``meanStdDev`` (SIMD, integer accumulators) over a zero-copy Arrow view of Pillow's
    pixel memory: about 40 us for a freshly decoded 256 px RGB JPEG, against 75-90 us for
    Pillow's histogram and its conversion to numpy. Its float mean and std give the integer sums
    back exactly after rounding (error below 0.1 up to 2**30 pixels). Images whose rows are not
    one block of memory (over 16 MB), or a Pillow without Arrow export, take the histogram.
    """
    n, c = image.width * image.height, len(image.mode)
    view = _view(image) if 0 < n <= 1 << 30 else None
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


def _moments_of_files(paths: Sequence[str]) -> Moments:
    """Worker: decode each file (``workbench.io.decode``) and merge the moments of its pixels.

    Module-level so that process pools and clusters can pickle it; returns one small result.
    """
    total, mode, n, s1, s2 = Moments.empty(), None, 0, [], []
    for path in paths:
        image = wb_io.decode(path, keep_16bit=True, orient=False)  # moments ignore pixel order
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
    would make ``pmap`` run in-process); up to 16 images each below that (a chunk costs about
    60 us, a 256 px JPEG 400 us); few enough that the results stay tiny for a million images."""
    return max(1, min(_MAX_CHUNK, max(n // 128, min(16, n // MIN_PARALLEL_ITEMS))))


def _is_catalog(data: Any) -> bool:
    return all(hasattr(data, a) for a in ("ids", "df", "root")) and not isinstance(
        data, pd.DataFrame
    )


# ---------------------------------------------------------------------------- estimator


class Normalizer(BaseEstimator):
    """Streaming per-channel mean / std of images (or of table columns), scikit-learn style.

    Parameters
    ----------
    per_channel
        One mean/std per channel (default), or a single mean/std over all channels.
    eps
        Lower bound for every std. With the default ``0``, a channel with zero spread makes
        :meth:`fit` raise :class:`~workbench.errors.ParameterError`; with ``eps > 0`` the std
        is ``max(std, eps)`` instead, for every channel.

    Attributes
    ----------
    mean_ : numpy.ndarray
        ``(C,)`` float64 mean per channel on the ``[0, 1]`` scale (``(1,)`` when
        ``per_channel=False``). For a table: per column, in the column's units.
    std_ : numpy.ndarray
        Population (``ddof=0``) standard deviation, same shape and scale as ``mean_``.
    n_ : int
        Pixels per channel (rows for a table) the statistics were computed from.
    scale_ : float
        Maximum of the data type: 255 for 8-bit, 65535 for 16-bit, 1 for float images and tables.
    channels_ : int
        Channels of the images (columns of a table).
    kind_ : str
        ``"image"`` or ``"table"``.
    n_images_ : int
        Images fitted on (images only).
    n_features_in_, feature_names_in_
        For a table, as in scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> imgs = [np.full((4, 4, 3), v, dtype=np.uint8) for v in (0, 255)]
    >>> norm = Normalizer().fit(imgs, progress=False)
    >>> norm.mean_.tolist(), norm.std_.tolist()
    ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    """

    def __init__(self, per_channel: bool = True, eps: float = 0.0) -> None:
        self.per_channel = per_channel
        self.eps = eps

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        data: Any,
        y: None = None,
        *,
        executor: Executor | None = None,
        workers: int | None = None,
        progress: bool = True,
    ) -> Normalizer:
        """Learn mean and std in one streaming pass.

        Parameters
        ----------
        data
            One of

            * a workbench ``Catalog``: every sample whose ``status`` is ``"ok"``, decoded with
              ``workbench.io.decode(path, keep_16bit=True)`` by the workers (without the
              EXIF rotation, which moves pixels but cannot change their moments);
            * an iterable of images (PIL images, HW or HWC uint8 / uint16 / float arrays), or an
              ``(N, H, W, C)`` array; consumed one image at a time, in this process;
            * a pandas DataFrame of numeric columns: per-column mean / std, as scikit-learn's
              ``StandardScaler`` computes them.
        y
            Ignored; present for scikit-learn pipelines.
        executor
            For a Catalog: any ``concurrent.futures.Executor`` (e.g. a Dask
            ``client.get_executor()``). See :func:`workbench.parallel.pmap`.
        workers
            For a Catalog: size of the local process pool (1 = this process).
        progress
            Show a progress bar.

        Returns
        -------
        Normalizer
            ``self``.

        Raises
        ------
        ParameterError
            No data, mixed channel counts or bit depths, a constant channel with ``eps=0``,
            non-numeric or non-finite table values.
        """
        eps = self._check_params()
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # a failed refit must not leave the previous fit half in place
        if isinstance(data, pd.DataFrame):
            moments, kind = self._table_moments(data), "table"
            n_images = None
        elif _is_catalog(data):
            moments, n_images = self._catalog_moments(data, executor, workers, progress)
            kind = "image"
        else:
            moments, n_images = self._iterable_moments(data, progress)
            kind = "image"
        self._finish(moments, kind, eps)
        if kind == "table":
            self.n_features_in_ = self.channels_
            names = list(data.columns)
            if all(isinstance(c, str) for c in names):
                self.feature_names_in_ = np.asarray(names, dtype=object)
        else:
            self.n_images_ = n_images
        return self

    def _check_params(self) -> float:
        if not isinstance(self.per_channel, (bool, np.bool_)):
            raise ParameterError(f"per_channel must be True or False, got {self.per_channel!r}")
        try:
            eps = float(self.eps)
        except (TypeError, ValueError):
            raise ParameterError(f"eps must be a number >= 0, got {self.eps!r}") from None
        if not (math.isfinite(eps) and eps >= 0):
            raise ParameterError(f"eps must be a finite number >= 0, got {self.eps!r}")
        return eps

    def _table_moments(self, df: pd.DataFrame) -> Moments:
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

    def _catalog_moments(
        self, catalog: Any, executor: Executor | None, workers: int | None, progress: bool
    ) -> tuple[Moments, int]:
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

    def _iterable_moments(self, data: Any, progress: bool) -> tuple[Moments, int]:
        if isinstance(data, Image.Image):
            raise ParameterError("fit takes a collection of images; wrap one image in a list")
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
                f"cannot fit on {type(data).__name__}; pass a Catalog, a list of images or a "
                "DataFrame"
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

    def _finish(self, moments: Moments, kind: str, eps: float) -> None:
        if moments.n == 0:
            raise ParameterError("the images have no pixels; nothing to fit")
        scale = float(moments.scale) if moments.scale is not None else 1.0
        stats = moments if self.per_channel else moments.pooled()
        mean = stats.mean / scale
        std = np.sqrt(np.maximum(stats.m2, 0.0) / stats.n) / scale
        if scale in _DTYPE_OF_SCALE:
            # Integer pixels: a channel is constant exactly when every deviation is zero.
            constant = stats.m2 == 0
        else:
            # Float values: allow for rounding, with scikit-learn's StandardScaler bound.
            tiny = np.finfo(np.float64).eps
            var = std**2
            constant = var <= stats.n * tiny * var + (stats.n * np.abs(mean) * tiny) ** 2
        if constant.any() and eps == 0:
            what = "column(s)" if kind == "table" else "channel(s)"
            which = np.flatnonzero(constant).tolist() if self.per_channel else "all"
            raise ParameterError(
                f"{what} {which} have zero spread (std = 0, e.g. constant images), so they "
                "cannot be normalised; remove the constant data or pass eps > 0 "
                "(e.g. Normalizer(eps=1e-6)) to use max(std, eps)"
            )
        if eps > 0:
            std = np.maximum(std, eps)
        self.mean_ = mean.astype(np.float64)
        self.std_ = std.astype(np.float64)
        self.n_ = int(moments.n)
        self.scale_ = scale
        self.channels_ = int(moments.channels)
        self.kind_ = kind

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "mean_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise ParameterError("this Normalizer is not fitted yet; call fit(...) first")

    # ------------------------------------------------------------------ applying

    def transform(self, X: Any) -> np.ndarray | pd.DataFrame:
        """Normalise an image: ``(x / scale - mean) / std`` as float32, in the input's layout.

        Parameters
        ----------
        X
            A PIL image, an HW / HWC (or NHWC batch) uint8, uint16 or float array. The scale
            follows the input's dtype (255 for uint8, 65535 for uint16, 1 for float), as
            ``ToDtype(torch.float32, scale=True)`` does. For a table: a DataFrame with the
            fitted columns, or an ``(N, C)`` array.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            float32 array of the input's shape (channels last); for a table, float64 values of
            the input's type.
        """
        self._check_fitted()
        if self.kind_ == "table":
            return self._table_apply(X, inverse=False)
        pixels, scale = _pixels(X, where="the image", max_ndim=4)
        self._check_channels(pixels)
        out = pixels.astype(np.float32)
        if scale != 1.0:
            out *= np.float32(1.0 / scale)
        out -= self.mean_.astype(np.float32)
        out /= self.std_.astype(np.float32)
        return out

    def inverse_transform(self, X: Any, *, dtype: Any = None) -> np.ndarray | pd.DataFrame:
        """Undo :meth:`transform`: ``x * std + mean``.

        Parameters
        ----------
        X
            Normalised float values (channels last), or a DataFrame / array for a table.
        dtype
            ``None`` (default): float32 on the ``[0, 1]`` scale. ``"original"``: the fitted
            data's dtype (uint8 / uint16; float32 for float data). ``np.uint8`` or
            ``np.uint16``: values times 255 or 65535, rounded and clipped to the range.

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
        """
        self._check_fitted()
        if self.kind_ == "table":
            if dtype is not None:
                raise ParameterError("dtype applies to images only")
            return self._table_apply(X, inverse=True)
        x = np.asarray(X, dtype=np.float32)
        if x.ndim not in (2, 3, 4):
            raise ParameterError(f"expected an HW, HWC or NHWC array, got shape {x.shape}")
        self._check_channels(x)
        out = x * self.std_.astype(np.float32) + self.mean_.astype(np.float32)
        if dtype is None:
            return out
        if isinstance(dtype, str) and dtype == "original":
            target = _DTYPE_OF_SCALE.get(self.scale_)
            if target is None:
                return out
        else:
            try:
                target = np.dtype(dtype)
            except TypeError:
                raise ParameterError("dtype must be None, 'original', uint8 or uint16") from None
            if target not in _SCALE_OF_DTYPE:
                raise ParameterError(
                    f"dtype must be None, 'original', uint8 or uint16, not {dtype}"
                )
        top = _SCALE_OF_DTYPE[target]
        return np.clip(np.rint(out * np.float32(top)), 0, top).astype(target)

    def _check_channels(self, pixels: np.ndarray) -> None:
        channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
        if self.per_channel and channels != self.channels_:
            raise ParameterError(
                f"the image has {channels} channel(s) but the normalizer was fitted on "
                f"{self.channels_}; convert it to the same mode first"
            )

    def _table_apply(self, X: Any, *, inverse: bool) -> np.ndarray | pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            names = getattr(self, "feature_names_in_", None)
            if names is not None and list(X.columns) != list(names):
                raise ParameterError(
                    f"the DataFrame's columns {list(X.columns)[:10]} differ from the fitted "
                    f"columns {list(names)[:10]}"
                )
            values = X.to_numpy(dtype=np.float64)
        else:
            values = np.asarray(X, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.channels_:
            raise ParameterError(
                f"expected {self.channels_} columns, got an array of shape {values.shape}"
            )
        out = values * self.std_ + self.mean_ if inverse else (values - self.mean_) / self.std_
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, index=X.index, columns=X.columns)
        return out

    def to_torchvision(self) -> Any:
        """``torchvision.transforms.v2.Normalize`` with the fitted mean and std.

        Put it after ``v2.ToImage()`` and ``v2.ToDtype(torch.float32, scale=True)``; the
        result equals :meth:`transform` (channels first).
        """
        self._check_fitted()
        if self.kind_ != "image":
            raise ParameterError("to_torchvision() needs a normalizer fitted on images")
        from torchvision.transforms import v2

        return v2.Normalize(mean=self.mean_.tolist(), std=self.std_.tolist())

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """The parameters and fitted statistics as plain JSON-able values."""
        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        return {
            "format": _JSON_FORMAT,
            "version": _JSON_VERSION,
            "params": {"per_channel": bool(self.per_channel), "eps": float(self.eps)},
            "kind": self.kind_,
            "mean": [float(v) for v in self.mean_],
            "std": [float(v) for v in self.std_],
            "n": self.n_,
            "scale": self.scale_,
            "channels": self.channels_,
            "n_images": getattr(self, "n_images_", None),
            "feature_names": None if names is None else [str(c) for c in names],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted normalizer from :meth:`to_dict` output."""
        if not isinstance(d, dict) or d.get("format") != _JSON_FORMAT:
            raise ParameterError(
                "not a saved Normalizer (missing 'format': 'workbench.Normalizer')"
            )
        if d.get("version") != _JSON_VERSION:
            raise ParameterError(f"unsupported Normalizer format version {d.get('version')!r}")
        try:
            params = d["params"]
            norm = cls(per_channel=bool(params["per_channel"]), eps=float(params["eps"]))
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
            kind = d["kind"]
            channels, n, scale = int(d["channels"]), int(d["n"]), float(d["scale"])
        except (KeyError, TypeError, ValueError) as e:
            raise ParameterError(f"a saved Normalizer is incomplete or malformed: {e!r}") from None
        if kind not in ("image", "table") or mean.shape != std.shape or mean.ndim != 1:
            raise ParameterError("a saved Normalizer has inconsistent kind / mean / std")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ParameterError("a saved Normalizer has non-finite or non-positive statistics")
        norm.mean_, norm.std_, norm.n_ = mean, std, n
        norm.scale_, norm.channels_, norm.kind_ = scale, channels, kind
        if kind == "table":
            norm.n_features_in_ = channels
            if d.get("feature_names") is not None:
                norm.feature_names_in_ = np.asarray(d["feature_names"], dtype=object)
        else:
            norm.n_images_ = d.get("n_images")
        return norm

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The fitted normalizer as JSON text; also written (atomically) to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Normalizer:
        """Load from JSON text (as returned by :meth:`to_json`) or from a JSON file's path."""
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text = source
        else:
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as e:
                raise ParameterError(
                    f"cannot read a saved Normalizer from {source!r}: {e}"
                ) from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ParameterError(f"a saved Normalizer is not valid JSON: {e}") from None
        return cls.from_dict(d)

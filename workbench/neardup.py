"""Near duplicates by embedding similarity: cosine of the :class:`~workbench.embed.Embedder`'s
features, with a local test that keeps a large catalog from chaining.

Perceptual hashes see a 32×32 grid; an image smaller than that carries fewer bits than the hash
and a mild edit (JPEG, a few per cent of brightness) moves many of them, so on small images the
distance of a copy to its original overlaps the distance between distinct images. A pretrained
network's features are stable under such edits, so :func:`workbench.clean.check` uses them for
catalogs of small images (``near_method="auto"``, the default; see :func:`choose_method`).

A global cosine threshold is not enough: a catalog holds more look-alikes the larger it is. On
the 10,000 animal silhouettes, 0.92 (right for 760 of them) joined 3,657 images into groups of up
to 777. So a pair must also stand out from its neighbourhood (:func:`distinct_pairs`): its cosine
distance ``1 - s`` is at most :data:`LOCAL_RATIO` times each image's distance to its
:data:`LOCAL_K`-th nearest other content (a ratio test on nearest-neighbour distances, as in
Lowe's SIFT matching), or it is so close (``s >= ALWAYS_SIMILARITY``) that it is a copy
whatever the neighbourhood, so that a family of more than ``LOCAL_K - 1`` tight copies still
groups. A copy stands out from the look-alikes around it; a look-alike in a crowd does not.

* :func:`nearest` gives every row's nearest rows: exact (blocked float32 matrix products) up to
  :data:`EXACT_LIMIT` rows; above, candidates from the HNSW index of :mod:`workbench.ann` over
  the rows' first :data:`SEARCH_DIMS` principal components, ranked by their full cosine.
* :func:`distinct_pairs` applies the threshold and the local test; :func:`neighbour_pairs` is the
  plain threshold (every pair above it, exactly), kept for comparison.
* :func:`embedding_pairs` turns a catalog's distinct contents into pairs of content hashes in the
  form :func:`workbench.clean.check` keeps (``a, b, distance``), with ``distance`` on the 128-step
  scale of the hash method (``ceil((1 - cosine) * 128)``), so scores, thresholds, groups and
  keepers work unchanged: a near-duplicate threshold ``t`` means cosine ``>= t`` (rounded to
  the 1/128 grid) among the pairs that pass the local test.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_choice, check_positive_int
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from workbench.catalog import Catalog
    from workbench.embed import Embedder
    from workbench.workspace import Workspace

__all__ = [
    "ALWAYS_SIMILARITY",
    "DEFAULT_SIMILARITY",
    "EMBED_SIZE",
    "EXACT_LIMIT",
    "LOCAL_K",
    "LOCAL_RATIO",
    "METHODS",
    "SMALL_SIDE",
    "choose_method",
    "default_embedder",
    "distinct_pairs",
    "embedding_pairs",
    "nearest",
    "neighbour_pairs",
]  # fmt: skip

METHODS = ("auto", "hash", "embedding")
#: Largest number of distinct images searched exactly (all pairs, in blocks); beyond it
#: :func:`workbench.ann.pairs_above` (HNSW, recall@10 >= 0.95 against exact search).
EXACT_LIMIT = 50_000
#: ``auto`` uses embeddings when the catalog's median longer side is below this (the hashes'
#: 32×32 grid needs about twice that to hold its bits; measured in ``benchmarks/bench_clean.py``).
SMALL_SIDE = 64
#: Default near-duplicate threshold of the embedding method (cosine similarity, on the 1/128
#: grid), among the pairs that pass the local test; chosen on the benchmark's 28 px silhouettes
#: (``benchmarks/bench_clean.py`` section 1, 300 bases: precision 0.987, recall 0.953); the 25 px
#: faces there, used for nothing else, get 0.947 / 0.937.
DEFAULT_SIMILARITY = 1 - 16 / 128
#: The local test (:func:`distinct_pairs`): a pair's cosine distance must be at most
#: ``LOCAL_RATIO`` times each image's distance to its ``LOCAL_K``-th nearest other content.
#: Chosen on the silhouettes (300 bases; and among all 10,000 animals, ``bench_clean.py``
#: section 5: with 801 copies of 400 of them planted, planted pairs precision 0.978, recall
#: 0.891, groups of at most 6; the threshold alone, at the former default 0.9219, had precision
#: 0.320 and a group of 857). Without planted copies: 429 of the 10,000 flagged, largest group 5.
LOCAL_K = 8
LOCAL_RATIO = 0.5
#: Pairs at least this similar pass whatever their neighbourhood (a large family of tight copies
#: fills its members' nearest neighbours; at 10,000 silhouettes this adds 1 pair).
ALWAYS_SIMILARITY = 1 - 2 / 128
#: Neighbours looked at per image: pairs of the local test are within the ``LOCAL_K - 1``
#: nearest, the rest (``ALWAYS_SIMILARITY``) are capped at this many per image; a larger family
#: still joins through its members' overlapping lists.
NEIGHBOURS = 32
#: Side of the square the embedder sees: small images are upscaled to it.
EMBED_SIZE = 96
#: Gaussian blur (px at :data:`EMBED_SIZE`) before the network: about one pixel of a 25 px image.
BLUR_SIGMA = 4.0
#: Above :data:`EXACT_LIMIT` rows, :func:`nearest` searches candidates in this many principal
#: components of the unit rows (fitted on at most :data:`_PCA_SAMPLE` of them) and ranks them by
#: their full-dimension cosine. A pair of near duplicates is at most as far apart in the
#: projection as in full, so it stays among the candidates. An index of the full 1,280-d rows
#: took several times as long: on ``benchmarks/bench_scale.py``'s 100,000 embeddings, 45 s this
#: way against 330 s in a profile of the checks step (2 cores; not side by side).
SEARCH_DIMS = 128
#: Candidates looked at per row beyond the neighbours asked for (ranked by full cosine).
SEARCH_EXTRA = 16
_PCA_SAMPLE = 20_000
HASH_BITS = 128  # the distance scale shared with the hash method
_BLOCK = 1024  # rows per matrix product: 1024 x 50k float32 is 200 MB at most
_CHUNK = 8192  # rows normalized (and projected) at a time: 40 MB of 1,280-d float32


def choose_method(method: str, widths: np.ndarray, heights: np.ndarray) -> str:
    """``"hash"`` or ``"embedding"``: ``auto`` picks embeddings for a catalog of small images.

    Parameters
    ----------
    method
        One of :data:`METHODS`.
    widths, heights
        Sizes of the readable images.
    """
    check_choice(method, "near_method", METHODS)
    if method != "auto":
        return method
    if len(widths) == 0:
        return "hash"
    side = float(np.median(np.maximum(np.asarray(widths), np.asarray(heights))))
    return "embedding" if side < SMALL_SIDE else "hash"


def neighbour_pairs(
    X: np.ndarray, min_similarity: float, *, block: int = _BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of rows whose cosine similarity is at least ``min_similarity``.

    Exact: a blocked float32 product of the unit rows with those after them, so memory stays at
    ``block × n`` similarities whatever ``n``. Zero rows have similarity 0 to everything.

    Parameters
    ----------
    X
        ``(n, d)`` features.
    min_similarity
        Cosine threshold in [-1, 1].
    block
        Rows per product.

    Returns
    -------
    (i, j, similarity)
        int64, int64 and float32 arrays, ordered by ``i`` then ``j``.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ParameterError(f"features must be a 2-d array, got shape {X.shape}")
    if not -1.0 <= min_similarity <= 1.0:
        raise ParameterError(f"min_similarity must be in [-1, 1], got {min_similarity}")
    n = len(X)
    if n > EXACT_LIMIT:  # all pairs would take minutes: the approximate index
        from workbench.ann import pairs_above

        i, j, sim = pairs_above(X, min_similarity, exact=False)
        return i.astype(np.int64), j.astype(np.int64), sim.astype(np.float32)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    U = np.ascontiguousarray(X / np.where(norm > 0, norm, 1), dtype=np.float32)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        sim = U[start:stop] @ U[start:].T  # only the rows at or after the block: each pair once
        sim[np.tril_indices(stop - start, 0, sim.shape[1])] = -np.inf  # self and earlier pairs
        bi, bj = np.nonzero(sim >= np.float32(min_similarity))
        out_i.append(bi + start)
        out_j.append(bj + start)
        out_s.append(sim[bi, bj])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (
        np.concatenate(out_i).astype(np.int64),
        np.concatenate(out_j).astype(np.int64),
        np.concatenate(out_s).astype(np.float32),
    )


def nearest(X: np.ndarray, k: int, *, block: int = _BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by cosine similarity, most similar first.

    Exact (blocked float32 products; memory ``block × n``) up to :data:`EXACT_LIMIT` rows, the
    HNSW index of :mod:`workbench.ann` above. Zero rows have similarity 0 to everything.

    Parameters
    ----------
    X
        ``(n, d)`` features.
    k
        Neighbours per row; fewer when there are fewer other rows.
    block
        Rows per product.

    Returns
    -------
    (index, similarity)
        ``(n, min(k, n - 1))`` int64 and float32 arrays.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ParameterError(f"features must be a 2-d array, got shape {X.shape}")
    n = len(X)
    k = min(check_positive_int(k, "k"), max(n - 1, 0))
    if k == 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    norm = np.empty((n, 1), np.float32)  # by chunks: norm() of all rows squares a copy of X
    for start in range(0, n, _CHUNK):
        norm[start : start + _CHUNK] = np.linalg.norm(
            X[start : start + _CHUNK], axis=1, keepdims=True
        )
    safe = np.where(norm > 0, norm, 1)
    if n > EXACT_LIMIT:  # a full pass would take minutes: the approximate index
        idx, sim = _nearest_approximate(X, safe, k)
        return idx, np.where(norm[idx, 0] > 0, sim, 0).astype(np.float32)
    U = np.ascontiguousarray(X / safe, dtype=np.float32)
    import torch  # topk: ~15x faster than numpy's argpartition on 1024 x 10k blocks

    out_i = np.empty((n, k), np.int64)
    out_s = np.empty((n, k), np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sim = U[start:stop] @ U.T
        sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        s, idx = torch.topk(torch.from_numpy(sim), k, dim=1, sorted=True)
        out_i[start:stop], out_s[start:stop] = idx.numpy(), s.numpy()
    return out_i, out_s


def _nearest_approximate(X: np.ndarray, norm: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest` above :data:`EXACT_LIMIT` rows: ``k + SEARCH_EXTRA`` candidates per row
    from HNSW over the first :data:`SEARCH_DIMS` principal components of the unit rows, the
    ``k`` of highest full cosine kept. ``norm``: each row's norm (``(n, 1)``, zeros as 1).

    The unit rows are made a block at a time, never all at once: at 100,000 x 1,280 float32
    a unit copy is 488 MiB, and PCA's centred copy of it as much again."""
    from workbench.ann import neighbors

    n, d = X.shape
    if d > SEARCH_DIMS:
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(n, min(n, _PCA_SAMPLE), replace=False))
        sample = X[rows]
        sample /= norm[rows]  # in place, and centred in place by the fit (copy=False)
        pca = PCA(SEARCH_DIMS, svd_solver="randomized", random_state=0, copy=False).fit(sample)
        del sample
        R = np.empty((n, SEARCH_DIMS), np.float32)
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            R[start:stop] = pca.transform(X[start:stop] / norm[start:stop])
    else:
        R = np.ascontiguousarray(X / norm, dtype=np.float32)
    m = min(k + SEARCH_EXTRA, n - 1)
    cand = neighbors(R, m, exact=False)[1]
    del R
    sim = np.empty(cand.shape, np.float32)
    step = 256  # 256 rows x 48 candidates x 1,280 float32: 63 MB of gathered rows at a time
    for start in range(0, n, step):
        stop = min(n, start + step)
        c = cand[start:stop]
        dots = np.einsum("nd,nkd->nk", X[start:stop] / norm[start:stop], X[c])
        sim[start:stop] = dots / norm[c, 0]
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(sim, order, 1)


def distinct_pairs(
    X: np.ndarray,
    min_similarity: float,
    *,
    k: int = LOCAL_K,
    ratio: float = LOCAL_RATIO,
    always: float = ALWAYS_SIMILARITY,
    neighbours: int = NEIGHBOURS,
    block: int = _BLOCK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs above ``min_similarity`` that stand out from their neighbourhoods.

    A pair ``(i, j)`` with cosine ``s`` is kept when ``s >= min_similarity`` and either
    ``1 - s <= ratio * min(r_i, r_j)``, ``r_i`` being row ``i``'s cosine distance to its ``k``-th
    nearest other row (1, as for an orthogonal row, when there are fewer than ``k`` others), or
    ``s >= always``. Only each row's ``neighbours`` nearest are looked at (see :func:`nearest`).

    Returns
    -------
    (i, j, similarity)
        int64, int64 and float32 arrays with ``i < j``, ordered by ``i`` then ``j``.
    """
    if not -1.0 <= min_similarity <= 1.0:
        raise ParameterError(f"min_similarity must be in [-1, 1], got {min_similarity}")
    k = check_positive_int(k, "k")
    if not 0.0 < ratio <= 1.0:
        raise ParameterError(f"ratio must be in (0, 1], got {ratio}")
    idx, sim = nearest(X, max(k, check_positive_int(neighbours, "neighbours")), block=block)
    n, m = idx.shape
    reach = 1.0 - sim[:, k - 1] if m >= k else np.ones(n, np.float32)
    i = np.repeat(np.arange(n, dtype=np.int64), m)
    j, s = idx.ravel(), sim.ravel()
    local = (1.0 - s) <= ratio * np.minimum(reach[i], reach[j]) + 1e-7
    keep = (s >= np.float32(min_similarity)) & (local | (s >= np.float32(always)))
    a, b, s = np.minimum(i, j)[keep], np.maximum(i, j)[keep], s[keep]
    _, first = np.unique(a * n + b, return_index=True)  # a pair is found from both sides
    return a[first], b[first], s[first]


def to_distance(similarity: np.ndarray) -> np.ndarray:
    """Cosine similarity on the 128-step distance scale of the hash method (rounded up, so a
    pair within distance ``r`` has similarity ``>= 1 - r / 128``)."""
    d = np.ceil((1.0 - np.asarray(similarity, np.float64)) * HASH_BITS - 1e-6)
    return np.clip(d, 0, np.iinfo(np.int16).max).astype(np.int16)


class _Smoothed:
    """The weights' preprocessing, then a Gaussian blur of ``sigma`` px at the model's input."""

    def __init__(self, transform: Any, sigma: float) -> None:
        self.transform = transform
        self.sigma = sigma
        self.crop_size = getattr(transform, "crop_size", None)

    def __call__(self, x: Any) -> Any:
        from torchvision.transforms.functional import gaussian_blur

        k = 2 * math.ceil(3 * self.sigma) + 1
        return gaussian_blur(self.transform(x), [k, k], [self.sigma, self.sigma])


def default_embedder(sigma: float = BLUR_SIGMA) -> Embedder:
    """The embedder the method uses: MobileNetV2 (offline weights) at :data:`EMBED_SIZE` px, its
    input blurred by ``sigma`` px (:data:`BLUR_SIGMA`; 0 for none).

    Why the blur: a small image upscaled to the model's input turns JPEG's 8×8 blocks into edges
    the network responds to. Measured on the 200 25 px crops of ``lfw_subset`` (copies at JPEG
    q70 after +8 % brightness): the 10th percentile of a copy's cosine to its original is 0.73
    unblurred and 0.92 with the blur, while distinct crops' 99.9th percentile falls from 0.87
    to 0.83. Vectors are cached apart from the plain embedder's (the cache key names the blur).
    """
    embedder = _smoothed_class()("mobilenet_v2", image_size=EMBED_SIZE)
    embedder.sigma = float(sigma)
    return embedder


_SMOOTHED: list[type] = []


def _smoothed_class() -> type:
    """The Embedder subclass that blurs its input by its ``sigma``: made on first use (it
    imports torch) and reachable as ``workbench.neardup.SmoothedEmbedder`` (module
    ``__getattr__``), so pool and cluster workers can unpickle it."""
    if not _SMOOTHED:
        from workbench.embed import Embedder

        class SmoothedEmbedder(Embedder):
            sigma = BLUR_SIGMA

            def _network(self) -> tuple[Any, Any, Any]:
                net, transform, w = super()._network()
                sigma = self.sigma
                return net, (_Smoothed(transform, sigma) if sigma > 0 else transform), w

            @property
            def cache_key(self) -> str:
                return f"{super().cache_key}-blur{self.sigma:g}"

        SmoothedEmbedder.__module__ = __name__
        SmoothedEmbedder.__qualname__ = "SmoothedEmbedder"
        _SMOOTHED.append(SmoothedEmbedder)
    return _SMOOTHED[0]


def __getattr__(name: str) -> Any:
    if name == "SmoothedEmbedder":
        return _smoothed_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def embedding_pairs(
    catalog: Catalog,
    ids: np.ndarray,
    search_radius: int,
    *,
    workspace: Workspace | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
    local: bool = True,
    executor: Executor | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Near-duplicate pairs of distinct contents by embedding similarity.

    Parameters
    ----------
    catalog
        The samples.
    ids
        Readable sample ids, one per distinct content hash.
    search_radius
        Keep pairs with ``ceil((1 - cosine) * 128) <= search_radius``.
    workspace
        Cache the vectors there (by content hash; see :meth:`Embedder.embed`).
    embedder
        Default: :func:`default_embedder`.
    progress
        Show the embedder's progress bar.
    local
        Keep only pairs that pass the local test (:func:`distinct_pairs`, the default); ``False``
        keeps every pair within the radius (:func:`neighbour_pairs`: chains in large catalogs).
    executor, workers
        Where the vectors are computed (:meth:`Embedder.embed`); default: this process.

    Returns
    -------
    pandas.DataFrame
        ``a, b, distance`` with content hashes ``a``, ``b`` and the int16 distance.
    """
    ids = np.asarray(ids, dtype=object)
    empty = pd.DataFrame({"a": [], "b": [], "distance": np.zeros(0, np.int16)})
    if len(ids) < 2:
        return empty
    emb = embedder if embedder is not None else default_embedder()
    X = emb.embed(
        catalog, list(ids), cache=workspace, progress=progress, executor=executor, workers=workers
    )
    hashes = catalog.df.set_index("id")["hash"].reindex(ids).to_numpy(object)
    search = distinct_pairs if local else neighbour_pairs
    i, j, s = search(X, 1.0 - search_radius / HASH_BITS - 1e-6)
    d = to_distance(s)
    keep = d <= search_radius
    return pd.DataFrame({"a": hashes[i[keep]], "b": hashes[j[keep]], "distance": d[keep]})


def radius_for(similarity: float) -> int:
    """The distance radius of a cosine threshold (on the 1/128 grid, rounded to be strict)."""
    return math.floor((1.0 - similarity) * HASH_BITS + 1e-9)

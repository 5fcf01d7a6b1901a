"""Near duplicates by embedding similarity: cosine of the :class:`~workbench.embed.Embedder`'s
features, searched exactly.

Perceptual hashes see a 32×32 grid; an image smaller than that carries fewer bits than the hash
and a mild edit (JPEG, a few per cent of brightness) moves many of them, so on small images the
distance of a copy to its original overlaps the distance between distinct images. A pretrained
network's features are stable under such edits, so :func:`workbench.clean.check` uses them for
catalogs of small images (``near_method="auto"``, see :func:`choose_method`).

* :func:`neighbour_pairs` is the one search function: every pair of rows whose cosine similarity
  is at least a threshold. Up to :data:`EXACT_LIMIT` rows it is exact (blocked float32 matrix
  products, memory bounded by the block); above it the HNSW index of :mod:`workbench.ann`.
* :func:`embedding_pairs` turns a catalog's distinct contents into pairs of content hashes in the
  form :func:`workbench.clean.check` keeps (``a, b, distance``), with ``distance`` on the 128-step
  scale of the hash method (``ceil((1 - cosine) * 128)``), so scores, thresholds, groups and
  keepers work unchanged: a near-duplicate threshold ``t`` means cosine ``>= t`` (rounded to
  the 1/128 grid).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_choice
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.embed import Embedder
    from workbench.workspace import Workspace

__all__ = [
    "DEFAULT_SIMILARITY",
    "EMBED_SIZE",
    "EXACT_LIMIT",
    "METHODS",
    "SMALL_SIDE",
    "choose_method",
    "default_embedder",
    "embedding_pairs",
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
#: grid), chosen on the benchmark's 28 px silhouettes (precision 0.914, recall 0.938 at 300
#: bases); the 25 px faces, used for nothing else, get 0.937 / 0.875 there (bench_clean.py §1).
DEFAULT_SIMILARITY = 1 - 10 / 128
#: Side of the square the embedder sees: small images are upscaled to it.
EMBED_SIZE = 96
#: Gaussian blur (px at :data:`EMBED_SIZE`) before the network: about one pixel of a 25 px image.
BLUR_SIGMA = 4.0
HASH_BITS = 128  # the distance scale shared with the hash method
_BLOCK = 1024  # rows per matrix product: 1024 x 50k float32 is 200 MB at most


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
    from workbench.embed import Embedder

    class SmoothedEmbedder(Embedder):
        def _network(self) -> tuple[Any, Any, Any]:
            net, transform, w = super()._network()
            return net, (_Smoothed(transform, sigma) if sigma > 0 else transform), w

        @property
        def cache_key(self) -> str:
            return f"{super().cache_key}-blur{sigma:g}"

    return SmoothedEmbedder("mobilenet_v2", image_size=EMBED_SIZE)


def embedding_pairs(
    catalog: Catalog,
    ids: np.ndarray,
    search_radius: int,
    *,
    workspace: Workspace | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
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
    X = emb.embed(catalog, list(ids), cache=workspace, progress=progress)
    hashes = catalog.df.set_index("id")["hash"].reindex(ids).to_numpy(object)
    i, j, s = neighbour_pairs(X, 1.0 - search_radius / HASH_BITS - 1e-6)
    d = to_distance(s)
    keep = d <= search_radius
    return pd.DataFrame({"a": hashes[i[keep]], "b": hashes[j[keep]], "distance": d[keep]})


def radius_for(similarity: float) -> int:
    """The distance radius of a cosine threshold (on the 1/128 grid, rounded to be strict)."""
    return math.floor((1.0 - similarity) * HASH_BITS + 1e-9)

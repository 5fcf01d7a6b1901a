"""Nearest neighbours of embeddings: exact below a size, approximate (HNSW) above it.

One index for the label-propagation graph (:mod:`workbench.propagation`), embedding near
duplicates and k-NN outlier scores. Guarantees:

* Fewer than :data:`EXACT_BELOW` rows are searched exactly (scikit-learn's brute force, BLAS):
  at that size it is as fast or faster, and its answers are the true neighbours.
* From :data:`EXACT_BELOW` rows on, a hierarchical navigable small-world graph (hnswlib, the
  reference implementation of Malkov & Yashunin 2018) answers. Measured on the animals
  sample's embeddings: recall@10 0.997 (5,000 rows) and 0.999 (20,000) against exact search;
  on the scale benchmark's embeddings of 100,000 generated images 0.9754 (the query beam
  widens with the rows, see :func:`_ef_search`); the unit tests hold it to >= 0.95 on
  clustered random data.
* Distances are Euclidean (not squared), as ``sklearn.neighbors.NearestNeighbors`` gives
  them; a row's own index never appears among its neighbours in :func:`neighbors`.
* The HNSW graph is built on one thread with a fixed seed, so the same rows give the same
  graph in every run.

Library choice (``benchmarks/bench_scale.py ann``, animals embeddings, 2 busy cores), seconds
to build and query the 10-NN graph and recall@10 at 5,000 / 20,000 rows: hnswlib (one build
thread) 10.4 / 113 s, 0.997 / 0.999; faiss-cpu HNSW (all threads) 15.4 / 102 s, 0.998 / 0.998;
pynndescent 202 s (numba compiling on first use in a process) / 15.7 s once compiled, 0.977 /
0.962. hnswlib: the recall we need with margin, no per-process compile, a deterministic build.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench._validation import check_positive_int
from workbench.errors import ParameterError

__all__ = ["EXACT_BELOW", "NeighborIndex", "neighbors", "pairs_above"]

#: Below this many rows, exact search is used. Measured on animals embeddings (1280-d, 2 busy
#: cores): exact 9.7 s vs HNSW 10.4 s at 5,000 rows, 130 s vs 113 s at 20,000: crossover ~8,000.
EXACT_BELOW = 8_000

# HNSW parameters: hnswlib's recommended M=16 with a wider construction beam and query beam
# than its defaults (200 and 64 against 200 and 10): recall@10 >= 0.99 on 1280-d embeddings.
_M = 16
_EF_CONSTRUCTION = 200
_EF_SEARCH = 64


def _ef_search(n: int, k: int) -> int:
    """The query beam for ``n`` indexed rows: 64 up to 10,000 rows, then widening as
    ``64 (n / 10,000)^0.3`` (128 at 100,000, capped at 256), never below ``k``.

    At a fixed beam, recall falls as the index grows. Measured on ``bench_scale.py``'s 1280-d
    embeddings (standardized, 1,000 probe rows, exact truth): at 10,000 rows recall@10 0.9779
    with a beam of 64; at 100,000 rows 0.9552 with 64, 0.9702 with 96, 0.9754 with 128 (query
    0.32, 0.49, 0.58 ms a row on 2 threads; the build takes ~130 s either way). Chosen on those;
    on 50,000 other generated images (not used to choose): 0.9528 with 64, 0.9679 with 104.
    """
    return max(k, min(256, round(_EF_SEARCH * max(1.0, n / 10_000) ** 0.3)))


def _rows(X: Any, what: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous float array (float64 kept: exact search then keeps its digits)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "fiu":
        raise ParameterError(f"{what} must be a 2-D numeric array (rows x features)")
    X = np.ascontiguousarray(X, dtype=np.float64 if X.dtype == np.float64 else np.float32)
    if not np.isfinite(X).all():
        raise ParameterError(f"{what} contains NaN or infinite values; impute or drop those rows")
    return X


class NeighborIndex:
    """An index over fixed rows that answers k-nearest-neighbour queries.

    Parameters
    ----------
    X
        ``(n, d)`` rows to index, kept by reference when they are float32 or float64 (HNSW
        keeps them as float32, beside hnswlib's own copy).
    exact
        ``True`` always searches exactly, ``False`` always builds HNSW, ``None`` (default)
        decides by size (:data:`EXACT_BELOW`).
    threads
        Threads for querying the HNSW graph (the build uses one so that it is the same in every
        run; queries are independent of each other, so any number gives the same answers).
        Default: every core this process may use (:func:`workbench.parallel.default_workers`).
    """

    def __init__(self, X: Any, *, exact: bool | None = None, threads: int | None = None) -> None:
        from workbench.parallel import default_workers

        X = _rows(X)
        self.threads = (
            default_workers() if threads is None else check_positive_int(threads, "threads")
        )
        n, d = X.shape
        if n == 0:
            raise ParameterError("X has no rows: nothing to index")
        self.exact_ = n < EXACT_BELOW if exact is None else bool(exact)
        if self.exact_:
            from sklearn.neighbors import NearestNeighbors

            self._rows = X
            self._index: Any = NearestNeighbors(algorithm="brute").fit(X)
        else:
            import hnswlib

            # hnswlib's get_items goes through Python lists (~30 bytes a value): keep ours
            self._rows = X.astype(np.float32, copy=False)
            index = hnswlib.Index(space="l2", dim=d)
            index.init_index(max_elements=n, ef_construction=_EF_CONSTRUCTION, M=_M, random_seed=0)
            index.set_num_threads(1)
            index.add_items(self._rows, np.arange(n))
            self._index = index

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "X_" in state:  # pickled before the rows became private
            state["_rows"] = state.pop("X_")
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        kind = "exact" if self.exact_ else "hnsw"
        return f"NeighborIndex({len(self)} rows, {kind})"

    def neighbors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other indexed rows of every indexed row (see :func:`neighbors`)."""
        k = check_positive_int(k, "k")
        n = len(self)
        if k >= n:
            raise ParameterError(f"k={k} needs more than {n} rows; pass k <= {n - 1}")
        dist, idx = self.query(self._rows, k + 1)
        return _without_self(dist, idx, k)

    def query(self, Q: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)``, each ``(len(Q), k)``, nearest first.

        ``k`` may not exceed the number of rows indexed.
        """
        k = check_positive_int(k, "k")
        if k > len(self):
            raise ParameterError(
                f"k={k} exceeds the {len(self)} rows indexed; pass k <= {len(self)}"
            )
        Q = _rows(Q, "Q")
        dim = self._rows.shape[1]
        if Q.shape[1] != dim:
            raise ParameterError(f"Q has {Q.shape[1]} features but the index has {dim}")
        if len(Q) == 0:
            return np.zeros((0, k)), np.zeros((0, k), dtype=np.int64)
        if self.exact_:
            dist, idx = self._index.kneighbors(Q, n_neighbors=k)
            return dist.astype(np.float64), idx.astype(np.int64)
        self._index.set_ef(_ef_search(len(self), k))
        Q = Q.astype(np.float32, copy=False)
        idx, d2 = self._index.knn_query(Q, k=k, num_threads=self.threads)
        return np.sqrt(np.maximum(d2, 0)).astype(np.float64), idx.astype(np.int64)


def neighbors(
    X: Any, k: int, *, exact: bool | None = None, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of every row: ``(distances, indices)``, each ``(n, k)``.

    A row's own index is never among its neighbours (an identical other row may be, at
    distance 0). ``exact`` and ``threads`` as for :class:`NeighborIndex`.
    """
    return NeighborIndex(X, exact=exact, threads=threads).neighbors(k)


def _without_self(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop each row's own index (wherever ties put it, or the last column if absent)."""
    n = len(idx)
    own = idx == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    own[missing, -1] = True  # not found (a tie of duplicates): drop the farthest instead
    keep = ~own
    return dist[keep].reshape(n, -1)[:, :k], idx[keep].reshape(n, -1)[:, :k]


def pairs_above(
    X: Any,
    similarity: float,
    *,
    k: int = 16,
    exact: bool | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows whose cosine similarity is at least ``similarity``.

    Parameters
    ----------
    X
        ``(n, d)`` embeddings (normalised to unit length here; zero rows match nothing).
    similarity
        Cosine similarity threshold in [-1, 1].
    k
        Neighbours looked at per row at first; rows whose ``k`` neighbours all pass are asked
        again with twice as many until one does not, so the answer does not depend on ``k``
        (with exact search it is complete; with HNSW it misses what the graph misses).
    exact, threads
        As for :class:`NeighborIndex`.

    Returns
    -------
    (i, j, sim)
        Row indices with ``i < j`` and their similarity, sorted by ``(i, j)``.
    """
    similarity = float(similarity)
    if not -1.0 <= similarity <= 1.0:
        raise ParameterError(f"similarity must be in [-1, 1], got {similarity}")
    X = _rows(X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    Z = np.where(norms > 0, X / np.maximum(norms, 1e-30), 0.0).astype(np.float32)
    n = len(Z)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    index = NeighborIndex(Z, exact=exact, threads=threads)
    # unit vectors: |a - b|^2 = 2 - 2 cos(a, b)
    max_dist = np.sqrt(max(0.0, 2.0 - 2.0 * similarity)) + 1e-6
    found_i, found_j = [], []
    rows = np.flatnonzero(norms[:, 0] > 0)
    kk = min(check_positive_int(k, "k") + 1, n)
    while len(rows):
        dist, idx = index.query(Z[rows], kk)
        close = dist <= max_dist
        r, c = np.nonzero(close)
        found_i.append(rows[r])
        found_j.append(idx[r, c])
        full = close.all(axis=1)
        if kk >= n or not full.any():
            break
        rows, kk = rows[full], min(2 * kk, n)
    i = np.concatenate(found_i) if found_i else np.zeros(0, np.int64)
    j = np.concatenate(found_j) if found_j else np.zeros(0, np.int64)
    a, b = np.minimum(i, j), np.maximum(i, j)
    pairs = np.unique(np.stack([a, b], axis=1)[a != b], axis=0).reshape(-1, 2)
    sim = np.einsum("ij,ij->i", Z[pairs[:, 0]], Z[pairs[:, 1]]).astype(np.float64)
    keep = sim >= similarity - 1e-6
    return pairs[keep, 0], pairs[keep, 1], sim[keep]

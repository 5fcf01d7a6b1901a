"""Nearest neighbours of embeddings: exact below a size, approximate above it.

One index for the label-propagation graph (:mod:`workbench.propagation`), embedding near
duplicates and k-NN outlier scores. Guarantees:

* Fewer than :data:`EXACT_BELOW` rows are searched exactly: every query against every row, by
  blocked matrix products; the answers are the true neighbours.
* From :data:`EXACT_BELOW` rows on, wide rows (:data:`CELLS_FROM_DIMS` dims or more: the
  embeddings themselves) are split into k-means cells of about :data:`CELL_ROWS` rows
  (scikit-learn's ``KMeans`` on a sample) and a query scans only the :func:`_cells_probed`
  cells whose centres are nearest to it (an inverted file, IVF-Flat in faiss's terms).
  Recall@10 against exact search on the scale benchmark's 1,280-d embeddings of generated
  images: 0.9885 at 10,000 rows, 0.9704 at 50,000 (other images), 0.9635 at 100,000 (the probes
  widen with the cells). Narrower rows (principal components, the outlier check's 32 dims) go
  to a hierarchical navigable small-world graph (hnswlib, the reference implementation of
  Malkov & Yashunin 2018). The unit tests hold both to >= 0.95 on clustered random data.
* Distances are Euclidean (not squared), as ``sklearn.neighbors.NearestNeighbors`` gives
  them; a row's own index never appears among its neighbours in :func:`neighbors`.
* The same rows give the same answers in every run and on any number of threads (the HNSW
  graph is built on one thread with a fixed seed; the cells from a seeded sample).

Why our own search over the cells rather than a library's: the queries that probe a cell are
scanned together, as one matrix product against the cell's rows (BLAS), where faiss's
``IndexIVFFlat`` scans the cells one query at a time. ``benchmarks/bench_scale.py ann`` on
its 1,280-d embeddings (one run, 2 cores), every row's 10 neighbours at 10,000 / 100,000 rows,
seconds and recall@10: these cells 3.17 / 38.49 s, 0.9862 / 0.9646; faiss-cpu 1.15 IVF-Flat
with the same cells and probes 5.36 / 230.78 s, 0.9871 / 0.9698; our HNSW (built on one
thread) 8.02 / 211.65 s, 0.9986 / 0.9944; hnswlib built on both threads 4.78 / 123.85 s,
0.9987 / 0.9893. (The 10,000-row times include each library's first use in the process.)

Library choice for the graph (``benchmarks/bench_scale.py ann``, animals embeddings, 2 busy
cores), seconds to build and query the 10-NN graph and recall@10 at 5,000 / 20,000 rows: hnswlib
(one build thread) 10.4 / 113 s, 0.997 / 0.999; faiss-cpu HNSW (all threads) 15.4 / 102 s,
0.998 / 0.998; pynndescent 202 s (numba compiling on first use in a process) / 15.7 s once
compiled, 0.977 / 0.962. hnswlib: the recall we need with margin, no per-process compile, a
deterministic build.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from workbench._validation import check_choice, check_positive_int
from workbench.errors import ParameterError

__all__ = [
    "APPROXIMATE", "CELLS_FROM_DIMS", "CELL_ROWS", "EXACT_BELOW", "NeighborIndex", "neighbors",
    "pairs_above",
]  # fmt: skip

#: Below this many rows, every query scans every row (exact search). Measured on
#: ``bench_scale.py``'s 1,280-d embeddings (2 cores, every row's 10 neighbours, ad-hoc script,
#: one run each), exact against cells: 0.80 / 1.01 s at 5,000 rows, 1.26 / 1.10 s at 8,000,
#: 1.84 / 1.81 s at 10,000, 2.96 / 2.44 s at 12,000, 7.25 / 4.00 s at 20,000. (For narrow rows
#: the crossover with HNSW was measured against scikit-learn's slower exact search: ~8,000.)
EXACT_BELOW = 8_000
#: Rows per cell of the approximate search (:class:`NeighborIndex`).
#: Smaller cells scan fewer rows at a given recall but in smaller, slower matrix products: on
#: ``bench_scale.py``'s 100,000 embeddings (ad-hoc script, 2 cores, one run; recall@10 of 2,000
#: rows; seconds for every row's neighbours estimated from 10,000 queries plus the build) cells
#: of 1,000 rows gave 0.9685 with 16 probes in ~39 s, of 500 rows 0.9708 with 24 in ~55 s, of
#: 250 rows 0.9660 with 32 in ~62 s.
CELL_ROWS = 1_000
#: Cells probed per query: ``ceil(PROBE * sqrt(cells))`` (see :func:`_cells_probed`).
PROBE = 1.6
_SCORES = 1 << 24  # largest block of query-by-row scores at a time: 64 MiB of float32
_CANDIDATES = 1 << 22  # largest block of (query, probe, neighbour) candidates at a time


#: Rows this wide or wider are searched in cells, narrower ones in an HNSW graph (hnswlib).
#: Measured on ``bench_scale.py``'s 100,000 embeddings (2 cores): at 1,280 dims the cells took
#: ~40 s for every row's 10 neighbours (recall@10 0.964) against ~250 s for HNSW (0.975);
#: at 128 dims (their principal components, :mod:`workbench.neardup`'s search) 45.8 s, recall@8
#: 0.982, against 44.3 s, 0.999: a matrix product of narrow rows gains little over a graph walk.
CELLS_FROM_DIMS = 512
APPROXIMATE = ("cells", "hnsw")

# HNSW parameters: hnswlib's recommended M=16 with a wider construction beam and query beam
# than its defaults (200 and 64 against 200 and 10): recall@10 >= 0.99 on 1280-d embeddings.
_M = 16
_EF_CONSTRUCTION = 200
_EF_SEARCH = 64


def _ef_search(n: int, k: int) -> int:
    """The HNSW query beam for ``n`` indexed rows: 64 up to 10,000 rows, then widening as
    ``64 (n / 10,000)^0.3`` (128 at 100,000, capped at 256), never below ``k``.

    At a fixed beam, recall falls as the index grows. Measured on ``bench_scale.py``'s 1280-d
    embeddings (standardized, 1,000 probe rows, exact truth): at 10,000 rows recall@10 0.9779
    with a beam of 64; at 100,000 rows 0.9552 with 64, 0.9702 with 96, 0.9754 with 128 (query
    0.32, 0.49, 0.58 ms a row on 2 threads; the build takes ~130 s either way). Chosen on those;
    on 50,000 other generated images (not used to choose): 0.9528 with 64, 0.9679 with 104.
    """
    return max(k, min(256, round(_EF_SEARCH * max(1.0, n / 10_000) ** 0.3)))


def _cells_probed(n_cells: int) -> int:
    """Cells a query scans: ``ceil(PROBE * sqrt(n_cells))``, all of them up to 4 cells.

    At a fixed number of probes recall falls as the cells multiply. Measured on
    ``bench_scale.py``'s 1280-d embeddings (standardized, unit rows, recall@10 of 1,000 probe
    rows against exact search, cells of 1,000 rows): 10 cells: 4 probes 0.9557, 8 probes 0.9981;
    100 cells: 8 probes 0.8996, 12 probes 0.9475, 16 probes 0.9686. Chosen on those; on
    50,000 other generated images (not used to choose): 0.9704 with the 12 probes of 50 cells.
    """
    return min(n_cells, math.ceil(PROBE * math.sqrt(n_cells)))


def _rows(X: Any, what: str = "X") -> np.ndarray:
    """``X`` as a C-contiguous float array (float64 kept: exact search then keeps its digits)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "fiu":
        raise ParameterError(f"{what} must be a 2-D numeric array (rows x features)")
    X = np.ascontiguousarray(X, dtype=np.float64 if X.dtype == np.float64 else np.float32)
    if not np.isfinite(X).all():
        raise ParameterError(f"{what} contains NaN or infinite values; impute or drop those rows")
    return X


def _top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest scores per row and their columns, largest first."""
    import torch  # topk: ~15x faster than numpy's argpartition on 1024 x 10k blocks

    values, columns = torch.topk(torch.from_numpy(scores), k, dim=1, sorted=True)
    return values.numpy(), columns.numpy()


class NeighborIndex:
    """An index over fixed rows that answers k-nearest-neighbour queries.

    Parameters
    ----------
    X
        ``(n, d)`` rows to index, kept by reference when they are float32 or float64 (the
        approximate index works on float32 rows: other rows are copied as float32).
    exact
        ``True`` always searches exactly, ``False`` never, ``None`` (default) decides by size
        (:data:`EXACT_BELOW`).
    threads
        Threads for the searches (the matrix products and top-k selection, or the HNSW
        queries; an HNSW graph is built on one thread so that it is the same in every run); any
        number gives the same answers. Default: every core this process may use
        (:func:`workbench.parallel.default_workers`).
    approximate
        ``"cells"`` or ``"hnsw"`` when not exact; default: cells for rows of at least
        :data:`CELLS_FROM_DIMS` dims, HNSW for narrower ones. With fewer than 5 cells every
        cell is probed, so the answers are exact.
    """

    def __init__(
        self,
        X: Any,
        *,
        exact: bool | None = None,
        threads: int | None = None,
        approximate: str | None = None,
    ) -> None:
        from workbench.parallel import default_workers

        X = _rows(X)
        self.threads = (
            default_workers() if threads is None else check_positive_int(threads, "threads")
        )
        n, d = X.shape
        if n == 0:
            raise ParameterError("X has no rows: nothing to index")
        self.exact_ = n < EXACT_BELOW if exact is None else bool(exact)
        if approximate is not None:
            check_choice(approximate, "approximate", APPROXIMATE)
        wide = d >= CELLS_FROM_DIMS
        self.kind_ = "exact" if self.exact_ else approximate or ("cells" if wide else "hnsw")
        self._rows = X if self.exact_ else X.astype(np.float32, copy=False)
        if self.kind_ == "hnsw":
            import hnswlib

            index = hnswlib.Index(space="l2", dim=d)
            index.init_index(max_elements=n, ef_construction=_EF_CONSTRUCTION, M=_M, random_seed=0)
            index.set_num_threads(1)
            index.add_items(self._rows, np.arange(n))
            self._index = index
        else:
            self._cells(1 if self.exact_ else max(1, round(n / CELL_ROWS)))

    def _cells(self, n_cells: int) -> None:
        """Split the rows into ``n_cells`` k-means cells (one cell: exact search)."""
        n = len(self._rows)
        self.probes_ = _cells_probed(n_cells)
        with self._threads():
            if n_cells == 1:
                self._centres = np.zeros((1, self._rows.shape[1]), self._rows.dtype)
                home = np.zeros(n, np.int64)
                self._order = np.arange(n)
            else:
                from sklearn.cluster import KMeans

                # 256 rows per centre, as faiss trains its cells: enough to place them
                rng = np.random.default_rng(0)
                sample = self._rows[np.sort(rng.choice(n, min(n, 256 * n_cells), replace=False))]
                # random starts: k-means++ took 4.2 of 5.8 s at 100,000 rows (recall@10 0.9635 so)
                km = KMeans(n_cells, init="random", n_init=1, max_iter=10, random_state=0)
                self._centres = km.fit(sample).cluster_centers_.astype(np.float32)
                home = self._probe(self._rows, 1)[:, 0]
                self._order = np.argsort(home, kind="stable")  # row numbers, cell by cell
        self._bounds = np.concatenate([[0], np.cumsum(np.bincount(home, minlength=n_cells))])
        self._norms = np.einsum("ij,ij->i", self._rows, self._rows)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "X_" in state:  # pickled before the rows became private
            state["_rows"] = state.pop("X_")
        self.__dict__.update(state)
        if "kind_" not in state:  # pickled before the cells: exact was scikit-learn's
            self.kind_ = "exact" if self.exact_ else "hnsw"
            if self.exact_:
                self.__dict__.pop("_index", None)
                self._cells(1)

    @contextmanager
    def _threads(self) -> Iterator[None]:
        """BLAS, OpenMP and torch limited to :attr:`threads` for the duration."""
        import torch
        from threadpoolctl import threadpool_limits

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with threadpool_limits(self.threads):
                yield
        finally:
            torch.set_num_threads(before)

    def _probe(self, Q: np.ndarray, probes: int) -> np.ndarray:
        """``(len(Q), probes)`` cells nearest to each query (by the cells' centres)."""
        C = self._centres
        out = np.empty((len(Q), probes), np.int64)
        step = max(1, _SCORES // len(C))
        for start in range(0, len(Q), step):
            s = Q[start : start + step].astype(C.dtype, copy=False) @ C.T
            s *= 2
            s -= np.einsum("ij,ij->i", C, C)
            out[start : start + step] = _top(s, probes)[1]
        return out

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        kind = self.kind_
        if kind == "cells":
            kind = f"{len(self._centres)} cells, {self.probes_} probed"
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
        if self.kind_ == "hnsw":
            self._index.set_ef(_ef_search(len(self), k))
            Q = Q.astype(np.float32, copy=False)
            idx, d2 = self._index.knn_query(Q, k=k, num_threads=self.threads)
            return np.sqrt(np.maximum(d2, 0)).astype(np.float64), idx.astype(np.int64)
        Q = Q.astype(self._rows.dtype, copy=False)
        dist = np.empty((len(Q), k))
        idx = np.empty((len(Q), k), np.int64)
        step = max(1, _CANDIDATES // (self.probes_ * k))
        with self._threads():
            for start in range(0, len(Q), step):
                stop = min(len(Q), start + step)
                dist[start:stop], idx[start:stop] = self._search(Q[start:stop], k, self.probes_)
        return dist, idx

    def _search(self, Q: np.ndarray, k: int, P: int) -> tuple[np.ndarray, np.ndarray]:
        """One block of queries: the ``k`` best of each of the ``P`` probed cells, then the
        ``k`` best of those, ranked by ``2 q.x - |x|^2`` (the squared distance less ``|q|^2``)."""
        cells = self._probe(Q, P) if len(self._centres) > 1 else np.zeros((len(Q), 1), np.int64)
        short = np.diff(self._bounds)[cells].sum(axis=1) < k
        if short.any() and len(self._centres) > P:  # fewer than k rows within reach: all cells
            out = self._search(Q[~short], k, P)
            far = self._search(Q[short], k, len(self._centres))
            d, i = np.empty((len(Q), k)), np.empty((len(Q), k), np.int64)
            d[~short], i[~short], d[short], i[short] = *out, *far
            return d, i
        best = np.full((len(Q), P, k), -np.inf, self._rows.dtype)
        where = np.zeros((len(Q), P, k), np.int64)
        flat = cells.ravel()
        by_cell = np.argsort(flat, kind="stable")
        edges = np.searchsorted(flat[by_cell], np.arange(len(self._centres) + 1))
        for c in np.flatnonzero(np.diff(edges)):
            lo, hi = self._bounds[c], self._bounds[c + 1]
            m = min(k, hi - lo)
            if m == 0:
                continue
            pick = by_cell[edges[c] : edges[c + 1]]
            rows, slots = pick // P, pick % P
            members = self._order[lo:hi]
            # the cell's rows gathered for this block: no cell-ordered copy of all rows is kept
            M = self._rows if hi - lo == len(self) else self._rows[members]
            step = max(1, _SCORES // (hi - lo))
            for s in range(0, len(rows), step):
                r, sl = rows[s : s + step], slots[s : s + step]
                scores = Q[r] @ M.T
                scores *= 2
                scores -= self._norms[members]
                v, j = _top(scores, m)
                best[r, sl, :m], where[r, sl, :m] = v, members[j]
        j = _top(best.reshape(len(Q), -1), k)[1]
        pos = np.take_along_axis(where.reshape(len(Q), -1), j, 1)
        # distances from the rows themselves (the expansion above loses digits near 0), sorted
        d = np.empty(pos.shape)
        step = max(1, _SCORES // (k * Q.shape[1]))
        for s in range(0, len(Q), step):
            diff = Q[s : s + step, None, :] - self._rows[pos[s : s + step]]
            d[s : s + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        order = np.argsort(d, axis=1, kind="stable")
        return np.take_along_axis(d, order, 1), np.take_along_axis(pos, order, 1)


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
    approximate: str | None = None,
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
        (with exact search it is complete; an approximate one misses what it misses).
    exact, threads, approximate
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
    index = NeighborIndex(Z, exact=exact, threads=threads, approximate=approximate)
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

"""Label propagation over a k-nearest-neighbour graph of the samples to label, blended with a
classifier.

:class:`GraphBlend` is a scikit-learn classifier: ``(1 - weight) * classifier + weight *
propagation``, where the propagation (Zhou et al. 2004, "Learning with local and global
consistency") spreads the labels over a fixed graph of every sample to label. Guarantees:

* The graph is built once per array of rows (by identity; it takes seconds) and is read-only
  afterwards, so clones of a blend (cross-validation) share one graph, and pickling keeps it.
* A row that is a graph node (same float64 bytes) reads that node; any other row reads the
  weighted mean of its ``k`` nearest nodes.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import xxhash
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from workbench.errors import ParameterError

__all__ = ["GraphBlend"]

_BLOCK = 4096  # rows converted to float64 at a time


def _dense_float(X: Any) -> np.ndarray:
    """``X`` as a float64 array; sparse and complex input are refused with what to pass instead
    (the words scikit-learn's estimator checks look for)."""
    if issparse(X):
        raise ParameterError("sparse input is not supported; pass dense embeddings")
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ParameterError("Complex data not supported; pass real embeddings")
    return np.asarray(X, dtype=np.float64)


def _standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale``: a standardisation whose statistics were fixed beforehand."""
    return (np.asarray(X, dtype=np.float64) - mean) / scale


class _KnnGraph:
    """k-NN graph of fixed embeddings, for label propagation (Zhou et al. 2004, "Learning with
    local and global consistency"): rows standardised with ``stats``, L2-normalised, joined to
    their ``k`` nearest neighbours by Gaussian weights, symmetrically normalised.

    Rows given later are matched to nodes by their exact bytes (an embedding of a node reads the
    node); any other row reads the weighted mean of its ``k`` nearest nodes, memoised by bytes.
    Neighbours are searched with :class:`workbench.ann.NeighborIndex` (``exact``: see there).
    """

    def __init__(
        self,
        rows: Any,
        stats: tuple[np.ndarray, np.ndarray],
        k: int = 10,
        exact: bool | None = None,
    ):
        import scipy.sparse as sp

        from workbench.ann import EXACT_BELOW, NeighborIndex

        X = np.asarray(rows)  # no float64 copy of all rows: keys and Z are made a block at a time
        self.k = min(k, len(X) - 1)
        self.stats = stats
        self.nodes = {key: i for i, key in enumerate(_row_keys(X))}
        exact = len(X) < EXACT_BELOW if exact is None else exact
        # exact search keeps float64; the cell search (from EXACT_BELOW rows) works in float32
        Z = self._embed(X, np.float64 if exact else np.float32)
        self.index = NeighborIndex(Z, exact=exact)  # queried on every usable core
        dist, idx = self.index.neighbors(self.k)  # without the row itself
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

    def __repr__(self) -> str:
        return f"_KnnGraph({len(self)} nodes, k={self.k})"

    def _embed(self, X: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        """Rows standardised and L2-normalised (in float64, a block at a time), as ``dtype``."""
        if X.ndim != 2 or X.shape[1] != len(self.stats[0]):
            width = X.shape[1] if X.ndim == 2 else "no"
            raise ParameterError(
                f"X has {width} feature(s) but the graph's rows have {len(self.stats[0])}; "
                "pass embeddings from the same model"
            )
        out = np.empty(X.shape, dtype)
        for i in range(0, len(X), _BLOCK):
            Z = _standardise(X[i : i + _BLOCK], *self.stats)
            out[i : i + _BLOCK] = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        return out

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
            dist, nb = self.index.query(self._embed(X[todo]), self.k)
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
    keys = []
    for start in range(0, len(X), _BLOCK):  # float64 a block at a time, not all rows at once
        B = np.ascontiguousarray(X[start : start + _BLOCK], dtype=np.float64)
        step = B.shape[1] * 8
        buf = memoryview(B).cast("B")
        keys += [xxhash.xxh3_128_digest(buf[i : i + step]) for i in range(0, len(buf), step)]
    return keys


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


class GraphBlend(ClassifierMixin, BaseEstimator):
    """A classifier's probabilities blended with label propagation over a k-NN graph.

    ``(1 - weight) * classifier + weight * propagation``: the graph (of every sample to label)
    carries each label to the images around it, so a few labels already cover the clusters
    they sit in. Built by :func:`workbench.assist.default_classifier` with
    ``propagation=weight``.

    Parameters
    ----------
    classifier
        A scikit-learn classifier with ``predict_proba`` (cloned at each fit).
    graph
        The fixed graph of every sample to label (``propagate`` and ``read``, as the k-NN graph
        here has them); rows given to ``fit`` and ``predict_proba`` must have its width.
    weight
        Share of the propagation in the blend, in [0, 1].
    """

    def __init__(self, classifier: Any = None, graph: Any = None, weight: float = 0.5):
        self.classifier = classifier
        self.graph = graph
        self.weight = weight

    def fit(self, X: Any, y: Any) -> GraphBlend:
        X = _dense_float(X)
        self.classifier_ = clone(self.classifier).fit(X, y)
        self.classes_ = self.classifier_.classes_
        codes = np.searchsorted(self.classes_, np.asarray(y))
        self.F_ = self.graph.propagate(X, codes, len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        p = self.classifier_.predict_proba(X)
        return (1 - self.weight) * p + self.weight * self.graph.read(X, self.F_)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

"""workbench.ann: exact neighbours, neighbours from k-means cells and from HNSW, similar pairs,
and their users (propagation graph, k-NN outlier scores), checked against scikit-learn's exact
search."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from workbench import ann, propagation
from workbench.clean import _knn_outlier_scores
from workbench.errors import ParameterError
from workbench.propagation import _KnnGraph


def _clustered(n: int = 3000, d: int = 64, clusters: int = 30, seed: int = 0) -> np.ndarray:
    """Gaussian blobs of unequal spread, as embeddings of a few classes look."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (clusters, d))
    which = rng.integers(0, clusters, n)
    spread = rng.uniform(0.2, 0.6, clusters)[which, None]
    return (centres[which] + rng.normal(0, 1, (n, d)) * spread).astype(np.float32)


def _exact(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return dist[:, 1:], idx[:, 1:]


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, want, strict=True)]))


@pytest.fixture
def small_cells(monkeypatch):
    """Cells of 100 rows, so that a few thousand rows make enough cells to probe only some."""
    monkeypatch.setattr(ann, "CELL_ROWS", 100)


APPROXIMATE = pytest.mark.parametrize("approximate", ["cells", "hnsw"])


@APPROXIMATE
def test_recall_at_10_is_at_least_095_against_exact_search(small_cells, approximate):
    X = _clustered()
    index = ann.NeighborIndex(X, exact=False, approximate=approximate)
    if approximate == "cells":
        assert len(index._centres) == 30 and index.probes_ == 9  # a third of the rows scanned
    dist, idx = index.neighbors(10)
    _, want = _exact(X, 10)
    assert idx.shape == dist.shape == (3000, 10)
    assert _recall(idx, want) >= 0.95
    assert (idx != np.arange(3000)[:, None]).all()  # never a row itself
    assert (np.diff(dist, axis=1) >= -1e-5).all()  # nearest first
    # distances are Euclidean, not squared
    np.testing.assert_allclose(dist[:, 0], np.linalg.norm(X - X[idx[:, 0]], axis=1), rtol=1e-4)


def test_the_query_beam_widens_with_the_rows_and_is_what_the_index_uses():
    assert [ann._ef_search(n, 10) for n in (100, 10_000, 100_000, 10**7)] == [64, 64, 128, 256]
    assert ann._ef_search(100_000, 300) == 300  # never narrower than k
    X = _clustered(n=12_000, d=64)
    index = ann.NeighborIndex(X, exact=False)
    widened = index.query(X[:2000], 11)[1][:, 1:]
    assert index._index.ef == ann._ef_search(12_000, 11) > ann._EF_SEARCH
    # the beam matters: a narrow one finds fewer of the true neighbours
    want = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(X[:2000])[1][:, 1:]
    index._index.set_ef(11)
    narrow = index._index.knn_query(X[:2000], k=11)[0][:, 1:]
    assert _recall(widened, want) > _recall(narrow, want)


def test_the_probes_widen_with_the_cells_and_matter(small_cells):
    assert [ann._cells_probed(c) for c in (1, 4, 5, 10, 100, 1000)] == [1, 4, 4, 6, 16, 51]
    X = _clustered(n=12_000, d=64, clusters=60)
    index = ann.NeighborIndex(X, exact=False, approximate="cells")
    assert (len(index._centres), index.probes_) == (120, 18)
    # every row in one cell, the one whose centre is nearest
    assert sorted(index._order) == list(range(12_000))
    home = np.argmin(((X[:, None, :] - index._centres[None]) ** 2).sum(-1), axis=1)
    assert (np.diff(home[index._order]) >= 0).all()
    want = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(X[:2000])[1][:, 1:]
    widened = index.query(X[:2000], 11)[1][:, 1:]
    index.probes_ = 2  # the probes matter: fewer cells find fewer of the true neighbours
    narrow = index.query(X[:2000], 11)[1][:, 1:]
    assert _recall(widened, want) >= 0.95 > _recall(narrow, want)
    # more neighbours than the probed cells hold: those queries search every cell
    sizes = np.diff(index._bounds)
    reach = sizes[index._probe(X[:200], 2)].sum(axis=1)
    assert (reach < 300).any() and (reach >= 300).any()
    dist, idx = index.query(X[:200], 300)
    assert all(len(set(row)) == 300 for row in idx) and (np.diff(dist, axis=1) >= 0).all()
    np.testing.assert_allclose(dist, np.linalg.norm(X[:200, None] - X[idx], axis=2), rtol=1e-5)
    short = reach < 300
    want_i = NearestNeighbors(n_neighbors=300).fit(X).kneighbors(X[:200][short])[1]
    assert _recall(idx[short], want_i) == 1.0


def test_wide_rows_go_to_cells_and_narrow_ones_to_hnsw():
    rng = np.random.default_rng(0)
    for d, kind in ((ann.CELLS_FROM_DIMS, "cells"), (ann.CELLS_FROM_DIMS - 1, "hnsw")):
        X = rng.normal(size=(300, d)).astype(np.float32)
        assert ann.NeighborIndex(X, exact=False).kind_ == kind
        assert ann.NeighborIndex(X).kind_ == "exact"
    with pytest.raises(ParameterError, match=r"^approximate must be either 'cells' or 'hnsw'"):
        ann.NeighborIndex(X, approximate="ivf")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_search_is_sklearns_and_is_used_below_the_crossover(dtype):
    X = _clustered(500, 16).astype(dtype)
    index = ann.NeighborIndex(X)
    assert index.exact_ and len(X) < ann.EXACT_BELOW
    dist, idx = index.neighbors(5)
    want_d, want_i = _exact(X, 5)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_allclose(dist, want_d, rtol=1e-5 if dtype is np.float32 else 1e-12)
    # the same from cells when every cell is probed
    cells = ann.NeighborIndex(X, exact=False, approximate="cells")
    assert cells.kind_ == "cells" and cells.probes_ == len(cells._centres)
    np.testing.assert_array_equal(cells.neighbors(5)[1], want_i)


def test_an_index_pickled_before_the_cells_still_answers():
    X = _clustered(500, 16)
    index = ann.NeighborIndex(X)
    state = {"X_": X, "exact_": True, "threads": 1}  # what an exact index pickled then held
    old = ann.NeighborIndex.__new__(ann.NeighborIndex)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.neighbors(5)[1], index.neighbors(5)[1])


@APPROXIMATE
def test_a_duplicate_row_is_a_neighbour_but_the_row_itself_is_not(monkeypatch, approximate):
    monkeypatch.setattr(ann, "CELL_ROWS", 30)  # 10 cells, 6 probed
    X = _clustered(300, 8)
    X[7] = X[3]
    for exact in (True, False):
        dist, idx = ann.NeighborIndex(X, exact=exact, approximate=approximate).neighbors(3)
        assert idx[3, 0] == 7 and idx[7, 0] == 3 and dist[3, 0] == 0
        assert (idx != np.arange(300)[:, None]).all()


@APPROXIMATE
def test_an_index_is_the_same_in_every_build_and_after_pickling(small_cells, approximate):
    X = _clustered(1500, 32)
    a = ann.NeighborIndex(X, exact=False, approximate=approximate)
    b = ann.NeighborIndex(X, exact=False, approximate=approximate)
    Q = _clustered(200, 32, seed=5)
    np.testing.assert_array_equal(a.query(Q, 7)[1], b.query(Q, 7)[1])
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.query(Q, 7)[1], c.query(Q, 7)[1])


@APPROXIMATE
def test_neighbours_are_the_same_on_any_number_of_threads(small_cells, approximate):
    X = _clustered(1500, 32)
    one = ann.NeighborIndex(X, exact=False, threads=1, approximate=approximate)
    two = ann.NeighborIndex(X, exact=False, threads=2, approximate=approximate)
    d1, i1 = one.neighbors(7)
    d2, i2 = two.neighbors(7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    _, iq = one.query(X, 8)
    np.testing.assert_array_equal(i1, iq[:, 1:])
    from workbench.parallel import default_workers

    assert ann.NeighborIndex(X[:50]).threads == default_workers()  # the default: every core
    with pytest.raises(ParameterError):
        ann.NeighborIndex(X[:50], threads=0)


@APPROXIMATE
def test_pairs_above_finds_every_pair_over_the_threshold(small_cells, approximate):
    X = _clustered(800, 24, clusters=8)
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Z @ Z.T
    want = {(i, j) for i, j in zip(*np.nonzero(np.triu(S >= 0.9, 1)), strict=True)}
    assert len(want) > 2000  # more pairs per row than k: the widening is exercised
    i, j, sim = ann.pairs_above(X, 0.9, k=4, exact=True)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == want
    assert (i < j).all() and (sim >= 0.9 - 1e-6).all()
    np.testing.assert_allclose(sim, S[i, j], rtol=1e-5)
    hi, hj, _ = ann.pairs_above(X, 0.9, k=4, exact=False, approximate=approximate)
    got = set(zip(hi.tolist(), hj.tolist(), strict=True))
    assert got <= want and len(got) >= 0.95 * len(want)


@pytest.mark.parametrize("d", [48, 512])  # HNSW, cells
def test_propagation_graph_on_approximate_neighbours_keeps_the_exact_graphs_edges(small_cells, d):
    X = _clustered(2000, d).astype(np.float64)
    stats = (X.mean(0), X.std(0))
    exact = _KnnGraph(X, stats, k=10, exact=True)
    approx = _KnnGraph(X, stats, k=10, exact=False)
    assert not approx.index.exact_
    a, b = (exact.S > 0).astype(int), (approx.S > 0).astype(int)
    assert a.multiply(b).sum() >= 0.95 * a.sum()
    codes = np.arange(40) % 3
    Fa = exact.propagate(X[:40], codes, 3)
    Fb = approx.propagate(X[:40], codes, 3)
    assert (Fa.argmax(1) == Fb.argmax(1)).mean() >= 0.95


def test_propagation_graph_holds_no_float64_copy_of_all_rows_while_it_is_built(monkeypatch):
    n, d = ann.EXACT_BELOW + 500, ann.CELLS_FROM_DIMS  # cells; wide rows, as embeddings are
    # blocks small against the rows, as they are at 100k rows with the default block sizes
    monkeypatch.setattr(propagation, "_BLOCK", 256)
    monkeypatch.setattr(ann, "_SCORES", 1 << 18)
    monkeypatch.setattr(ann, "_CANDIDATES", 1 << 16)
    X = _clustered(n, d).astype(np.float32)  # as the Embedder returns them
    stats = (X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64))
    tracemalloc.start()
    try:
        graph = _KnnGraph(X, stats, k=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not graph.index.exact_
    # the float32 rows for the index, float64 blocks, a cell's gathered rows; all rows as
    # float64 would be twice X's bytes on their own
    assert peak < 2 * X.nbytes, (peak, X.nbytes)  # 1.78x; 6.2x with the float64 copies
    # the same graph as from float64 rows: nodes are keyed by float64 bytes either way
    again = _KnnGraph(X.astype(np.float64), stats, k=5)
    assert graph.nodes == again.nodes
    np.testing.assert_array_equal(graph.S.toarray(), again.S.toarray())


def test_propagation_graph_refuses_rows_of_another_width():
    X = _clustered(300, 8)
    graph = _KnnGraph(X, (X.mean(0), X.std(0)), k=5)
    with pytest.raises(ParameterError, match=r"^X has 3 feature\(s\) but the graph's rows have 8"):
        graph.propagate(X[:10, :3], np.zeros(10, int), 2)


def test_outlier_scores_use_the_k_nearest_other_rows():
    X = _clustered(400, 8)
    X[0] += 25.0  # far from every cluster
    scores = _knn_outlier_scores(X, 5)
    d = _exact(X, 5)[0].mean(1)
    q1, q3 = np.percentile(d, [25, 75])
    np.testing.assert_allclose(scores, 1.0 - np.exp2(-d / (q3 + 2.0 * (q3 - q1))), rtol=1e-5)
    assert scores.argmax() == 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ann.neighbors(np.zeros((3, 2)), 3), r"^k=3 needs more than 3 rows"),
        (lambda: ann.neighbors(np.zeros(3), 1), r"^X must be a 2-D numeric array"),
        (lambda: ann.neighbors([[0.0, np.nan], [1, 1]], 1), r"^X contains NaN"),
        (lambda: ann.NeighborIndex(np.zeros((4, 2))).query(np.zeros((1, 3)), 2), r"^Q has 3"),
        (lambda: ann.pairs_above(np.zeros((4, 2)), 1.5), r"^similarity must be in \[-1, 1\]"),
    ],
)
def test_bad_arguments_say_what_to_pass(call, message):
    with pytest.raises(ParameterError, match=message):
        call()

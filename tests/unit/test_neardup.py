"""Near duplicates by embedding similarity (workbench.neardup) and its hook in clean.check."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.data import lfw_subset
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import NearestNeighbors

from workbench import Catalog
from workbench.clean import check, near_duplicate_pairs
from workbench.errors import ParameterError
from workbench.neardup import (
    ALWAYS_SIMILARITY,
    DEFAULT_SIMILARITY,
    LOCAL_K,
    LOCAL_RATIO,
    choose_method,
    default_embedder,
    distinct_pairs,
    nearest,
    neighbour_pairs,
    to_distance,
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt by torch.hub to download fails the test."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A private torch hub folder for this module (the user's cache is left alone)."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path_factory.mktemp("hub")))
    yield
    torch.hub.set_dir(old)


def _jpeg(im: Image.Image, quality: int, brightness: float) -> Image.Image:
    buf = io.BytesIO()
    ImageEnhance.Brightness(im).enhance(brightness).save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> tuple[Catalog, dict[str, str]]:
    """30 distinct 25 px face crops; 8 of them with a copy saved as JPEG q70 after +8 %
    brightness (the case the hashes miss), 4 with one at JPEG q85 after +5 %."""
    root = tmp_path_factory.mktemp("faces")
    crops = lfw_subset()[:30]  # the first 100 are faces
    family = {}
    for i, a in enumerate(crops):
        im = Image.fromarray(np.round(a * 255).astype(np.uint8))
        im.save(root / f"f{i:02d}.png")
        family[f"f{i:02d}.png"] = f"f{i:02d}"
        if i < 8:
            _jpeg(im, 70, 1.08).save(root / f"f{i:02d}_q70.png")
            family[f"f{i:02d}_q70.png"] = f"f{i:02d}"
        elif i < 12:
            _jpeg(im, 85, 1.05).save(root / f"f{i:02d}_q85.png")
            family[f"f{i:02d}_q85.png"] = f"f{i:02d}"
    cat = Catalog.from_folder(root, labels=None, progress=False, workers=1)
    return cat, family


@pytest.fixture(scope="module")
def report(hub, faces):
    cat, _ = faces  # near_method left at its default, "auto"
    return check(cat, checks=["exact_duplicate", "near_duplicate"], workers=1, progress=False)


def _truth(family: dict[str, str]) -> list[list[str]]:
    by: dict[str, list[str]] = {}
    for name, fam in sorted(family.items()):
        by.setdefault(fam, []).append(name)
    return sorted(g for g in by.values() if len(g) > 1)


@pytest.fixture(scope="module")
def cosines(hub, faces) -> np.ndarray:
    """sklearn's cosine matrix of the default embedder's vectors, in catalog order."""
    return cosine_similarity(default_embedder().embed(faces[0], progress=False).astype(float))


def _oracle_ok(sim: np.ndarray, similarity: float) -> np.ndarray:
    """Brute force of the local test on a full cosine matrix: which pairs are kept."""
    m = sim.copy()
    np.fill_diagonal(m, -np.inf)
    kth = -np.sort(-m, axis=1)[:, LOCAL_K - 1] if len(m) > LOCAL_K else np.zeros(len(m))
    reach = 1 - kth
    local = 1 - m <= LOCAL_RATIO * np.minimum.outer(reach, reach) + 1e-7
    return (m >= similarity) & (local | (m >= ALWAYS_SIMILARITY))


def _oracle_groups(cat: Catalog, sim: np.ndarray, similarity: float) -> list[list[str]]:
    """Components of the brute-force kept pairs, by scipy."""
    i, j = np.nonzero(np.triu(_oracle_ok(sim, similarity), 1))
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=sim.shape)
    _, label = connected_components(graph, directed=False)
    ids = np.asarray(cat.ids)
    touched = np.unique(np.concatenate([i, j]))
    return sorted(sorted(ids[touched][label[touched] == c].tolist())
                  for c in np.unique(label[touched]))  # fmt: skip


def _crowd(seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """300 look-alikes (pairwise cosine ~0.9: a crowd a global 0.85 threshold chains) and 20
    of them with a tight copy (cosine ~0.99)."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=64)
    crowd = centre + rng.normal(scale=0.32, size=(300, 64)) * np.linalg.norm(centre) / 8
    copies = crowd[:20] + rng.normal(scale=0.18, size=(20, 64)) * np.linalg.norm(centre) / 8
    return np.concatenate([crowd, copies]), [(k, 300 + k) for k in range(20)]


# ---------------------------------------------------------------------------- the search


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_neighbour_pairs_equal_brute_force(block):
    """Every block size gives exactly the pairs of sklearn's cosine matrix (no self pairs, each
    pair once, none lost at block edges)."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 16))
    X = np.concatenate([base, base[:6] + rng.normal(scale=0.2, size=(6, 16)), np.zeros((2, 16))])
    sim = cosine_similarity(X)
    for threshold in (0.5, 0.9, -0.2):
        ti, tj = np.nonzero(np.triu(sim >= threshold, 1))
        i, j, s = neighbour_pairs(X, threshold, block=block)
        assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(
            zip(ti.tolist(), tj.tolist(), strict=True)
        )
        np.testing.assert_allclose(s, sim[i, j], atol=1e-5)


def test_above_the_exact_limit_the_search_goes_through_the_index(monkeypatch):
    """Past EXACT_LIMIT rows the pairs come from workbench.ann's HNSW index (the real one, here
    at a lowered limit) and still hold >= 95 % of the exact pairs, with their similarities."""
    import workbench.neardup as nd

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 24))
    X = np.repeat(centres, 25, axis=0) + rng.normal(scale=0.15, size=(1000, 24))
    ti, tj, _ = neighbour_pairs(X, 0.95)
    monkeypatch.setattr(nd, "EXACT_LIMIT", 100)
    # block=0 would fail in the exact loop (range step 0): only the index path can answer
    i, j, s = nd.neighbour_pairs(X, 0.95, block=0)
    exact = set(zip(ti.tolist(), tj.tolist(), strict=True))
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert found <= exact and len(found) >= 0.95 * len(exact) > 1000
    np.testing.assert_allclose(s, cosine_similarity(X)[i, j], atol=1e-5)


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_nearest_equals_sklearn(block):
    """The blocked exact search gives sklearn's brute-force cosine neighbours, nearest first,
    never the row itself; fewer neighbours than asked when there are fewer rows."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 8))
    idx, sim = nearest(X, 5, block=block)
    nn = NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(X)
    dist, ref = nn.kneighbors(X)
    assert (idx == ref[:, 1:]).all() and not (idx == np.arange(50)[:, None]).any()
    np.testing.assert_allclose(sim, 1 - dist[:, 1:], atol=1e-5)
    assert nearest(X[:3], 5)[0].shape == (3, 2)
    assert nearest(X[:1], 5)[0].shape == (1, 0)


def test_distinct_pairs_equal_brute_force():
    """The kept pairs are exactly those of the rule applied to the full cosine matrix."""
    X, _ = _crowd(3)
    X = np.concatenate([X, np.random.default_rng(4).normal(size=(60, 64))])
    sim = cosine_similarity(X)
    for threshold in (0.5, 0.85, 0.95):
        ti, tj = np.nonzero(np.triu(_oracle_ok(sim, threshold), 1))
        i, j, s = distinct_pairs(X, threshold, block=37)
        assert list(zip(i.tolist(), j.tolist(), strict=True)) == list(
            zip(ti.tolist(), tj.tolist(), strict=True)
        )
        np.testing.assert_allclose(s, sim[i, j], atol=1e-5)


def test_a_crowd_of_look_alikes_does_not_chain():
    """300 look-alikes all within cosine ~0.87-0.95 of each other, 20 with a tight copy: the
    plain threshold joins the crowd into one group, the local test keeps exactly the copies
    (without the ALWAYS_SIMILARITY shortcut: the ratio alone does it)."""
    X, planted = _crowd()
    i, j, _ = neighbour_pairs(X, 0.85)
    assert len(i) > 10_000
    i, j, _ = distinct_pairs(X, 0.85, always=1.0)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == planted


def test_a_large_family_of_tight_copies_stays_whole():
    """25 near-identical copies fill each other's neighbour lists (the ratio test alone would
    drop them); pairs above ALWAYS_SIMILARITY keep them one group. Two copies in a catalog of
    two are a pair (missing neighbours count as far away)."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(40, 32))
    family = base[0] + rng.normal(scale=0.01, size=(25, 32))
    X = np.concatenate([base[1:], family])
    i, j, _ = distinct_pairs(X, 0.9)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(X), len(X)))
    _, label = connected_components(graph, directed=False)
    assert len(set(label[39:])) == 1 and set(np.concatenate([i, j])) == set(range(39, 64))
    assert len(distinct_pairs(X, 0.9, always=1.0)[0]) < len(i)
    two = np.array([[1.0, 0.0], [1.0, 0.3]])  # cosine 0.958: below ALWAYS_SIMILARITY
    assert distinct_pairs(two, 0.9)[0].tolist() == [0]


def test_the_index_search_holds_no_full_size_copy_of_the_rows(monkeypatch):
    """Past EXACT_LIMIT, unit rows, their norms and the projection are made a block at a time:
    the arrays allocated besides the rows stay well under one copy of them (numpy's memory, as
    tracemalloc sees it; the index's own is not counted). A unit copy of all rows, or
    ``np.linalg.norm`` over all of them (it squares a copy), would be 1x at least."""
    import tracemalloc

    import workbench.neardup as nd

    rng = np.random.default_rng(3)
    X = np.abs(rng.normal(size=(16_000, 768))).astype(np.float32)  # 49 MB
    monkeypatch.setattr(nd, "EXACT_LIMIT", 1000)
    monkeypatch.setattr(nd, "SEARCH_DIMS", 16)
    monkeypatch.setattr(nd, "_PCA_SAMPLE", 2000)
    monkeypatch.setattr(nd, "_CHUNK", 1000)
    nd.nearest(X[:2000], 2)  # the lazy imports, outside the measurement
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        idx, _ = nd.nearest(X, 2)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert idx.shape == (len(X), 2)
    assert peak < 0.5 * X.nbytes, f"{peak / X.nbytes:.2f} x the rows"


@pytest.mark.parametrize("dims", [128, 16])
def test_distinct_pairs_above_the_exact_limit(monkeypatch, dims):
    """Past EXACT_LIMIT the neighbours come from workbench.ann's HNSW index (the real one, here
    at a lowered limit), over principal components when the rows have more than SEARCH_DIMS
    (16 of the 64 here): the same rule keeps >= 95 % of the exact answer and nothing else."""
    import workbench.neardup as nd

    X, _ = _crowd(6)
    ti, tj, _ = distinct_pairs(X, 0.85)
    monkeypatch.setattr(nd, "EXACT_LIMIT", 100)
    monkeypatch.setattr(nd, "SEARCH_DIMS", dims)
    i, j, s = nd.distinct_pairs(X, 0.85, block=0)  # block=0 would fail in the exact loop
    exact = set(zip(ti.tolist(), tj.tolist(), strict=True))
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(found & exact) >= 0.95 * len(exact) >= 19 and len(found - exact) <= 1
    np.testing.assert_allclose(s, cosine_similarity(X)[i, j], atol=1e-5)


def test_distinct_pairs_rejects_bad_input():
    with pytest.raises(ParameterError, match="ratio"):
        distinct_pairs(np.zeros((3, 2)), 0.9, ratio=0)
    with pytest.raises(ParameterError, match="min_similarity"):
        distinct_pairs(np.zeros((3, 2)), 2.0)
    with pytest.raises(ParameterError, match="2-d"):
        distinct_pairs(np.zeros(3), 0.9)


def test_neighbour_pairs_rejects_bad_input():
    with pytest.raises(ParameterError, match="2-d"):
        neighbour_pairs(np.zeros(3), 0.9)
    with pytest.raises(ParameterError, match=r"min_similarity must be in \[-1, 1\]"):
        neighbour_pairs(np.zeros((3, 2)), 1.5)


def test_distance_scale_keeps_thresholds_strict():
    """A pair within distance r has similarity >= 1 - r/128 (rounding up, never down)."""
    s = np.array([1.0, 1 - 8 / 128, 1 - 8 / 128 - 1e-4, 0.9, 0.0])
    d = to_distance(s)
    assert d.tolist() == [0, 8, 9, 13, 128]
    assert (s >= 1 - d / 128 - 1e-9).all()


def test_choose_method():
    small, big = np.full(5, 28), np.full(5, 200)
    assert choose_method("auto", small, small) == "embedding"
    assert choose_method("auto", big, big) == "hash"
    assert choose_method("hash", small, small) == "hash"
    assert choose_method("embedding", big, big) == "embedding"
    assert choose_method("auto", np.array([]), np.array([])) == "hash"
    with pytest.raises(ParameterError, match="near_method"):
        choose_method("cnn", small, small)


# ---------------------------------------------------------------------------- in check()


def test_small_images_use_embeddings_and_find_planted_copies(report, faces):
    """Every JPEG + brightness copy of a 25 px face is grouped with its original, and no two
    distinct faces are grouped: the default groups are exactly the planted families."""
    _, family = faces
    assert report.pairs.attrs["method"] == "embedding"
    assert report.thresholds["near_duplicate"] == DEFAULT_SIMILARITY
    assert sorted(sorted(g) for g in report.groups()) == _truth(family)


def test_groups_and_keepers_equal_brute_force(report, faces, cosines):
    """At the default and at two other thresholds (set live), the groups are the components of
    the brute-force cosine pairs, each keeper the largest image, then the first id."""
    cat, _ = faces
    area = dict(zip(cat.df["id"], cat.df["width"] * cat.df["height"], strict=True))
    for sim in (DEFAULT_SIMILARITY, 1 - 14 / 128, 1 - 20 / 128):
        report.set_threshold("near_duplicate", sim)
        got = report.groups()
        assert sorted(sorted(g) for g in got) == _oracle_groups(cat, cosines, sim - 1e-6)
        for g in got:
            assert g[0] == min(g, key=lambda i: (-area[i], i))
        pairs = near_duplicate_pairs(report)
        assert (pairs["distance"] <= report.radius).all()
    report.set_threshold("near_duplicate", DEFAULT_SIMILARITY)


def test_scores_are_the_nearest_cosine(report, faces, cosines):
    """A flagged sample's score is its largest cosine among the pairs kept within the search
    radius (on the 1/128 grid)."""
    cat, _ = faces
    S = np.where(_oracle_ok(cosines, 1 - 28 / 128 - 1e-6), cosines, -1)
    best = dict(zip(cat.ids, S.max(1), strict=True))
    rows = report.table[report.table["issue"] == "near_duplicate"]
    for i, score in zip(rows["id"], rows["score"], strict=True):
        assert best[i] - 1 / 128 - 1e-5 <= score <= best[i] + 1e-5

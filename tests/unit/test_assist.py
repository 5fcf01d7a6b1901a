"""Assisted labeling: embeddings and their cache, the suggestion model, and the active-learning
order. (The offline weights are tested in test_models.py.)"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from workbench import Catalog, Workspace, samples
from workbench.assist import (
    Assistant,
    Embedder,
    default_classifier,
    order,
    uncertainty,
)
from workbench.errors import ParameterError

SIZE = 32  # the 8x8 digits hold no detail a larger input would reveal; keeps the tests fast


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
    new = tmp_path_factory.mktemp("hub")
    torch.hub.set_dir(str(new))
    yield new
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Catalog:
    return samples.load("digits", tmp_path_factory.mktemp("digits"), progress=False)


@pytest.fixture(scope="module")
def embedder(hub) -> Embedder:
    return Embedder(image_size=SIZE, batch_size=256).load()


@pytest.fixture(scope="module")
def digit_features(digits, embedder, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    X = embedder.embed(digits, cache=ws, progress=False)
    return X, digits.df["label"].astype(str).to_numpy(), ws


# ------------------------------------------------------------------------------ embeddings
def test_embeddings_are_the_penultimate_layer(digits, embedder):
    ids = digits.ids[:8]
    X = embedder.embed(digits, ids, progress=False)
    assert X.shape == (8, 1280) and X.dtype == np.float32 and np.isfinite(X).all()
    np.testing.assert_array_equal(X, embedder.embed(digits, ids, progress=False))  # deterministic

    net = torchvision.models.mobilenet_v2(
        weights=torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    ).eval()
    tf = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms(
        crop_size=SIZE, resize_size=round(SIZE * 256 / 224)
    )
    x = torch.stack([tf(digits.image(i).convert("RGB")) for i in ids])  # PIL path, per image
    with torch.inference_mode():
        ref = torch.nn.functional.adaptive_avg_pool2d(net.features(x), 1).flatten(1).numpy()
    # the embedder resizes batched tensors, torchvision's PIL path resizes with Pillow
    cos = (X * ref).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.98


def test_cache_reuses_vectors_and_computes_only_new_images(digits, embedder, tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "ws")
    first = embedder.embed(digits, digits.ids[:40], cache=ws, progress=False)
    assert embedder.stats_["computed"] == 40
    assert embedder.cache_path(ws).is_file()
    assert embedder.cache_path(ws).parent == ws.models_dir / "embeddings"

    calls = []
    real = embedder._forward
    monkeypatch.setattr(embedder, "_forward", lambda x: calls.append(len(x)) or real(x))
    again = embedder.embed(digits, digits.ids[:40], cache=ws, progress=False)
    assert calls == [] and embedder.stats_["computed"] == 0
    np.testing.assert_array_equal(first, again)

    more = embedder.embed(digits, digits.ids[:50], cache=ws, progress=False)
    assert sum(calls) == 10 and embedder.stats_["computed"] == 10
    np.testing.assert_array_equal(more[:40], first)
    # a fresh embedder (another session) reads the same file
    other = Embedder(image_size=SIZE).embed(digits, digits.ids[45:50], cache=ws, progress=False)
    np.testing.assert_array_equal(other, more[45:])


def test_cache_path_takes_a_workspace_or_a_folder(tmp_path):
    embedder = Embedder(image_size=SIZE)
    ws = Workspace(tmp_path / "ws")
    name = f"{embedder.cache_key}.npz"
    assert embedder.cache_path(ws) == ws.file("embeddings") / name
    assert embedder.cache_path(tmp_path / "vectors") == tmp_path / "vectors" / name
    assert embedder.cache_path(str(tmp_path)) == tmp_path / name
    with pytest.raises(ParameterError, match="Workspace, a folder path or None"):
        embedder.cache_path(42)


def test_same_content_is_embedded_once_and_unreadable_files_are_refused(embedder, tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    a = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3).astype(np.uint8)
    Image.fromarray(a).save(root / "a.png")
    Image.fromarray(a).save(root / "copy_of_a.png")
    Image.fromarray(a.T.copy()).convert("RGB").save(root / "b.png")
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    cat = Catalog.from_folder(root, progress=False)
    ok = cat.ok
    X = embedder.embed(ok, progress=False)
    assert embedder.stats_["computed"] == 2 and X.shape == (3, 1280)
    np.testing.assert_array_equal(X[0], X[2])  # a.png and copy_of_a.png (sorted ids: a, b, copy)
    with pytest.raises(ParameterError, match=r"catalog\.ok"):
        embedder.embed(cat, progress=False)
    with pytest.raises(ParameterError, match="not in the catalog"):
        embedder.embed(ok, ["nope.png"], progress=False)


def test_vectors_go_to_their_rows_once_whatever_is_cached_or_repeated(
    digits, embedder, tmp_path, monkeypatch
):
    """Cached, new and repeated content in a shuffled order: every row is its file's vector,
    the cache file holds each content once, and the call's traced peak stays near one output
    (gathering from an array of the distinct vectors made it two, and so did reading the
    cached vectors instead of mapping them)."""
    import shutil
    import tracemalloc

    monkeypatch.setattr("workbench.embed._BLOCK", 64)  # 400 rows: far fewer than one real block

    root = tmp_path / "imgs"
    root.mkdir()
    src = digits.df["path"].head(300).tolist()
    for k, p in enumerate(src):
        shutil.copyfile(p, root / f"{k:03d}.png")
    for k in range(100):  # exact copies under other names
        shutil.copyfile(src[(7 * k) % 300], root / f"copy{k:03d}.png")
    cat = Catalog.from_folder(root, progress=False)
    ref = embedder.compute(cat.df["path"].tolist(), progress=False)  # one vector per file

    tracemalloc.start()
    X = embedder.embed(cat, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(X, ref)
    assert embedder.stats_["computed"] == 300
    assert peak < 1.5 * X.nbytes, peak / X.nbytes

    ws = Workspace(tmp_path / "ws")
    ids = list(np.random.default_rng(0).permutation(cat.ids))
    embedder.embed(cat, ids[:150], cache=ws, progress=False)
    X = embedder.embed(cat, ids, cache=ws, progress=False)
    rows = pd.Index(cat.ids).get_indexer(ids)
    np.testing.assert_array_equal(X, ref[rows])
    with np.load(embedder.cache_path(ws)) as z:
        hashes, vectors = z["hash"], z["vectors"]
    assert len(set(hashes)) == len(hashes) == 300 and vectors.shape == (300, 1280)
    first = cat.df.drop_duplicates("hash").set_index("hash")["id"]
    np.testing.assert_array_equal(vectors, ref[pd.Index(cat.ids).get_indexer(first[hashes])])

    tracemalloc.start()  # all cached: the file's vectors are mapped, not read beside the output
    X = embedder.embed(cat, ids, cache=ws, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(X, ref[rows])
    assert embedder.stats_["computed"] == 0
    assert peak < 1.5 * X.nbytes, peak / X.nbytes


def test_a_damaged_cache_is_recomputed_and_another_writers_file_is_read(digits, embedder, tmp_path):
    """The cache file's vectors are mapped from disk: a changed byte or a cut file costs a
    recomputation with a warning, never a wrong vector; a file of another width is recomputed;
    an ``.npz`` that numpy wrote (compressed) is read as it is."""
    import zipfile

    ids = digits.ids[:30]
    ref = embedder.embed(digits, ids, progress=False)
    path = embedder.cache_path(tmp_path)
    embedder.embed(digits, ids, cache=tmp_path, progress=False)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("vectors.npy")
    at = info.header_offset + info.compress_size // 2  # inside the vectors member's data

    def damage(data: bytes, why: str) -> None:
        path.write_bytes(data)
        with pytest.warns(UserWarning, match="ignoring unreadable embedding cache"):
            X = embedder.embed(digits, ids, cache=tmp_path, progress=False)
        np.testing.assert_array_equal(X, ref, err_msg=why)
        assert embedder.stats_["computed"] == 30, why

    flipped = bytearray(good)
    flipped[at] ^= 0x40
    damage(bytes(flipped), "one changed byte")
    damage(good[: len(good) // 2], "cut in half")

    with zipfile.ZipFile(path) as z:
        hashes = np.lib.format.read_array(z.open("hash.npy"))
    np.savez_compressed(path, hash=hashes, vectors=ref + 1)  # another writer's file is believed
    X = embedder.embed(digits, ids, cache=tmp_path, progress=False)
    assert embedder.stats_["computed"] == 0
    np.testing.assert_array_equal(X, ref + 1)
    np.savez(path, hash=hashes, vectors=ref[:, :100])  # another model's width: recomputed
    X = embedder.embed(digits, ids, cache=tmp_path, progress=False)
    assert embedder.stats_["computed"] == 30
    np.testing.assert_array_equal(X, ref)


def test_cached_vectors_start_aligned_and_numpy_reads_the_file(digits, embedder, tmp_path):
    """The vectors member is padded to start at a multiple of 64 bytes of the file, on the
    first write and on a write that extends the cache, and ``np.load`` reads the file."""
    import zipfile

    from workbench.embed import _mapped

    for n in (20, 35):
        X = embedder.embed(digits, digits.ids[:n], cache=tmp_path, progress=False)
        path = embedder.cache_path(tmp_path)
        with open(path, "rb") as f, zipfile.ZipFile(f) as z:
            mapped = _mapped(f, z, "vectors.npy")
            assert mapped is not None and mapped.ctypes.data % 64 == 0, n
            with np.load(path) as npz:
                np.testing.assert_array_equal(npz["vectors"], mapped)
                assert set(map(tuple, npz["vectors"].tolist())) == set(map(tuple, X.tolist()))


# ------------------------------------------------------------------------------ assistant
def test_assistant_suggests_well_on_digits(digit_features):
    X, y, _ = digit_features
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    train, test = idx[:600], idx[600:]
    a = Assistant().fit(X[train], y[train])
    proba = a.predict_proba(X[test])
    assert proba.shape == (len(test), 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    accuracy = float((a.predict(X[test]) == y[test]).mean())
    assert accuracy > 0.75, accuracy  # chance is 0.10
    assert 0.6 < a.cv_accuracy_ <= 1.0 and a.n_labels_ == 600
    assert abs(a.cv_accuracy_ - accuracy) < 0.15  # the cross-validated estimate is honest

    s = a.suggest(X[test[:5]], k=3)
    assert len(s) == 5 and all(len(row) == 3 for row in s)
    for row, p in zip(s, proba[:5], strict=True):
        assert [c for c, _ in row] == [a.classes_[j] for j in np.argsort(-p)[:3]]
        assert all(isinstance(c, str) for c, _ in row)
        assert row[0][1] >= row[1][1] >= row[2][1]
    assert a.score(X[test], y[test]) == pytest.approx(accuracy)
    assert (
        pickle.loads(pickle.dumps(a)).predict(X[test[:3]]).tolist()
        == a.predict(X[test[:3]]).tolist()
    )


def test_assistant_edge_cases():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(9, 4))
    one = Assistant().fit(X[:3], ["cat"] * 3)
    assert one.suggest(X[3:4]) == [[("cat", 1.0)]] and np.isnan(one.cv_accuracy_)
    tiny = Assistant().fit(X, ["a"] * 5 + ["b"] * 3 + ["c"])  # folds adapt to 1-member classes
    assert 0.0 <= tiny.cv_accuracy_ <= 1.0
    assert np.isnan(Assistant().fit(X[:3], ["a", "b", "c"]).cv_accuracy_)
    with pytest.raises(ParameterError, match="no labels"):
        Assistant().fit(X[:0], [])
    with pytest.raises(AttributeError, match="not fitted"):
        Assistant().predict_proba(X)
    with pytest.raises(ParameterError, match="1-D"):
        Assistant().fit(X, ["a"] * 3)


def _biased_labels(rng: np.random.Generator):
    """Labels whose statistics mislead a scaler fit on them, as an uncertainty order's can.

    Feature 0 separates the classes everywhere. Feature 1 is noise with std 1 over all samples,
    but on the labelled ones it is nearly constant (+-1e-4) and happens to match the class, so
    standardising with the labels' std turns it into the strongest feature.
    """
    n = 2000
    cls = rng.integers(0, 2, n)
    X = np.column_stack([np.where(cls == 1, 1.5, -1.5) + rng.normal(size=n), rng.normal(size=n)])
    y = np.array(["a", "b"])[cls]
    lab = np.concatenate([rng.choice(np.flatnonzero(cls == c), 20, replace=False) for c in (0, 1)])
    X_lab = X[lab].copy()
    X_lab[:, 1] = np.where(cls[lab] == 1, 1e-4, -1e-4) * (1 + 0.1 * rng.random(len(lab)))
    return X, y, X_lab, y[lab]


def test_scale_on_uses_the_pool_statistics_not_the_labels():
    X, y, X_lab, y_lab = _biased_labels(np.random.default_rng(4))
    pool = np.vstack([X, X_lab])  # every sample, labelled or not
    labels_scaled = Assistant(cv=None).fit(X_lab, y_lab)
    pool_scaled = Assistant(scale_on=pool, cv=None).fit(X_lab, y_lab)
    # scaled on the labels, the noise feature decides: confident and wrong about half the time
    assert labels_scaled.score(X, y) < 0.7
    assert pool_scaled.score(X, y) > 0.85  # feature 0 alone: 0.93 at best
    Z = pool_scaled.classifier_[0].transform(X[:5])
    np.testing.assert_allclose(Z, (X[:5] - pool.mean(0)) / pool.std(0), rtol=1e-10)
    # the statistics do not move with what gets labelled
    other = Assistant(scale_on=pool, cv=None).fit(X[:100], y[:100])
    np.testing.assert_allclose(other.classifier_[0].transform(X[:5]), Z, rtol=1e-10)
    # default_classifier gives the same pipeline, cross-validation uses it too
    direct = default_classifier(0, scale_on=pool).fit(X_lab, y_lab)
    np.testing.assert_allclose(direct.predict_proba(X[:20]), pool_scaled.predict_proba(X[:20]))
    assert 0.85 < Assistant(scale_on=pool, cv=3).fit(X_lab, y_lab).cv_accuracy_ <= 1.0


def test_scale_on_statistics_chunked_float32_and_pickled():
    rng = np.random.default_rng(5)
    pool = (rng.normal(size=(9000, 3)) * [1.0, 1e3, 0.0] + [5.0, -2e3, 7.0]).astype(np.float32)
    y = np.where(pool[:50, 0] > 5.0, "hi", "lo")
    a = Assistant(scale_on=pool, cv=None).fit(pool[:50], y)
    scaler = a.classifier_[0]
    ref = pool.astype(np.float64)
    np.testing.assert_allclose(scaler.kw_args["mean"], ref.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scaler.kw_args["scale"][:2], ref.std(0)[:2], rtol=1e-9)
    assert scaler.kw_args["scale"][2] == 1.0  # a constant feature is left unscaled
    b = pickle.loads(pickle.dumps(a))
    assert b.scale_on.shape == pool.shape
    np.testing.assert_allclose(b.predict_proba(pool[:5]), a.predict_proba(pool[:5]))
    assert b.fit(pool[:60], np.where(pool[:60, 0] > 5.0, "hi", "lo")).n_labels_ == 60
    # a new array means new statistics
    a.scale_on = pool * 2
    a.fit(pool[:50], y)
    np.testing.assert_allclose(a.classifier_[0].kw_args["mean"], 2 * ref.mean(0), rtol=1e-6)


def test_scale_on_rejects_bad_input():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(20, 4))
    y = ["a", "b"] * 10
    with pytest.raises(ParameterError, match="default classifier only"):
        Assistant(LogisticRegression(), scale_on=X).fit(X, y)
    with pytest.raises(ParameterError, match="3 features but X has 4"):
        Assistant(scale_on=X[:, :3]).fit(X, y)
    with pytest.raises(ParameterError, match="2-D"):
        Assistant(scale_on=X[:, 0]).fit(X, y)
    with pytest.raises(ParameterError, match="2-D"):
        Assistant(scale_on=np.array([["x", "y"], ["z", "w"]])).fit(X, y)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        Assistant(scale_on=bad).fit(X, y)
    with pytest.raises(ParameterError, match="3 features"):  # checked with one class too
        Assistant(scale_on=X[:, :3]).fit(X, ["a"] * 20)
    with pytest.raises(ParameterError, match="at least 2 rows"):
        default_classifier(scale_on=X[:1])


_gate = threading.Event()
_entered = threading.Event()


class _GatedClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression whose fit waits until the test opens the gate."""

    def fit(self, X, y):
        _entered.set()
        assert _gate.wait(10), "the test never opened the gate"
        self.model_ = LogisticRegression(max_iter=200).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


def _gated_assistant(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, Assistant]:
    """Two-class data and an Assistant whose fits wait at the gate, which starts closed."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    _gate.clear()
    _entered.clear()
    return X, y, Assistant(_GatedClassifier(), cv=None)


def test_refit_async_never_blocks_and_keeps_the_newest_model():
    X, y, a = _gated_assistant(2, 80)
    _gate.set()
    a.fit(X[:20], y[:20])
    _gate.clear()
    _entered.clear()
    try:
        first = a.refit_async(X[:40], y[:40])
        assert _entered.wait(10)  # the worker is inside the slow fit now
        skipped = a.refit_async(X[:60], y[:60])
        newest = a.refit_async(X, y)
        # the labeler keeps working with the model it has
        assert a.n_labels_ == 20 and a.predict_proba(X[:3]).shape == (3, 2)
        assert not first.done()
    finally:
        _gate.set()
    assert first.result(10) is True
    assert skipped.result(10) is False  # overtaken while queued: never fitted
    assert newest.result(10) is True
    assert a.n_labels_ == 80
    a.close()


def test_a_blocking_fit_is_never_replaced_by_an_older_background_fit():
    X, y, a = _gated_assistant(3, 80)
    try:
        running = a.refit_async(X[:40], y[:40])
        assert _entered.wait(10)
        queued = a.refit_async(X[:60], y[:60])
        # a blocking fit asked after both (one class: no solver, so it need not wait for the
        # running fit's turn): the background fits must not replace it
        assert a.fit(X, ["pos"] * 80).n_labels_ == 80
    finally:
        _gate.set()
    assert running.result(10) is False  # finished after the blocking fit: discarded
    assert queued.result(10) is False  # older than the blocking fit: never run
    assert a.n_labels_ == 80
    a.close()


def test_close_skips_the_waiting_refit_and_a_later_refit_restarts():
    X, y, a = _gated_assistant(4, 60)
    closer = threading.Thread(target=a.close)
    try:
        running = a.refit_async(X[:20], y[:20])
        assert _entered.wait(10)
        waiting = a.refit_async(X[:40], y[:40])
        closer.start()  # returns once the running fit is done
        assert waiting.result(10) is False
    finally:
        _gate.set()
    closer.join(10)
    assert running.result(10) is True and a.n_labels_ == 20
    assert a.refit_async(X, y).result(10) is True and a.n_labels_ == 60
    a.close()
    restored = pickle.loads(pickle.dumps(a))  # no lock or worker thread travels with it
    assert restored.n_labels_ == 60 and restored.refit_async(X[:30], y[:30]).result(10)
    restored.close()


# ------------------------------------------------------------------------------ order
prob_matrices = st.tuples(st.integers(1, 40), st.integers(2, 7), st.integers(0, 2**32 - 1)).map(
    lambda t: np.random.default_rng(t[2]).dirichlet(np.full(t[1], 0.5), size=t[0])
)


def _reference(p: np.ndarray, strategy: str) -> np.ndarray:
    s = np.sort(p, axis=1)
    if strategy == "least_confidence":
        return -s[:, -1]
    if strategy == "margin":
        return -(s[:, -1] - s[:, -2])
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(p * np.log(p), axis=1)


@settings(max_examples=60, deadline=None)
@given(p=prob_matrices, strategy=st.sampled_from(["least_confidence", "margin", "entropy"]))
def test_uncertainty_orders_match_direct_numpy(p, strategy):
    idx = order(p, strategy)
    assert sorted(idx.tolist()) == list(range(len(p)))
    ref = _reference(p, strategy)
    assert ref[idx[0]] >= ref.max() - 1e-12  # the most uncertain row comes first
    assert (np.diff(ref[idx]) <= 1e-12).all()  # and the rest follow in that order
    if strategy == "least_confidence":
        assert p.max(1)[idx[0]] == p.max(1).min()
    if strategy == "margin":
        top2 = np.sort(p, 1)[:, -2:]
        gap = top2[:, 1] - top2[:, 0]
        assert gap[idx[0]] <= gap.min() + 1e-12
    offset = 0.0 if strategy == "entropy" else 1.0  # 1 - max p, 1 - gap
    np.testing.assert_allclose(uncertainty(p, strategy), ref + offset, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(p=prob_matrices, batch=st.integers(0, 50), seed=st.integers(0, 100))
def test_random_order_and_batches(p, batch, seed):
    r = order(p, "random", seed=seed)
    assert sorted(r.tolist()) == list(range(len(p)))
    np.testing.assert_array_equal(r, order(p, "random", seed=seed))
    assert len(order(p, "margin", batch=batch)) == min(batch, len(p))


def test_random_is_not_catalog_order_and_ties_are_shuffled():
    p = np.full((200, 4), 0.25)
    assert not np.array_equal(order(p, "random"), np.arange(200))
    assert not np.array_equal(order(p, "entropy"), np.arange(200))  # an undecided model
    assert not np.array_equal(order(p, "random", seed=1), order(p, "random", seed=0))


def _near_copies(rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5 clusters of 20 near-identical embeddings; cluster 0 is the most uncertain, and so on."""
    centers = rng.normal(size=(5, 16)) * 10
    cluster = np.repeat(np.arange(5), 20)
    emb = centers[cluster] + rng.normal(scale=1e-3, size=(100, 16))
    top = 0.55 + 0.08 * cluster + rng.uniform(0, 0.01, 100)  # max prob: lower = less sure
    probs = np.stack([top, 1 - top], axis=1)
    return probs, emb, cluster


def test_diversity_spreads_a_batch_over_clusters():
    probs, emb, cluster = _near_copies(np.random.default_rng(3))
    plain = order(probs, "least_confidence", batch=5)
    assert set(cluster[plain]) == {0}  # five near-copies of one image
    diverse = order(probs, "least_confidence", batch=5, embeddings=emb, diversity=0.5, pool=20)
    assert sorted(cluster[diverse]) == [0, 1, 2, 3, 4]
    assert diverse[0] == plain[0]  # still opens with the most uncertain sample
    d = np.linalg.norm(emb[diverse][:, None] - emb[diverse][None], axis=2)
    assert d[np.triu_indices(5, 1)].min() > 1.0  # no near-duplicate pair left
    # with the default pool (50 candidates: clusters 0, 1 and part of 2) it still spreads
    assert len(set(cluster[order(probs, batch=5, embeddings=emb, diversity=0.5)])) == 3
    # and diversity works for the random baseline too
    assert len(set(cluster[order(probs, "random", batch=5, embeddings=emb, diversity=1.0)])) >= 4


def test_order_rejects_bad_arguments():
    p = np.full((4, 2), 0.5)
    with pytest.raises(ParameterError, match="embeddings"):
        order(p, batch=2, diversity=0.5)
    with pytest.raises(ParameterError, match="batch size"):
        order(p, embeddings=np.zeros((4, 3)), diversity=0.5)
    with pytest.raises(ParameterError, match="strategy"):
        order(p, "confidence")
    with pytest.raises(ParameterError, match="2-D"):
        order(np.ones(3))
    with pytest.raises(ParameterError, match="between 0 and 1"):
        order(p, batch=2, diversity=2.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: order(p, batch=True), r"^batch must be None or an integer >= 0, got True"),
        (lambda p: order(p, batch=2.0), r"^batch must be None or an integer >= 0, got 2\.0"),
        (lambda p: order(p, batch=2, diversity=True), r"^diversity must be a number between"),
        (lambda p: order(p, batch=2, diversity=float("nan")), r"^diversity must be a number"),
        (
            lambda p: order(p, batch=2, diversity=0.5, embeddings=np.eye(4), pool=0),
            r"^pool must be a finite number >= 1",
        ),
        (lambda p: uncertainty(p, "random"), r"^strategy must be one of 'least_confidence'"),
        (lambda p: default_classifier(scale_on=p, propagation=True), r"^propagation must be a"),
        (lambda p: Embedder(batch_size=True).load(), r"^batch_size must be an integer >= 1"),
        (lambda p: Embedder(batch_size=0).load(), r"^batch_size must be an integer >= 1, got 0"),
        (lambda p: Embedder(image_size=8).load(), r"^image_size must be None or an integer >= 16"),
        (lambda p: Embedder(image_size=96.0).load(), r"^image_size must be None or an integer"),
    ],
)
def test_arguments_are_checked_by_the_one_definition(call, message):
    """bool is not a number, 2.0 is not a count, NaN is not in any range; messages name the
    argument and what it takes."""
    with pytest.raises(ParameterError, match=message):
        call(np.full((4, 2), 0.5))


def test_suggest_refuses_a_count_that_is_not_one():
    X = np.random.default_rng(0).normal(size=(20, 3))
    a = Assistant(cv=None).fit(X, ["a", "b"] * 10)
    for k in (0, True, 1.5):
        with pytest.raises(ParameterError, match=r"^k must be an integer >= 1"):
            a.suggest(X[:2], k=k)
    assert len(a.suggest(X[:2], k=np.int64(1))[0]) == 1


def _moons(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    X, y = make_moons(n, noise=0.06, random_state=seed)
    return X, np.where(y == 1, "b", "a")


def test_propagation_carries_labels_along_the_clusters():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    y = y.astype(str)
    gains = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        lab = np.array([rng.choice(np.flatnonzero(y == c)) for c in np.unique(y)])  # 1 per class
        plain = Assistant(scale_on=X, cv=None).fit(X[lab], y[lab])
        blend = Assistant(scale_on=X, propagation=0.5, cv=None).fit(X[lab], y[lab])
        gains.append(blend.score(X, y) - plain.score(X, y))
        p = blend.predict_proba(X)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        # the blend is (1 - w) * logistic + w * propagation, the logistic part the plain model
        graph_part = (p - 0.5 * plain.predict_proba(X)) / 0.5
        assert graph_part.min() >= -1e-12 and np.allclose(graph_part.sum(axis=1), 1.0)
        # rows that are not graph nodes read their k nearest nodes (a node reads only itself)
        shifted = blend.predict_proba(X + 1e-9)
        assert 0 < np.abs(shifted - p).max() < 0.5
        assert (shifted.argmax(1) == p.argmax(1)).mean() > 0.95
    assert min(gains) > 0.08, gains  # measured 0.13-0.19 with one label per class


def test_propagation_equals_the_dense_formula():
    """Zhou et al.: F = sum_t alpha^t S^t (1 - alpha) Y over a symmetric normalised k-NN graph."""
    X, y = _moons(200, seed=1)
    lab = np.arange(0, 200, 17)
    blend = default_classifier(0, scale_on=X, propagation=0.5).fit(X[lab], y[lab])
    Z = (X - X.mean(0)) / X.std(0)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    D = np.linalg.norm(Z[:, None] - Z[None], axis=2)
    near = np.argsort(D, axis=1)[:, 1:11]
    s2 = np.median(np.take_along_axis(D, near, 1)) ** 2
    W = np.zeros_like(D)
    rows = np.repeat(np.arange(200), 10)
    W[rows, near.ravel()] = np.exp(-(np.take_along_axis(D, near, 1).ravel() ** 2) / s2)
    W = np.maximum(W, W.T)
    d = 1 / np.sqrt(W.sum(1))
    S = d[:, None] * W * d[None]
    Y = np.zeros((200, 2))
    Y[lab, (y[lab] == "b").astype(int)] = 1
    F = Y.copy()
    for _ in range(40):
        F = 0.99 * S @ F + 0.01 * Y
    F = np.maximum(F, 1e-12)
    F /= F.sum(1, keepdims=True)
    np.testing.assert_allclose(blend.F_, F, rtol=1e-9, atol=1e-12)


def test_propagation_graph_is_built_once_and_shared():
    from sklearn.base import clone

    X, y = _moons(300)
    a = Assistant(scale_on=X, propagation=0.5, cv=3).fit(X[::10], y[::10])
    b = Assistant(scale_on=X, propagation=0.3, cv=None).fit(X[::7], y[::7])
    assert a.classifier_.graph is b.classifier_.graph  # same array: one graph
    assert clone(a.classifier_).graph is a.classifier_.graph  # cross-validation clones share it
    assert 0.6 < a.cv_accuracy_ <= 1.0  # cross-validation ran on the blend
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_allclose(c.predict_proba(X[:30] + 0.01), a.predict_proba(X[:30] + 0.01))
    assert c.fit(X[::5], y[::5]).n_labels_ == 60


def test_propagation_rejects_bad_settings():
    X, y = _moons(50)
    with pytest.raises(ParameterError, match="scale_on"):
        Assistant(propagation=0.5).fit(X, y)
    with pytest.raises(ParameterError, match=r"\[0, 1\)"):
        Assistant(scale_on=X, propagation=1.0).fit(X, y)
    with pytest.raises(ParameterError, match=r"\[0, 1\)"):
        default_classifier(scale_on=X, propagation=-0.1)

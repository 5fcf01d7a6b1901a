"""Every batch step on a Dask cluster gives what the local process pool gives.

One ``LocalCluster`` of two worker processes on 127.0.0.1 serves the whole module (started
once: a cluster takes seconds) and is closed at the end. Each step runs through the same
``executor=`` parameter it takes for any ``concurrent.futures.Executor``.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import Executor

import numpy as np
import pandas as pd
import PIL.Image
import pytest
from corpus import encode

from workbench import Catalog
from workbench.augment import Pipeline, expand
from workbench.clean import check, compute_features
from workbench.embed import Embedder
from workbench.normalize import Normalizer
from workbench.parallel import local_pool, pmap

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """``(client executor, local pool)``: two worker processes each.

    Starting workers sets OMP_NUM_THREADS=1 (and other variables) in this process's environment
    and leaves them there; restored at the end so later tests' subprocesses run as before."""
    environ = dict(os.environ)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client.get_executor(), local_pool(2)
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Catalog:
    """80 small RGB images over two classes (sizes, formats vary), a duplicate, a broken file."""
    root = tmp_path_factory.mktemp("dask-src")
    rng = np.random.default_rng(0)
    for i in range(80):
        cls = ("cat", "dog")[i % 2]
        (root / cls).mkdir(exist_ok=True)
        shape = (20 + i % 7, 24 + i % 5, 3)
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        fmt, ext = ("JPEG", "jpg") if i % 3 == 0 else ("PNG", "png")
        (root / cls / f"{i:03d}.{ext}").write_bytes(encode(PIL.Image.fromarray(a), fmt))
    (root / "dog" / "copy.png").write_bytes((root / "cat" / "002.png").read_bytes())
    (root / "cat" / "broken.png").write_text("not an image")
    return Catalog.from_folder(root, workers=1, progress=False)


def test_scan_on_dask_equals_the_local_pool(images, cluster):
    dask, pool = cluster
    local = Catalog.from_folder(images.root, executor=pool, progress=False, perceptual_hash=True)
    remote = Catalog.from_folder(images.root, executor=dask, progress=False, perceptual_hash=True)
    pd.testing.assert_frame_equal(local.df, remote.df)
    assert (local.df["status"] == "ok").sum() == 81


def test_checks_on_dask_equal_the_local_pool(images, cluster):
    dask, pool = cluster
    local, n_local = compute_features(images, executor=pool, progress=False)
    remote, n_remote = compute_features(images, executor=dask, progress=False)
    pd.testing.assert_frame_equal(local, remote)
    assert n_local == n_remote == 80  # the duplicate's content is decoded once


def test_normalizer_on_dask_equals_the_local_pool(images, cluster):
    dask, pool = cluster
    local = Normalizer().fit(images, executor=pool, progress=False)
    remote = Normalizer().fit(images, executor=dask, progress=False)
    np.testing.assert_array_equal(local.mean_, remote.mean_)
    np.testing.assert_array_equal(local.std_, remote.std_)


def test_embeddings_on_dask_equal_the_local_pool(images, cluster):
    dask, pool = cluster
    embedder = Embedder(image_size=16, batch_size=8)
    ok = images.ok
    local = embedder.embed(ok, executor=pool, progress=False)
    remote = embedder.embed(ok, executor=dask, progress=False)
    here = embedder.embed(ok, progress=False)
    assert local.shape == (81, embedder.dim_)
    np.testing.assert_array_equal(local, remote)
    np.testing.assert_allclose(local, here, rtol=1e-4, atol=1e-4)  # other threads, same model


def test_expansion_on_dask_equals_the_local_pool(images, cluster, tmp_path):
    dask, pool = cluster
    pipe = Pipeline().add("RandomHorizontalFlip").add("RandomRotation", degrees=20)
    a = expand(images, pipe, copies=2, out=tmp_path / "a", seed=5, executor=pool, progress=False)
    b = expand(images, pipe, copies=2, out=tmp_path / "b", seed=5, executor=dask, progress=False)
    cols = ["id", "width", "height", "mode", "bytes", "hash", "source_id", "seed"]
    pd.testing.assert_frame_equal(a.df[cols], b.df[cols])
    assert len(a.df) == 162
    for rel in a.df["id"][:20]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


class _Recording(Executor):
    """The cluster's executor, recording the name of every function it is given to run."""

    def __init__(self, executor: Executor) -> None:
        self.executor, self.ran = executor, []

    def submit(self, fn, /, *args, **kwargs):
        inner = args[0] if args else fn  # pmap sends (fn, chunk) to its chunk runner
        self.ran.append(getattr(getattr(inner, "func", inner), "__name__", repr(inner)))
        return self.executor.submit(fn, *args, **kwargs)


def test_check_computes_embedding_near_duplicates_on_the_executor(images, cluster):
    # 20-26 px images: near duplicates by embedding similarity, whose vectors must be computed
    # where the other work goes (the kernel holds no model run on a cluster), equal to the pool's
    dask, pool = cluster
    remote = _Recording(dask)
    kw = {"checks": ["exact_duplicate", "near_duplicate"], "progress": False}
    a = check(images, executor=pool, **kw)  # the default embedder: pickled for the workers
    b = check(images, executor=remote, **kw)
    assert a.pairs.attrs["method"] == b.pairs.attrs["method"] == "embedding"
    assert "_compute_chunk" in remote.ran and "_features_row" in remote.ran
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.pairs, b.pairs)


def _draw(item: int) -> str:
    return f"{item}-{uuid.uuid4()}"


def test_every_map_on_dask_runs_its_tasks_again(cluster):
    """Dask reuses the result of a task of equal function and arguments while it still holds
    one (``pure=True`` is its default, and a finished map's futures are released a moment
    later): a re-scan right after a file changed could get the old rows. Back-to-back maps of
    the same items must each run."""
    dask, _ = cluster
    runs = [pmap(_draw, range(40), executor=dask, progress=False) for _ in range(20)]
    assert len({tuple(r) for r in runs}) == len(runs)

import operator
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

import numpy as np
import pandas as pd
import pytest
from corpus import encode
from PIL import Image

from workbench import Catalog
from workbench.errors import ParameterError
from workbench.parallel import pmap, pmap_completed


def test_results_in_input_order_over_every_engine():
    items = list(range(-300, 300))
    expected = [abs(i) for i in items]
    assert pmap(abs, items, workers=1, progress=False) == expected
    assert pmap(abs, items, workers=2, chunksize=7, progress=False) == expected
    with ThreadPoolExecutor(4) as ex:
        assert pmap(abs, items, executor=ex, chunksize=13, progress=False) == expected
    assert pmap(abs, [], progress=False) == []


def test_pmap_completed_yields_each_result_once_and_closing_it_cancels_the_queued_work():
    items = list(range(-300, 300))
    for kw in ({"workers": 1}, {"workers": 2, "chunksize": 7}):
        got = list(pmap_completed(abs, items, progress=False, **kw))
        assert sorted(k for k, _ in got) == list(range(len(items)))
        assert dict(got) == {k: abs(i) for k, i in enumerate(items)}
    calls = []

    def slow(i):
        calls.append(i)
        time.sleep(0.02)
        return i

    with ThreadPoolExecutor(1) as ex:
        it = pmap_completed(slow, range(100), executor=ex, chunksize=1, progress=False)
        assert next(it) == (0, 0)
        it.close()
    assert len(calls) <= 3  # the first, and at most the ones running when it was closed


def test_worker_errors_propagate_and_bad_workers_are_refused():
    with pytest.raises(ZeroDivisionError):
        pmap(partial(operator.truediv, 1), [1, 2, 0, 3] * 40, workers=2, progress=False)
    with pytest.raises(ParameterError):
        pmap(abs, [1], workers=0)


def test_parallel_scan_equals_serial_scan(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(150):
        a = rng.integers(0, 256, (8 + i % 5, 9, 3), dtype=np.uint8)
        (tmp_path / f"{i:03d}.png").write_bytes(encode(Image.fromarray(a), "PNG"))
    (tmp_path / "broken.png").write_bytes(b"nope")
    serial = Catalog.from_folder(tmp_path, workers=1, progress=False).df
    pooled = Catalog.from_folder(tmp_path, workers=2, progress=False).df
    pd.testing.assert_frame_equal(serial, pooled)
    assert (serial["status"] == "ok").sum() == 150


def test_a_dask_client_executor_runs_the_same_map():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:  # fmt: skip
        got = pmap(abs, list(range(-100, 100)), executor=client.get_executor(), progress=False)
    assert got == [abs(i) for i in range(-100, 100)]


def test_default_chunks_on_dask_are_planned_for_the_clusters_threads():
    distributed = pytest.importorskip("distributed")
    items = list(range(7_200))
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=3,
                            dashboard_address=None) as client:  # fmt: skip
        ex = client.get_executor()
        submitted = []
        real = ex.submit
        ex.submit = lambda *a, **k: submitted.append(1) or real(*a, **k)
        assert pmap(abs, items, executor=ex, progress=False) == items
        assert len(submitted) == 24  # 4 tasks for each of the 6 threads, whatever this machine has
        submitted.clear()
        assert pmap(abs, items, executor=ex, workers=1, progress=False) == items
        assert len(submitted) == 4  # told 1 worker: 4 tasks


class _Counting(Executor):
    """A thread pool seen from outside (not a local pool type): counts the tasks it gets."""

    def __init__(self) -> None:
        self.pool, self.tasks = ThreadPoolExecutor(2), 0

    def submit(self, fn, /, *args, **kwargs):
        self.tasks += 1
        return self.pool.submit(fn, *args, **kwargs)


def test_default_chunks_are_larger_on_other_executors_than_on_a_local_pool():
    items = list(range(40_000))
    other = _Counting()
    assert pmap(abs, items, executor=other, workers=2, progress=False) == items
    other.pool.shutdown()
    assert other.tasks == 20  # 2,048 items a task: a cluster's per-task overhead is ~10 ms
    calls = []
    with ThreadPoolExecutor(2) as local:
        real = local.submit
        local.submit = lambda *a, **k: calls.append(1) or real(*a, **k)
        assert pmap(abs, items, executor=local, workers=2, progress=False) == items
    assert len(calls) == 157  # 256 items a task


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_workers_and_chunksize_must_be_positive_integers(bad):
    with pytest.raises(ParameterError, match=r"^workers must be an integer >= 1, got"):
        pmap(abs, [1], workers=bad)
    with pytest.raises(ParameterError, match=r"^chunksize must be an integer >= 1, got"):
        pmap(abs, [1], chunksize=bad)


_FAULTS = """
import resource
import threading
import numpy as np
from workbench.parallel import malloc_keeps_freed_memory

def faults(n=100):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        np.ones(2**19, np.float32).sum()  # 2 MiB: above a fixed 128 KiB mmap threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def other_chunk():  # another chunk, in another thread of the same worker
    with malloc_keeps_freed_memory():
        pass

outside = faults()
with malloc_keeps_freed_memory():
    inside = faults()
    other = threading.Thread(target=other_chunk)  # starts and ends meanwhile
    other.start()
    other.join()
    still = faults()
print(outside, inside, still, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_dask_chunks_reuse_freed_memory_under_aggressive_trimming():
    """Dask's workers run with MALLOC_TRIM_THRESHOLD_=65536: every buffer over 128 KiB is
    mapped and faulted in again. Inside a chunk, freed memory is reused, also after another
    thread's chunk ended; after the last chunk, the setting is back."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True
    )
    outside, inside, still, after = map(int, out.stdout.split())
    assert outside > 100 * 400  # 512 pages per array, each faulted in again
    assert inside < outside / 20
    assert still < outside / 20  # a chunk that ended in another thread did not restore it
    assert after > 100 * 400

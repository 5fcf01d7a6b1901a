"""One ``map`` over an executor: in-process, a local process pool, or any ``Executor``.

A Dask cluster plugs in through ``client.get_executor()``; anything with ``submit`` works.
Work is sent in chunks so per-item overhead (pickling, scheduling) stays small, results come
back in input order, and a tqdm bar shows progress as chunks finish.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from typing import Any, TypeVar

from workbench._validation import check_positive_int

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker count for the local pool: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_POOLS: dict[int, ProcessPoolExecutor] = {}
_SET_UP: dict[str, int] = {}  # key -> pid: a forked child inherits the dict, not the pid


def once_in_pool_worker(key: str, setup: Callable[[], None]) -> None:
    """Run ``setup()`` once per process, and only in a pool worker (a process whose parent is
    a multiprocessing process: nobody else's settings there to keep). Cheap enough to call per
    item; ``key`` names the setup."""
    pid = os.getpid()
    if _SET_UP.get(key) != pid:
        _SET_UP[key] = pid
        if multiprocessing.parent_process() is not None:
            setup()


#: Below this many items ``pmap`` runs in-process: starting workers would cost more than it saves.
MIN_PARALLEL_ITEMS = 64


def local_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """The shared local process pool of this size (started once, reused, closed at exit).

    Workers are forked where the platform can: they start in milliseconds with the parent's
    imports, and scripts need no ``if __name__ == "__main__"`` guard (``spawn`` and
    ``forkserver`` re-import the main module). The built-in worker functions use PIL, numpy
    and scipy, which start no OpenMP threads; the embedder's workers use torch, and set it to
    one thread before anything else (OpenMP's thread pool is not fork-safe: a worker forked
    after the parent ran torch on several threads hung in its first parallel operation).
    """
    n = workers or default_workers()
    pool = _POOLS.get(n)
    if pool is None or getattr(pool, "_broken", False) or getattr(pool, "_shutdown_thread", False):
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = _POOLS[n] = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
    return pool


@atexit.register
def shutdown_pools() -> None:
    """Stop the shared local pools (they are restarted on next use)."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=False, cancel_futures=True)


def _run_chunk(fn: Callable[[Any], Any], chunk: Sequence[Any]) -> list[Any]:
    return [fn(item) for item in chunk]


def _run_packed(fn: Callable[[Any], Any], chunk: bytes) -> bytes:
    """:func:`_run_chunk` on a pickled chunk, its results pickled: opaque bytes to Dask."""
    with malloc_keeps_freed_memory():
        out = _run_chunk(fn, pickle.loads(chunk))
    return pickle.dumps(out, pickle.HIGHEST_PROTOCOL)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
# Chunks running now in this process's threads: the settings are process-wide, so the first
# chunk to start sets them and the last one to finish restores them.
_malloc_lock = threading.Lock()
_malloc_users = 0


@contextlib.contextmanager
def malloc_keeps_freed_memory() -> Iterator[None]:
    """Inside: glibc's malloc keeps freed memory for reuse; on leaving, it hands it back.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's
    mmap threshold at 128 KiB: every larger buffer (a decoded image, each activation of a
    forward pass) is mapped and unmapped again, a page fault per 4 KiB touched. Embedding
    4,000 small images on a 2-worker ``LocalCluster``: 360,000-450,000 page faults and 0.7-1.0
    s of kernel time per worker, 2.25-2.6 s wall; without the variable 2,500-4,500, 0.08 s,
    1.28-1.59 s. Chunks run with large thresholds; when the last chunk running in the process
    (a worker may run several in threads) ends, malloc trims once and the variable's setting
    is back. Where the variable is not set (the local pool) nothing changes.
    """
    global _malloc_users
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    libc = _glibc()
    if trim is None or libc is None or not trim.strip().isdigit():
        yield
        return
    with _malloc_lock:
        _malloc_users += 1
        if _malloc_users == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's upper limit on 64-bit
            libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
    try:
        yield
    finally:
        with _malloc_lock:
            _malloc_users -= 1
            if _malloc_users == 0:
                libc.malloc_trim(0)
                libc.mallopt(_M_TRIM_THRESHOLD, int(trim))
                libc.mallopt(_M_MMAP_THRESHOLD, 128 * 2**10)  # glibc's initial value


@functools.cache
def _glibc() -> Any:
    """glibc as a ctypes library, or None (another C library, another system)."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _progress(total: int, desc: str | None, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="it", leave=False)


def pmap(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    chunksize: int | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> list[R]:
    """Apply ``fn`` to every item and return the results in input order.

    Parameters
    ----------
    fn
        A module-level function (it is pickled when a process pool or a cluster runs it).
    items
        The inputs.
    executor
        Any ``concurrent.futures.Executor``; it is used as is and not shut down.
        When ``None``, ``workers`` decides: 1 runs in this process, more use the shared local
        pool (see :func:`local_pool`); fewer than :data:`MIN_PARALLEL_ITEMS` items run in-process.
    workers
        Size of the local pool (default: the usable CPUs). With an ``executor``, the workers the
        default chunk size plans for (default: a Dask cluster's threads, else the usable CPUs).
    chunksize
        Items per task. Default: enough chunks for about 8 per worker (4 on a Dask cluster), at
        most 256 items each on a local pool and 2,048 on any other executor (a cluster's
        per-task overhead is ~10 ms against ~0.1 ms: scanning 10,000 small JPEGs on a 2-worker
        Dask ``LocalCluster`` took 1.548x the local pool's time in chunks of 256, 1.338x in 625
        (8 a worker), 1.197x in 1,250 (4 a worker) and 1.112x in 2,500, medians of 7
        interleaved rounds, the ``chunks`` part of ``benchmarks/bench_scale.py``; the local
        pool's speed is the same at every size).
    progress
        Show a tqdm progress bar.
    desc
        The progress bar's label.
    """
    items = list(items)
    out: list[Any] = [None] * len(items)
    for k, r in pmap_completed(
        fn, items, executor=executor, workers=workers, chunksize=chunksize, progress=progress,
        desc=desc,
    ):  # fmt: skip
        out[k] = r
    return out


def pmap_completed(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    chunksize: int | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> Iterator[tuple[int, R]]:
    """:func:`pmap`'s work, yielded as ``(item index, result)`` as chunks complete.

    For results too large to hold twice: the caller can store each one where it belongs (an
    array filled in place) and let it go. Parameters as for :func:`pmap`; closing the iterator
    early cancels the work still queued.
    """
    items = list(items)
    if workers is not None:
        check_positive_int(workers, "workers")
    if chunksize is not None:
        check_positive_int(chunksize, "chunksize")
    if not items:
        return
    n_workers = workers or default_workers()
    if executor is None and (n_workers == 1 or len(items) < MIN_PARALLEL_ITEMS):
        if not progress:  # no bar to update: a plain loop
            yield from ((k, fn(item)) for k, item in enumerate(items))
            return
        with _progress(len(items), desc, progress) as bar:
            for k, item in enumerate(items):
                yield k, fn(item)
                bar.update(1)
        return

    ex = local_pool(n_workers) if executor is None else executor
    # To Dask, chunks and results travel as pickled bytes: it walks a list argument or result
    # item by item (its driver's CPU per 10,000 scanned files: 0.26 s as lists, 0.08 s as bytes,
    # on the cores its workers need). pure=False: Dask reuses a still-held result of an equal
    # call (its default), so a map right after another over the same items got that one's
    # results, stale after an edit.
    packed = _is_dask(ex)
    if chunksize is None:
        if packed and workers is None:  # the cluster's threads, not this machine's cores
            n_workers = _cluster_threads(ex) or n_workers
        cap = 256 if isinstance(ex, (ProcessPoolExecutor, ThreadPoolExecutor)) else 2048
        per_worker = 4 if packed else 8  # fewer, larger tasks where each costs ~10 ms
        chunksize = max(1, min(cap, len(items) // (per_worker * n_workers) or 1))
    chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]

    def submit(c: list[T]) -> Future:
        if packed:
            return ex.submit(_run_packed, fn, pickle.dumps(c, pickle.HIGHEST_PROTOCOL), pure=False)
        return ex.submit(_run_chunk, fn, c)

    futures: dict[Future, int] = {submit(c): k for k, c in enumerate(chunks)}
    try:
        with _progress(len(items), desc, progress) as bar:
            for fut in as_completed(futures):
                k = futures.pop(fut)
                results = pickle.loads(fut.result()) if packed else fut.result()
                del fut  # Dask keeps a result on its worker while a future to it lives
                bar.update(len(chunks[k]))
                yield from enumerate(results, start=k * chunksize)
    except BaseException:  # an interrupt, a failure or an early close: no work left queued
        for fut in futures:
            fut.cancel()
        raise


def _cluster_threads(ex: Executor) -> int:
    """Worker threads of the cluster behind a Dask client's executor (0 if it cannot say)."""
    try:
        return int(sum(ex._client.nthreads().values()))  # type: ignore[attr-defined]
    except Exception:  # an asynchronous client, or the scheduler gone: the caller's default
        return 0


def _is_dask(ex: Executor) -> bool:
    """Whether ``ex`` is a ``distributed`` client's executor (checked without importing Dask)."""
    cf = sys.modules.get("distributed.cfexecutor")
    return cf is not None and isinstance(ex, cf.ClientExecutor)


# The architecture calls it ``map``; ``pmap`` is the same function without shadowing the builtin.
map = pmap

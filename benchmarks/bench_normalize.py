"""Normalizer.fit against its limit, the bare decode loop over the same files.

    .venv/bin/python benchmarks/bench_normalize.py [--n 2000] [--n16 200] [--rounds 7]

The limit (the peer): per round, the faster of two bare loops over the same files, nothing else:
PIL ``open`` + ``load`` of each path, and the same decode of each file's bytes read in one
call (as ``workbench.io`` reads small files; quicker on small files). A stricter limit beside
it: the fastest of those and a third bare loop, the decoder the fit uses for JPEGs
(libjpeg-turbo through simplejpeg, one array per file). Also shown, informational: the same
loop through ``workbench.io.decode`` (a Pillow image per file, as users call it).
Ours: ``Normalizer().fit(catalog)``: decode, per-channel integer sums, merge, the result.

* 8-bit, 1 worker: 256 px RGB JPEGs (the scan benchmark's files), both in this process, timed in
  CPU seconds of this process; ratio = limit / fit per round, target >= 0.8.
* 8-bit, 2 workers: the bare loops on the same local process pool in the same chunks as the
  fit's, both in wall seconds; per worker, since both sides use the same two workers.
* 16-bit, 1 worker: 512 px gray PNGs (informational, no target).

Method (``_method.py``): an untimed warm-up of each side (imports such as OpenCV happen there
for the fit; the page cache for both), then >= 7 rounds alternating the order, load printed,
median and IQR of the per-round ratio, one line per figure in ``results/bench_normalize.jsonl``
(``python benchmarks/_method.py`` gives the three-invocation verdict).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from _method import Rounds, interleaved, load, record, verdict
from bench_scan import bare_bytes_loop, bare_loop, direct_loop, make_jpegs, with_limit
from PIL import Image

from workbench import Catalog
from workbench.io import decode
from workbench.normalize import Normalizer
from workbench.parallel import local_pool

TARGET = 0.8


def make_png16(root: Path, n: int, side: int = 512) -> list[Path]:
    """``n`` 16-bit gray PNGs (microscope-like: a smooth field plus noise), written once."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:side, 0:side] / side
    paths = [root / f"s{k:05d}.png" for k in range(n)]
    for k, p in enumerate(paths):
        if not p.exists():
            field = 2000 + 6000 * np.exp(-((xx - k % 7 / 7) ** 2 + (yy - 0.5) ** 2) * 8)
            noise = rng.normal(0, 300, (side, side))
            Image.fromarray(np.clip(field + noise, 0, 65535).astype(np.uint16)).save(p)
    return paths


def decode_loop(paths: list[str]) -> None:
    for p in paths:
        decode(p, keep_16bit=True, orient=False)  # a Pillow image (the fit takes JPEG arrays)


def cpu(fn: Callable[[], object]) -> Callable[[], float]:
    def side() -> float:
        t = time.process_time()
        fn()
        return time.process_time() - t

    return side


def wall(fn: Callable[[], object]) -> Callable[[], float]:
    def side() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return side


def fit(cat: Catalog, workers: int) -> None:
    Normalizer().fit(cat, workers=workers, progress=False)


def bare_on_pool(paths: list[str], workers: int, chunk: int, loop=bare_loop) -> None:
    """A bare loop on the pool the fit uses, in chunks of the fit's size."""
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    assert sum(local_pool(workers).map(loop, chunks)) == len(paths)


def catalog_of(paths: list[str], root: Path) -> Catalog:
    """A catalog of exactly these files (scanned outside the timings)."""
    return Catalog.from_dataframe(pd.DataFrame({"path": paths}), root=root, progress=False)


def show(title: str, n: int, rounds: Rounds, names: list[str]) -> None:
    print(f"\n### {title}: {n} images; load before {rounds.load_before}, after {rounds.load_after}")
    print("| side                | images/s | median s |")
    print("|---------------------|---------:|---------:|")
    for name in names:
        print(f"| {name:19s} | {n / rounds.median(name):8.0f} | {rounds.median(name):8.3f} |")
    for limit in ("limit", "fastest")[: 1 + ("fastest" in rounds.times)]:
        r = rounds.ratio(limit, "fit")
        print(f"{limit} / fit: {r.text()}; per round: {', '.join(f'{x:.3f}' for x in r.values)}")


def main() -> None:
    from workbench._moments import _chunk_size

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="8-bit JPEGs")
    ap.add_argument("--n16", type=int, default=200, help="16-bit PNGs (0: skip)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.gettempdir())
    root = tmp / f"wb-bench-scan-{args.n}"  # the scan benchmark's files
    paths = [str(p) for p in make_jpegs(root, args.n)]
    cat = catalog_of(paths, root)
    n = len(paths)
    print(f"Normalizer benchmark: {n} JPEGs 256x256 in {root}, {os.cpu_count()} CPUs, "
          f"load {load()}")  # fmt: skip
    local_pool(2).submit(int).result()

    one = with_limit(
        interleaved(
            {
                "fit": cpu(lambda: fit(cat, 1)),
                "bare": cpu(lambda: bare_loop(paths)),
                "bytes": cpu(lambda: bare_bytes_loop(paths)),
                "direct": cpu(lambda: direct_loop(paths)),
                "workbench decode": cpu(lambda: decode_loop(paths)),
            },
            args.rounds,
        )
    )
    sides = ["bare", "bytes", "direct", "workbench decode", "fit"]
    show("8-bit, 1 worker, CPU s of this process", n, one, sides)
    r1, s1 = one.ratio("limit", "fit"), one.ratio("fastest", "fit")
    record("bench_normalize", "fit 8-bit 1 worker / faster bare decode loop", r1, TARGET)
    record("bench_normalize", "fit 8-bit 1 worker / fastest bare decode loop, direct JPEG "
           "included", s1, TARGET)  # fmt: skip
    print(f"vs the workbench.io.decode loop: {one.ratio('workbench decode', 'fit').text()}")

    chunk = _chunk_size(n)
    two = with_limit(
        interleaved(
            {
                "fit": wall(lambda: fit(cat, 2)),
                "bare": wall(lambda: bare_on_pool(paths, 2, chunk)),
                "bytes": wall(lambda: bare_on_pool(paths, 2, chunk, bare_bytes_loop)),
                "direct": wall(lambda: bare_on_pool(paths, 2, chunk, direct_loop)),
            },
            args.rounds,
        )
    )
    show("8-bit, 2 workers (same pool), wall s", n, two, ["bare", "bytes", "direct", "fit"])
    r2, s2 = two.ratio("limit", "fit"), two.ratio("fastest", "fit")
    record(
        "bench_normalize", "fit 8-bit 2 workers / faster bare decode loop, same pool", r2, TARGET
    )
    record("bench_normalize", "fit 8-bit 2 workers / fastest bare decode loop, direct JPEG "
           "included, same pool", s2, TARGET)  # fmt: skip

    r16 = None
    if args.n16:
        root16 = tmp / "wb-bench-png16"
        paths16 = [str(p) for p in make_png16(root16, args.n16)]
        cat16 = catalog_of(paths16, root16)
        sixteen = with_limit(
            interleaved(
                {
                    "fit": cpu(lambda: fit(cat16, 1)),
                    "bare": cpu(lambda: bare_loop(paths16)),
                    "bytes": cpu(lambda: bare_bytes_loop(paths16)),
                },
                args.rounds,
            )
        )
        title = "16-bit gray PNG 512x512, 1 worker, CPU s"
        show(title, len(paths16), sixteen, ["bare", "bytes", "fit"])
        r16 = sixteen.ratio("limit", "fit")

    print(f"\n8-bit, 1 worker: {verdict(r1, TARGET)}; against the fastest: {verdict(s1, TARGET)}")
    print(f"8-bit, 2 workers, per worker: {verdict(r2, TARGET)}; against the fastest: "
          f"{verdict(s2, TARGET)}")  # fmt: skip
    if r16 is not None:
        print(f"16-bit, 1 worker (no target): {r16.text()}")


if __name__ == "__main__":
    main()

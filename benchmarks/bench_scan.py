"""Scan speed against the decode limit, and catalog memory at 1M rows.

    .venv/bin/python benchmarks/bench_scan.py [--n 5000] [--rows 1000000]

(a) a bare loop of PIL ``open`` + ``load`` over the files: the decode limit for one process;
(b) ``Catalog.from_folder`` with 1 and 2 workers: decode + EXIF + hash + stat + bookkeeping.
Ratios are (b)/(a) per worker; the target is >= 0.85 (bookkeeping costs <= 15 %).
Memory: a fresh process builds a 1,000,000-row catalog table (no files) and reports its RSS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from workbench import Catalog
from workbench.parallel import local_pool


def make_jpegs(folder: Path, n: int, size: int = 256) -> list[Path]:
    """Smooth colour gradients with texture: decode cost like real photos, not like noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    paths = []
    for i in range(n):
        p = folder / f"c{i % 10}" / f"{i:05d}.jpg"
        paths.append(p)
        if p.exists():
            continue
        p.parent.mkdir(exist_ok=True)
        a, b, c = rng.random(3)
        img = np.stack([xx * a, yy * b, (xx + yy) * c / 2], -1) * 255
        img += rng.normal(0, 12, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p, "JPEG", quality=90)
    return paths


def bare_loop(paths: list[Path], clock=time.perf_counter) -> float:
    t = clock()
    for p in paths:
        with Image.open(p) as im:
            im.load()
    return clock() - t


def timed_scan(root: Path, workers: int, clock=time.perf_counter) -> float:
    t = clock()
    cat = Catalog.from_folder(root, workers=workers, progress=False)
    dt = clock() - t
    assert len(cat) and (cat.df["status"] == "ok").all()
    return dt


BUILD_CHILD = r"""
import sys, numpy as np, pandas as pd, pyarrow as pa
from workbench import Workspace
from workbench.catalog import Catalog, _tidy, release_memory
n, ws = int(sys.argv[1]), Workspace(sys.argv[2])
rng = np.random.default_rng(0)
cls = np.array(["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep",
                "zebra"])
lab = pd.Series(cls[rng.integers(0, 10, n)], dtype="str")
ids = lab + "/" + lab + "_" + pd.Series(np.arange(n)).astype("str").str.zfill(7) + ".png"
hexes = rng.bytes(16 * n).hex().encode()
hashes = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, pa.py_buffer(hexes)])
df = pd.DataFrame({
    "id": ids, "path": str(ws.images_dir / "big") + "/" + ids, "label": lab, "split": None,
    "width": np.full(n, 28, "int32"), "height": np.full(n, 28, "int32"), "mode": "L",
    "channels": np.ones(n, "int32"), "bits": np.full(n, 8, "int32"),
    "bytes": rng.integers(200, 500, n),
    "hash": pd.Series(hashes.cast(pa.binary()).cast(pa.string()), dtype="str"),
    "format": "PNG", "status": "ok", "error": "",
})
del ids, lab, hexes, hashes
cat = Catalog(_tidy(df), ws.images_dir / "big")
del df
release_memory()
rss = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
ws.save_catalog(cat)
print(f"{rss:.0f}")
"""

LOAD_CHILD = r"""
import sys
import workbench.catalog
from workbench import Workspace
base = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
cat = Workspace(sys.argv[1]).load_catalog()
rss = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
print(f"{len(cat)} {base:.0f} {rss:.0f} {cat.df.memory_usage(deep=True).sum() / 2**20:.0f}")
"""


def _child(code: str, *args: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    return run.stdout.split()


def memory(rows: int) -> tuple[int, float, float, float, float]:
    """RSS (MB) of a fresh process holding a ``rows``-row catalog: built in memory, and loaded
    from a workspace as a later notebook would; plus the baseline and the table's own size."""
    with tempfile.TemporaryDirectory() as d:
        (built,) = _child(BUILD_CHILD, str(rows), d)
        n, base, loaded, table = _child(LOAD_CHILD, d)
    return int(n), float(base), float(built), float(loaded), float(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "wb-bench-scan"))
    args = ap.parse_args()
    root = Path(args.folder)
    paths = make_jpegs(root, args.n)
    print(f"scan benchmark: {len(paths)} JPEGs 256x256 in {root}, {os.cpu_count()} CPUs")
    bare_loop(paths[:200])  # warm the page cache
    local_pool(2).submit(int).result()  # start the pool outside the timing (it is reused)
    # Interleaved, best of 3. Single-process runs are timed in CPU time of this process, which
    # other load on a shared machine barely moves; the 2-worker run can only be wall time.
    cpu = time.process_time
    runs = [
        (bare_loop(paths, cpu), timed_scan(root, 1, cpu), timed_scan(root, 2), bare_loop(paths))
        for _ in range(3)
    ]
    bare, one, two, bare_wall = (min(r[k] for r in runs) for k in range(4))
    n = len(paths)
    print()
    print("| what                             | images/s | ratio to (a) | per worker |")
    print("|----------------------------------|---------:|-------------:|-----------:|")
    print(f"| (a) bare PIL open+load, 1 proc   | {n / bare:8.0f} |         1.00 |       1.00 |")
    print(
        f"| (b) Catalog.from_folder, 1 worker| {n / one:8.0f} | {bare / one:12.2f} | "
        f"{bare / one:10.2f} |"
    )
    print(
        f"| (b) Catalog.from_folder, 2 worker| {n / two:8.0f} | {bare_wall / two:12.2f} | "
        f"{bare_wall / two / 2:10.2f} |"
    )
    print("(1-process rows in CPU time; the 2-worker row in wall time against the bare loop's)")
    verdict = "meets" if bare / one >= 0.85 else "MISSES"
    print(
        f"\n1-worker scan runs at {bare / one:.2f}x the bare decode loop: "
        f"{verdict} the >= 0.85 target"
    )
    rows, base, built, loaded, table = memory(args.rows)
    print(f"\nmemory of a {rows:,}-row catalog (no files), RSS of a fresh process:")
    print("| process                                   | RSS MB |")
    print("|-------------------------------------------|-------:|")
    print(f"| interpreter + pandas + workbench imports  | {base:6.0f} |")
    print(f"| catalog built in memory                   | {built:6.0f} |")
    print(f"| catalog loaded from a workspace           | {loaded:6.0f} |")
    print(
        f"(the table itself: {table:.0f} MB); target under 400 MB: "
        f"{'meets' if max(built, loaded) < 400 else 'MISSES'}"
    )


if __name__ == "__main__":
    main()

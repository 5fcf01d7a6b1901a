"""Scan speed against the decode limit, and catalog memory at 1M rows.

    .venv/bin/python benchmarks/bench_scan.py [--n 2000] [--rounds 7] [--rows 1000000] [--stages 1]

The limit (the peer): a bare loop of PIL ``open`` + ``load`` over the same files, nothing else;
and the same loop decoding each file's bytes read in one call (as the scan reads files up to
1 MiB), which is quicker on small files. Per round, the faster of the two is the limit.
A stricter limit beside it: per round the fastest of those two and a third bare loop, the
decoder the scan uses for JPEGs (libjpeg-turbo through simplejpeg, one array per file) on the
bytes read in one call.
Ours: ``Catalog.from_folder`` (walk, one read of each small file, decode, EXIF orientation,
content hash, the table).

* 1 worker: both in this process, timed in CPU seconds of this process (other jobs on a shared
  machine move it far less than wall time); ratio = limit / scan per round, target >= 0.85.
* 2 workers: the bare loops run on the same local process pool (started, and its workers
  warmed, before the rounds), over the same files in the same chunks; both in wall seconds;
  the ratio is per worker because both sides use the same two workers; target >= 0.85.

Stages (``--stages``, on by default): where a scan's time goes beyond the bare loop, per file,
in CPU µs of this thread (``time.thread_time_ns`` around each stage, its own cost subtracted),
the same files, the scan's stages and the bare loop's alternating for ``--rounds`` rounds. The
scan's stages are those of a plain JPEG (no EXIF, one picture: these files): read, header
(our marker walk and libjpeg's header), decode into one array, hash of that array.

Method (``_method.py``): an untimed warm-up of each side, then >= 7 rounds alternating the
order, machine load printed, median and IQR of the per-round ratio, one line per figure in
``results/bench_scan.jsonl`` (``python benchmarks/_method.py`` gives the three-invocation
verdict). Memory: a fresh process builds a 1,000,000-row catalog table (no files), its RSS.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg
import xxhash
from _method import Rounds, interleaved, load, record, verdict
from PIL import Image

from workbench import Catalog
from workbench import io as wio
from workbench.parallel import local_pool

TARGET = 0.85


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


def bare_loop(paths: list[str]) -> int:
    """The decode limit: PIL open + load of every file, nothing else."""
    for p in paths:
        with Image.open(p) as im:
            im.load()
    return len(paths)


def bare_bytes_loop(paths: list[str]) -> int:
    """The same decode from each file's bytes read in one call (as the scan reads small files):
    Pillow's open of a path reads through a buffered file in many small reads."""
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    return len(paths)


def direct_loop(paths: list[str]) -> int:
    """The bytes read in one call, decoded by libjpeg-turbo (simplejpeg) into one array: the
    decoder the scan uses for JPEGs, with nothing around it (no header parse by Pillow)."""
    for p in paths:
        with open(p, "rb") as f:
            simplejpeg.decode_jpeg(f.read())
    return len(paths)


def cpu_timed(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def wall_timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def scan(root: Path, workers: int) -> None:
    cat = Catalog.from_folder(root, workers=workers, progress=False)
    assert len(cat) and (cat.df["status"] == "ok").all()


def bare_on_pool(paths: list[str], workers: int, loop=bare_loop) -> None:
    """A bare loop on the local pool that the scan uses, in the chunks ``pmap`` would send."""
    pool = local_pool(workers)
    size = max(1, min(256, len(paths) // (8 * workers) or 1))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    assert sum(pool.map(loop, chunks)) == len(paths)


def with_limit(r: Rounds) -> Rounds:
    """Adds the sides "limit" (per round, the faster of Pillow's two bare loops) and "fastest"
    (the fastest of all three, the direct decode included)."""
    t = r.times
    t["limit"] = [min(a, b) for a, b in zip(t["bare"], t["bytes"], strict=True)]
    if "direct" in t:
        t["fastest"] = [min(a, b) for a, b in zip(t["limit"], t["direct"], strict=True)]
    return r


def speed(root: Path, n: int, rounds: int) -> None:
    paths = [str(p) for p in make_jpegs(root, n)]
    if len(list(root.rglob("*.jpg"))) != n:
        raise SystemExit(f"{root} holds other files than the {n} made here: pass a new --folder")
    print(f"scan benchmark: {n} JPEGs 256x256 in {root}, {os.cpu_count()} CPUs, load {load()}")
    # Warm-up, alike for both sides: the page cache, the pool's workers and their imports.
    bare_loop(paths)
    local_pool(2).submit(int).result()
    rows = []
    one = with_limit(
        interleaved(
            {
                "bare": lambda: cpu_timed(lambda: bare_loop(paths)),
                "bytes": lambda: cpu_timed(lambda: bare_bytes_loop(paths)),
                "direct": lambda: cpu_timed(lambda: direct_loop(paths)),
                "scan": lambda: cpu_timed(lambda: scan(root, 1)),
            },
            rounds,
        )
    )
    r1, s1 = one.ratio("limit", "scan"), one.ratio("fastest", "scan")
    rows.append(("1 worker, CPU s of this process", one, r1, s1))
    record("bench_scan", "scan 1 worker / faster bare decode loop", r1, TARGET)
    record("bench_scan", "scan 1 worker / fastest bare decode loop, direct JPEG included", s1,
           TARGET)  # fmt: skip
    two = with_limit(
        interleaved(
            {
                "bare": lambda: wall_timed(lambda: bare_on_pool(paths, 2)),
                "bytes": lambda: wall_timed(lambda: bare_on_pool(paths, 2, bare_bytes_loop)),
                "direct": lambda: wall_timed(lambda: bare_on_pool(paths, 2, direct_loop)),
                "scan": lambda: wall_timed(lambda: scan(root, 2)),
            },
            rounds,
        )
    )
    r2, s2 = two.ratio("limit", "scan"), two.ratio("fastest", "scan")
    rows.append(("2 workers (same pool), wall s", two, r2, s2))
    record("bench_scan", "scan 2 workers / faster bare decode loop, same pool", r2, TARGET)
    record("bench_scan", "scan 2 workers / fastest bare decode loop, direct JPEG included, same "
           "pool", s2, TARGET)  # fmt: skip
    print()
    print("| run                             | bare img/s | bytes img/s | direct img/s | "
          "scan img/s | Pillow limit / scan | fastest / scan |")  # fmt: skip
    print("|---------------------------------|-----------:|------------:|-------------:|"
          "-----------:|---------------------|----------------|")  # fmt: skip
    for name, r, ratio, strict in rows:
        print(
            f"| {name:31s} | {n / r.median('bare'):10.0f} | {n / r.median('bytes'):11.0f} | "
            f"{n / r.median('direct'):12.0f} | {n / r.median('scan'):10.0f} | {ratio.text()} | "
            f"{strict.text()} |"
        )
        print(
            f"  per round: {', '.join(f'{x:.3f}' for x in ratio.values)} (fastest: "
            f"{', '.join(f'{x:.3f}' for x in strict.values)}); load before {r.load_before}, "
            f"after {r.load_after}"
        )
    print(f"\n1 worker: {verdict(r1, TARGET)}; against the fastest: {verdict(s1, TARGET)}")
    print(
        f"2 workers, per worker: {verdict(r2, TARGET)}; against the fastest: {verdict(s2, TARGET)}"
    )


def _stage_round(paths: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """One pass of the scan's stages and one of the bare loop, per-stage CPU ns summed."""
    tt = time.thread_time_ns
    ours = dict.fromkeys(
        ("open, fstat, read", "header", "decode", "hash: xxh3", "row tuple"), 0
    )  # fmt: skip
    bare = dict.fromkeys(("header", "decode", "close"), 0)
    quiet = wio.quiet_bomb_warnings()  # as the scan: one warnings filter per batch of files
    quiet.__enter__()
    for p in paths:  # the scan's path for a plain JPEG (no EXIF, one picture), as here
        t0 = tt()
        data, size = wio._read_regular(p)  # the file's bytes in one call (small files)
        t2 = tt()
        plain = wio._no_rotation_or_frames(data)  # the marker walk, then libjpeg's header
        hh, ww, space, _ = simplejpeg.decode_jpeg_header(data)
        t3 = tt()
        direct = wio._decode_jpeg(data, wio._JPEG_MODES[wio._JPEG_SPACES[space]])
        t5 = tt()
        h = xxhash.xxh3_128(f"RGB:{ww}x{hh}:".encode())
        h.update(direct)
        digest = h.hexdigest()
        t8 = tt()
        row = (ww, hh, "RGB", 3, 8, size, digest, "JPEG", "ok", "")
        t9 = tt()
        assert plain and direct is not None
        del row, direct, data
        for k, dt in zip(ours, (t2 - t0, t3 - t2, t5 - t3, t8 - t5, t9 - t8), strict=True):
            ours[k] += dt
    quiet.__exit__(None, None, None)
    for p in paths:
        t0 = tt()
        im = Image.open(p)
        t1 = tt()
        im.load()
        t2 = tt()
        im.close()
        t3 = tt()
        bare["header"] += t1 - t0
        bare["decode"] += t2 - t1
        bare["close"] += t3 - t2
    return ours, bare


def stages(paths: list[str], rounds: int) -> None:
    """Per-stage µs per file, ours against the bare loop (medians over rounds)."""
    tt = time.thread_time_ns
    t = tt()
    for _ in range(100_000):
        tt()
    timer = (tt() - t) / 100_000  # one timer call, subtracted once per stage
    _stage_round(paths)  # warm-up
    runs = [_stage_round(paths) for _ in range(rounds)]
    n = len(paths)

    def med(i: int, k: str) -> float:
        return max(0.0, float(np.median([r[i][k] for r in runs])) / n / 1000 - timer / 1000)

    bare_total = sum(med(1, k) for k in runs[0][1])
    print(f"\nper-stage CPU µs per file ({n} files, {rounds} rounds, medians; load {load()}):")
    print("| stage                       | scan µs | bare µs | scan extra, % of bare |")
    print("|-----------------------------|--------:|--------:|----------------------:|")
    ours_total = 0.0
    for k in runs[0][0]:
        o = med(0, k)
        b = med(1, k) if k in runs[0][1] else 0.0
        ours_total += o
        print(f"| {k:27s} | {o:7.1f} | {b:7.1f} | {100 * (o - b) / bare_total:20.1f}% |")
    print(f"| {'close':27s} | {0.0:7.1f} | {med(1, 'close'):7.1f} | {'':21s} |")
    print(f"| {'total':27s} | {ours_total:7.1f} | {bare_total:7.1f} | "
          f"{100 * (ours_total - bare_total) / bare_total:20.1f}% |")  # fmt: skip
    hashing = med(0, "hash: xxh3")
    print(
        f"bare / (sum of the scan's stages) = {bare_total / ours_total:.3f}; without the hash "
        f"(the content hash the scan must report): {bare_total / (ours_total - hashing):.3f}"
    )


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
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rows", type=int, default=1_000_000, help="0 skips the memory part")
    ap.add_argument("--stages", type=int, default=1, help="0 skips the per-stage breakdown")
    ap.add_argument("--folder", help="default: <tmp>/wb-bench-scan-<n>")
    args = ap.parse_args()
    folder = args.folder or os.path.join(tempfile.gettempdir(), f"wb-bench-scan-{args.n}")
    speed(Path(folder), args.n, args.rounds)
    if args.stages:
        stages(sorted(str(p) for p in Path(folder).rglob("*.jpg")), args.rounds)
    if not args.rows:
        return
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

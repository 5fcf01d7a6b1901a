"""Scale: every batch step at 10k and 100k images, local process pool against a Dask cluster.

Three parts (``python benchmarks/bench_scale.py <part> --help``):

* ``steps``: per size (default 10,000 and 100,000 small JPEGs with planted exact and near
  duplicates, generated once under /tmp and reused) and per step (scan, all checks,
  near-duplicate groups, normalizer, embeddings at 32 px, propagation graph): wall time and
  peak RSS of the process that drives the step (the kernel's share: no pixels may be held
  there), local pool against a Dask ``LocalCluster`` with the same number of worker processes.
  Each measurement is a fresh child process; the engine is started and warmed up before the
  clock starts (alike for both). Targets: growth 10k -> 100k within 12x per step, Dask within
  1.3x of the local pool (median ratio over interleaved rounds, ``_method.py``).
* ``chunks``: per-task overhead: items/s of the scan kernel at several chunk sizes, local pool
  against Dask.
* ``ann``: recall@10 and build + query time of the k-NN graph of embeddings for
  ``workbench.ann`` (its cells and its HNSW), hnswlib, faiss-cpu (IVF-Flat with our cells and
  probes, HNSW, exact flat) and pynndescent, at several sizes.

The final command (run three times on a quiet machine)::

    python benchmarks/bench_scale.py steps --sizes 10000,100000 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _method import interleaved, load, record, verdict

DATA = Path("/tmp/bench_scale")
STEPS = ["scan", "checks", "near_duplicates", "normalizer", "embeddings", "graph"]
ENGINES = ["local", "dask"]
WORKERS = 2
EMBED_SIZE = 32  # "embeddings at a reduced size": the cost is the decode + a small forward pass


# ------------------------------------------------------------------------------ data
def _write_one(task: tuple[str, int, int]) -> None:
    """One 48x48 JPEG: a seeded blob picture; every 50th is a near copy (brightness, re-encode)."""
    from PIL import Image, ImageEnhance

    path, seed, source = task
    rng = np.random.default_rng(source)
    base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((48, 48), Image.Resampling.BICUBIC)
    if seed != source:  # a planted near duplicate of ``source``
        im = ImageEnhance.Brightness(im).enhance(1.08)
    im.save(path, "JPEG", quality=90 if seed == source else 80)


def dataset(n: int) -> Path:
    """``/tmp/bench_scale/jpeg<n>``: n JPEGs in 10 class folders; 1 % exact byte copies and
    2 % near copies of earlier images. Written once (a ``done`` marker) and reused."""
    import shutil

    from workbench.parallel import pmap

    root = DATA / f"jpeg{n}"
    if (root / "done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
    rng = np.random.default_rng(n)
    tasks, copies = [], []
    for i in range(n):
        path = str(root / f"c{i % 10}" / f"{i:07d}.jpg")
        r = rng.random()
        if i > 100 and r < 0.01:
            copies.append((path, int(rng.integers(0, i))))
        elif i > 100 and r < 0.03:
            tasks.append((path, i, int(rng.integers(0, i))))
        else:
            tasks.append((path, i, i))
    pmap(_write_one, tasks, workers=WORKERS, progress=False)
    for path, src in copies:
        shutil.copyfile(root / f"c{src % 10}" / f"{src:07d}.jpg", path)
    (root / "done").write_text(f"{n} files, {len(copies)} exact copies\n")
    return root


def prepare(n: int) -> Path:
    """Dataset, its catalog and its embeddings (inputs of the later steps), made once."""
    from workbench import Catalog, Workspace
    from workbench.embed import Embedder

    root = dataset(n)
    ws = Workspace(DATA / f"ws{n}")
    if not ws.file("catalog").exists():
        ws.save(Catalog.from_folder(root, workers=WORKERS, progress=False))
    emb = DATA / f"emb{n}.npy"
    if not emb.exists():
        cat = ws.load("catalog").ok
        np.save(emb, Embedder(image_size=EMBED_SIZE).embed(cat, workers=WORKERS, progress=False))
    return root


# ------------------------------------------------------------------------------ one step
def _engine(name: str):
    """``(executor, close)`` started and warmed up: workers exist before the clock starts."""
    from workbench.parallel import local_pool, pmap

    if name == "local":
        ex = local_pool(WORKERS)
        pmap(abs, range(-200, 200), executor=ex, progress=False)
        return ex, lambda: None
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    )  # fmt: skip
    client = distributed.Client(cluster)
    ex = client.get_executor()
    pmap(abs, range(-200, 200), executor=ex, progress=False)
    return ex, lambda: (client.close(), cluster.close())


def _do(step: str, root: Path, catalog, X, ex) -> None:
    """The step itself, as a user would call it."""
    from workbench import Catalog, clean
    from workbench.assist import _scale_stats
    from workbench.embed import Embedder
    from workbench.normalize import Normalizer
    from workbench.propagation import _KnnGraph

    if step == "scan":
        Catalog.from_folder(root, executor=ex, progress=False)
    elif step == "checks":
        clean.check(catalog, executor=ex, progress=False)
    elif step == "near_duplicates":
        report = clean.check(
            catalog, checks=["exact_duplicate", "near_duplicate"], executor=ex, progress=False
        )
        report.groups("near_duplicate")
    elif step == "normalizer":
        Normalizer().fit(catalog, executor=ex, progress=False)
    elif step == "embeddings":
        Embedder(image_size=EMBED_SIZE).embed(catalog.ok, executor=ex, progress=False)
    elif step == "graph":  # in-process numerics: the engine does not take part
        _KnnGraph(X, _scale_stats(X))  # as Assistant(scale_on=X, propagation=...) builds it


def _peak_rss_mib() -> float:
    """This process's own peak RSS (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux keeps
    that across ``execve``, so a child started by a large parent reports the parent's size
    (a child of an 800 MiB parent: 813 MiB against its own 13)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_step(step: str, n: int, engine: str) -> dict[str, float]:
    """Run one step once in this process; wall seconds and this process's peak RSS (MiB).

    Before the clock starts, the engine's workers exist and have run the same step on the
    first 64 images (imports, the embedding model): alike for both engines.
    """
    from workbench import Workspace

    root = DATA / f"jpeg{n}"
    catalog = Workspace(DATA / f"ws{n}").load("catalog")
    X = np.load(DATA / f"emb{n}.npy") if step == "graph" else None
    ex, close = _engine(engine)
    warm = DATA / "warmup"
    if not (warm / "done").exists():
        import shutil

        warm.mkdir(parents=True, exist_ok=True)
        for p in sorted((root / "c0").iterdir())[:64]:
            shutil.copyfile(p, warm / p.name)
        (warm / "done").touch()
    small = catalog.filter(catalog.df["id"].isin(catalog.df["id"].head(64)))
    _do(step, warm, small, None if X is None else X[:64], ex)
    rss0 = _peak_rss_mib()
    t = time.perf_counter()
    _do(step, root, catalog, X, ex)
    dt = time.perf_counter() - t
    rss = _peak_rss_mib()
    close()
    return {"seconds": dt, "rss_mib": rss, "rss_before_mib": rss0}


def _child(step: str, n: int, engine: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "_one", step, str(n), engine],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{step} {n} {engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def steps(sizes: list[int], rounds: int, only: list[str]) -> None:
    for n in sizes:
        t = time.perf_counter()
        prepare(n)
        print(f"# data for {n:,}: ready ({time.perf_counter() - t:.0f} s)", flush=True)
    table: dict[tuple[str, int], dict[str, float]] = {}
    print(f"# load before: {load()}; {WORKERS} worker processes per engine")
    print("step             size      local s   dask s   dask/local (median, IQR)    "
          "kernel peak RSS MiB (local/dask)")  # fmt: skip
    for step in only:
        for n in sizes:
            rss: dict[str, list[float]] = {e: [] for e in ENGINES}
            grew: dict[str, list[float]] = {e: [] for e in ENGINES}

            def side(engine: str, step: str = step, n: int = n, rss: dict = rss, grew: dict = grew):
                def run() -> float:
                    got = _child(step, n, engine)
                    rss[engine].append(got["rss_mib"])
                    grew[engine].append(got["rss_mib"] - got["rss_before_mib"])
                    return got["seconds"]

                return run

            r = interleaved({e: side(e) for e in ENGINES}, rounds=rounds)
            ratio = r.ratio("dask", "local")
            table[(step, n)] = {"local": r.median("local"), "dask": r.median("dask")}
            print(
                f"{step:16s} {n:>7,} {r.median('local'):9.2f} {r.median('dask'):8.2f}   "
                f"{verdict(ratio, 1.3, higher_is_better=False)}   "
                f"{max(rss['local']):.0f}/{max(rss['dask']):.0f} "
                f"(+{max(grew['local']):.0f}/+{max(grew['dask']):.0f} in the step)",
                flush=True,
            )
            record("bench_scale", f"{step}-{n}-dask/local", ratio, 1.3, higher_is_better=False)
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        print(f"# growth {small:,} -> {big:,} (target <= 12x per step; local pool medians)")
        for step in only:
            g = table[(step, big)]["local"] / table[(step, small)]["local"]
            gd = table[(step, big)]["dask"] / table[(step, small)]["dask"]
            met = "met" if max(g, gd) <= 12 else "MISSED"
            print(f"{step:16s} local {g:6.2f}x  dask {gd:6.2f}x  {met}")
    print(f"# load after: {load()}")


# ------------------------------------------------------------------------------ chunks
def chunks(n: int, sizes: list[int], rounds: int) -> None:
    """Items/s of the scan kernel per chunk size, local pool against Dask (per-task overhead)."""
    import distributed

    from workbench.catalog import scan_file
    from workbench.parallel import local_pool, pmap

    root = dataset(n)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    pool = local_pool(WORKERS)
    with (
        distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=None) as lc,
        distributed.Client(lc) as client,
    ):  # fmt: skip
        dask = client.get_executor()
        print(f"# {len(paths):,} files; load before: {load()}")
        print("chunk   local items/s   dask items/s   dask/local time (median, IQR)")
        for size in sizes:

            def side(ex, size=size):
                def run() -> float:
                    t = time.perf_counter()
                    pmap(scan_file, paths, executor=ex, chunksize=size, progress=False)
                    return time.perf_counter() - t

                return run

            r = interleaved({"local": side(pool), "dask": side(dask)}, rounds=rounds)
            print(
                f"{size:5d} {len(paths) / r.median('local'):14.0f} "
                f"{len(paths) / r.median('dask'):14.0f}   {r.ratio('dask', 'local').text()}",
                flush=True,
            )
        print(f"# load after: {load()}")


# ------------------------------------------------------------------------------ ann
def ann(emb: Path, sizes: list[int], libs: list[str]) -> None:
    """Recall@10 and build + query seconds of the self k-NN graph (every row's 10 nearest), per
    library and size; recall on 1,000 probe rows against exact search (matrix products).

    Sizes beyond the file's rows tile it with 5 % Gaussian noise per copy (same geometry,
    no exact repeats). Rows are standardised and L2-normalised as the propagation graph does.
    """
    import torch

    base = np.load(emb).astype(np.float32)
    rng = np.random.default_rng(0)
    k = 10
    print(f"# {emb} {base.shape}; load before: {load()}")
    print("rows      library          seconds   recall@10")
    for n in sizes:
        reps = -(-n // len(base))
        noise = base.std() * 0.05
        X = np.concatenate(
            [base + (rng.normal(0, noise, base.shape).astype(np.float32) if r else 0)
             for r in range(reps)]
        )[:n]  # fmt: skip
        Z = (X - X.mean(0)) / (X.std(0) + 1e-6)
        Z = np.ascontiguousarray(Z / np.linalg.norm(Z, axis=1, keepdims=True), dtype=np.float32)
        probes = np.sort(rng.choice(n, min(n, 1000), replace=False))
        sim = Z[probes] @ Z.T
        sim[np.arange(len(probes)), probes] = -np.inf  # not its own neighbour
        ref = torch.topk(torch.from_numpy(sim), k, dim=1).indices.numpy()
        del sim
        for lib in libs:
            t = time.perf_counter()
            got = _ann_graph(lib, Z, k + 1)
            dt = time.perf_counter() - t
            rec = np.mean(
                [len(set(a[a != i][:k]) & set(b)) / k
                 for i, a, b in zip(probes, got[probes], ref, strict=True)]
            )  # fmt: skip
            print(f"{n:<9,} {lib:15s} {dt:8.2f}   {rec:.4f}", flush=True)
    print(f"# load after: {load()}")


def _ann_graph(lib: str, Z: np.ndarray, k: int) -> np.ndarray:
    if lib.startswith("workbench.ann"):  # workbench.ann (its default), workbench.ann-hnsw
        from workbench.ann import NeighborIndex

        approximate = lib.partition("-")[2] or None
        return NeighborIndex(Z, exact=False, approximate=approximate).query(Z, k)[1]
    if lib == "faiss-ivf":  # IndexIVFFlat with our cells and probes: the same search, per query
        import faiss

        from workbench.ann import CELL_ROWS, _cells_probed

        cells = max(1, round(len(Z) / CELL_ROWS))
        ix = faiss.IndexIVFFlat(faiss.IndexFlatL2(Z.shape[1]), Z.shape[1], cells)
        ix.train(Z[np.random.default_rng(0).choice(len(Z), min(len(Z), 256 * cells), False)])
        ix.add(Z)
        ix.nprobe = _cells_probed(cells)
        return ix.search(Z, k)[1]
    if lib == "hnswlib":  # its README's parameters, all cores
        import hnswlib

        p = hnswlib.Index(space="l2", dim=Z.shape[1])
        p.init_index(max_elements=len(Z), ef_construction=200, M=16, random_seed=0)
        p.add_items(Z)
        p.set_ef(64)
        return p.knn_query(Z, k=k)[0]
    if lib == "faiss-hnsw":
        import faiss

        ix = faiss.IndexHNSWFlat(Z.shape[1], 16)
        ix.hnsw.efConstruction = 200
        ix.add(Z)
        ix.hnsw.efSearch = 64
        return ix.search(Z, k)[1]
    if lib == "faiss-flat":
        import faiss

        ix = faiss.IndexFlatL2(Z.shape[1])
        ix.add(Z)
        return ix.search(Z, k)[1]
    if lib == "pynndescent":  # its defaults; the numba compile is part of a fresh process's cost
        import pynndescent

        return pynndescent.NNDescent(Z, n_neighbors=k, random_state=0).neighbor_graph[0]
    raise SystemExit(f"unknown library {lib}")


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("steps", help="every step per size, local pool vs Dask")
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", default=",".join(STEPS))
    p = sub.add_parser("chunks", help="per-task overhead: items/s per chunk size")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--chunks", default="1,16,64,256,1024")
    p.add_argument("--rounds", type=int, default=7)
    p = sub.add_parser("ann", help="recall@10 and time per library and size")
    p.add_argument("--emb", type=Path, required=True, help=".npy of embeddings")
    p.add_argument("--sizes", default="5000,10000,20000,40000")
    p.add_argument(
        "--libs",
        default="workbench.ann,workbench.ann-hnsw,faiss-ivf,hnswlib,faiss-hnsw,faiss-flat,pynndescent",
    )
    p = sub.add_parser("_one")  # internal: one step in a fresh process
    p.add_argument("step")
    p.add_argument("n", type=int)
    p.add_argument("engine")
    a = parser.parse_args(argv)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    if a.part == "steps":
        steps(ints(a.sizes), a.rounds, a.steps.split(","))
    elif a.part == "chunks":
        chunks(a.n, ints(a.chunks), a.rounds)
    elif a.part == "ann":
        ann(a.emb, ints(a.sizes), a.libs.split(","))
    else:
        print(json.dumps(run_step(a.step, a.n, a.engine)))


if __name__ == "__main__":
    main()

"""Labeling benchmarks.

    .venv/bin/python benchmarks/bench_label.py [--part active|interaction|store|all]
        [--workspace DIR] [--image-size 0] [--seeds 3] [--scale-on labels|pool|both]
        [--propagation 0.5]
        [--items 200] [--think 0.05] [--events 800] [--rounds 7]

Active learning (``--part active``): on the animals sample (10,000 silhouettes, 10 classes) with
the true labels as the oracle, start from 10 labels (one per class) and label in batches in the
order each strategy gives (``random``, ``least_confidence``, ``margin``, ``entropy``, each with
and without ``diversity``), refitting the :class:`~workbench.assist.Assistant` after every batch.
Batches are 10 labels up to 200, then 10 % of the labels so far (the refits a labeler would
see). Accuracy is measured on a fixed held-out set of 2,000 and averaged over seeds. Printed:
accuracy after 50, 100, 200, 400, 800 labels; the labels each order needs to reach 90 % of the
accuracy with all 8,000 pool labels (interpolated between refits); the ratio to random.
Target: an uncertainty order needs <= 50 % of random's labels. Two tables: the default
``Assistant()`` (features standardised with the labelled samples' mean and std) and
``Assistant(scale_on=pool embeddings, propagation=0.5)`` (standardised with the mean and std of
all 8,000 pool images, whatever is labelled, and blended with label propagation over their k-NN
graph); each order's ratio is to random order with the same Assistant.

Embeddings are ``Embedder()``'s defaults (mobilenet_v2 at its native 224 px; ``--image-size 96``
is 5x faster to embed and needs more labels), from the workspace cache (computed once; pass
``--workspace`` to keep them).

Interaction latency (``--part interaction``): kernel-side time from ``Labeler.submit`` to the next
image's bytes on the widget, p50/p95 over 200 items, with and without prefetch (target p95 <= 50
ms with prefetch). Store throughput (``--part store``): durable events/s on SQLite and on PostgreSQL
(a throw-away local server) from 1 writer and from 8 processes, beside the bare driver loops.
Details in the section comment below.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np

from workbench import Workspace, samples
from workbench.assist import Assistant, Embedder, order

CHECKPOINTS = (50, 100, 200, 400, 800)
STRATEGIES = ("random", "least_confidence", "margin", "entropy")


def schedule(start: int, stop: int, checkpoints: tuple[int, ...] = CHECKPOINTS) -> list[int]:
    """Label counts after each batch: +10 up to 200, then +10 %, landing on every checkpoint."""
    sizes, n = [start], start
    while n < stop:
        step = 10 if n < 200 else max(10, n // 10)
        nxt = min((c for c in checkpoints if c > n), default=stop)
        n = min(n + step, nxt, stop)
        sizes.append(n)
    return sizes


def run_order(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    strategy: str,
    diversity: float,
    seed: int,
    sizes: list[int],
    scale_on: np.ndarray | None = None,
    propagation: float = 0.0,
) -> np.ndarray:
    """Held-out accuracy after each entry of ``sizes`` labels, labeling in this order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    labeled = [int(rng.choice(np.flatnonzero(y == c))) for c in classes]  # 1 per class
    unlabeled = np.setdiff1d(np.arange(len(y)), labeled)
    model = Assistant(scale_on=scale_on, propagation=propagation, cv=None, random_state=seed)
    acc = []
    for target in sizes:
        if target > len(labeled):
            probs = model.predict_proba(X[unlabeled])
            pick = order(
                probs,
                strategy,
                batch=target - len(labeled),
                embeddings=X[unlabeled] if diversity else None,
                diversity=diversity,
                seed=seed * 1000 + len(labeled),
            )
            labeled.extend(unlabeled[pick].tolist())
            unlabeled = np.delete(unlabeled, pick)
        model.fit(X[labeled], y[labeled])
        acc.append(model.score(X_test, y_test))
    return np.array(acc)


def labels_needed(sizes: list[int], acc: np.ndarray, target: float) -> float:
    """First label count where ``acc`` reaches ``target`` (linear between refits); inf if never."""
    for i, a in enumerate(acc):
        if a >= target:
            if i == 0:
                return float(sizes[0])
            a0, n0, n1 = acc[i - 1], sizes[i - 1], sizes[i]
            return n0 + (target - a0) / (a - a0) * (n1 - n0)
    return float("inf")


def _fmt_needed(n: float, limit: int) -> str:
    return f">{limit}" if np.isinf(n) else f"{n:.0f}"


def active_learning(args: argparse.Namespace) -> None:
    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-label-")
        ws = Workspace(tmp.name)
    else:
        ws = Workspace(args.workspace)
    try:
        _active_learning(args, ws)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _active_learning(args: argparse.Namespace, ws: Workspace) -> None:
    cat = samples.load("animals", ws, progress=False)
    emb = Embedder(image_size=args.image_size, batch_size=64)
    X = emb.embed(cat, cache=ws, progress=False)
    s = emb.stats_
    size = args.image_size or "native (224)"
    if s["computed"]:
        print(
            f"embedded {s['computed']:,} images in {s['seconds']:.1f} s "
            f"({s['images_per_second']:.0f} images/s, mobilenet_v2, image_size {size}); "
            f"cached in {emb.cache_path(ws)}"
        )
    else:
        print(f"embeddings from the cache ({emb.cache_path(ws)}), image_size {size}")
    y = cat.df["label"].astype(str).to_numpy()

    split = np.random.default_rng(12345).permutation(len(y))
    test, pool = split[: args.test], split[args.test :]
    X_test, y_test, X_pool, y_pool = X[test], y[test], X[pool], y[pool]

    t = time.perf_counter()
    full = Assistant(cv=None).fit(X_pool, y_pool)
    fit_all = time.perf_counter() - t
    _timings(X_pool, y_pool, fit_all)

    sizes = schedule(len(np.unique(y)), args.max_labels)
    blocks = {
        "labels": ("Assistant(): standardised with the labelled samples' mean and std", None),
        "pool": (
            f"Assistant(scale_on=X_pool, propagation={args.propagation:g}): standardised with the "
            "pool's mean and std, blended with label propagation over the pool's k-NN graph",
            X_pool,
        ),
    }
    for key in ("labels", "pool") if args.scale_on == "both" else (args.scale_on,):
        title, scale_on = blocks[key]
        propagation = 0.0 if scale_on is None else args.propagation
        if scale_on is not None:
            full = Assistant(scale_on=scale_on, propagation=propagation, cv=None)
            full.fit(X_pool, y_pool)
        full_acc = full.score(X_test, y_test)
        target = 0.9 * full_acc
        print(
            f"\n{title}\nall {len(pool):,} pool labels: held-out accuracy {full_acc:.3f}; "
            f"target (90 %) {target:.3f}; held-out set {len(test):,}; seeds {args.seeds}\n"
        )
        rows: list[tuple[str, np.ndarray, np.ndarray, float, float]] = []
        for strategy in STRATEGIES:
            for diversity in (0.0, args.diversity):
                t = time.perf_counter()
                runs = np.stack(
                    [
                        run_order(
                            X_pool,
                            y_pool,
                            X_test,
                            y_test,
                            strategy,
                            diversity,
                            seed,
                            sizes,
                            scale_on=scale_on,
                            propagation=propagation,
                        )
                        for seed in range(args.seeds)
                    ]
                )
                mean, std = runs.mean(0), runs.std(0)
                name = strategy + (f" +div {diversity:g}" if diversity else "")
                needed = labels_needed(sizes, mean, target)
                rows.append((name, mean, std, needed, time.perf_counter() - t))
        _table(rows, sizes, args.max_labels)


def _timings(X: np.ndarray, y: np.ndarray, fit_all: float) -> None:
    rng = np.random.default_rng(0)
    idx = rng.choice(len(y), 800, replace=False)
    best: dict[str, float] = {}
    for name, fn in (
        ("fit 800", lambda: Assistant(cv=None).fit(X[idx], y[idx])),
        ("fit 800 + 5-fold cv", lambda: Assistant(cv=5).fit(X[idx], y[idx])),
    ):
        best[name] = min(_time(fn) for _ in range(3))
    model = Assistant(cv=None).fit(X[idx], y[idx])
    best["predict_proba pool"] = min(_time(lambda: model.predict_proba(X)) for _ in range(3))
    fut_model = Assistant(cv=5)
    t = time.perf_counter()
    fut = fut_model.refit_async(X[idx], y[idx])
    submit = time.perf_counter() - t
    fut.result()
    fut_model.close()
    print(
        f"assistant: fit on 800 labels {best['fit 800'] * 1e3:.0f} ms, with 5-fold cv "
        f"{best['fit 800 + 5-fold cv'] * 1e3:.0f} ms, refit_async returns in "
        f"{submit * 1e3:.1f} ms; predict_proba on {len(y):,}: "
        f"{best['predict_proba pool'] * 1e3:.0f} ms; fit on all {len(y):,}: {fit_all:.1f} s"
    )


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _table(rows, sizes: list[int], limit: int) -> None:
    cols = [c for c in CHECKPOINTS if c <= limit]
    at = [sizes.index(c) for c in cols]
    head = f"{'order':<26}{''.join(f'{c:>13}' for c in cols)}{'labels->90%':>13}{'÷ random':>10}"
    print(head)
    print("-" * len(head))
    random_needed = rows[0][3]
    for name, mean, std, needed, _ in rows:
        cells = "".join(f"{mean[i]:>7.3f}±{std[i]:.3f}" for i in at)
        finite = np.isfinite(needed) and np.isfinite(random_needed)
        ratio_s = f"{needed / random_needed:.2f}" if finite else "n/a"
        print(f"{name:<26}{cells}{_fmt_needed(needed, limit):>13}{ratio_s:>10}")
    print(
        f"\nmean ± std over seeds of held-out accuracy; {len(sizes) - 1} refits per run "
        f"(batches of 10 up to 200 labels, then 10 % of the labels so far). Run times: "
        + ", ".join(f"{name} {sec:.0f} s" for name, _, _, _, sec in rows)
    )


# ------------------------------------------------------------------------------------------------
# Interaction latency (``--part interaction``) and store throughput (``--part store``)
# ------------------------------------------------------------------------------------------------
#
# Interaction: the kernel-side time from ``Labeler.submit(value)`` to the next image's bytes
# being set on the Image widget (observer on ``image.value``), p50 / p95 / max over
# ``--items`` (200) submits, with and without prefetch, on two image sets generated here: 28x28
# PNG silhouettes (enlarged to 384 px) and 1024x768 JPEG photos (reduced to 384 px). Thumbnail
# caches start cold for every run, so "no prefetch" pays a decode + resize + encode per item.
# A person needs >= 0.5 s per item; the runs wait ``--think`` seconds (default 0.05) between
# submits, which leaves the background thread far less time than any person would. One more run
# labels with an Assistant refitting on a background thread every 10 labels (1280-d embeddings),
# to show what the fits' CPU use does to the latency. Target: p95 <= 50 ms with prefetch.
#
# Store: events per second committed by ``LabelStore.label`` (one durable transaction each: WAL,
# synchronous=FULL) in one process and in 4 processes writing the same file at once, against a
# bare sqlite3 INSERT + COMMIT loop with the same settings (the floor: what fsync costs on this
# disk) and with synchronous=NORMAL (not durable on power loss; shown for scale).

LATENCY_TARGET_MS = 50.0


def _make_image_sets(folder, n: int) -> dict[str, object]:
    """Two catalogs of ``n`` images each: tiny PNG silhouettes and large JPEG photos."""
    from pathlib import Path

    from PIL import Image, ImageDraw

    from workbench import Catalog
    from workbench.samples import SAMPLES

    folder = Path(folder)
    rng = np.random.default_rng(0)
    tiny, photo = folder / "tiny", folder / "photo"
    if not (tiny / ".done").exists():
        for k in range(n):
            cls = f"c{k % 10}"
            (tiny / cls).mkdir(parents=True, exist_ok=True)
            im = Image.new("L", (28, 28), 0)
            d = ImageDraw.Draw(im)
            x0, y0 = rng.integers(2, 12, 2)
            x1, y1 = rng.integers(16, 26, 2)
            d.ellipse((int(x0), int(y0), int(x1), int(y1)), fill=int(rng.integers(120, 256)))
            im.save(tiny / cls / f"{k:04d}.png")
        (tiny / ".done").touch()
    if not (photo / ".done").exists():
        import io

        sources = []
        for _name, data in SAMPLES["photos"]():
            im = Image.open(io.BytesIO(data)).convert("RGB")
            if min(im.size) >= 300:
                sources.append(im)
        for k in range(n):
            cls = f"c{k % 10}"
            (photo / cls).mkdir(parents=True, exist_ok=True)
            src = sources[k % len(sources)]
            s = int(rng.integers(200, min(src.size)))
            x = int(rng.integers(0, src.width - s + 1))
            y = int(rng.integers(0, src.height - s + 1))
            im = src.crop((x, y, x + s, y + s * 3 // 4)).resize((1024, 768))
            im.save(photo / cls / f"{k:04d}.jpg", quality=90)
        (photo / ".done").touch()
    return {
        "28x28 png": Catalog.from_folder(tiny, progress=False),
        "1024x768 jpeg": Catalog.from_folder(photo, progress=False),
    }


def _latency_run(
    catalog, folder, *, prefetch: int, think: float, items: int, assistant: bool = False
) -> dict[str, object]:
    """Submit ``items`` labels; return per-item latencies (s) and store commit times (s)."""
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore
    from workbench.thumbs import ThumbnailCache
    from workbench.views.labeler import Labeler

    cold = Catalog(catalog.df, catalog.root, thumbs=ThumbnailCache())  # nothing rendered yet
    store = LabelStore(folder, catalog=cold)
    kwargs: dict[str, object] = {}
    if assistant:
        rng = np.random.default_rng(0)
        centres = rng.normal(0, 1, (10, 1280))
        codes = cold.df["label"].astype(str).str[1:].astype(int).to_numpy()
        kwargs = {
            "assistant": Assistant(),
            "embeddings": centres[codes] + rng.normal(0, 2, (len(cold.df), 1280)),
            "refit_every": 10,
        }
    lab = Labeler(cold, store, annotator="bench", prefetch=prefetch, **kwargs)
    truth = dict(zip(cold.df["id"], cold.df["label"].astype(str), strict=True))
    shown: list[float] = []
    lab.image.observe(lambda _change: shown.append(time.perf_counter()), "value")
    original_label = store.label
    commits: list[float] = []

    def timed_label(*a, **k):
        t = time.perf_counter()
        try:
            return original_label(*a, **k)
        finally:
            commits.append(time.perf_counter() - t)

    store.label = timed_label  # type: ignore[method-assign]
    lab.wait()
    latencies, returns = [], []
    for _ in range(items):
        time.sleep(think)
        n = len(shown)
        t0 = time.perf_counter()
        lab.submit(truth[lab.current])
        returns.append(time.perf_counter() - t0)
        latencies.append(shown[n] - t0)
    fits = lab.assistant.n_labels_ if assistant else None
    lab.close()
    return {
        "latency": np.array(latencies),
        "commit": np.array(commits),
        "return": np.array(returns),
        "fit_labels": fits,
    }


def _ms(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q) * 1e3)


def interaction(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-label-ui-") as tmp:
        from pathlib import Path

        sets = _make_image_sets(Path(tmp) / "images", args.items + 20)
        runs = []
        for name, cat in sets.items():
            for prefetch in (0, 5):
                r = _latency_run(
                    cat, Path(tmp) / f"s{len(runs)}", prefetch=prefetch, think=args.think,
                    items=args.items,
                )  # fmt: skip
                runs.append((name, f"prefetch {prefetch}" if prefetch else "no prefetch", r))
        r = _latency_run(
            sets["28x28 png"], Path(tmp) / "assist", prefetch=5, think=args.think,
            items=args.items, assistant=True,
        )  # fmt: skip
        runs.append(("28x28 png", "prefetch 5 + assistant refits", r))

    print(
        f"\nInteraction latency: submit -> next image bytes set (kernel side), {args.items} items, "
        f"{args.think * 1e3:.0f} ms between submits; target p95 <= {LATENCY_TARGET_MS:.0f} ms"
    )
    head = (
        f"{'images':<15}{'run':<31}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}"
        f"{'commit p50':>12}{'commit p95':>12}{'return p95':>12}{'p95 ÷ prefetch':>16}"
    )
    print(head)
    print("-" * len(head))
    best = {n: r["latency"] for n, run, r in runs if run == "prefetch 5"}
    for name, run, r in runs:
        lat, com = r["latency"], r["commit"]
        ratio = _ms(lat, 95) / _ms(best[name], 95)
        ok = " ok" if run != "no prefetch" and _ms(lat, 95) <= LATENCY_TARGET_MS else ""
        print(
            f"{name:<15}{run:<31}{_ms(lat, 50):>8.1f}{_ms(lat, 95):>8.1f}{lat.max() * 1e3:>8.1f}"
            f"{_ms(com, 50):>12.1f}{_ms(com, 95):>12.1f}{_ms(r['return'], 95):>12.1f}"
            f"{ratio:>15.2f}x{ok}"
        )
    fits = runs[-1][2]["fit_labels"]
    print(
        "commit = LabelStore.label alone (durable SQLite transaction), part of the latency; "
        "return = submit() returning (suggestions, progress and prefetch requests updated); "
        f"the assistant run's last fit used {fits} of {args.items} labels."
    )


# Store throughput: durable events/s, one committed transaction per event, on SQLite (WAL,
# synchronous=FULL) and on PostgreSQL (a throw-away local server, fsync on, synchronous_commit on),
# from 1 writer and from 8 writer processes. Each side writes --events events into a fresh
# database per round; sides are interleaved (benchmarks/_method.py). The peers are the bare
# drivers' own loops (sqlite3 and psycopg: INSERT + COMMIT per row) with 1 writer: the floor a
# store over that database can reach.
def _bare_sqlite(path, n: int) -> None:
    import sqlite3

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE IF NOT EXISTS e (id INTEGER PRIMARY KEY, sample TEXT, value TEXT)")
    for k in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO e (sample, value) VALUES (?, ?)", (f"s{k}", '{"class":1}'))
        con.execute("COMMIT")
    con.close()


def _bare_postgres(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS e (id BIGSERIAL PRIMARY KEY, sample TEXT, value TEXT)"
        )
        for k in range(n):
            con.execute("BEGIN")
            con.execute("INSERT INTO e (sample, value) VALUES (%s, %s)", (f"s{k}", '{"class":1}'))
            con.execute("COMMIT")


def _store_writer(url: str, who: str, n: int, start, out) -> None:
    """One process: wait for the start signal, then label ``n`` samples as ``who``."""
    from workbench.labels import LabelStore

    store = LabelStore(url)
    store.classes  # open the connection before the clock starts  # noqa: B018
    out.put(("ready", 0.0, 0))
    start.wait()
    t = time.perf_counter()
    for k in range(n):
        store.label(f"{who}/{k:06d}.png", "cat" if k % 2 else "dog", annotator=who)
    out.put((who, time.perf_counter() - t, store.retries))


def _store_processes(url: str, n_proc: int, n_each: int) -> float:
    """Wall seconds for ``n_proc`` processes to label ``n_each`` samples each (after start-up)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a clean interpreter per writer, like separate kernels
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_store_writer, args=(url, f"p{i}", n_each, start, out))
        for i in range(n_proc)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every interpreter has imported and opened the store
        out.get(timeout=300)
    t = time.perf_counter()
    start.set()
    for _ in procs:
        out.get(timeout=900)
    wall = time.perf_counter() - t
    for p in procs:
        p.join()
    return wall


def store_throughput(args: argparse.Namespace) -> None:
    import sys
    from itertools import count
    from pathlib import Path

    from _method import interleaved, load

    from workbench.labels import LabelStore

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from postgres_server import find_bin, start

    n, made = args.events, count()
    if find_bin() is None:
        print("store: no PostgreSQL server binary (Debian's postgresql package); skipped")
        return
    server = start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-label-store-", dir=args.store_dir) as tmp:

            def fresh(backend: str) -> str:
                if backend == "postgresql":
                    url = server.new_database()
                else:
                    url = f"sqlite:///{Path(tmp) / f'{next(made)}.db'}"
                LabelStore(url).add_classes(["cat", "dog"])
                return url

            def store_side(backend: str, writers: int) -> Callable[[], float]:
                def side() -> float:
                    url = fresh(backend)
                    if writers > 1:
                        return _store_processes(url, writers, n // writers)
                    store = LabelStore(url)
                    t = time.perf_counter()
                    for k in range(n):
                        store.label(f"s/{k:06d}.png", "cat" if k % 2 else "dog", annotator="one")
                    dt = time.perf_counter() - t
                    assert store.events_count("label") == n
                    store.close()
                    return dt

                return side

            def bare_side(backend: str) -> Callable[[], float]:
                def side() -> float:
                    where = server.new_database() if backend == "postgresql" else None
                    path = Path(tmp) / f"bare{next(made)}.db"
                    t = time.perf_counter()
                    _bare_postgres(where, n) if where else _bare_sqlite(path, n)
                    return time.perf_counter() - t

                return side

            one = interleaved(
                {
                    "bare sqlite3": bare_side("sqlite"),
                    "sqlite": store_side("sqlite", 1),
                    "bare psycopg": bare_side("postgresql"),
                    "postgresql": store_side("postgresql", 1),
                },
                rounds=args.rounds,
            )
            eight = interleaved(
                {"sqlite": store_side("sqlite", 8), "postgresql": store_side("postgresql", 8)},
                rounds=args.rounds,
            )
    finally:
        server.stop()
    events8 = 8 * (n // 8)
    print(
        f"\nStore throughput: durable events/s (one committed transaction per event), {n:,} "
        f"events per round, {args.rounds} interleaved rounds, median [IQR]; load before "
        f"{one.load_before}, after {eight.load_after}"
    )
    head = f"{'writers':<26}{'SQLite':>24}{'PostgreSQL':>24}{'PG / SQLite':>26}"
    print(head)
    print("-" * len(head))

    def rate(r, side: str, events: int) -> str:
        per = events / np.asarray(r.times[side])
        q1, q3 = np.percentile(per, [25, 75])
        return f"{np.median(per):,.0f} [{q1:,.0f}-{q3:,.0f}]"

    print(f"{'1, bare driver loop (peer)':<26}{rate(one, 'bare sqlite3', n):>24}"
          f"{rate(one, 'bare psycopg', n):>24}")  # fmt: skip
    print(f"{'1, LabelStore.label':<26}{rate(one, 'sqlite', n):>24}{rate(one, 'postgresql', n):>24}"
          f"{one.ratio('sqlite', 'postgresql').text(2):>26}")  # fmt: skip
    print(f"{'8 processes':<26}{rate(eight, 'sqlite', events8):>24}"
          f"{rate(eight, 'postgresql', events8):>24}"
          f"{eight.ratio('sqlite', 'postgresql').text(2):>26}")  # fmt: skip
    share_s = one.ratio("bare sqlite3", "sqlite").text(2)
    share_p = one.ratio("bare psycopg", "postgresql").text(2)
    print(f"LabelStore / bare loop, 1 writer: SQLite {share_s}; PostgreSQL {share_p}")
    print(f"load after: {load()}")


PARTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "active": active_learning,
    "interaction": interaction,
    "store": store_throughput,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=[*PARTS, "all"], default="all")
    ap.add_argument("--workspace", default=None, help="reuse this workspace (keeps embeddings)")
    ap.add_argument(
        "--image-size", type=int, default=0, help="Embedder image_size (0: native, the default)"
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--test", type=int, default=2000, help="held-out samples")
    ap.add_argument("--max-labels", type=int, default=800)
    ap.add_argument("--diversity", type=float, default=0.5)
    ap.add_argument(
        "--propagation", type=float, default=0.5, help="Assistant(propagation=...) with scale_on"
    )
    ap.add_argument(
        "--scale-on",
        choices=["labels", "pool", "both"],
        default="both",
        help="active: the Assistant's standardisation (Assistant(scale_on=...)); both: two tables",
    )
    ap.add_argument("--items", type=int, default=200, help="interaction: submits per run")
    ap.add_argument("--think", type=float, default=0.05, help="interaction: s between submits")
    ap.add_argument("--events", type=int, default=800, help="store: events per side and round")
    ap.add_argument("--rounds", type=int, default=7, help="store: interleaved rounds")
    ap.add_argument("--store-dir", default=None, help="store: folder for the test databases")
    args = ap.parse_args(argv)
    args.image_size = args.image_size or None
    for name, fn in PARTS.items():
        if args.part in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()

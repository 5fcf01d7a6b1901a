"""Views at catalog scale: DataBrowser and IssueReview page flips at 10k, 100k and 1M rows.

    python benchmarks/bench_views_scale.py [--sizes 10000,100000,1000000] [--flips 30]
        [--rounds 7] [--views browser,issues,groups] [--trees ours=.,before=/tmp/old]

What the kernel does for a page flip, measured in a fresh Python process per (round, size,
view) that builds the view exactly as a notebook cell does and clicks its "Next ▶" button
(``button.click()``, or for the DataBrowser, whose pager is drawn in its board,
``grid.click("next")``: the view's own handler, page slice, thumbnails, the page's HTML with
its data URIs and the widget values set; the next page drawn ahead is background work). No
browser and no kernel connection: the widget messages are not serialised or sent (a constant
per page, measured in the page by ``bench_ui.py``), so this is the kernel's share of a flip and
the kernel's memory.

Views: ``browser`` (DataBrowser over the catalog, 24 per page), ``issues`` (IssueReview on the
``blurry`` issue: single samples, 24 per page) and ``groups`` (IssueReview on
``near_duplicate``: 8 duplicate groups per page). The flips walk the same way at every size:
forward over the first ``--span`` pages (8: all 10k rows have), back, forward again, so every
size does the same work (first visits, then revisits of cached pages). Between flips the
process waits until the view's background work (the next page's thumbnails) is done, as it is
when a person looks at a page; the flip itself is timed.

Data, synthesised so that 1M rows need no 1M files: 64 small JPEGs (and one broken file) are
scanned with ``Catalog.from_folder`` and ``check()``; their rows are repeated to n rows with
unique ids, unique content hashes (so every tile is rendered from its file, as in a fresh
dataset: the thumbnail cache never answers for another row) and path strings (one string
object per row, as a scan makes them) that point at the 64 files. The IssueReport has the
layout and dtypes of ``check()``'s (asserted against the real one on the 64 files): one row
per (sample, issue) for every check; scores drawn so that about 2 % of the samples are flagged
per issue; 1 % of the rows exact copies (pairs); near copies (with their pairs table) in the
same 64 largest groups at every size (8 of 40, 16 of 13, 40 of 5: what the walk's pages show,
largest first; sizes drawn at random gave a larger catalog larger groups on its first pages,
96 tiles a page at 1M against 19 at 10k) plus 2 % of the rows in groups of 2 or 3.

Memory (``/proc/self/status``): ``data`` is the RSS the catalog and report add; the view's
``open peak`` and ``flips peak`` are VmHWM above that (the peak is reset through
``/proc/self/clear_refs`` before opening and again before flipping); ``kept`` is the RSS the
view still holds after the flips. ``data`` and ``kept`` are read after a garbage collection and
glibc's ``malloc_trim``, so they count live memory, not heap the allocator kept.

Targets (issue 19, "page flip latency and kernel memory stay flat"): per view, the median flip
at 1M rows within 1.25x of 10k (per-round ratio, median over rounds, ``_method.py``), and the
memory the view keeps after its flips at 1M within 1.25x of 10k + 16 MiB. ``--trees`` runs
other checkouts of ``workbench`` in the same interleaved rounds (old code against new).

The final command (run three times on a quiet machine)::

    python benchmarks/bench_views_scale.py --sizes 10000,100000,1000000 --rounds 7
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _method import Ratio, load, record, verdict

DATA = Path("/tmp/bench_views")
VIEWS = ["browser", "issues", "groups"]
REPO = Path(__file__).resolve().parent.parent
FLIP_TARGET = 1.25
KEPT_SLACK_MIB = 16.0


# ------------------------------------------------------------------------------ data
def sources() -> Path:
    """``/tmp/bench_views/src``: 64 JPEGs (8 classes, 3 sizes) and one broken file."""
    from PIL import Image

    root = DATA / "src"
    if (root / "done").exists():
        return root
    rng = np.random.default_rng(19)
    for i in range(64):
        folder = root / f"c{i % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        w, h = [(160, 120), (120, 160), (200, 200)][i % 3]
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
        im.save(folder / f"s{i:02d}.jpg", "JPEG", quality=85)
    (root / "c0" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "done").touch()
    return root


def synth_catalog(n: int):
    """n catalog rows repeated from the scanned sources: unique ids, hashes and path strings."""
    from workbench.catalog import Catalog

    root = sources()
    small = Catalog.from_folder(root, progress=False, workers=1).df
    rows = small.iloc[np.arange(n) % len(small)].reset_index(drop=True)
    label = rows["label"].astype(str).to_numpy()
    rows["id"] = [f"{lab}/{i:07d}.jpg" for i, lab in enumerate(label)]  # one object per row
    rows["path"] = [f"{p}" for p in rows["path"]]  # distinct string objects, as a scan makes
    ok = (rows["status"] == "ok").to_numpy()
    hashes = np.array([f"{i:032x}" for i in range(n)], dtype=object)
    hashes[~ok] = ""
    # 1 % exact copies: the row takes the hash of the row before it (same pixels, same file)
    twin = np.flatnonzero(ok[1:] & ok[:-1] & (np.arange(1, n) % 100 == 50)) + 1
    hashes[twin] = hashes[twin - 1]
    rows["hash"] = hashes
    return Catalog(rows, root)


def synth_report(catalog, seed: int = 0):
    """An IssueReport with check()'s layout: every issue per readable sample, ~2 % flagged."""
    import pandas as pd

    from workbench.clean import CHECKS, DEFAULT_THRESHOLDS, HASH_BITS, IssueReport, check

    rng = np.random.default_rng(seed)
    df = catalog.df
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    ids, hashes = ok["id"].to_numpy(object), ok["hash"].to_numpy(object)
    area = (ok["width"].astype(np.int64) * ok["height"]).to_numpy()
    th = dict(DEFAULT_THRESHOLDS)
    parts: dict[str, pd.DataFrame] = {}

    def part(issue, at, score, group=None, keeper=False) -> None:
        p = pd.DataFrame({"id": ids[at], "issue": issue, "score": np.asarray(score, float)})
        p["group"], p["keeper"] = group, keeper
        parts[issue] = p

    bad = df.loc[df["status"] != "ok", "id"].to_numpy(object)
    parts["unreadable"] = pd.DataFrame(
        {"id": bad, "issue": "unreadable", "score": 1.0, "group": None, "keeper": False}
    )
    # exact duplicates: rows sharing a hash (synth_catalog made them pairs)
    dup = ok["hash"].duplicated(keep=False).to_numpy()
    at = np.flatnonzero(dup)
    codes = pd.factorize(hashes[at])[0]
    xgroup = np.char.add("x", codes.astype(str)).astype(object)
    part("exact_duplicate", at, np.ones(len(at)), xgroup, _keepers(codes, area[at], ids[at]))
    # near duplicates (chained within radius 20): the 64 largest groups, 8 of 40, 16 of 13 and
    # 40 of 5, the same at every size (the view shows the largest first: the pages the walk
    # visits then hold the same tiles at 10k and at 1M), and 2 % of the rows in groups of 2-3;
    # 0.5 % in looser pairs (distance 21-28: in the pairs table, flagged at a lower threshold)
    single = np.flatnonzero(~dup)
    head = np.repeat([40, 13, 5], [8, 16, 40])
    sizes = rng.choice([2, 3], p=[0.85, 0.15], size=len(ids))
    sizes = sizes[: max(1, int(np.searchsorted(np.cumsum(sizes), 0.02 * len(single))))]
    sizes = np.r_[rng.permutation(head), sizes]
    spacing = len(single) // len(sizes)  # > 40 from a few thousand rows on: groups apart
    gid = np.repeat(np.arange(len(sizes)), sizes)
    pos = np.repeat(np.arange(len(sizes)) * spacing, sizes) + _ranks(sizes)
    members = single[pos]
    d = rng.integers(0, 21, len(members))
    first = (np.arange(len(sizes)) * spacing + spacing // 2)[::4]
    loose = np.r_[single[first], single[first + 1]]  # pairs between the groups
    dl = np.tile(rng.integers(21, 29, len(first)), 2)
    near = np.r_[members, loose]
    group = np.r_[np.char.add("n", gid.astype(str)).astype(object), [None] * len(loose)]
    part("near_duplicate", near, 1.0 - np.r_[d, dl] / HASH_BITS, group,
         np.r_[_keepers(gid, area[members], ids[members]), np.zeros(len(loose), bool)])  # fmt: skip
    chained = np.flatnonzero(gid[1:] == gid[:-1]) + 1  # member k pairs with member k - 1
    pairs = pd.DataFrame(
        {"a": np.r_[hashes[members[chained - 1]], hashes[single[first]]],
         "b": np.r_[hashes[members[chained]], hashes[single[first + 1]]],
         "distance": np.r_[d[chained], dl[: len(first)]].astype(np.int16)}
    )  # fmt: skip
    for issue in CHECKS[3:]:  # per-sample scores: 1.8 x Beta(1, 12) puts 2 % at 0.5 and up
        part(issue, np.arange(len(ids)), rng.beta(1.0, 12.0, len(ids)) * 1.8)
    cols = ["id", "issue", "score", "flagged", "group", "keeper"]
    table = pd.concat([parts[c] for c in CHECKS], ignore_index=True)
    table["id"] = table["id"].astype(object)  # as check() leaves it
    table["score"] = table["score"].clip(0.0, 1.0)
    table["flagged"] = table["score"] >= table["issue"].map(th).astype(float) - 1e-12
    table["group"] = table["group"].astype(object).where(table["group"].notna(), None)
    table["keeper"] = table["keeper"].astype(bool)
    table["issue"] = pd.Categorical(table["issue"], categories=list(CHECKS))
    samples = pd.DataFrame({"id": ids, "hash": hashes, "area": area})
    real = check(_sources_catalog(), progress=False, workers=1)  # the layout to match
    assert list(real.table.dtypes) == list(table[cols].dtypes), (real.table.dtypes, table.dtypes)
    assert list(real.pairs.columns) == list(pairs.columns)
    return IssueReport(table=table[cols], pairs=pairs, thresholds=th, samples=samples)


def _keepers(group: np.ndarray, area: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """check()'s keeper per group: the largest area, then the first id."""
    import pandas as pd

    best = pd.DataFrame({"g": group, "a": -area, "id": ids})
    keeper = np.zeros(len(group), bool)
    keeper[best.sort_values(["g", "a", "id"]).drop_duplicates("g").index.to_numpy()] = True
    return keeper


def _ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., k - 1 for every k in ``sizes``, concatenated."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _sources_catalog():
    from workbench.catalog import Catalog

    return Catalog.from_folder(sources(), progress=False, workers=1)


# ------------------------------------------------------------------------------ child
def _status() -> dict[str, float]:
    """VmRSS and VmHWM of this process, MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _settle() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc ``malloc_trim``, Arrow's
    pool), so that RSS readings count live memory, not what the allocator kept."""
    import ctypes
    import gc

    from workbench.catalog import release_memory

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    release_memory()


def _reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux ``clear_refs``; see proc(5))."""
    Path("/proc/self/clear_refs").write_text("5")


def _idle(view) -> None:
    """Wait until the view's background work (the next page's thumbnails) is done."""
    from workbench.views import DataBrowser

    if isinstance(view, DataBrowser):
        # both workers reach the barrier only after the tasks queued before it are done; twice,
        # as the thumbnails' last task queues the step that draws the next page ahead
        for _ in range(2):
            barrier = threading.Barrier(3)
            futures = [view._pool.submit(barrier.wait) for _ in range(2)]
            barrier.wait()
            for f in futures:
                f.result()
    else:
        view._warmer.wait()


def run_child(view_name: str, n: int, flips: int, span: int) -> dict:
    """Build the data, open the view, flip ``flips`` pages; times in ms and memory in MiB."""
    import workbench
    from workbench.views import DataBrowser, IssueReview

    synth_report(synth_catalog(200))  # imports and first-call work, before the baseline
    _settle()
    rss0 = _status()["VmRSS"]
    catalog = synth_catalog(n)
    report = synth_report(catalog) if view_name != "browser" else None
    _settle()
    data = _status()["VmRSS"]
    _reset_peak()
    t = time.perf_counter()
    if view_name == "browser":
        view = DataBrowser(catalog)
    else:
        view = IssueReview(catalog, report)
        view.select("blurry" if view_name == "issues" else "near_duplicate")
    _idle(view)
    opened = (time.perf_counter() - t) * 1e3
    open_peak = _status()["VmHWM"]
    _settle()  # the flips' peak from live memory, not from what opening left to the allocator
    _reset_peak()
    times = []
    for k in range(flips):
        # the same walk at every size: forward over the first ``span`` pages, back, forward...
        forward = (k // (span - 1)) % 2 == 0
        if hasattr(view, "next_button"):
            button = view.next_button if forward else view.prev_button
            can, click = not button.disabled, button.click
        else:  # the DataBrowser's pager is drawn in its grid (older trees: buttons, above)
            can = view.page < view.pages - 1 if forward else view.page > 0
            click = functools.partial(view.grid.click, "next" if forward else "prev")
        if not can:
            raise SystemExit(f"{view_name} at {n:,} rows has fewer than {span} pages")
        t = time.perf_counter()
        click()
        times.append((time.perf_counter() - t) * 1e3)
        _idle(view)
    peak = _status()["VmHWM"]
    _settle()
    kept = _status()["VmRSS"]
    view.close()
    return {
        "tree": str(Path(workbench.__file__).parent.parent),
        "flips_ms": times,
        "open_ms": opened,
        "data_mib": data - rss0,
        "open_peak_mib": open_peak - data,
        "flips_peak_mib": peak - data,
        "kept_mib": kept - data,
    }


def _child(view: str, n: int, flips: int, span: int, tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, __file__, "_child", view, str(n), str(flips), str(span)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"{view} at {n:,} rows failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ driver
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        print(json.dumps(run_child(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--flips", type=int, default=30)
    p.add_argument("--span", type=int, default=8, help="pages the flips walk over")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--views", default=",".join(VIEWS))
    p.add_argument("--trees", default=f"ours={REPO}", help="name=path,... checkouts to compare")
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    views = a.views.split(",")
    trees = dict(t.split("=", 1) for t in a.trees.split(","))
    if a.rounds < 7:
        print(f"note: {a.rounds} rounds is below the 7 the method asks for", file=sys.stderr)
    sources()
    print(f"load before: {load()}")
    runs: dict[tuple[str, str, int], list[dict]] = {}
    jobs = [(t, v, n) for v in views for n in sizes for t in trees]
    for r in range(a.rounds):
        for tree, view, n in jobs if r % 2 == 0 else jobs[::-1]:  # order flips every round
            res = _child(view, n, a.flips, a.span, Path(trees[tree]).resolve())
            runs.setdefault((tree, view, n), []).append(res)
            print(f"  round {r + 1} {tree} {view} {n:,}: flip median "
                  f"{np.median(res['flips_ms']):.1f} ms, kept {res['kept_mib']:.1f} MiB "
                  f"{json.dumps(res)}", file=sys.stderr, flush=True)  # fmt: skip
    print(f"load after: {load()}")
    report(runs, trees, views, sizes, a.flips)


def report(runs: dict, trees: dict, views: list[str], sizes: list[int], flips: int) -> None:
    print(f"\n{flips} flips per run; MiB from /proc/self/status; medians over rounds")
    head = (
        f"{'tree':8} {'view':8} {'rows':>9} | {'flip med':>8} {'p95':>7} {'max':>7} ms | "
        f"{'open ms':>8} | {'data':>6} {'open pk':>7} {'flip pk':>7} {'kept':>6} MiB"
    )
    print(head)
    print("-" * len(head))
    for tree in trees:
        for view in views:
            for n in sizes:
                rs = runs[(tree, view, n)]
                f = np.concatenate([r["flips_ms"] for r in rs])

                def med(k: str, rs: list = rs) -> float:
                    return float(np.median([r[k] for r in rs]))

                print(f"{tree:8} {view:8} {n:>9,} | {np.median(f):8.2f} "
                      f"{np.percentile(f, 95):7.2f} {f.max():7.1f}    | {med('open_ms'):8.0f} | "
                      f"{med('data_mib'):6.0f} {med('open_peak_mib'):7.1f} "
                      f"{med('flips_peak_mib'):7.1f} {med('kept_mib'):6.1f}")  # fmt: skip
    lo, hi = min(sizes), max(sizes)
    if lo == hi:
        return
    print(f"\nratios {hi:,} / {lo:,} rows, per round (median, IQR)")
    for tree in trees:
        for view in views:
            small, big = runs[(tree, view, lo)], runs[(tree, view, hi)]
            flip = Ratio(np.array([np.median(b["flips_ms"]) / np.median(s["flips_ms"])
                                   for s, b in zip(small, big, strict=True)]))  # fmt: skip
            print(f"  {tree} {view} flip median: {verdict(flip, FLIP_TARGET, False)}")
            if tree == next(iter(trees)):
                record("views_scale", f"{view} flip {hi}/{lo}", flip, FLIP_TARGET, False)
            kept = Ratio(np.array([b["kept_mib"] / (s["kept_mib"] + KEPT_SLACK_MIB)
                                   for s, b in zip(small, big, strict=True)]))  # fmt: skip
            print(f"  {tree} {view} kept / (kept at {lo:,} + {KEPT_SLACK_MIB:.0f} MiB): "
                  f"{verdict(kept, FLIP_TARGET, False)}")  # fmt: skip
            if tree == next(iter(trees)):
                record("views_scale", f"{view} kept {hi}/{lo}", kept, FLIP_TARGET, False)


if __name__ == "__main__":
    main()

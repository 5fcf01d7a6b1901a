"""Near duplicates against imagededup: quality per subset, speed end to end; index scaling.

    .venv/bin/python benchmarks/bench_clean.py [--sections 1,2,3,4,5] [--bases 1000]
                                               [--rounds 7] [--skip-1m]

Three subsets, each in its own folder, with planted near copies (0-3 per base, each made by
one of: JPEG q60; resize to 90 %; brightness ±10 %; a 2 % crop; JPEG q70 after +8 %
brightness; JPEG q85 after +5 % brightness). Pairs of one family are the truth: the copies are
defined by the edits, not by either tool's measure.

* ``photos``: ``--bases`` crops (96-256 px) of the bundled colour photos.
* ``silhouettes``: ``--bases`` distinct 28 px animal silhouettes (animal-mnist).
* ``faces``: the 200 25 px crops of ``skimage.data.lfw_subset`` (faces and non-faces).

The embedding method's default similarity was chosen on ``silhouettes`` (and the ``auto`` size
rule on ``silhouettes`` against ``photos``); ``faces`` was used for nothing else.

1. Quality per subset: both tools swept over their thresholds (imagededup's PHash, DHash,
   AHash and WHash over ``max_distance_threshold``; its CNN over ``min_similarity_threshold``;
   ours over the pHash + dHash radius and the embedding similarity); pairwise precision and
   recall, each tool's default marked; then the best precision of each at equal recall.
   imagededup's CNN default, MobileNetV3-small ImageNet weights, is not available offline
   (only MobileNetV2's are shipped, ARCHITECTURE §6), so its CNN method runs with
   ``CustomModel`` = MobileNetV2 ImageNet features (global average pool) and its own default
   preprocessing (resize 256, centre-crop 224) and similarity search; nothing is downloaded.
2. Speed end to end, folder to duplicate pairs, ``benchmarks/_method.py`` (>= 7 interleaved
   rounds after a warm-up, load printed): our default (``auto``) against imagededup at its
   default on the same folder and workers; both import before the clock, both start their
   process pools inside it. Recorded figures: photo crops, ours (hash method) against
   imagededup PHash (target >= 3x); silhouettes, ours (embedding method) against imagededup's
   CNN method (reported, target >= 1x). For the photo crops, the decode floor: CPU per file of
   the bare PNG decode (Pillow's and libspng's) against our whole scan row, and the most the
   speed-up could reach were everything but the decode free. ``--subsets`` picks the rows.
3. Exact radius search among 100k and 1M random 64-bit hashes with planted pairs.
4. Hashing speed (the figure ``workbench.hashindex.perceptual_hashes`` quotes): our pHash +
   dHash against imagehash's ``phash`` + ``dhash`` on the same decoded images.
5. Catalog scale: all 10,000 animal silhouettes with near copies of 400 of them planted:
   flagged samples, groups and the largest group of the exact duplicates, the hash method, our
   default (the embedding method with its local test) and the embedding threshold alone (at the
   former default 0.9219 and at today's), with precision and recall of the planted pairs
   (a pair counts if it holds a planted copy). A method that chains look-alikes shows it here.
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _method import interleaved, load, record, timed, verdict

from workbench import Catalog, Workspace, samples
from workbench.clean import check, near_duplicate_pairs
from workbench.hashindex import HammingIndex
from workbench.parallel import shutdown_pools

logging.disable(logging.INFO)  # imagededup's per-call INFO lines
warnings.filterwarnings("ignore", message="Parameter num_enc_workers has no effect")

SUBSETS = ("photos", "silhouettes", "faces")
COPY_OPS = (
    "JPEG q60", "resize 90 %", "brightness ±10 %", "crop 2 %", "+8 % brightness, JPEG q70",
    "+5 % brightness, JPEG q85",
)  # fmt: skip
ROOT = Path(tempfile.gettempdir()) / "wb-bench-clean"
RECALLS = (0.5, 0.8, 0.9, 0.95)

# ---------------------------------------------------------------------------- the sets


def _bases(subset: str, n_bases: int, rng: np.random.Generator) -> list[Image.Image]:
    ws = Workspace(ROOT / "sources")
    if subset == "silhouettes":
        animals = samples.load("animals", ws, progress=False)
        picked = animals.df.drop_duplicates("hash").sample(n_bases, random_state=0)
        return [Image.open(p).convert("L") for p in picked["path"]]
    if subset == "faces":
        from skimage.data import lfw_subset

        return [Image.fromarray(np.round(a * 255).astype(np.uint8)) for a in lfw_subset()]
    photos = samples.load("photos", ws, progress=False)
    pics = [Image.open(p).convert("RGB") for p in photos.df["path"]]
    out = []
    while len(out) < n_bases:
        im = pics[rng.integers(len(pics))]
        s = int(rng.integers(96, 256))
        x, y = int(rng.integers(0, im.width - s)), int(rng.integers(0, im.height - s))
        out.append(im.crop((x, y, x + s, y + s)))
    return out


def make_subset(subset: str, n_bases: int, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """Write one subset's folder (once); return it and {file name: family}."""
    n = 200 if subset == "faces" else n_bases
    out = ROOT / f"{subset}-{n}-{seed}"
    marker = out / ".complete"
    if not marker.exists():
        rng = np.random.default_rng(seed)
        out.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(_bases(subset, n, rng)):
            name = f"{subset[0]}{i:05d}"
            im.save(out / f"{name}.png")
            for c in range(int(rng.integers(0, 4))):
                _near_copy(im, int(rng.integers(len(COPY_OPS))), rng).save(out / f"{name}_c{c}.png")
        marker.touch()
    return out, {p.name: p.name.split("_c")[0].split(".")[0] for p in out.glob("*.png")}


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _near_copy(im: Image.Image, op: int, rng: np.random.Generator) -> Image.Image:
    if op == 0:
        return _jpeg(im, 60)
    if op == 1:
        return im.resize((max(1, round(im.width * 0.9)), max(1, round(im.height * 0.9))))
    if op == 2:
        return ImageEnhance.Brightness(im).enhance(1 + rng.choice([-0.1, 0.1]))
    if op == 3:
        dx, dy = max(1, round(im.width * 0.02)), max(1, round(im.height * 0.02))
        return im.crop((dx, dy, im.width - dx, im.height - dy))
    if op == 4:
        return _jpeg(ImageEnhance.Brightness(im).enhance(1.08), 70)
    return _jpeg(ImageEnhance.Brightness(im).enhance(1.05), 85)


def truth_pairs(families: dict[str, str]) -> set[tuple[str, str]]:
    by: dict[str, list[str]] = {}
    for f, fam in families.items():
        by.setdefault(fam, []).append(f)
    return {tuple(sorted(p)) for g in by.values() for p in itertools.combinations(g, 2)}


def pr(pred: set, truth: set) -> tuple[float, float]:
    tp = len(pred & truth)
    return tp / max(1, len(pred)), tp / max(1, len(truth))


# ---------------------------------------------------------------------------- the tools


def _idd_pairs(found: dict[str, list]) -> set[tuple[str, str]]:
    return {tuple(sorted((a, b if isinstance(b, str) else b[0]))) for a, d in found.items()
            for b in d}  # fmt: skip


def imagededup_cnn() -> Any:
    """imagededup's CNN method with MobileNetV2 ImageNet features (its default MobileNetV3-small
    weights are not shipped offline) and its default preprocessing."""
    import torch
    from imagededup.methods import CNN
    from imagededup.utils.models import CustomModel, MobilenetV3

    from workbench.models import load_model, resolve_weights

    net = load_model("mobilenet_v2", resolve_weights("mobilenet_v2").name)
    body = torch.nn.Sequential(net.features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return CNN(
        verbose=False,
        model_config=CustomModel(name="mobilenet_v2", model=body.eval(),
                                 transform=MobilenetV3.transform),
    )  # fmt: skip


def imagededup_sweeps(folder: Path) -> dict[str, dict[Any, set]]:
    """Pairs per threshold of each imagededup method; encoded once per method."""
    from imagededup.methods import AHash, DHash, PHash, WHash

    out: dict[str, dict[Any, set]] = {}
    for cls in (PHash, DHash, AHash, WHash):
        m = cls(verbose=False)
        enc = m.encode_images(image_dir=str(folder))
        out[f"imagededup {cls.__name__}"] = {
            t: _idd_pairs(
                m.find_duplicates(encoding_map=enc, max_distance_threshold=t, num_dist_workers=0)
            )
            for t in range(0, 33, 2)
        }
    cnn = imagededup_cnn()
    enc = cnn.encode_images(image_dir=str(folder))
    sweep = {}
    for t in np.round(np.arange(0.80, 1.0001, 0.01), 2):
        t = min(1.0, float(t))
        found = cnn.find_duplicates(encoding_map=enc, min_similarity_threshold=t, num_sim_workers=0)
        sweep[t] = _idd_pairs(found)
    out["imagededup CNN (MobileNetV2)"] = sweep
    return out


def our_sweeps(folder: Path, workers: int) -> tuple[dict[str, dict[Any, set]], dict[str, Any]]:
    """Pairs per threshold of our two methods, and each one's default threshold."""
    cat = Catalog.from_folder(
        folder, labels=None, progress=False, workers=workers, perceptual_hash=True
    )
    out: dict[str, dict[Any, set]] = {}
    defaults: dict[str, Any] = {}
    for method, radii, label in (
        ("hash", range(0, 29, 2), "radius"),
        ("embedding", range(0, 25), "similarity"),
    ):
        rep = check(cat, checks=["exact_duplicate", "near_duplicate"], progress=False,
                    workers=workers, near_method=method, search_radius=max(radii))  # fmt: skip
        sweep = {}
        for r in radii:
            p = near_duplicate_pairs(rep, r)
            key = r if label == "radius" else round(1 - r / 128, 4)
            sweep[key] = set(zip(p["a"], p["b"], strict=True))
        name = f"workbench {method} ({label})"
        out[name] = sweep
        defaults[name] = rep.radius if label == "radius" else round(1 - rep.radius / 128, 4)
    return out, defaults


IDD_DEFAULTS = {
    "imagededup PHash": 10, "imagededup DHash": 10, "imagededup AHash": 10,
    "imagededup WHash": 10, "imagededup CNN (MobileNetV2)": 0.9,
}  # fmt: skip


def quality(n_bases: int, workers: int, subsets: tuple[str, ...] = SUBSETS) -> None:
    """Section 1: per subset, sweeps and precision at equal recall."""
    for subset in subsets:
        folder, fam = make_subset(subset, n_bases)
        truth = truth_pairs(fam)
        ours, defaults = our_sweeps(folder, workers)
        sweeps = {**ours, **imagededup_sweeps(folder)}
        defaults.update(IDD_DEFAULTS)
        print(f"\n## 1. {subset}: {len(fam)} images, {len(truth)} true pairs (load {load()})")
        print("| method | threshold | precision | recall | pairs |")
        print("|---|---:|---:|---:|---:|")
        for name, sweep in sweeps.items():
            for t, pred in sweep.items():
                p, r = pr(pred, truth)
                mark = " (default)" if t == defaults[name] else ""
                print(f"| {name} | {t}{mark} | {p:.3f} | {r:.3f} | {len(pred)} |")
        print(f"\n{subset}: best precision at equal recall (threshold in brackets; - = never)")
        print("| method | default P / R | " + " | ".join(f"R >= {x}" for x in RECALLS) + " |")
        print("|---|---:|" + "---:|" * len(RECALLS))
        for name, sweep in sweeps.items():
            pts = {t: pr(pred, truth) for t, pred in sweep.items()}
            cells = []
            for x in RECALLS:
                ok = [(p, t) for t, (p, r) in pts.items() if r >= x]
                cells.append(f"{max(ok)[0]:.3f} ({max(ok)[1]})" if ok else "-")
            d = pts.get(defaults[name], (float("nan"), float("nan")))
            print(f"| {name} | {d[0]:.3f} / {d[1]:.3f} | " + " | ".join(cells) + " |")


# ---------------------------------------------------------------------------- speed


def ours_end_to_end(folder: Path, workers: int) -> Callable[[], None]:
    """Folder to duplicate pairs at our defaults; our pool starts and stops inside the clock."""

    def run() -> None:
        cat = Catalog.from_folder(
            folder, labels=None, progress=False, workers=workers, perceptual_hash=True
        )
        rep = check(cat, checks=["exact_duplicate", "near_duplicate"], progress=False,
                    workers=workers)  # fmt: skip
        near_duplicate_pairs(rep)
        shutdown_pools()

    return run


def speed(n_bases: int, workers: int, rounds: int, subsets: tuple[str, ...] = SUBSETS) -> None:
    """Section 2: end to end, interleaved rounds, recorded ratios."""
    from imagededup.methods import PHash

    for subset, peer_name in (("photos", "PHash"), ("silhouettes", "CNN (MobileNetV2)")):
        if subset not in subsets:
            continue
        folder, fam = make_subset(subset, n_bases)
        if peer_name == "PHash":

            def peer(folder: Path = folder) -> None:
                PHash(verbose=False).find_duplicates(image_dir=str(folder))

            target = 3.0
        else:
            cnn = imagededup_cnn()  # model built before the clock, as our embedder's is cached

            def peer(folder: Path = folder, cnn: Any = cnn) -> None:
                cnn.find_duplicates(image_dir=str(folder))

            target = 1.0
        shutdown_pools()
        r = interleaved(
            {"ours": timed(ours_end_to_end(folder, workers)), "peer": timed(peer)}, rounds
        )
        ratio = r.ratio("peer", "ours")
        print(
            f"\n## 2. speed, {subset} ({len(fam)} images), folder to pairs, {workers} workers: "
            f"ours (auto) {r.median('ours'):.2f} s, imagededup {peer_name} "
            f"{r.median('peer'):.2f} s (medians of {rounds}); load before {r.load_before}, "
            f"after {r.load_after}"
        )
        print(f"speed-up: {verdict(ratio, target)}")
        record("bench_clean", f"near duplicates end to end, {subset}, vs {peer_name}", ratio,
               target)  # fmt: skip
        if peer_name == "PHash":
            decode_bound(folder, ratio.median, rounds)


def decode_bound(folder: Path, speedup: float, rounds: int) -> None:
    """How far the photo-crop speed-up can go while every file must still be decoded: CPU per
    file (this process) of the fastest bare decode (Pillow's, or libspng's that the scan uses)
    against our whole scan row (decode, content hash, pHash + dHash, metadata). Were everything
    but the decode free, our end-to-end time could shrink at most by row / decode (pool, search
    and table work ignored: an upper bound)."""
    import pyspng

    from workbench.io import scan_file

    files = sorted(str(p) for p in folder.glob("*.png"))

    def cpu(fn: Callable[[str], Any]) -> Callable[[], float]:
        def side() -> float:
            t = time.process_time()
            for f in files:
                fn(f)
            return time.process_time() - t

        return side

    def bare(f: str) -> None:
        with Image.open(f) as im:
            im.load()

    def bare_spng(f: str) -> None:
        with open(f, "rb") as fh:
            pyspng.load(fh.read())

    row_side = cpu(lambda f: scan_file(f, perceptual_hash=True))
    r = interleaved({"row": row_side, "Pillow": cpu(bare), "libspng": cpu(bare_spng)}, rounds)
    row = r.median("row") / len(files) * 1e3
    pil, spng = (r.median(k) / len(files) * 1e3 for k in ("Pillow", "libspng"))
    dec = min(pil, spng)
    print(
        f"per file, one process, CPU (medians of {rounds}): bare PNG decode {pil:.3f} ms "
        f"(Pillow), {spng:.3f} ms (libspng); our scan row with hashes {row:.3f} ms (the faster "
        f"decode is {dec / row:.1%} of it); with all but the decode free, the speed-up could "
        f"reach at most {speedup:.3f} x {row / dec:.3f} = {speedup * row / dec:.2f}x"
    )


# ---------------------------------------------------------------------------- hashes


def index_scaling(sizes: list[int], radius: int = 8, planted: int = 1000) -> None:
    print(
        f"\n## 3. exact radius-{radius} search over random 64-bit hashes, {planted} planted pairs"
    )
    print("| hashes    | seconds | pairs found | planted recall |")
    print("|-----------|--------:|------------:|---------------:|")
    base = None
    for n in sizes:
        rng = np.random.default_rng(n)
        h = rng.integers(0, 2**63, n, dtype=np.int64).view(np.uint64) * np.uint64(2) + rng.integers(
            0, 2, n, dtype=np.int64
        ).view(np.uint64)
        src = rng.choice(n // 2, planted, replace=False)  # sources and targets disjoint
        dst = src + n // 2
        flips = np.zeros(planted, dtype=np.uint64)
        for k in range(planted):
            for bit in rng.choice(64, int(rng.integers(1, radius + 1)), replace=False):
                flips[k] |= np.uint64(1) << np.uint64(int(bit))
        h[dst] = h[src] ^ flips
        t = time.perf_counter()
        res = HammingIndex(h).pairs(radius, max_pairs=None)
        dt = time.perf_counter() - t
        found = {tuple(p) for p in res.pairs.tolist()}
        rec = np.mean(
            [tuple(sorted((int(a), int(b)))) in found for a, b in zip(src, dst, strict=True)]
        )
        base = base or dt
        print(f"| {n:9,d} | {dt:7.2f} | {len(res.pairs):11,d} | {rec:14.3f} |")
    if len(sizes) > 1:
        print(
            f"growth {sizes[0]:,} -> {sizes[-1]:,}: {dt / base:.1f}x time for "
            f"{sizes[-1] / sizes[0]:.0f}x hashes "
            f"(all-pairs would be {(sizes[-1] / sizes[0]) ** 2:.0f}x)"
        )


def hash_speed(n_bases: int, rounds: int = 7, photos: int = 20) -> None:
    """Section 4: per-image pHash + dHash time, ours against imagehash, same decoded images."""
    import imagehash

    from workbench.hashindex import perceptual_hashes
    from workbench.io import decode

    sil = sorted(make_subset("silhouettes", n_bases)[0].glob("*.png"))
    crops = sorted(make_subset("photos", n_bases)[0].glob("*.png"))
    groups = {
        "28-px silhouettes": [decode(p) for p in sil],
        "96-256 px photo crops": [decode(p) for p in crops],
    }
    from sklearn.datasets import load_sample_images

    full = [Image.fromarray(a) for a in load_sample_images().images]
    groups["640x427 photos"] = [full[k % len(full)] for k in range(photos)]

    def ours(ims: list) -> None:
        for im in ims:
            perceptual_hashes(im)

    def theirs(ims: list) -> None:
        for im in ims:
            imagehash.phash(im)
            imagehash.dhash(im)

    def seconds(fn: Any, ims: list) -> float:
        t = time.perf_counter()
        fn(ims)
        return time.perf_counter() - t

    print(f"\n## 4. pHash + dHash per image: workbench vs imagehash {imagehash.__version__}")
    print(f"load average before: {load()}")
    print(
        "| images                |     n | workbench us | imagehash us | ratio, median (min-max) |"
    )
    print(
        "|-----------------------|------:|-------------:|-------------:|------------------------:|"
    )
    for name, ims in groups.items():
        if not ims:
            continue
        ours(ims[:5])  # warm-up: caches, imports
        theirs(ims[:5])
        a, b = [], []
        for r in range(rounds):  # interleaved, alternating which goes first
            for fn, out in ((ours, a), (theirs, b))[:: 1 if r % 2 else -1]:
                out.append(seconds(fn, ims))
        ratios = sorted(y / x for x, y in zip(a, b, strict=True))
        spread = f"{np.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
        us = 1e6 / len(ims)
        print(
            f"| {name:21s} | {len(ims):5d} | {np.median(a) * us:12.1f} | {np.median(b) * us:12.1f} "
            f"| {spread:>23s} |"
        )
    print(f"load average after: {load()}; {rounds} interleaved rounds, decoding not timed")


# ---------------------------------------------------------------------------- catalog scale


def _components(pairs: Any, samples: Any) -> tuple[int, int, int]:
    """Flagged samples, groups and the largest group (samples) of content pairs ``a, b``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs) == 0:
        return 0, 0, 0
    nodes = {h: n for n, h in enumerate(dict.fromkeys([*pairs["a"], *pairs["b"]]))}
    a, b = pairs["a"].map(nodes).to_numpy(), pairs["b"].map(nodes).to_numpy()
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes)))
    _, comp = connected_components(graph, directed=False)
    per_node = samples["hash"].value_counts().reindex(list(nodes)).fillna(1).to_numpy()
    sizes = np.bincount(comp, weights=per_node)
    return int(per_node.sum()), len(sizes), int(sizes.max())


def catalog_scale(workers: int, n_bases: int = 400, seed: int = 7) -> None:
    """Section 5: all 10,000 animal silhouettes, with near copies of ``n_bases`` of them planted
    (the edits of section 1): does a method chain look-alikes together at catalog scale, and
    does it still find the planted copies among them?"""
    from workbench import neardup

    ws = Workspace(ROOT / "sources")
    animals = samples.load("animals", ws, progress=False)
    folder = ROOT / f"animals-planted-{n_bases}-{seed}"
    if not (folder / ".complete").exists():
        rng = np.random.default_rng(seed)
        for p in animals.df["path"]:  # the sample itself, linked
            dst = folder / Path(p).relative_to(animals.root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(p)
        (folder / "planted").mkdir(exist_ok=True)
        distinct = animals.df.drop_duplicates("hash")
        for b in distinct.sample(n_bases, random_state=seed)["id"]:
            im = Image.open(animals.root / b).convert("L")
            for c in range(int(rng.integers(1, 4))):
                name = f"{b.replace('/', '~')}_c{c}.png"
                _near_copy(im, int(rng.integers(len(COPY_OPS))), rng).save(
                    folder / "planted" / name
                )
        (folder / ".complete").touch()
    cat = Catalog.from_folder(folder, labels=None, progress=False, workers=workers)
    df = cat.df[cat.df["status"] == "ok"]
    base = df["id"].str.replace("planted/", "").str.split("_c").str[0].str.replace("~", "/")
    hash_of = dict(zip(df["id"], df["hash"], strict=True))  # a base's exact twin is family too
    family = {i: hash_of[b] for i, b in zip(df["id"], base, strict=True)}
    planted = {i for i in df["id"] if i.startswith("planted/")}
    truth = {p for p in truth_pairs(family) if set(p) & planted}
    print(
        f"\n## 5. catalog scale: {len(animals)} animal silhouettes + {len(planted)} planted "
        f"copies of {n_bases} of them ({len(truth)} true pairs; load {load()})"
    )
    print("| method | threshold | flagged | groups | largest group | planted P | planted R |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    dups = ["exact_duplicate", "near_duplicate"]
    for method in ("hash", "auto"):
        rep = check(cat, checks=dups, progress=False, workers=workers, near_method=method,
                    workspace=ws)  # fmt: skip
        if method == "hash":
            g = rep.groups("exact_duplicate")
            print(f"| exact duplicates | - | {sum(map(len, g))} | {len(g)} | "
                  f"{max(map(len, g), default=0)} | - | - |")  # fmt: skip
        g = rep.groups()
        pairs = near_duplicate_pairs(rep)
        found = {p for p in zip(pairs["a"], pairs["b"], strict=True) if set(p) & planted}
        p, r = pr(found, truth)
        name = f"workbench {rep.pairs.attrs['method']}" + (" (default)" if method == "auto" else "")
        print(f"| {name} | {rep.thresholds['near_duplicate']:.4f} | {sum(map(len, g))} | "
              f"{len(g)} | {max(map(len, g), default=0)} | {p:.3f} | {r:.3f} |")  # fmt: skip
    # the default again, through the search used above neardup.EXACT_LIMIT images (an HNSW
    # index over principal components): does the approximate search lose planted pairs?
    limit, neardup.EXACT_LIMIT = neardup.EXACT_LIMIT, 0
    try:
        rep = check(cat, checks=dups, progress=False, workers=workers, workspace=ws)
    finally:
        neardup.EXACT_LIMIT = limit
    g = rep.groups()
    pairs = near_duplicate_pairs(rep)
    p, r = pr({p for p in zip(pairs["a"], pairs["b"], strict=True) if set(p) & planted}, truth)
    print(f"| workbench embedding (default), approximate search | "
          f"{rep.thresholds['near_duplicate']:.4f} | {sum(map(len, g))} | {len(g)} | "
          f"{max(map(len, g), default=0)} | {p:.3f} | {r:.3f} |")  # fmt: skip
    ok = rep.samples.drop_duplicates("hash")
    for sim in (1 - 10 / 128, neardup.DEFAULT_SIMILARITY):  # the old default, the new one
        r = neardup.radius_for(sim)
        plain = neardup.embedding_pairs(cat, ok["id"].to_numpy(), r, workspace=ws,
                                        progress=False, local=False)  # fmt: skip
        flagged, groups, largest = _components(plain, rep.samples)
        ids_of = rep.samples.groupby("hash")["id"].agg(list)
        found = {tuple(sorted((x, y))) for ha, hb in zip(plain["a"], plain["b"], strict=True)
                 for x in ids_of[ha] for y in ids_of[hb] if {x, y} & planted}  # fmt: skip
        p, rec = pr(found, truth)
        print(
            f"| workbench embedding, threshold alone | {sim:.4f} | {flagged} | {groups} | "
            f"{largest} | {p:.3f} | {rec:.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", type=int, default=1000, help="bases of photos and silhouettes")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (>= 7)")
    ap.add_argument("--subsets", default=",".join(SUBSETS), help="for sections 1 and 2")
    ap.add_argument("--skip-1m", action="store_true")
    ap.add_argument("--sections", default="1,2,3,4,5", help="which sections to run, e.g. 1,2")
    args = ap.parse_args()
    run = {int(x) for x in args.sections.split(",")}
    t = time.perf_counter()
    if 1 in run:
        quality(args.bases, args.workers, tuple(args.subsets.split(",")))
    if 2 in run:
        speed(args.bases, args.workers, args.rounds, tuple(args.subsets.split(",")))
    if 3 in run:
        index_scaling([100_000] if args.skip_1m else [100_000, 1_000_000])
    if 4 in run:
        hash_speed(args.bases)
    if 5 in run:
        catalog_scale(args.workers)
    print(f"\n(bench_clean: {time.perf_counter() - t:.0f} s, load {load()})")


if __name__ == "__main__":
    main()

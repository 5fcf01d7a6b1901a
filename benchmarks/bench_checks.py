"""Per-image quality checks against cleanvision: precision / recall on planted defects, speed.

    .venv/bin/python benchmarks/bench_checks.py [--bases 1200] [--per-defect 100] [--repeats 2]
        [--workers N] [--threshold ISSUE=VALUE ...]

A generated, labelled set (written once to ``<tmp>/wb-bench-checks/set``, reused while complete;
``truth.json`` there holds every file's kind and defects). Every file is an 8-bit RGB PNG, so no
truth depends on the file mode.

* Clean bases (``--bases``): 5/6 random crops of the bundled colour photos (aspect 3:4 to 4:3,
  96-256 px, zoomed out up to 2x), 1/6 animal silhouettes upscaled (bicubic) to 96-160 px and
  tinted with two random colours. A base is kept only if it is plainly fine by measures neither
  tool uses: mean luma in [50, 205], luma std >= 25, mean chroma (max - min channel) >= 10, and
  at least 5 % of pixels on an edge (luma gradient > 16). That drops the star field, black
  corners and plain sky, whose truth would be arguable.
* Defect copies, ``--per-defect`` of each truth issue, from random bases (one defect each):
  ``blurry``: Gaussian blur σ = 2 px (``blur_mild``) and σ = 4 px (``blur_strong``), that many
  of each; ``dark``: mean luma brought to 8-28 by scaling (``dark_scale``) or by a gamma
  (``dark_gamma``), half each; ``bright``: mean luma brought to 228-248 the same two ways;
  ``grayscale``: the base's luma saved as RGB (``gray_rgb``); ``odd_size``: the base shrunk to
  8-16 px on its long side (``tiny``). New images: ``low_information``: flat colour (luma
  50-205) plus Gaussian noise σ 0.5-3 per channel, sized like a photo base (``flat_noise``);
  ``odd_aspect_ratio``: photo crops at 3:1 to 8:1 (either way up) with a base-like area,
  passing the base filter (``aspect``).

Both tools at their default thresholds (``--threshold`` overrides workbench's, to try a
proposal), from the folder to the flags, timed best of ``--repeats`` (interleaved) with the same
worker count: workbench ``Catalog.from_folder`` + ``check`` over the seven checks below;
cleanvision 0.3.7 ``Imagelab(filepaths=...)`` + ``find_issues`` over its seven image-property
issue types (``n_jobs`` = workers). Duplicates are left out on both sides: every defect copy is
a near duplicate of its base by construction (``bench_clean.py`` measures near duplicates).

cleanvision's defaults, for reading the tables: ``blurry`` is edge strength measured on a copy
shrunk to 64 px (plus a histogram-spread term), ``dark`` is the 99th percentile of its
brightness sqrt(0.241 R² + 0.691 G² + 0.068 B²) below 0.32, ``light`` the 5th percentile above
0.95, ``low_information`` the Pillow ``entropy()`` of the file under 3 bits, ``odd_size`` an
IQR fence (3 IQR) on sqrt(area), ``odd_aspect_ratio`` min(w/h, h/w) under 0.35.

Issue mapping (truth: workbench / cleanvision):

* ``blurry``: ``blurry`` / ``blurry``
* ``dark``: ``dark`` / ``dark``
* ``bright``: ``bright`` / ``light``
* ``low_information``: ``low_information`` / ``low_information``
* ``grayscale``: ``grayscale_in_color`` / ``grayscale``. The truth is "an RGB file whose pixels
  are gray". cleanvision's ``grayscale`` flags a file exactly when Pillow opens it in mode ``L``
  (any gray file stored as such), whatever its pixels; ours looks at the pixels of colour files
  only. With every file RGB here, cleanvision cannot flag any: read its row as "that case is
  outside what it checks", not as a tuning result.
* ``odd_aspect_ratio``: ``odd_aspect_ratio`` / ``odd_aspect_ratio``
* ``odd_size``: ``odd_size`` / ``odd_size`` (only too-small images are planted)

Precision counts every flag on a file without that defect as false (so a darkened copy that is
also flagged low-information costs the low-information row). The second table gives the flag
rate of each tool per kind of file, which shows where false flags come from and the recall of
each defect strength. Two parts of the truth are arguable and worth reading there: the animal
bases are 28-px images upscaled 3.4-5.7x, soft at the pixel level (a blur check that works at
full resolution sees that); and a gamma-darkened photo of a lit subject on a dark background
(``dark_gamma``) can look like a legitimate low-key picture although its mean luma is < 30.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from workbench import Catalog, Workspace, samples
from workbench.clean import check

#: truth issue -> (workbench issue, cleanvision issue)
ISSUES = {
    "blurry": ("blurry", "blurry"),
    "dark": ("dark", "dark"),
    "bright": ("bright", "light"),
    "low_information": ("low_information", "low_information"),
    "grayscale": ("grayscale_in_color", "grayscale"),
    "odd_aspect_ratio": ("odd_aspect_ratio", "odd_aspect_ratio"),
    "odd_size": ("odd_size", "odd_size"),
}
#: kind of defect copy -> (truth issue, share of --per-defect)
DEFECTS = {
    "blur_mild": ("blurry", 1.0),
    "blur_strong": ("blurry", 1.0),
    "dark_scale": ("dark", 0.5),
    "dark_gamma": ("dark", 0.5),
    "bright_scale": ("bright", 0.5),
    "bright_gamma": ("bright", 0.5),
    "flat_noise": ("low_information", 1.0),
    "gray_rgb": ("grayscale", 1.0),
    "aspect": ("odd_aspect_ratio", 1.0),
    "tiny": ("odd_size", 1.0),
}
KINDS = ("photo", "animal", *DEFECTS)
SET_VERSION = 2  # bump when the generator changes
_LUMA = np.array([0.299, 0.587, 0.114])

# ---------------------------------------------------------------------------- the set


def luma(a: np.ndarray) -> np.ndarray:
    return a[..., :3].astype(np.float64) @ _LUMA


def plainly_fine(a: np.ndarray) -> bool:
    """Well exposed, some contrast, some colour, some edges: a base whose truth is "clean"."""
    y = luma(a)
    chroma = (a.max(-1).astype(np.int16) - a.min(-1)).mean()
    edges = np.hypot(np.diff(y, axis=0)[:, :-1], np.diff(y, axis=1)[:-1, :])
    return bool(
        50 <= y.mean() <= 205 and y.std() >= 25 and chroma >= 10 and (edges > 16).mean() >= 0.05
    )


def photo_crop(pic: Image.Image, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A ``w`` x ``h`` crop of a region up to 2x larger (zoomed out), where it fits."""
    zmax = min(2.0, pic.width / w, pic.height / h)
    z = float(rng.uniform(1.0, zmax)) if zmax > 1 else min(pic.width / w, pic.height / h)
    cw, ch = max(1, round(w * z)), max(1, round(h * z))
    x, y = int(rng.integers(0, pic.width - cw + 1)), int(rng.integers(0, pic.height - ch + 1))
    return pic.resize((w, h), Image.Resampling.LANCZOS, box=(x, y, x + cw, y + ch))


def make_base(kind: str, pics, animals, rng: np.random.Generator) -> Image.Image:
    while True:
        if kind == "photo":
            s, r = rng.uniform(96, 256), np.sqrt(rng.uniform(0.75, 4 / 3))
            im = photo_crop(pics[rng.integers(len(pics))], round(s * r), round(s / r), rng)
        else:
            s = int(rng.integers(96, 161))
            g = animals[rng.integers(len(animals))].resize((s, s), Image.Resampling.BICUBIC)
            t = np.asarray(g, dtype=np.float64)[..., None] / 255
            fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            if abs(float(fg @ _LUMA - bg @ _LUMA)) < 120:
                continue
            im = Image.fromarray(np.round(bg + (fg - bg) * t).astype(np.uint8))
        if plainly_fine(np.asarray(im)):
            return im


def _tone(a: np.ndarray, target: float, gamma: bool) -> np.ndarray:
    """Bring the mean luma of ``a`` to ``target`` by a scale (towards black for a dark target,
    towards white for a bright one) or by a gamma found by bisection."""
    x = a.astype(np.float64) / 255
    dark = target < 128
    if not gamma:
        m = luma(x).mean() if dark else 1 - luma(x).mean()
        k = (target / 255 if dark else 1 - target / 255) / m
        y = x * k if dark else 1 - (1 - x) * k
    else:
        lo, hi = (1.0, 40.0) if dark else (0.01, 1.0)
        for _ in range(40):
            g = (lo + hi) / 2
            mean = luma(x**g).mean() * 255
            if mean > target:  # x**g falls as g grows
                lo = g
            else:
                hi = g
        y = x ** ((lo + hi) / 2)
    return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


def make_defect(kind: str, base: Image.Image, pics, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(base)
    if kind in ("blur_mild", "blur_strong"):
        return base.filter(ImageFilter.GaussianBlur(2 if kind == "blur_mild" else 4))
    if kind.startswith(("dark", "bright")):
        target = rng.uniform(8, 28) if kind.startswith("dark") else rng.uniform(228, 248)
        return Image.fromarray(_tone(a, target, kind.endswith("gamma")))
    if kind == "gray_rgb":
        return base.convert("L").convert("RGB")
    if kind == "tiny":
        f = rng.uniform(8, 16) / max(base.size)
        size = (max(1, round(base.width * f)), max(1, round(base.height * f)))
        return base.resize(size, Image.Resampling.LANCZOS)
    if kind == "flat_noise":
        while True:
            c = rng.integers(0, 256, 3)
            if 50 <= c @ _LUMA <= 205:
                break
        s, r = rng.uniform(96, 256), np.sqrt(rng.uniform(0.75, 4 / 3))
        w, h = round(s * r), round(s / r)
        noise = rng.normal(0, rng.uniform(0.5, 3), (h, w, 3))
        return Image.fromarray(np.clip(np.round(c + noise), 0, 255).astype(np.uint8))
    if kind == "aspect":
        while True:
            s, r = rng.uniform(120, 220), np.sqrt(rng.uniform(3, 8))
            w, h = round(s * r), round(s / r)
            if rng.integers(2):
                w, h = h, w
            pic = pics[rng.integers(len(pics))]
            if w > pic.width or h > pic.height:
                continue
            im = photo_crop(pic, w, h, rng)
            if plainly_fine(np.asarray(im)):
                return im
    raise ValueError(kind)


def make_set(out: Path, n_bases: int, per_defect: int, seed: int = 0) -> dict[str, dict]:
    """Write the set once; return {file name: {"kind": ..., "defects": [...]}}."""
    marker = out / f".complete-v{SET_VERSION}-{n_bases}-{per_defect}-{seed}"
    if marker.exists():
        return json.loads((out / "truth.json").read_text())
    rng = np.random.default_rng(seed)
    ws = Workspace(out.parent / "sources")
    animals = samples.load("animals", ws, progress=False)
    photos = samples.load("photos", ws, progress=False)
    picked = animals.df.drop_duplicates("hash").sample(n_bases, random_state=seed)
    animal_ims = [Image.open(p).convert("L") for p in picked["path"]]
    pics = [Image.open(p).convert("RGB") for p in photos.df["path"]]
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.png"), *out.glob(".complete-*")]:
        old.unlink()
    truth: dict[str, dict] = {}
    bases = []
    for i in range(n_bases):
        kind = "animal" if i % 6 == 5 else "photo"
        im = make_base(kind, pics, animal_ims, rng)
        name = f"{kind[0]}{i:05d}"
        im.save(out / f"{name}.png")
        truth[f"{name}.png"] = {"kind": kind, "defects": []}
        bases.append((name, im))
    for kind, (issue, share) in DEFECTS.items():
        for _ in range(round(per_defect * share)):
            name, base = bases[rng.integers(len(bases))]
            fname = f"{name}_{kind}.png"
            while fname in truth:
                name, base = bases[rng.integers(len(bases))]
                fname = f"{name}_{kind}.png"
            make_defect(kind, base, pics, rng).convert("RGB").save(out / fname)
            truth[fname] = {"kind": kind, "defects": [issue]}
    (out / "truth.json").write_text(json.dumps(truth, indent=0, sort_keys=True))
    marker.touch()
    return truth


# ---------------------------------------------------------------------------- the tools


def run_workbench(
    folder: Path, workers: int, thresholds: dict[str, float] | None = None
) -> tuple[dict[str, set[str]], float, object]:
    """Flagged file names per truth issue, wall seconds, and the report."""
    t = time.perf_counter()
    cat = Catalog.from_folder(folder, labels=None, progress=False, workers=workers)
    checks = [wb for wb, _ in ISSUES.values()]
    rep = check(cat, checks=checks, thresholds=thresholds, progress=False, workers=workers)
    dt = time.perf_counter() - t
    flags = rep.table[rep.table["flagged"]]
    name = {i: Path(p).name for i, p in zip(cat.df["id"], cat.df["path"], strict=True)}
    out = {
        issue: {name[i] for i in flags.loc[flags["issue"] == wb, "id"]}
        for issue, (wb, _) in ISSUES.items()
    }
    return out, dt, rep


def run_cleanvision(folder: Path, workers: int) -> tuple[dict[str, set[str]], float, object]:
    from cleanvision import Imagelab

    paths = sorted(str(p) for p in folder.glob("*.png"))
    t = time.perf_counter()
    quiet = io.StringIO()  # its messages and progress bars
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        lab = Imagelab(filepaths=paths)
        lab.find_issues(
            issue_types={cv: {} for _, cv in ISSUES.values()}, n_jobs=workers, verbose=False
        )
    dt = time.perf_counter() - t
    iss = lab.issues
    out = {
        issue: {Path(p).name for p in iss.index[iss[f"is_{cv}_issue"].to_numpy(bool)]}
        for issue, (_, cv) in ISSUES.items()
    }
    return out, dt, lab


def prf(pred: set[str], truth: set[str]) -> tuple[float, float, float]:
    tp = len(pred & truth)
    p, r = tp / max(1, len(pred)), tp / max(1, len(truth))
    return p, r, 2 * p * r / max(1e-12, p + r)


# ---------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", type=int, default=1200)
    ap.add_argument("--per-defect", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each tool, best kept")
    ap.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="ISSUE=VALUE",
        help="workbench threshold override (repeatable), e.g. dark=0.8; default: the defaults",
    )
    args = ap.parse_args()
    thresholds = {k: float(v) for k, v in (t.split("=", 1) for t in args.threshold)}

    folder = Path(tempfile.gettempdir()) / "wb-bench-checks" / "set"
    truth = make_set(folder, args.bases, args.per_defect)
    import cleanvision  # noqa: F401  both tools import before their clocks start

    wb_t = cv_t = float("inf")
    for _ in range(args.repeats):  # interleaved, best of each: the machine is shared
        wb, t, _rep = run_workbench(folder, args.workers, thresholds or None)
        wb_t = min(wb_t, t)
        cv, t, _lab = run_cleanvision(folder, args.workers)
        cv_t = min(cv_t, t)

    kinds = {f: v["kind"] for f, v in truth.items()}
    counts = {k: sum(v == k for v in kinds.values()) for k in KINDS}
    n_clean = counts["photo"] + counts["animal"]
    print(
        f"\n## per-image checks: {len(truth)} RGB PNGs, {counts['photo']} photo crops + "
        f"{counts['animal']} tinted animals clean, {len(truth) - n_clean} with one planted defect"
    )
    cols = ["truth", "wb P ", "wb R ", "wb F1", "cv P ", "cv R ", "cv F1"]
    print(f"| {'issue':16} | {'workbench / cleanvision name':35} | " + " | ".join(cols) + " |")
    print(f"|{'-' * 18}|{'-' * 37}|" + "|".join("-" * (len(c) + 1) + ":" for c in cols) + "|")
    for issue, (wname, cname) in ISSUES.items():
        true = {f for f, v in truth.items() if issue in v["defects"]}
        cells = [f"{x:5.3f}" for x in (*prf(wb[issue], true), *prf(cv[issue], true))]
        names = f"{wname} / {cname}"
        print(f"| {issue:16} | {names:35} | {len(true):5d} | " + " | ".join(cells) + " |")
    if thresholds:
        print(f"workbench threshold overrides: {thresholds}")
    print(
        f"wall time, folder to flags, best of {args.repeats}, {args.workers} workers: workbench "
        f"{wb_t:.2f} s, cleanvision {cv_t:.2f} s ({cv_t / wb_t:.2f}x)."
    )

    print("\n## flag rate per kind of file, % (workbench / cleanvision); planted issue in bold")
    print("| kind         |    n | " + " | ".join(f"{i:>16}" for i in ISSUES) + " |")
    print("|--------------|-----:|" + "|".join("-" * 17 + ":" for _ in ISSUES) + "|")
    for kind in KINDS:
        files = {f for f, k in kinds.items() if k == kind}
        planted = DEFECTS.get(kind, (None,))[0]
        cells = []
        for issue in ISSUES:
            a = 100 * len(wb[issue] & files) / len(files)
            b = 100 * len(cv[issue] & files) / len(files)
            c = f"{a:.0f} / {b:.0f}"
            cells.append(f"**{c}**".rjust(16) if issue == planted else c.rjust(16))
        print(f"| {kind:12} | {len(files):4d} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Offline sample datasets, written out as real image files.

Nothing here downloads: every sample ships inside an installed package.

========  ====================================================  ===========================
name      what                                                   layout
========  ====================================================  ===========================
animals   animal-mnist: 10 classes × 1,000 silhouettes, 28×28    ``animals/<class>/<n>.png``
digits    scikit-learn digits: 1,797 × 8×8, 10 classes           ``digits/<digit>/<n>.png``
photos    scikit-image colour photos + scikit-learn's two        ``photos/<name>.<ext>``
          sample photos, unlabeled (augmentation previews)
========  ====================================================  ===========================

Run ``python -m workbench.samples animals --dest data/workspace`` to materialise from a shell.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.catalog import Catalog
from workbench.errors import WorkbenchError
from workbench.fsutil import atomic_dir, atomic_write
from workbench.workspace import Workspace

ANIMAL_CLASSES = (
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
)  # fmt: skip
_ANIMAL_FILES = {
    "animal_data_version_3.gz": "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    "animal_label_version_3.gz": "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
}
_SKIMAGE_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
    "motorcycle_left.png", "retina.jpg", "rocket.jpg",
)  # fmt: skip
_MARKER = ".complete.json"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError(
            f"the package {name!r} is not installed; run `make lab` or `make test`, which install "
            f"it (for animal-mnist: pip install --no-deps animal-mnist==0.4)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _verified_pickle(path: Path, sha256: str) -> np.ndarray:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:  # never unpickle bytes we did not expect
        raise WorkbenchError(
            f"{path} has sha256 {digest[:12]}…, expected {sha256[:12]}…; reinstall"
        )
    return np.asarray(pickle.loads(gzip.decompress(data)))


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _animals() -> Iterator[tuple[str, bytes]]:
    folder = _package_dir("animal_mnist") / "data" / "Animal_MNIST"
    files = list(_ANIMAL_FILES.items())
    x = _verified_pickle(folder / files[0][0], files[0][1]).astype(np.uint8)
    y = _verified_pickle(folder / files[1][0], files[1][1]).astype(int)
    counts = dict.fromkeys(ANIMAL_CLASSES, 0)
    for img, label in zip(x, y, strict=True):
        name = ANIMAL_CLASSES[label]
        yield f"{name}/{name}_{counts[name]:04d}.png", _png(img)
        counts[name] += 1


def _digits() -> Iterator[tuple[str, bytes]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images, d.target, strict=True)):
        a = np.round(img * (255.0 / 16.0)).astype(np.uint8)
        yield f"{label}/digit_{i:04d}.png", _png(a)


def _photos() -> Iterator[tuple[str, bytes]]:
    sk = _package_dir("skimage") / "data"
    for name in _SKIMAGE_PHOTOS:
        yield name, (sk / name).read_bytes()
    sk_images = _package_dir("sklearn") / "datasets" / "images"
    for p in sorted(sk_images.glob("*.jpg")):
        yield p.name, p.read_bytes()


SAMPLES: dict[str, Callable[[], Iterator[tuple[str, bytes]]]] = {
    "animals": _animals,
    "digits": _digits,
    "photos": _photos,
}


def materialize(name: str, dest: Workspace | str | os.PathLike, *, progress: bool = True) -> Path:
    """Write sample ``name`` as image files and return its folder.

    ``dest`` is a Workspace (files go to ``images/<name>``) or any folder (``<dest>/<name>``).
    Idempotent: a complete earlier run is reused as is. The folder appears atomically (written
    beside it, then renamed, :func:`workbench.fsutil.atomic_dir`), so an interrupted run leaves
    no half dataset behind. With ``progress``, a bar while writing and then one line saying
    what happened: ``animals: wrote 10,000 files to ...`` or ``animals: already present in ...``.
    """
    if name not in SAMPLES:
        raise WorkbenchError(f"unknown sample {name!r}; choose one of {sorted(SAMPLES)}")
    base = dest.images_dir if isinstance(dest, Workspace) else Path(dest)
    out = base / name
    if (out / _MARKER).exists():
        if progress:
            print(f"{name}: already present in {out}")
        return out
    from tqdm.auto import tqdm

    # overwrite: a folder without the marker is what an interrupted older layout left
    with atomic_dir(out, overwrite=True) as tmp:
        n = 0
        files = SAMPLES[name]()
        for rel, data in tqdm(files, desc=f"{name}: writing", unit=" files", disable=not progress,
                              leave=False):  # fmt: skip
            # plain writes: the whole folder is renamed into place only once every file is in
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            n += 1
        atomic_write(tmp / _MARKER, json.dumps({"sample": name, "files": n}))
    if progress:
        print(f"{name}: wrote {n:,} files to {out}")
    return out


def load(name: str, dest: Workspace | str | os.PathLike, **scan) -> Catalog:
    """Materialise sample ``name`` (see :func:`materialize`) and scan it into a Catalog."""
    cat = Catalog.from_folder(materialize(name, dest, progress=scan.get("progress", True)), **scan)
    if isinstance(dest, Workspace):
        dest.attach(cat)
    return cat


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Materialise offline sample datasets as image files.")
    ap.add_argument("names", nargs="+", choices=sorted(SAMPLES))
    ap.add_argument("--dest", default="data/workspace", help="workspace folder")
    args = ap.parse_args(argv)
    ws = Workspace(args.dest)
    for name in args.names:
        materialize(name, ws)  # says "wrote ..." or "already present in ..."


if __name__ == "__main__":
    main()

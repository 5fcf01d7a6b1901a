"""Training data: the grouped split, labels and exclusions, transforms, data versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from workbench.catalog import Catalog
from workbench.workspace import Workspace


def tiny_workspace(
    root: Path, classes: int = 3, per_class: int = 12, size: int = 28, twins: int = 0
) -> tuple[Workspace, Catalog]:
    """A workspace over ``classes`` x ``per_class`` gray stripes, ImageFolder layout; the class
    is where the bright band is, so a network can learn it. ``twins`` copies of the first files
    of each class are added (exact duplicates, a content hash shared)."""
    rng = np.random.default_rng(0)
    band = size // classes
    for c in range(classes):
        for k in range(per_class):
            a = rng.integers(0, 60, (size, size)).astype(np.uint8)
            a[c * band : (c + 1) * band] += 150
            p = root / "imgs" / f"c{c}" / f"{k:03d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(p)
            if k < twins:
                Image.fromarray(a).save(p.with_name(f"{k:03d}_twin.png"))
    ws = Workspace(root / "ws")
    cat = Catalog.from_folder(root / "imgs", progress=False)
    ws.save_catalog(cat)
    return ws, cat


def folder_labels(cat: Catalog) -> pd.Series:
    return cat.df.set_index("id")["label"].astype(object)

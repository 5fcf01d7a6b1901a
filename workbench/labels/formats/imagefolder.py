"""torchvision ``ImageFolder`` trees: one folder per class, the image files inside.

Guarantees: the tree is built under a temporary name and renamed into place (a failure leaves
any previous tree as it was); folder and file names are safe and unique on any OS
(:func:`workbench.fsutil.safe_names`, :func:`workbench.fsutil.sample_file_names`) and nothing is
written outside the tree, whatever the class names and ids hold.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from workbench.fsutil import atomic_dir, inside, place, safe_names, sample_file_names
from workbench.labels.formats._common import folder_export, label_errors, write_listing

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels.store import LabelStore


def to_imagefolder(
    store: LabelStore,
    out: str | os.PathLike,
    catalog: Catalog | None = None,
    *,
    mode: str = "copy",
    task: str = "class",
    annotator: str | None = None,
    round: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Export class labels as a torchvision ``ImageFolder`` tree, atomically.

    ``out/<class folder>/<file>``; a multi-label sample appears in each of its classes'
    folders. Class names unsafe as folder names get safe, unique folder names
    (:func:`safe_names`); ``out/classes.json`` records ``name -> folder`` (and the samples
    left out because they are not in the catalog or unreadable) and ``out/samples.csv``
    records ``id, class, file``. ``ImageFolder`` numbers classes by *sorted folder name*,
    not by our codes: map through ``classes.json``.

    Parameters
    ----------
    out
        The folder to create. It is built next to ``out`` under a temporary name and renamed
        into place when complete.
    catalog
        Where the image files are (default: the store's catalog).
    mode
        ``"copy"``, ``"symlink"`` (absolute links) or ``"hardlink"`` (same file system).
    task, annotator, round
        Which labels; with several annotators or rounds, a sample's latest label wins.
    overwrite
        Replace an existing ``out`` folder (otherwise :class:`LabelError`).
    """
    batch = folder_export(
        store, catalog, mode, task=task, annotator=annotator, round=round, boxes=False
    )
    rows, paths = [], {}
    for row in batch.rows:
        names = [row.value] if isinstance(row.value, str) else row.value
        rows.extend((row.sample_id, n) for n in names)
        paths[row.sample_id] = row.path
    codes = batch.classes
    folders = safe_names(codes)
    files = sample_file_names([sid for sid, _ in rows])
    counts = dict.fromkeys(codes, 0)
    with label_errors(), atomic_dir(out, overwrite) as tmp:
        for sid, name in rows:
            counts[name] += 1
            place(paths[sid], inside(tmp, folders[name], files[sid]), mode)
        classes = [
            {"name": n, "code": c, "folder": folders[n], "count": counts[n]}
            for n, c in codes.items()
        ]
        meta = {"format": "imagefolder", "task": task, "classes": classes, "skipped": batch.skipped}
        table = pd.DataFrame(
            [(sid, n, f"{folders[n]}/{files[sid]}") for sid, n in rows],
            columns=["id", "class", "file"],
        )
        write_listing(tmp, meta, table)
    return Path(out)

"""YOLO (Ultralytics) detection folders: ``images/``, ``labels/*.txt``, ``data.yaml``.

Guarantees: the folder is built under a temporary name and renamed into place; file names are
safe and unique (:func:`workbench.fsutil.sample_file_names`), class names reach ``data.yaml``
unchanged (YAML-escaped); boxes survive a round trip within 1e-6 px; an import is all or nothing.
"""

from __future__ import annotations

import functools
import math
import os
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import LabelError
from workbench.fsutil import atomic_dir, atomic_write, inside, place, sample_file_names
from workbench.labels._checks import _is_int, _need, _short, _text
from workbench.labels.batch import ImportRow
from workbench.labels.formats._common import (
    Parsed,
    _import_matched,
    _read_json,
    folder_export,
    label_errors,
    write_listing,
)

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels.store import LabelStore


def to_yolo(
    store: LabelStore,
    out: str | os.PathLike,
    catalog: Catalog | None = None,
    *,
    task: str = "boxes",
    mode: str | None = "copy",
    annotator: str | None = None,
    round: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Export box labels in the YOLO (Ultralytics) detection layout, atomically.

    ``out/images/<file>`` (none with ``mode=None``), ``out/labels/<stem>.txt`` with one
    line ``class cx cy w h`` per box (normalised to [0, 1]; ``class`` is the index into
    ``names``), ``out/data.yaml`` (``train``/``val``: ``images``, ``nc``, ``names``),
    ``out/classes.json`` (index, code and name of each class; the samples left out) and
    ``out/samples.csv`` (``id, stem``). File names are made safe and unique from the ids.
    """
    batch = folder_export(
        store, catalog, mode, task=task, annotator=annotator, round=round, boxes=True,
        files_optional=True,
    )  # fmt: skip
    codes = batch.classes
    index = {n: i for i, n in enumerate(codes)}
    ids = [row.sample_id for row in batch.rows]
    files, stems = sample_file_names(ids), sample_file_names(ids, suffix="")
    with label_errors(), atomic_dir(out, overwrite) as tmp:
        for row in batch.rows:
            sid, w, h = row.sample_id, row.width, row.height
            lines = "".join(
                f"{index[n]} {(x + bw / 2) / w!r} {(y + bh / 2) / h!r} {bw / w!r} {bh / h!r}\n"
                for x, y, bw, bh, n in row.value
            )
            atomic_write(inside(tmp, "labels", stems[sid] + ".txt"), lines, fsync=False)
            if mode is not None:
                place(row.path, inside(tmp, "images", files[sid]), mode)
        names = "".join(f"  {i}: {_yaml_quote(n)}\n" for i, n in enumerate(codes))
        data = f"train: images\nval: images\nnc: {len(codes)}\nnames:\n{names}"
        atomic_write(inside(tmp, "data.yaml"), data, fsync=False)
        classes = [{"index": i, "code": c, "name": n} for i, (n, c) in enumerate(codes.items())]
        meta = {"format": "yolo", "task": task, "classes": classes, "skipped": batch.skipped}
        table = pd.DataFrame([(sid, stems[sid]) for sid in ids], columns=["id", "stem"])
        write_listing(tmp, meta, table)
    return Path(out)


def import_yolo(
    store: LabelStore,
    folder: str | os.PathLike,
    catalog: Catalog | None = None,
    *,
    annotator: str = "import",
    round: int = 0,
    task: str | None = None,
    add_classes: bool = True,
) -> int:
    """Import a YOLO detection folder: ours from :meth:`to_yolo`, or an Ultralytics one.

    Class names come from ``classes.json`` (ours) or from ``data.yaml``'s ``names`` (read
    with PyYAML). Each ``labels/**/*.txt`` (or ``*.txt`` anywhere in ``folder`` if it has no
    ``labels`` folder) is matched to a sample through ``samples.csv`` (ours), else by its
    path or file stem against the catalog ids. Boxes are converted to pixels with the
    catalog's width and height and rounded to 1e-6 px; an empty file is an empty label.
    One transaction: any defect raises :class:`LabelError` and nothing is imported.
    """
    root = Path(folder)

    def parse(resolve: Callable[..., str]) -> Parsed:
        _need(root.is_dir(), f"{str(root)!r} is not a folder")
        names, recorded = _yolo_names(root)
        labels = root / "labels" if (root / "labels").is_dir() else root
        listed = _yolo_listing(root)
        txts = sorted(labels.rglob("*.txt"))
        _need(txts or listed is not None, f"{str(root)!r} holds no YOLO label files (*.txt)")
        rows = _rows(txts, labels, listed, resolve, names)
        return Parsed(names, rows, recorded or "boxes")

    return _import_matched(
        store,
        catalog,
        parse,
        annotator=annotator,
        round=round,
        task=task,
        add_classes=add_classes,
        origin=root.name,
    )


def _rows(
    txts: list[Path],
    labels: Path,
    listed: dict[str, str] | None,
    resolve: Callable[..., str],
    names: list[str],
) -> Iterator[ImportRow]:
    seen: set[str] = set()
    for txt in txts:
        rel = txt.relative_to(labels).as_posix()
        stem = rel[: -len(".txt")]
        if listed is not None:
            _need(stem in listed, f"{rel}: not listed in samples.csv")
            sid = listed[stem]
        else:
            sid = resolve(stem, rel, stem_only=True)
        _need(sid not in seen, f"{rel}: a second label file for sample {sid!r}")
        seen.add(sid)
        yield ImportRow(sid, where=rel, read=functools.partial(_read_yolo_txt, txt, rel, names))


def _yaml_quote(s: str) -> str:
    """A YAML double-quoted scalar: letters, digits, punctuation kept, everything else escaped."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F or (o >= 0xA0 and unicodedata.category(ch)[0] in "LMNPS"):
            out.append(ch)
        elif o <= 0xFF:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def _yolo_names(root: Path) -> tuple[list[str], str | None]:
    """Class names by index, and the task recorded by our export (or None)."""
    meta = root / "classes.json"
    if meta.is_file():
        doc = _read_json(meta)
        classes = doc.get("classes") if isinstance(doc, dict) else None
        ok = isinstance(classes, list) and all(
            isinstance(c, dict) and isinstance(c.get("name"), str) for c in classes
        )
        _need(ok, "classes.json: 'classes' must be a list of {'name': ...}")
        task = doc.get("task")
        names = [_text("classes.json: class name", c["name"], empty_ok=True) for c in classes]
        return names, task if isinstance(task, str) and task else None
    data = root / "data.yaml"
    _need(data.is_file(), f"{str(root)!r} has neither classes.json nor a data.yaml with names")
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with jupyterlab
        raise LabelError("reading data.yaml needs PyYAML (pip install pyyaml)") from None
    try:
        doc = yaml.safe_load(data.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise LabelError(f"data.yaml is not readable YAML: {_short(str(e), 120)}") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict):
        keys_ok = all(_is_int(k) for k in names) and sorted(names) == list(range(len(names)))
        _need(keys_ok, "data.yaml: the keys of 'names' must be 0 .. n-1")
        names = [names[k] for k in range(len(names))]
    _need(isinstance(names, list), "data.yaml needs 'names': a list, or a map index -> name")
    return [_text("data.yaml: class name", str(n), empty_ok=True) for n in names], None


def _yolo_listing(root: Path) -> dict[str, str] | None:
    """``stem -> sample id`` from our ``samples.csv``, or None if there is none."""
    table = root / "samples.csv"
    if not table.is_file():
        return None
    try:
        df = pd.read_csv(table, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise LabelError(f"samples.csv is not a readable CSV: {e}") from None
    _need({"id", "stem"} <= set(df.columns), "samples.csv needs the columns id, stem")
    return dict(zip(df["stem"], df["id"], strict=True))


def _read_yolo_txt(
    txt: Path, rel: str, names: Sequence[str], size: tuple[int, int] | None
) -> list[list[Any]]:
    try:
        text = txt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{rel}: cannot read it ({e})") from None
    ok = size is not None and size[0] > 0 and size[1] > 0
    _need(ok, f"{rel}: the sample's image size is unknown (unreadable image)")
    w, h = size  # type: ignore[misc]
    boxes = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        at = f"{rel} line {n}"
        parts = line.split()
        _need(len(parts) == 5, f"{at}: a box line is 'class cx cy w h', got {_short(line)}")
        try:
            k = int(parts[0])
            cx, cy, bw, bh = (float(p) for p in parts[1:])
        except ValueError:
            raise LabelError(f"{at}: not numbers: {_short(line)}") from None
        _need(0 <= k < len(names), f"{at}: class {k} is not in names (0..{len(names) - 1})")
        ok = all(math.isfinite(v) and 0 <= v <= 1 for v in (cx, cy, bw, bh)) and bw > 0 < bh
        _need(ok, f"{at}: cx cy w h must be in [0, 1] with w, h > 0: {_short(line)}")
        xywh = ((cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h)
        boxes.append([*(round(v, 6) + 0.0 for v in xywh), names[k]])
    return boxes

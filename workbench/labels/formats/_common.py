"""What the label formats share: file helpers, the checked batch and the listing files of the
folder exports (YOLO, ImageFolder), matching file names to samples, and the one import skeleton
of the formats whose entries name image files (COCO, YOLO)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import LabelError, WorkbenchError
from workbench.fsutil import PLACE_MODES, atomic_write, inside
from workbench.labels._checks import _need, _short
from workbench.labels.batch import ExportBatch, ImportRow

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels.store import LabelStore

#: How exports place image files.
EXPORT_MODES = PLACE_MODES


@contextlib.contextmanager
def label_errors() -> Iterator[None]:
    """Report the file helpers' errors (a missing image, a target in the way) as LabelError."""
    try:
        yield
    except LabelError:
        raise
    except WorkbenchError as e:
        raise LabelError(str(e)) from None


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, df.to_csv(index=False, lineterminator="\n").encode("utf-8"), fsync=False)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise LabelError(f"{str(path)!r} does not exist") from None
    except (OSError, ValueError, RecursionError) as e:
        raise LabelError(f"{str(path)!r} is not valid JSON: {_short(str(e), 120)}") from None


def folder_export(
    store: LabelStore,
    catalog: Catalog | None,
    mode: str | None,
    *,
    task: str,
    annotator: str | None,
    round: int | None,
    boxes: bool,
    files_optional: bool = False,
) -> ExportBatch:
    """The batch a folder export writes, checked before anything is written.

    ``mode`` must be one of :data:`EXPORT_MODES` (or ``None`` when ``files_optional``); every
    value must be boxes (``boxes=True``) or class names, else :class:`LabelError` naming the
    export that fits.
    """
    cat = store.need_catalog(catalog)
    modes = f"{EXPORT_MODES} or None" if files_optional else str(EXPORT_MODES)
    _need(
        mode in EXPORT_MODES or (files_optional and mode is None),
        f"mode must be one of {modes}, got {mode!r}",
    )
    batch = store.export_batch(cat, task=task, annotator=annotator, round=round)
    for row in batch.rows:
        v = row.value
        if boxes:
            _need(
                isinstance(v, list) and not (v and isinstance(v[0], str)),
                f"task {task!r} holds class labels, not boxes; use to_imagefolder()",
            )
        else:
            _need(
                all(isinstance(n, str) for n in ([v] if isinstance(v, str) else v)),
                f"task {task!r} holds boxes; export it with to_coco() or to_yolo()",
            )
    return batch


def write_listing(folder: Path, meta: dict[str, Any], table: pd.DataFrame) -> None:
    """A folder export's ``classes.json`` (``meta``) and ``samples.csv`` (``table``)."""
    atomic_write(inside(folder, "classes.json"), _json_bytes(meta), fsync=False)
    _write_csv(inside(folder, "samples.csv"), table)


def _file_matcher(cat: Catalog) -> Callable[..., str]:
    """file name (or label-file stem) -> catalog id: the exact id first, then a unique name."""
    ids = [str(i) for i in cat.df["id"]]
    exact = set(ids)
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for i in ids:
        p = PurePosixPath(i)
        by_name.setdefault(p.name, []).append(i)
        by_stem.setdefault(i[: len(i) - len(p.suffix)], []).append(i)
        by_stem.setdefault("\0" + p.stem, []).append(i)

    def resolve(name: str, where: str, *, stem_only: bool = False) -> str:
        if stem_only:
            found = by_stem.get(name) or by_stem.get("\0" + PurePosixPath(name).name) or []
        elif name in exact or posixpath.normpath(name) in exact:
            return name if name in exact else posixpath.normpath(name)
        else:
            found = by_name.get(PurePosixPath(name).name, [])
        _need(found, f"{where}: {_short(name)} matches no catalog sample")
        _need(len(found) == 1, f"{where}: {_short(name)} matches several samples {found[:3]}")
        return found[0]

    return resolve


@dataclass
class Parsed:
    """What a file-matching format read: its classes, its rows, and the task it implies.

    Attributes
    ----------
    classes
        Every class the file declares, in file order (added even if no row uses it).
    rows
        The labels; may be a generator, so each row is read and checked in turn. Their
        ``annotator``, ``round`` and ``task`` are set by :func:`_import_matched`.
    task
        The task when the caller names none (the one the file records, else one by its content).
    """

    classes: list[str]
    rows: Iterable[ImportRow]
    task: str


def _import_matched(
    store: LabelStore,
    catalog: Catalog | None,
    parse: Callable[[Callable[..., str]], Parsed],
    *,
    annotator: str,
    round: int,
    task: str | None,
    add_classes: bool,
    origin: str,
) -> int:
    """Import a file whose entries name image files (COCO, YOLO), all or nothing.

    ``parse(resolve)`` reads and checks the file, matching names to catalog ids with ``resolve``
    (the exact id first, then a unique file name or stem); every row then goes through
    :meth:`~workbench.labels.LabelStore.import_batch` in one transaction.
    """
    cat = store.need_catalog(catalog)
    parsed = parse(_file_matcher(cat))
    task = task if task is not None else parsed.task
    rows = (
        dataclasses.replace(r, annotator=annotator, round=round, task=task) for r in parsed.rows
    )
    return store.import_batch(
        rows, cat, classes=parsed.classes, add_classes=add_classes, origin=origin
    )

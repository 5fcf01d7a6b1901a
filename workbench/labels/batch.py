"""The rows that cross between the store and the file formats, one batch at a time.

An import builds :class:`ImportRow` objects and hands them all to
:meth:`~workbench.labels.LabelStore.import_batch`, which checks every row and appends them in
one transaction (all or nothing). An export asks :meth:`~workbench.labels.LabelStore.export_batch`
for one :class:`ExportBatch`: the labels, the image files and the class list read from one
snapshot of the store.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import LabelError
from workbench.labels._catalog import CatalogIndex, Info
from workbench.labels._checks import _round, _seconds, _text
from workbench.labels._sqlite import event_params
from workbench.labels.schema import _Schema

if TYPE_CHECKING:
    from workbench.catalog import Catalog


@dataclass
class ImportRow:
    """One label to import, as a file gives it; the store checks every field.

    Attributes
    ----------
    sample_id
        The catalog id it belongs to.
    value
        The API value (class names); ignored when ``read`` is given.
    annotator, round, task
        Whose label, in which round, for which task.
    where
        Where the row comes from (``"labels.csv row 7"``): every error about it starts with this.
    hash
        The content hash to record; None takes the catalog's.
    seconds
        Time spent on the item, if the file recorded it.
    read
        For values that need the sample's ``(width, height)`` (normalised boxes): called with it
        to give the value.
    """

    sample_id: Any
    value: Any = None
    annotator: Any = "import"
    round: Any = 0
    task: Any = "class"
    where: str = ""
    hash: str | None = None
    seconds: float | None = None
    read: Callable[[tuple[int, int] | None], Any] | None = None


@dataclass
class ExportRow:
    """One sample's label to export, with its image file and size from the catalog."""

    sample_id: str
    value: Any
    path: str
    width: int
    height: int


@dataclass
class ExportBatch:
    """What an export writes: rows in event order, the samples left out, and the classes.

    Attributes
    ----------
    rows
        One :class:`ExportRow` per sample (the latest current label among those chosen).
    skipped
        ``{"id": ..., "reason": ...}`` for each labeled sample not in the catalog or unreadable.
    classes
        ``name -> code`` of the active classes, in code order.
    """

    rows: list[ExportRow] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)


def checked_row(
    row: ImportRow, index: CatalogIndex, catalog: Catalog | None
) -> tuple[ImportRow, tuple[int, int] | None]:
    """``row`` with every field checked and its value read, and the sample's image size.

    Raises
    ------
    LabelError
        Starting with ``row.where``: an unknown sample, a bad annotator, round, task or seconds.
    """
    try:
        sid, h, size = index.sample(row.sample_id, catalog)
        fields = {
            "sample_id": sid,
            "annotator": _text("annotator", row.annotator),
            "round": _round(row.round),
            "task": _text("task", row.task),
            "seconds": _seconds(row.seconds),
            "hash": row.hash or h,
        }
    except LabelError as e:
        raise LabelError(f"{row.where}: {e}") from None
    value = row.value if row.read is None else row.read(size)
    return dataclasses.replace(row, value=value, read=None, **fields), size


def import_events(
    checked: list[tuple[ImportRow, tuple[int, int] | None]], schema: _Schema, origin: str
) -> list[tuple]:
    """The ``import`` events of checked rows, values encoded (and boxes checked) by ``schema``.

    All share one timestamp and ``extra`` ``{"from": origin}``; a bad value raises
    :class:`LabelError` starting with its row's ``where``.
    """
    now, params = time.time(), []
    for r, size in checked:
        try:
            stored = schema.store(r.value, size)
        except LabelError as e:
            raise LabelError(f"{r.where}: {e}") from None
        fields = {"sid": r.sample_id, "hash": r.hash, "who": r.annotator, "rnd": r.round}
        params.append(
            event_params(
                "import",
                value=stored,
                source="import",
                ts=now,
                extra={"from": origin},
                task=r.task,
                seconds=r.seconds,
                **fields,
            )
        )
    return params


def collect_export(rows: list[tuple], schema: _Schema, maps: dict[str, Info]) -> ExportBatch:
    """An :class:`ExportBatch` from raw current rows (see ``_sqlite.current_rows``).

    The rows come in event order, so a sample's last row wins; samples not in ``maps`` (the
    catalog index) or unreadable go to ``skipped``.
    """
    latest: dict[str, str] = {}
    for r in rows:
        latest[r[0]] = r[4]
    batch = ExportBatch(classes={n: c for c, n in schema.names.items()})
    for sid, raw in latest.items():
        info = maps.get(sid)
        reason = None if info is None or info[3] == "ok" else f"unreadable ({info[3]})"
        if info is None or reason:
            batch.skipped.append({"id": sid, "reason": reason or "not in catalog"})
        else:
            value = schema.load(json.loads(raw))
            batch.rows.append(ExportRow(sid, value, info[4], info[1], info[2]))
    return batch

"""The rows that cross between the store and the file formats, one batch at a time.

An import builds :class:`ImportRow` objects and hands them all to
:meth:`~workbench.labels.LabelStore.import_batch`, which checks every row and appends them in
one transaction (all or nothing). An export asks :meth:`~workbench.labels.LabelStore.export_batch`
for one :class:`ExportBatch`: the labels, the image files and the class list read from one
snapshot of the store. Those two methods are :func:`import_batch` and :func:`export_batch` here:
the one batch read and the one batch write of labels.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import LabelError
from workbench.labels import _sqlite as sql
from workbench.labels._catalog import CatalogIndex, Info
from workbench.labels._checks import _extra, _round, _seconds, _short, _text
from workbench.labels._sqlite import CONSENSUS_PREFIX, GOLD_PREFIX, SOURCES, event_params
from workbench.labels.schema import _class_names, _Schema

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels._db import Conn
    from workbench.labels.store import LabelStore


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
    source
        ``"import"`` (an ``import`` event) or another of :data:`SOURCES` (a ``label`` event):
        ``"consensus"`` for a consensus written back, by an annotator ``consensus:<method>``.
    extra
        A JSON dict stored with the event (an import also records ``{"from": origin}``).
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
    source: str = "import"
    extra: Any = None


@dataclass
class AssignRow:
    """One sample given to one annotator (see :meth:`LabelStore.assign_batch`).

    Attributes
    ----------
    sample_id, annotator
        Which sample, to whom.
    gold
        Whether the sample is a gold item (its known answer is recorded separately).
    overlap
        How many annotators the sample is given to in this assignment.
    """

    sample_id: Any
    annotator: Any
    gold: bool = False
    overlap: int = 1


def check_source(annotator: str, source: Any) -> str:
    """``source`` if it is one of :data:`SOURCES` and fits the annotator's name.

    Source ``"consensus"`` needs an annotator ``consensus:<method>`` (that prefix is how
    consensus labels are found again); ``gold:...`` names are reserved for gold answers and
    never label.
    """
    if source not in SOURCES:
        raise LabelError(f"source must be one of {SOURCES}, got {_short(source)}")
    if annotator.startswith(GOLD_PREFIX):
        raise LabelError(
            f"annotator names starting with {GOLD_PREFIX!r} are reserved for gold answers "
            "(LabelStore.assign_batch(gold=...)); pick another name"
        )
    if source == "consensus" and not annotator.startswith(CONSENSUS_PREFIX):
        raise LabelError(
            f"a consensus label (source 'consensus') is by an annotator named "
            f"'{CONSENSUS_PREFIX}<method>', not {annotator!r}"
        )
    return source


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
            "extra": _extra(row.extra),
        }
        fields["source"] = check_source(fields["annotator"], row.source)
    except LabelError as e:
        raise LabelError(f"{row.where}: {e}") from None
    value = row.value if row.read is None else row.read(size)
    return dataclasses.replace(row, value=value, read=None, **fields), size


def import_events(
    checked: list[tuple[ImportRow, tuple[int, int] | None]], schema: _Schema, origin: str
) -> list[tuple]:
    """The events of checked rows, values encoded (and boxes checked) by ``schema``.

    Rows with source ``"import"`` become ``import`` events with ``extra`` ``{"from": origin}``
    (plus the row's own), others ``label`` events with the row's ``extra``. All share one
    timestamp; a bad value raises :class:`LabelError` starting with its row's ``where``.
    """
    now, params = time.time(), []
    for r, size in checked:
        try:
            stored = schema.store(r.value, size)
        except LabelError as e:
            raise LabelError(f"{r.where}: {e}") from None
        fields = {"sid": r.sample_id, "hash": r.hash, "who": r.annotator, "rnd": r.round}
        imported = r.source == "import"
        extra = {"from": origin, **(r.extra or {})} if imported else r.extra
        params.append(
            event_params(
                "import" if imported else "label",
                value=stored,
                source=r.source,
                ts=now,
                extra=extra,
                task=r.task,
                seconds=r.seconds,
                **fields,
            )
        )
    return params


def assign_events(
    rows: list[AssignRow], index: CatalogIndex, catalog: Catalog | None, rnd: int, task: str
) -> list[tuple]:
    """``assign`` events of checked rows; LabelError naming the row for a bad one."""
    now, params, seen = time.time(), [], set()
    for k, r in enumerate(rows):
        try:
            sid, h, _ = index.sample(r.sample_id, catalog)
            who = _text("annotator", r.annotator)
            if who.startswith((GOLD_PREFIX, CONSENSUS_PREFIX)):
                raise LabelError(f"{who!r} names gold answers or a consensus, not an annotator")
            if not isinstance(r.gold, bool):
                raise LabelError(f"gold must be True or False, got {_short(r.gold)}")
            overlap = _round(r.overlap)
            if overlap < 1:
                raise LabelError(f"overlap counts annotators (>= 1), got {overlap}")
        except LabelError as e:
            raise LabelError(f"assignment row {k}: {e}") from None
        if (sid, who) in seen:
            raise LabelError(f"assignment row {k}: {sid!r} is given to {who!r} twice")
        seen.add((sid, who))
        extra = {"gold": r.gold, "overlap": overlap}
        params.append(
            event_params(
                "assign", sid=sid, hash=h, who=who, rnd=rnd, task=task, ts=now, extra=extra
            )
        )
    return params


def gold_events(
    answers: list[tuple[Any, Any]],
    index: CatalogIndex,
    catalog: Catalog | None,
    schema: _Schema,
    who: str,
    rnd: int,
    task: str,
) -> list[tuple]:
    """``gold`` events (source ``"import"``) of ``(sample id, known answer)`` pairs."""
    now, params = time.time(), []
    for sid, value in answers:
        try:
            sid, h, size = index.sample(sid, catalog)
            stored = schema.store(value, size)
        except LabelError as e:
            raise LabelError(f"gold answer of {_short(sid)}: {e}") from None
        fields = {"sid": sid, "hash": h, "who": who, "rnd": rnd, "task": task}
        params.append(event_params("gold", value=stored, source="import", ts=now, **fields))
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


def export_batch(
    store: LabelStore,
    catalog: Catalog | None = None,
    *,
    task: str = "class",
    annotator: str | None = None,
    round: int | None = None,
) -> ExportBatch:
    """One task's labels ready to export, with their image files, from one snapshot.

    One value per sample: the latest current label among the chosen annotators and rounds.
    To export a consensus instead of "latest wins", compute it (:mod:`workbench.quality`)
    and label it as its own round or annotator, then export that one. Samples not in the
    catalog or unreadable are left out and listed in ``skipped``.
    """
    cat = store.need_catalog(catalog)
    rows, s = store._current(annotator, round, _text("task", task))
    return collect_export(rows, s, store._index.maps(cat))


def import_batch(
    store: LabelStore,
    rows: Iterable[ImportRow],
    catalog: Catalog | None = None,
    *,
    classes: Sequence[str] | None = None,
    add_classes: bool = True,
    origin: str = "import",
) -> int:
    """Check import rows and append them, with any new classes, in ONE transaction.

    Every row is checked as the rows come (sample id in the catalog, annotator, round, task,
    seconds, then its value against the class schema and the image size); any defect raises
    :class:`LabelError` starting with the row's ``where``, and nothing is written. Rows with
    source ``"import"`` (the default) become ``import`` events with ``extra``
    ``{"from": origin}``; rows with another source (``"consensus"`` for a consensus written
    back by :func:`workbench.quality.write_consensus`) become ``label`` events with the
    row's own ``extra``. This is the store's one batch write of labels.

    Parameters
    ----------
    classes
        Class names to add first, in this order (default: those the values name, in order
        of appearance). Names the store lacks are added unless ``add_classes=False``.

    Returns
    -------
    int
        The number of events imported.
    """
    cat = catalog if catalog is not None else store.catalog
    checked = [checked_row(r, store._index, cat) for r in rows]
    if classes is None:
        classes = [n for r, _ in checked for n in _class_names(r.value)]

    def tx(con: Conn) -> int:
        s = store._schema(con)
        missing = [c for c in dict.fromkeys(classes) if c not in s.codes]
        if missing and not add_classes:
            shown = ", ".join(_short(m, 40) for m in missing[:10])
            raise LabelError(
                f"{origin} uses classes the store does not have: [{shown}]; add them first "
                "or pass add_classes=True"
            )
        s = store._add_missing(con, classes)
        return sql.insert_many(con, import_events(checked, s, origin))

    return store._db.write(tx)

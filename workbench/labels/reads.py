"""The read side of the LabelStore: current labels, history, suggestions, progress, stale
labels. Each function is a :class:`~workbench.labels.store.LabelStore` method (bound there);
all of them read one snapshot of the events through ``store._read``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.labels import _sqlite as sql
from workbench.labels.schema import _load_extra, _Schema

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels._db import Conn
    from workbench.labels.store import LabelStore

#: Columns of :meth:`LabelStore.current`.
CURRENT_COLUMNS = [
    "id", "annotator", "round", "task", "value", "source", "ts", "hash", "seconds", "event",
    "extra",
]  # fmt: skip
#: Columns of :meth:`LabelStore.history`.
HISTORY_COLUMNS = [
    "event", "kind", "id", "annotator", "round", "task", "value", "source", "ts", "seconds",
    "hash", "target", "extra",
]  # fmt: skip


def current(
    self: LabelStore,
    annotator: str | None = None,
    round: int | None = None,
    task: str | None = "class",
) -> pd.DataFrame:
    """Current labels: one row per (sample, annotator, round, task), in event order.

    Columns ``id, annotator, round, task, value, source, ts, hash, seconds, event, extra``;
    ``ts`` is a UTC timestamp, ``event`` the label's event id and ``extra`` the dict stored
    with it (or None). ``None`` for a filter means all.
    """
    rows, s = self._current(annotator, round, task)
    data = [(*r[:4], s.load(json.loads(r[4])), *r[5:10], _json(r[11])) for r in rows]
    return _frame(data, CURRENT_COLUMNS)


def _current(
    self: LabelStore,
    annotator: str | None,
    round: int | None,
    task: str | None,
    *,
    skips: bool = False,
) -> tuple[list[tuple], _Schema]:
    """Raw current rows (see :func:`sql.current_rows`) and the class schema, one snapshot."""

    def q(con: Conn) -> tuple[list[tuple], _Schema]:
        return sql.current_rows(con, annotator, round, task, skips=skips), self._schema(con)

    return self._read(q)


def history(
    self: LabelStore,
    sample_id: str | None = None,
    annotator: str | None = None,
    *,
    kind: str | None = None,
    task: str | None = None,
) -> pd.DataFrame:
    """Every event (filtered), oldest first; values in class names under today's schema.

    Columns ``event, kind, id, annotator, round, task, value, source, ts, seconds, hash,
    target, extra``.
    """
    filters = [
        ("sample_id", sample_id),
        ("annotator", annotator),
        ("kind", kind),
        ("task", task),
    ]
    rows, s = self._read(lambda con: (sql.history_rows(con, filters), self._schema(con)))
    data = []
    for r in rows:
        value = None if r[6] is None else json.loads(r[6])
        if r[1] not in sql.SCHEMA_KINDS:
            value = s.load(value)
        extra = _load_extra(r[12], s) if r[1] == "model" else _json(r[12])
        data.append((*r[:6], value, *r[7:12], extra))
    return _frame(data, HISTORY_COLUMNS)


def suggestions(
    self: LabelStore, model: str | None = None, *, task: str | None = "class"
) -> pd.DataFrame:
    """The latest suggestion per (sample, model, round, task).

    Columns ``id, model, round, task, value, probs, ts, event``.
    """
    rows, s = self._read(lambda con: (sql.suggestion_rows(con, model, task), self._schema(con)))
    data = []
    for r in rows:
        probs = (_load_extra(r[5], s) or {}).get("probs")
        data.append((*r[:4], s.load(json.loads(r[4])), probs, r[6], r[7]))
    return _frame(data, ["id", "model", "round", "task", "value", "probs", "ts", "event"])


def labeled_ids(
    self: LabelStore,
    annotator: str | None = None,
    *,
    round: int | None = None,
    task: str | None = "class",
    include_skipped: bool = False,
) -> set[str]:
    """Ids of samples with a current label (by ``annotator``, or by anyone)."""
    rows, _ = self._current(annotator, round, task, skips=True)
    return {r[0] for r in rows if include_skipped or r[10] != "skip"}


def progress(
    self: LabelStore, annotator: str, *, round: int | None = None, task: str | None = "class"
) -> dict[str, Any]:
    """How far ``annotator`` is.

    Returns
    -------
    dict
        ``labeled``, ``skipped`` and ``done`` (distinct samples); ``total`` and
        ``remaining`` (``None`` without a catalog); ``seconds`` (time recorded on the current
        decisions) and ``per_minute`` (items per minute of recorded time, or ``None``).
    """
    rows, _ = self._current(annotator, round, task, skips=True)
    labeled = {r[0] for r in rows if r[10] != "skip"}
    skipped = {r[0] for r in rows if r[10] == "skip"} - labeled
    timed = [r[8] for r in rows if r[8] is not None]
    secs = float(sum(timed))
    total = None if self.catalog is None else len(self.catalog.df)
    done = len(labeled) + len(skipped)
    return {
        "labeled": len(labeled),
        "skipped": len(skipped),
        "done": done,
        "total": total,
        "remaining": None if total is None else max(total - done, 0),
        "seconds": secs,
        "per_minute": 60.0 * len(timed) / secs if secs > 0 else None,
    }


def last_position(
    self: LabelStore, annotator: str, *, round: int | None = None, task: str | None = "class"
) -> str | None:
    """The sample ``annotator`` acted on last (label, skip or undo): resume there."""
    return self._read(lambda con: sql.last_sample(con, annotator, round, task))


def stale(
    self: LabelStore, catalog: Catalog | None = None, *, task: str | None = None
) -> pd.DataFrame:
    """Current labels whose recorded content hash is not the catalog's hash now.

    Returns the :meth:`current` columns plus ``catalog_hash`` and ``reason``: ``"changed"``
    (the pixels changed since labeling), ``"missing"`` (no longer in the catalog) or
    ``"unhashed"`` (labeled without a catalog, so it cannot be checked).
    """
    maps = self._index.maps(self.need_catalog(catalog), fresh=True)
    cur = self.current(task=task)
    now = [maps[i][0] if i in maps else None for i in cur["id"]]
    reasons = []
    for i, h, n in zip(cur["id"], cur["hash"], now, strict=True):
        missing = i not in maps
        unhashed = not missing and not isinstance(h, str)
        changed = not missing and not unhashed and h != n
        reasons.append(
            "missing" if missing else "unhashed" if unhashed else "changed" if changed else None
        )
    cur["catalog_hash"] = pd.Series(now, index=cur.index, dtype=object)
    cur["reason"] = pd.Series(reasons, index=cur.index, dtype=object)
    return cur[cur["reason"].notna()].reset_index(drop=True)


def _json(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows, columns=columns)
    for c in ("value", "probs", "extra", "hash", "target"):
        if c in df.columns:  # lists, dicts, None: plain objects, never expanded or coerced
            df[c] = pd.Series([r[columns.index(c)] for r in rows], index=df.index, dtype=object)
    if "ts" in df.columns:
        df["ts"] = pd.to_datetime(df["ts"].astype("float64"), unit="s", utc=True)
    if "seconds" in df.columns:
        df["seconds"] = df["seconds"].astype("float64")
    return df

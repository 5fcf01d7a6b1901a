"""Assignments: who labels which items in a round, and the gold answers among them.

:meth:`LabelStore.assign_batch` and :meth:`LabelStore.assignments` are these functions. Gold
answers are written as ``gold`` events, which are never current labels, so no labeling session
reads them; :func:`workbench.labels.values.assigned_ids` gives a session its ids only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import LabelError
from workbench.labels import _sqlite as sql
from workbench.labels._checks import _need, _round, _text
from workbench.labels._sqlite import GOLD_PREFIX
from workbench.labels.batch import AssignRow, assign_events, gold_events
from workbench.labels.leases import has_pool

if TYPE_CHECKING:
    from workbench.labels._db import Conn
    from workbench.labels.store import LabelStore

__all__ = ["ASSIGN_COLUMNS", "assign_batch", "assignments"]

#: Columns of :meth:`LabelStore.assignments`.
ASSIGN_COLUMNS = ["id", "annotator", "round", "task", "gold", "overlap", "event"]


def assign_batch(
    store: LabelStore,
    rows: Iterable[AssignRow],
    *,
    round: int = 0,
    task: str = "class",
    gold: Mapping[str, Any] | None = None,
    gold_by: str = f"{GOLD_PREFIX}reference",
) -> int:
    """Record who labels what in ``round`` of ``task``, with any gold answers: one transaction.

    Each row becomes an ``assign`` event (``extra`` ``{"gold": ..., "overlap": ...}``);
    each ``gold`` entry (sample id → known answer) a ``gold`` event by ``gold_by``. Gold
    events are never current labels, so no labeling session can read them. A round has one
    assignment: :class:`LabelError` if this round and task have one already (use a new
    round). Any bad row, sample or answer raises :class:`LabelError` and nothing is written.

    Returns
    -------
    int
        The number of ``assign`` events written.
    """
    rnd, task = _round(round), _text("task", task)
    who = _text("gold_by", gold_by)
    _need(who.startswith(GOLD_PREFIX), f"gold_by must start with {GOLD_PREFIX!r}: {who!r}")
    _need(gold is None or isinstance(gold, Mapping), "gold maps sample ids to known answers")
    rows = list(rows)
    _need(rows and all(isinstance(r, AssignRow) for r in rows), "give AssignRow rows")
    params = assign_events(rows, store._index, store.catalog, rnd, task)
    answers = list((gold or {}).items())

    def tx(con: Conn) -> int:
        con.lock()  # one assignment per round: check and write as one writer
        for what, there in (("an assignment", sql.has_assignment), ("a pool", has_pool)):
            if there(con, rnd, task):
                raise LabelError(
                    f"round {rnd} of task {task!r} has {what} already; assign a new round"
                )
        s = store._schema(con)
        sql.insert_many(con, gold_events(answers, store._index, store.catalog, s, who, rnd, task))
        return sql.insert_many(con, params)

    return store._db.write(tx)


def assignments(
    store: LabelStore,
    *,
    round: int | None = None,
    task: str | None = "class",
    annotator: str | None = None,
) -> pd.DataFrame:
    """The ``assign`` events (filtered; ``None`` means all), in event order.

    Columns ``id, annotator, round, task, gold, overlap, event``. This names the gold items:
    it is for whoever runs the assignment or reviews, not for an annotator's view.
    """
    rows = store._read(lambda con: sql.assignment_rows(con, annotator, round, task))
    data = []
    for sid, who, rnd, t, raw, event in rows:
        extra = (None if raw is None else json.loads(raw)) or {}
        data.append((sid, who, rnd, t, bool(extra.get("gold")), extra.get("overlap"), event))
    return pd.DataFrame.from_records(data, columns=ASSIGN_COLUMNS)

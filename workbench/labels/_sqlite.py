"""The label store's SQL: the events table and every query on it, written once for both backends.

Every SQL statement of the label store's events is in this module (with ``?`` placeholders; a
:class:`~workbench.labels._db.Conn` runs them on SQLite or PostgreSQL), so the store itself
speaks only in events, values and data frames. The tables are created by the numbered
migrations of :mod:`workbench.labels._migrations`; connections and retried transactions are in
:mod:`workbench.labels._db`.

Tables
------
``events(id, kind, sample_id, hash, annotator, round, task, value, source, ts, seconds,
target, extra)``; ``value`` and ``extra`` are JSON; ``ts`` is Unix time (UTC);
``target`` is the event an ``undo`` cancels or a ``review`` judges. Stored values are
``{"class": code}``, ``{"classes": [code, ...]}``, ``{"boxes": [[x, y, w, h, code], ...]}`` or
``[]`` (an empty set of classes or boxes). The database refuses ``UPDATE`` and ``DELETE`` of
events (triggers on both backends).

An ``assign`` event gives one sample to one annotator for a round and task (``extra``
``{"gold": bool, "overlap": k}``); a ``gold`` event records a sample's known answer (annotator
``gold:<name>``, source ``"import"``). Neither is a decision, so neither is ever *current*: a
labeling session, which reads only current labels, cannot see a gold answer. Assignments are
events rather than a table of their own so that they share the log's order, durability,
retries and append-only triggers.

Ids come from SQLite's rowid or a PostgreSQL identity column: they only grow within one
writer; on PostgreSQL, concurrent writers' ids interleave in commit order only roughly, which
is fine for everything here (the latest event of one key comes from one annotator's session).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from workbench.labels.schema import _dumps

if TYPE_CHECKING:
    from workbench.labels._db import Conn

#: Every kind of event the store records.
EVENT_KINDS = (
    "label", "skip", "undo", "import", "model", "review",
    "class_add", "class_rename", "class_merge", "assign", "gold",
)  # fmt: skip
SCHEMA_KINDS = ("class_add", "class_rename", "class_merge")
DECISION_KINDS = ("label", "import", "skip")  # what "current" and "undo" look at
#: Where a label came from.
SOURCES = ("human", "model", "import", "consensus")
#: Annotator names with this prefix hold a consensus (source ``"consensus"``), not a person.
CONSENSUS_PREFIX = "consensus:"
#: Annotator names with this prefix hold gold answers (kind ``"gold"``), never labels.
GOLD_PREFIX = "gold:"


def _sql_list(items: Iterable[str]) -> str:
    return ", ".join(f"'{k}'" for k in items)


_SQL_SCHEMA = _sql_list(SCHEMA_KINDS)
_SQL_DECISION = _sql_list(DECISION_KINDS)
_SQL_NOT_UNDONE = "id NOT IN (SELECT target FROM events WHERE kind = 'undo' AND target IS NOT NULL)"
_INSERT = (
    "INSERT INTO events (kind, sample_id, hash, annotator, round, task, value, source, ts, "
    "seconds, target, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RETURNING = " RETURNING id"  # SQLite >= 3.35 and PostgreSQL


# ---------------------------------------------------------------------------------- writing rows
def event_params(
    kind: str,
    *,
    sid: str | None = None,
    hash: str | None = None,
    who: str = "",
    rnd: int = 0,
    task: str = "",
    value: Any = None,
    source: str = "human",
    seconds: float | None = None,
    target: int | None = None,
    extra: Any = None,
    ts: float | None = None,
) -> tuple:
    """One row for :data:`_INSERT`; ``value`` and ``extra`` are stored as JSON."""
    now = time.time() if ts is None else ts
    return (
        kind,
        sid,
        hash,
        who,
        rnd,
        task,
        _dumps(value),
        source,
        now,
        seconds,
        target,
        _dumps(extra),
    )


def insert(con: Conn, kind: str, **fields: Any) -> int:
    """Append one event; returns its id."""
    return int(con.execute(_INSERT + _RETURNING, event_params(kind, **fields)).fetchone()[0])


def insert_many(con: Conn, rows: Sequence[tuple]) -> int:
    """Append rows made by :func:`event_params`; returns how many."""
    con.executemany(_INSERT, rows)
    return len(rows)


# ---------------------------------------------------------------------------------- queries
def _where(filters: Iterable[tuple[str, Any]], where: list[str] | None = None) -> tuple[str, list]:
    """``" AND "``-joined conditions: the fixed ``where`` ones, then ``col = ?`` per set filter."""
    conds, args = list(where or []), []
    for col, v in filters:
        if v is not None:
            conds.append(f"{col} = ?")
            args.append(v)
    return " AND ".join(conds), args


def schema_key(con: Conn) -> tuple:
    """``(count, max id)`` of the schema events: events only grow, so it names one class list."""
    return con.execute(
        f"SELECT count(*), max(id) FROM events WHERE kind IN ({_SQL_SCHEMA})"
    ).fetchone()


def schema_events(con: Conn) -> list[tuple[str, str]]:
    """``(kind, value)`` of every schema event, in event order."""
    return con.execute(
        f"SELECT kind, value FROM events WHERE kind IN ({_SQL_SCHEMA}) ORDER BY id"
    ).fetchall()


def count_events(con: Conn, kind: str | None) -> int:
    """Number of events of one ``kind``, or of all kinds."""
    sql, args = "SELECT count(*) FROM events", ()
    if kind is not None:
        sql, args = sql + " WHERE kind = ?", (kind,)
    return int(con.execute(sql, args).fetchone()[0])


def event_sample(con: Conn, event: int) -> tuple[str | None] | None:
    """``(sample_id,)`` of event ``event``, or None if there is no such event."""
    return con.execute("SELECT sample_id FROM events WHERE id = ?", (event,)).fetchone()


def latest_decision(
    con: Conn, who: str, rnd: int, task: str, sid: str | None
) -> tuple[int, str, str | None] | None:
    """``(id, sample_id, hash)`` of the latest decision not undone (on ``sid``, or any)."""
    where, args = _where(
        [("annotator", who), ("round", rnd), ("task", task), ("sample_id", sid)],
        [f"kind IN ({_SQL_DECISION})", _SQL_NOT_UNDONE],
    )
    sql = f"SELECT id, sample_id, hash FROM events WHERE {where} ORDER BY id DESC LIMIT 1"
    return con.execute(sql, args).fetchone()


def current_rows(
    con: Conn,
    annotator: str | None,
    round: int | None,
    task: str | None,
    *,
    skips: bool = False,
) -> list[tuple]:
    """Latest undone-free decision per key: (sample, annotator, round, task, value, source,
    ts, hash, seconds, event, kind, extra), in event order; skips only if ``skips``."""
    where, args = _where(
        [("annotator", annotator), ("round", round), ("task", task)],
        [f"kind IN ({_SQL_DECISION})", _SQL_NOT_UNDONE],
    )
    sql = (
        "SELECT e.sample_id, e.annotator, e.round, e.task, e.value, e.source, e.ts, e.hash, "
        "e.seconds, e.id, e.kind, e.extra FROM events e JOIN (SELECT max(id) AS id FROM events "
        f"WHERE {where} GROUP BY sample_id, annotator, round, task) AS last "
        "ON e.id = last.id" + ("" if skips else " WHERE e.kind != 'skip'") + " ORDER BY e.id"
    )
    return con.execute(sql, args).fetchall()


def history_rows(con: Conn, filters: Iterable[tuple[str, Any]]) -> list[tuple]:
    """Every event matching ``(column, value)`` filters (None: any), oldest first."""
    where, args = _where(filters)
    sql = (
        "SELECT id, kind, sample_id, annotator, round, task, value, source, ts, seconds, "
        "hash, target, extra FROM events" + (f" WHERE {where}" if where else "") + " ORDER BY id"
    )
    return con.execute(sql, args).fetchall()


def suggestion_rows(con: Conn, model: str | None, task: str | None) -> list[tuple]:
    """The latest suggestion per (sample, model, round, task): (sample, model, round, task,
    value, extra, ts, event), in event order."""
    where, args = _where([("annotator", model), ("task", task)], ["kind = 'model'"])
    sql = (
        "SELECT sample_id, annotator, round, task, value, extra, ts, id FROM events "
        f"WHERE id IN (SELECT max(id) FROM events WHERE {where} "
        "GROUP BY sample_id, annotator, round, task) ORDER BY id"
    )
    return con.execute(sql, args).fetchall()


def last_sample(con: Conn, annotator: str, round: int | None, task: str | None) -> str | None:
    """The sample of ``annotator``'s latest label, import, skip or undo."""
    where, args = _where(
        [("round", round), ("task", task)],
        ["kind IN ('label', 'import', 'skip', 'undo')", "annotator = ?"],
    )
    row = con.execute(
        f"SELECT sample_id FROM events WHERE {where} ORDER BY id DESC LIMIT 1", [annotator, *args]
    ).fetchone()
    return None if row is None else row[0]


def has_assignment(con: Conn, round: int, task: str) -> bool:
    """Whether round ``round`` of ``task`` has any ``assign`` event."""
    row = con.execute(
        "SELECT 1 FROM events WHERE kind = 'assign' AND round = ? AND task = ? LIMIT 1",
        (round, task),
    ).fetchone()
    return row is not None


def assignment_rows(
    con: Conn, annotator: str | None, round: int | None, task: str | None
) -> list[tuple]:
    """``assign`` events: (sample, annotator, round, task, extra, event), in event order."""
    where, args = _where(
        [("annotator", annotator), ("round", round), ("task", task)], ["kind = 'assign'"]
    )
    sql = "SELECT sample_id, annotator, round, task, extra, id FROM events WHERE "
    sql += f"{where} ORDER BY id"
    return con.execute(sql, args).fetchall()

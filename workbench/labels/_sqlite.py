"""The SQLite side of the label store: the table, its SQL, and durable, retried transactions.

Every SQL statement of the label store is in this module, so the store itself speaks only in
events, values and data frames (and another backend would replace this module alone).

Guarantees
----------
- **Append-only.** One ``events`` table; triggers refuse ``UPDATE`` and ``DELETE``.
- **Durable on return.** :meth:`Database.write` runs one ``BEGIN IMMEDIATE`` transaction,
  committed in WAL mode with ``synchronous=FULL`` (the WAL is fsynced at every commit) before it
  returns; a failure rolls it back whole.
- **Busy never reaches the user.** Each connection waits for the write lock (SQLite
  ``busy_timeout``) and every transaction is retried with jittered exponential back-off on
  ``SQLITE_BUSY`` / ``SQLITE_LOCKED`` for up to ``retry_for`` seconds; then :class:`LabelError`
  says so, and nothing was written. Every other SQLite error is a :class:`LabelError` too.
- **Fork-safe.** A connection is used only by the process that opened it; a child process opens
  its own.

Tables
------
``events(id INTEGER PRIMARY KEY, kind, sample_id, hash, annotator, round, task, value, source,
ts, seconds, target, extra)``; ``value`` and ``extra`` are JSON; ``ts`` is Unix time (UTC);
``target`` is the event an ``undo`` cancels or a ``review`` judges. Stored values are
``{"class": code}``, ``{"classes": [code, ...]}``, ``{"boxes": [[x, y, w, h, code], ...]}`` or
``[]`` (an empty set of classes or boxes). ``meta(key, value)`` holds the schema version.

An ``assign`` event gives one sample to one annotator for a round and task (``extra``
``{"gold": bool, "overlap": k}``); a ``gold`` event records a sample's known answer (annotator
``gold:<name>``, source ``"import"``). Neither is a decision, so neither is ever *current*: a
labeling session, which reads only current labels, cannot see a gold answer. Assignments are
events rather than a table of their own so that they share the log's order, durability,
retries and append-only triggers.

Schema versions
---------------
1. The first table. 2. Kinds ``assign`` and ``gold``, source ``consensus``. SQLite cannot change
a ``CHECK`` constraint in place, so opening a version-1 file rebuilds the table (copy, drop,
rename) in the same ``IMMEDIATE`` transaction that bumps the version: all or nothing, once.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import LabelError
from workbench.labels._checks import _short
from workbench.labels.schema import _dumps

T = TypeVar("T")

SCHEMA_VERSION = 2
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
_COLUMNS = (
    "id, kind, sample_id, hash, annotator, round, task, value, source, ts, seconds, target, extra"
)


def _events_table(name: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {name} (
        id        INTEGER PRIMARY KEY,
        kind      TEXT    NOT NULL CHECK (kind IN ({_sql_list(EVENT_KINDS)})),
        sample_id TEXT,
        hash      TEXT,
        annotator TEXT    NOT NULL,
        round     INTEGER NOT NULL DEFAULT 0 CHECK (round >= 0),
        task      TEXT    NOT NULL DEFAULT 'class',
        value     TEXT,
        source    TEXT    NOT NULL CHECK (source IN ({_sql_list(SOURCES)})),
        ts        REAL    NOT NULL,
        seconds   REAL    CHECK (seconds IS NULL OR seconds >= 0),
        target    INTEGER,
        extra     TEXT)"""


_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _events_table("events"),
    "CREATE INDEX IF NOT EXISTS events_key ON events (sample_id, annotator, round, task)",
    "CREATE INDEX IF NOT EXISTS events_annotator ON events (annotator, task)",
    "CREATE INDEX IF NOT EXISTS events_kind ON events (kind)",
    "CREATE INDEX IF NOT EXISTS events_target ON events (target) WHERE target IS NOT NULL",
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END",
]
_INSERT = (
    "INSERT INTO events (kind, sample_id, hash, annotator, round, task, value, source, ts, "
    "seconds, target, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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


def insert(con: sqlite3.Connection, kind: str, **fields: Any) -> int:
    """Append one event; returns its id."""
    return int(con.execute(_INSERT, event_params(kind, **fields)).lastrowid)


def insert_many(con: sqlite3.Connection, rows: Sequence[tuple]) -> int:
    """Append rows made by :func:`event_params`; returns how many."""
    con.executemany(_INSERT, rows)
    return len(rows)


def _create_schema(con: sqlite3.Connection) -> None:
    """Create the tables of a new file, or bring an older file up to :data:`SCHEMA_VERSION`."""
    con.execute(_DDL[0])
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = SCHEMA_VERSION if row is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise LabelError(f"this label store was written by a newer workbench (schema {version})")
    if version < 2:
        _rebuild_events(con)
    for stmt in _DDL[1:]:
        con.execute(stmt)
    con.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def _rebuild_events(con: sqlite3.Connection) -> None:
    """Copy every event into a table with today's ``CHECK`` constraints and swap it in.

    Ids are copied, so event ids (and ``target`` references) stay what they were. Dropping a
    table fires no ``DELETE`` trigger; the indexes and triggers are recreated by the caller.
    """
    con.execute("DROP TABLE IF EXISTS events_new")
    con.execute(_events_table("events_new"))
    con.execute(f"INSERT INTO events_new ({_COLUMNS}) SELECT {_COLUMNS} FROM events")
    con.execute("DROP TABLE events")
    con.execute("ALTER TABLE events_new RENAME TO events")


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


def database_path(target: Any) -> Path:
    """The database file of a Workspace (its ``file("labels")``), of a folder, or ``target``."""
    if not isinstance(target, (str, os.PathLike)):
        if hasattr(target, "file"):  # a Workspace: it owns the layout
            return Path(target.file("labels"))
        raise LabelError(f"give a Workspace, a folder or a .db file path, not {_short(target)}")
    p = Path(target).expanduser()
    if p.is_dir():
        from workbench.workspace import LAYOUT  # here: the workspace module imports the catalog

        return p / LAYOUT["labels"]
    return p


# ---------------------------------------------------------------------------------- transactions
class Database:
    """One label database file: this process's connection and its retried transactions.

    Parameters
    ----------
    path
        The SQLite file; created, with its folder and the schema, on first use.
    busy_timeout
        Seconds one attempt waits for another process's write lock.
    retry_for
        Seconds a transaction keeps being retried (jittered back-off, 2 ms doubling to 250 ms).
    forget
        Called whenever state derived from earlier reads may be wrong: on a new connection and
        when a transaction rolls back (it may have cached what it was about to write).
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        retry_for: float,
        forget: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.busy_timeout = float(busy_timeout)
        self.retry_for = float(retry_for)
        self.retries = 0
        self._forget = forget
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self._pid = -1

    def close(self) -> None:
        """Close this process's connection (it reopens on next use)."""
        with self._lock:
            if self._con is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._con.close()
            self._con = None

    def connection(self) -> sqlite3.Connection:
        """This process's connection, opened (WAL, ``synchronous=FULL``, schema) if needed."""
        if self._con is not None and self._pid == os.getpid():
            return self._con
        # A connection inherited through fork() must not be used (or closed) by the child.
        self._con, self._pid = None, os.getpid()
        self._forget()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as e:
            raise LabelError(f"cannot open label store {str(self.path)!r}: {e}") from None
        try:
            con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = self._retry(lambda: con.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise LabelError(
                    f"{str(self.path)!r} cannot use SQLite's WAL mode (got {mode!r}); keep the "
                    "workspace on a local disk, not a network share"
                )
            con.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit
            self._retry(lambda: self._transaction(con, _create_schema, "IMMEDIATE"))
        except BaseException:
            con.close()
            raise
        self._con = con
        return con

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction, committed before returning."""
        with self._lock:
            con = self.connection()
            return self._retry(lambda: self._transaction(con, fn, "IMMEDIATE"))

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on one consistent snapshot of the database."""
        with self._lock:
            con = self.connection()
            return self._retry(lambda: self._transaction(con, fn, "DEFERRED"))

    def _transaction(
        self, con: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], how: str
    ) -> T:
        con.execute(f"BEGIN {how}")
        try:
            out = fn(con)
            con.execute("COMMIT")
        except BaseException:
            self._forget()
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise
        return out

    def _retry(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.002
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    raise LabelError(f"label store {str(self.path)!r}: {e}") from e
                if time.monotonic() + delay > deadline:
                    raise LabelError(
                        f"label store {str(self.path)!r} stayed busy for {self.retry_for:.0f} s "
                        "(another process holds its write lock); nothing was written, try again"
                    ) from e
                self.retries += 1
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.25)
            except sqlite3.DatabaseError as e:
                raise LabelError(f"label store {str(self.path)!r}: {e}") from e


# ---------------------------------------------------------------------------------- queries
def _where(filters: Iterable[tuple[str, Any]], where: list[str] | None = None) -> tuple[str, list]:
    """``" AND "``-joined conditions: the fixed ``where`` ones, then ``col = ?`` per set filter."""
    conds, args = list(where or []), []
    for col, v in filters:
        if v is not None:
            conds.append(f"{col} = ?")
            args.append(v)
    return " AND ".join(conds), args


def schema_key(con: sqlite3.Connection) -> tuple:
    """``(count, max id)`` of the schema events: events only grow, so it names one class list."""
    return con.execute(
        f"SELECT count(*), max(id) FROM events WHERE kind IN ({_SQL_SCHEMA})"
    ).fetchone()


def schema_events(con: sqlite3.Connection) -> list[tuple[str, str]]:
    """``(kind, value)`` of every schema event, in event order."""
    return con.execute(
        f"SELECT kind, value FROM events WHERE kind IN ({_SQL_SCHEMA}) ORDER BY id"
    ).fetchall()


def count_events(con: sqlite3.Connection, kind: str | None) -> int:
    """Number of events of one ``kind``, or of all kinds."""
    sql, args = "SELECT count(*) FROM events", ()
    if kind is not None:
        sql, args = sql + " WHERE kind = ?", (kind,)
    return int(con.execute(sql, args).fetchone()[0])


def event_sample(con: sqlite3.Connection, event: int) -> tuple[str | None] | None:
    """``(sample_id,)`` of event ``event``, or None if there is no such event."""
    return con.execute("SELECT sample_id FROM events WHERE id = ?", (event,)).fetchone()


def latest_decision(
    con: sqlite3.Connection, who: str, rnd: int, task: str, sid: str | None
) -> tuple[int, str, str | None] | None:
    """``(id, sample_id, hash)`` of the latest decision not undone (on ``sid``, or any)."""
    where, args = _where(
        [("annotator", who), ("round", rnd), ("task", task), ("sample_id", sid)],
        [f"kind IN ({_SQL_DECISION})", _SQL_NOT_UNDONE],
    )
    sql = f"SELECT id, sample_id, hash FROM events WHERE {where} ORDER BY id DESC LIMIT 1"
    return con.execute(sql, args).fetchone()


def current_rows(
    con: sqlite3.Connection,
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


def history_rows(con: sqlite3.Connection, filters: Iterable[tuple[str, Any]]) -> list[tuple]:
    """Every event matching ``(column, value)`` filters (None: any), oldest first."""
    where, args = _where(filters)
    sql = (
        "SELECT id, kind, sample_id, annotator, round, task, value, source, ts, seconds, "
        "hash, target, extra FROM events" + (f" WHERE {where}" if where else "") + " ORDER BY id"
    )
    return con.execute(sql, args).fetchall()


def suggestion_rows(con: sqlite3.Connection, model: str | None, task: str | None) -> list[tuple]:
    """The latest suggestion per (sample, model, round, task): (sample, model, round, task,
    value, extra, ts, event), in event order."""
    where, args = _where([("annotator", model), ("task", task)], ["kind = 'model'"])
    sql = (
        "SELECT sample_id, annotator, round, task, value, extra, ts, id FROM events "
        f"WHERE id IN (SELECT max(id) FROM events WHERE {where} "
        "GROUP BY sample_id, annotator, round, task) ORDER BY id"
    )
    return con.execute(sql, args).fetchall()


def last_sample(
    con: sqlite3.Connection, annotator: str, round: int | None, task: str | None
) -> str | None:
    """The sample of ``annotator``'s latest label, import, skip or undo."""
    where, args = _where(
        [("round", round), ("task", task)],
        ["kind IN ('label', 'import', 'skip', 'undo')", "annotator = ?"],
    )
    row = con.execute(
        f"SELECT sample_id FROM events WHERE {where} ORDER BY id DESC LIMIT 1", [annotator, *args]
    ).fetchone()
    return None if row is None else row[0]


def has_assignment(con: sqlite3.Connection, round: int, task: str) -> bool:
    """Whether round ``round`` of ``task`` has any ``assign`` event."""
    row = con.execute(
        "SELECT 1 FROM events WHERE kind = 'assign' AND round = ? AND task = ? LIMIT 1",
        (round, task),
    ).fetchone()
    return row is not None


def assignment_rows(
    con: sqlite3.Connection, annotator: str | None, round: int | None, task: str | None
) -> list[tuple]:
    """``assign`` events: (sample, annotator, round, task, extra, event), in event order."""
    where, args = _where(
        [("annotator", annotator), ("round", round), ("task", task)], ["kind = 'assign'"]
    )
    sql = "SELECT sample_id, annotator, round, task, extra, id FROM events WHERE "
    sql += f"{where} ORDER BY id"
    return con.execute(sql, args).fetchall()

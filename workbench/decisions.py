"""Exclude / keep decisions: append-only events in the Workspace's ``decisions.db``.

The latest decision per sample wins; ``keep`` after ``exclude`` restores a sample. Every decision
carries the ``issue`` it was taken for (any text: a check name, ``"suggested"``, ``""``) and a
``note`` (free text; a review puts the group there), which is how a group's "keep all" knows which
exclusions are its own to undo: :meth:`Decisions.restore` reverts only exclusions recorded with
the same issue and note, and :meth:`Decisions.exclude_new` never re-labels an exclusion recorded
for another reason. Both read and write in one transaction.

Every :class:`Decisions` object on the same store in one process tells its listeners
(:meth:`Decisions.on_change`) about a decision recorded through any of them, so a view stays
current while code in a notebook cell records decisions. Reads are incremental (only rows newer
than the last one read), so asking for the current state after every click stays cheap.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from workbench._validation import check_choice
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

log = logging.getLogger("workbench.decisions")

_DDL = (
    "CREATE TABLE IF NOT EXISTS decisions (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, "
    "id TEXT NOT NULL, action TEXT NOT NULL CHECK (action IN ('exclude', 'keep')), "
    "issue TEXT NOT NULL, note TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS decisions_id ON decisions (id, seq)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions "
    "BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions "
    "BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END",
)
_INSERT = "INSERT INTO decisions (ts, id, action, issue, note) VALUES (?,?,?,?,?)"

Listener = Callable[[str, list[str]], None]
#: Listeners per store (resolved path, or one key per in-memory store); weak references to bound
#: methods, so a closed view does not stay alive through the store.
_LISTENERS: dict[str, list[Callable[[], Listener | None]]] = {}
_LISTENERS_LOCK = threading.Lock()
_MEMORY_KEYS = itertools.count()


class Decisions:
    """Exclude / keep decisions, appended as events to ``decisions.db`` in the Workspace.

    The latest decision per sample wins; ``keep`` after ``exclude`` restores a sample. Without
    a workspace the decisions live in memory only.

    Guarantees (the label store's): every write is one SQLite transaction in WAL mode with
    ``synchronous=FULL``, committed before it returns, so a decision you saw taken survives a
    killed process; a batch of ids is recorded whole or not at all; rows are never updated or
    deleted; several processes may record into one workspace at once. A workspace from before
    this store keeps its ``decisions.csv``: it is read in once, in the same transaction that marks
    it read, and left in place.
    """

    COLUMNS = ("ts", "id", "action", "issue", "note")

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.path = workspace.file("decisions") if workspace is not None else None
        self._key = (
            str(self.path.resolve()) if self.path is not None else f"memory:{next(_MEMORY_KEYS)}"
        )
        self._memory: list[tuple[float, str, str, str, str]] = []  # used without a workspace
        self._ready = False
        self._lock = threading.RLock()
        self._state: dict[str, tuple[str, str, str]] = {}  # id -> latest (action, issue, note)
        self._seq = 0  # the last row folded into _state

    # ------------------------------------------------------------------ storage
    @property
    def _legacy_csv(self) -> Path | None:
        """The earlier format's file: the same name, as CSV."""
        return None if self.path is None else self.path.with_suffix(".csv")

    @contextlib.contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        assert self.path is not None
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise WorkbenchError(f"cannot open {self.path} ({e})") from None
        try:
            if con.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise sqlite3.OperationalError("no WAL mode: keep the workspace on a local disk")
            con.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit
            con.execute("BEGIN IMMEDIATE" if write or not self._ready else "BEGIN")
            if not self._ready:
                for stmt in _DDL:
                    con.execute(stmt)
                self._migrate(con)
            yield con
            con.execute("COMMIT")
            self._ready = True
        except sqlite3.Error as e:
            raise WorkbenchError(
                f"{self.path} cannot be used ({e}); fix or remove it (your decisions are in it)"
            ) from None
        finally:
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            con.close()

    def _migrate(self, con: sqlite3.Connection) -> None:
        csv = self._legacy_csv
        if csv is None or not csv.exists():
            return
        if con.execute("SELECT 1 FROM meta WHERE key = 'migrated_csv'").fetchone():
            return
        try:
            old = pd.read_csv(csv, dtype=str, keep_default_na=False)
            rows = [
                (float(r.ts), r.id, r.action, r.issue, r.note)
                for r in old[list(self.COLUMNS)].itertuples(index=False)
            ]
        except Exception as e:
            raise WorkbenchError(f"{csv} cannot be read ({e}); fix or remove it") from None
        con.executemany(_INSERT, rows)
        con.execute("INSERT INTO meta VALUES ('migrated_csv', ?)", (str(len(rows)),))

    def _exists(self) -> bool:
        assert self.path is not None
        return self.path.exists() or bool(self._legacy_csv and self._legacy_csv.exists())

    def _fold(self, con: sqlite3.Connection) -> None:
        """Fold the rows recorded since the last read (by anyone) into the current state."""
        sql = "SELECT seq, id, action, issue, note FROM decisions WHERE seq > ? ORDER BY seq"
        for seq, i, action, issue, note in con.execute(sql, (self._seq,)):
            self._state[i] = (action, issue, note)
            self._seq = seq

    def _sync(self) -> None:
        if self.path is not None and self._exists():
            with self._connect(write=False) as con:
                self._fold(con)

    def _write(
        self, action: str, choose: Callable[[dict[str, tuple[str, str, str]]], list[str]],
        issue: str, note: str,
    ) -> list[str]:  # fmt: skip
        """Record ``action`` for the ids ``choose(state)`` picks, reading the state and writing
        in one transaction (a decision another process takes meanwhile is seen, not lost)."""
        ts = time.time()
        with self._lock:
            if self.path is None:
                ids = choose(self._state)
                rows = [(ts, i, action, issue, note) for i in ids]
                self._memory += rows
                for i in ids:
                    self._state[i] = (action, issue, note)
            else:
                with self._connect(write=True) as con:
                    self._fold(con)
                    ids = choose(self._state)
                    con.executemany(_INSERT, [(ts, i, action, issue, note) for i in ids])
                    self._fold(con)  # our own rows, with their sequence numbers
        if ids:
            _notify(self._key, action, ids)
        return ids

    # ------------------------------------------------------------------ writing
    def record(self, ids: Iterable[str], action: str, *, issue: str = "", note: str = "") -> int:
        """Append one decision per id, all in one transaction; returns how many were recorded.

        When this returns, the decisions are on disk (they survive a killed process).
        """
        check_choice(action, "action", ("exclude", "keep"))
        wanted = [str(i) for i in ids]
        if not wanted:  # nothing to write: not even the empty store is created
            return 0
        return len(self._write(action, lambda _s: wanted, str(issue), str(note)))

    def exclude(self, ids: Iterable[str], *, issue: str = "", note: str = "") -> int:
        return self.record(ids, "exclude", issue=issue, note=note)

    def keep(self, ids: Iterable[str], *, issue: str = "", note: str = "") -> int:
        return self.record(ids, "keep", issue=issue, note=note)

    def exclude_new(self, ids: Iterable[str], *, issue: str = "", note: str = "") -> list[str]:
        """Exclude the ids that are not excluded yet; returns them.

        An id already excluded keeps the issue and note it was excluded with, so a later
        :meth:`restore` with this ``issue`` and ``note`` does not take back an exclusion made
        for another reason.
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        pick = lambda s: [i for i in wanted if s.get(i, ("keep",))[0] != "exclude"]  # noqa: E731
        return self._write("exclude", pick, str(issue), str(note))

    def restore(self, ids: Iterable[str], *, issue: str, note: str = "") -> list[str]:
        """Keep again the ids whose current exclusion was recorded with this ``issue`` and
        ``note``; returns them.

        What a duplicate group's "keep all" does: it undoes its own exclusions among the group's
        ids and leaves alone those excluded for another reason, in code or elsewhere (a
        different issue, or the same issue with another note).
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        own = ("exclude", str(issue), str(note))
        pick = lambda s: [i for i in wanted if s.get(i) == own]  # noqa: E731
        return self._write("keep", pick, str(issue), str(note))

    # ------------------------------------------------------------------ reading
    def _rows(self) -> list[tuple[float, str, str, str, str]]:
        if self.path is None:
            return list(self._memory)
        if not self._exists():
            return []
        with self._connect(write=False) as con:
            sql = "SELECT ts, id, action, issue, note FROM decisions ORDER BY seq"
            return con.execute(sql).fetchall()

    def history(self) -> pd.DataFrame:
        """Every decision in the order taken: ``ts, id, action, issue, note`` (as text)."""
        rows = [(repr(float(r[0])), *r[1:]) for r in self._rows()]
        return pd.DataFrame(rows, columns=list(self.COLUMNS), dtype=object)

    def state(self) -> dict[str, tuple[str, str, str]]:
        """Latest ``(action, issue, note)`` per id, including what other processes recorded."""
        with self._lock:
            self._sync()
            return dict(self._state)

    def current(self) -> dict[str, str]:
        """Latest action per id."""
        return {i: a for i, (a, _, _) in self.state().items()}

    def excluded_for(self) -> dict[str, tuple[str, str]]:
        """Each excluded id and the ``(issue, note)`` it was excluded with."""
        return {i: (issue, note) for i, (a, issue, note) in self.state().items() if a == "exclude"}

    @property
    def excluded(self) -> set[str]:
        return {i for i, (a, _, _) in self.state().items() if a == "exclude"}

    def apply(self, catalog: Catalog) -> Catalog:
        """The catalog without excluded samples."""
        ex = self.excluded
        return catalog.filter(~catalog.df["id"].isin(ex))

    # ------------------------------------------------------------------ listeners
    def on_change(self, fn: Listener) -> None:
        """Call ``fn(action, ids)`` after a decision is recorded on this store in this process,
        through this object or any other :class:`Decisions` on the same workspace.

        A bound method is held weakly (its object may be garbage collected); an error in ``fn``
        is logged and does not undo or hide the recorded decision.
        """
        ref: Callable[[], Listener | None]
        if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
            ref = weakref.WeakMethod(fn)  # type: ignore[arg-type]
        else:
            ref = lambda: fn  # noqa: E731
        with _LISTENERS_LOCK:
            _LISTENERS.setdefault(self._key, []).append(ref)


def _notify(key: str, action: str, ids: list[str]) -> None:
    with _LISTENERS_LOCK:
        refs = _LISTENERS.get(key, [])
        live = [r for r in refs if r() is not None]
        _LISTENERS[key] = live
    for ref in live:
        fn = ref()
        if fn is None:
            continue
        try:
            fn(action, list(ids))
        except Exception:  # the decision is committed: a listener's bug must not hide that
            log.exception("decision listener %r failed", fn)

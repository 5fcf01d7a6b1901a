"""The LabelStore: every labeling action is an event appended to SQLite; nothing is ever lost.

Guarantees
----------
- **Append-only.** ``label``, ``skip``, ``undo``, ``import``, ``model`` (a suggestion), ``review``
  and the class-schema events (``class_add``, ``class_rename``, ``class_merge``) are rows appended
  to one ``events`` table; triggers refuse ``UPDATE`` and ``DELETE``. Current labels, the class
  list and progress are *derived* from the events.
- **Durable on return.** Each write is one ``BEGIN IMMEDIATE`` transaction, committed in WAL mode
  with ``synchronous=FULL`` (the WAL is fsynced at every commit) before the method returns: an
  event id you were given survives a killed process, and a power cut.
- **Many writers.** Any number of processes (kernels, annotators) may write to one store at once.
  Each connection waits for the write lock (SQLite ``busy_timeout``) and every transaction is
  retried with jittered exponential back-off on ``SQLITE_BUSY`` / ``SQLITE_LOCKED`` for up to
  ``retry_for`` seconds, so "database is locked" never reaches the user; if the store stays locked
  that long, a :class:`LabelError` says so and nothing was written.
- **Stable class codes.** Classes have integer codes that never change and are never reused (a
  ``LabelEncoder`` whose codes never silently move). Values are stored *by code*, so renaming a
  class relabels nothing, and a merge makes the merged codes read as the target class.

Schema (``labels.db``)
----------------------
``events(id INTEGER PRIMARY KEY, kind, sample_id, hash, annotator, round, task, value, source,
ts, seconds, target, extra)``; ``value`` and ``extra`` are JSON; ``ts`` is Unix time (UTC);
``target`` is the event an ``undo`` cancels or a ``review`` judges. Stored values are
``{"class": code}``, ``{"classes": [code, ...]}``, ``{"boxes": [[x, y, w, h, code], ...]}`` or
``[]`` (an empty set of classes or boxes). ``meta(key, value)`` holds the schema version.

At the API, values use class *names*: ``"cat"``; ``["cat", "dog"]`` (a set: each class once,
in code order); or boxes ``[[x, y, w, h, "cat"], ...]`` in original-image pixels (the image as
:func:`workbench.io.decode` returns it, after EXIF orientation: the catalog's ``width`` and
``height``).

The *current* label of a (sample, annotator, round, task) is its latest ``label`` / ``import`` /
``skip`` event that has not been undone; when that latest event is a ``skip``, the key has no
current label (the person's latest decision was to pass on the item).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import posixpath
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from workbench.errors import LabelError
from workbench.fsutil import atomic_write

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

__all__ = ["EXPORT_MODES", "SOURCES", "VERDICTS", "LabelError", "LabelStore", "safe_names"]

T = TypeVar("T")

SCHEMA_VERSION = 1
#: Every kind of event the store records.
EVENT_KINDS = (
    "label", "skip", "undo", "import", "model", "review",
    "class_add", "class_rename", "class_merge",
)  # fmt: skip
_SCHEMA_KINDS = ("class_add", "class_rename", "class_merge")
_DECISION_KINDS = ("label", "import", "skip")  # what "current" and "undo" look at
#: Where a label came from.
SOURCES = ("human", "model", "import")
#: What a reviewer may say about a label.
VERDICTS = ("accept", "reject", "unsure")
#: How exports place image files.
EXPORT_MODES = ("copy", "symlink", "hardlink")
#: How far (pixels) a box may stick out of its image: float noise from normalised formats.
EDGE_TOLERANCE = 1e-3


def _sql_list(items: Iterable[str]) -> str:
    return ", ".join(f"'{k}'" for k in items)


_SQL_SCHEMA = _sql_list(_SCHEMA_KINDS)
_SQL_DECISION = _sql_list(_DECISION_KINDS)
_SQL_NOT_UNDONE = "id NOT IN (SELECT target FROM events WHERE kind = 'undo' AND target IS NOT NULL)"
_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS events (
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
        extra     TEXT)""",
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

#: Columns of :meth:`LabelStore.current`.
CURRENT_COLUMNS = [
    "id", "annotator", "round", "task", "value", "source", "ts", "hash", "seconds", "event",
]  # fmt: skip
#: Columns of :meth:`LabelStore.history`.
HISTORY_COLUMNS = [
    "event", "kind", "id", "annotator", "round", "task", "value", "source", "ts", "seconds",
    "hash", "target", "extra",
]  # fmt: skip


# ---------------------------------------------------------------------------------- validation
def _short(value: Any, n: int = 80) -> str:
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _need(ok: Any, message: str) -> None:
    if not ok:
        raise LabelError(message)


def _text(what: str, value: Any, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty_ok):
        raise LabelError(f"{what} must be {'' if empty_ok else 'non-empty '}text, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LabelError(f"{what} {_short(value)} is not valid Unicode text") from None
    return value


def _round(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise LabelError(f"round must be a whole number >= 0, got {value!r}")
    return int(value)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LabelError(f"seconds must be a number or None, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise LabelError(f"seconds must be finite and >= 0, got {value!r}")
    return float(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _dumps(obj: Any) -> str | None:
    if obj is None:
        return None
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------- class schema
@dataclass
class _Schema:
    """The class list, replayed from the schema events in event order."""

    names: dict[int, str] = field(default_factory=dict)  # active code -> name, code order
    codes: dict[str, int] = field(default_factory=dict)  # active name -> code
    merged: dict[int, int] = field(default_factory=dict)  # retired code -> code merged into
    next_code: int = 0

    @classmethod
    def replay(cls, rows: Iterable[tuple[str, str]]) -> _Schema:
        s = cls()
        for kind, raw in rows:
            v = json.loads(raw)
            if kind == "class_add":
                s.names[v["code"]] = v["name"]
                s.codes[v["name"]] = v["code"]
                s.next_code = max(s.next_code, v["code"] + 1)
            elif kind == "class_rename":
                del s.codes[s.names[v["code"]]]
                s.names[v["code"]] = v["new"]
                s.codes[v["new"]] = v["code"]
            else:  # class_merge
                for c in v["codes"]:
                    del s.codes[s.names.pop(c)]
                    s.merged[c] = v["into"]
        s.names = dict(sorted(s.names.items()))
        return s

    def code(self, name: Any) -> int:
        if not isinstance(name, str):
            raise LabelError(f"a class name is text, got {type(name).__name__} {_short(name)}")
        try:
            return self.codes[name]
        except KeyError:
            known = ", ".join(_short(k, 40) for k in list(self.codes)[:20])
            more = ", ..." if len(self.codes) > 20 else ""
            raise LabelError(
                f"unknown class {_short(name)}; the classes are [{known}{more}]. "
                "Add it first with store.add_classes([...])."
            ) from None

    def name(self, code: int) -> str:
        for _ in range(len(self.merged) + 1):  # follow merge chains (a -> b, later b -> c)
            if code not in self.merged:
                break
            code = self.merged[code]
        try:
            return self.names[code]
        except KeyError:
            raise LabelError(f"unknown class code {code!r}; codes are {list(self.names)}") from None

    def store(self, value: Any, size: tuple[int, int] | None) -> Any:
        """API value (names) -> stored value (codes), validating it."""
        if isinstance(value, str):
            return {"class": self.code(value)}
        if isinstance(value, (list, tuple)):
            items = list(value)
            if not items:
                return []
            if all(isinstance(v, str) for v in items):
                return {"classes": sorted({self.code(v) for v in items})}
            if all(isinstance(v, (list, tuple)) for v in items):
                return {"boxes": [self._box(b, size) for b in items]}
        raise LabelError(
            "a label value is a class name, a list of class names, or a list of boxes "
            f"[x, y, w, h, class] in pixels; got {_short(value)}"
        )

    def _box(self, box: Sequence[Any], size: tuple[int, int] | None) -> list[Any]:
        if len(box) != 5 or not all(_is_number(v) for v in box[:4]):
            raise LabelError(f"a box is [x, y, w, h, class] with numbers; got {_short(box)}")
        x, y, w, h = (float(v) for v in box[:4])
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise LabelError(f"a box needs finite x, y and w, h > 0; got {_short(box)}")
        if x < 0 or y < 0:
            raise LabelError(f"a box must start inside the image (x, y >= 0); got {_short(box)}")
        if size is not None and size[0] > 0 and size[1] > 0:
            width, height = size
            if x + w > width + EDGE_TOLERANCE or y + h > height + EDGE_TOLERANCE:
                raise LabelError(
                    f"box {_short(box)} leaves the {width}x{height} image (boxes are in "
                    "original-image pixels)"
                )
        return [x, y, w, h, self.code(box[4])]

    def load(self, stored: Any) -> Any:
        """Stored value (codes) -> API value (today's names)."""
        if not isinstance(stored, dict):
            return stored  # None (skip / undo), [] (empty set) or a review verdict
        if "class" in stored:
            return self.name(stored["class"])
        if "classes" in stored:  # a merge can fold two codes into one name
            return list(dict.fromkeys(self.name(c) for c in stored["classes"]))
        if "boxes" in stored:
            return [[*b[:4], self.name(b[4])] for b in stored["boxes"]]
        return stored


def _params(
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
    """One row for :data:`_INSERT`."""
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


def _insert(con: sqlite3.Connection, kind: str, **fields: Any) -> int:
    return int(con.execute(_INSERT, _params(kind, **fields)).lastrowid)


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


@dataclass
class _Pending:
    """One validated row of an import, inserted later in the import's single transaction."""

    sid: str
    hash: str | None
    size: tuple[int, int] | None
    value: Any
    who: str
    rnd: int
    task: str
    where: str
    seconds: float | None = None


# ------------------------------------------------------------------------------------ the store
class LabelStore:
    """Append-only, crash-safe, multi-process label events in one SQLite file.

    Parameters
    ----------
    path_or_workspace
        A :class:`~workbench.workspace.Workspace` (the store is ``<workspace>/labels.db``), a
        folder (``<folder>/labels.db``) or the database file itself. Created if missing.
    catalog
        When given, labels for sample ids not in it raise :class:`LabelError`, each event records
        the sample's content hash from it, boxes are checked against its width and height, and
        :meth:`stale` compares hashes. Exports and imports use it unless given another one.
    busy_timeout
        Seconds one attempt waits for another process's write lock (SQLite ``busy_timeout``).
    retry_for
        Seconds a transaction keeps being retried (jittered exponential back-off, 2 ms doubling
        to 250 ms) while the database is busy or locked, before :class:`LabelError`.

    Attributes
    ----------
    path : pathlib.Path
        The database file.
    catalog : Catalog or None
        The catalog that sample ids, hashes and image sizes come from.
    retries : int
        How often this object retried a busy transaction (a diagnostic).

    Examples
    --------
    >>> store = LabelStore(workspace, catalog=catalog)  # doctest: +SKIP
    >>> store.add_classes(["cat", "dog"])  # doctest: +SKIP
    [0, 1]
    >>> store.label("cat/001.png", "cat", annotator="ana", seconds=1.8)  # doctest: +SKIP
    3
    """

    def __init__(
        self,
        path_or_workspace: str | os.PathLike | Workspace,
        *,
        catalog: Catalog | None = None,
        busy_timeout: float = 10.0,
        retry_for: float = 120.0,
    ) -> None:
        self.path = _db_path(path_or_workspace)
        self.catalog = catalog
        self.busy_timeout = float(busy_timeout)
        self.retry_for = float(retry_for)
        self.retries = 0
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None
        self._pid = -1
        self._schema_key: tuple | None = None
        self._schema_cache = _Schema()
        self._maps_key: tuple | None = None
        self._maps: dict[str, tuple[str | None, int, int, str, str]] = {}
        self._connection()  # create the file and the schema now, so errors show up here

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's connection (the store reopens it on next use)."""
        with self._lock:
            if self._con is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._con.close()
            self._con = None

    # ------------------------------------------------------------------ transactions
    def _connection(self) -> sqlite3.Connection:
        if self._con is not None and self._pid == os.getpid():
            return self._con
        # A connection inherited through fork() must not be used (or closed) by the child.
        self._con, self._pid, self._schema_key = None, os.getpid(), None
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

    def _transaction(
        self, con: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], how: str
    ) -> T:
        con.execute(f"BEGIN {how}")
        try:
            out = fn(con)
            con.execute("COMMIT")
        except BaseException:
            # The schema cache may hold classes this transaction added: forget it.
            self._schema_key = None
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

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction, committed before returning."""
        with self._lock:
            con = self._connection()
            return self._retry(lambda: self._transaction(con, fn, "IMMEDIATE"))

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on one consistent snapshot of the store."""
        with self._lock:
            con = self._connection()
            return self._retry(lambda: self._transaction(con, fn, "DEFERRED"))

    def _schema(self, con: sqlite3.Connection) -> _Schema:
        # Events are append-only and ids only grow, so (count, max id) names one schema state.
        key = con.execute(
            f"SELECT count(*), max(id) FROM events WHERE kind IN ({_SQL_SCHEMA})"
        ).fetchone()
        if key != self._schema_key:
            rows = con.execute(
                f"SELECT kind, value FROM events WHERE kind IN ({_SQL_SCHEMA}) ORDER BY id"
            ).fetchall()
            self._schema_cache, self._schema_key = _Schema.replay(rows), key
        return self._schema_cache

    # ------------------------------------------------------------------ samples
    def _catalog_maps(
        self, catalog: Catalog, *, fresh: bool = False
    ) -> dict[str, tuple[str | None, int, int, str, str]]:
        """``id -> (hash, width, height, status, path)``, rebuilt when the catalog changes."""
        df = catalog.df
        key = (id(catalog), id(df), len(df))
        if fresh or key != self._maps_key:
            hashes = [h if isinstance(h, str) and h else None for h in df["hash"]]
            cols = zip(
                df["id"], hashes, df["width"], df["height"], df["status"], df["path"], strict=True
            )
            self._maps = {
                sid: (h, int(w), int(ht), str(st), str(p)) for sid, h, w, ht, st, p in cols
            }
            self._maps_key = key
        return self._maps

    def _sample(
        self, sample_id: Any, catalog: Catalog | None = None
    ) -> tuple[str, str | None, tuple[int, int] | None]:
        """Validated ``(id, hash, (width, height))``; hash and size are None without a catalog."""
        sid = _text("sample id", sample_id)
        cat = catalog if catalog is not None else self.catalog
        if cat is None:
            return sid, None, None
        info = self._catalog_maps(cat).get(sid)
        if info is None:
            raise LabelError(
                f"no sample {_short(sid)} in the catalog; label samples by their catalog id "
                "(catalog.ids)"
            )
        return sid, info[0], (info[1], info[2])

    def _need_catalog(self, catalog: Catalog | None) -> Catalog:
        cat = catalog if catalog is not None else self.catalog
        if cat is None:
            raise LabelError("this needs a catalog: pass catalog=... here or to LabelStore(...)")
        return cat

    # ------------------------------------------------------------------ class schema
    @property
    def classes(self) -> list[str]:
        """Active class names in code order (codes may have gaps after a merge)."""
        return list(self._read(self._schema).names.values())

    @property
    def class_codes(self) -> dict[str, int]:
        """``name -> code`` of the active classes, in code order."""
        return {n: c for c, n in self._read(self._schema).names.items()}

    def add_classes(self, names: str | Iterable[str]) -> list[int]:
        """Add classes; returns the codes of ``names`` (existing names keep theirs).

        New classes get the next never-used codes, in the order given; one ``class_add`` event
        each, all in one transaction. Any text is a valid name (exports map unsafe ones).
        """
        wanted = [_text("class name", n, empty_ok=True) for n in _as_list(names)]

        def tx(con: sqlite3.Connection) -> list[int]:
            s = self._add_missing(con, wanted)
            return [s.codes[n] for n in wanted]

        return self._write(tx)

    def _add_missing(self, con: sqlite3.Connection, names: Iterable[str]) -> _Schema:
        s = self._schema(con)
        code = s.next_code
        for name in dict.fromkeys(names):
            if name not in s.codes:
                _text("class name", name, empty_ok=True)
                _insert(con, "class_add", value={"name": name, "code": code})
                code += 1
        return self._schema(con)

    def rename_class(self, old: str, new: str) -> int:
        """Give class ``old`` the name ``new``; its code, and every label with it, stay.

        Raises
        ------
        LabelError
            If ``old`` is not a class or ``new`` already is one.
        """
        new = _text("class name", new, empty_ok=True)

        def tx(con: sqlite3.Connection) -> int:
            s = self._schema(con)
            code = s.code(old)
            if new in s.codes:
                raise LabelError(f"class {new!r} exists already; merge_classes() joins classes")
            _insert(con, "class_rename", value={"code": code, "old": old, "new": new})
            return code

        return self._write(tx)

    def merge_classes(self, sources: str | Iterable[str], into: str) -> int:
        """Fold the classes ``sources`` into ``into`` (added if new); returns ``into``'s code.

        The merged codes are retired, never reused: labels that carry them read as ``into``
        and :meth:`decode` maps them to ``into``; :meth:`encode` no longer knows the old names.
        """
        src = _as_list(sources)
        into = _text("class name", into, empty_ok=True)

        def tx(con: sqlite3.Connection) -> int:
            s = self._schema(con)
            codes = sorted({s.code(n) for n in src} - {s.codes.get(into)})
            if not codes:
                raise LabelError(f"nothing to merge into {into!r}: name other existing classes")
            s = self._add_missing(con, [into])
            value = {"codes": codes, "names": [s.names[c] for c in codes], "into": s.codes[into]}
            _insert(con, "class_merge", value=value)
            return s.codes[into]

        return self._write(tx)

    def encode(self, names: str | Iterable[str]) -> int | list[int]:
        """Class name(s) → stable integer code(s); :class:`LabelError` for an unknown name."""
        s = self._read(self._schema)
        if isinstance(names, str):
            return s.code(names)
        return [s.code(n) for n in names]

    def decode(self, codes: int | Iterable[int]) -> str | list[str]:
        """Code(s) → class name(s); a merged code gives the class it was merged into."""
        s = self._read(self._schema)
        if isinstance(codes, numbers.Integral):
            return s.name(int(codes))
        return [s.name(int(c)) for c in codes]

    # ------------------------------------------------------------------ writing events
    def label(
        self,
        sample_id: str,
        value: str | Sequence[str] | Sequence[Sequence[Any]],
        *,
        annotator: str,
        round: int = 0,
        task: str = "class",
        seconds: float | None = None,
        source: str = "human",
    ) -> int:
        """Record a label; returns its event id once it is committed to disk.

        Parameters
        ----------
        sample_id
            The catalog id of the sample.
        value
            A class name, a list of class names (multi-label, a set), or a list of boxes
            ``[x, y, w, h, class]`` in original-image pixels. Every class must exist.
        annotator
            Who labeled: a person, or a model's name with ``source="model"``.
        round
            Labeling round (0 for the first pass, 1 for a re-label, ...).
        task
            Name of the labeling task (``"class"``, ``"boxes"``, ...); tasks are independent.
        seconds
            Time spent on the item.
        source
            ``"human"``, ``"model"`` (a prediction accepted as a label) or ``"import"``.

        Raises
        ------
        LabelError
            Unknown sample (with a catalog), unknown class, malformed value; nothing is written.
        """
        if source not in SOURCES:
            raise LabelError(f"source must be one of {SOURCES}, got {source!r}")
        kind = "import" if source == "import" else "label"
        return self._append(kind, sample_id, value, annotator, round, task, seconds, source)

    def skip(
        self,
        sample_id: str,
        *,
        annotator: str,
        round: int = 0,
        task: str = "class",
        seconds: float | None = None,
    ) -> int:
        """Record that ``annotator`` passed on a sample: done, but no label."""
        return self._append("skip", sample_id, None, annotator, round, task, seconds, "human")

    def _append(
        self,
        kind: str,
        sample_id: str,
        value: Any,
        annotator: str,
        round: int,
        task: str,
        seconds: float | None,
        source: str,
        extra: Callable[[_Schema], Any] | None = None,
    ) -> int:
        sid, h, size = self._sample(sample_id)
        fields = {
            "sid": sid,
            "hash": h,
            "who": _text("annotator", annotator),
            "rnd": _round(round),
            "task": _text("task", task),
            "source": source,
            "seconds": _seconds(seconds),
        }

        def tx(con: sqlite3.Connection) -> int:
            s = self._schema(con)
            stored = None if kind == "skip" else s.store(value, size)
            more = None if extra is None else extra(s)
            return _insert(con, kind, value=stored, extra=more, **fields)

        return self._write(tx)

    def undo(
        self,
        sample_id: str | None = None,
        *,
        annotator: str,
        round: int = 0,
        task: str = "class",
    ) -> int | None:
        """Cancel ``annotator``'s latest label/skip/import (on ``sample_id``, or on any sample).

        Calling it again cancels the one before, and so on. Returns the ``undo`` event's id, or
        ``None`` when there is nothing left to undo.
        """
        who, rnd, task = _text("annotator", annotator), _round(round), _text("task", task)
        sql = (
            f"SELECT id, sample_id, hash FROM events WHERE kind IN ({_SQL_DECISION}) "
            f"AND annotator = ? AND round = ? AND task = ? AND {_SQL_NOT_UNDONE}"
        )
        args: list[Any] = [who, rnd, task]
        if sample_id is not None:
            sql += " AND sample_id = ?"
            args.append(_text("sample id", sample_id))

        def tx(con: sqlite3.Connection) -> int | None:
            row = con.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
            if row is None:
                return None
            return _insert(
                con, "undo", sid=row[1], hash=row[2], who=who, rnd=rnd, task=task, target=row[0]
            )

        return self._write(tx)

    def suggest(
        self,
        sample_id: str,
        value: str | Sequence[str] | Sequence[Sequence[Any]],
        *,
        model: str,
        probs: Mapping[str, float] | None = None,
        round: int = 0,
        task: str = "class",
    ) -> int:
        """Record a model's suggestion (kind ``model``, source ``model``); it is not a label.

        ``probs`` maps class names to probabilities (each in [0, 1]).
        """
        checked: list[tuple[Any, float]] | None = None
        if probs is not None:
            _need(isinstance(probs, Mapping), f"probs maps classes to numbers: {_short(probs)}")
            checked = []
            for k, p in probs.items():
                _need(_is_number(p) and 0 <= p <= 1, f"probability of {k!r} must be in [0, 1]")
                checked.append((k, float(p)))

        def extra(s: _Schema) -> Any:
            return None if checked is None else {"probs": [[s.code(k), p] for k, p in checked]}

        who = _text("model", model)
        return self._append("model", sample_id, value, who, round, task, None, "model", extra)

    def review(
        self,
        sample_id: str,
        verdict: str,
        *,
        reviewer: str,
        round: int = 0,
        task: str = "class",
        note: str | None = None,
        target: int | None = None,
    ) -> int:
        """Record a reviewer's verdict on a sample: ``"accept"``, ``"reject"`` or ``"unsure"``.

        ``target`` optionally names the event id of the label being judged (on this sample).
        """
        _need(verdict in VERDICTS, f"verdict must be one of {VERDICTS}, got {verdict!r}")
        _need(target is None or _is_int(target), f"target is an event id, got {target!r}")
        extra = None if note is None else {"note": _text("note", note, empty_ok=True)}
        sid, h, _ = self._sample(sample_id)
        fields = {
            "sid": sid,
            "hash": h,
            "who": _text("reviewer", reviewer),
            "rnd": _round(round),
            "task": _text("task", task),
            "value": verdict,
            "target": target,
            "extra": extra,
        }

        def tx(con: sqlite3.Connection) -> int:
            if target is not None:
                row = con.execute("SELECT sample_id FROM events WHERE id = ?", (target,)).fetchone()
                _need(row is not None and row[0] == sid, f"event {target} is not on {sid!r}")
            return _insert(con, "review", **fields)

        return self._write(tx)

    # ------------------------------------------------------------------ reading
    def events_count(self, kind: str | None = None) -> int:
        """Number of events of one ``kind``, or of all kinds (schema events included)."""
        sql, args = "SELECT count(*) FROM events", ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        return int(self._read(lambda con: con.execute(sql, args).fetchone()[0]))

    @staticmethod
    def _current_rows(
        con: sqlite3.Connection,
        annotator: str | None,
        round: int | None,
        task: str | None,
        *,
        skips: bool = False,
    ) -> list[tuple]:
        """Latest undone-free decision per key: (sample, annotator, round, task, value, source,
        ts, hash, seconds, event, kind), in event order; skips only if ``skips``."""
        where, args = [f"kind IN ({_SQL_DECISION})", _SQL_NOT_UNDONE], []
        for col, v in (("annotator", annotator), ("round", round), ("task", task)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = (
            "SELECT e.sample_id, e.annotator, e.round, e.task, e.value, e.source, e.ts, e.hash, "
            "e.seconds, e.id, e.kind FROM events e JOIN (SELECT max(id) AS id FROM events "
            f"WHERE {' AND '.join(where)} GROUP BY sample_id, annotator, round, task) AS last "
            "ON e.id = last.id" + ("" if skips else " WHERE e.kind != 'skip'") + " ORDER BY e.id"
        )
        return con.execute(sql, args).fetchall()

    def current(
        self, annotator: str | None = None, round: int | None = None, task: str | None = "class"
    ) -> pd.DataFrame:
        """Current labels: one row per (sample, annotator, round, task), in event order.

        Columns ``id, annotator, round, task, value, source, ts, hash, seconds, event``; ``ts``
        is a UTC timestamp and ``event`` the label's event id. ``None`` for a filter means all.
        """

        def q(con: sqlite3.Connection) -> tuple[list[tuple], _Schema]:
            return self._current_rows(con, annotator, round, task), self._schema(con)

        rows, s = self._read(q)
        data = [(*r[:4], s.load(json.loads(r[4])), *r[5:10]) for r in rows]
        return _frame(data, CURRENT_COLUMNS)

    def history(
        self,
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
        where, args = [], []
        filters = (
            ("sample_id", sample_id),
            ("annotator", annotator),
            ("kind", kind),
            ("task", task),
        )
        for col, v in filters:
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = (
            "SELECT id, kind, sample_id, annotator, round, task, value, source, ts, seconds, "
            "hash, target, extra FROM events"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY id"
        )
        rows, s = self._read(lambda con: (con.execute(sql, args).fetchall(), self._schema(con)))
        data = []
        for r in rows:
            value = None if r[6] is None else json.loads(r[6])
            if r[1] not in _SCHEMA_KINDS:
                value = s.load(value)
            data.append((*r[:6], value, *r[7:12], _load_extra(r[12], s)))
        return _frame(data, HISTORY_COLUMNS)

    def suggestions(self, model: str | None = None, *, task: str | None = "class") -> pd.DataFrame:
        """The latest suggestion per (sample, model, round, task).

        Columns ``id, model, round, task, value, probs, ts, event``.
        """
        where, args = ["kind = 'model'"], []
        for col, v in (("annotator", model), ("task", task)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = (
            "SELECT sample_id, annotator, round, task, value, extra, ts, id FROM events "
            f"WHERE id IN (SELECT max(id) FROM events WHERE {' AND '.join(where)} "
            "GROUP BY sample_id, annotator, round, task) ORDER BY id"
        )
        rows, s = self._read(lambda con: (con.execute(sql, args).fetchall(), self._schema(con)))
        data = []
        for r in rows:
            probs = (_load_extra(r[5], s) or {}).get("probs")
            data.append((*r[:4], s.load(json.loads(r[4])), probs, r[6], r[7]))
        return _frame(data, ["id", "model", "round", "task", "value", "probs", "ts", "event"])

    def labeled_ids(
        self,
        annotator: str | None = None,
        *,
        round: int | None = None,
        task: str | None = "class",
        include_skipped: bool = False,
    ) -> set[str]:
        """Ids of samples with a current label (by ``annotator``, or by anyone)."""
        rows = self._read(lambda con: self._current_rows(con, annotator, round, task, skips=True))
        return {r[0] for r in rows if include_skipped or r[10] != "skip"}

    def progress(
        self, annotator: str, *, round: int | None = None, task: str | None = "class"
    ) -> dict[str, Any]:
        """How far ``annotator`` is.

        Returns
        -------
        dict
            ``labeled``, ``skipped`` and ``done`` (distinct samples); ``total`` and
            ``remaining`` (``None`` without a catalog); ``seconds`` (time recorded on the current
            decisions) and ``per_minute`` (items per minute of recorded time, or ``None``).
        """
        rows = self._read(lambda con: self._current_rows(con, annotator, round, task, skips=True))
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
        self, annotator: str, *, round: int | None = None, task: str | None = "class"
    ) -> str | None:
        """The sample ``annotator`` acted on last (label, skip or undo): resume there."""
        where, args = ["kind IN ('label', 'import', 'skip', 'undo')", "annotator = ?"], [annotator]
        for col, v in (("round", round), ("task", task)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(v)
        sql = f"SELECT sample_id FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT 1"
        row = self._read(lambda con: con.execute(sql, args).fetchone())
        return None if row is None else row[0]

    def stale(self, catalog: Catalog | None = None, *, task: str | None = None) -> pd.DataFrame:
        """Current labels whose recorded content hash is not the catalog's hash now.

        Returns the :meth:`current` columns plus ``catalog_hash`` and ``reason``: ``"changed"``
        (the pixels changed since labeling), ``"missing"`` (no longer in the catalog) or
        ``"unhashed"`` (labeled without a catalog, so it cannot be checked).
        """
        maps = self._catalog_maps(self._need_catalog(catalog), fresh=True)
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

    # ------------------------------------------------------------------ exports
    def _resolved(
        self, task: str, annotator: str | None, round: int | None
    ) -> list[tuple[str, Any]]:
        """One value per sample: the latest current label among the chosen annotators/rounds.

        To export a consensus instead of "latest wins", compute it (:mod:`workbench.quality`)
        and label it as its own round or annotator, then export that one.
        """
        df = self.current(annotator=annotator, round=round, task=_text("task", task))
        latest: dict[str, Any] = {}
        for sid, v in zip(df["id"], df["value"], strict=True):
            latest[sid] = v  # rows come in event order: the last one wins
        return list(latest.items())

    def _usable(
        self, catalog: Catalog, task: str, annotator: str | None, round: int | None
    ) -> tuple[dict, list[tuple[str, Any]], list[dict[str, str]]]:
        """Catalog maps, exportable (id, value) pairs, and the skipped ones with a reason."""
        maps = self._catalog_maps(catalog)
        items, skipped = [], []
        for sid, v in self._resolved(task, annotator, round):
            reason = None if sid in maps else "not in catalog"
            if reason is None and maps[sid][3] != "ok":
                reason = f"unreadable ({maps[sid][3]})"
            if reason:
                skipped.append({"id": sid, "reason": reason})
            else:
                items.append((sid, v))
        return maps, items, skipped

    def to_csv(
        self,
        path: str | os.PathLike,
        *,
        task: str | None = None,
        annotator: str | None = None,
        round: int | None = None,
    ) -> Path:
        """Write the current labels (of every task by default) as CSV, atomically.

        Columns ``id, annotator, round, task, value, source, ts, hash, seconds``: ``value`` is
        JSON (``"cat"``, ``["cat","dog"]``, ``[[x,y,w,h,"cat"]]``), ``ts`` ISO 8601 UTC.
        :meth:`import_csv` reads it back.
        """
        df = self.current(annotator=annotator, round=round, task=task)
        out = df[CURRENT_COLUMNS[:-1]].copy()
        out["value"] = [_dumps(v) for v in df["value"]]
        out["ts"] = [t.isoformat() for t in df["ts"]]
        path = Path(path)
        atomic_write(path, out.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        return path

    def to_imagefolder(
        self,
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
        cat = self._need_catalog(catalog)
        _need(mode in EXPORT_MODES, f"mode must be one of {EXPORT_MODES}, got {mode!r}")
        maps, items, skipped = self._usable(cat, task, annotator, round)
        rows = []
        for sid, v in items:
            names = [v] if isinstance(v, str) else v
            _need(
                all(isinstance(n, str) for n in names),
                f"task {task!r} holds boxes; export it with to_coco() or to_yolo()",
            )
            rows.extend((sid, n) for n in names)
        codes = self.class_codes
        folders = safe_names(codes)
        files = _safe_file_names([sid for sid, _ in rows])
        counts = dict.fromkeys(codes, 0)
        with _atomic_dir(out, overwrite) as tmp:
            for sid, name in rows:
                counts[name] += 1
                _place(maps[sid][4], _inside(tmp, folders[name], files[sid]), mode)
            classes = [
                {"name": n, "code": c, "folder": folders[n], "count": counts[n]}
                for n, c in codes.items()
            ]
            meta = {"format": "imagefolder", "task": task, "classes": classes, "skipped": skipped}
            atomic_write(_inside(tmp, "classes.json"), _json_bytes(meta), fsync=False)
            table = pd.DataFrame(
                [(sid, n, f"{folders[n]}/{files[sid]}") for sid, n in rows],
                columns=["id", "class", "file"],
            )
            _write_csv(_inside(tmp, "samples.csv"), table)
        return Path(out)

    def to_coco(
        self,
        path: str | os.PathLike,
        catalog: Catalog | None = None,
        *,
        task: str = "class",
        annotator: str | None = None,
        round: int | None = None,
    ) -> Path:
        """Write one task's labels as a COCO JSON file, atomically.

        - ``categories``: every active class with ``id = code + 1`` (COCO keeps 0 free by
          custom) and its ``name`` unchanged (JSON needs no safe names).
        - ``images``: each labeled sample: ``file_name`` is its catalog id, ``width`` and
          ``height`` come from the catalog; ``"multi_label": true`` marks a multi-label value.
        - Boxes are ordinary annotations: ``bbox`` ``[x, y, w, h]`` in pixels, ``area`` w·h,
          ``iscrowd`` 0. An image-level class is an annotation whose ``bbox`` covers the whole
          image (``area`` W·H), which pycocotools' ``COCO`` and ``COCOeval`` accept as is, plus
          the extra key ``"image_level": true`` that :meth:`import_coco` reads back.
        - ``info.workbench`` records the task and the samples left out (not in the catalog or
          unreadable).
        """
        maps, items, skipped = self._usable(self._need_catalog(catalog), task, annotator, round)
        codes = self.class_codes
        images: list[dict[str, Any]] = []
        anns: list[dict[str, Any]] = []
        for sid, v in items:
            w, h = maps[sid][1], maps[sid][2]
            image = {"id": len(images) + 1, "file_name": sid, "width": w, "height": h}
            if isinstance(v, list) and v and isinstance(v[0], str):
                image["multi_label"] = True
            images.append(image)
            for name, bbox, level in _coco_parts(v, w, h):
                ann = {
                    "id": len(anns) + 1,
                    "image_id": image["id"],
                    "category_id": codes[name] + 1,
                    "bbox": bbox,
                    "area": float(bbox[2] * bbox[3]),
                    "iscrowd": 0,
                }
                if level:
                    ann["image_level"] = True
                anns.append(ann)
        doc = {
            "info": {
                "description": "labels exported by workbench",
                "version": "1",
                "date_created": datetime.now(timezone.utc).isoformat(),
                "workbench": {"task": task, "skipped": skipped},
            },
            "licenses": [],
            "categories": [{"id": c + 1, "name": n, "supercategory": ""} for n, c in codes.items()],
            "images": images,
            "annotations": anns,
        }
        path = Path(path)
        atomic_write(path, _json_bytes(doc))
        return path

    def to_yolo(
        self,
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
        cat = self._need_catalog(catalog)
        _need(mode is None or mode in EXPORT_MODES, f"mode must be in {EXPORT_MODES} or None")
        maps, items, skipped = self._usable(cat, task, annotator, round)
        for _, v in items:
            _need(
                isinstance(v, list) and not (v and isinstance(v[0], str)),
                f"task {task!r} holds class labels, not boxes; use to_imagefolder()",
            )
        codes = self.class_codes
        index = {n: i for i, n in enumerate(codes)}
        files = _safe_file_names([sid for sid, _ in items])
        stems = {sid: f[: len(f) - len(_ext(f))] for sid, f in files.items()}
        with _atomic_dir(out, overwrite) as tmp:
            for sid, boxes in items:
                w, h = maps[sid][1], maps[sid][2]
                lines = "".join(
                    f"{index[n]} {(x + bw / 2) / w!r} {(y + bh / 2) / h!r} {bw / w!r} {bh / h!r}\n"
                    for x, y, bw, bh, n in boxes
                )
                atomic_write(_inside(tmp, "labels", stems[sid] + ".txt"), lines, fsync=False)
                if mode is not None:
                    _place(maps[sid][4], _inside(tmp, "images", files[sid]), mode)
            names = "".join(f"  {i}: {_yaml_quote(n)}\n" for i, n in enumerate(codes))
            data = f"train: images\nval: images\nnc: {len(codes)}\nnames:\n{names}"
            atomic_write(_inside(tmp, "data.yaml"), data, fsync=False)
            classes = [{"index": i, "code": c, "name": n} for i, (n, c) in enumerate(codes.items())]
            meta = {"format": "yolo", "task": task, "classes": classes, "skipped": skipped}
            atomic_write(_inside(tmp, "classes.json"), _json_bytes(meta), fsync=False)
            table = pd.DataFrame([(sid, stems[sid]) for sid, _ in items], columns=["id", "stem"])
            _write_csv(_inside(tmp, "samples.csv"), table)
        return Path(out)

    # ------------------------------------------------------------------ imports
    def _import(
        self, rows: list[_Pending], classes: Sequence[str], add_classes: bool, origin: str
    ) -> int:
        """Insert validated import rows, and any new classes, in ONE transaction."""

        def tx(con: sqlite3.Connection) -> int:
            s = self._schema(con)
            missing = [c for c in dict.fromkeys(classes) if c not in s.codes]
            if missing and not add_classes:
                shown = ", ".join(_short(m, 40) for m in missing[:10])
                raise LabelError(
                    f"{origin} uses classes the store does not have: [{shown}]; add them first "
                    "or pass add_classes=True"
                )
            s = self._add_missing(con, classes)
            now, params = time.time(), []
            for r in rows:
                try:
                    stored = s.store(r.value, r.size)
                except LabelError as e:
                    raise LabelError(f"{r.where}: {e}") from None
                fields = {
                    "sid": r.sid,
                    "hash": r.hash,
                    "who": r.who,
                    "rnd": r.rnd,
                    "task": r.task,
                    "seconds": r.seconds,
                }
                params.append(
                    _params(
                        "import",
                        value=stored,
                        source="import",
                        ts=now,
                        extra={"from": origin},
                        **fields,
                    )
                )
            con.executemany(_INSERT, params)
            return len(params)

        return self._write(tx)

    def _pending(
        self, sid: Any, value: Any, cat: Catalog | None, who: Any, rnd: Any, task: Any, where: str
    ) -> _Pending:
        try:
            sid, h, size = self._sample(sid, cat)
            return _Pending(
                sid,
                h,
                size,
                value,
                _text("annotator", who),
                _round(rnd),
                _text("task", task),
                where,
            )
        except LabelError as e:
            raise LabelError(f"{where}: {e}") from None

    def import_csv(
        self,
        path: str | os.PathLike,
        catalog: Catalog | None = None,
        *,
        annotator: str = "import",
        round: int = 0,
        task: str = "class",
        add_classes: bool = True,
    ) -> int:
        """Import labels from a CSV file: ours from :meth:`to_csv`, or a plain ``id,label`` table.

        Columns: ``id`` and either ``value`` (JSON, as :meth:`to_csv` writes it) or ``label``
        (a plain class name); optional ``annotator``, ``round``, ``task``, ``hash`` and
        ``seconds`` columns override the defaults per row. Rows become ``import`` events (source
        ``"import"``) in one transaction: any bad row raises :class:`LabelError` naming it, and
        nothing is imported. Unknown classes are added (in order of appearance) unless
        ``add_classes=False``.

        Returns
        -------
        int
            The number of events imported.
        """
        cat = catalog if catalog is not None else self.catalog
        path = Path(path)
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        except FileNotFoundError:
            raise LabelError(f"{str(path)!r} does not exist") from None
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as e:
            raise LabelError(f"{str(path)!r} is not a readable CSV: {e}") from None
        has_value = "value" in df.columns
        _need(
            "id" in df.columns and (has_value or "label" in df.columns),
            f"{str(path)!r} needs an 'id' column and a 'value' (JSON) or 'label' column; "
            f"it has {_short(list(df.columns))}",
        )
        rows, names = [], []
        for i, rec in enumerate(df.to_dict("records")):
            where = f"{path.name} row {i + 2}"
            row = self._pending(
                rec["id"],
                None,
                cat,
                rec.get("annotator") or annotator,
                _csv_int(rec, "round", round, where),
                rec.get("task") or task,
                where,
            )
            row.value = _csv_value(rec, has_value, where)
            row.seconds = _csv_seconds(rec, where)
            row.hash = rec.get("hash") or row.hash
            rows.append(row)
            names.extend(_class_names(row.value))
        return self._import(rows, names, add_classes, path.name)

    def import_coco(
        self,
        path: str | os.PathLike,
        catalog: Catalog | None = None,
        *,
        annotator: str = "import",
        round: int = 0,
        task: str | None = None,
        add_classes: bool = True,
    ) -> int:
        """Import a COCO JSON file: ours from :meth:`to_coco`, or a detection dataset's.

        Images are matched to catalog samples by ``file_name`` (the catalog id, else a unique
        file name). Annotations with ``"image_level": true`` are class labels, the others boxes
        (``bbox`` in pixels); an image with no annotations becomes an empty label ``[]``.
        Categories are added in file order (unless ``add_classes=False``). ``task`` defaults
        to the one recorded in the file, else ``"boxes"`` if there are boxes, else ``"class"``.
        One transaction: any defect raises :class:`LabelError` and nothing is imported.
        """
        cat = self._need_catalog(catalog)
        path = Path(path)
        doc = _read_json(path)
        cats, images, recorded = _parse_coco(doc, path.name, _file_matcher(cat))
        has_boxes = any(im["boxes"] for im in images)
        task = task if task is not None else recorded or ("boxes" if has_boxes else "class")
        rows = []
        for im in images:
            where = f"{path.name}: image {im['file_name']!r}"
            _need(not (im["boxes"] and im["classes"]), f"{where} has classes and boxes")
            value: Any = im["boxes"] or im["classes"]
            if len(im["classes"]) == 1 and not im["multi"]:
                value = im["classes"][0]
            rows.append(self._pending(im["sid"], value, cat, annotator, round, task, where))
        return self._import(rows, cats, add_classes, path.name)

    def import_yolo(
        self,
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
        cat = self._need_catalog(catalog)
        root = Path(folder)
        _need(root.is_dir(), f"{str(root)!r} is not a folder")
        names, recorded = _yolo_names(root)
        task = task if task is not None else recorded or "boxes"
        labels = root / "labels" if (root / "labels").is_dir() else root
        listed = _yolo_listing(root)
        resolve = _file_matcher(cat)
        rows, seen = [], set()
        for txt in sorted(labels.rglob("*.txt")):
            rel = txt.relative_to(labels).as_posix()
            stem = rel[: -len(".txt")]
            if listed is not None:
                _need(stem in listed, f"{rel}: not listed in samples.csv")
                sid = listed[stem]
            else:
                sid = resolve(stem, rel, stem_only=True)
            _need(sid not in seen, f"{rel}: a second label file for sample {sid!r}")
            seen.add(sid)
            row = self._pending(sid, None, cat, annotator, round, task, rel)
            row.value = _read_yolo_txt(txt, rel, names, row.size)
            rows.append(row)
        _need(rows or listed is not None, f"{str(root)!r} holds no YOLO label files (*.txt)")
        return self._import(rows, names, add_classes, root.name)


# ------------------------------------------------------------------------------- store helpers
def _create_schema(con: sqlite3.Connection) -> None:
    for stmt in _DDL:
        con.execute(stmt)
    con.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    (version,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if int(version) > SCHEMA_VERSION:
        raise LabelError(f"this labels.db was written by a newer workbench (schema {version})")


def _db_path(target: Any) -> Path:
    if not isinstance(target, (str, os.PathLike)):
        if hasattr(target, "path"):  # a Workspace
            return Path(target.path) / "labels.db"
        raise LabelError(f"give a Workspace, a folder or a .db file path, not {_short(target)}")
    p = Path(target).expanduser()
    return p / "labels.db" if p.is_dir() else p


def _as_list(names: str | Iterable[str]) -> list[Any]:
    return [names] if isinstance(names, str) else list(names)


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


def _load_extra(raw: str | None, s: _Schema) -> Any:
    if raw is None:
        return None
    extra = json.loads(raw)
    if isinstance(extra, dict) and "probs" in extra:
        extra = {**extra, "probs": {s.name(c): p for c, p in extra["probs"]}}
    return extra


def _class_names(value: Any) -> list[str]:
    """Class names in a (maybe malformed) API value, so an import can add them first."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    for v in value if isinstance(value, list) else []:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list) and len(v) == 5 and isinstance(v[4], str):
            out.append(v[4])
    return out


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


# ------------------------------------------------------------------------------------ CSV rows
def _csv_value(rec: dict[str, str], has_value: bool, where: str) -> Any:
    if not has_value:
        return rec["label"]
    try:
        return json.loads(rec["value"])
    except ValueError:
        raise LabelError(f"{where}: value {_short(rec['value'])} is not JSON") from None


def _csv_int(rec: dict[str, str], col: str, default: int, where: str) -> int:
    raw = rec.get(col, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise LabelError(f"{where}: {col} {_short(raw)} is not a whole number") from None


def _csv_seconds(rec: dict[str, str], where: str) -> float | None:
    raw = rec.get("seconds", "")
    if raw == "":
        return None
    try:
        return _seconds(float(raw))
    except (ValueError, LabelError):
        raise LabelError(f"{where}: seconds {_short(raw)} is not a number >= 0") from None


# ----------------------------------------------------------------------------------------- COCO
def _coco_parts(v: Any, w: int, h: int) -> list[tuple[str, list[Any], bool]]:
    """(class, bbox, image_level) for each annotation of one value."""
    if isinstance(v, str):
        return [(v, [0, 0, w, h], True)]
    if v and isinstance(v[0], str):
        return [(n, [0, 0, w, h], True) for n in v]
    return [(n, [x, y, bw, bh], False) for x, y, bw, bh, n in v]


def _parse_coco(
    doc: Any, where: str, resolve: Callable[..., str]
) -> tuple[list[str], list[dict[str, Any]], str | None]:
    """Validate a COCO document: (category names in file order, images, recorded task)."""
    _need(isinstance(doc, dict), f"{where}: a COCO file is a JSON object")
    for key in ("images", "annotations", "categories"):
        _need(isinstance(doc.get(key), list), f"{where}: '{key}' must be a list")
    cats: dict[int, str] = {}
    for k, c in enumerate(doc["categories"]):
        ok = isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)
        _need(ok, f"{where}: categories[{k}] needs an integer 'id' and a text 'name'")
        _need(c["id"] not in cats, f"{where}: category id {c['id']} appears twice")
        cats[c["id"]] = _text(f"{where}: category name", c["name"], empty_ok=True)
    images: dict[int, dict[str, Any]] = {}
    for k, im in enumerate(doc["images"]):
        ok = isinstance(im, dict) and _is_int(im.get("id")) and isinstance(im.get("file_name"), str)
        _need(ok, f"{where}: images[{k}] needs an integer 'id' and a text 'file_name'")
        _need(im["id"] not in images, f"{where}: image id {im['id']} appears twice")
        sid = resolve(im["file_name"], f"{where}: images[{k}]")
        images[im["id"]] = {
            "sid": sid,
            "file_name": im["file_name"],
            "classes": [],
            "boxes": [],
            "multi": im.get("multi_label") is True,
        }
    sids = [im["sid"] for im in images.values()]
    _need(len(set(sids)) == len(sids), f"{where}: two images are the same catalog sample")
    for k, a in enumerate(doc["annotations"]):
        at = f"{where}: annotations[{k}]"
        ok = isinstance(a, dict) and _is_int(a.get("image_id")) and _is_int(a.get("category_id"))
        _need(ok, f"{at} needs integer 'image_id' and 'category_id'")
        _need(a["image_id"] in images, f"{at}: no image with id {a['image_id']}")
        _need(a["category_id"] in cats, f"{at}: no category with id {a['category_id']}")
        im, name = images[a["image_id"]], cats[a["category_id"]]
        if a.get("image_level") is True:
            im["classes"].append(name)
            continue
        bbox = a.get("bbox")
        ok = isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
        _need(ok, f"{at}: 'bbox' must be [x, y, w, h] numbers")
        im["boxes"].append([*bbox, name])
    info = doc.get("info")
    wb = info.get("workbench") if isinstance(info, dict) else None
    task = wb.get("task") if isinstance(wb, dict) else None
    return list(cats.values()), list(images.values()), task if isinstance(task, str) else None


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


# ----------------------------------------------------------------------------------------- YOLO
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


# ------------------------------------------------------------------------------ safe file names
_FORBIDDEN = frozenset('/\\:*?"<>|')
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10)]
)
_MAX_BYTES = 100
_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}$")


def _sanitize(name: str, max_bytes: int) -> str:
    s = unicodedata.normalize("NFC", name)
    s = "".join(
        "_" if ch in _FORBIDDEN or (unicodedata.category(ch)[0] in "CZ" and ch != " ") else ch
        for ch in s
    )
    s = s.strip(" .")
    if s.split(".")[0].upper() in _RESERVED:
        s = "_" + s
    s = s.encode("utf-8")[:max_bytes].decode("utf-8", "ignore").rstrip(" .")
    return s or "_"


def _fold(s: str) -> str:
    return unicodedata.normalize("NFC", s).casefold()


def _uniquify(pairs: Iterable[tuple[str, str]], max_bytes: int = _MAX_BYTES) -> list[str]:
    """Safe names, unique case-insensitively; a name that had to change gets ``~<hash8>``."""
    taken: set[str] = set()
    out = []
    for original, wanted in pairs:
        s = _sanitize(wanted, max_bytes)
        if s != wanted or _fold(s) in taken:
            base = _sanitize(wanted, max_bytes - 9)
            for salt in range(1_000_000):
                key = original if salt == 0 else f"{original}\0{salt}"
                s = f"{base}~{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
                if _fold(s) not in taken:
                    break
        taken.add(_fold(s))
        out.append(s)
    return out


def safe_names(names: Iterable[str]) -> dict[str, str]:
    """Map names to unique names that are safe as one folder or file name on any OS.

    A name that is already safe stays as it is. Otherwise ``/ \\ : * ? " < > |``, control and
    format characters and unusual spaces become ``_``; leading and trailing dots and spaces go
    (no ``.``, ``..`` or hidden names); Windows device names (``CON``, ``NUL``, ...) get a ``_``
    prefix; the result is cut to 91 UTF-8 bytes and ``~`` plus 8 hex digits of the original's
    SHA-256 are appended, so different names stay different. Names are unique without regard
    to case (after Unicode NFC), as on macOS and Windows file systems.
    """
    names = list(dict.fromkeys(names))
    return dict(zip(names, _uniquify((n, n) for n in names), strict=True))


def _ext(name: str) -> str:
    m = _EXT.search(name)
    return m.group(0) if m else ""


def _safe_file_names(ids: Sequence[str]) -> dict[str, str]:
    """Sample id -> a flat, safe, unique file name that keeps a sane extension."""
    ids = list(dict.fromkeys(ids))
    exts = [_ext(i) for i in ids]
    wanted = [
        i[: len(i) - len(e)].strip("/").replace("/", "__") for i, e in zip(ids, exts, strict=True)
    ]
    stems = _uniquify(zip(ids, wanted, strict=True), _MAX_BYTES - 12)
    return {i: s + e for i, s, e in zip(ids, stems, exts, strict=True)}


def _inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refusing any part that could lead outside ``root`` (defence in depth)."""
    for p in parts:
        _need(
            p and p not in (".", "..") and not set(p) & {"/", "\\", "\0"},
            f"refusing the unsafe path part {p!r}",
        )
    path = root.joinpath(*parts)
    base = os.path.abspath(root)
    _need(os.path.commonpath([base, os.path.abspath(path)]) == base, "refusing to leave the export")
    return path


def _place(src: str, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "copy":
            shutil.copyfile(src, dst)
        elif mode == "symlink":
            os.symlink(os.path.abspath(src), dst)
        else:
            os.link(src, dst)
    except FileNotFoundError:
        raise LabelError(f"image file {src!r} is missing; rescan the catalog") from None
    except OSError as e:
        hint = " (hard links need one file system; use mode='copy')" if mode == "hardlink" else ""
        raise LabelError(f"cannot {mode} {src!r} into the export: {e}{hint}") from None


@contextlib.contextmanager
def _atomic_dir(out: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """Build a folder under a temporary name next to ``out``; rename it into place when done.

    With ``overwrite`` an existing ``out`` is renamed aside first and deleted after, so for a
    moment between two renames no ``out`` exists (POSIX cannot swap two folders atomically).
    """
    out = Path(out).absolute()
    _need(
        not out.is_symlink() and (not out.exists() or out.is_dir()),
        f"{str(out)!r} exists and is not a folder; choose another target",
    )
    _need(overwrite or not out.exists(), f"{str(out)!r} exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name[:40]}."
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=prefix, suffix=".tmp"))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=prefix, suffix=".old"))
            os.replace(out, old / "previous")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

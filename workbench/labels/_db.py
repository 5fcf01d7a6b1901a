"""Where the label store lives: a SQLite file or a PostgreSQL server, behind one small dialect.

The store's queries are written once (:mod:`workbench.labels._sqlite` holds them, with ``?``
placeholders); a :class:`Conn` runs them on either backend. We talk to PostgreSQL through
psycopg 3 directly rather than SQLAlchemy Core: the queries are already portable SQL (``RETURNING``,
``ON CONFLICT ... DO UPDATE``, partial indexes), so the only differences are the placeholder
style, how a transaction starts, the lock that serialises read-then-write transactions and the
clock; a dozen lines here, against a large dependency and a second query language.

Guarantees
----------
- **One dialect.** :meth:`Conn.execute` takes ``?`` placeholders on both backends;
  ``INSERT ... RETURNING id`` gives new ids; :meth:`Conn.lock` serialises the writers that read
  before they write (class codes, undo, assignments, leases): a no-op under SQLite's
  ``BEGIN IMMEDIATE`` (one writer at a time already), a transaction-scoped advisory lock on
  PostgreSQL, whose writers otherwise run concurrently (``READ COMMITTED``). Reads run on one
  snapshot (SQLite's deferred transaction, PostgreSQL's ``REPEATABLE READ READ ONLY``).
- **Durable on return.** SQLite: WAL with ``synchronous=FULL``. PostgreSQL: the commit returns
  after the server has flushed its WAL (``synchronous_commit=on``, the server's default, set
  for each session).
- **Busy never reaches the user.** Transactions are retried with jittered exponential back-off
  on SQLite's busy/locked and on PostgreSQL's serialization failures, deadlocks and lock
  time-outs, for up to ``retry_for`` seconds; then :class:`LabelError`. Every other database
  error is a :class:`LabelError` too.
- **Versioned schema.** Each backend applies its numbered migrations
  (:mod:`workbench.labels._migrations`) in the transaction that records them in
  ``schema_version``; concurrent first openings apply each once.
- **Fork-safe.** A connection is used only by the process that opened it.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import LabelError
from workbench.labels._checks import _short

T = TypeVar("T")

#: The environment variable that points every LabelStore opened from a Workspace at one server.
URL_VARIABLE = "WORKBENCH_LABELS_URL"
_LOCK_KEY = 0x57424C53  # the advisory lock of label-store writers ("WBLS")


def parse_target(target: Any) -> tuple[str, Path | None, str]:
    """``(backend, path, url)`` of a Workspace, a folder, a .db file, or a URL.

    ``sqlite:///relative.db`` and ``sqlite:////absolute.db`` name files; ``postgresql://...``
    (or ``postgres://...``) a server. A Workspace's store is ``$WORKBENCH_LABELS_URL`` when that
    is set, else its ``file("labels")``.
    """
    if not isinstance(target, (str, os.PathLike)):
        if hasattr(target, "file"):  # a Workspace: it owns the layout
            env = os.environ.get(URL_VARIABLE, "").strip()
            return parse_target(env) if env else parse_target(Path(target.file("labels")))
        raise LabelError(
            f"give a Workspace, a folder, a .db file path or a database URL, not {_short(target)}"
        )
    text = os.fspath(target)
    if isinstance(target, str) and text.startswith(("postgresql://", "postgres://")):
        return "postgresql", None, text
    if isinstance(target, str) and text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif isinstance(target, str) and "://" in text:
        raise LabelError(f"unknown database URL {text!r}: use sqlite:///file.db or postgresql://")
    p = Path(text).expanduser()
    if p.is_dir():
        from workbench.workspace import LAYOUT  # here: the workspace module imports the catalog

        p = p / LAYOUT["labels"]
    return "sqlite", p, f"sqlite:///{p}"


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}@{tail}"


class Conn:
    """One open connection and its dialect; the store's SQL is written with ``?`` placeholders."""

    def __init__(self, raw: Any, backend: str) -> None:
        self.raw, self.backend = raw, backend
        self.pg = backend == "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement; the cursor (``fetchone``/``fetchall``) comes back."""
        args = tuple(args)
        if self.pg:  # no parameters: psycopg leaves the text alone (a literal % stays)
            return self.raw.execute(self._sql(sql), args) if args else self.raw.execute(sql)
        return self.raw.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.pg:
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def lock(self) -> None:
        """Serialise this transaction with every other writer that takes the lock, until commit."""
        if self.pg:
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))

    def now(self) -> float:
        """Unix time on the database's clock (the server's, shared by every annotator)."""
        if self.pg:
            return float(
                self.raw.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0]
            )
        return time.time()

    @property
    def in_transaction(self) -> bool:
        if self.pg:
            import psycopg.pq

            return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        return self.raw.in_transaction


def _busy(e: Exception) -> bool | None:
    """True: retry; False: a database error to report; None: not a database error."""
    if isinstance(e, sqlite3.OperationalError):
        code = getattr(e, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return True
        msg = str(e).lower()
        return "locked" in msg or "busy" in msg
    if isinstance(e, sqlite3.DatabaseError):
        return False
    psycopg = _psycopg_or_none()
    if psycopg is not None and isinstance(e, psycopg.Error):
        errors = psycopg.errors
        return isinstance(
            e, (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)
        )
    return None


def _psycopg_or_none() -> Any:
    import sys

    return sys.modules.get("psycopg")  # only loaded when a PostgreSQL store was opened


class Database:
    """One label database: this process's connection and its retried transactions.

    Parameters
    ----------
    target
        What :func:`parse_target` takes.
    busy_timeout
        Seconds one attempt waits for another writer's lock (SQLite ``busy_timeout``,
        PostgreSQL ``lock_timeout``).
    retry_for
        Seconds a transaction keeps being retried (jittered back-off, 2 ms doubling to 250 ms).
    forget
        Called whenever state derived from earlier reads may be wrong: on a new connection and
        when a transaction rolls back (it may have cached what it was about to write).
    """

    def __init__(
        self,
        target: Any,
        *,
        busy_timeout: float,
        retry_for: float,
        forget: Callable[[], None] = lambda: None,
    ) -> None:
        self.backend, self.path, self.url = parse_target(target)
        self.busy_timeout = float(busy_timeout)
        self.retry_for = float(retry_for)
        self.retries = 0
        self._forget = forget
        self._lock = threading.RLock()
        self._con: Conn | None = None
        self._pid = -1

    @property
    def where(self) -> str:
        """The database, for messages (a file path, or the URL without its password)."""
        return str(self.path) if self.path is not None else safe_url(self.url)

    def close(self) -> None:
        """Close this process's connection (it reopens on next use)."""
        with self._lock:
            if self._con is not None and self._pid == os.getpid():
                with contextlib.suppress(Exception):
                    self._con.raw.close()
            self._con = None

    def connection(self) -> Conn:
        """This process's connection, opened (and the schema migrated) if needed."""
        from workbench.labels._migrations import migrate

        if self._con is not None and self._pid == os.getpid() and not self._broken():
            return self._con
        # A connection inherited through fork() must not be used (or closed) by the child.
        self._con, self._pid = None, os.getpid()
        self._forget()
        con = self._open_sqlite() if self.backend == "sqlite" else self._open_postgres()
        try:
            self._retry(lambda: self._transaction(con, migrate, "write"))
        except BaseException:
            con.raw.close()
            raise
        self._con = con
        return con

    def _broken(self) -> bool:
        # A lost server connection is reopened on next use (the failed call said so already).
        raw = self._con.raw if self._con is not None and self._con.pg else None
        return raw is not None and (raw.closed or raw.broken)

    def _open_sqlite(self) -> Conn:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as e:
            raise LabelError(f"cannot open label store {self.where!r}: {e}") from None
        try:
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = self._retry(lambda: raw.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise LabelError(
                    f"{self.where!r} cannot use SQLite's WAL mode (got {mode!r}); keep the "
                    "workspace on a local disk, not a network share"
                )
            raw.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit
        except BaseException:
            raw.close()
            raise
        return Conn(raw, "sqlite")

    def _open_postgres(self) -> Conn:
        try:
            import psycopg
        except ImportError:
            raise LabelError(
                "a postgresql:// label store needs psycopg 3: pip install 'psycopg[binary]'"
            ) from None
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise LabelError(
                f"cannot reach the label server {self.where!r}: {' '.join(str(e).split())}; "
                "check the URL "
                "(and $WORKBENCH_LABELS_URL) and that the server runs"
            ) from None
        ms = int(self.busy_timeout * 1000)
        raw.execute(f"SET lock_timeout = {ms}")
        raw.execute("SET synchronous_commit = on")
        raw.execute("SET client_min_messages = warning")
        return Conn(raw, "postgresql")

    def write(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` in one write transaction, committed before returning."""
        with self._lock:
            con = self.connection()
            return self._retry(lambda: self._transaction(con, fn, "write"))

    def read(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` on one consistent snapshot of the database."""
        with self._lock:
            con = self.connection()
            return self._retry(lambda: self._transaction(con, fn, "read"))

    def _transaction(self, con: Conn, fn: Callable[[Conn], T], how: str) -> T:
        if con.pg:
            con.raw.execute(
                "BEGIN" if how == "write" else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            )
        else:
            con.raw.execute("BEGIN IMMEDIATE" if how == "write" else "BEGIN DEFERRED")
        try:
            out = fn(con)
            con.raw.execute("COMMIT")
        except BaseException:
            self._forget()
            with contextlib.suppress(Exception):
                if con.in_transaction:
                    con.raw.execute("ROLLBACK")
            raise
        return out

    def _retry(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.002
        while True:
            try:
                return attempt()
            except Exception as e:
                busy = _busy(e)
                if busy is None:
                    raise
                if not busy:
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise LabelError(f"label store {self.where!r}: {msg}") from e
                if time.monotonic() + delay > deadline:
                    raise LabelError(
                        f"label store {self.where!r} stayed busy for {self.retry_for:.0f} s "
                        "(another process holds its write lock); nothing was written, try again"
                    ) from e
                self.retries += 1
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.25)

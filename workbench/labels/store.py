"""The LabelStore: every labeling action is an event appended to a database; nothing is ever lost.

The database is a SQLite file (the default: one per workspace) or a PostgreSQL server shared by a
team (``LabelStore("postgresql://...")``, or ``$WORKBENCH_LABELS_URL`` for every store opened
from a Workspace); the API and the guarantees below are the same on both
(:mod:`workbench.labels._db` says how each backend keeps them).

Guarantees
----------
- **Append-only.** ``label``, ``skip``, ``undo``, ``import``, ``model`` (a suggestion), ``review``,
  ``assign`` and ``gold`` (see :meth:`LabelStore.assign_batch`) and the class-schema events
  (``class_add``, ``class_rename``, ``class_merge``) are rows appended to one ``events`` table;
  the database's triggers refuse ``UPDATE`` and ``DELETE``. Current labels, the class list
  and progress are *derived* from the events.
- **Durable on return.** Each write is one transaction, committed before the method returns
  (SQLite: ``BEGIN IMMEDIATE`` in WAL mode with ``synchronous=FULL``; PostgreSQL: the commit
  waits for the server's WAL flush): an event id you were given survives a killed process, and
  a power cut.
- **Many writers.** Any number of processes (kernels, annotators) may write to one store at once.
  Each connection waits for the write lock (SQLite ``busy_timeout``, PostgreSQL
  ``lock_timeout``) and every transaction is retried with jittered exponential back-off on
  busy / locked / serialization failures for up to ``retry_for`` seconds, so "database is
  locked" never reaches the user; if the store stays locked that long, a :class:`LabelError`
  says so and nothing was written.
- **Stable class codes.** Classes have integer codes that never change and are never reused (a
  ``LabelEncoder`` whose codes never silently move). Values are stored *by code*, so renaming a
  class relabels nothing, and a merge makes the merged codes read as the target class.
- **All-or-nothing batches.** An import (or a consensus written back) and an assignment are
  checked row by row and appended in one transaction.
- **Older files open.** The schema is versioned (``schema_version``); a store written by an
  older version is upgraded in place by numbered migrations, once, in one transaction (see
  :mod:`workbench.labels._migrations`).
- **Leased work.** With a pool (:func:`workbench.quality.assignment.open_pool`), annotators
  ask :meth:`LabelStore.claim` for their next item under a lease (see
  :mod:`workbench.labels.leases`).

Values at the API use class *names*: ``"cat"``; ``["cat", "dog"]`` (a set: each class once,
in code order); or boxes ``[[x, y, w, h, "cat"], ...]`` in original-image pixels (the image as
:func:`workbench.io.decode` returns it, after EXIF orientation: the catalog's ``width`` and
``height``). The table and its stored values are described in :mod:`workbench.labels._sqlite`,
the class schema and value codec in :mod:`workbench.labels.schema`, the file formats in
:mod:`workbench.labels.formats` (``store.to_coco(...)`` and friends are those functions), the
reading methods (``current``, ``history``, ``progress``, ``stale``, ...) in
:mod:`workbench.labels.reads`.

The *current* label of a (sample, annotator, round, task) is its latest ``label`` / ``import`` /
``skip`` event that has not been undone; when that latest event is a ``skip``, the key has no
current label (the person's latest decision was to pass on the item).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from workbench.errors import LabelError
from workbench.fsutil import safe_names
from workbench.labels import _sqlite as sql
from workbench.labels import assignments as _assignments
from workbench.labels import batch as _batch
from workbench.labels import leases as _leases
from workbench.labels import reads as _reads
from workbench.labels._catalog import CatalogIndex
from workbench.labels._checks import (
    _as_list,
    _extra,
    _is_int,
    _is_number,
    _need,
    _round,
    _seconds,
    _short,
    _text,
)
from workbench.labels._db import Conn, Database
from workbench.labels._sqlite import (
    CONSENSUS_PREFIX,
    EVENT_KINDS,
    GOLD_PREFIX,
    SOURCES,
    insert,
)
from workbench.labels.batch import (
    AssignRow,
    ImportRow,
    check_source,
)
from workbench.labels.formats import coco, csv, imagefolder, yolo
from workbench.labels.formats._common import EXPORT_MODES
from workbench.labels.schema import _Schema

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

__all__ = [
    "CONSENSUS_PREFIX", "EVENT_KINDS", "EXPORT_MODES", "GOLD_PREFIX", "SOURCES", "VERDICTS",
    "AssignRow", "ImportRow", "LabelError", "LabelStore", "safe_names",
]  # fmt: skip

T = TypeVar("T")

#: What a reviewer may say about a label.
VERDICTS = ("accept", "reject", "unsure")


class LabelStore:
    """Append-only, crash-safe, multi-process label events in a SQLite file or on PostgreSQL.

    Parameters
    ----------
    path_or_workspace
        A :class:`~workbench.workspace.Workspace` (the store is ``$WORKBENCH_LABELS_URL`` when
        that is set, else its ``file("labels")``), a folder (the same file name inside it), the
        database file itself, or a URL: ``sqlite:///path/labels.db`` or
        ``postgresql://user:password@host:port/database`` (a team's shared server; needs
        psycopg 3). Created (the file, or the tables in that database) if missing.
    catalog
        When given, labels for sample ids not in it raise :class:`LabelError`, each event records
        the sample's content hash from it, boxes are checked against its width and height, and
        :meth:`stale` compares hashes. Exports and imports use it unless given another one.
    busy_timeout
        Seconds one attempt waits for another process's write lock (SQLite ``busy_timeout``,
        PostgreSQL ``lock_timeout``).
    retry_for
        Seconds a transaction keeps being retried (jittered exponential back-off, 2 ms doubling
        to 250 ms) while the database is busy or locked, before :class:`LabelError`.

    Attributes
    ----------
    path : pathlib.Path or None
        The database file (None on PostgreSQL).
    url : str
        The database as a URL (``sqlite:///...`` or ``postgresql://...``).
    backend : str
        ``"sqlite"`` or ``"postgresql"``.
    catalog : Catalog or None
        The catalog that sample ids, hashes and image sizes come from.
    retries : int
        How often this object retried a busy transaction (a diagnostic).

    Notes
    -----
    The class is long (about 550 lines) because it is the public API of one event log: some
    20 methods that write or read events (classes, label, skip, undo, suggest, review, current,
    history, progress, stale), each argument checks, one transaction and the decoding of its
    rows, most with a full docstring. What they share lives elsewhere: the SQL and the retried
    transactions in :mod:`~workbench.labels._sqlite`, the class schema and value codec in
    :mod:`~workbench.labels.schema`, catalog lookups in :mod:`~workbench.labels._catalog`. The
    batch entry points (:mod:`~workbench.labels.batch`), assignments
    (:mod:`~workbench.labels.assignments`) and file formats (:mod:`~workbench.labels.formats`)
    are functions that take the store first; the methods of those names are those functions.
    Spreading the event methods over mixins would hide the size, not reduce it.

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
        self.catalog = catalog
        self._schema_key: tuple | None = None
        self._schema_cache = _Schema()
        self._index = CatalogIndex()
        self._db = Database(
            path_or_workspace, busy_timeout=busy_timeout, retry_for=retry_for, forget=self._forget
        )
        self.path, self.url, self.backend = self._db.path, self._db.url, self._db.backend
        self._db.connection()  # create the file and the schema now, so errors show up here

    def __repr__(self) -> str:
        return f"LabelStore({self._db.where!r})"

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's connection (the store reopens it on next use)."""
        self._db.close()

    @property
    def busy_timeout(self) -> float:
        return self._db.busy_timeout

    @property
    def retry_for(self) -> float:
        return self._db.retry_for

    @property
    def retries(self) -> int:
        return self._db.retries

    # ------------------------------------------------------------------ derived state
    def _forget(self) -> None:
        # A rolled-back transaction may have cached classes it added; a new connection may see
        # another database state: replay the schema on next use.
        self._schema_key = None

    def _schema(self, con: Conn) -> _Schema:
        # Events are append-only and ids only grow, so (count, max id) names one schema state.
        key = sql.schema_key(con)
        if key != self._schema_key:
            self._schema_cache, self._schema_key = _Schema.replay(sql.schema_events(con)), key
        return self._schema_cache

    def _read(self, fn: Callable[[Conn], T]) -> T:
        return self._db.read(fn)

    # ------------------------------------------------------------------ samples
    def _sample(
        self, sample_id: Any, catalog: Catalog | None = None
    ) -> tuple[str, str | None, tuple[int, int] | None]:
        """Validated ``(id, hash, (width, height))`` from ``catalog``, else the store's."""
        return self._index.sample(sample_id, catalog if catalog is not None else self.catalog)

    def need_catalog(self, catalog: Catalog | None = None) -> Catalog:
        """The catalog to use: ``catalog``, else the store's; :class:`LabelError` if neither."""
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

        def tx(con: Conn) -> list[int]:
            s = self._add_missing(con, wanted)
            return [s.codes[n] for n in wanted]

        return self._db.write(tx)

    def _add_missing(self, con: Conn, names: Iterable[str]) -> _Schema:
        names = list(names)
        s = self._schema(con)
        if all(n in s.codes for n in names):
            return s
        con.lock()  # codes come from what is there: one writer at a time picks them
        s = self._schema(con)
        code = s.next_code
        for name in dict.fromkeys(names):
            if name not in s.codes:
                _text("class name", name, empty_ok=True)
                insert(con, "class_add", value={"name": name, "code": code})
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

        def tx(con: Conn) -> int:
            con.lock()
            s = self._schema(con)
            code = s.code(old)
            if new in s.codes:
                raise LabelError(f"class {new!r} exists already; merge_classes() joins classes")
            insert(con, "class_rename", value={"code": code, "old": old, "new": new})
            return code

        return self._db.write(tx)

    def merge_classes(self, sources: str | Iterable[str], into: str) -> int:
        """Fold the classes ``sources`` into ``into`` (added if new); returns ``into``'s code.

        The merged codes are retired, never reused: labels that carry them read as ``into``
        and :meth:`decode` maps them to ``into``; :meth:`encode` no longer knows the old names.
        """
        src = _as_list(sources)
        into = _text("class name", into, empty_ok=True)

        def tx(con: Conn) -> int:
            con.lock()
            s = self._schema(con)
            codes = sorted({s.code(n) for n in src} - {s.codes.get(into)})
            if not codes:
                raise LabelError(f"nothing to merge into {into!r}: name other existing classes")
            s = self._add_missing(con, [into])
            value = {"codes": codes, "names": [s.names[c] for c in codes], "into": s.codes[into]}
            insert(con, "class_merge", value=value)
            return s.codes[into]

        return self._db.write(tx)

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
        extra: Mapping[str, Any] | None = None,
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
            ``"human"``, ``"model"`` (a prediction accepted as a label), ``"import"`` or
            ``"consensus"`` (a consensus written back: the annotator is ``consensus:<method>``).
        extra
            A dict of JSON values stored with the event (e.g. a consensus's ``method``,
            ``confidence`` and ``events``); :meth:`current` and :meth:`history` give it back.
            Text keys, finite values, at most :data:`~workbench.labels._checks.MAX_EXTRA`
            characters as JSON.

        Raises
        ------
        LabelError
            Unknown sample (with a catalog), unknown class, malformed value, a bad ``extra``, or
            a source that does not fit the annotator's name; nothing is written.
        """
        check_source(_text("annotator", annotator), source)
        more = _extra(extra)
        kind = "import" if source == "import" else "label"
        return self._append(
            kind, sample_id, value, annotator, round, task, seconds, source, lambda s: more
        )

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
            **_by(("annotator", annotator), round, task),
            "source": source,
            "seconds": _seconds(seconds),
        }

        def tx(con: Conn) -> int:
            s = self._schema(con)
            stored = None if kind == "skip" else s.store(value, size)
            more = None if extra is None else extra(s)
            if kind in sql.DECISION_KINDS:  # a leased item's lease is settled with its decision
                _leases.settle(con, sid, fields["who"], fields["rnd"], fields["task"])
            return insert(con, kind, value=stored, extra=more, **fields)

        return self._db.write(tx)

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
        sid = None if sample_id is None else _text("sample id", sample_id)

        def tx(con: Conn) -> int | None:
            con.lock()  # two undos at once must not cancel the same decision twice
            row = sql.latest_decision(con, who, rnd, task, sid)
            if row is None:
                return None
            return insert(
                con, "undo", sid=row[1], hash=row[2], who=who, rnd=rnd, task=task, target=row[0]
            )

        return self._db.write(tx)

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
            **_by(("reviewer", reviewer), round, task),
            "value": verdict,
            "target": target,
            "extra": extra,
        }

        def tx(con: Conn) -> int:
            if target is not None:
                row = sql.event_sample(con, target)
                _need(row is not None and row[0] == sid, f"event {target} is not on {sid!r}")
            return insert(con, "review", **fields)

        return self._db.write(tx)

    # ------------------------------------------------------------------ reading
    def events_count(self, kind: str | None = None) -> int:
        """Number of events of one ``kind``, or of all kinds (schema events included)."""
        return self._read(lambda con: sql.count_events(con, kind))

    # the other reads live in reads.py
    current = _reads.current
    _current = _reads._current
    history = _reads.history
    suggestions = _reads.suggestions
    labeled_ids = _reads.labeled_ids
    progress = _reads.progress
    last_position = _reads.last_position
    stale = _reads.stale

    # ------------------------------------------------------------------ batches (formats)
    export_batch = _batch.export_batch
    import_batch = _batch.import_batch

    # ------------------------------------------------------------------ assignments
    assign_batch = _assignments.assign_batch
    assignments = _assignments.assignments

    # ------------------------------------------------------------------ pools and leases
    add_pool = _leases.add_pool
    pool_status = _leases.pool_status
    leased_ids = _leases.leased_ids

    def claim(
        self, annotator: str, *, round: int = 0, task: str = "class", lease: float = 600.0
    ) -> str | None:
        """The next item of the pool for ``annotator``, leased for ``lease`` seconds; None when
        the pool has nothing left for them (see :mod:`workbench.labels.leases`)."""
        who, rnd, task = _text("annotator", annotator), _round(round), _text("task", task)
        _need(_is_number(lease) and lease > 0, f"lease is a number of seconds > 0, got {lease!r}")
        return self._db.write(lambda con: _leases.claim(con, who, rnd, task, float(lease)))

    def has_pool(self, *, round: int = 0, task: str = "class") -> bool:
        """Whether ``round`` of ``task`` is served from a pool with leases."""
        return self._read(lambda con: _leases.has_pool(con, _round(round), _text("task", task)))

    # ------------------------------------------------------------------ formats
    to_csv = csv.to_csv
    import_csv = csv.import_csv
    to_coco = coco.to_coco
    import_coco = coco.import_coco
    to_yolo = yolo.to_yolo
    import_yolo = yolo.import_yolo
    to_imagefolder = imagefolder.to_imagefolder


def _by(who: tuple[str, Any], round: Any, task: Any) -> dict[str, Any]:
    """The checked ``who``, ``rnd`` and ``task`` columns of an event; ``who`` is (role, name)."""
    return {"who": _text(*who), "rnd": _round(round), "task": _text("task", task)}

"""A work pool with leases: concurrent annotators ask the store for their next item.

:func:`workbench.quality.assignment.open_pool` plans a pool (overlap and gold as for a fixed
assignment) and records it with :func:`add_pool`; each annotator's ``LabelingSession``
then calls :func:`claim` for its next item. The store's ``label`` / ``skip`` settle the lease in
the same transaction as the decision.

Guarantees
----------
- **No double work.** A regular item is served to at most ``needed`` annotators at a time (1
  unless it is one of the overlap items); a claim is one transaction under the writers' lock,
  so two annotators asking at the same instant get different items.
- **Leases expire.** A claim holds its item for ``lease`` seconds on the database's clock (the
  server's on PostgreSQL, shared by everyone). An annotator who disappears loses the item when
  the lease runs out, and the next claim hands it to someone else. A decision settles the lease
  for good; a decision after the lease ran out still counts if nobody took the item meanwhile,
  and is refused (:class:`LabelError`, nothing written) if the item went to others.
- **Gold as planned.** Gold items (known answers) are mixed into each annotator's stream at the
  pool's ``gold_rate`` (within one item of it at every point), any number of annotators may get
  the same gold item, the least served first; nobody gets the same item twice.
- **Append-only plan.** ``pools`` and ``pool_items`` refuse ``UPDATE`` and ``DELETE`` like
  events; ``leases`` is state (who holds what until when), the one table updated in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import LabelError

if TYPE_CHECKING:
    from workbench.labels._db import Conn
    from workbench.labels.store import LabelStore

__all__ = [
    "DONE", "PoolItem", "add_pool", "claim", "has_pool", "leased_ids", "pool_status", "settle",
]  # fmt: skip

#: The ``expires`` of a lease settled by a decision: it never runs out.
DONE = 1e300


@dataclass(frozen=True)
class PoolItem:
    """One item of a pool: served to ``needed`` annotators, or a ``gold`` item (any number)."""

    sample_id: str
    needed: int = 1
    gold: bool = False


def has_pool(con: Conn, round: int, task: str) -> bool:
    row = con.execute("SELECT 1 FROM pools WHERE round = ? AND task = ?", (round, task)).fetchone()
    return row is not None


def add_pool(
    store: LabelStore,
    items: Sequence[PoolItem],
    *,
    round: int,
    task: str,
    gold_rate: float,
    gold: dict[str, Any] | None = None,
    gold_by: str,
) -> int:
    """Record a pool (its items in serving order) and its gold answers: one transaction.

    A round and task have one pool, and not both a pool and a fixed assignment.
    """
    from workbench.labels import _sqlite as sql
    from workbench.labels.batch import gold_events

    ids = [p.sample_id for p in items]
    if len(set(ids)) != len(ids):
        raise LabelError("a pool lists each item once")
    rows = [(round, task, store._sample(p.sample_id)[0], k, int(p.needed), int(bool(p.gold)))
            for k, p in enumerate(items)]  # fmt: skip
    answers = list((gold or {}).items())

    def tx(con: Conn) -> int:
        con.lock()
        if has_pool(con, round, task) or sql.has_assignment(con, round, task):
            raise LabelError(
                f"round {round} of task {task!r} has a pool or an assignment already; use a "
                "new round"
            )
        s = store._schema(con)
        sql.insert_many(con, gold_events(answers, store._index, store.catalog, s, gold_by,
                                         round, task))  # fmt: skip
        con.execute(
            "INSERT INTO pools (round, task, gold_rate, gold_by, created) VALUES (?, ?, ?, ?, ?)",
            (round, task, float(gold_rate), gold_by, con.now()),
        )
        con.executemany(
            "INSERT INTO pool_items (round, task, sample_id, position, needed, gold) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    return store._db.write(tx)


_ACTIVE = "expires > ?"  # a lease that has not run out (a settled one never does)


def claim(con: Conn, annotator: str, round: int, task: str, lease: float) -> str | None:
    """The next item for ``annotator`` (leased for ``lease`` seconds), or None when none is left.

    An item this annotator holds and has not decided comes first (its lease is renewed).
    """
    con.lock()
    now = con.now()
    key = (round, task)
    row = con.execute("SELECT gold_rate FROM pools WHERE round = ? AND task = ?", key).fetchone()
    if row is None:
        raise LabelError(f"round {round} of task {task!r} has no pool: open one first")
    rate = float(row[0])
    held = con.execute(
        "SELECT l.sample_id FROM leases l JOIN pool_items p ON p.round = l.round "
        "AND p.task = l.task AND p.sample_id = l.sample_id WHERE l.round = ? AND l.task = ? "
        "AND l.annotator = ? AND l.expires > ? AND l.expires < ? ORDER BY p.position LIMIT 1",
        (*key, annotator, now, DONE),
    ).fetchone()
    if held is not None:
        _lease(con, held[0], annotator, key, now + lease, now)
        return str(held[0])
    counts = dict(
        con.execute(
            "SELECT p.gold, count(*) FROM leases l JOIN pool_items p ON p.round = l.round "
            "AND p.task = l.task AND p.sample_id = l.sample_id WHERE l.round = ? AND l.task = ? "
            f"AND l.annotator = ? AND l.{_ACTIVE} GROUP BY p.gold",
            (*key, annotator, now),
        ).fetchall()
    )
    n_gold, n_all = int(counts.get(1, 0)), sum(int(v) for v in counts.values())
    regular = _free_regular(con, annotator, key, now)
    if regular is None:
        return None  # gold is only ever mixed into regular work
    pick = regular
    if rate > 0 and n_gold < math.floor(rate * (n_all + 1) + 0.5):
        pick = _least_served_gold(con, annotator, key, now) or regular
    _lease(con, pick, annotator, key, now + lease, now)
    return pick


def _free_regular(con: Conn, annotator: str, key: tuple, now: float) -> str | None:
    row = con.execute(
        "SELECT p.sample_id FROM pool_items p WHERE p.round = ? AND p.task = ? AND p.gold = 0 "
        "AND NOT EXISTS (SELECT 1 FROM leases m WHERE m.round = p.round AND m.task = p.task "
        f"AND m.sample_id = p.sample_id AND m.annotator = ? AND m.{_ACTIVE}) "
        "AND (SELECT count(*) FROM leases o WHERE o.round = p.round AND o.task = p.task "
        f"AND o.sample_id = p.sample_id AND o.{_ACTIVE}) < p.needed "
        "ORDER BY p.position LIMIT 1",
        (*key, annotator, now, now),
    ).fetchone()
    return None if row is None else str(row[0])


def _least_served_gold(con: Conn, annotator: str, key: tuple, now: float) -> str | None:
    row = con.execute(
        "SELECT p.sample_id FROM pool_items p WHERE p.round = ? AND p.task = ? AND p.gold = 1 "
        "AND NOT EXISTS (SELECT 1 FROM leases m WHERE m.round = p.round AND m.task = p.task "
        "AND m.sample_id = p.sample_id AND m.annotator = ?) "
        "ORDER BY (SELECT count(*) FROM leases o WHERE o.round = p.round AND o.task = p.task "
        f"AND o.sample_id = p.sample_id AND o.{_ACTIVE}), p.position LIMIT 1",
        (*key, annotator, now),
    ).fetchone()
    return None if row is None else str(row[0])


def _lease(con: Conn, sid: str, who: str, key: tuple, expires: float, now: float) -> None:
    con.execute(
        "INSERT INTO leases (round, task, sample_id, annotator, expires, taken) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (round, task, sample_id, annotator) "
        "DO UPDATE SET expires = excluded.expires",
        (*key, sid, who, expires, now),
    )


def settle(con: Conn, sid: str, who: str, round: int, task: str) -> None:
    """Inside a decision's transaction: the lease on ``sid`` becomes permanent, or LabelError
    when the item is in a pool, ``who``'s lease on it ran out and others took it."""
    key = (round, task)
    item = con.execute(
        "SELECT needed, gold FROM pool_items WHERE round = ? AND task = ? AND sample_id = ?",
        (*key, sid),
    ).fetchone()
    if item is None:
        return
    con.lock()
    now = con.now()
    mine = con.execute(
        "SELECT expires FROM leases WHERE round = ? AND task = ? AND sample_id = ? "
        "AND annotator = ?",
        (*key, sid, who),
    ).fetchone()
    if mine is None or float(mine[0]) <= now:
        others = con.execute(
            "SELECT count(*) FROM leases WHERE round = ? AND task = ? AND sample_id = ? "
            f"AND annotator != ? AND {_ACTIVE}",
            (*key, sid, who, now),
        ).fetchone()[0]
        if not item[1] and int(others) >= int(item[0]):
            raise LabelError(
                f"{sid!r} is not yours any more: your lease ran out and another annotator took "
                "it; nothing was recorded, go on with your next item"
            )
    _lease(con, sid, who, key, DONE, now)


def pool_status(store: LabelStore, *, round: int = 0, task: str = "class") -> dict[str, Any]:
    """``items`` and ``gold`` in the pool; ``held`` (leases running now) and ``done`` (settled)
    per annotator."""

    def q(con: Conn) -> dict[str, Any]:
        key = (round, task)
        now = con.now()
        n = con.execute(
            "SELECT count(*), coalesce(sum(gold), 0) FROM pool_items WHERE round = ? AND task = ?",
            key,
        ).fetchone()
        rows = con.execute(
            "SELECT annotator, sum(CASE WHEN expires >= ? THEN 1 ELSE 0 END), "
            "sum(CASE WHEN expires > ? AND expires < ? THEN 1 ELSE 0 END) FROM leases "
            "WHERE round = ? AND task = ? GROUP BY annotator ORDER BY annotator",
            (DONE, now, DONE, *key),
        ).fetchall()
        return {
            "items": int(n[0]),
            "gold": int(n[1]),
            "done": {r[0]: int(r[1]) for r in rows},
            "held": {r[0]: int(r[2]) for r in rows},
        }

    return store._read(q)


def leased_ids(
    store: LabelStore, annotator: str, *, round: int = 0, task: str = "class"
) -> list[str]:
    """The items ``annotator`` holds or has settled in the pool, in the order they were taken."""

    def q(con: Conn) -> list[str]:
        rows = con.execute(
            "SELECT sample_id FROM leases WHERE round = ? AND task = ? AND annotator = ? "
            f"AND {_ACTIVE} ORDER BY taken, sample_id",
            (round, task, annotator, con.now()),
        ).fetchall()
        return [str(r[0]) for r in rows]

    return store._read(q)

"""Assignment: who labels which item in a round, with overlap and gold items, recorded in the store.

:func:`plan_assignment` splits items among annotators (pure, deterministic per ``seed``);
:func:`assign` plans and records it in the store in one transaction (``assign`` events, and the
gold answers as ``gold`` events that no labeling session can read). A
:class:`~workbench.labels.session.LabelingSession` for annotator ``a`` in that round and task then
serves only ``a``'s items, blind.

How the split works
-------------------
- ``round(overlap * n)`` of the ``n`` regular items (gold items are not regular) go to
  ``per_item`` annotators each: the least loaded so far, ties broken by a fresh seeded draw per
  item, so every pair of annotators shares items about equally often (what pairwise agreement
  needs) with any number of annotators. The other items go to one annotator each, again the
  least loaded. Regular loads end within one item of each other.
- Gold items (known answers) are mixed into each annotator's share at ``gold_rate``: annotator
  ``a`` with ``n_a`` regular items gets ``round(gold_rate * n_a / (1 - gold_rate))`` gold items,
  so that gold is ``gold_rate`` of their queue (within one item).
- Only as many pool items serve as gold as the fullest queue needs (``G``, the fewest that
  suffice once the rest are regular); they are the first ``G`` of a seeded shuffle of the pool,
  and each queue draws the ones drawn least so far (ties by seed), so every one of them is
  drawn. The other pool items are **regular** items like any other (their known answers are
  not recorded): no item to label is left unassigned. Only when the queues together need fewer
  than ``G`` gold items (tiny shares) does a never-drawn one also become regular, one more item
  for the least loaded annotator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_int, check_probability
from workbench.errors import ParameterError
from workbench.labels import CONSENSUS_PREFIX, GOLD_PREFIX, AssignRow

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore

__all__ = ["ASSIGNMENT_COLUMNS", "POOL_COLUMNS", "assign", "assignments", "gold_accuracy",
           "gold_answers", "open_pool", "plan_assignment", "plan_pool"]  # fmt: skip

#: Columns of an assignment table: one row per (item, annotator).
ASSIGNMENT_COLUMNS = ["id", "annotator", "gold", "overlap"]
#: Columns of a pool plan: one row per item, in serving order.
POOL_COLUMNS = ["id", "gold", "overlap"]


def _names(annotators: Any) -> list[str]:
    if isinstance(annotators, str) or not isinstance(annotators, Iterable):
        raise ParameterError(f"annotators must be a list of names, got {annotators!r}")
    names = list(annotators)
    if not names:
        raise ParameterError("give at least one annotator")
    for a in names:
        if not isinstance(a, str) or not a.strip():
            raise ParameterError(f"every annotator must be a non-empty name, got {a!r}")
        if a.startswith((CONSENSUS_PREFIX, GOLD_PREFIX)):
            raise ParameterError(f"{a!r}: names starting with {CONSENSUS_PREFIX!r} or "
                                 f"{GOLD_PREFIX!r} are reserved")  # fmt: skip
    if len(set(names)) != len(names):
        raise ParameterError("annotator names must be distinct")
    return names


def _items(items: Any) -> list[str]:
    from workbench.catalog import Catalog

    if isinstance(items, Catalog):  # its readable samples
        df = items.df
        return df.loc[df["status"] == "ok", "id"].astype(str).tolist()
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise ParameterError(f"items must be a Catalog or a list of sample ids, got {items!r}")
    out = list(items)
    if not all(isinstance(i, str) and i for i in out):
        raise ParameterError("every item must be a sample id (non-empty text)")
    if len(set(out)) != len(out):
        raise ParameterError("items must be distinct sample ids")
    return out


def plan_assignment(
    items: Catalog | Sequence[str],
    annotators: Sequence[str],
    *,
    overlap: float = 0.2,
    per_item: int = 2,
    gold: Mapping[str, Any] | None = None,
    gold_rate: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Split ``items`` among ``annotators`` (see the module notes); nothing is written.

    Parameters
    ----------
    items
        The samples to label: a Catalog (its readable ids) or a list of ids.
    annotators
        Distinct names.
    overlap
        Fraction (0 to 1) of the regular items labeled by ``per_item`` annotators.
    per_item
        Annotators per overlapping item (2 to the number of annotators).
    gold
        Known answers, sample id → label. As many as the queues need serve as gold, mixed
        in at ``gold_rate``; the rest (and all of them when ``gold_rate`` is 0) are regular
        items, so every item is assigned (see the module notes).
    gold_rate
        Share of each annotator's queue that is gold (0 to below 1; needs ``gold``).
    seed
        The same inputs and seed give the same plan.

    Returns
    -------
    pandas.DataFrame
        :data:`ASSIGNMENT_COLUMNS`: ``id, annotator, gold, overlap`` (``overlap``: how many
        annotators got that item), regular items first in the seeded order.

    Raises
    ------
    ParameterError
        Bad names, ids or numbers; too few annotators for ``per_item``; too few gold items for
        ``gold_rate``.
    """
    names = _names(annotators)
    ids = _items(items)
    overlap = check_probability(overlap, "overlap")
    gold_rate = check_probability(gold_rate, "gold_rate")
    seed = check_int(seed, "seed", low=0)
    if gold is not None and not isinstance(gold, Mapping):
        raise ParameterError("gold maps sample ids to their known answers (a dict)")
    pool = list(gold or {})
    if not all(isinstance(i, str) and i for i in pool):
        raise ParameterError("gold keys must be sample ids (non-empty text)")
    if gold_rate >= 1:
        raise ParameterError("gold_rate must be below 1: annotators need items that are not gold")
    if gold_rate > 0 and not pool:
        raise ParameterError("gold_rate > 0 needs gold={sample id: known answer, ...}")
    m = len(names)
    per_item = check_int(per_item, "per_item", low=2)
    in_pool = set(pool)
    in_items = set(ids)
    base = [i for i in ids if i not in in_pool]
    rng = np.random.default_rng(seed)
    shuffled = [pool[k] for k in rng.permutation(len(pool))]
    n_gold = _gold_needed(shuffled, in_items, len(base), m, overlap, per_item, gold_rate)
    used = shuffled[:n_gold]
    spare = set(shuffled[n_gold:]) & in_items  # pool items no queue needs: regular items
    regular = [i for i in ids if i not in in_pool or i in spare]
    n = len(regular)
    if n == 0:
        raise ParameterError("there are no items to assign (every item is a gold item)")
    n_over = int(np.rint(overlap * n))
    if n_over and per_item > m:
        raise ParameterError(
            f"per_item={per_item} needs at least {per_item} annotators, got {m}; lower "
            "per_item or add annotators"
        )
    order = [regular[k] for k in rng.permutation(n)]
    load = np.zeros(m, dtype=np.int64)
    rows: list[tuple[str, str, bool, int]] = []
    for sid in order[:n_over]:
        team = np.argsort(load * m + rng.permutation(m), kind="stable")[:per_item]
        for a in sorted(team.tolist()):
            rows.append((sid, names[a], False, per_item))
            load[a] += 1
    rank = rng.permutation(m)  # tie-break among equally loaded annotators

    def single(sid: str) -> None:
        a = int(np.argmin(load * m + rank))
        rows.append((sid, names[a], False, 1))
        load[a] += 1

    for sid in order[n_over:]:
        single(sid)
    picks: dict[int, list[str]] = {}
    if used:
        drawn = np.zeros(len(used), dtype=np.int64)
        wanted = np.rint(gold_rate * load / (1.0 - gold_rate)).astype(np.int64)
        for a in rng.permutation(m).tolist():
            # The least drawn first, so that every item serving as gold is drawn by someone.
            best = np.lexsort((rng.random(len(used)), drawn))[: wanted[a]]
            drawn[best] += 1
            picks[a] = [used[k] for k in sorted(best.tolist())]
        for k in np.flatnonzero(drawn == 0).tolist():
            if used[k] in in_items:
                single(used[k])
    times = pd.Series([s for p in picks.values() for s in p], dtype=object).value_counts()
    for a in range(m):
        rows += [(sid, names[a], True, int(times[sid])) for sid in picks.get(a, [])]
    return pd.DataFrame(rows, columns=ASSIGNMENT_COLUMNS)


def _gold_needed(
    shuffled: list[str],
    items: set[str],
    n_base: int,
    m: int,
    overlap: float,
    per_item: int,
    rate: float,
) -> int:
    """How many pool items serve as gold: the fewest ``G`` that the fullest queue's share fits,
    the pool items after the first ``G`` being regular (so fewer gold means more regular items
    and a larger share: the least fixed point of a decreasing map)."""
    if rate <= 0 or not shuffled:
        return 0
    # Regular loads end within one item of each other: the fullest is ceil(total / m).
    spare = [*np.cumsum([s in items for s in reversed(shuffled)])[::-1].tolist(), 0]
    for g in range(len(shuffled) + 1):
        n = n_base + spare[g]
        total = n + int(np.rint(overlap * n)) * (per_item - 1 if per_item <= m else 0)
        need = int(np.rint(rate * -(-total // m) / (1.0 - rate)))
        if need <= g:
            return g
    raise ParameterError(
        f"gold_rate={rate} gives the fullest queue {need} gold items but gold has only "
        f"{len(shuffled)}; add gold answers or lower gold_rate"
    )


def assign(
    store: LabelStore,
    annotators: Sequence[str],
    items: Catalog | Sequence[str] | None = None,
    *,
    overlap: float = 0.2,
    per_item: int = 2,
    gold: Mapping[str, Any] | None = None,
    gold_rate: float = 0.0,
    seed: int = 0,
    round: int = 0,
    task: str = "class",
    gold_by: str = f"{GOLD_PREFIX}reference",
) -> pd.DataFrame:
    """Plan an assignment (:func:`plan_assignment`) and record it in ``store``: one transaction.

    ``items`` defaults to the store's catalog. The plan becomes ``assign`` events of ``round``
    and ``task``; the answers of the gold items handed out become ``gold`` events by
    ``gold_by``. A round and task have one assignment: assigning again raises
    :class:`~workbench.errors.LabelError` (use a new round). On any error nothing is written.

    Returns
    -------
    pandas.DataFrame
        The plan (:data:`ASSIGNMENT_COLUMNS`).
    """
    if not hasattr(store, "assign_batch"):
        raise ParameterError(f"store must be a LabelStore, got {type(store).__name__}")
    if items is None:
        items = store.need_catalog()
    plan = plan_assignment(
        items, annotators, overlap=overlap, per_item=per_item, gold=gold, gold_rate=gold_rate,
        seed=seed,
    )  # fmt: skip
    used = dict.fromkeys(plan.loc[plan["gold"], "id"])
    rows = [
        AssignRow(sid, who, bool(g), int(k))
        for sid, who, g, k in plan.itertuples(index=False, name=None)
    ]
    answers = {sid: gold[sid] for sid in used} if gold else None
    store.assign_batch(rows, round=round, task=task, gold=answers, gold_by=gold_by)
    return plan


def plan_pool(
    items: Catalog | Sequence[str],
    *,
    overlap: float = 0.2,
    per_item: int = 2,
    gold: Mapping[str, Any] | None = None,
    gold_rate: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A pool for leased assignment (:func:`open_pool`): the items in a seeded serving order.

    ``round(overlap * n)`` of the ``n`` regular items are to be labeled by ``per_item``
    annotators (``overlap`` column), the others by one. With ``gold_rate > 0`` every item of
    ``gold`` is a gold item (served at ``gold_rate`` of each annotator's stream, to any number
    of annotators); with ``gold_rate`` 0 the gold answers are not used and those items are
    regular. Nothing is written. Parameters as in :func:`plan_assignment`, without annotators:
    whoever asks the store gets the next item.
    """
    ids = _items(items)
    overlap = check_probability(overlap, "overlap")
    gold_rate = check_probability(gold_rate, "gold_rate")
    seed = check_int(seed, "seed", low=0)
    per_item = check_int(per_item, "per_item", low=2)
    if gold is not None and not isinstance(gold, Mapping):
        raise ParameterError("gold maps sample ids to their known answers (a dict)")
    if gold_rate >= 1:
        raise ParameterError("gold_rate must be below 1: annotators need items that are not gold")
    pool = list(gold or {}) if gold_rate > 0 else []
    if gold_rate > 0 and not pool:
        raise ParameterError("gold_rate > 0 needs gold={sample id: known answer, ...}")
    in_pool = set(pool)
    regular = [i for i in ids if i not in in_pool]
    if not regular:
        raise ParameterError("there are no items to assign (every item is a gold item)")
    rng = np.random.default_rng(seed)
    order = [regular[k] for k in rng.permutation(len(regular))]
    n_over = int(np.rint(overlap * len(order)))
    rows = [(sid, False, per_item if k < n_over else 1) for k, sid in enumerate(order)]
    rows += [(sid, True, 0) for sid in (pool[k] for k in rng.permutation(len(pool)))]
    return pd.DataFrame(rows, columns=POOL_COLUMNS)


def open_pool(
    store: LabelStore,
    items: Catalog | Sequence[str] | None = None,
    *,
    overlap: float = 0.2,
    per_item: int = 2,
    gold: Mapping[str, Any] | None = None,
    gold_rate: float = 0.0,
    seed: int = 0,
    round: int = 0,
    task: str = "class",
    gold_by: str = f"{GOLD_PREFIX}reference",
) -> pd.DataFrame:
    """Plan a pool (:func:`plan_pool`) and record it in ``store``, for annotators who come and go.

    Each annotator's :class:`~workbench.labels.LabelingSession` of this round and task then asks
    the store for its next item and holds it under a lease (``LabelingSession(lease=...)``):
    two annotators never get the same item unless it is an overlap item, and an item whose
    annotator disappears goes back to the pool when the lease runs out
    (:mod:`workbench.labels.leases`). The gold answers become ``gold`` events, as with
    :func:`assign`. A round and task have one pool or one assignment.

    Returns
    -------
    pandas.DataFrame
        The plan (:data:`POOL_COLUMNS`).
    """
    from workbench.labels.leases import PoolItem

    if not hasattr(store, "add_pool"):
        raise ParameterError(f"store must be a LabelStore, got {type(store).__name__}")
    if items is None:
        items = store.need_catalog()
    plan = plan_pool(items, overlap=overlap, per_item=per_item, gold=gold, gold_rate=gold_rate,
                     seed=seed)  # fmt: skip
    rows = [PoolItem(sid, max(int(k), 1), bool(g)) for sid, g, k in plan.itertuples(index=False)]
    answers = {sid: gold[sid] for sid in plan.loc[plan["gold"], "id"]} if gold else None
    store.add_pool(rows, round=round, task=task, gold_rate=gold_rate, gold=answers,
                   gold_by=gold_by)  # fmt: skip
    return plan


def assignments(
    store: LabelStore, *, round: int | None = None, task: str | None = "class"
) -> pd.DataFrame:
    """The recorded assignments (:meth:`LabelStore.assignments`): for the reviewer side."""
    return store.assignments(round=round, task=task)


def gold_answers(store: LabelStore, *, task: str = "class") -> dict[str, Any]:
    """Known answers recorded in the store (``gold`` events), sample id → label.

    A later gold event for a sample replaces an earlier one. For whoever reviews: annotators'
    sessions never read these.
    """
    if not hasattr(store, "history"):
        raise ParameterError(f"store must be a LabelStore, got {type(store).__name__}")
    hist = store.history(kind="gold", task=task)
    return dict(zip(hist["id"], hist["value"], strict=True))


def gold_accuracy(
    store: LabelStore, *, round: int | None = None, task: str = "class"
) -> pd.DataFrame:
    """Each annotator's accuracy on the gold items they labeled (``annotator, n, correct,
    accuracy``), from :func:`workbench.quality.agreement.accuracy` and :func:`gold_answers`."""
    from workbench.quality._votes import Votes
    from workbench.quality.agreement import accuracy

    return accuracy(Votes.from_store(store, round=round, task=task), gold_answers(store, task=task))

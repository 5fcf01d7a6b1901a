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
  ``a`` with ``n_a`` regular items gets ``round(gold_rate * n_a / (1 - gold_rate))`` gold items
  drawn from the gold pool, so that gold is ``gold_rate`` of their queue (within one item).
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

__all__ = ["ASSIGNMENT_COLUMNS", "assign", "assignments", "gold_accuracy", "gold_answers",
           "plan_assignment"]  # fmt: skip

#: Columns of an assignment table: one row per (item, annotator).
ASSIGNMENT_COLUMNS = ["id", "annotator", "gold", "overlap"]


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
        Known answers, sample id → label. These items are not labeled as regular items;
        they are mixed in at ``gold_rate``.
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
    in_pool = set(pool)
    regular = [i for i in ids if i not in in_pool]
    n = len(regular)
    if n == 0:
        raise ParameterError("there are no items to assign (every item is a gold item)")
    n_over = int(np.rint(overlap * n))
    per_item = check_int(per_item, "per_item", low=2)
    if n_over and per_item > m:
        raise ParameterError(
            f"per_item={per_item} needs at least {per_item} annotators, got {m}; lower "
            "per_item or add annotators"
        )
    rng = np.random.default_rng(seed)
    order = [regular[k] for k in rng.permutation(n)]
    load = np.zeros(m, dtype=np.int64)
    rows: list[tuple[str, str, bool, int]] = []
    for sid in order[:n_over]:
        team = np.argsort(load * m + rng.permutation(m), kind="stable")[:per_item]
        for a in sorted(team.tolist()):
            rows.append((sid, names[a], False, per_item))
            load[a] += 1
    rank = rng.permutation(m)  # tie-break among equally loaded annotators
    for sid in order[n_over:]:
        a = int(np.argmin(load * m + rank))
        rows.append((sid, names[a], False, 1))
        load[a] += 1
    picks: dict[int, list[str]] = {}
    if gold_rate > 0:
        for a in range(m):
            g = int(np.rint(gold_rate * load[a] / (1.0 - gold_rate)))
            if g > len(pool):
                raise ParameterError(
                    f"gold_rate={gold_rate} gives {names[a]!r} {g} gold items but gold has only "
                    f"{len(pool)}; add gold answers or lower gold_rate"
                )
            picks[a] = [pool[k] for k in sorted(rng.choice(len(pool), g, replace=False))]
    times = pd.Series([s for p in picks.values() for s in p], dtype=object).value_counts()
    for a, chosen in picks.items():
        rows += [(sid, names[a], True, int(times[sid])) for sid in chosen]
    return pd.DataFrame(rows, columns=ASSIGNMENT_COLUMNS)


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

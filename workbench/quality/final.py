"""Final labels: per sample, the label to train on, where it came from, the events behind it.

Priority, highest first:

1. **Review.** The sample's latest ``review`` event (highest event id) for the task decides:

   - ``accept`` with a ``target``: the judged label event's value. ``accept`` without one:
     what the rules below give (the reviewer accepted the label shown).
   - ``reject``: the reviewer's correction if there is one, else no label (``source`` is
     ``"rejected"``: leave the sample out of training). A correction is a current ``label``
     event by the reviewer (``annotator`` = the review's ``reviewer``) on the sample, in the
     review's round and task; a review tool records ``store.review(id, "reject", reviewer=r,
     round=k, target=<event judged>)`` and ``store.label(id, new, annotator=r, round=k)``.
   - ``unsure``: no decision; the rules below apply and ``review`` says ``"unsure"``.

2. **Consensus.** A current label by an annotator named ``consensus:<method>``
   (:data:`~workbench.quality._votes.CONSENSUS_PREFIX`; :func:`~workbench.quality.consensus.
   write_consensus` writes them with source ``"consensus"`` in a round of their own and
   ``extra={"method": ..., "confidence": ..., "events": [...]}``): the latest round's wins
   (then the latest event, whatever the method). ``method`` and ``confidence`` are read from
   that event's ``extra`` when present; ``events`` lists the consensus event, then the votes
   it rests on.

3. **The annotators' labels.** Each annotator's current label in their latest round. One
   annotator: ``"single"``. Several who agree: ``"unanimous"``. Several who disagree: no label,
   ``"conflict"`` (compute a consensus or review it).

Only the store's public reading API is used (:meth:`~workbench.labels.LabelStore.current` and
:meth:`~workbench.labels.LabelStore.history`), from one call each; undone labels are not
current and never chosen.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import ParameterError
from workbench.labels import CONSENSUS_PREFIX

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore

__all__ = ["FINAL_COLUMNS", "SOURCES", "final_labels"]

#: Where a final label came from (the last three carry no label).
SOURCES = ("review", "consensus", "single", "unanimous", "rejected", "conflict", "unlabeled")
#: Columns of :func:`final_labels`.
FINAL_COLUMNS = ["id", "label", "source", "events", "review", "confidence", "method"]


def _key(value: Any) -> str:
    """A comparable form of a label value (class names, lists, boxes)."""
    return json.dumps(value, sort_keys=True, default=str)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value


def final_labels(
    store: LabelStore,
    *,
    task: str = "class",
    consensus: str = CONSENSUS_PREFIX,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """The label to train on for every sample, with its provenance.

    Parameters
    ----------
    store
        The :class:`~workbench.labels.LabelStore`.
    task
        The labeling task.
    consensus
        The prefix of the annotator names consensus labels are recorded under (a whole name
        works too: it is its own prefix).
    catalog
        Include every sample of this catalog (default: the store's catalog, if any); samples
        without any event get ``source="unlabeled"``. Without a catalog: the samples with a
        label or a review.

    Returns
    -------
    pandas.DataFrame
        ``id, label, source, events, review, confidence, method``: ``label`` is ``None`` when
        there is nothing to train on; ``source`` one of :data:`SOURCES`; ``events`` the event
        ids behind the decision (the review first, then the label or labels it rests on);
        ``review`` the latest verdict (or ``None``); ``confidence`` and ``method`` from a
        consensus event's ``extra`` (NaN / ``None`` otherwise). Rows in catalog order, then
        in order of first event.
    """
    task = _text(task, "task")
    consensus = _text(consensus, "consensus")
    if not all(hasattr(store, m) for m in ("current", "history")):
        raise ParameterError("final_labels needs a LabelStore")
    cur = store.current(task=task).sort_values("event", kind="stable")
    hist = store.history(task=task)
    value_of = {
        int(e): v
        for e, k, v in zip(hist["event"], hist["kind"], hist["value"], strict=True)
        if k in ("label", "import")
    }
    extra_of = dict(zip(hist["event"].astype(int), hist["extra"], strict=True))
    reviews = hist[hist["kind"] == "review"]
    latest_review = {r.id: r for r in reviews.itertuples(index=False)}  # oldest first: last wins
    corrections = {(r.id, r.annotator, int(r.round)) for r in reviews.itertuples(index=False)}

    cons: dict[str, tuple[int, int, Any]] = {}  # id -> (round, event, value)
    people: dict[str, dict[str, tuple[int, int, Any]]] = {}  # id -> annotator -> ...
    fixes: dict[tuple[str, str, int], tuple[int, Any]] = {}
    for r in cur.itertuples(index=False):
        entry = (int(r.round), int(r.event), r.value)
        if (r.id, r.annotator, int(r.round)) in corrections:
            fixes[(r.id, r.annotator, int(r.round))] = (int(r.event), r.value)
        elif str(r.annotator).startswith(consensus):
            if r.id not in cons or entry[:2] > cons[r.id][:2]:
                cons[r.id] = entry
        else:
            mine = people.setdefault(r.id, {})
            if r.annotator not in mine or entry[:2] > mine[r.annotator][:2]:
                mine[r.annotator] = entry

    ids: list[str] = []
    cat = catalog if catalog is not None else getattr(store, "catalog", None)
    if cat is not None:
        ids += [str(i) for i in cat.df["id"]]
    ids += [str(i) for i in hist["id"] if isinstance(i, str)]
    ids = list(dict.fromkeys(ids))
    rows = []
    for sid in ids:
        label, source, events, conf, method = _below_review(sid, cons, people, extra_of)
        verdict = None
        r = latest_review.get(sid)
        if r is not None:
            verdict = r.value
            rid = int(r.event)
            target = None if r.target is None or _nan(r.target) else int(r.target)
            if verdict == "accept" and target is not None and target in value_of:
                label, source, events = value_of[target], "review", [rid, target]
                conf, method = math.nan, None
            elif verdict == "accept" and label is not None:
                source, events = "review", [rid, *events]
            elif verdict == "reject":
                fix = fixes.get((sid, r.annotator, int(r.round)))
                conf, method = math.nan, None
                if fix is not None:
                    label, source, events = fix[1], "review", [rid, fix[0]]
                else:
                    label, source, events = None, "rejected", [rid, *events]
        rows.append((sid, label, source, events, verdict, conf, method))
    out = pd.DataFrame(rows, columns=FINAL_COLUMNS)
    for c in ("label", "events"):  # lists stay lists
        out[c] = pd.Series([r[FINAL_COLUMNS.index(c)] for r in rows], dtype=object)
    return out.astype({"confidence": "float64"})


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _below_review(
    sid: str,
    cons: dict[str, tuple[int, int, Any]],
    people: dict[str, dict[str, tuple[int, int, Any]]],
    extra_of: dict[int, Any],
) -> tuple[Any, str, list[int], float, Any]:
    """Label, source, events, confidence and method from consensus or the annotators."""
    if sid in cons:
        _, event, value = cons[sid]
        extra = extra_of.get(event)
        extra = extra if isinstance(extra, dict) else {}
        conf = extra.get("confidence")
        ok = isinstance(conf, (int, float)) and not isinstance(conf, bool)
        votes = extra.get("events")
        votes = [int(e) for e in votes if isinstance(e, int)] if isinstance(votes, list) else []
        conf = float(conf) if ok else math.nan
        return value, "consensus", [event, *votes], conf, extra.get("method")
    mine = people.get(sid, {})
    if not mine:
        return None, "unlabeled", [], math.nan, None
    events = sorted(e for _, e, _ in mine.values())
    values = {_key(v): v for _, _, v in mine.values()}
    if len(values) > 1:
        return None, "conflict", events, math.nan, None
    value = next(iter(values.values()))
    return value, "single" if len(mine) == 1 else "unanimous", events, math.nan, None

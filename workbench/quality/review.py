"""Review: what needs a second look, in order of severity, and the reviewer's decisions as events.

:class:`ReviewSession` reads a :class:`~workbench.labels.LabelStore` (and optionally model
probabilities, a :class:`~workbench.quality.label_errors.LabelIssueReport` and gold answers) and
gathers the items that need review, for one of four :data:`REASONS`:

- ``"disagreement"`` — the annotators' current labels differ;
- ``"label_error"`` — the issue report flags the label (confident learning);
- ``"tie"`` — the consensus is marked tied (no label without a reviewer);
- ``"gold"`` — an annotator's label differs from the known answer of a gold item.

Severity (the queue's order, highest first) is the largest of the item's reason scores: a failed
gold item and a tie score 1 (each is certainly wrong or undecidable without a person), a
disagreement ``1 - consensus confidence``, a suspected label error its report ``score``
(``1 -`` label quality). Equal severities: more reasons first, then the order of first appearance
(catalog order when a catalog is given).

Each item carries every annotator's label with its event id, the consensus with its confidence
(a consensus stored in the store by annotator ``consensus:<method>`` when there is one, else
computed on the fly with :func:`workbench.quality.consensus.consensus`) and the model's
suggestion. The reviewer sees all of them; annotators never do (their sessions are blind).

Decisions are events in the review round (by default one after the highest round of the task's
events, a stored consensus round included; see ``round`` in :class:`ReviewSession`):

- :meth:`ReviewSession.accept` — ``review(id, "accept", target=<event of the label accepted>)``;
- :meth:`ReviewSession.set_label` — a class an annotator gave is an ``accept`` of their event;
  another class is ``review(id, "reject", target=<event of the consensus label>)`` plus the
  reviewer's ``label(id, value)`` in the same round (the correction
  :func:`~workbench.quality.final.final_labels` reads);
- :meth:`ReviewSession.unsure` — ``review(id, "unsure")``: no decision, the item stays open;
- :meth:`ReviewSession.skip` — moves on and records nothing;
- :meth:`ReviewSession.undo` — takes back this session's latest decision: the correction label is
  undone (``store.undo``) and an ``unsure`` review with the note ``"undo of review <id>"`` makes
  it no decision again (the store has no undo for reviews; the log stays append-only).

Everything works from a plain script; :class:`workbench.views.review.ReviewQueue` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_choice, check_int
from workbench.errors import LabelError, ParameterError
from workbench.quality._votes import CONSENSUS_PREFIX, Votes
from workbench.quality.consensus import METHODS, consensus

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore
    from workbench.quality.label_errors import LabelIssueReport

__all__ = ["REASONS", "UNDO_NOTE", "ReviewItem", "ReviewSession"]

#: Why an item needs review.
REASONS = ("disagreement", "label_error", "tie", "gold")
#: Note of the ``unsure`` review that takes back a decision (followed by the review's event id).
UNDO_NOTE = "undo of review "


@dataclass
class ReviewItem:
    """One item that needs review and everything the reviewer sees about it.

    Attributes
    ----------
    id : str
        The sample id.
    reasons : tuple of str
        Why it is here (a subset of :data:`REASONS`, in that order).
    severity : float
        The queue's sort key (see the module docstring).
    labels : list of dict
        Every annotator's current label: ``annotator, value, event, round``, by event id.
    consensus : dict
        ``label`` (``None`` when tied), ``confidence``, ``method``, ``event`` (the stored
        consensus event, or the first annotator event with that label; ``None`` when tied),
        ``stored`` (whether it was read from the store) and ``tied``.
    model : dict or None
        The model's suggestion: ``label, confidence, source``.
    gold : Any
        The known answer of a gold item (``None`` otherwise).
    issue_score : float
        The label-issue report's score (NaN without one).
    """

    id: str
    reasons: tuple[str, ...]
    severity: float
    labels: list[dict[str, Any]]
    consensus: dict[str, Any]
    model: dict[str, Any] | None = None
    gold: Any = None
    issue_score: float = math.nan
    order: int = field(default=0, repr=False)

    def annotators(self) -> list[str]:
        return [r["annotator"] for r in self.labels]

    def event_of(self, value: Any) -> int | None:
        """The first (lowest) label event with ``value``; ``None`` when nobody gave it."""
        hits = [r["event"] for r in self.labels if r["value"] == value]
        return min(hits) if hits else None


def _is_correction(cur: pd.DataFrame, reviews: pd.DataFrame) -> np.ndarray:
    """Rows of ``cur`` that are a reviewer's correction (same sample, person and round as a
    review): they are decisions, not votes."""
    if reviews.empty or cur.empty:
        return np.zeros(len(cur), dtype=bool)
    keys = set(zip(reviews["id"], reviews["annotator"], reviews["round"].astype(int), strict=True))
    rows = zip(cur["id"], cur["annotator"], cur["round"].astype(int), strict=True)
    return np.array([k in keys for k in rows], dtype=bool)


def _next_round(hist: pd.DataFrame) -> int:
    """One after the highest round of ``hist`` (a task's events), leaving out review rounds:
    every event of a reviewer in a round where they reviewed (verdicts, corrections, undos)."""
    rounds = pd.to_numeric(hist["round"], errors="coerce")
    is_review = (hist["kind"] == "review").to_numpy()
    review_rounds = set(zip(hist["annotator"][is_review], rounds[is_review], strict=True))
    in_review = np.array(
        [k in review_rounds for k in zip(hist["annotator"], rounds, strict=True)], dtype=bool
    )
    rest = rounds[~in_review].dropna()
    return int(rest.max()) + 1 if len(rest) else 0


def _num(x: Any) -> float:
    ok = isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool)
    return float(x) if ok else math.nan


class ReviewSession:
    """The review queue of one reviewer over a label store (see the module docstring).

    Parameters
    ----------
    store
        The :class:`~workbench.labels.LabelStore` with the annotators' labels.
    reviewer
        Who reviews; decisions are recorded under this name.
    catalog
        Orders equal severities by catalog order (default: the store's catalog, if any).
    probs
        Model probabilities: a DataFrame indexed by sample id with one column per class. Give
        the model's suggestion and, with ``method="majority"``, break ties.
    report
        A :class:`~workbench.quality.label_errors.LabelIssueReport`: its flagged rows are
        ``label_error`` items; its ``suggested`` / ``confidence`` are the model's suggestion
        when ``probs`` is not given.
    gold
        Known answers: sample id → class.
    method
        How the consensus is computed when the store holds none for an item (one of
        :data:`~workbench.quality.consensus.METHODS`); ``"majority"`` by default, whose ties are
        marked (never a coin flip) and come here as ``tie`` items.
    round
        The review round; default: one after the highest round of the task's events in the
        store (labels, a stored consensus, assignments), so a review after a consensus written
        as round 1 is round 2. Review rounds themselves are left out (every event of a
        reviewer in a round where they reviewed: verdicts and corrections), so a resumed
        session, or a second reviewer, keeps the round.
    task
        The store's task.

    Attributes
    ----------
    items : dict of str to ReviewItem
        Every item that needs review, by id.
    queue : list of str
        The ids shown, filtered (:meth:`filter`) and by severity.
    position : int
        Index of the current item in :attr:`queue` (``len(queue)``: nothing left).

    Notes
    -----
    One concept in about 500 lines: the queue and the decisions that move it (gathering the
    items, their order and filters, each decision with its undo) share one position and one
    round; split apart, each half would have to keep the other's state in step.
    """

    def __init__(
        self,
        store: LabelStore,
        *,
        reviewer: str,
        catalog: Catalog | None = None,
        probs: pd.DataFrame | None = None,
        report: LabelIssueReport | None = None,
        gold: Mapping[str, Any] | pd.Series | None = None,
        method: str = "majority",
        round: int | None = None,
        task: str = "class",
    ) -> None:
        if not all(hasattr(store, m) for m in ("current", "history", "review", "label")):
            raise ParameterError(f"store must be a LabelStore, got {type(store).__name__}")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise ParameterError(f"reviewer must be a non-empty name, got {reviewer!r}")
        if reviewer.startswith(CONSENSUS_PREFIX):
            raise ParameterError(f"a reviewer's name cannot start with {CONSENSUS_PREFIX!r}")
        check_choice(method, "method", METHODS)
        if probs is not None and not isinstance(probs, pd.DataFrame):
            raise ParameterError(
                "probs must be a DataFrame indexed by sample id with one column per class"
            )
        if gold is not None and not isinstance(gold, (Mapping, pd.Series)):
            raise ParameterError("gold must map sample ids to their known class")
        self.store = store
        self.reviewer = reviewer
        self.catalog = catalog if catalog is not None else getattr(store, "catalog", None)
        self.probs = probs
        self.report = report
        self.gold = {} if gold is None else {str(k): v for k, v in dict(gold).items()}
        self.method = method
        self.task = task
        self._round = None if round is None else check_int(round, "round", low=0)
        self.filters: dict[str, Any] = {"reason": None, "cls": None, "annotator": None}
        self.queue: list[str] = []
        self.position = 0
        self.last_action: dict[str, Any] | None = None
        self._stack: list[tuple[str, int, int | None]] = []  # (id, review event, correction)
        self._callbacks: list[Callable[[dict[str, Any]], None]] = []
        self.refresh()

    # ------------------------------------------------------------------ building
    def refresh(self) -> None:
        """Re-read the store: the items, their labels, consensus and decisions; keep the filters
        and stay on the current item when it is still in the queue."""
        keep = self.current
        cur = self.store.current(task=self.task)
        self._history = self.store.history(task=self.task)
        reviews = self._history[self._history["kind"] == "review"]
        is_cons = cur["annotator"].astype(str).str.startswith(CONSENSUS_PREFIX).to_numpy()
        fix = _is_correction(cur, reviews)
        votes_df = cur[~is_cons & ~fix]
        self.round = self._round if self._round is not None else _next_round(self._history)
        self.classes: list[str] = list(self.store.classes)
        self.annotators: list[str] = sorted(map(str, votes_df["annotator"].unique()))
        self.items = self._gather(votes_df, cur[is_cons])
        self._decisions = self._read_decisions(reviews)
        self._apply_filters(keep)

    def _gather(self, votes_df: pd.DataFrame, cons_df: pd.DataFrame) -> dict[str, ReviewItem]:
        labels: dict[str, list[dict[str, Any]]] = {}
        for r in votes_df.itertuples(index=False):
            labels.setdefault(str(r.id), []).append(
                {"annotator": r.annotator, "value": r.value, "event": int(r.event),
                 "round": int(r.round)}
            )  # fmt: skip
        # One vote per annotator: their highest round, then their latest event.
        for sid, rows in labels.items():
            best: dict[str, dict[str, Any]] = {}
            for row in rows:
                old = best.get(row["annotator"])
                if old is None or (row["round"], row["event"]) > (old["round"], old["event"]):
                    best[row["annotator"]] = row
            labels[sid] = sorted(best.values(), key=lambda x: x["event"])
        stored = self._stored_consensus(cons_df)
        computed = self._computed_consensus(votes_df)
        issues = self._issues()
        order = self._order(labels)
        items: dict[str, ReviewItem] = {}
        for sid in order:
            rows = labels.get(sid, [])
            cons = stored.get(sid) or computed.get(sid) or _no_consensus()
            reasons, scores = [], []
            if len({_key(r["value"]) for r in rows}) > 1:
                reasons.append("disagreement")
                conf = cons["confidence"]
                scores.append(1.0 if cons["tied"] or math.isnan(conf) else 1.0 - conf)
            issue = issues.get(sid)
            if issue is not None and issue[0]:
                reasons.append("label_error")
                scores.append(issue[1])
            if cons["tied"]:
                reasons.append("tie")
                scores.append(1.0)
            g = self.gold.get(sid)
            if g is not None and any(r["value"] != g for r in rows):
                reasons.append("gold")
                scores.append(1.0)
            if not reasons:
                continue
            if cons["event"] is None and cons["label"] is not None:
                cons["event"] = ReviewItem(sid, (), 0, rows, cons).event_of(cons["label"])
            items[sid] = ReviewItem(
                id=sid,
                reasons=tuple(reasons),
                severity=float(max(scores)),
                labels=rows,
                consensus=cons,
                model=self._model(sid, issue),
                gold=g,
                issue_score=issue[1] if issue is not None else math.nan,
                order=order[sid],
            )
        return items

    def _order(self, labels: Mapping[str, Any]) -> dict[str, int]:
        ids: list[str] = []
        if self.catalog is not None:
            ids += [str(i) for i in self.catalog.df["id"]]
        ids += list(labels)
        if self.report is not None:
            ids += [str(i) for i in self.report.table["id"]]
        ids += list(self.gold)
        return {sid: k for k, sid in enumerate(dict.fromkeys(ids))}

    def _stored_consensus(self, cons_df: pd.DataFrame) -> dict[str, dict[str, Any]]:
        if cons_df.empty:
            return {}
        hist = self._history
        hist = hist[hist["event"].isin(set(cons_df["event"].astype(int)))]
        extra_of = dict(zip(hist["event"].astype(int), hist["extra"], strict=True))
        out: dict[str, dict[str, Any]] = {}
        # Latest round wins, then the latest event (rows are in event order).
        for r in cons_df.sort_values(["round", "event"], kind="stable").itertuples(index=False):
            extra = extra_of.get(int(r.event))
            extra = extra if isinstance(extra, dict) else {}
            out[str(r.id)] = {
                "label": r.value,
                "confidence": _num(extra.get("confidence")),
                "method": extra.get("method") or str(r.annotator)[len(CONSENSUS_PREFIX) :],
                "event": int(r.event),
                "stored": True,
                "tied": False,
            }
        return out

    def _computed_consensus(self, votes_df: pd.DataFrame) -> dict[str, dict[str, Any]]:
        if votes_df.empty:
            return {}
        try:
            votes = Votes.from_frame(votes_df, classes=self.classes)
        except ParameterError:  # e.g. multi-label values: no consensus of single classes
            return {}
        probs = self.probs
        if probs is not None and (
            not set(self.classes) <= set(probs.columns)
            or not pd.Index(votes.items).isin(probs.index).all()
        ):
            probs = None  # probabilities that do not cover every voted item cannot break ties
        table = consensus(votes, self.method, pred_probs=probs)
        out = {}
        for r in table.itertuples(index=False):
            tied = bool(r.tied)
            out[str(r.id)] = {
                "label": None if tied else r.label,
                "confidence": float(r.confidence),
                "method": str(r.method),
                "event": None,
                "stored": False,
                "tied": tied,
            }
        return out

    def _issues(self) -> dict[str, tuple[bool, float, Any, float]]:
        """id -> (flagged, score, suggested, confidence) from the label-issue report."""
        if self.report is None:
            return {}
        t = self.report.table
        cols = [t[c] if c in t.columns else pd.Series(None, index=t.index)
                for c in ("id", "flagged", "score", "suggested", "confidence")]  # fmt: skip
        return {
            str(i): (bool(f), _num(s), sug, _num(c)) for i, f, s, sug, c in zip(*cols, strict=True)
        }

    def _model(self, sid: str, issue: tuple | None) -> dict[str, Any] | None:
        if self.probs is not None and sid in self.probs.index:
            row = pd.to_numeric(self.probs.loc[sid], errors="coerce")
            if row.notna().any():
                best = row.idxmax()
                return {"label": best, "confidence": float(row[best]), "source": "probs"}
        if issue is not None and issue[2] is not None:
            return {"label": issue[2], "confidence": issue[3], "source": "label issues"}
        return self._suggestions().get(sid)

    def _suggestions(self) -> dict[str, dict[str, Any]]:
        if not hasattr(self, "_sugg"):
            s = self.store.suggestions(task=self.task)
            self._sugg = {}
            for r in s.itertuples(index=False):
                probs = r.probs if isinstance(r.probs, dict) else {}
                p = probs.get(r.value) if isinstance(r.value, str) else None
                self._sugg[str(r.id)] = {
                    "label": r.value, "confidence": _num(p), "source": str(r.model)
                }  # fmt: skip
        return self._sugg

    def _read_decisions(self, reviews: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """This reviewer's standing decision per item in this round (latest review wins; an
        undo marker means none)."""
        mine = reviews[(reviews["annotator"] == self.reviewer) & (reviews["round"] == self.round)]
        out: dict[str, dict[str, Any]] = {}
        for r in mine.itertuples(index=False):
            note = r.extra.get("note") if isinstance(r.extra, dict) else None
            if isinstance(note, str) and note.startswith(UNDO_NOTE):
                out.pop(str(r.id), None)
            else:
                out[str(r.id)] = {"verdict": r.value, "event": int(r.event)}
        return out

    # ------------------------------------------------------------------ the queue
    def filter(
        self, *, reason: str | None = None, cls: str | None = None, annotator: str | None = None
    ) -> list[str]:
        """Show only items with this ``reason``, with ``cls`` among their labels, consensus or
        gold, labeled by ``annotator`` (``None``: any). Returns the new queue.

        The current item stays when it matches; else the first undecided match is shown (the
        first match when all are decided)."""
        if reason is not None:
            check_choice(reason, "reason", REASONS)
        if cls is not None and cls not in self.classes:
            raise ParameterError(f"unknown class {cls!r}; the classes are {self.classes[:20]}")
        if annotator is not None and annotator not in self.annotators:
            raise ParameterError(
                f"unknown annotator {annotator!r}; the annotators are {self.annotators[:20]}"
            )
        self.filters = {"reason": reason, "cls": cls, "annotator": annotator}
        self._apply_filters(self.current)
        if self.current is None and self.queue:
            self.position = 0  # every match is decided: show the first one rather than none
        return list(self.queue)

    def _apply_filters(self, keep: str | None) -> None:
        f = self.filters
        chosen = []
        for it in self.items.values():
            if f["reason"] is not None and f["reason"] not in it.reasons:
                continue
            if f["annotator"] is not None and f["annotator"] not in it.annotators():
                continue
            if f["cls"] is not None:
                seen = [r["value"] for r in it.labels] + [it.consensus["label"], it.gold]
                if f["cls"] not in seen:
                    continue
            chosen.append(it)
        chosen.sort(key=lambda it: (-it.severity, -len(it.reasons), it.order))
        self.queue = [it.id for it in chosen]
        if keep in self.queue:
            self.position = self.queue.index(keep)
        else:
            self.position = 0
            self._advance(from_start=True)

    @property
    def current(self) -> str | None:
        """The id of the item shown (``None``: the queue is empty or past its end)."""
        q = getattr(self, "queue", [])
        return q[self.position] if 0 <= self.position < len(q) else None

    @property
    def item(self) -> ReviewItem | None:
        """The current :class:`ReviewItem`."""
        sid = self.current
        return None if sid is None else self.items[sid]

    def decision(self, sample_id: str) -> dict[str, Any] | None:
        """This reviewer's standing decision on an item in this round: ``verdict, event``."""
        return self._decisions.get(sample_id)

    def go(self, where: int | str) -> None:
        """Show the item at queue position ``where`` (clipped) or the item with that id."""
        if isinstance(where, str):
            if where not in self.queue:
                raise ParameterError(f"{where!r} is not in the review queue (check the filters)")
            self.position = self.queue.index(where)
        else:
            where = check_int(where, "where")
            self.position = min(max(where, 0), max(len(self.queue) - 1, 0))

    def next(self) -> None:
        """Browse forward one item (decided or not)."""
        self.go(self.position + 1)

    def prev(self) -> None:
        """Browse back one item."""
        self.go(self.position - 1)

    def _advance(self, from_start: bool = False) -> None:
        """Move to the next undecided item after the current one (wrapping); past the end of
        the queue when every item is decided."""
        n = len(self.queue)
        start = 0 if from_start else self.position + 1
        for k in range(n):
            j = (start + k) % n
            if self.queue[j] not in self._decisions:
                self.position = j
                return
        self.position = n

    @property
    def progress(self) -> dict[str, Any]:
        """``total`` (items in the queue), ``done`` (decided in this round), ``session``
        (decisions of this session that stand), ``by_reason`` (items per reason, unfiltered)."""
        done = sum(1 for sid in self.queue if sid in self._decisions)
        by_reason = {r: sum(r in it.reasons for it in self.items.values()) for r in REASONS}
        return {"total": len(self.queue), "done": done, "session": len(self._stack),
                "by_reason": by_reason}  # fmt: skip

    # ------------------------------------------------------------------ decisions
    def _target(self, sample_id: str | None) -> ReviewItem:
        sid = self.current if sample_id is None else sample_id
        if sid is None:
            raise LabelError("nothing to review here: every item is decided (◀ Back to revisit)")
        if sid not in self.items:
            raise ParameterError(f"{sid!r} is not an item of this review")
        return self.items[sid]

    def on_decision(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(action)`` after each decision or undo is committed."""
        self._callbacks.append(fn)

    def _done(self, action: dict[str, Any], advance: bool = True) -> None:
        self.last_action = action
        if action["kind"] == "undo":
            self._decisions.pop(action["id"], None)
            if action["id"] in self.queue:
                self.go(action["id"])
        else:
            self._decisions[action["id"]] = {"verdict": action["verdict"],
                                             "event": action["event"]}  # fmt: skip
            if advance and self.current == action["id"]:
                self._advance()
        for fn in self._callbacks:
            fn(action)

    def _review(self, it: ReviewItem, verdict: str, target: int | None, note: str | None) -> int:
        return self.store.review(
            it.id, verdict, reviewer=self.reviewer, round=self.round, task=self.task,
            target=target, note=note,
        )  # fmt: skip

    def accept(
        self, item: str | None = None, event_id: int | None = None, *, note: str | None = None
    ) -> int:
        """Accept a label of ``item`` (default: the current one): the consensus label, or the
        label event ``event_id``. Returns the review's event id.

        Raises
        ------
        LabelError
            A tied item without ``event_id`` (pick a label: :meth:`set_label`), or an event
            that is not one of the item's labels.
        """
        it = self._target(item)
        if event_id is None:
            event_id = it.consensus["event"]
            if event_id is None:
                raise LabelError(
                    f"{it.id!r} has no consensus to accept (tied); pick a label instead"
                )
        elif event_id not in {r["event"] for r in it.labels} | {it.consensus["event"]}:
            raise LabelError(f"event {event_id} is not one of the labels of {it.id!r}")
        value = next((r["value"] for r in it.labels if r["event"] == event_id),
                     it.consensus["label"])  # fmt: skip
        ev = self._review(it, "accept", int(event_id), note)
        self._stack.append((it.id, ev, None))
        self._done({"kind": "accept", "verdict": "accept", "id": it.id, "event": ev,
                    "value": value, "target": int(event_id)})  # fmt: skip
        return ev

    def set_label(self, value: Any, item: str | None = None, *, note: str | None = None) -> int:
        """Decide the label of ``item`` (default: the current one); returns the review's event id.

        A class one of the annotators gave is an ``accept`` of their label event (the first
        one); another class is a ``reject`` of the consensus label plus the reviewer's label.
        """
        it = self._target(item)
        if value not in self.classes:
            raise LabelError(f"unknown class {value!r}; the classes are {self.classes[:20]}")
        given = it.event_of(value)
        if given is not None:
            return self.accept(it.id, given, note=note)
        target = it.consensus["event"]
        ev = self._review(it, "reject", target, note)
        try:
            fix = self.store.label(
                it.id, value, annotator=self.reviewer, round=self.round, task=self.task
            )
        except Exception:
            # The correction failed: take the reject back so the item is not left "rejected".
            self._review(it, "unsure", target, f"{UNDO_NOTE}{ev}")
            raise
        self._stack.append((it.id, ev, fix))
        self._done({"kind": "correct", "verdict": "reject", "id": it.id, "event": ev,
                    "value": value, "target": target, "label_event": fix})  # fmt: skip
        return ev

    def unsure(self, item: str | None = None, *, note: str | None = None) -> int:
        """Record that the reviewer cannot decide ``item``; returns the review's event id."""
        it = self._target(item)
        ev = self._review(it, "unsure", it.consensus["event"], note)
        self._stack.append((it.id, ev, None))
        self._done({"kind": "unsure", "verdict": "unsure", "id": it.id, "event": ev,
                    "value": None, "target": it.consensus["event"]})  # fmt: skip
        return ev

    def skip(self) -> None:
        """Move on to the next undecided item; nothing is recorded."""
        if self.current is None:
            raise LabelError("nothing to skip: every item is decided")
        self.last_action = {"kind": "skip", "id": self.current}
        n = len(self.queue)
        ahead = [(self.position + k) % n for k in range(1, n)]
        todo = [j for j in ahead if self.queue[j] not in self._decisions]
        # The only open item: browse on rather than stay (a skip always moves).
        self.position = todo[0] if todo else (self.position + 1) % n

    def undo(self) -> str | None:
        """Take back this session's latest decision; returns that item's id (``None``: nothing
        to undo). The item is shown again."""
        if not self._stack:
            return None
        sid, ev, fix = self._stack.pop()
        if fix is not None:
            self.store.undo(sid, annotator=self.reviewer, round=self.round, task=self.task)
        self.store.review(
            sid, "unsure", reviewer=self.reviewer, round=self.round, task=self.task,
            note=f"{UNDO_NOTE}{ev}",
        )  # fmt: skip
        self._done({"kind": "undo", "id": sid, "event": ev})
        return sid

    def table(self) -> pd.DataFrame:
        """The queue as a table: ``id, reasons, severity, labels, consensus, confidence, model,
        gold, decision`` (one row per item, in queue order)."""
        rows = []
        for sid in self.queue:
            it = self.items[sid]
            d = self._decisions.get(sid)
            rows.append((
                sid, ", ".join(it.reasons), it.severity,
                "; ".join(f"{r['annotator']}: {r['value']}" for r in it.labels),
                it.consensus["label"], it.consensus["confidence"],
                None if it.model is None else it.model["label"], it.gold,
                None if d is None else d["verdict"],
            ))  # fmt: skip
        cols = ["id", "reasons", "severity", "labels", "consensus", "confidence", "model",
                "gold", "decision"]  # fmt: skip
        return pd.DataFrame(rows, columns=cols)


def _key(value: Any) -> Hashable:
    return value if isinstance(value, Hashable) else repr(value)


def _no_consensus() -> dict[str, Any]:
    return {"label": None, "confidence": math.nan, "method": None, "event": None,
            "stored": False, "tied": False}  # fmt: skip

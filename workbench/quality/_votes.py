"""Votes: the one input shape of agreement and consensus — who gave which class to which item.

A long table of votes (one row per item, annotator and label, as :meth:`LabelStore.current`
returns it) becomes a :class:`Votes`: integer codes for items, annotators and classes, one vote per
(item, annotator), sorted by item then annotator so that the votes of one item are contiguous. Every
metric and every consensus method works on these flat arrays with numpy; :meth:`Votes.matrix` gives
the items × annotators table of class codes (``NaN`` where an annotator did not label an item) that
other tools (cleanlab, krippendorff) take.

Guarantees
----------
- Values must be single, hashable classes (multi-label and box values are refused, with the reason).
- When one annotator labeled an item more than once (several rounds), the vote of the highest
  round counts, and within a round the last row (tables from the store are in event order): a
  re-label replaces the earlier one.
- Bad input raises :class:`~workbench.errors.ParameterError` with what to do; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError

# Annotator names that start with CONSENSUS_PREFIX hold a consensus written back to the store
# (see workbench.quality.consensus.write_consensus); Votes.from_store leaves them out.
from workbench.labels import CONSENSUS_PREFIX

if TYPE_CHECKING:
    from workbench.labels import LabelStore

__all__ = ["CONSENSUS_PREFIX", "Votes"]


def _factorize(values: pd.Series, what: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes and uniques (first-appearance order); ParameterError for unhashable values."""
    try:
        codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    except TypeError as exc:  # lists, dicts, sets: unhashable
        bad = next((v for v in values if not isinstance(v, Hashable)), None)
        raise ParameterError(
            f"every {what} must be a single hashable value, got {_short(bad)}; {hint}"
        ) from exc
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _sorted_if_possible(values: Iterable[Any]) -> list[Any]:
    values = list(values)
    try:
        return sorted(values)
    except TypeError:  # mixed types: keep the order of appearance
        return values


@dataclass(frozen=True, eq=False)
class Votes:
    """Votes of several annotators, as flat integer arrays (one entry per vote).

    Build one with :meth:`from_frame` or :meth:`from_store`; the constructor trusts its arguments.

    Attributes
    ----------
    items : numpy.ndarray
        Item ids (object), in order of first appearance; ``item`` indexes it.
    annotators : numpy.ndarray
        Annotator names (object), sorted when they compare; ``annotator`` indexes it.
    classes : tuple
        Class names; ``code`` indexes it. Weighted kappas take this order as the class order.
    item, annotator, code : numpy.ndarray
        ``int64`` arrays, one entry per vote, sorted by item then annotator.
    event : numpy.ndarray or None
        The store's event id behind each vote (``int64``), when the table had an ``event`` column.
    """

    items: np.ndarray
    annotators: np.ndarray
    classes: tuple
    item: np.ndarray
    annotator: np.ndarray
    code: np.ndarray
    event: np.ndarray | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        classes: Sequence[Any] | None = None,
        annotators: Sequence[Any] | None = None,
        id: str = "id",
        annotator: str = "annotator",
        value: str = "value",
    ) -> Votes:
        """Votes from a long table: one row per (item, annotator, label).

        Parameters
        ----------
        frame
            A DataFrame with columns ``id``, ``annotator`` and ``value`` (names configurable);
            optional ``round`` (the highest round's vote counts), ``task`` (must hold one task)
            and ``event`` (event ids, kept as provenance). Rows whose value is missing (``None``,
            ``NaN``) are left out: they are not votes.
        classes
            All class names, in their order (e.g. ``store.classes``). Default: the values seen,
            sorted. A value outside ``classes`` is an error.
        annotators
            All annotators to report on, including any without a label. Default: those seen.

        Raises
        ------
        ParameterError
            Not a DataFrame, a missing column, no votes, several tasks, unhashable or
            multi-valued labels, a value not in ``classes``.
        """
        if not isinstance(frame, pd.DataFrame):
            raise ParameterError(
                "votes must be a pandas DataFrame (e.g. store.current()), "
                f"got {type(frame).__name__}"
            )
        missing = [c for c in (id, annotator, value) if c not in frame.columns]
        if missing:
            raise ParameterError(
                f"the votes table lacks column(s) {missing}; it needs {[id, annotator, value]} "
                f"(it has {list(frame.columns)})"
            )
        if "task" in frame.columns and frame["task"].nunique(dropna=False) > 1:
            tasks = _sorted_if_possible(frame["task"].dropna().unique())
            raise ParameterError(
                f"the votes table holds several tasks {tasks[:5]}; pick one, e.g. "
                "store.current(task='class')"
            )
        vals = frame[value]
        keep = ~vals.map(_is_missing).to_numpy(dtype=bool)
        frame = frame.loc[keep]
        if "round" in frame.columns:  # stable: within a round, table order (event order) holds
            frame = frame.iloc[np.argsort(frame["round"].to_numpy(), kind="stable")]
        if len(frame) == 0:
            raise ParameterError(
                "there are no votes (the table is empty or every value is missing); label some "
                "items first"
            )
        hint = "agreement and consensus need one class per vote (not multi-label or boxes)"
        ann_codes, ann_seen = _factorize(frame[annotator], "annotator", "name annotators by text")
        item_codes, items = _factorize(frame[id], "item id", "use the catalog ids")
        if (ann_codes < 0).any() or (item_codes < 0).any():
            raise ParameterError("every vote needs an item id and an annotator; one is missing")
        val_codes, seen = _factorize(frame[value], "label", hint)
        classes_t, code = _class_codes(seen, val_codes, classes)
        ann_names, ann_map = _annotator_codes(ann_seen, annotators)
        ann = ann_map[ann_codes]
        event = None
        if "event" in frame.columns:
            ev = pd.to_numeric(frame["event"], errors="coerce").to_numpy(dtype=float)
            if not np.isnan(ev).any():
                event = ev.astype(np.int64)
        # One vote per (item, annotator): the last row wins (rows are sorted by round above).
        key = item_codes * len(ann_names) + ann
        last = len(key) - 1 - np.unique(key[::-1], return_index=True)[1]
        order = last[np.lexsort((ann[last], item_codes[last]))]
        return cls(
            items=items,
            annotators=ann_names,
            classes=classes_t,
            item=item_codes[order],
            annotator=ann[order],
            code=code[order],
            event=None if event is None else event[order],
        )

    @classmethod
    def from_store(
        cls,
        store: LabelStore,
        *,
        round: int | None = None,
        task: str = "class",
        annotators: Sequence[str] | None = None,
        include_consensus: bool = False,
    ) -> Votes:
        """Votes from a label store's current labels (humans and accepted model labels).

        Parameters
        ----------
        round
            Only this round (default: all rounds; per annotator and item the highest round wins).
        task
            The labeling task.
        annotators
            Only these annotators; each is reported on even without a label.
        include_consensus
            Also count annotators named ``consensus:...`` (a consensus written back).
        """
        cur = store.current(round=round, task=task)
        if not include_consensus:
            cur = cur[~cur["annotator"].astype(str).str.startswith(CONSENSUS_PREFIX)]
        if annotators is not None:
            annotators = list(annotators)
            cur = cur[cur["annotator"].isin(annotators)]
        return cls.from_frame(cur, classes=store.classes, annotators=annotators)

    # ------------------------------------------------------------------ views
    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.code)

    def __repr__(self) -> str:
        return (
            f"Votes({len(self)} votes on {self.n_items} items by {self.n_annotators} annotators, "
            f"{self.n_classes} classes)"
        )

    def counts(self) -> np.ndarray:
        """``(n_items, n_classes)`` int array: how many votes each class got on each item."""
        k = self.n_classes
        flat = np.bincount(self.item * k + self.code, minlength=self.n_items * k)
        return flat.reshape(self.n_items, k)

    def votes_per_item(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def votes_per_annotator(self) -> np.ndarray:
        return np.bincount(self.annotator, minlength=self.n_annotators)

    def matrix(self) -> pd.DataFrame:
        """Items × annotators table of class codes (float; ``NaN`` where there is no vote)."""
        m = np.full((self.n_items, self.n_annotators), np.nan)
        m[self.item, self.annotator] = self.code
        return pd.DataFrame(
            m,
            index=pd.Index(self.items, name="id"),
            columns=pd.Index(self.annotators, name="annotator"),
        )

    def annotator_index(self, name: Any) -> int:
        """Position of annotator ``name``; ParameterError naming the known ones otherwise."""
        hits = np.flatnonzero(self.annotators == name) if _hashable(name) else []
        if len(hits) == 0:
            shown = ", ".join(repr(a) for a in self.annotators[:10])
            raise ParameterError(f"unknown annotator {_short(name)}; the votes have: {shown}")
        return int(hits[0])

    def class_codes(self, labels: Iterable[Any]) -> np.ndarray:
        """Codes of class names; ``-1`` for a value that is not one of the classes."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        return np.array([lookup.get(v, -1) if _hashable(v) else -1 for v in labels], dtype=np.int64)

    def item_positions(self, ids: Iterable[Any]) -> np.ndarray:
        """Positions of item ids in :attr:`items`; ``-1`` for an id without votes."""
        lookup = {v: i for i, v in enumerate(self.items)}
        return np.array([lookup.get(v, -1) if _hashable(v) else -1 for v in ids], dtype=np.int64)

    def align_probs(self, pred_probs: Any) -> np.ndarray:
        """Model probabilities as an ``(n_items, n_classes)`` array in :attr:`items` order.

        ``pred_probs`` is either such an array already, or a DataFrame indexed by item id with
        one column per class name (every voted item and every class must be there).
        """
        if isinstance(pred_probs, pd.DataFrame):
            lacking = [c for c in self.classes if c not in pred_probs.columns]
            if lacking:
                raise ParameterError(f"pred_probs lacks columns for classes {lacking[:5]}")
            absent = ~pd.Index(self.items).isin(pred_probs.index)
            if absent.any():
                raise ParameterError(
                    f"pred_probs has no row for {int(absent.sum())} voted item(s), e.g. "
                    f"{_short(self.items[np.flatnonzero(absent)[0]])}"
                )
            probs = pred_probs.loc[list(self.items), list(self.classes)].to_numpy(dtype=float)
        else:
            try:
                probs = np.asarray(pred_probs, dtype=float)
            except (TypeError, ValueError) as exc:
                raise ParameterError("pred_probs must be numbers") from exc
            if probs.shape != (self.n_items, self.n_classes):
                raise ParameterError(
                    f"pred_probs must have shape (items, classes) = "
                    f"({self.n_items}, {self.n_classes}), in Votes.items order; got {probs.shape}"
                )
        if not np.isfinite(probs).all() or (probs < 0).any():
            raise ParameterError("pred_probs must be finite and non-negative")
        return probs


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and value != value


def _class_codes(
    seen: np.ndarray, val_codes: np.ndarray, classes: Sequence[Any] | None
) -> tuple[tuple, np.ndarray]:
    if classes is None:
        names = _sorted_if_possible(seen)
    else:
        if isinstance(classes, str) or not isinstance(classes, Iterable):
            raise ParameterError(f"classes must be a list of class names, got {_short(classes)}")
        names = list(classes)
        if not all(_hashable(c) for c in names) or len(set(names)) != len(names):
            raise ParameterError("classes must be distinct hashable names")
        unknown = [v for v in seen if v not in set(names)]
        if unknown:
            raise ParameterError(
                f"label(s) {[_short(u, 30) for u in unknown[:5]]} are not among the classes "
                f"{[_short(c, 30) for c in names[:10]]}; add them as classes first"
            )
    if not names:
        raise ParameterError("there must be at least one class")
    pos = {c: i for i, c in enumerate(names)}
    remap = np.array([pos[v] for v in seen], dtype=np.int64)
    return tuple(names), remap[val_codes]


def _annotator_codes(
    seen: np.ndarray, annotators: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    if annotators is None:
        names = _sorted_if_possible(seen)
    else:
        names = list(annotators)
        if not all(_hashable(a) for a in names) or len(set(names)) != len(names):
            raise ParameterError("annotators must be distinct hashable names")
        extra = [a for a in seen if a not in set(names)]
        if extra:
            raise ParameterError(f"annotator(s) {extra[:5]} voted but are not in annotators=")
    pos = {a: i for i, a in enumerate(names)}
    arr = np.empty(len(names), dtype=object)
    arr[:] = names
    return arr, np.array([pos[a] for a in seen], dtype=np.int64)

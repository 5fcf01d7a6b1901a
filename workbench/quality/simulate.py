"""Simulated annotators: stated behaviour, seeded, labeling through the real labeling path.

For demonstrations, tests and benchmarks of the quality tools, a :class:`SimulatedAnnotator`
stands in for a person whose behaviour is known exactly. :func:`simulate` gives each one a
:class:`~workbench.labels.session.LabelingSession` over the items assigned to them
(:func:`workbench.quality.assign`) and answers item after item with ``session.submit(value)``,
so every label is an ordinary event in the store (annotator, round, task, time), the session
serves only that annotator's items, blind, and nothing bypasses the checks a person's label goes
through. :func:`answers` gives the same labels for an assignment plan without a store, for
repeating a simulation over many seeds in memory.

Behaviours
----------
- :func:`careful`: wrong on ``error_rate`` of the items (default 2 %).
- :func:`careless`: wrong on ``error_rate`` of the items (default 20 %).
- :func:`biased`: mistakes class ``a`` for class ``b`` at ``rate`` for each stated pair
  (default ``horse → zebra`` and ``cat → dog`` at 40 %), otherwise careful.

A wrong answer from the error rate is a class drawn uniformly from the *other* classes, so the
error rate is the probability of a wrong label. For a biased annotator the confusion is decided
first: a horse is called a zebra with probability ``rate``, and otherwise it is wrong with
probability ``error_rate`` like any other item (:meth:`SimulatedAnnotator.error_probability`).

Determinism
-----------
An annotator's answer for an item depends only on the seed, the annotator's name and the item's
id (its random stream is seeded by the three), never on the order in which items are served:
the same assignment gives the same labels, and a simulation interrupted and run again resumes
(the session skips what is done) with the answers it would have given in one go.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_int, check_probability
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore

__all__ = ["SIMULATION_COLUMNS", "SimulatedAnnotator", "answers", "biased", "careful", "careless",
           "simulate"]  # fmt: skip

#: Columns of :func:`simulate`'s table: one row per label given.
SIMULATION_COLUMNS = ["id", "annotator", "truth", "value", "correct", "event"]

#: Default confusions of :func:`biased`: pairs of classes of the animals sample that look alike.
DEFAULT_CONFUSIONS: dict[str, str] = {"horse": "zebra", "cat": "dog"}


@dataclass(frozen=True)
class SimulatedAnnotator:
    """An annotator whose mistakes follow a stated rule (see the module notes).

    Parameters
    ----------
    name
        The annotator's name in the store.
    behaviour
        A short description (``"careful"``, ``"careless"``, ``"biased"`` or your own).
    error_rate
        Probability of a wrong label, a class drawn uniformly from the other classes.
    confusions
        ``{true class: (class given instead, rate)}``: on an item of the true class, the other
        class is given with probability ``rate`` (decided before ``error_rate`` applies).
    seed
        With the name and the item id, fixes every answer.
    """

    name: str
    behaviour: str = "custom"
    error_rate: float = 0.0
    confusions: Mapping[str, tuple[str, float]] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ParameterError(f"name must be a non-empty text, got {self.name!r}")
        check_probability(self.error_rate, "error_rate")
        check_int(self.seed, "seed", low=0)
        conf = dict(self.confusions or {})
        for true, pair in conf.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ParameterError(
                    f"confusions maps a true class to (class given instead, rate); got "
                    f"{true!r}: {pair!r}"
                )
            given, rate = pair
            check_probability(rate, f"the rate of confusing {true!r} with {given!r}")
            if given == true:
                raise ParameterError(f"confusing {true!r} with itself is not a mistake")
        object.__setattr__(self, "confusions", conf)

    def rng(self, sample_id: str) -> np.random.Generator:
        """The random stream of this annotator on one item (seed, name and id fix it)."""
        key = [self.seed, zlib.crc32(self.name.encode()), zlib.crc32(str(sample_id).encode())]
        return np.random.default_rng(key)

    def answer(self, sample_id: str, truth: Any, classes: Sequence[Any]) -> Any:
        """The label this annotator gives item ``sample_id`` whose true class is ``truth``."""
        rng = self.rng(sample_id)
        u_confuse, u_error, u_pick = rng.random(3)
        confused = self.confusions.get(truth)
        if confused is not None and u_confuse < confused[1]:
            return confused[0]
        if u_error < self.error_rate:
            others = [c for c in classes if c != truth]
            if others:
                return others[int(u_pick * len(others))]
        return truth

    def error_probability(self, truth: Any, n_classes: int) -> float:
        """Probability that this annotator labels an item of class ``truth`` wrongly."""
        base = self.error_rate if n_classes > 1 else 0.0
        confused = self.confusions.get(truth)
        if confused is None:
            return base
        rate = confused[1]
        # The confusion comes first; otherwise a random error may still happen (and may even
        # land on the confused class: it is wrong either way).
        return rate + (1.0 - rate) * base

    def describe(self) -> str:
        """The behaviour in words (for tables in notebooks and reports)."""
        parts = [f"{self.error_rate:.0%} random errors"]
        parts += [f"{t} → {g} at {r:.0%}" for t, (g, r) in self.confusions.items()]
        return f"{self.behaviour}: " + ", ".join(parts)


def careful(name: str, *, error_rate: float = 0.02, seed: int = 0) -> SimulatedAnnotator:
    """A careful annotator: wrong on ``error_rate`` of the items (2 % by default)."""
    return SimulatedAnnotator(name, "careful", error_rate=error_rate, seed=seed)


def careless(name: str, *, error_rate: float = 0.2, seed: int = 0) -> SimulatedAnnotator:
    """A careless annotator: wrong on ``error_rate`` of the items (20 % by default), the wrong
    class drawn uniformly from the others."""
    return SimulatedAnnotator(name, "careless", error_rate=error_rate, seed=seed)


def biased(
    name: str,
    confusions: Mapping[str, str] | None = None,
    *,
    rate: float = 0.4,
    error_rate: float = 0.02,
    seed: int = 0,
) -> SimulatedAnnotator:
    """An annotator who mistakes similar classes: ``{true: given}`` at ``rate`` each
    (default :data:`DEFAULT_CONFUSIONS`: horse → zebra, cat → dog), otherwise careful."""
    pairs = DEFAULT_CONFUSIONS if confusions is None else confusions
    if not isinstance(pairs, Mapping) or not pairs:
        raise ParameterError("confusions maps true classes to the classes given instead")
    conf = {t: (g, check_probability(rate, "rate")) for t, g in pairs.items()}
    return SimulatedAnnotator(name, "biased", error_rate=error_rate, confusions=conf, seed=seed)


def _truth(catalog: Catalog, truth: Mapping[str, Any] | pd.Series | None) -> dict[str, Any]:
    if truth is None:
        if "label" not in catalog.df.columns:
            raise ParameterError("the catalog has no labels: pass truth={sample id: class}")
        df = catalog.df[catalog.df["label"].notna()]
        return dict(zip(df["id"].astype(str), df["label"].astype(str), strict=True))
    return _truth_map(truth)


def _truth_map(truth: Any) -> dict[str, Any]:
    if not isinstance(truth, (Mapping, pd.Series)):
        raise ParameterError("truth maps sample ids to their true class (a dict or Series)")
    return {str(k): v for k, v in dict(truth).items()}


def _team(annotators: Any) -> list[SimulatedAnnotator]:
    people = list(annotators) if isinstance(annotators, Sequence) else None
    if not people or not all(isinstance(a, SimulatedAnnotator) for a in people):
        raise ParameterError("annotators must be a non-empty list of SimulatedAnnotator")
    if len({a.name for a in people}) != len(people):
        raise ParameterError("simulated annotators must have distinct names")
    return people


def answers(
    plan: pd.DataFrame,
    annotators: Sequence[SimulatedAnnotator],
    truth: Mapping[str, Any] | pd.Series,
    classes: Sequence[Any],
) -> pd.DataFrame:
    """The labels the annotators would give for an assignment plan, without a store.

    The same answers :func:`simulate` records for that plan (each depends only on the seed, the
    annotator and the item), in memory: for repeating a simulation over many seeds quickly.

    Parameters
    ----------
    plan
        An assignment (:func:`workbench.quality.plan_assignment`): columns ``id`` and
        ``annotator``.
    annotators
        :class:`SimulatedAnnotator` objects, one for every annotator of the plan.
    truth
        Sample id → true class, for every item of the plan.
    classes
        The classes to answer from.

    Returns
    -------
    pandas.DataFrame
        ``id, annotator, truth, value, correct`` in plan order (for
        :meth:`~workbench.quality.Votes.from_frame`).
    """
    people = {a.name: a for a in _team(annotators)}
    if not isinstance(plan, pd.DataFrame) or not {"id", "annotator"} <= set(plan.columns):
        raise ParameterError("plan must be an assignment table with columns id and annotator")
    answers_of = _truth_map(truth)
    unknown = sorted(set(plan["annotator"]) - set(people))
    if unknown:
        raise ParameterError(f"the plan names annotators that are not simulated: {unknown[:5]}")
    missing = [i for i in plan["id"] if i not in answers_of]
    if missing:
        raise ParameterError(f"no true class for {len(missing)} item(s), e.g. {missing[0]!r}")
    classes = list(classes)
    rows = []
    for sid, who in zip(plan["id"], plan["annotator"], strict=True):
        true = answers_of[sid]
        value = people[who].answer(sid, true, classes)
        rows.append((sid, who, true, value, value == true))
    return pd.DataFrame(rows, columns=["id", "annotator", "truth", "value", "correct"])


def simulate(
    catalog: Catalog,
    store: LabelStore,
    annotators: Sequence[SimulatedAnnotator],
    truth: Mapping[str, Any] | pd.Series | None = None,
    *,
    round: int = 0,
    task: str = "class",
) -> pd.DataFrame:
    """Let each simulated annotator label the items assigned to them, through a LabelingSession.

    Parameters
    ----------
    catalog
        The samples (as for :class:`~workbench.labels.session.LabelingSession`).
    store
        The label store holding an assignment for ``round`` and ``task``
        (:func:`workbench.quality.assign`): each annotator labels exactly their share.
    annotators
        :class:`SimulatedAnnotator` objects with distinct names, each in the assignment.
    truth
        The true class of each item served, sample id → class; default: the catalog's
        ``label`` column.
    round, task
        The store's round and task of the assignment; the labels go there.

    Returns
    -------
    pandas.DataFrame
        :data:`SIMULATION_COLUMNS`: one row per label given in this call (items an annotator had
        already done before are left as they are and not listed).

    Raises
    ------
    ParameterError
        Not simulated annotators, repeated names, an annotator without an assignment, an item
        served without a true class, or a class (true or confused) the store does not offer.
        These are checked before anything is written.
    """
    from workbench.labels.session import LabelingSession

    people = _team(annotators)
    known = _truth(catalog, truth)
    sessions = []
    try:
        for a in people:  # open every session first: a bad setup fails before any label
            sessions.append(
                LabelingSession(
                    catalog, store, annotator=a.name, round=round, task=task, assigned_only=True
                )
            )
        for a, s in zip(people, sessions, strict=True):
            _check_setup(a, s, known)
        rows = []
        for a, s in zip(people, sessions, strict=True):
            while (sid := s.current) is not None:
                value = a.answer(sid, known[sid], s.classes)
                event = s.submit(value)
                rows.append((sid, a.name, known[sid], value, value == known[sid], event))
    finally:
        for s in sessions:
            s.close()
    return pd.DataFrame(rows, columns=SIMULATION_COLUMNS)


def _check_setup(a: SimulatedAnnotator, session: Any, known: Mapping[str, Any]) -> None:
    missing = [i for i in session.queue if i not in known]
    if missing:
        raise ParameterError(
            f"no true class for {len(missing)} of {a.name!r}'s items (e.g. {missing[0]!r}): "
            "pass truth={sample id: class} covering every assigned item"
        )
    offered = set(session.classes)
    needed = {known[i] for i in session.queue} | {g for g, _ in a.confusions.values()}
    unknown = sorted(map(str, needed - offered))
    if unknown:
        raise ParameterError(
            f"{a.name!r} would give classes the store does not offer: {unknown[:5]}; add them "
            "with store.add_classes(...)"
        )

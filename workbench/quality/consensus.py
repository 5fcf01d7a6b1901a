"""Consensus: one label per item from several annotators' votes, with a confidence and the method.

Methods
-------
- :func:`majority_vote` — the most voted class. A tie is broken by the model's probability when
  ``pred_probs`` is given, else by the annotators' estimated reliability; when that still ties,
  the item is **marked tied** (no label; it goes to review). Never a coin flip.
- :class:`DawidSkene` / :func:`dawid_skene` — EM over each annotator's confusion matrix, in log
  space, with a Dirichlet prior on every row of every confusion matrix. The prior is centred on
  the annotator's own *one-coin* matrix (their accuracy on the diagonal, the rest spread evenly),
  so an annotator with few labels stays close to "right with probability q" and only one with
  many labels earns a full confusion matrix of their own. ``one_coin=True`` fits the one-coin
  model itself (one accuracy per annotator).
  With ``pred_probs``, the model joins as one more annotator (``"model"``: its most probable
  class on every item), whose confusion matrix EM estimates like anyone's, so a weak model
  earns little weight and a strong one much (method ``"dawid_skene+model"``).
- :func:`crowdlab` — cleanlab's CROWDLAB (``cleanlab.multiannotator``) when model probabilities
  exist; it weighs the model against each annotator.
- :func:`consensus` with ``method="auto"`` (the default) picks Dawid–Skene with the
  one-coin-centred prior (see :data:`DEFAULT_PRIOR`), with the model as an annotator when
  ``pred_probs`` is given (see :data:`AUTO_NOTE` for the measurement behind the choice).

Every method returns the same table (:data:`COLUMNS`): ``id, label, confidence, method, votes,
tied, events`` — ``label`` is missing (``None``/``NaN``) for a tied item, ``events`` the store
event ids of the votes behind it (when the votes came from the store). :func:`write_consensus`
appends the labels to the store as a consensus round.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_choice, check_int, check_real
from workbench.errors import ParameterError
from workbench.quality._votes import CONSENSUS_PREFIX, Votes
from workbench.quality.agreement import _need_votes

if TYPE_CHECKING:
    from workbench.labels import LabelStore

__all__ = [
    "AUTO_NOTE",
    "COLUMNS",
    "DEFAULT_PRIOR",
    "METHODS",
    "MODEL_ANNOTATOR",
    "DawidSkene",
    "consensus",
    "crowdlab",
    "dawid_skene",
    "majority_vote",
    "write_consensus",
]

#: Columns of every consensus table.
COLUMNS = ["id", "label", "confidence", "method", "votes", "tied", "events"]
#: Methods :func:`consensus` knows.
METHODS = ("auto", "majority", "dawid_skene", "one_coin", "crowdlab")
#: The annotator name the model votes under in Dawid–Skene with ``pred_probs``.
MODEL_ANNOTATOR = "model"
#: Why ``method="auto"`` with ``pred_probs`` is Dawid–Skene with the model as an annotator and
#: not CROWDLAB (the four settings of ``benchmarks/bench_quality.py`` on animals, 10 classes,
#: simulated annotators of seed 0; accuracy minus majority vote with the model breaking ties).
#: A well-regularised model out of fold (0.954 accurate; labels with 10 % class-conditional
#: noise): CROWDLAB +0.004 to +0.058, Dawid–Skene+model +0.004 to +0.064. The same kind of model
#: over-fitted (C=3, 0.829 accurate): CROWDLAB -0.018 to -0.058 in every setting, Dawid–Skene+model
#: still +0.003 to +0.049: it estimates the model's confusion matrix from the data, where
#: CROWDLAB trusts the model's probabilities. The benchmark checks the rule on fresh seeds.
AUTO_NOTE = "dawid_skene with the model as one more annotator"
#: Default strength of the Dirichlet prior in :class:`DawidSkene`: ``K**2`` pseudo-counts per
#: confusion-matrix row for ``K`` classes (``K`` per cell of a uniform row). Chosen on simulated
#: pools with 10 classes, 3 votes per item, mean accuracy over 3 seeds (majority / prior 0 / 10 /
#: 30 / 100 / 300 / one-coin): 3 annotators careful, careless, biased: .982 / .986 / .986 / .986 /
#: .986 / .985 / .982; 5 of mixed quality: .843 / .886 / .887 / .888 / .886 / .878 / .853; a crowd
#: of 300 with 30-300 labels each, errors spread evenly: .879 / .848 / .867 / .878 / .883 / .885 /
#: .885; the same crowd with a third confusing one class for another: .872 / .882 / .894 / .896 /
#: .891 / .886 / .878. Only 100 (= K**2) stays at or above majority vote everywhere; weaker priors
#: fall below it on the evenly-erring crowd (the known trap of full confusion matrices).
DEFAULT_PRIOR = "classes**2"

# Two posteriors closer than this are a tie: the item is marked tied, not decided by rounding.
_TIE = 1e-9


# ------------------------------------------------------------------ the shared result table
def _table(
    votes: Votes,
    label_code: np.ndarray,
    confidence: np.ndarray,
    method: np.ndarray | str,
    tied: np.ndarray,
) -> pd.DataFrame:
    labels = np.empty(votes.n_items, dtype=object)
    classes = np.empty(votes.n_classes, dtype=object)
    classes[:] = list(votes.classes)
    labels[~tied] = classes[label_code[~tied]]
    labels[tied] = None
    if votes.event is None:
        events: list[Any] = [None] * votes.n_items
    else:
        starts = np.searchsorted(votes.item, np.arange(votes.n_items + 1))
        ev = votes.event.tolist()
        events = [tuple(ev[s:e]) for s, e in itertools.pairwise(starts.tolist())]
    return pd.DataFrame(
        {
            "id": votes.items,
            "label": labels,
            "confidence": confidence.astype(float),
            "method": method,
            "votes": votes.votes_per_item(),
            "tied": tied,
            "events": events,
        },
        columns=COLUMNS,
    )


# ------------------------------------------------------------------ majority vote
def _reliability(votes: Votes, reliability: Any) -> np.ndarray | None:
    """Per-annotator weights: given, estimated ("estimate") or none."""
    if reliability is None:
        return None
    if isinstance(reliability, str):
        check_choice(reliability, "reliability", ["estimate"])
        return _estimated_reliability(votes)
    if not isinstance(reliability, Mapping):
        raise ParameterError(
            "reliability must be 'estimate', None or a mapping annotator -> weight, "
            f"got {type(reliability).__name__}"
        )
    w = np.zeros(votes.n_annotators)
    for name, value in reliability.items():
        w[votes.annotator_index(name)] = check_real(value, f"reliability of {name!r}", low=0)
    return w


def _estimated_reliability(votes: Votes) -> np.ndarray:
    """How often each annotator agrees with the clear majority of the *other* votes on an item.

    Leave-one-out, so an annotator's own vote never vouches for them; Laplace-smoothed
    ``(agree + 1) / (n + 2)`` so an annotator with few such items sits near 1/2.
    """
    counts = votes.counts()
    others = counts[votes.item].copy()
    others[np.arange(len(votes)), votes.code] -= 1
    top = others.max(axis=1)
    clear = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)
    agree = clear & (others[np.arange(len(votes)), votes.code] == top)
    m = votes.n_annotators
    n = np.bincount(votes.annotator[clear], minlength=m)
    hits = np.bincount(votes.annotator[agree], minlength=m)
    return (hits + 1.0) / (n + 2.0)


def _unique_best(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max per row and whether it is the only maximum (``-inf`` marks excluded classes)."""
    best = score.argmax(axis=1)
    top = score[np.arange(len(score)), best]
    unique = np.isclose(score, top[:, None], rtol=0, atol=_TIE).sum(axis=1) == 1
    return best, unique


def majority_vote(
    votes: Votes, *, pred_probs: Any = None, reliability: Any = "estimate"
) -> pd.DataFrame:
    """The most voted class per item; ties broken by model, then reliability, else marked tied.

    Parameters
    ----------
    pred_probs
        Model probabilities (``(n_items, n_classes)`` in ``votes.items`` order, or a DataFrame
        indexed by id with a column per class): among the tied classes, the most probable wins.
    reliability
        ``"estimate"`` (default: :func:`_estimated_reliability`, each annotator's leave-one-out
        agreement with the others), a mapping annotator → weight, or ``None``. Among classes
        still tied, the one whose voters weigh most wins.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`; ``confidence`` is the share of the item's votes for the label;
        ``method`` is ``"majority"``, ``"majority+model"``, ``"majority+reliability"`` or
        ``"tied"`` (then ``label`` is missing and ``tied`` is True).
    """
    votes = _need_votes(votes)
    counts = votes.counts().astype(float)
    n = counts.sum(axis=1)
    best, clear = _unique_best(counts)
    method = np.where(clear, "majority", "tied").astype(object)
    candidates = counts == counts.max(axis=1, keepdims=True)
    if pred_probs is not None and not clear.all():
        probs = votes.align_probs(pred_probs)
        pick, ok = _unique_best(np.where(candidates, probs, -np.inf))
        use = ~clear & ok
        best[use], method[use], clear = pick[use], "majority+model", clear | use
    weights = _reliability(votes, reliability)
    if weights is not None and not clear.all():
        k = votes.n_classes
        flat = np.bincount(
            votes.item * k + votes.code,
            weights=weights[votes.annotator],
            minlength=votes.n_items * k,
        )
        pick, ok = _unique_best(np.where(candidates, flat.reshape(-1, k), -np.inf))
        use = ~clear & ok
        best[use], method[use], clear = pick[use], "majority+reliability", clear | use
    share = counts[np.arange(votes.n_items), best] / n
    return _table(votes, best, share, method, ~clear)


# ------------------------------------------------------------------ Dawid–Skene
def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(axis=1, keepdims=True)))[:, 0]


class DawidSkene:
    """Dawid–Skene EM with a Dirichlet prior on each annotator's confusion matrix.

    Parameters
    ----------
    one_coin
        Fit one accuracy per annotator (errors spread evenly over the other classes) instead of
        a full confusion matrix.
    prior
        Pseudo-counts per confusion-matrix row (full model), centred on the annotator's own
        one-coin matrix; for the one-coin model, pseudo-counts on the accuracy centred on the
        pooled accuracy of everyone. 0 is plain maximum likelihood (prone to overfit). The
        default, :data:`DEFAULT_PRIOR`, is ``K**2`` for ``K`` classes (``K`` for one-coin).
    max_iter, tol
        EM stops after ``max_iter`` rounds or when the log-likelihood gains less than ``tol``
        per item.

    Attributes
    ----------
    confusion_ : numpy.ndarray
        ``(n_annotators, n_classes, n_classes)``: ``confusion_[a, true, given]``.
    accuracy_ : numpy.ndarray
        Each annotator's estimated probability of giving the true class (prior-weighted mean of
        the confusion matrix's diagonal).
    class_prior_ : numpy.ndarray
        Estimated share of each true class.
    posterior_ : numpy.ndarray
        ``(n_items, n_classes)`` probability of each true class per item.
    n_iter_ : int
        EM rounds run.
    """

    def __init__(
        self,
        *,
        one_coin: bool = False,
        prior: float | str = DEFAULT_PRIOR,
        max_iter: int = 100,
        tol: float = 1e-7,
    ) -> None:
        self.one_coin = one_coin
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, votes: Votes) -> DawidSkene:
        """Run EM from the majority vote's soft counts; returns ``self``."""
        votes = _need_votes(votes)
        if isinstance(self.prior, str) and self.prior == DEFAULT_PRIOR:
            # One parameter per annotator needs less shrinkage than K * (K - 1).
            k = votes.n_classes
            prior = float(k if self.one_coin else k**2)
        else:
            prior = check_real(self.prior, "prior", low=0)
        max_iter = check_int(self.max_iter, "max_iter", low=1)
        tol = check_real(self.tol, "tol", low=0)
        counts = votes.counts().astype(float)
        post = counts / counts.sum(axis=1, keepdims=True)
        starts = np.searchsorted(votes.item, np.arange(votes.n_items))
        last = -np.inf
        self.n_iter_ = 0
        for _ in range(max_iter):
            self.n_iter_ += 1
            log_prior, log_conf = self._m_step(votes, post, prior)
            # E-step: log P(true = k | votes) ∝ log p_k + Σ_votes log π[a, k, given].
            per_vote = log_conf.transpose(0, 2, 1)[votes.annotator, votes.code]  # (votes, K)
            joint = log_prior + np.add.reduceat(per_vote, starts, axis=0)
            norm = _logsumexp(joint)
            post = np.exp(joint - norm[:, None])
            ll = float(norm.mean())
            if ll - last < tol:
                break
            last = ll
        self.class_prior_ = np.exp(log_prior)
        self.confusion_ = np.exp(log_conf)
        self.accuracy_ = np.einsum("akk,k->a", self.confusion_, self.class_prior_)
        self.posterior_ = post
        self.votes_ = votes
        return self

    def _m_step(
        self, votes: Votes, post: np.ndarray, prior: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class prior and per-annotator confusion from the posteriors (pseudo-counts added)."""
        m, k = votes.n_annotators, votes.n_classes
        # soft[a, true, given] = Σ over a's votes with that given class of P(true | item).
        w = post[votes.item]  # (votes, K)
        key = votes.annotator * k + votes.code
        soft = np.stack([np.bincount(key, weights=w[:, t], minlength=m * k) for t in range(k)])
        soft = soft.reshape(k, m, k).transpose(1, 0, 2)
        class_prior = (post.sum(axis=0) + 1.0) / (votes.n_items + k)
        diag = np.einsum("akk->a", soft)
        total = soft.sum(axis=(1, 2))
        pooled = (diag.sum() + 1.0) / (total.sum() + 2.0)
        if k == 1:
            return np.log(class_prior), np.zeros((m, 1, 1))
        if self.one_coin:
            q = (diag + prior * pooled + 1.0) / (total + prior + 2.0)
            conf = _one_coin_matrix(q, k)
        else:
            # Centre each annotator's prior on their own one-coin matrix (accuracy shrunk to the
            # pooled one), so few labels give a one-coin annotator, many a full matrix.
            q = (diag + k * pooled) / (total + k)
            centre = _one_coin_matrix(q, k)
            conf = soft + prior * centre + 1e-9
            conf /= conf.sum(axis=2, keepdims=True)
        return np.log(class_prior), np.log(conf)

    def consensus(self) -> pd.DataFrame:
        """The fitted posteriors as a consensus table (:data:`COLUMNS`)."""
        name = "one_coin" if self.one_coin else "dawid_skene"
        best, unique = _unique_best(self.posterior_)
        conf = self.posterior_[np.arange(len(best)), best]
        method = np.where(unique, name, "tied").astype(object)
        return _table(self.votes_, best, conf, method, ~unique)


def _one_coin_matrix(q: np.ndarray, k: int) -> np.ndarray:
    """``(len(q), k, k)``: ``q`` on the diagonal, ``(1 - q) / (k - 1)`` elsewhere."""
    off = (1.0 - q) / (k - 1)
    out = np.broadcast_to(off[:, None, None], (len(q), k, k)).copy()
    idx = np.arange(k)
    out[:, idx, idx] = q[:, None]
    return out


def dawid_skene(
    votes: Votes,
    *,
    one_coin: bool = False,
    prior: float | str = DEFAULT_PRIOR,
    max_iter: int = 100,
    pred_probs: Any = None,
) -> pd.DataFrame:
    """Dawid–Skene consensus (see :class:`DawidSkene`); ``confidence`` is the posterior.

    With ``pred_probs`` (as in :func:`majority_vote`, ideally out of fold) the model's most
    probable class on every item is one more vote, by annotator :data:`MODEL_ANNOTATOR`, with a
    confusion matrix of its own; ``method`` is then ``"dawid_skene+model"`` (``"one_coin+model"``)
    and ``votes`` and ``events`` still count the annotators' votes only. EM assumes the model's
    errors are independent of the annotators' given the true class; a model trained on these
    very labels in-sample breaks that (use out-of-fold probabilities).
    """
    votes = _need_votes(votes)
    model = DawidSkene(one_coin=one_coin, prior=prior, max_iter=max_iter)
    if pred_probs is None:
        return model.fit(votes).consensus()
    probs = votes.align_probs(pred_probs)
    model.fit(_with_model_votes(votes, probs.argmax(axis=1)))
    name = ("one_coin" if one_coin else "dawid_skene") + "+model"
    best, unique = _unique_best(model.posterior_)
    conf = model.posterior_[np.arange(len(best)), best]
    return _table(votes, best, conf, np.where(unique, name, "tied").astype(object), ~unique)


def _with_model_votes(votes: Votes, guess: np.ndarray) -> Votes:
    """``votes`` plus one vote per item by :data:`MODEL_ANNOTATOR` (class code ``guess``)."""
    if MODEL_ANNOTATOR in set(votes.annotators.tolist()):
        raise ParameterError(
            f"an annotator is named {MODEL_ANNOTATOR!r}, the name the model votes under; "
            "rename them to use pred_probs with Dawid–Skene"
        )
    m = votes.n_annotators
    item = np.concatenate([votes.item, np.arange(votes.n_items)])
    annotator = np.concatenate([votes.annotator, np.full(votes.n_items, m)])
    code = np.concatenate([votes.code, guess.astype(np.int64)])
    order = np.lexsort((annotator, item))
    names = np.empty(m + 1, dtype=object)
    names[:m], names[m] = votes.annotators, MODEL_ANNOTATOR
    return Votes(items=votes.items, annotators=names, classes=votes.classes, item=item[order],
                 annotator=annotator[order], code=code[order])  # fmt: skip


# ------------------------------------------------------------------ CROWDLAB
def crowdlab(votes: Votes, pred_probs: Any) -> pd.DataFrame:
    """CROWDLAB consensus from cleanlab, weighing the model against every annotator.

    ``pred_probs`` as in :func:`majority_vote` (ideally out-of-fold). ``confidence`` is cleanlab's
    ``consensus_quality_score``. Annotators without a vote are left out (cleanlab refuses them).
    """
    from cleanlab.multiannotator import get_label_quality_multiannotator

    votes = _need_votes(votes)
    probs = votes.align_probs(pred_probs)
    sums = probs.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        raise ParameterError("each row of pred_probs must sum to 1 (probabilities of the classes)")
    matrix = votes.matrix()
    matrix = matrix.loc[:, matrix.notna().any(axis=0)]
    try:
        result = get_label_quality_multiannotator(
            matrix.reset_index(drop=True),
            probs,
            verbose=False,
            return_detailed_quality=False,
            return_annotator_stats=False,
        )
    except ValueError as exc:
        raise ParameterError(f"CROWDLAB could not run on these votes: {exc}") from exc
    quality = result["label_quality"]
    best = quality["consensus_label"].to_numpy(dtype=np.int64)
    tied = np.zeros(votes.n_items, dtype=bool)
    return _table(votes, best, quality["consensus_quality_score"].to_numpy(), "crowdlab", tied)


# ------------------------------------------------------------------ one entry point
def consensus(
    votes: Votes,
    method: str = "auto",
    *,
    pred_probs: Any = None,
    prior: float | str = DEFAULT_PRIOR,
    reliability: Any = "estimate",
) -> pd.DataFrame:
    """Consensus by ``method`` (:data:`METHODS`); ``"auto"``: Dawid–Skene with the default
    prior, with the model as one more annotator when ``pred_probs`` is given (see
    :func:`dawid_skene` and :data:`AUTO_NOTE`). Dawid–Skene and one-coin use ``pred_probs``
    that way too; CROWDLAB needs it; majority vote breaks ties with it."""
    check_choice(method, "method", METHODS)
    if method == "auto":
        method = "dawid_skene"
    if method == "majority":
        return majority_vote(votes, pred_probs=pred_probs, reliability=reliability)
    if method == "crowdlab":
        if pred_probs is None:
            raise ParameterError("CROWDLAB needs model probabilities: pass pred_probs=...")
        return crowdlab(votes, pred_probs)
    return dawid_skene(votes, one_coin=method == "one_coin", prior=prior, pred_probs=pred_probs)


def write_consensus(
    store: LabelStore, result: pd.DataFrame, *, round: int, task: str = "class"
) -> pd.DataFrame:
    """Append a consensus to the store as round ``round``, in one transaction (all or nothing).

    Each decided item becomes a ``label`` event with source ``"consensus"`` by annotator
    ``"consensus:<method>"`` (the method family: ``majority``, ``dawid_skene``, ``one_coin``,
    ``crowdlab``) whose ``extra`` is ``{"method": <the row's method>, "confidence": <float or
    null>, "events": [<event ids of the votes behind it>]}``; tied items are not written (they
    go to review). :meth:`Votes.from_store` leaves these annotators out, so a consensus never
    votes on itself, and :func:`workbench.quality.final.final_labels` reads them back.

    Returns
    -------
    pandas.DataFrame
        The rows written (the ``result`` rows with a label).
    """
    from workbench.labels import ImportRow

    missing = [c for c in COLUMNS if c not in getattr(result, "columns", [])]
    if not isinstance(result, pd.DataFrame) or missing:
        raise ParameterError(f"result must be a consensus table with columns {COLUMNS}")
    round = check_int(round, "round", low=0)
    decided = result[~result["tied"].astype(bool) & result["label"].notna()]
    if decided.empty:
        raise ParameterError("nothing to write: every item is tied; review them first")
    rows = []
    for r in decided.itertuples(index=False):
        method = str(r.method)
        rows.append(
            ImportRow(
                sample_id=r.id,
                value=r.label,
                annotator=f"{CONSENSUS_PREFIX}{method.split('+')[0]}",
                round=round,
                task=task,
                where=f"item {r.id!r}",
                source="consensus",
                extra={
                    "method": method,
                    "confidence": _finite_or_none(r.confidence),
                    "events": _event_ids(r.events),
                },
            )
        )
    store.import_batch(rows, add_classes=False, origin="consensus")
    return decided.reset_index(drop=True)


def _finite_or_none(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _event_ids(events: Any) -> list[int]:
    """The vote event ids of a consensus row (none when the votes did not come from a store)."""
    if events is None or (isinstance(events, float) and events != events):
        return []
    return [int(e) for e in events]

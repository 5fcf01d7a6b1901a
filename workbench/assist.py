"""Assisted labeling: a suggestion model on image embeddings, and an active-learning order.

Three parts, each usable alone from a plain script:

1. :class:`~workbench.embed.Embedder` (in :mod:`workbench.embed`) turns images into feature
   vectors ``x`` with a pretrained torchvision classifier loaded offline by
   :mod:`workbench.models`.
2. :class:`Assistant` is the suggestion model ``y = g(x; w)``: a scikit-learn classifier on the
   embeddings (standardised logistic regression by default, optionally blended with label
   propagation, :mod:`workbench.propagation`) that proposes the likely classes of an unlabeled
   image and reports its own cross-validated accuracy. :meth:`Assistant.refit_async` retrains on
   a background thread so a labeler never waits for it, and the model in use is always the
   newest fit that completed.
3. :func:`order` ranks unlabeled samples for labeling: most uncertain first (least confidence,
   margin or entropy), optionally spread out over the embedding space so one batch does not hold
   ten near-copies of the same image; ``"random"`` is the baseline.

The names that lived here before the split (``Embedder``, ``GraphBlend``, ``ensure_weights``,
``resolve_weights``, ``load_model``, ``OFFLINE_WEIGHTS``, ``WeightsError``) are re-exported, so
``from workbench.assist import Embedder`` keeps working. torch, torchvision and tqdm are imported
on first use, so ``import workbench.assist`` stays cheap for code that only needs :func:`order`
or :class:`Assistant`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError

from workbench._validation import (
    check_choice,
    check_positive_int,
    check_real,
    is_int,
    is_real,
)
from workbench.background import Latest
from workbench.embed import Embedder
from workbench.errors import ParameterError, WeightsError
from workbench.models import (
    OFFLINE_WEIGHTS,
    PREFERRED_WEIGHTS,
    ensure_weights,
    load_model,
    resolve_weights,
)
from workbench.propagation import GraphBlend, _dense_float, _graph, _standardise

# Assistants pickled before the split name these classes here; unpickling looks them up by name.
from workbench.propagation import _KnnGraph as _KnnGraph

__all__ = [
    "OFFLINE_WEIGHTS",
    "PREFERRED_WEIGHTS",
    "STRATEGIES",
    "Assistant",
    "Embedder",
    "GraphBlend",
    "WeightsError",
    "default_classifier",
    "ensure_weights",
    "load_model",
    "order",
    "resolve_weights",
    "uncertainty",
]

# ---------------------------------------------------------------------------------------------
# Suggestion model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    """Everything one fit learned; swapped in as a whole so readers never see half of two."""

    classifier: Any
    classes: np.ndarray
    cv_accuracy: float
    n_labels: int
    seconds: float
    generation: int
    n_features: int | None = None  # None in Assistants pickled before it was recorded


_FIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _single_threaded_blas():
    """Run a fit with one BLAS thread.

    The solvers' matrix products are small (labels x features); with two BLAS threads on two
    busy cores they were 5-50x slower (0.3-2 s instead of 0.04 s at 800 labels), the threads
    mostly waiting for each other. The limit is process-wide, hence the lock: fits take turns.
    """
    from threadpoolctl import threadpool_limits

    with _FIT_LOCK, threadpool_limits(limits=1, user_api="blas"):
        yield


def _scale_stats(scale_on: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (0 -> 1, as in StandardScaler) of the rows of ``scale_on``."""
    Z = np.asarray(scale_on)
    if Z.ndim != 2 or len(Z) < 2 or not np.issubdtype(Z.dtype, np.number):
        raise ParameterError(
            f"scale_on must be a 2-D numeric array (samples x features) with at least 2 rows, "
            f"got shape {Z.shape} and dtype {Z.dtype}"
        )
    mean = np.zeros(Z.shape[1])
    for start in range(0, len(Z), 4096):  # float64 sums without a float64 copy of all of Z
        mean += Z[start : start + 4096].sum(axis=0, dtype=np.float64)
    mean /= len(Z)
    var = np.zeros(Z.shape[1])
    for start in range(0, len(Z), 4096):
        var += ((Z[start : start + 4096] - mean) ** 2).sum(axis=0)
    std = np.sqrt(var / len(Z))
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise ParameterError("scale_on contains NaN or infinite values")
    return mean, np.where(std > 0, std, 1.0)


def default_classifier(
    random_state: int | None = 0, *, scale_on: Any = None, propagation: float = 0.0
) -> Any:
    """Standardised multinomial logistic regression (the :class:`Assistant` default).

    Parameters
    ----------
    random_state
        Seed of the solver.
    scale_on
        ``None``: standardise with the mean and std of the labelled samples of each fit (a
        ``StandardScaler``). An ``(n, d)`` array (the embeddings of every sample to label,
        labelled or not): standardise with its mean and std, fixed once, whatever gets labelled.
        Use it with active learning: an uncertainty order labels a biased set (images near the
        class boundaries), whose statistics distort the scaling. A feature that is almost constant
        on those labels gets a tiny std, so images that do use it get huge standardised values and
        confident wrong predictions, which an uncertainty order then never asks about. On the
        animals sample (margin order, C=1, one seed, 400 labels) one feature's std on the labels was
        1/20,000 of its std over all images; 70 % of the wrong held-out predictions had a
        standardised value above 20 (median of their largest: ~4,500), 69 % of them went to one
        class, and accuracy stayed at 0.78 from 200 to 440 labels (random order: 0.87 at 400).
    propagation
        0: the logistic regression alone. A weight in (0, 1) (needs ``scale_on``): a
        :class:`GraphBlend` of it with label propagation over a 10-nearest-neighbour graph of
        the ``scale_on`` rows, so each label also speaks for the images around it. The graph is
        built at the first fit (:mod:`workbench.ann`: exact search below 8,000 rows, k-means
        cells above; ~2 s for 10,000 and ~42 s for 100,000 1,280-d embeddings on 2 cores).
        ``0.7`` is the weight the notebooks use; see :func:`order` for how it was chosen. On the
        animals sample (``benchmarks/bench_label.py``, 224 px, 10 seeds) ``0.5`` cut the labels
        needed to reach 90 % of the all-labels accuracy from 121 to 99 in margin order and from
        230 to 204 in random order: margin needs 0.49x random's labels with it, 0.53x without.
        That split had 105 of its 2,000 held-out images with an exact twin in the pool; with
        duplicate groups kept on one side (10 seeds) margin needs 94.3 labels and random 164.8
        with ``0.5``: 0.5720x (95 % bootstrap interval over seeds 0.5168-0.6570), see
        :func:`order`.

    Notes
    -----
    ``C=3``. On mobilenet features (96 px) of the animals sample (``benchmarks/bench_label.py``,
    10 seeds; labels to reach 90 % of the all-labels accuracy), with ``scale_on`` the pool: margin
    order 210 at C=1, 196 at 2, 183 at 3, 187 at 5; random order 322, 313, 317, 291 (but all-labels
    accuracy 0.948 at 5 against 0.955-0.956 at 1-3, hence the lower target). At the native 224 px:
    margin 129 at C=1, 121 at 3, 120 at 10; random 248, 230, 225. At 96 px without
    ``scale_on``: margin 287 at C=1 and 289 at 3, random 321 and 315. Differences under ~15
    labels are noise: float rounding alone in the scaling statistics moved a 5-seed margin
    result by 10 labels.
    """
    _check_propagation(propagation, scale_on)
    if scale_on is None:
        return _logistic(random_state, None)
    return _scaled_classifier(random_state, scale_on, _scale_stats(scale_on), propagation)


def _check_propagation(weight: float, scale_on: Any) -> None:
    check_real(weight, "propagation", low=0, high=1, high_open=True)
    if weight and scale_on is None:
        raise ParameterError(
            "propagation spreads labels over a graph of every sample to label: pass their "
            "embeddings as scale_on=..."
        )


def _scaled_classifier(
    random_state: int | None, scale_on: Any, stats: tuple[np.ndarray, np.ndarray], weight: float
) -> Any:
    clf = _logistic(random_state, stats)
    return GraphBlend(clf, _graph(scale_on, stats), weight) if weight else clf


def _logistic(random_state: int | None, stats: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """:func:`default_classifier` from precomputed ``(mean, scale)`` (``None``: per fit)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if stats is None:
        scaler: Any = StandardScaler()
    else:
        scaler = FunctionTransformer(_standardise, kw_args={"mean": stats[0], "scale": stats[1]})
    return make_pipeline(
        scaler,
        LogisticRegression(C=3.0, max_iter=500, random_state=random_state),
    )


def _cv_accuracy(classifier: Any, X: np.ndarray, y: np.ndarray, cv: int, seed: int | None) -> float:
    """Pooled stratified k-fold accuracy; folds shrink with small classes (nan if impossible)."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    if not cv or cv < 2 or len(counts) < 2 or counts.max() < 2:
        return float("nan")
    n_splits = int(min(cv, max(2, np.median(counts)), len(y)))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    correct = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only 1 member": expected
        splits = list(folds.split(X, y))
    for train, test in splits:
        present = np.unique(y[train])
        if len(present) == 1:  # a fold can lose every other class when classes are tiny
            pred = np.full(len(test), present[0], dtype=y.dtype)
        else:
            pred = clone(classifier).fit(X[train], y[train]).predict(X[test])
        correct += int((pred == y[test]).sum())
    return correct / len(y)


class Assistant(ClassifierMixin, BaseEstimator):
    """Suggests labels from embeddings: a scikit-learn classifier refit as labels arrive.

    Parameters
    ----------
    classifier
        Any scikit-learn classifier with ``predict_proba`` (cloned at each fit). Default:
        :func:`default_classifier` (standardised logistic regression).
    scale_on
        ``(n, d)`` embeddings of every sample to label, labelled or not (e.g. all of
        ``Embedder.embed(catalog)``): the default classifier standardises with their mean and
        std instead of the labelled samples' (see :func:`default_classifier`). Recommended with
        an active-learning order, whose labels are a biased sample: on the animals sample,
        margin order needed 0.55x the labels of random order with it and 0.67x without (5
        seeds; 10 seeds: ~0.58x and ~0.9x, one seed in ten needing more labels than random
        without it). Only for the default classifier. Kept by reference (not
        copied; pickled with the Assistant); its mean and std are computed at the first fit, so
        assign a new array rather than changing this one in place.
    propagation
        Weight of label propagation over a k-NN graph of the ``scale_on`` rows, blended with
        the default classifier (0 = off; see :func:`default_classifier` and :class:`GraphBlend`).
        The graph is built once per ``scale_on`` array, at the first fit.
    cv
        Folds for :attr:`cv_accuracy_` (fewer when classes are small; ``None`` or 0 skips it).
    random_state
        Seed of the default classifier and of the fold split.

    Attributes
    ----------
    classifier_ : estimator
        The classifier in use (the newest completed fit).
    classes_ : numpy.ndarray
        Sorted class labels; columns of :meth:`predict_proba`.
    cv_accuracy_ : float
        Cross-validated accuracy of that fit (stratified, pooled over folds; ``nan`` when no
        class has two labels).
    n_labels_ : int
        Labels the fit used.
    fit_seconds_ : float
        Wall time of that fit, cross-validation included.

    Notes
    -----
    With one class only the model is a constant (probability 1 for that class).
    """

    def __init__(
        self,
        classifier: Any = None,
        *,
        scale_on: Any = None,
        propagation: float = 0.0,
        cv: int | None = 5,
        random_state: int = 0,
    ):
        self.classifier = classifier
        self.scale_on = scale_on
        self.propagation = propagation
        self.cv = cv
        self.random_state = random_state
        self._state()

    # ------------------------------------------------------------------ state
    def _state(self) -> dict[str, Any]:
        d = self.__dict__
        if "_lock" not in d:  # after unpickling: the lock and the worker thread are not pickled
            d.setdefault("_fitted", None)
            d.setdefault("_requested", 0)
            d["_worker"] = None
            d["_lock"] = threading.Lock()
        d.setdefault("scale_on", None)  # pickled before the parameter existed
        d.setdefault("propagation", 0.0)
        return d

    def _base(self, n_features: int) -> Any:
        """The (unfitted) classifier a fit clones: the user's or :func:`default_classifier`."""
        _check_propagation(self.propagation, self.scale_on)
        if self.scale_on is None:
            return (
                self.classifier
                if self.classifier is not None
                else default_classifier(self.random_state)
            )
        if self.classifier is not None:
            raise ParameterError(
                "scale_on applies to the default classifier only; give your own classifier its "
                "own scaling, e.g. default_classifier(scale_on=...) is a pipeline to copy"
            )
        state = self._state()
        settings = (self.propagation, self.random_state)
        cached = state.get("_scale_cache")
        # Once per array (it is not copied) and setting: the graph takes seconds to build.
        if cached is None or cached[0] is not self.scale_on or cached[1] != settings:
            cached = [self.scale_on, settings, _scale_stats(self.scale_on), None]
            state["_scale_cache"] = cached
        stats = cached[2]
        if len(stats[0]) != n_features:
            raise ParameterError(
                f"scale_on has {len(stats[0])} features but X has {n_features}; pass embeddings "
                f"of the same model and image size"
            )
        if cached[3] is None:
            cached[3] = _scaled_classifier(
                self.random_state, self.scale_on, stats, self.propagation
            )
        return cached[3]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for k in ("_lock", "_worker", "_scale_cache"):
            state.pop(k, None)
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return self._state()["_fitted"] is not None

    def _current(self) -> _Fitted:
        fitted = self._state()["_fitted"]
        if fitted is None:  # NotFittedError is an AttributeError too: hasattr() stays False
            raise NotFittedError(
                "this Assistant is not fitted yet; call fit(X, y) with the labels so far"
            )
        return fitted

    classifier_ = property(lambda self: self._current().classifier)
    classes_ = property(lambda self: self._current().classes)
    cv_accuracy_ = property(lambda self: self._current().cv_accuracy)
    n_labels_ = property(lambda self: self._current().n_labels)
    fit_seconds_ = property(lambda self: self._current().seconds)
    n_features_in_ = property(lambda self: self._current().n_features)

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if y is None:
            raise ParameterError(
                "the Assistant requires y to be passed, but the target y is None; pass the labels"
            )
        X = _dense_float(X)
        y = np.asarray(y)
        if X.ndim != 2:
            raise ParameterError(f"X must be 2-D (samples x features), got shape {X.shape}")
        if y.ndim != 1 or len(y) != len(X):
            raise ParameterError(f"y must be 1-D with {len(X)} labels, got shape {y.shape}")
        if len(y) == 0:
            raise ParameterError("no labels yet: label at least one sample before fitting")
        if pd.isna(y).any() or (y.dtype.kind == "f" and not np.isfinite(y).all()):
            raise ParameterError("y contains missing labels; pass only labelled samples")
        if not np.isfinite(X).all():
            raise ParameterError("X contains NaN or infinite values")
        return X, y

    def _fit_state(self, X: np.ndarray, y: np.ndarray, generation: int) -> _Fitted:
        from sklearn.dummy import DummyClassifier

        t0 = time.perf_counter()
        classes = np.unique(y)
        base = self._base(X.shape[1])  # checked with one class too: a bad scale_on fails early
        if len(classes) == 1:
            clf = DummyClassifier(strategy="prior").fit(X, y)
            cv_acc = float("nan")
        else:
            with _single_threaded_blas(), warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                clf = clone(base).fit(X, y)
                cv_acc = _cv_accuracy(base, X, y, self.cv or 0, self.random_state)
        seconds = time.perf_counter() - t0
        return _Fitted(clf, classes, cv_acc, len(y), seconds, generation, X.shape[1])

    def _next_generation(self) -> int:
        state = self._state()
        with state["_lock"]:
            state["_requested"] += 1
            return state["_requested"]

    def _apply(self, fitted: _Fitted) -> bool:
        state = self._state()
        with state["_lock"]:
            current = state["_fitted"]
            if current is not None and current.generation > fitted.generation:
                return False  # a newer request finished first: keep it
            state["_fitted"] = fitted
            return True

    def fit(self, X: Any, y: Any) -> Assistant:
        """Fit on the labelled samples so far (blocking); returns self.

        Parameters
        ----------
        X
            ``(n, d)`` embeddings of the labelled samples.
        y
            Their labels (any hashable values; strings are typical).
        """
        X, y = self._check_xy(X, y)
        self._apply(self._fit_state(X, y, self._next_generation()))
        return self

    def refit_async(self, X: Any, y: Any) -> Future:
        """Refit on a background thread; the labeler keeps using the previous model meanwhile.

        One worker thread (:class:`workbench.background.Latest`) runs the fits in order. A
        request that is overtaken by a newer one (or by a blocking :meth:`fit`) before it starts
        is skipped, and a fit never replaces a newer one, so the model in use is always the
        newest that completed. ``X`` and ``y`` are copied now.

        Returns
        -------
        concurrent.futures.Future
            Resolves to ``True`` when this fit was put in use, ``False`` when a newer request
            made it unnecessary; holds the exception if the fit failed (e.g. a bad ``X``).
        """
        X, y = self._check_xy(np.array(X, copy=True), np.array(y, copy=True))
        generation = self._next_generation()
        state = self._state()
        with state["_lock"]:
            if state["_worker"] is None:
                state["_worker"] = Latest("wb-assist-refit", superseded=False)
            worker = state["_worker"]
        return worker.submit(self._refit_job, X, y, generation)

    def _refit_job(self, X: np.ndarray, y: np.ndarray, generation: int) -> bool:
        # Latest skips a request overtaken by a newer refit_async; a blocking fit() made since
        # this request is newer too, and its model must not be replaced.
        if generation < self._state()["_requested"]:
            return False
        return self._apply(self._fit_state(X, y, generation))

    def close(self) -> None:
        """Stop the background worker after the fit in progress; a later refit restarts it.

        A request still waiting is never run (its future resolves to ``False``).
        """
        state = self._state()
        with state["_lock"]:
            worker, state["_worker"] = state["_worker"], None
        if worker is not None:
            worker.close(wait=True)

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, len(classes_))`` class probabilities; rows sum to 1."""
        fitted = self._current()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return np.asarray(fitted.classifier.predict_proba(X), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        fitted = self._current()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return fitted.classes[np.argmax(fitted.classifier.predict_proba(X), axis=1)]

    def suggest(self, X: Any, k: int = 3) -> list[list[tuple[Any, float]]]:
        """The ``k`` most probable classes of each row, most probable first.

        Returns
        -------
        list of list of (class, probability)
            One list per row of ``X``; classes as plain Python values.
        """
        k = check_positive_int(k, "k")
        fitted = self._current()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        proba = np.asarray(fitted.classifier.predict_proba(X), dtype=np.float64)
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        names = fitted.classes.tolist()
        return [[(names[j], float(p[j])) for j in row] for p, row in zip(proba, top, strict=True)]


# ---------------------------------------------------------------------------------------------
# Active-learning order
# ---------------------------------------------------------------------------------------------

Strategy = Literal["least_confidence", "margin", "entropy", "random"]
STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy", "random")


def _check_probs(probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ParameterError(f"probs must be 2-D (samples x classes), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ParameterError("probs must be finite and non-negative")
    return p


def uncertainty(probs: Any, strategy: Strategy = "least_confidence") -> np.ndarray:
    """Uncertainty of each row of a probability matrix; larger means less sure.

    ``least_confidence``: ``1 - max p``. ``margin``: ``1 - (p_top1 - p_top2)``.
    ``entropy``: ``-sum p log p`` (natural log, ``0 log 0 = 0``).
    """
    p = _check_probs(probs)
    check_choice(strategy, "strategy", STRATEGIES[:3])
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        if p.shape[1] == 1:
            return 1.0 - p[:, 0]
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log(safe)).sum(axis=1)


def order(
    probs: Any,
    strategy: Strategy = "least_confidence",
    *,
    batch: int | None = None,
    embeddings: Any = None,
    diversity: float = 0.0,
    seed: int = 0,
    pool: int = 10,
) -> np.ndarray:
    """Row indices of ``probs`` in the order to label them, most useful first.

    Parameters
    ----------
    probs
        ``(n, classes)`` predicted probabilities of the unlabeled samples
        (:meth:`Assistant.predict_proba`). With ``"random"`` only its length is used.
    strategy
        ``"least_confidence"`` (lowest top probability first), ``"margin"`` (smallest gap
        between the two most probable classes first), ``"entropy"`` (highest entropy first) or
        ``"random"`` (a seeded shuffle: the baseline). Ties are broken by a seeded shuffle, so
        an undecided model does not send you through the catalog in folder order.
    batch
        How many indices to return (default: all).
    embeddings
        ``(n, d)`` features of the same rows; needed when ``diversity > 0``.
    diversity
        0 ranks by uncertainty alone. Above 0, the batch is chosen greedily from the ``pool x
        batch`` most uncertain rows: each pick maximises ``(1 - diversity) * uncertainty +
        diversity * distance``, both scaled to [0, 1] within the pool, where ``distance`` is the
        Euclidean distance to the nearest row already picked (k-center greedy at 1). Near-copies
        of a picked row then have distance ~0 and wait for a later batch.
    seed
        Seed of the random order and of tie-breaking.
    pool
        Candidates per batch slot considered when ``diversity > 0``.

    Returns
    -------
    numpy.ndarray
        int64 indices into the rows of ``probs``.

    Notes
    -----
    On the animals sample (``benchmarks/bench_label.py``: 10 classes, 10 seed labels, refits every
    10 labels, 96-px mobilenet_v2 embeddings) use ``"margin"`` with an ``Assistant(scale_on=all
    embeddings)``: it reached 90 % of the all-labels accuracy with 0.54x (3 seeds), 0.55x (5 seeds)
    and ~0.58x (10 seeds) the labels of random order, within ~160-220 labels on every seed; with
    native 224-px embeddings (10 seeds) 0.53x (121 labels against 230; 94-141 per seed),
    least_confidence 0.65x, entropy 0.77x. At 96 px with the default ``Assistant()`` (scaled on the
    labels) margin needed 0.71x / 0.67x / ~0.9x and some seeds stalled for hundreds of labels (see
    :func:`default_classifier`). ``"least_confidence"`` (0.91x) and ``"entropy"`` (1.06x) were no
    better than random: early on they pick odd images that are unsure among many classes;
    ``diversity=0.5`` helped them (0.73x, 0.96x) but not margin (0.59x). Other batch rules on top of
    margin were no better than plain margin in the same runs: cluster-margin (k-means clusters,
    round-robin over the ``3 x batch`` lowest margins) 0.58-0.61x and k-center blends 0.59x (10
    seeds; plain margin 0.58x); BADGE 0.67x, sampling in proportion to a power of the margin 0.58x,
    density- or neighbourhood-weighted margin 0.70x or worse, a typical-point cold start (TypiClust)
    0.57x, logit margin 0.66x (5 seeds; plain margin 0.52x). What moved the ratio was the model, not
    the order: with ``Assistant(scale_on=..., propagation=0.5)`` (label propagation over the pool's
    k-NN graph) margin needed 99 labels and random 204 at 224 px (0.49x, 10 seeds).

    Those animals figures were measured on a held-out split with 105 of 2,000 images whose exact
    twin sat in the pool, and the settings were chosen on the same split. With duplicate groups
    kept on one side of the split (``group_folds``; 224 px, ``propagation=0.5``, 10 seeds, 95 %
    bootstrap interval over seeds): animals, the set the settings were tuned on, 94.3 labels
    against 164.8, 0.5720x (0.5168-0.6570); on sets used for nothing else, sklearn's digits
    0.5496x (0.4372-0.6830) and crops of the bundled photos labelled by their photo 0.5666x
    (0.4826-0.7993). ``propagation=0.7``, tried on animals after that: 68.7 labels against
    136.8, 0.5024x (0.4743-0.5349), still a miss; on digits 0.5822x (0.4567-0.6617), photo crops
    0.5341x (0.4464-0.6171; 0.5376x in an earlier invocation). Margin order roughly halves the
    labels; it does not reliably reach 0.50x.

    A sweep on animals only (10 seeds, the same runs, start labels and 90 % point as the
    benchmark; margin labels / random labels, ratio, 95 % bootstrap interval of 500 draws): every
    change to the model moved both orders, not their ratio. ``propagation`` 0.8: 61.3 / 118.3,
    0.518x (0.408-0.619); 0.9: 44.6 / 76.6, 0.583x (0.416-0.684; the all-labels accuracy falls to
    0.926, so its 90 % point is lower). At 0.7: propagation ``alpha`` 0.9 instead of 0.99 51.7 /
    99.5, 0.520x (0.425-0.612); class-mass-normalised propagation 69.1 / 128.6, 0.537x
    (0.470-0.605); a log-linear instead of a linear blend 67.8 / 134.4, 0.505x (0.462-0.553);
    ``C=10`` 77.8 / 138.4, 0.562x (0.495-0.662). Spreading each batch of margin picks (against
    random's 136.8): skipping rows in the propagation graph's 10-neighbourhood of a row already
    picked 72.7, 0.531x; ``diversity=0.3, pool=3`` 71.3, 0.521x. None reached 0.50x, so the settings
    stay as they are. A finer sweep later: ``propagation`` 0.75 62.0 / 126.6, 0.490x (0.443-0.564),
    between 0.7's 0.502x and 0.8's 0.518x, so a peak inside the noise of 10 seeds (digits 0.612x,
    photo crops 0.533x); at 0.75, graph k 7 / 15 / 20 0.517x / 0.557x / 0.556x, ``C`` 1 / 10
    0.547x / 0.532x, alpha 0.95 0.501x, 80 propagation steps 0.499x, 20 steps 0.450x (0.382-0.609;
    photo crops 0.629x, digits 0.529x). Not adopted: no setting is below 0.50x across its interval
    or on the other sets.

    Checked on seeds never used to choose (``bench_label.py --first-seed 10``, seeds 10-19):
    ``propagation`` 0.7 67.1 / 152.3 labels, 0.4405x (0.3501-0.5268); 0.5 92.5 / 186.8, 0.4950x
    (0.4241-0.5843); 0.75 72.5 / 134.3, 0.5402x (0.4630-0.6825). 0.75's lead on seeds 0-9 was
    noise; 0.7's over 0.5 held (0.5024x against 0.5720x there), so 0.7 is the weight the notebooks
    and the benchmark use. Over seeds 0-19 at 0.7: 68.0 / 143.6, 0.4735x (0.4268-0.5163).
    """
    p = _check_probs(probs)
    n = len(p)
    if batch is not None and not (is_int(batch) and batch >= 0):
        raise ParameterError(f"batch must be None or an integer >= 0, got {batch!r}")
    # is_real, not check_probability: "between 0 and 1" is the wording users already know
    if not (is_real(diversity) and 0 <= diversity <= 1):
        raise ParameterError(f"diversity must be a number between 0 and 1, got {diversity!r}")
    check_choice(strategy, "strategy", STRATEGIES)
    k = n if batch is None else min(int(batch), n)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    score = rng.random(n) if strategy == "random" else uncertainty(p, strategy)
    ranked = np.lexsort((tiebreak, -score)).astype(np.int64)
    if diversity == 0.0 or k <= 1:
        return ranked[:k]
    if batch is None:
        raise ParameterError("diversity needs a batch size: order(..., batch=10, diversity=0.5)")
    if embeddings is None:
        raise ParameterError("diversity needs the embeddings of the same rows (embeddings=...)")
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or len(emb) != n:
        raise ParameterError(f"embeddings must be ({n}, d), got shape {emb.shape}")
    check_real(pool, "pool", low=1)
    cand = ranked[: min(n, max(k, math.ceil(pool * k)))]
    return cand[_diverse_pick(score[cand], emb[cand], k, diversity)]


def _diverse_pick(score: np.ndarray, emb: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Greedy blend of uncertainty and k-center distance over candidates sorted by uncertainty."""
    span = score.max() - score.min()
    u = (score - score.min()) / span if span > 0 else np.ones_like(score)
    picked = [0]  # the most uncertain candidate opens the batch
    mind = np.linalg.norm(emb - emb[0], axis=1)
    taken = np.zeros(len(score), bool)
    taken[0] = True
    for _ in range(k - 1):
        top = mind.max()
        d = mind / top if top > 0 else np.zeros_like(mind)
        value = (1.0 - diversity) * u + diversity * d
        value[taken] = -np.inf
        j = int(np.argmax(value))  # ties: the earlier (more uncertain) candidate
        picked.append(j)
        taken[j] = True
        mind = np.minimum(mind, np.linalg.norm(emb - emb[j], axis=1))
    return np.array(picked, dtype=np.int64)

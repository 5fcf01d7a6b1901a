"""Label errors: samples whose given class the data itself argues against.

Classification
--------------
:func:`out_of_fold_probs` fits the :class:`~workbench.assist.Assistant` on the embeddings by k-fold
cross-validation, so every sample's class probabilities come from a model that never saw it. By
default the model is a standardised logistic regression whose regularisation
:func:`choose_regularization` picks from the given labels alone (the lowest out-of-fold
log-loss): the Assistant's own ``C=3``, made to learn from few labels, also learns the label
noise of the training folds, and cleanlab then flags far too many samples.
:func:`find_label_errors` hands the probabilities to cleanlab's confident learning
(:func:`cleanlab.filter.find_label_issues`, ranked by
:func:`cleanlab.rank.get_label_quality_scores`) and returns a :class:`LabelIssueReport`: an
:class:`~workbench.clean.IssueReport` whose table has one ``label_issue`` row per labelled
sample, so the review tools of the cleaning stage apply. :func:`label_issues` does the same from
a catalog.

Guarantees
----------
- **A twin never vouches for itself.** Folds are split by duplicate group
  (:class:`sklearn.model_selection.StratifiedGroupKFold`): samples with the same content hash
  (exact duplicates) and samples in one near-duplicate group (from
  :func:`workbench.clean.check`) are always in the same fold, so a mislabelled image is never
  "confirmed" by its own copy in the training folds.
- **Deterministic.** The same inputs and ``random_state`` give the same table.
- Bad inputs raise :class:`~workbench.errors.ParameterError` before any model is fitted.

Box defects and box agreement are in :mod:`workbench.quality.boxes`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import (
    check_choice,
    check_int,
    check_positive_int,
    check_real,
)
from workbench.clean import IssueReport
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.catalog import Catalog

__all__ = [
    "C_GRID",
    "FILTERS",
    "ISSUE",
    "RANKINGS",
    "LabelIssueReport",
    "choose_regularization",
    "duplicate_groups",
    "find_label_errors",
    "group_folds",
    "label_issues",
    "out_of_fold_probs",
    "regularized_classifier",
]

#: The issue name of a suspected label error in the report's table.
ISSUE = "label_issue"
#: cleanlab's ``filter_by`` choices (which samples are flagged).
FILTERS = (
    "prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
    "predicted_neq_given", "low_normalized_margin", "low_self_confidence",
)  # fmt: skip
#: Inverse regularisation strengths :func:`choose_regularization` tries (half-decades). On
#: mobilenet_v2 embeddings (224 px, 1,280 features) of the animals sample with 10 % of the labels
#: replaced, the out-of-fold log-loss against the noisy labels was lowest at 0.003 (0.72, against
#: 2.38 at the Assistant's C=3), where the accuracy against the true labels was 0.966 (0.829 at
#: C=3) and cleanlab's F1 0.92 (0.61 at C=3): the loss finds the C that does not learn the noise.
C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
#: cleanlab's label quality scores (how flagged samples are ranked; ``score = 1 - quality``).
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
TABLE_COLUMNS = ["id", "issue", "score", "flagged", "group", "keeper", "given", "suggested",
                 "confidence", "found"]  # fmt: skip


# ---------------------------------------------------------------------------- duplicate groups


def duplicate_groups(
    ids: Sequence[Hashable],
    hashes: Sequence[Any] | None = None,
    groups: IssueReport | Mapping[Hashable, Hashable] | Iterable[Iterable[Hashable]] | None = None,
) -> np.ndarray:
    """A group number per sample: samples that must share a cross-validation fold.

    Parameters
    ----------
    ids
        Sample ids (unique).
    hashes
        Content hash per sample (the catalog's ``hash`` column): equal hashes are exact
        duplicates. Missing values (``None``/NaN) tie nothing together.
    groups
        More ties: an :class:`~workbench.clean.IssueReport` (its exact- and near-duplicate
        groups), a mapping ``id -> group key``, or an iterable of id lists (e.g.
        ``report.groups("near_duplicate")``). Ids not in ``ids`` are ignored.

    Returns
    -------
    numpy.ndarray
        int64 group numbers ``0..g-1`` in order of first appearance; ties are transitive
        (union-find over both sources).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = list(ids)
    n = len(ids)
    pos = pd.Index(ids)
    if not pos.is_unique:
        dup = pos[pos.duplicated()].unique()[:5].tolist()
        raise ParameterError(f"sample ids must be unique; repeated: {dup}")
    edges_a: list[np.ndarray] = []
    edges_b: list[np.ndarray] = []

    def tie(keys: pd.Series) -> None:
        """Chain every run of equal keys (key NaN/None: no tie)."""
        keys = keys.dropna()
        if keys.empty:
            return
        codes = pd.factorize(keys)[0]
        at = keys.index.to_numpy(np.int64)
        order = np.argsort(codes, kind="stable")
        same = codes[order][1:] == codes[order][:-1]
        edges_a.append(at[order][:-1][same])
        edges_b.append(at[order][1:][same])

    if hashes is not None:
        h = pd.Series(list(hashes), dtype=object)
        if len(h) != n:
            raise ParameterError(f"hashes has {len(h)} entries for {n} ids")
        tie(h.where(h.notna(), None))
    for members in _group_lists(groups):
        at = pos.get_indexer(list(members))
        at = at[at >= 0]
        edges_a.append(at[:-1])
        edges_b.append(at[1:])
    a = np.concatenate(edges_a).astype(np.int64) if edges_a else np.zeros(0, np.int64)
    b = np.concatenate(edges_b).astype(np.int64) if edges_b else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    return pd.factorize(comp)[0].astype(np.int64)


def _group_lists(groups: Any) -> list[list[Hashable]]:
    """``groups`` (see :func:`duplicate_groups`) as lists of ids that belong together."""
    if groups is None:
        return []
    if isinstance(groups, IssueReport):
        return [g for issue in ("exact_duplicate", "near_duplicate")
                if issue in groups.thresholds for g in groups.groups(issue)]  # fmt: skip
    if isinstance(groups, Mapping):
        out: dict[Hashable, list[Hashable]] = {}
        for i, k in groups.items():
            if k is not None and not (isinstance(k, float) and math.isnan(k)):
                out.setdefault(k, []).append(i)
        return list(out.values())
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable):
        raise ParameterError(
            "groups must be an IssueReport, a mapping id -> group, or a list of id lists "
            f"(e.g. report.groups('near_duplicate')), got {type(groups).__name__}"
        )
    lists = []
    for g in groups:
        if isinstance(g, (str, bytes)) or not isinstance(g, Iterable):
            raise ParameterError(f"each group is a list of ids, got {g!r}")
        lists.append(list(g))
    return lists


def group_folds(
    labels: Sequence[Hashable],
    groups: Sequence[int] | np.ndarray,
    n_splits: int = 5,
    random_state: int | None = 0,
) -> np.ndarray:
    """The test fold of each sample: stratified by label, every group inside one fold.

    Uses :class:`sklearn.model_selection.StratifiedGroupKFold` (shuffled, seeded). The number of
    folds shrinks to the number of groups when there are fewer.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = check_int(n_splits, "n_splits", low=2)
    y = np.asarray(labels)
    g = np.asarray(groups)
    if len(g) != len(y):
        raise ParameterError(f"groups has {len(g)} entries for {len(y)} labels")
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise ParameterError(
            "cross-validation needs at least two independent groups of samples; every sample "
            "is tied to every other (check the duplicate groups)"
        )
    k = min(n_splits, n_groups)
    codes = pd.factorize(pd.Series(y, dtype=object))[0]
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
    fold = np.full(len(y), -1, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only N members": expected
        for f, (_, test) in enumerate(cv.split(np.zeros((len(y), 1)), codes, g)):
            fold[test] = f
    return fold


# ---------------------------------------------------------------------------- probabilities


def _check_xy(X: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("X must be a numeric (samples x features) array") from None
    if X.ndim != 2:
        raise ParameterError(f"X must be 2-D (samples x features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ParameterError("X contains NaN or infinite values")
    y = pd.Series(list(labels) if not isinstance(labels, np.ndarray) else labels, dtype=object)
    if y.ndim != 1 or len(y) != len(X):
        raise ParameterError(f"labels must be 1-D with {len(X)} entries, got {len(y)}")
    if y.isna().any():
        raise ParameterError(
            "labels contain missing values; pass only labelled samples (or use label_issues, "
            "which leaves unlabelled ones out)"
        )
    bad = [v for v in y if not isinstance(v, Hashable)]
    if bad:
        raise ParameterError(f"labels must be class names (one per sample), got {bad[0]!r}")
    if y.nunique() < 2:
        raise ParameterError("label errors need at least two classes among the labels")
    return X, y.to_numpy(object)


def regularized_classifier(C: float, random_state: int | None = 0) -> Any:
    """Standardised multinomial logistic regression with inverse regularisation strength ``C``.

    The :class:`~workbench.assist.Assistant`'s default model (``C=3``) with another ``C``: on
    label errors a model must not learn the very labels it is to doubt.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    C = check_real(C, "C", low=0, low_open=True)
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=random_state)
    )


def _fold_probs(
    X: np.ndarray, code: np.ndarray, k: int, fold: np.ndarray, classifier: Any, seed: int
) -> np.ndarray:
    """Out-of-fold probabilities of class codes ``0..k-1`` over the given folds."""
    from workbench.assist import Assistant

    probs = np.zeros((len(code), k))
    for f in np.unique(fold):
        test, train = fold == f, fold != f
        model = Assistant(classifier, cv=None, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs "did not converge" at the loosest C: harmless
            p = model.fit(X[train], code[train]).predict_proba(X[test])
        probs[np.ix_(np.flatnonzero(test), model.classes_.astype(np.int64))] = p
    return probs / probs.sum(axis=1, keepdims=True)


def choose_regularization(
    X: Any,
    labels: Sequence[Hashable],
    *,
    groups: Sequence[int] | np.ndarray | None = None,
    Cs: Sequence[float] = C_GRID,
    start: float = 0.01,
    n_splits: int = 5,
    random_state: int = 0,
) -> tuple[float, pd.DataFrame, np.ndarray, np.ndarray]:
    """The ``C`` of :func:`regularized_classifier` whose out-of-fold probabilities fit the given
    labels best (lowest log-loss), and those probabilities.

    Only the given labels are used (never a truth): the fold models predict each held-out
    sample's given label, and a model that has learnt the label noise predicts the held-out
    noise badly. From the strength in ``Cs`` nearest ``start``, the search walks the sorted
    ``Cs`` towards lower loss and stops at the first rise (on the animals sample: 0.01, 0.003,
    0.001, i.e. 3 x ``n_splits`` fits).

    Returns
    -------
    C, search, probs, classes
        The chosen ``C``; a table ``C, log_loss`` of those tried; the chosen ``C``'s
        out-of-fold probabilities and the sorted class names (as :func:`out_of_fold_probs`).
    """
    from sklearn.metrics import log_loss

    X, y = _check_xy(X, labels)
    Cs = sorted(check_real(c, "C", low=0, low_open=True) for c in Cs)
    if not Cs:
        raise ParameterError("Cs must hold at least one regularisation strength")
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    fold = group_folds(y, g, n_splits, random_state)
    classes = np.array(sorted(set(y.tolist()), key=str), dtype=object)
    code = pd.Index(classes).get_indexer(y)
    loss_of: dict[int, float] = {}
    probs_of: dict[int, np.ndarray] = {}

    def loss(i: int) -> float:
        if i not in loss_of:
            clf = regularized_classifier(Cs[i], random_state)
            probs_of[i] = _fold_probs(X, code, len(classes), fold, clf, random_state)
            loss_of[i] = float(log_loss(code, probs_of[i], labels=np.arange(len(classes))))
        return loss_of[i]

    # Walk from the start towards the lower loss and stop at the first rise: the loss has one
    # valley in log C, and each strength costs n_splits fits.
    start = check_real(start, "start", low=0, low_open=True)
    i = int(np.argmin(np.abs(np.log(Cs) - np.log(start))))
    step = -1 if i > 0 and loss(i - 1) < loss(i) else 1  # stronger first: cheaper fits
    while 0 <= i + step < len(Cs) and loss(i + step) < loss(i):
        i += step
    best = probs_of[i]
    tried = sorted((Cs[j], v) for j, v in loss_of.items())
    search = pd.DataFrame(tried, columns=["C", "log_loss"])
    return float(Cs[i]), search, best, classes


def out_of_fold_probs(
    X: Any,
    labels: Sequence[Hashable],
    *,
    groups: Sequence[int] | np.ndarray | None = None,
    classifier: Any = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of every sample from a model fitted without its fold.

    Parameters
    ----------
    X
        ``(n, d)`` embeddings (e.g. :meth:`workbench.embed.Embedder.embed`).
    labels
        The given class of each row.
    groups
        Group number per row (:func:`duplicate_groups`); ``None``: every row its own group.
    classifier
        Passed to :class:`~workbench.assist.Assistant`. Default: :func:`regularized_classifier`
        with the ``C`` that :func:`choose_regularization` picks from the given labels.
    n_splits, random_state
        Folds and seed of the split and of the classifier.

    Returns
    -------
    probs, classes
        ``(n, len(classes))`` probabilities (rows sum to 1) and the sorted class names. A class
        missing from a fold's training part gets probability 0 in that fold.
    """
    if classifier is None:
        _, _, probs, classes = choose_regularization(
            X, labels, groups=groups, n_splits=n_splits, random_state=random_state
        )
        return probs, classes
    X, y = _check_xy(X, labels)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    fold = group_folds(y, g, n_splits, random_state)
    classes = np.array(sorted(set(y.tolist()), key=str), dtype=object)
    # Fit on class codes: any classifier takes integers, not every one takes object arrays.
    code = pd.Index(classes).get_indexer(y)
    return _fold_probs(X, code, len(classes), fold, classifier, random_state), classes


# ---------------------------------------------------------------------------- the report


@dataclass
class LabelIssueReport(IssueReport):
    """An :class:`~workbench.clean.IssueReport` of suspected label errors.

    The table has one row per labelled sample, issue :data:`ISSUE`:
    ``id, issue, score, flagged, group, keeper, given, suggested, confidence, found``.
    ``score`` is ``1 -`` cleanlab's label quality (higher: the given label is less likely);
    ``given`` the label, ``suggested`` the model's most probable class and ``confidence`` its
    out-of-fold probability; ``found`` is cleanlab's flag; ``group`` names the sample's
    duplicate group (``None`` for a sample without twins); ``keeper`` is always False.

    ``flagged`` starts as cleanlab's flags, which are a per-class count estimated from the
    confident joint, not one cut on the score; the threshold starts at the lowest flagged score.
    :meth:`set_threshold` replaces them with ``score >= threshold`` (``found`` keeps
    cleanlab's).

    Attributes
    ----------
    probs : numpy.ndarray
        ``(n, len(classes))`` out-of-fold probabilities, rows in table order.
    classes : numpy.ndarray
        Class names of the columns of ``probs``.
    ranked : list
        Ids of cleanlab's flagged samples, most severe first (its ``return_indices_ranked_by``).
    filter_by, rank_by : str
        The cleanlab settings used.
    C : float or None
        The regularisation :func:`choose_regularization` chose (``None``: a classifier was
        given).
    search : pandas.DataFrame
        ``C, log_loss`` of every strength it tried.
    """

    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    ranked: list = field(default_factory=list, repr=False)
    filter_by: str = "prune_by_noise_rate"
    rank_by: str = "self_confidence"
    C: float | None = None
    search: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"C": [], "log_loss": []}))

    def summary(self) -> pd.DataFrame:
        """Samples checked, flagged and the threshold, for :data:`ISSUE`."""
        t = self.table
        return pd.DataFrame(
            {"checked": [len(t)], "flagged": [int(t["flagged"].sum())],
             "threshold": [self.thresholds[ISSUE]]},
            index=pd.Index([ISSUE], name="issue"),
        )  # fmt: skip

    def flagged_ids(self) -> list[str]:
        """Flagged ids, most severe first."""
        return self.flagged(ISSUE)["id"].tolist()


def find_label_errors(
    X: Any,
    labels: Sequence[Hashable],
    *,
    ids: Sequence[Hashable] | None = None,
    hashes: Sequence[Any] | None = None,
    groups: Any = None,
    classifier: Any = None,
    n_splits: int = 5,
    filter_by: str = "prune_by_noise_rate",
    rank_by: str = "self_confidence",
    random_state: int = 0,
) -> LabelIssueReport:
    """Suspected label errors among labelled samples, by confident learning on out-of-fold
    probabilities.

    Parameters
    ----------
    X
        ``(n, d)`` embeddings of the labelled samples.
    labels
        Their given classes.
    ids
        Their ids (default ``"0", "1", ...``).
    hashes, groups
        Duplicate ties for the folds (see :func:`duplicate_groups`).
    classifier, n_splits, random_state
        See :func:`out_of_fold_probs`.
    filter_by
        cleanlab's flagging rule, one of :data:`FILTERS`.
    rank_by
        cleanlab's label quality score, one of :data:`RANKINGS`.
    """
    import time

    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    t0 = time.perf_counter()
    check_choice(filter_by, "filter_by", FILTERS)
    check_choice(rank_by, "rank_by", RANKINGS)
    check_positive_int(n_splits, "n_splits")
    X, y = _check_xy(X, labels)
    ids = [str(i) for i in range(len(y))] if ids is None else list(ids)
    if len(ids) != len(y):
        raise ParameterError(f"ids has {len(ids)} entries for {len(y)} labels")
    g = duplicate_groups(ids, hashes, groups)
    C, search = None, pd.DataFrame({"C": [], "log_loss": []})
    if classifier is None:
        C, search, probs, classes = choose_regularization(
            X, y, groups=g, n_splits=n_splits, random_state=random_state
        )
    else:
        probs, classes = out_of_fold_probs(
            X, y, groups=g, classifier=classifier, n_splits=n_splits, random_state=random_state
        )
    code = pd.Index(classes).get_indexer(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns on tiny classes; the table still holds
        ranked = find_label_issues(code, probs, filter_by=filter_by,
                                   return_indices_ranked_by=rank_by, n_jobs=1)  # fmt: skip
        quality = get_label_quality_scores(code, probs, method=rank_by)
    found = np.zeros(len(y), dtype=bool)
    found[ranked] = True
    score = np.clip(1.0 - quality, 0.0, 1.0)
    sizes = np.bincount(g)
    group = np.where(sizes[g] > 1, np.char.add("d", g.astype(str)), None).astype(object)
    best = probs.argmax(axis=1)
    table = pd.DataFrame({
        "id": ids, "issue": pd.Categorical([ISSUE] * len(y), categories=[ISSUE]),
        "score": score, "flagged": found.copy(), "group": group, "keeper": False,
        "given": y, "suggested": classes[best], "confidence": probs[np.arange(len(y)), best],
        "found": found,
    })  # fmt: skip
    threshold = float(score[found].min()) if found.any() else 1.0
    samples = pd.DataFrame({"id": ids, "hash": list(hashes) if hashes is not None else None,
                            "area": np.nan})  # fmt: skip
    return LabelIssueReport(
        table=table[TABLE_COLUMNS],
        pairs=pd.DataFrame({"a": [], "b": [], "distance": []}),
        thresholds={ISSUE: threshold},
        samples=samples,
        seconds=time.perf_counter() - t0,
        probs=probs,
        classes=classes,
        ranked=[ids[i] for i in ranked],
        filter_by=filter_by,
        rank_by=rank_by,
        C=C,
        search=search,
    )


def label_issues(
    catalog: Catalog,
    embeddings: Any,
    labels: Mapping[str, Hashable] | pd.Series | None = None,
    *,
    report: IssueReport | None = None,
    groups: Any = None,
    **kwargs: Any,
) -> LabelIssueReport:
    """:func:`find_label_errors` on a catalog: its labelled, readable samples.

    Parameters
    ----------
    catalog
        The samples; ``hash`` ties exact duplicates.
    embeddings
        ``(len(catalog), d)`` vectors in catalog order (``Embedder().embed(catalog)``).
    labels
        ``id -> class`` (e.g. final labels as a Series indexed by id); default: the catalog's
        ``label`` column. Samples without a label are left out.
    report
        The cleaning stage's :class:`~workbench.clean.IssueReport`: its duplicate groups tie
        folds too.
    groups
        Extra ties (see :func:`duplicate_groups`).
    kwargs
        Passed to :func:`find_label_errors`.
    """
    df = catalog.df
    E = np.asarray(embeddings)
    if E.ndim != 2 or len(E) != len(df):
        raise ParameterError(
            f"embeddings must have one row per catalog sample ({len(df)}), got shape {E.shape}"
        )
    if labels is None:
        given = df["label"] if "label" in df.columns else pd.Series(None, index=df.index)
        given = pd.Series(given.to_numpy(object), index=df["id"].to_numpy())
    else:
        given = pd.Series(labels, dtype=object) if isinstance(labels, Mapping) else labels
        unknown = sorted(set(map(str, given.index)) - set(df["id"]))[:5]
        if unknown:
            raise ParameterError(f"labels name samples not in the catalog: {unknown}")
        given = given.reindex(df["id"].to_numpy())
    keep = given.notna().to_numpy() & (df["status"] == "ok").to_numpy()
    if not keep.any():
        raise ParameterError("no labelled, readable samples: label some first")
    ids = df["id"].to_numpy()[keep]
    ties = [*_group_lists(report), *_group_lists(groups)]
    return find_label_errors(
        E[keep], given.to_numpy(object)[keep], ids=list(ids),
        hashes=df["hash"].to_numpy(object)[keep] if "hash" in df.columns else None,
        groups=ties, **kwargs,
    )  # fmt: skip

"""Label errors: samples whose given class the data itself argues against, and box defects.

Classification
--------------
:func:`out_of_fold_probs` fits the :class:`~workbench.assist.Assistant` (a standardised logistic
regression by default) on the embeddings by k-fold cross-validation, so every sample's class
probabilities come from a model that never saw it. :func:`find_label_errors` hands them to
cleanlab's confident learning (:func:`cleanlab.filter.find_label_issues`, ranked by
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

Boxes
-----
:func:`box_issues` finds zero-area boxes, boxes reaching out of the image, duplicate boxes in one
annotation (IoU above 0.9) and samples with an unusual number of boxes; :func:`match_boxes` pairs
two annotations' boxes one-to-one (Hungarian matching on IoU, ``scipy``'s
``linear_sum_assignment``) and :func:`box_agreement` reports, per sample and pair of annotators,
matched boxes, label agreement on the matches and the unmatched boxes on either side.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import (
    check_choice,
    check_int,
    check_positive_int,
    check_probability,
    check_real,
)
from workbench.clean import IssueReport
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.catalog import Catalog

__all__ = [
    "BOX_ISSUES",
    "FILTERS",
    "ISSUE",
    "RANKINGS",
    "LabelIssueReport",
    "box_agreement",
    "box_issues",
    "duplicate_groups",
    "find_label_errors",
    "group_folds",
    "iou_matrix",
    "label_issues",
    "match_boxes",
    "out_of_fold_probs",
]

#: The issue name of a suspected label error in the report's table.
ISSUE = "label_issue"
#: cleanlab's ``filter_by`` choices (which samples are flagged).
FILTERS = (
    "prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
    "predicted_neq_given", "low_normalized_margin", "low_self_confidence",
)  # fmt: skip
#: cleanlab's label quality scores (how flagged samples are ranked; ``score = 1 - quality``).
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
#: Issue names of :func:`box_issues`.
BOX_ISSUES = ("box_zero_area", "box_outside", "box_duplicate", "box_count")
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
        Passed to :class:`~workbench.assist.Assistant` (default:
        :func:`~workbench.assist.default_classifier`).
    n_splits, random_state
        Folds and seed of the split and of the classifier.

    Returns
    -------
    probs, classes
        ``(n, len(classes))`` probabilities (rows sum to 1) and the sorted class names. A class
        missing from a fold's training part gets probability 0 in that fold.
    """
    from workbench.assist import Assistant

    X, y = _check_xy(X, labels)
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    fold = group_folds(y, g, n_splits, random_state)
    classes = np.array(sorted(set(y.tolist()), key=str), dtype=object)
    # Fit on class codes: any classifier takes integers, not every one takes object arrays.
    code = pd.Index(classes).get_indexer(y)
    probs = np.zeros((len(y), len(classes)))
    for f in np.unique(fold):
        test, train = fold == f, fold != f
        model = Assistant(classifier, cv=None, random_state=random_state)
        p = model.fit(X[train], code[train]).predict_proba(X[test])
        probs[np.ix_(np.flatnonzero(test), model.classes_.astype(np.int64))] = p
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, classes


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
    """

    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    ranked: list = field(default_factory=list, repr=False)
    filter_by: str = "prune_by_noise_rate"
    rank_by: str = "self_confidence"

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
    probs, classes = out_of_fold_probs(X, y, groups=g, classifier=classifier,
                                       n_splits=n_splits, random_state=random_state)  # fmt: skip
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


# ---------------------------------------------------------------------------- boxes
def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``; boxes ``[x, y, w, h, ...]``."""
    A, B = _xyxy(a), _xyxy(b)
    lo = np.maximum(A[:, None, :2], B[None, :, :2])
    hi = np.minimum(A[:, None, 2:], B[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    area_a = np.clip(A[:, 2:] - A[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(B[:, 2:] - B[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _boxes(value: Any, what: str = "boxes") -> list[list[Any]]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ParameterError(f"{what} must be a list of [x, y, w, h, class], got {value!r}")
    out = []
    for b in value:
        ok = isinstance(b, Sequence) and not isinstance(b, (str, bytes)) and len(b) in (4, 5)
        if ok:
            try:
                nums = [check_real(v, "box coordinate") for v in b[:4]]
            except ParameterError:
                ok = False
        if not ok:
            raise ParameterError(f"{what}: each box is [x, y, w, h, class], got {b!r}")
        out.append([*nums, b[4] if len(b) == 5 else None])
    return out


def _xyxy(boxes: Any) -> np.ndarray:
    bx = _boxes(boxes)
    if not bx:
        return np.zeros((0, 4))
    a = np.array([b[:4] for b in bx], dtype=np.float64)
    return np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], axis=1)


def box_issues(
    boxes: Mapping[str, Any] | pd.DataFrame,
    sizes: Mapping[str, tuple[float, float]] | Catalog | None = None,
    *,
    duplicate_iou: float = 0.9,
    count_z: float = 3.5,
) -> pd.DataFrame:
    """Defects of box annotations, one row per (sample, box, issue) found.

    Parameters
    ----------
    boxes
        ``id -> [[x, y, w, h, class], ...]`` (one annotation per sample), or a frame with
        ``id`` and ``value`` columns (``store.current(task="boxes")``; one row per sample and
        annotator, each checked on its own; an ``annotator`` column is carried over).
    sizes
        ``id -> (width, height)``, or a catalog; needed for ``box_outside``.
    duplicate_iou
        Two boxes of one annotation with IoU above this are ``box_duplicate``.
    count_z
        A sample whose box count is more than ``count_z`` robust deviations
        (``1.4826 * MAD``, at least one box) from the median count is ``box_count``.

    Returns
    -------
    pandas.DataFrame
        ``id, annotator, issue, score, flagged, box, other, detail``: ``box`` is the box's index
        in its list (``-1`` for ``box_count``), ``other`` the duplicate's index; ``score`` in
        [0, 1] (``box_outside``: the fraction of the box outside; ``box_duplicate``: the IoU;
        ``box_count``: ``z / (z + count_z)``, so 0.5 at the limit).
    """
    duplicate_iou = check_probability(duplicate_iou, "duplicate_iou")
    count_z = check_real(count_z, "count_z", low=0, low_open=True)
    items = _box_items(boxes)
    size_of = _sizes(sizes)
    rows: list[tuple] = []
    counts = []
    for sid, who, value in items:
        bx = _boxes(value, f"boxes of {sid!r}")
        counts.append(len(bx))
        xy = _xyxy(bx)
        for k, b in enumerate(bx):
            if b[2] <= 0 or b[3] <= 0:
                rows.append((sid, who, "box_zero_area", 1.0, k, -1, f"w={b[2]:g}, h={b[3]:g}"))
            elif sid in size_of:
                W, H = size_of[sid]
                x0, y0, x1, y1 = xy[k]
                inside = max(0.0, min(x1, W) - max(x0, 0.0)) * max(0.0, min(y1, H) - max(y0, 0.0))
                out = 1.0 - inside / (b[2] * b[3])
                if out > 1e-9:
                    rows.append((sid, who, "box_outside", out, k, -1, f"image {W:g}x{H:g}"))
        if len(bx) > 1:
            iou = np.triu(iou_matrix(bx, bx), k=1)
            for i, j in zip(*np.nonzero(iou > duplicate_iou), strict=True):
                same = "same class" if bx[i][4] == bx[j][4] else f"{bx[i][4]} / {bx[j][4]}"
                rows.append((sid, who, "box_duplicate", float(iou[i, j]), int(i), int(j), same))
    if counts:
        c = np.asarray(counts, dtype=np.float64)
        med = float(np.median(c))
        scale = max(1.4826 * float(np.median(np.abs(c - med))), 1.0)
        z = np.abs(c - med) / scale
        for (sid, who, _), n, zi in zip(items, counts, z, strict=True):
            if zi > count_z:
                rows.append((sid, who, "box_count", zi / (zi + count_z), -1, -1,
                             f"{n} boxes, median {med:g}"))  # fmt: skip
    cols = ["id", "annotator", "issue", "score", "box", "other", "detail"]
    out = pd.DataFrame(rows, columns=cols)
    out["flagged"] = True
    out["issue"] = pd.Categorical(out["issue"], categories=list(BOX_ISSUES))
    out = out.astype({"score": "float64", "box": "int64", "other": "int64"})
    return out[["id", "annotator", "issue", "score", "flagged", "box", "other", "detail"]]


def _box_items(boxes: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(boxes, pd.DataFrame):
        missing = {"id", "value"} - set(boxes.columns)
        if missing:
            raise ParameterError(f"the boxes frame needs columns id and value; missing {missing}")
        who = boxes["annotator"] if "annotator" in boxes.columns else [None] * len(boxes)
        return list(zip(boxes["id"], who, boxes["value"], strict=True))
    if isinstance(boxes, Mapping):
        return [(k, None, v) for k, v in boxes.items()]
    raise ParameterError(
        "boxes must map sample ids to box lists, or be store.current(task=...) (id, value)"
    )


def _sizes(sizes: Any) -> dict[str, tuple[float, float]]:
    if sizes is None:
        return {}
    if isinstance(sizes, Mapping):
        out = {}
        for k, v in sizes.items():
            if not (isinstance(v, Sequence) and len(v) == 2):
                raise ParameterError(f"size of {k!r} must be (width, height), got {v!r}")
            out[k] = (check_real(v[0], "width", low=0), check_real(v[1], "height", low=0))
        return out
    df = getattr(sizes, "df", None)
    if isinstance(df, pd.DataFrame) and {"id", "width", "height"} <= set(df.columns):
        ok = df[df["width"].notna() & df["height"].notna()]
        return {i: (float(w), float(h))
                for i, w, h in zip(ok["id"], ok["width"], ok["height"], strict=True)}  # fmt: skip
    raise ParameterError("sizes must map ids to (width, height), or be a catalog")


def match_boxes(a: Any, b: Any, iou: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matching of two box lists maximising total IoU, pairs at ``>= iou`` only.

    Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on the IoU matrix; returns
    ``(index in a, index in b, IoU)`` sorted by index in ``a``.
    """
    from scipy.optimize import linear_sum_assignment

    iou = check_real(iou, "iou", low=0, high=1, low_open=True)
    m = iou_matrix(a, b)
    if m.size == 0:
        return []
    # Pairs under the cut are worth nothing, so the assignment never trades a good match for
    # a weak one it would then drop.
    gain = np.where(m >= iou, m, 0.0)
    ra, rb = linear_sum_assignment(gain, maximize=True)
    return [(int(i), int(j), float(m[i, j])) for i, j in zip(ra, rb, strict=True)
            if m[i, j] >= iou]  # fmt: skip


def box_agreement(current: pd.DataFrame, iou: float = 0.5) -> pd.DataFrame:
    """Box agreement between annotators, per sample and pair of annotators.

    Parameters
    ----------
    current
        ``id, annotator, value`` rows (``store.current(task="boxes")``); the latest round per
        annotator and sample is used when a ``round`` column is present.
    iou
        Least IoU of a match.

    Returns
    -------
    pandas.DataFrame
        ``id, a, b, boxes_a, boxes_b, matched, same_label, unmatched_a, unmatched_b, mean_iou``
        (``mean_iou`` over the matches, NaN without any). Sum the columns for totals: label
        agreement is ``same_label.sum() / matched.sum()``.
    """
    need = {"id", "annotator", "value"} - set(getattr(current, "columns", []))
    if not isinstance(current, pd.DataFrame) or need:
        raise ParameterError("box_agreement needs store.current(task=...) (id, annotator, value)")
    cur = current
    if "round" in cur.columns:
        cur = cur.sort_values("round", kind="stable").drop_duplicates(["id", "annotator"], "last")
    rows = []
    for sid, g in cur.groupby("id", sort=True):
        by = dict(zip(g["annotator"], g["value"], strict=True))
        for x, y in combinations(sorted(by, key=str), 2):
            bx, by_ = _boxes(by[x], f"boxes of {sid!r}"), _boxes(by[y], f"boxes of {sid!r}")
            pairs = match_boxes(bx, by_, iou)
            same = sum(bx[i][4] == by_[j][4] for i, j, _ in pairs)
            mean = float(np.mean([p[2] for p in pairs])) if pairs else math.nan
            rows.append((sid, x, y, len(bx), len(by_), len(pairs), same,
                         len(bx) - len(pairs), len(by_) - len(pairs), mean))  # fmt: skip
    cols = ["id", "a", "b", "boxes_a", "boxes_b", "matched", "same_label", "unmatched_a",
            "unmatched_b", "mean_iou"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)

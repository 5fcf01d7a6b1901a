"""Agreement between annotators: percent agreement, Cohen's, Fleiss' kappa, Krippendorff's alpha.

Every function takes :class:`~workbench.quality._votes.Votes` (build them with
``Votes.from_store(store)`` or ``Votes.from_frame(store.current())``) and works on its flat arrays
with numpy: no Python loop runs per item or per annotator pair.

Definitions (each figure equals its reference implementation to 1e-9, tested)
-----------------------------------------------------------------------------
- **Percent agreement** of an item with ``m >= 2`` votes is the share of its ``m (m - 1)``
  ordered vote pairs that agree; :func:`percent_agreement` is its mean over those items.
- **Cohen's kappa** of two annotators uses the items both labeled; weights ``"linear"`` and
  ``"quadratic"`` take the distance between class *positions* in ``votes.classes`` (the store's
  class order), as ``sklearn.metrics.cohen_kappa_score(..., labels=range(K))`` does.
- **Fleiss' kappa** needs the same number of votes on every item it uses (statsmodels'
  ``fleiss_kappa``); see :func:`fleiss_kappa` for what happens when counts differ.
- **Krippendorff's alpha** (nominal) allows any number of votes per item, missing ones included;
  items with a single vote carry no pair and are left out (the ``krippendorff`` package's rule).

Degenerate cases
----------------
A chance-corrected figure is ``expected - observed`` over ``expected`` disagreement; when nobody
*could* have disagreed by chance (every vote in play is one class) it is 0/0 and the function
returns ``NaN`` — never 1.0, which would claim agreement beyond chance that was not measurable.
scikit-learn and statsmodels return ``NaN`` there too; the ``krippendorff`` package raises. The
same ``NaN`` comes when there is nothing to compare (no item with two votes, a pair of annotators
with no item in common). :func:`pairwise` and :func:`summary` say why in a ``note`` column.
Percent agreement has no chance term: all-agree is 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench._validation import check_choice, check_int
from workbench.errors import ParameterError
from workbench.quality._votes import Votes

__all__ = [
    "WEIGHTS",
    "accuracy",
    "annotator_confusion",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "pairwise",
    "percent_agreement",
    "summary",
]

#: Weightings of Cohen's kappa (``None`` is unweighted).
WEIGHTS = (None, "linear", "quadratic")

_NO_CHANCE = "every vote compared is one class: chance agreement is 1, kappa is undefined"
_NO_PAIRS = "no item has two votes"


def _need_votes(votes: Any) -> Votes:
    if not isinstance(votes, Votes):
        raise ParameterError(
            "pass Votes: Votes.from_store(store) or Votes.from_frame(store.current()), "
            f"got {type(votes).__name__}"
        )
    return votes


def _pairable_counts(votes: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vote counts per class and votes per item, of the items with two or more votes."""
    counts = _need_votes(votes).counts()
    m = counts.sum(axis=1)
    use = m >= 2
    return counts[use], m[use]


def _weight_matrix(k: int, weights: str | None) -> np.ndarray:
    """Disagreement weights between class positions (0 on the diagonal)."""
    check_choice(weights, "weights", WEIGHTS)
    pos = np.arange(k, dtype=float)
    if weights is None:
        return 1.0 - np.eye(k)
    diff = np.abs(pos[:, None] - pos[None, :])
    return diff if weights == "linear" else diff**2


def _vote_pairs(votes: Votes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of votes on one item: annotators ``a < b`` and their class codes.

    Votes are sorted by item then annotator, so the votes ``d`` places apart on the same item
    form the pairs at distance ``d``; the loop runs over ``d`` (at most the largest number of
    votes on an item), never over items.
    """
    item, ann, code = votes.item, votes.annotator, votes.code
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    d = 1
    while d < len(item):
        same = np.flatnonzero(item[:-d] == item[d:])
        if len(same) == 0:
            break
        parts.append((same, same + d))
        d += 1
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    return ann[i], ann[j], code[i], code[j]


def _kappas(
    pair: np.ndarray, n_pairs: int, ca: np.ndarray, cb: np.ndarray, k: int, weights: str | None
) -> np.ndarray:
    """Cohen's kappa of ``n_pairs`` annotator pairs at once (``pair`` indexes each vote pair).

    ``kappa = 1 - sum(W * O) / sum(W * E)`` with ``E = outer(rows, cols) / n`` as in
    scikit-learn; ``sum(W * E)`` is computed from the per-pair margins (``n_pairs × K``) so no
    ``K × K`` table per pair is ever built.
    """
    w = _weight_matrix(k, weights)
    n = np.bincount(pair, minlength=n_pairs).astype(float)
    observed = np.bincount(pair, weights=w[ca, cb], minlength=n_pairs)
    rows = np.bincount(pair * k + ca, minlength=n_pairs * k).reshape(n_pairs, k).astype(float)
    cols = np.bincount(pair * k + cb, minlength=n_pairs * k).reshape(n_pairs, k).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.einsum("pk,pk->p", rows @ w, cols) / n
        return 1.0 - observed / expected


def pairwise(votes: Votes) -> pd.DataFrame:
    """Agreement of every pair of annotators that labeled an item in common.

    Returns
    -------
    pandas.DataFrame
        One row per pair ``(a, b)`` (``a`` before ``b`` in ``votes.annotators``) with ``n``
        (items both labeled), ``agreement`` (share of them with the same class), ``kappa``,
        ``kappa_linear``, ``kappa_quadratic`` (Cohen's) and ``note`` (why a kappa is ``NaN``,
        else empty). Pairs with no item in common have no row; :func:`cohen_kappa` gives ``NaN``
        for them.
    """
    votes = _need_votes(votes)
    a, b, ca, cb = _vote_pairs(votes)
    m, k = votes.n_annotators, votes.n_classes
    keys, pair = np.unique(a * m + b, return_inverse=True)
    p = len(keys)
    n = np.bincount(pair, minlength=p)
    agree = np.bincount(pair, weights=(ca == cb).astype(float), minlength=p)
    out = pd.DataFrame(
        {
            "a": votes.annotators[keys // m],
            "b": votes.annotators[keys % m],
            "n": n,
            "agreement": agree / np.maximum(n, 1),
        }
    )
    for name, w in (("kappa", None), ("kappa_linear", "linear"), ("kappa_quadratic", "quadratic")):
        out[name] = _kappas(pair, p, ca, cb, k, w)
    out["note"] = np.where(out["kappa"].isna(), _NO_CHANCE, "")
    return out


def cohen_kappa(votes: Votes, a: Any, b: Any, *, weights: str | None = None) -> float:
    """Cohen's kappa of annotators ``a`` and ``b`` over the items both labeled.

    ``weights`` is ``None`` (unweighted), ``"linear"`` or ``"quadratic"`` (distances between class
    positions in ``votes.classes``). ``NaN`` when they share no item, or when both used one and
    the same class throughout (chance agreement 1; scikit-learn gives ``NaN`` too).
    """
    votes = _need_votes(votes)
    check_choice(weights, "weights", WEIGHTS)
    ia, ib = votes.annotator_index(a), votes.annotator_index(b)
    sa, sb = votes.annotator == ia, votes.annotator == ib
    _, pa, pb = np.intersect1d(votes.item[sa], votes.item[sb], return_indices=True)
    if len(pa) == 0:
        return float("nan")
    ca, cb = votes.code[sa][pa], votes.code[sb][pb]
    pair = np.zeros(len(ca), dtype=np.int64)
    return float(_kappas(pair, 1, ca, cb, votes.n_classes, weights)[0])


def _item_agreement(counts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Share of agreeing ordered vote pairs per item (items with ``m >= 2`` only)."""
    return ((counts.astype(float) ** 2).sum(axis=1) - m) / (m * (m - 1.0))


def percent_agreement(votes: Votes) -> float:
    """Mean over items with two or more votes of the share of vote pairs that agree.

    With two votes per item this is the share of items where both agree. ``NaN`` when no item has
    two votes.
    """
    counts, m = _pairable_counts(votes)
    if not len(m):
        return float("nan")
    return float(_item_agreement(counts, m).mean())


def fleiss_kappa(votes: Votes, *, raters: int | None = None) -> float:
    """Fleiss' kappa over items that each have exactly ``raters`` votes.

    Parameters
    ----------
    raters
        The number of votes per item. Default: the number every voted item has; when items have
        different numbers, :class:`ParameterError` names them and asks for ``raters=`` (which
        then uses only the items with exactly that many votes) — or use
        :func:`krippendorff_alpha`, which allows any number per item. Fleiss' kappa is only
        defined for a constant number of raters; mixing counts silently would bias it.

    Returns
    -------
    float
        ``NaN`` when every vote on those items is one class (statsmodels gives ``NaN`` too).

    Raises
    ------
    ParameterError
        Counts differ and ``raters`` is not given, no item has ``raters`` votes, ``raters < 2``.
    """
    votes = _need_votes(votes)
    counts = votes.counts()
    m = counts.sum(axis=1)
    if raters is None:
        found = np.unique(m)
        if len(found) > 1:
            per = ", ".join(f"{int(c)} votes: {int((m == c).sum())} items" for c in found[:6])
            raise ParameterError(
                f"Fleiss' kappa needs the same number of votes on every item; here {per}. "
                "Pass raters=N to use the items with exactly N votes, or use krippendorff_alpha()"
            )
        raters = int(found[0])
    raters = check_int(raters, "raters", low=2)
    use = m == raters
    if not use.any():
        found = np.unique(m).tolist()
        raise ParameterError(f"no item has exactly {raters} votes; pick raters= among {found}")
    table = counts[use].astype(float)
    p_mean = _item_agreement(table, m[use]).mean()
    p_cat = table.sum(axis=0) / table.sum()
    p_exp = (p_cat**2).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((p_mean - p_exp) / (1.0 - p_exp))


def krippendorff_alpha(votes: Votes) -> float:
    """Krippendorff's alpha for nominal data; any number of votes per item, missing allowed.

    From the coincidence matrix ``o``: ``alpha = 1 - (n - 1) * sum_{c != k} o_ck /
    sum_{c != k} n_c n_k`` over the items with at least two votes (``n_c`` the class totals
    there, ``n`` their sum). ``NaN`` when no item has two votes, or when every one of their votes
    is one class (the ``krippendorff`` package raises in both cases).
    """
    counts, m = _pairable_counts(votes)
    if not len(m):
        return float("nan")
    c, mu = counts.astype(float), m.astype(float)
    observed = ((mu**2 - (c**2).sum(axis=1)) / (mu - 1.0)).sum()
    n_c = c.sum(axis=0)
    n = n_c.sum()
    expected = n**2 - (n_c**2).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(1.0 - (n - 1.0) * observed / expected)


def _truth_codes(votes: Votes, truth: Any) -> np.ndarray:
    """Per item: the true class code, ``-1`` for a class outside ``votes.classes``, ``-2`` none."""
    if isinstance(truth, pd.DataFrame):
        if not {"id", "label"} <= set(truth.columns):
            raise ParameterError("a truth table needs columns 'id' and 'label' (a consensus)")
        truth = pd.Series(truth["label"].to_numpy(), index=truth["id"].to_numpy())
    if isinstance(truth, pd.Series):
        if not truth.index.is_unique:
            raise ParameterError("truth has an item id more than once")
        truth = truth.to_dict()
    if not isinstance(truth, Mapping):
        raise ParameterError(
            f"truth maps item id -> true label (a dict or Series), got {type(truth).__name__}"
        )
    out = np.full(votes.n_items, -2, dtype=np.int64)
    ids = [i for i, v in truth.items() if v is not None and not (isinstance(v, float) and v != v)]
    pos = votes.item_positions(ids)
    known = pos >= 0
    out[pos[known]] = votes.class_codes([truth[i] for i in ids])[known]
    return out


def accuracy(votes: Votes, truth: Mapping[Any, Any] | pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Each annotator's accuracy against known answers (gold) or against a consensus.

    Parameters
    ----------
    truth
        Item id → true label: a dict, a Series, or a consensus table with columns ``id`` and
        ``label`` (tied items, whose label is missing, are not counted). A true label outside
        ``votes.classes`` counts as missed by everyone.

    Returns
    -------
    pandas.DataFrame
        ``annotator, n, correct, accuracy`` for every annotator (``accuracy`` is ``NaN`` when
        ``n`` is 0). Against a consensus an annotator's own vote helped make the answer, so the
        figure is optimistic, most with few annotators per item.
    """
    votes = _need_votes(votes)
    t = _truth_codes(votes, truth)[votes.item]
    has = t != -2
    m = votes.n_annotators
    n = np.bincount(votes.annotator[has], minlength=m)
    correct = np.bincount(votes.annotator[has & (t == votes.code)], minlength=m)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = correct / n
    return pd.DataFrame(
        {"annotator": votes.annotators, "n": n, "correct": correct, "accuracy": acc}
    )


def annotator_confusion(votes: Votes, a: Any, b: Any) -> pd.DataFrame:
    """How annotator ``a``'s classes (rows) meet ``b``'s (columns) on the items both labeled."""
    votes = _need_votes(votes)
    ia, ib = votes.annotator_index(a), votes.annotator_index(b)
    sa, sb = votes.annotator == ia, votes.annotator == ib
    _, pa, pb = np.intersect1d(votes.item[sa], votes.item[sb], return_indices=True)
    k = votes.n_classes
    flat = np.bincount(votes.code[sa][pa] * k + votes.code[sb][pb], minlength=k * k)
    names = list(votes.classes)
    return pd.DataFrame(
        flat.reshape(k, k),
        index=pd.Index(names, name=str(a)),
        columns=pd.Index(names, name=str(b)),
    )


def summary(votes: Votes) -> pd.DataFrame:
    """The overall figures in one table: ``metric, value, items, note`` (why a value is ``NaN``)."""
    votes = _need_votes(votes)
    m = votes.votes_per_item()
    pairable = int((m >= 2).sum())
    rows: list[tuple[str, float, int, str]] = []
    pa, ka = percent_agreement(votes), krippendorff_alpha(votes)
    rows.append(("percent_agreement", pa, pairable, _NO_PAIRS if np.isnan(pa) else ""))
    note = _NO_PAIRS if pairable == 0 else (_NO_CHANCE if np.isnan(ka) else "")
    rows.append(("krippendorff_alpha", ka, pairable, note))
    counts = np.unique(m[m >= 2])
    if len(counts) == 0:
        rows.append(("fleiss_kappa", float("nan"), 0, _NO_PAIRS))
    else:
        r = int(counts[np.argmax([(m == c).sum() for c in counts])])  # the commonest count
        fk = fleiss_kappa(votes, raters=r)
        note = f"items with exactly {r} votes" + (f"; {_NO_CHANCE}" if np.isnan(fk) else "")
        rows.append(("fleiss_kappa", fk, int((m == r).sum()), note))
    return pd.DataFrame(rows, columns=["metric", "value", "items", "note"])

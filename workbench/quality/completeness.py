"""Completeness and balance: what is still unlabeled, under-labeled, over-represented, and how fast
each annotator works.

Everything is derived from the store's events (:meth:`~workbench.labels.LabelStore.current` and
:meth:`~workbench.labels.LabelStore.history`) and returned as plain DataFrames and dicts. A
sample counts as labeled by an annotator when that annotator has a current label on it (a skip
or an undone label does not count). Consensus annotators (names starting with
:data:`~workbench.quality._votes.CONSENSUS_PREFIX`, ``"consensus:"``, by default) are not
annotators here: their labels are derived, not given. Assignments and gold answers are not
labels either (they are never current).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_positive_int
from workbench.errors import ParameterError
from workbench.labels import CONSENSUS_PREFIX

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore

__all__ = [
    "balance",
    "class_counts",
    "completeness",
    "coverage_by_round",
    "throughput",
    "under_labeled",
    "unlabeled",
]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _ids(store: LabelStore, catalog: Catalog | None) -> list[str]:
    cat = catalog if catalog is not None else getattr(store, "catalog", None)
    if cat is None:
        raise ParameterError(
            "completeness needs the samples to cover: pass catalog=... (or open the store with one)"
        )
    return [str(i) for i in cat.df["id"]]


def _labels(store: LabelStore, task: str, consensus: str) -> pd.DataFrame:
    if not hasattr(store, "current"):
        raise ParameterError("expected a LabelStore")
    cur = store.current(task=_text(task, "task"))
    return cur[~cur["annotator"].astype(str).str.startswith(_text(consensus, "consensus"))]


def unlabeled(
    store: LabelStore,
    catalog: Catalog | None = None,
    *,
    task: str = "class",
    consensus: str = CONSENSUS_PREFIX,
) -> list[str]:
    """Ids of catalog samples nobody has a current label on, in catalog order."""
    done = set(_labels(store, task, consensus)["id"])
    return [i for i in _ids(store, catalog) if i not in done]


def under_labeled(
    store: LabelStore,
    required: int = 2,
    catalog: Catalog | None = None,
    *,
    task: str = "class",
    consensus: str = CONSENSUS_PREFIX,
) -> pd.DataFrame:
    """Samples with fewer than ``required`` distinct annotators' labels.

    Returns ``id, labels, missing`` in catalog order (``labels``: distinct annotators with a
    current label, any round; ``missing = required - labels``).
    """
    required = check_positive_int(required, "required")
    cur = _labels(store, task, consensus)
    n = cur.groupby("id")["annotator"].nunique()
    ids = _ids(store, catalog)
    have = n.reindex(ids, fill_value=0).astype(int).to_numpy()
    out = pd.DataFrame({"id": ids, "labels": have, "missing": required - have})
    return out[out["missing"] > 0].reset_index(drop=True)


def _flat(values: Iterable[Any]) -> list[str]:
    """Class names in label values: a class, a list of classes, or boxes (each box counts)."""
    out: list[str] = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, str):
                    out.append(x)
                elif isinstance(x, list) and x and isinstance(x[-1], str):
                    out.append(x[-1])
    return out


def class_counts(values: Iterable[Any], classes: Iterable[str] | None = None) -> pd.Series:
    """How often each class occurs among label values (multi-label and boxes: each class/box).

    ``classes`` lists classes to report even at zero (e.g. ``store.classes()``), in that order;
    others follow, most frequent first.
    """
    counts = pd.Series(_flat(values), dtype=object).value_counts()
    order = list(dict.fromkeys([*(classes or []), *counts.index]))
    return counts.reindex(order, fill_value=0).astype(int).rename("count").rename_axis("class")


def balance(counts: pd.Series | dict[str, int]) -> dict[str, Any]:
    """Imbalance figures of per-class counts.

    Returns
    -------
    dict
        ``classes`` (number), ``total``, ``largest`` / ``smallest`` (class names), ``ratio``
        (largest count / smallest; ``inf`` when a class has none), and ``entropy`` balance
        ``H(p) / log K`` of the class shares (1 = perfectly even, 0 = one class only; 1.0 with
        a single class).
    """
    c = pd.Series(counts, dtype="float64")
    if c.empty:
        raise ParameterError("balance needs the count of at least one class")
    if (c < 0).any() or not np.isfinite(c).all():
        raise ParameterError("class counts must be finite and non-negative")
    total = float(c.sum())
    p = c[c > 0] / total if total else c[c > 0]
    h = float(-(p * np.log(p)).sum())
    k = len(c)
    lo = float(c.min())
    return {
        "classes": k,
        "total": int(total),
        "largest": c.idxmax(),
        "smallest": c.idxmin(),
        "ratio": float(c.max()) / lo if lo > 0 else math.inf,
        "entropy": h / math.log(k) if k > 1 else 1.0,
    }


def coverage_by_round(
    store: LabelStore,
    catalog: Catalog | None = None,
    *,
    task: str = "class",
    consensus: str = CONSENSUS_PREFIX,
) -> pd.DataFrame:
    """Per round: ``round, labeled`` (distinct samples with a current label in it),
    ``annotators``, ``labels`` (current labels), ``reviewed`` (distinct samples with a review
    event in it) and ``coverage`` (labeled / samples in the catalog, NaN without one)."""
    cur = _labels(store, task, consensus)
    hist = store.history(kind="review", task=task)
    cat = catalog if catalog is not None else getattr(store, "catalog", None)
    total = len(cat.df) if cat is not None else None
    rounds = sorted(set(cur["round"].astype(int)) | set(hist["round"].astype(int)))
    rows = []
    for r in rounds:
        c = cur[cur["round"] == r]
        rows.append((r, c["id"].nunique(), c["annotator"].nunique(), len(c),
                     hist.loc[hist["round"] == r, "id"].nunique()))  # fmt: skip
    out = pd.DataFrame(rows, columns=["round", "labeled", "annotators", "labels", "reviewed"])
    out["coverage"] = out["labeled"] / total if total else math.nan
    return out


def throughput(store: LabelStore, *, task: str = "class") -> pd.DataFrame:
    """Per annotator (and reviewer), from every decision they made, undone ones included (the
    time was spent).

    Columns ``annotator, labeled`` (samples with a current label), ``decisions`` (label, import
    and skip events), ``reviews``, ``undos``, ``seconds`` (total recorded time),
    ``seconds_per_item`` (median recorded time per decision), ``per_hour`` (timed decisions per
    hour of recorded time), ``first``, ``last`` (timestamps) and ``span_hours`` (last - first).
    """
    task = _text(task, "task")
    if not hasattr(store, "history"):
        raise ParameterError("expected a LabelStore")
    hist = store.history(task=task)
    hist = hist[hist["kind"].isin(["label", "import", "skip", "undo", "review"])]
    hist = hist[~hist["annotator"].astype(str).str.startswith(CONSENSUS_PREFIX)]
    cur = store.current(task=task)
    labeled = cur.groupby("annotator")["id"].nunique()
    rows = []
    for who, h in hist.groupby("annotator", sort=True):
        dec = h[h["kind"].isin(["label", "import", "skip"])]
        timed = dec["seconds"].dropna()
        secs = float(timed.sum())
        rows.append((
            who, int(labeled.get(who, 0)), len(dec), int((h["kind"] == "review").sum()),
            int((h["kind"] == "undo").sum()), secs,
            float(timed.median()) if len(timed) else math.nan,
            3600.0 * len(timed) / secs if secs > 0 else math.nan,
            h["ts"].min(), h["ts"].max(), (h["ts"].max() - h["ts"].min()).total_seconds() / 3600,
        ))  # fmt: skip
    cols = ["annotator", "labeled", "decisions", "reviews", "undos", "seconds",
            "seconds_per_item", "per_hour", "first", "last", "span_hours"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def completeness(
    store: LabelStore,
    catalog: Catalog | None = None,
    *,
    required: int = 1,
    task: str = "class",
    consensus: str = CONSENSUS_PREFIX,
) -> dict[str, Any]:
    """One summary: ``samples, labeled, unlabeled, under_required, required, fraction_labeled``
    and the class ``balance`` of the final labels (:func:`workbench.quality.final.final_labels`).
    """
    from workbench.quality.final import final_labels

    ids = _ids(store, catalog)
    missing = unlabeled(store, catalog, task=task, consensus=consensus)
    under = under_labeled(store, required, catalog, task=task, consensus=consensus)
    final = final_labels(store, task=task, consensus=consensus, catalog=catalog)
    final = final[final["id"].isin(set(ids)) & final["label"].notna()]
    counts = class_counts(final["label"], store.classes)
    return {
        "samples": len(ids),
        "labeled": len(ids) - len(missing),
        "unlabeled": len(missing),
        "under_required": len(under),
        "required": required,
        "fraction_labeled": (len(ids) - len(missing)) / len(ids) if ids else math.nan,
        "class_counts": counts,
        "balance": balance(counts) if len(counts) else None,
    }

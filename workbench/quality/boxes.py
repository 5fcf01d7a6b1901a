"""Box annotations: defects of one annotation and agreement between annotators.

:func:`box_issues` finds zero-area boxes, boxes reaching out of the image, duplicate boxes in one
annotation (IoU above 0.9) and samples with an unusual number of boxes; :func:`match_boxes` pairs
two annotations' boxes one-to-one (Hungarian matching on IoU, ``scipy``'s
``linear_sum_assignment``) and :func:`box_agreement` reports, per sample and pair of annotators,
matched boxes, label agreement on the matches and the unmatched boxes on either side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_probability, check_real
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.catalog import Catalog

__all__ = ["BOX_ISSUES", "box_agreement", "box_issues", "iou_matrix", "match_boxes"]

#: Issue names of :func:`box_issues`.
BOX_ISSUES = ("box_zero_area", "box_outside", "box_duplicate", "box_count")


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

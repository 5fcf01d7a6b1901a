"""The train/validation split: stratified by label, whole duplicate groups on one side.

An exact or near twin on both sides of the split would let the validation score reward
memorising; so samples tied by :func:`workbench.quality.duplicate_groups` (equal content hashes,
and the exact- and near-duplicate groups of the cleaning stage's ``issues.csv``) always land on
the same side. The split covers every sample of the catalog (unlabelled ones form their own
stratum), so it stays valid while labels change and the data-centric comparisons of a notebook
all use one split. It is saved in the Workspace (``file("split")``, a CSV of ``id, split,
group``) and reused until a new one is asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_int, check_real
from workbench.errors import ParameterError
from workbench.fsutil import atomic_open
from workbench.train.config import TrainError

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

__all__ = ["SIDES", "grouped_split", "load_split", "save_split", "split_fingerprint", "split_for"]

#: The values of a split.
SIDES = ("train", "val")
_NONE = "\0unlabelled"  # stratum of samples without a label


def grouped_split(
    ids: Sequence[Hashable],
    labels: Sequence[Any] | pd.Series,
    groups: Sequence[int] | np.ndarray | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> pd.Series:
    """Assign each sample to ``"train"`` or ``"val"``.

    Parameters
    ----------
    ids
        Sample ids (unique).
    labels
        One label per id (``None``/NaN: unlabelled, a stratum of its own).
    groups
        One group number per id (:func:`workbench.quality.duplicate_groups`); samples of a group
        go to the same side. ``None``: every sample is its own group.
    val_fraction
        About this fraction goes to validation: one fold of scikit-learn's
        ``StratifiedGroupKFold`` with ``round(1 / val_fraction)`` folds (shuffled, seeded), which
        keeps class proportions as well as whole groups allow.
    seed
        The shuffle's seed.

    Returns
    -------
    pandas.Series
        Index: the ids; values ``"train"`` / ``"val"``.
    """
    from workbench.quality.label_errors import group_folds

    ids = list(ids)
    index = pd.Index(ids)
    if not index.is_unique:
        repeated = index[index.duplicated()][:5].tolist()
        raise ParameterError(f"sample ids must be unique; repeated: {repeated}")
    val_fraction = check_real(val_fraction, "val_fraction", low=0.02, high=0.5)
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    y = pd.Series(list(labels), dtype=object)
    if len(y) != len(ids):
        raise ParameterError(f"labels has {len(y)} entries for {len(ids)} ids")
    g = np.arange(len(ids)) if groups is None else np.asarray(groups)
    if len(g) != len(ids):
        raise ParameterError(f"groups has {len(g)} entries for {len(ids)} ids")
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise TrainError(
            "a validation split needs at least two independent groups of samples; every sample "
            "is a duplicate of every other (check the duplicate groups of notebook 02)"
        )
    strata = pd.factorize(y.map(lambda v: _NONE if _missing(v) else str(v)))[0]
    # scikit-learn refuses more folds than the largest class has members
    k = min(max(2, round(1 / val_fraction)), n_groups, int(np.bincount(strata).max()))
    if k < 2:
        raise TrainError(
            "every class has a single sample: too few for a validation split; label more samples"
        )
    # the first of k stratified group folds is the validation side
    val = group_folds(strata, g, n_splits=k, random_state=seed) == 0
    side = np.full(len(ids), "train", dtype=object)
    side[val] = "val"
    return pd.Series(side, index=index.rename("id"), name="split")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def split_fingerprint(split: pd.Series) -> str:
    """12 hex digits of the SHA-256 of the sorted ``id, side`` pairs."""
    s = split.sort_index()
    text = "\n".join(f"{i}\t{v}" for i, v in zip(s.index, s, strict=True))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def save_split(workspace: Workspace, split: pd.Series, groups: Any = None) -> None:
    """Write ``split`` (and each sample's duplicate group) to ``workspace.file("split")``."""
    bad = set(pd.unique(split)) - set(SIDES)
    if bad:
        raise ParameterError(f"a split holds only {SIDES}, got {sorted(map(str, bad))}")
    df = pd.DataFrame({"id": split.index.astype(str), "split": split.to_numpy(object)})
    df["group"] = -1 if groups is None else np.asarray(groups, dtype=np.int64)
    with atomic_open(workspace.file("split"), "w") as f:
        df.to_csv(f, index=False)


def load_split(workspace: Workspace) -> pd.Series:
    """The saved split (index id, values ``train``/``val``); :class:`TrainError` if none."""
    p = workspace.file("split")
    if not p.exists():
        raise TrainError(f"no split saved in {str(workspace.path)!r}; make one with split_for()")
    try:
        df = pd.read_csv(p, dtype={"id": str, "split": str}, keep_default_na=False)
    except Exception as e:
        raise TrainError(f"{p} cannot be read ({e}); delete it to make a new split") from None
    if not {"id", "split"} <= set(df.columns) or not df["split"].isin(SIDES).all():
        raise TrainError(f"{p} is not a saved split; delete it to make a new split")
    return pd.Series(
        df["split"].to_numpy(object), index=pd.Index(df["id"], name="id"), name="split"
    )


def duplicate_ties(workspace: Workspace | None, catalog: Catalog) -> np.ndarray:
    """Group numbers of ``catalog`` rows: equal content hashes, plus the exact- and
    near-duplicate groups the cleaning stage saved in ``issues.csv`` (when it exists)."""
    from workbench.quality import duplicate_groups

    df = catalog.df
    if workspace is not None and workspace.file("issues").exists():
        try:
            t = pd.read_csv(workspace.file("issues"), dtype={"id": str, "group": str})
        except Exception as e:
            raise TrainError(
                f"{workspace.file('issues')} cannot be read ({e}); rerun the checks of notebook 02"
            ) from None
        if {"id", "issue", "group"} <= set(t.columns):
            t = t[t["issue"].isin(["exact_duplicate", "near_duplicate"]) & t["group"].notna()]
            # A sample in groups of both issues ties them all (union-find in duplicate_groups).
            lists = t.groupby(["issue", "group"])["id"].agg(list).tolist()
            return duplicate_groups(df["id"].tolist(), df["hash"].tolist(), lists)
    return duplicate_groups(df["id"].tolist(), df["hash"].tolist())


def split_for(
    workspace: Workspace,
    catalog: Catalog,
    labels: pd.Series,
    *,
    new: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> pd.Series:
    """The workspace's split for ``catalog``: the saved one, or a new one (saved) when there is
    none or ``new`` is true.

    Parameters
    ----------
    labels
        ``id -> label`` used for stratification (missing ids: unlabelled).

    Raises
    ------
    TrainError
        The saved split does not cover every sample of ``catalog`` (pass ``new=True``).
    """
    ids = catalog.df["id"].astype(str)
    if workspace.file("split").exists() and not new:
        split = load_split(workspace)
        missing = ~ids.isin(split.index)
        if missing.any():
            raise TrainError(
                f"the saved split does not cover {int(missing.sum())} sample(s) of the catalog "
                f"(e.g. {ids[missing].iloc[0]!r}); make a new one with split='new'"
            )
        return split.loc[ids.to_numpy()]
    groups = duplicate_ties(workspace, catalog)
    y = pd.Series(labels, dtype=object).reindex(ids.to_numpy())
    split = grouped_split(ids.tolist(), y.tolist(), groups, val_fraction=val_fraction, seed=seed)
    save_split(workspace, split, groups)
    return split

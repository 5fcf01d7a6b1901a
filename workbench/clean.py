"""Data-quality checks: a tidy table of issues, duplicate groups with a suggested keeper.

One decode per image computes every per-image feature (perceptual hashes, sharpness, brightness
percentiles, gray standard deviation, channel difference, a 16×16 gray sketch); features are
cached in the Workspace keyed by content hash, so a re-run after adding files only decodes the
new ones.

Issue types, scores and default thresholds (a sample is flagged when ``score >= threshold``)
------------------------------------------------------------------------------------------
=====================  ==============================================================  =========
issue                  score in [0, 1]                                                 threshold
=====================  ==============================================================  =========
``unreadable``         1 for a file the scan could not decode (``status != "ok"``)     1.0
``exact_duplicate``    1 when another readable sample has identical decoded pixels     1.0
``near_duplicate``     1 − d/128, d = Hamming distance of pHash + dHash (64 bits       1 − 20/128
                       each) to the nearest sample with other pixels (rows only for    (1 − 6/128
                       d ≤ ``search_radius``; exact twins share their group); with     if tiny)
                       ``near_method="embedding"`` d = ⌈(1 − cosine) · 128⌉ of the     (1 − 16/128
                       embedder's features (:mod:`workbench.neardup`), so the          embedding)
                       threshold is the cosine similarity
``blurry``             1 − 2^(−z/3), z = robust z-score (below the catalog's median,  0.5
                       in MADs) of s = log(variance of the Laplacian / gray variance)  (z ≥ 3)
                       (contrast-free: low contrast alone is not blur)
``dark``               1 − 2^(−z/3), z = robust z-score of p90(luma) below the        0.5
                       catalog's median: even the bright parts are unusually dark
``bright``             (1 − 2^(−z/3)) · min(1, c / 1 %), z = robust z-score of          0.5
                       p1(max(R, G, B)) above the catalog's median, c = share of pixels
                       with max(R, G, B) ≥ 250: even the darkest parts are light and the
                       highlights are clipped (washed out, not merely a light scene)
``low_information``    1 − 2^(−z/3), z = robust z-score of log(σ + 0.5) below the     0.5
                       catalog's median, σ = standard deviation of the gray levels
``grayscale_in_color`` 1 − min(1, mean |R−G|, |G−B| / 2), colour files only           0.75
                       (a case cleanvision misses: an RGB file that holds a gray image)
``odd_size``           min(1, |log2(area / median area)| / 4)                          0.5 (4×)
``odd_aspect_ratio``   min(1, |log2(width / height)| / 2)                              0.5 (2:1)
``outlier``            1 − 2^(−d/f), d = mean distance to the k nearest neighbours      0.5
                       in feature space, f = the fence Q3 + 2·IQR of d
=====================  ==============================================================  =========

A robust z-score is (median − x) / max(1.4826 · MAD, floor) over the catalog's readable
images (x − median for ``bright``): each check is relative to the catalog, so a set of soft
28-px silhouettes or 25-px faces is judged against itself, not against photos. The floor (0.1
and 0.3 in log units for sharpness and σ, 40 levels for p90, 32 for p1) keeps a catalog whose
images nearly all share one value (silhouettes: p90 = 255) from flagging every small step.
Measured in ``benchmarks/bench_checks.py`` against ImageNet-C corruptions and clean natural
sets (tuned on photo crops and silhouettes, reported on faces, background patches and digits
too). ``bright`` asks for clipped highlights because a brightness shift (ImageNet-C's, an
overexposure) pushes them into the top levels while a naturally light scene (a plain wall, sky,
a retina) keeps them below: without that condition it flagged 8 % of ``lfw_subset``'s 100
background patches, seven of them without a single pixel at 250 or above (now 1 %).

Near-duplicate search is exact and sub-quadratic: if pHash + dHash distance is at most ``r``,
one of the two is at most ``r // 2``, so candidates come from two multi-index hash searches
(:class:`workbench.hashindex.HammingIndex`) with radius ``r // 2`` and are verified on both.
The pair of hashes is what makes it better than pHash alone: on the benchmark set, at the recall
of the pair at radius 16 (0.937) pHash alone has 0.517 precision against 0.843 (1.63x), and at
the default radius 20 (recall 0.983) 0.190 against 0.673 (3.55x); section 4 of
``benchmarks/bench_clean.py`` prints both by radius and these ratios. Groups are connected
components (union-find) of the pairs within the threshold. Each duplicate group has a suggested
keeper: the largest resolution, then the first id.

On small images (median longer side under 64 px) the hashes cannot tell an edited copy from a
distinct image; ``near_method="auto"`` (the default) searches those catalogs by embedding
similarity instead (:mod:`workbench.neardup`: a cosine threshold plus a local test that keeps a
large catalog of look-alikes from chaining); ``benchmarks/bench_clean.py`` prints both methods
per subset (section 1) and their counts on the 10,000 animal silhouettes (section 5).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench import neardup
from workbench._validation import check_choice, check_int, check_positive_int, check_probability
from workbench.catalog import PERCEPTUAL_COLUMNS
from workbench.decisions import Decisions as Decisions  # re-exported: its home until now
from workbench.errors import ParameterError
from workbench.fsutil import atomic_open
from workbench.parallel import pmap

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.embed import Embedder
    from workbench.workspace import Workspace

CHECKS = (
    "unreadable", "exact_duplicate", "near_duplicate", "blurry", "dark", "bright",
    "low_information", "grayscale_in_color", "odd_size", "odd_aspect_ratio", "outlier",
)  # fmt: skip
HASH_BITS = 128  # pHash + dHash
DEFAULT_RADIUS = 20
#: Images whose longer side is under ``SMALL_SIDE`` px carry fewer bits than the hashes (pHash
#: works on a 32×32 grid): silhouettes of different animals collide at radius 20. For datasets
#: whose median image is that small, the default radius is ``SMALL_RADIUS`` (measured on the
#: benchmark set's 28-px silhouettes: precision 0.998 at radius 6 against 0.517 at 20; section 4
#: of ``benchmarks/bench_clean.py`` prints both).
SMALL_SIDE = 64
SMALL_RADIUS = 6
DEFAULT_THRESHOLDS: dict[str, float] = {
    "unreadable": 1.0,
    "exact_duplicate": 1.0,
    "near_duplicate": 1 - DEFAULT_RADIUS / HASH_BITS,
    "blurry": 0.5,
    "dark": 0.5,
    "bright": 0.5,
    "low_information": 0.5,
    "grayscale_in_color": 0.75,
    "odd_size": 0.5,
    "odd_aspect_ratio": 0.5,
    "outlier": 0.5,
}
DUPLICATE_CHECKS = ("exact_duplicate", "near_duplicate")
#: Version of the feature table; the workspace's ``features`` file name carries it (a test holds
#: the two together), so a new version starts a new cache instead of misreading an old one.
FEATURES_VERSION = 4
_SKETCH = 16
#: Robust z-score at which the relative checks flag (score 0.5), and the floor of each scale
#: (see the module docstring); chosen on photo crops and silhouettes, see bench_checks.py.
Z_FLAG = 3.0
#: ``bright`` needs at least CLIP_SHARE of the pixels at max(R, G, B) >= CLIP_LEVEL (its score
#: is scaled down below that): chosen on photo crops, where 80-100 % of ImageNet-C brightness
#: copies at each severity have 1 % of their pixels there and 35 % of the clean crops do.
CLIP_LEVEL = 250
CLIP_SHARE = 0.01
_Z_FLOOR = {"sharpness": 0.1, "gray_std": 0.3, "p90": 40.0, "v01": 32.0}
WORK_SIDE = 256  # longest side of the box-reduced copy the per-image checks look at
_FEATURE_DTYPES = {
    "phash": "int64", "dhash": "int64", "sharpness": "float64", "v01": "float64",
    "v_clip": "float64", "p90": "float64", "gray_std": "float64", "channel_diff": "float64",
    "sketch": object,
}  # fmt: skip

# ---------------------------------------------------------------------------- features


def image_features(path: str, hashes_only: bool = False) -> dict[str, Any] | None:
    """Every per-image feature the checks use, from one decode (``None`` if undecodable).

    ``hashes_only`` computes just the perceptual hashes (all a duplicate search needs); the
    other fields are then missing and filled in by a later full run.
    """
    from workbench.errors import DecodeError
    from workbench.io import decode

    try:
        im = decode(path)
    except DecodeError:
        return None
    return features_of(im, hashes_only)


def features_of(im: Any, hashes_only: bool = False) -> dict[str, Any]:
    """:func:`image_features` of an already decoded image (``L`` or ``RGB``, as
    :func:`workbench.io.decode` returns it): for a caller that holds the decode anyway."""
    from PIL import Image, ImageChops

    from workbench._moments import Moments  # not via normalize: that imports sklearn per worker
    from workbench.hashindex import perceptual_hashes

    phash, dhash = perceptual_hashes(im)  # the scan's hashes are these
    out: dict[str, Any] = {"phash": phash, "dhash": dhash}
    if hashes_only:
        return out
    factor = max(im.size) // WORK_SIDE  # a box-reduced copy: same verdicts, less work
    im = im.reduce(factor) if factor > 1 else im
    gray = im.convert("L") if im.mode != "L" else im
    a = np.asarray(gray)
    counts = gray.histogram()
    cdf = np.cumsum(counts) / a.size
    # HSV value (max channel): what a brightness shift lifts; for gray images the gray level.
    # Pillow's lighter() is several times faster than numpy's max over the last axis.
    if im.mode == "RGB":
        r, g, b = im.split()
        vcounts = ImageChops.lighter(ImageChops.lighter(r, g), b).histogram()
    else:
        vcounts = counts
    vcdf = np.cumsum(vcounts) / a.size
    chan = math.nan
    if im.mode == "RGB":  # a global property: a 64-px copy answers it
        c = np.asarray(im.reduce(max(1, max(im.size) // 64)), dtype=np.int16)
        chan = float(
            (np.abs(c[..., 0] - c[..., 1]).mean() + np.abs(c[..., 1] - c[..., 2]).mean()) / 2
        )
    sketch = np.asarray(gray.resize((_SKETCH, _SKETCH), Image.Resampling.BOX), dtype=np.uint8)
    out.update(
        sharpness=_laplacian_variance(a),
        gray_std=float(Moments.from_counts(counts).std()[0]),
        v01=float(np.searchsorted(vcdf, 0.01)),
        v_clip=float(1.0 - vcdf[CLIP_LEVEL - 1]),
        p90=float(np.searchsorted(cdf, 0.90)),
        channel_diff=chan,
        sketch=sketch.tobytes(),
    )
    return out


def _laplacian_variance(a: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a gray image on the [0, 1] scale, interior
    pixels only (``scipy.ndimage.laplace`` without the border rows, several times faster)."""
    if min(a.shape) < 3:
        return 0.0
    f = a.astype(np.float32) * np.float32(1 / 255)
    lap = f[1:-1, :-2] + f[1:-1, 2:] + f[:-2, 1:-1] + f[2:, 1:-1] - 4 * f[1:-1, 1:-1]
    return float(lap.var())


def _features_row(item: tuple[str, str, bool]) -> tuple[str, dict[str, Any] | None]:
    h, path, hashes_only = item
    return h, image_features(path, hashes_only)


def compute_features(
    catalog: Catalog,
    *,
    workspace: Workspace | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = True,
    hashes_only: bool = False,
) -> tuple[pd.DataFrame, int]:
    """Per-image features indexed by content hash, and how many images had to be decoded.

    With a ``workspace``, features are cached by content hash in its ``features`` file
    (``workspace.file("features")``, named for :data:`FEATURES_VERSION`).
    ``hashes_only`` skips everything but the perceptual hashes for images not cached yet.
    """
    ok = catalog.df[catalog.df["status"] == "ok"]
    wanted = ok.drop_duplicates("hash")
    wanted = wanted[[c for c in ("hash", "path", *PERCEPTUAL_COLUMNS) if c in wanted.columns]]
    cache_path = workspace.file("features") if workspace is not None else None
    cached = pd.DataFrame()
    if cache_path is not None and cache_path.exists():
        try:
            cached = pd.read_parquet(cache_path).set_index("hash")
        except Exception:  # a damaged cache is only a slower run
            cached = pd.DataFrame()
    if len(cached):
        # a row from before a feature existed lacks it: recomputed, not misread
        full = cached.reindex(columns=list(_FEATURE_DTYPES)).drop(columns="sketch").notna()
        complete = cached.index if hashes_only else cached.index[full.all(axis=1)]
        todo = wanted[~wanted["hash"].isin(complete)]
        cached = cached[~cached.index.isin(todo["hash"])]
    else:
        todo = wanted
    if hashes_only and set(PERCEPTUAL_COLUMNS) <= set(todo.columns):
        # hashed by the scan (Catalog.from_folder(perceptual_hash=True)): nothing to decode
        fresh = todo.set_index("hash").reindex(columns=list(_FEATURE_DTYPES))
        decoded = 0
    else:
        items = [(h, p, hashes_only) for h, p in zip(todo["hash"], todo["path"], strict=True)]
        rows = pmap(
            _features_row, items, executor=executor, workers=workers, progress=progress,
            desc="features",
        )  # fmt: skip
        fresh = pd.DataFrame.from_records(
            [{"hash": h, **f} for h, f in rows if f is not None],
            columns=["hash", *_FEATURE_DTYPES],
        ).set_index("hash")
        decoded = len(items)
    feats = pd.concat([cached, fresh]) if len(cached) else fresh
    feats = feats.astype(_FEATURE_DTYPES)
    if cache_path is not None and len(fresh):
        out = feats.reset_index()
        with atomic_open(cache_path) as f:
            out.to_parquet(f, index=False)
    return feats, decoded


# ---------------------------------------------------------------------------- groups


def _components(nodes: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Connected component (union-find) label per node; -1 for nodes in no edge."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pos = pd.Series(np.arange(len(nodes)), index=pd.Index(nodes))
    ia = pos.reindex(a).to_numpy()
    ib = pos.reindex(b).to_numpy()
    keep = ~(np.isnan(ia) | np.isnan(ib)) if ia.dtype.kind == "f" else np.ones(len(ia), bool)
    ia, ib = ia[keep].astype(int), ib[keep].astype(int)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    touched = np.zeros(n, dtype=bool)
    touched[ia] = touched[ib] = True
    return np.where(touched, labels, -1)


# ---------------------------------------------------------------------------- report


@dataclass
class IssueReport:
    """Everything the checks found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (sample id, issue): ``id, issue, score, flagged, group, keeper``.
        ``group`` ties duplicates together (``None`` elsewhere); ``keeper`` marks the suggested
        sample to keep in each group.
    pairs : pandas.DataFrame
        Near-duplicate pairs ``a, b, distance`` of content hashes (distinct pixels) within the
        search radius; used to regroup live when the near-duplicate threshold moves.
    thresholds : dict
        Current threshold per issue (flagged means ``score >= threshold``).
    computed : int
        Images decoded by this run (the rest came from the workspace cache).
    seconds : float
        Wall time of the run.
    """

    table: pd.DataFrame
    pairs: pd.DataFrame
    thresholds: dict[str, float]
    samples: pd.DataFrame = field(repr=False)  # id, hash, area of readable samples
    computed: int = 0
    seconds: float = 0.0
    _groups: dict[str, list[list[str]]] = field(default_factory=dict, repr=False, compare=False)
    # The pairs as integer edges sorted by distance, with (group, keeper) per radius: a
    # threshold move regroups without string lookups, and a drag revisits the same radii.
    _near: _NearGraph | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # adopt the graph check() grouped with: the first threshold move then builds nothing
        graph = _BUILT.pop() if _BUILT else None
        if graph is not None and graph.adopt(self.pairs, self.samples):
            self._near = graph

    def summary(self) -> pd.DataFrame:
        """Per issue: samples checked, flagged, threshold.

        The table lists only the unreadable samples for ``unreadable`` and only samples with a
        candidate for the duplicate checks; every sample was read and every readable one
        compared, so those are the counts given as checked."""
        g = self.table.groupby("issue", observed=True)
        out = pd.DataFrame({"checked": g.size(), "flagged": g["flagged"].sum()})
        out = out.reindex([c for c in CHECKS if c in self.thresholds], fill_value=0)
        readable = len(self.samples)
        for issue in ("exact_duplicate", "near_duplicate"):
            if issue in out.index:
                out.loc[issue, "checked"] = readable
        if "unreadable" in out.index:
            out.loc["unreadable", "checked"] = readable + out.loc["unreadable", "checked"]
        out["threshold"] = [self.thresholds[c] for c in out.index]
        return out.astype({"checked": int, "flagged": int})

    def flagged(self, issue: str | None = None) -> pd.DataFrame:
        """Flagged rows (of one issue), highest score first."""
        t = self.table[self.table["flagged"]]
        if issue is not None:
            t = t[t["issue"] == issue]
        return t.sort_values(["score", "id"], ascending=[False, True], kind="stable")

    def score_chunks(self, issue: str, step: int = 1 << 20) -> Iterator[np.ndarray]:
        """The scores of one issue in table order, ``step`` table rows at a time.

        A view reads them on a background thread: masks and copies over the whole table (11
        rows a sample) left ~30 MiB resident at a million samples (measured), that thread's heap
        keeping its high-water mark."""
        check_choice(issue, "issue", self.thresholds)
        return _score_chunks(self.table, issue, step)

    def scores(self, issue: str) -> np.ndarray:
        """The scores of one issue in table order (float64)."""
        chunks = [np.asarray(c, np.float64) for c in self.score_chunks(issue)]
        return np.concatenate(chunks) if chunks else np.empty(0)

    def set_threshold(self, issue: str, value: float) -> None:
        """Move one threshold; flags (and duplicate groups) follow."""
        check_choice(issue, "issue", self.thresholds)
        value = check_probability(value, f"threshold for {issue}")
        self.thresholds[issue] = value
        self._groups.clear()
        rows = self.table["issue"] == issue
        self.table.loc[rows, "flagged"] = self.table.loc[rows, "score"] >= value - 1e-12
        if issue == "near_duplicate":
            self._regroup_near()

    @property
    def radius(self) -> int:
        """The near-duplicate Hamming radius (pHash + dHash bits) implied by its threshold."""
        return _radius(self.thresholds["near_duplicate"])

    def groups(self, issue: str = "near_duplicate") -> list[list[str]]:
        """Duplicate groups as id lists, keeper first, largest groups first.

        Kept until a threshold moves (a review asks for them on every click)."""
        if issue not in self._groups:
            t = self.table[(self.table["issue"] == issue) & self.table["group"].notna()]
            t = t.sort_values(["keeper", "id"], ascending=[False, True], kind="stable")
            lists = t.groupby("group", sort=False)["id"].agg(list).tolist()
            self._groups[issue] = sorted(lists, key=lambda ids: (-len(ids), ids[0]))
        return [list(g) for g in self._groups[issue]]

    def _regroup_near(self) -> None:
        rows = self.table.index[self.table["issue"] == "near_duplicate"]
        ids = self.table.loc[rows, "id"].to_numpy(object)
        near = self._near
        if near is None or not near.fits(ids, self.pairs, self.samples):
            near = self._near = _NearGraph(ids, self.pairs, self.samples)
        groups, keepers = near.groups(self.radius)
        self.table.loc[rows, "group"] = groups
        self.table.loc[rows, "keeper"] = keepers

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table atomically."""
        with atomic_open(path, "w") as f:
            self.table.to_csv(f, index=False)


def _score_chunks(table: pd.DataFrame, issue: str, step: int) -> Iterator[np.ndarray]:
    column = table["issue"]
    if isinstance(column.dtype, pd.CategoricalDtype) and issue in column.cat.categories:
        code = column.cat.categories.get_loc(issue)
        codes, scores = column.cat.codes.to_numpy(), table["score"].to_numpy()
        for i in range(0, len(codes), step):
            yield scores[i : i + step][codes[i : i + step] == code]
    else:
        for i in range(0, len(table), step):
            part = table.iloc[i : i + step]
            yield part.loc[part["issue"] == issue, "score"].to_numpy()


def _radius(threshold: float) -> int:
    return math.floor((1.0 - threshold) * HASH_BITS + 1e-9)


class _NearGraph:
    """The near-duplicate pairs of one report as integer edges between content hashes, sorted
    by distance: grouping at any radius is then a prefix of the edges and one vectorised
    connected-components call (no string lookups per threshold move)."""

    def __init__(self, ids: Any, pairs: pd.DataFrame, samples: pd.DataFrame) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self._pairs, self._samples = pairs, samples  # what it was built from
        info = samples.set_index("id").reindex(self.ids)
        h = info["hash"].to_numpy(object)
        nodes = pd.Index(pd.unique(h))  # first appearance order: component labels follow it
        self.node = nodes.get_indexer(h)
        self.n = len(nodes)
        ia = nodes.get_indexer(pairs["a"].to_numpy(object))
        ib = nodes.get_indexer(pairs["b"].to_numpy(object))
        keep = (ia >= 0) & (ib >= 0)
        dist = pairs["distance"].to_numpy(float)[keep]
        order = np.argsort(dist, kind="stable")
        self.a, self.b, self.dist = ia[keep][order], ib[keep][order], dist[order]
        self.area = info["area"].to_numpy()

        self._by_radius: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def adopt(self, pairs: pd.DataFrame, samples: pd.DataFrame) -> bool:
        """Serve a report holding these pairs and an equal copy of the samples."""
        if pairs is not self._pairs or not samples.equals(self._samples):
            return False
        self._samples = samples
        return True

    def fits(self, ids: np.ndarray, pairs: pd.DataFrame, samples: pd.DataFrame) -> bool:
        """Built from these very pairs and samples, for these ids."""
        return (
            pairs is self._pairs
            and samples is self._samples
            and len(ids) == len(self.ids)
            and bool((ids == self.ids).all())
        )

    def groups(self, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Group per id (``None`` outside any) and keeper flags at ``radius`` (copies)."""
        if radius not in self._by_radius:
            self._by_radius[radius] = self._group(radius)
        group, keeper = self._by_radius[radius]
        return group.copy(), keeper.copy()

    def _group(self, radius: int) -> tuple[np.ndarray, np.ndarray]:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        m = int(np.searchsorted(self.dist, radius, side="right"))
        a, b = self.a[:m], self.b[:m]
        graph = coo_matrix((np.ones(m, dtype=np.int8), (a, b)), shape=(self.n, self.n))
        _, comp = connected_components(graph, directed=False)
        touched = np.zeros(self.n, dtype=bool)
        touched[a] = touched[b] = True
        label = np.where(touched, comp, -1)[self.node]
        inside = np.flatnonzero(label >= 0)
        _, rank = np.unique(label[inside], return_inverse=True)
        group = np.full(len(self.ids), None, dtype=object)
        group[inside] = np.char.add("n", rank.astype(str)).astype(object)
        best = pd.DataFrame({"c": label[inside], "a": self.area[inside],
                             "id": self.ids[inside], "at": inside})  # fmt: skip
        best = best.sort_values(["c", "a", "id"], ascending=[True, False, True])
        keeper = np.zeros(len(self.ids), dtype=bool)
        keeper[best.drop_duplicates("c")["at"].to_numpy()] = True
        return group, keeper


def _near_groups(
    ids: Any, pairs: pd.DataFrame, radius: int, samples: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Group per id (components of content pairs within ``radius``; ``None`` outside any) and
    the suggested keeper: largest area, then first id."""
    graph = _NearGraph(ids, pairs, samples)
    _BUILT[:] = [graph]  # for the report check() makes next (IssueReport.__post_init__)
    return graph.groups(radius)


_BUILT: list[_NearGraph] = []  # the last graph _near_groups built, until a report adopts it


def check(
    catalog: Catalog,
    *,
    checks: Sequence[str] | None = None,
    thresholds: dict[str, float] | None = None,
    search_radius: int = 28,
    embeddings: np.ndarray | None = None,
    k: int = 5,
    workspace: Workspace | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = True,
    near_method: str = "auto",
    embedder: Embedder | None = None,
) -> IssueReport:
    """Run the quality checks and return an :class:`IssueReport`.

    Parameters
    ----------
    catalog
        What to check.
    checks
        Which issue types (default: all of :data:`CHECKS`).
    thresholds
        Overrides of :data:`DEFAULT_THRESHOLDS`.
    search_radius
        Largest pHash + dHash distance kept in ``report.pairs`` (the near-duplicate threshold
        can move down to ``1 - search_radius / 128`` without re-running).
    embeddings
        Optional ``(n_samples, d)`` features in catalog order for the outlier check (e.g. from
        :mod:`workbench.assist`); default: the 16×16 gray sketches.
    k
        Neighbours for the outlier check.
    workspace
        Cache features there, keyed by content hash.
    executor, workers, progress
        See :func:`workbench.parallel.pmap`.
    near_method
        ``"hash"`` (pHash + dHash), ``"embedding"`` (cosine of the embedder's features) or
        ``"auto"``: embeddings when the median image is small
        (:func:`workbench.neardup.choose_method`, the default).
    embedder
        For the embedding method (default :func:`workbench.neardup.default_embedder`); vectors
        are cached in ``workspace``.
    """
    t0 = time.perf_counter()
    checks = list(CHECKS if checks is None else checks)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ParameterError(f"unknown checks {unknown}; choose from {list(CHECKS)}")
    th = {c: DEFAULT_THRESHOLDS[c] for c in checks}
    for c, v in (thresholds or {}).items():
        if c not in th:
            raise ParameterError(f"threshold given for {c!r}, which is not among the checks")
        th[c] = check_probability(v, f"threshold for {c}")
    check_int(search_radius, "search_radius", low=0, high=48)
    check_positive_int(k, "k")

    df = catalog.df
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    small = len(ok) and float(np.median(np.maximum(ok["width"], ok["height"]))) < SMALL_SIDE
    # --- near-duplicate method hook (workbench.neardup) ---
    near = neardup.choose_method(near_method, ok["width"].to_numpy(), ok["height"].to_numpy())
    if "near_duplicate" in th and "near_duplicate" not in (thresholds or {}):
        if near == "embedding":
            th["near_duplicate"] = neardup.DEFAULT_SIMILARITY
        elif small:
            th["near_duplicate"] = 1 - SMALL_RADIUS / HASH_BITS
    # --- end of hook ---
    area = (ok["width"].astype(np.int64) * ok["height"]).to_numpy()
    sizes = pd.Series(area, index=ok["id"])
    only_dups = set(checks) <= {"unreadable", *DUPLICATE_CHECKS}
    feats, computed = compute_features(
        catalog, workspace=workspace, executor=executor, workers=workers, progress=progress,
        hashes_only=only_dups,
    )  # fmt: skip
    f = feats.reindex(ok["hash"].to_numpy())
    decoded = f["phash"].notna().to_numpy()  # a file can change or vanish after the scan
    parts: list[pd.DataFrame] = []

    def add(issue: str, ids: Any, scores: Any, group: Any = None, keeper: Any = False) -> None:
        if issue not in th:
            return
        part = pd.DataFrame({"id": list(ids), "issue": issue, "score": np.asarray(scores, float)})
        part["score"] = part["score"].clip(0.0, 1.0)
        part["group"] = group
        part["keeper"] = keeper
        parts.append(part)

    bad = df[df["status"] != "ok"]
    add("unreadable", bad["id"], np.ones(len(bad)))
    if not decoded.all():
        lost = ok.loc[~decoded, "id"]
        add("unreadable", lost, np.ones(len(lost)))
    okd, fd = ok[decoded].reset_index(drop=True), f[decoded].reset_index(drop=True)
    ids = okd["id"].to_numpy()

    if "exact_duplicate" in th:
        dup = okd[okd.duplicated("hash", keep=False)]
        codes = {h: f"x{n}" for n, h in enumerate(dup["hash"].drop_duplicates())}
        grp = dup["hash"].map(codes)
        area = dup["id"].map(sizes).astype("int64")
        order = pd.DataFrame({"g": grp, "a": -area, "id": dup["id"]}).sort_values(["g", "a", "id"])
        first = set(order.drop_duplicates("g")["id"])
        add("exact_duplicate", dup["id"], np.ones(len(dup)), grp.to_numpy(),
            dup["id"].isin(first).to_numpy())  # fmt: skip

    samples = pd.DataFrame(
        {"id": ids, "hash": okd["hash"].to_numpy(), "area": sizes.reindex(ids).to_numpy()}
    )
    pairs = pd.DataFrame({"a": [], "b": [], "distance": []})
    if "near_duplicate" in th and len(okd) > 1:
        content = fd.assign(hash=okd["hash"].to_numpy()).drop_duplicates("hash")
        # --- near-duplicate method hook: the same pairs table (a, b, distance) either way ---
        if near == "embedding":
            pairs = neardup.embedding_pairs(
                catalog, okd.loc[content.index, "id"].to_numpy(), search_radius,
                workspace=workspace, embedder=embedder, progress=progress,
                executor=executor, workers=workers,
            )  # fmt: skip
        else:
            pairs = _near_pairs(content, search_radius)
        pairs.attrs["method"] = near
        # --- end of hook ---
        dmin = pd.concat(
            [pairs[["a", "distance"]], pairs[["b", "distance"]].set_axis(["a", "distance"], axis=1)]
        )
        dmin = dmin.groupby("a")["distance"].min()
        at = pd.Index(dmin.index.to_numpy(object)).get_indexer(okd["hash"].to_numpy(object))
        near_ids = ids[at >= 0]
        groups, keepers = _near_groups(near_ids, pairs, _radius(th["near_duplicate"]), samples)
        score = 1.0 - dmin.to_numpy(float)[at[at >= 0]] / HASH_BITS
        add("near_duplicate", near_ids, score, groups, keepers)

    if len(okd):
        std = fd["gray_std"].to_numpy()
        s = np.log(fd["sharpness"].to_numpy() + 1e-6)
        # contrast-free alone: also requiring a low absolute Laplacian variance (the former
        # min of both) missed most ImageNet-C blur on photo crops at severity 1 (40 % vs 72 %)
        s_rel = s - 2 * np.log(np.maximum(std / 255.0, 1e-3))
        add("blurry", ids, _z_score(-s_rel, _Z_FLOOR["sharpness"]))
        add("dark", ids, _z_score(-fd["p90"].to_numpy(), _Z_FLOOR["p90"]))
        clipped = np.minimum(1.0, fd["v_clip"].to_numpy() / CLIP_SHARE)
        add("bright", ids, _z_score(fd["v01"].to_numpy(), _Z_FLOOR["v01"]) * clipped)
        add("low_information", ids, _z_score(-np.log(std + 0.5), _Z_FLOOR["gray_std"]))
        colour = fd["channel_diff"].notna().to_numpy()
        add("grayscale_in_color", ids[colour],
            1.0 - np.minimum(1.0, fd["channel_diff"].to_numpy()[colour] / 2.0))  # fmt: skip
        area = sizes.reindex(ids).to_numpy().astype(float)
        med = max(float(np.median(area)), 1.0)
        add("odd_size", ids, np.minimum(1.0, np.abs(np.log2(np.maximum(area, 1) / med)) / 4.0))
        ratio = okd["width"].to_numpy() / np.maximum(okd["height"].to_numpy(), 1)
        add("odd_aspect_ratio", ids, np.minimum(1.0, np.abs(np.log2(np.maximum(ratio, 1e-9))) / 2))
        if "outlier" in th and len(okd) > k + 1:
            X = _outlier_features(fd, okd, catalog, embeddings)
            add("outlier", ids, _knn_outlier_scores(X, k))

    cols = ["id", "issue", "score", "flagged", "group", "keeper"]
    empty = pd.DataFrame({c: pd.Series(dtype=float if c == "score" else object) for c in cols})
    table = pd.concat(parts, ignore_index=True) if parts else empty
    table["flagged"] = table["score"].astype(float) >= table["issue"].map(th).astype(float) - 1e-12
    table["group"] = table["group"].astype(object).where(table["group"].notna(), None)
    table["keeper"] = table["keeper"].astype(bool)
    table["issue"] = pd.Categorical(table["issue"], categories=[c for c in CHECKS if c in th])
    return IssueReport(
        table=table[cols],
        pairs=pairs,
        thresholds=th,
        samples=samples.reset_index(drop=True),
        computed=computed,
        seconds=time.perf_counter() - t0,
    )


def _z_score(x: np.ndarray, floor: float) -> np.ndarray:
    """1 − 2^(−z/Z_FLAG) for z = (x − median) / max(1.4826·MAD, floor) over the catalog (0 for
    z ≤ 0): 0.5 at z = Z_FLAG. Median and MAD, not mean and SD, so that the defects being looked
    for do not move the yardstick."""
    med = float(np.median(x))
    scale = max(1.4826 * float(np.median(np.abs(x - med))), floor)
    return 1.0 - np.exp2(-np.maximum(x - med, 0.0) / (scale * Z_FLAG))


def find_issues(
    catalog: Catalog, checks: Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """The issue table of :func:`check`: one row per (id, issue): ``id, issue, score, flagged,
    group, keeper``. Use :func:`check` for the summary, groups and live thresholds."""
    return check(catalog, checks=checks, **kwargs).table


def _near_pairs(content: pd.DataFrame, radius: int, chain_above: int = 64) -> pd.DataFrame:
    """Pairs of content hashes whose pHash + dHash distance is at most ``radius``, exactly.

    Identical (pHash, dHash) keys are collapsed for the search, so a thousand blank images
    cost one entry. Members of a key are paired with each other at distance 0 and with every
    member of a nearby key; keys with more than ``chain_above`` members are chained through
    their first member instead (same groups, bounded output).
    """
    from workbench.hashindex import HammingIndex

    h = content["hash"].to_numpy()
    keys = np.stack(
        [content["phash"].to_numpy(np.int64), content["dhash"].to_numpy(np.int64)], axis=1
    ).view(np.uint64)
    _, first, inverse = np.unique(
        np.ascontiguousarray(keys).view("V16").ravel(), return_index=True, return_inverse=True
    )
    uk = keys[first]
    counts = np.bincount(inverse.ravel(), minlength=len(uk))
    order = np.argsort(inverse.ravel(), kind="stable")  # members of key k: order[start[k]:...]
    start = np.cumsum(counts) - counts
    capped = np.where(counts > chain_above, 1, counts)  # a big key joins pairs by its first
    # pHash + dHash <= radius needs pHash <= radius // 2 or dHash <= the rest minus one.
    found = [
        HammingIndex(uk[:, c]).pairs(r, max_pairs=None).pairs
        for c, r in enumerate((radius // 2, radius - radius // 2 - 1))
        if r >= 0
    ]
    code = np.unique(np.concatenate([f[:, 0].astype(np.int64) * len(uk) + f[:, 1] for f in found]))
    ka, kb = code // len(uk), code % len(uk)
    dist = np.bitwise_count(uk[ka] ^ uk[kb]).sum(axis=1, dtype=np.int64)
    ka, kb, dist = ka[dist <= radius], kb[dist <= radius], dist[dist <= radius]
    a, b, rep = _product(start[ka], capped[ka], start[kb], capped[kb])
    pairs = [(order[a], order[b], dist[rep])]
    multi = np.flatnonzero(counts > 1)  # same key, other pixels
    small, big = multi[counts[multi] <= chain_above], multi[counts[multi] > chain_above]
    a, b, _ = _product(start[small], counts[small], start[small], counts[small])
    pairs.append((order[a[a < b]], order[b[a < b]], np.zeros(int((a < b).sum()), np.int64)))
    for k in big:
        m = order[start[k] : start[k] + counts[k]]
        pairs.append((np.full(len(m) - 1, m[0]), m[1:], np.zeros(len(m) - 1, np.int64)))
    a, b, d = (np.concatenate(v) for v in zip(*pairs, strict=True))
    return pd.DataFrame({"a": h[a], "b": h[b], "distance": d.astype(np.int16)})


def _product(
    start_a: np.ndarray, n_a: np.ndarray, start_b: np.ndarray, n_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (i, j) with i in ``start_a[p] + range(n_a[p])`` and j likewise for b, over all p
    at once; returns i, j and p per pair."""
    sizes = n_a * n_b
    rep = np.repeat(np.arange(len(sizes)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return start_a[rep] + local // n_b[rep], start_b[rep] + local % n_b[rep], rep


def near_duplicate_pairs(report: IssueReport, radius: int | None = None) -> pd.DataFrame:
    """Sample-level pairs ``a, b, distance`` (ids, ``a < b``) within ``radius`` (default: the
    report's), exact twins included at distance 0: the pairwise view of the groups."""
    r = report.radius if radius is None else radius
    ids_of = report.samples.groupby("hash")["id"].agg(list)
    rows = [
        (min(x, y), max(x, y), dist)
        for ha, hb, dist in report.pairs[report.pairs["distance"] <= r].itertuples(index=False)
        for x in ids_of.get(ha, [])
        for y in ids_of.get(hb, [])
    ]
    for ids in ids_of:
        rows += [(x, y, 0) for i, x in enumerate(sorted(ids)) for y in sorted(ids)[i + 1 :]]
    return pd.DataFrame(rows, columns=["a", "b", "distance"]).drop_duplicates(["a", "b"])


def _outlier_features(
    fd: pd.DataFrame, okd: pd.DataFrame, catalog: Catalog, embeddings: np.ndarray | None
) -> np.ndarray:
    if embeddings is not None:
        e = np.asarray(embeddings, dtype=np.float32)
        if len(e) != len(catalog.df):
            raise ParameterError(
                f"embeddings have {len(e)} rows but the catalog has {len(catalog.df)} samples"
            )
        pos = pd.Series(np.arange(len(catalog.df)), index=catalog.df["id"])
        return e[pos.reindex(okd["id"]).to_numpy()]
    X = np.frombuffer(b"".join(fd["sketch"]), dtype=np.uint8).reshape(len(fd), -1)
    X = X.astype(np.float32) / 255.0
    return (X - X.mean(0)) / (X.std(0) + 1e-6)


def _knn_outlier_scores(X: np.ndarray, k: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    from workbench.ann import EXACT_BELOW, neighbors

    # Matrices this small gain nothing from BLAS/OpenMP threads, and on a busy machine their
    # spinning costs seconds (PCA + kNN of 640 x 256: 1.5 s threaded, 0.04 s on one thread).
    small = len(X) < EXACT_BELOW
    with threadpool_limits(1 if small else None):
        if X.shape[1] > 32 and len(X) > 32:
            X = PCA(n_components=32, random_state=0).fit_transform(X)
        # exact on small sets, HNSW on large ones (workbench.ann)
        dist, _ = neighbors(X, k, threads=1 if small else None)
    d = dist.mean(1)
    q1, q3 = np.percentile(d, [25, 75])
    # k-NN distances are right-skewed: Tukey's inner fence (1.5 IQR) flagged 5.3 % of clean
    # silhouettes (bench_checks.py); 2 IQR keeps a planted odd image flagged (test_clean.py)
    fence = max(q3 + 2.0 * (q3 - q1), 1e-9)
    return 1.0 - np.exp2(-d / fence)


def suggested_exclusions(report: IssueReport) -> list[str]:
    """Ids a careful default drops without review: unreadable files and every exact duplicate
    but its keeper. Near duplicates are left for a person to judge."""
    t = report.table
    dup = t[(t["issue"] == "exact_duplicate") & t["flagged"] & ~t["keeper"] & t["group"].notna()]
    unread = t[(t["issue"] == "unreadable") & t["flagged"]]
    return sorted(set(dup["id"]) | set(unread["id"]))

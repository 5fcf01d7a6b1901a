"""Exact Hamming-radius search over 64-bit hashes (perceptual image hashes).

:class:`HammingIndex` finds every pair of hashes within a Hamming radius, or every hash within a
radius of one query hash, exactly and without comparing all pairs.

How it works (multi-index hashing, Norouzi, Punjani and Fleet, CVPR 2012):

1. Identical hashes are collapsed first (``np.unique``): a folder full of blank images that all
   hash to ``0`` becomes one value, so it cannot create a huge bucket. Pairs of identical hashes
   are produced directly from the group sizes at the end.
2. The 64 bits are split into ``m`` contiguous substrings. Write ``radius = m*q + a`` with
   ``0 <= a < m``. By the pigeonhole principle two hashes within ``radius`` differ in at most
   ``q`` bits on one of the first ``a + 1`` substrings, or in at most ``q - 1`` bits on one of
   the others (otherwise they would differ in at least ``(a+1)(q+1) + (m-a-1)q > radius`` bits).
   With ``m = radius + 1`` this is the classic rule "they agree exactly on one substring".
3. For each substring the distinct hashes are bucketed by the substring's value (a sorted order
   plus a direct-address table of bucket starts). Candidates are the members of the buckets whose
   key differs from a hash's key by a flip mask of allowed weight; each candidate pair is verified
   with ``np.bitwise_count`` on the XOR of the full hashes.
4. A pair is kept only by the first substring that can find it, so no pair is reported twice and
   no de-duplication pass (nor its memory) is needed.

The number of substrings is chosen by a small cost model (lookups against candidate
verifications; for a few thousand distinct hashes a blocked brute-force scan wins and is used).
Everything is vectorised with numpy and processed in blocks of at most ``block`` candidates, so
memory stays bounded even when a substring bucket is huge (it is fine, and exact, for the work
inside such a bucket to be quadratic). Needs numpy >= 2.0 for ``np.bitwise_count``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from workbench._validation import check_int, check_positive_int, is_int
from workbench.errors import ParameterError

__all__ = [
    "HammingIndex",
    "PairResult",
    "hash_to_uint64",
    "hashes_to_uint64",
    "perceptual_hashes",
]

_BITS = 64
#: Candidates handled per vectorised step; bounds the temporaries to roughly 100 MB.
_DEFAULT_BLOCK = 1 << 21
#: Substrings up to this width get a direct-address table of bucket starts.
_TABLE_BITS = 24
#: Flip masks per substring beyond which a layout is never considered.
_MAX_MASKS = 200_000
#: Bucket members taken one level at a time before the general expansion.
_LEVELS = 3

# Costs in nanoseconds, measured on a 2-core x86 VM at 100k-1M hashes, used to choose a strategy.
# They only steer speed, never the result.
_COST_LOOKUP = 14.0  # one (hash, flip mask) probe of a bucket table
_COST_CANDIDATE = 13.0  # expanding and verifying one candidate pair
_COST_BRUTE = 4.0  # one pair in the blocked all-pairs scan
_COST_SCAN = 3.0  # one hash in a linear query scan
_COST_BUILD = 120.0  # sorting one hash into a substring table
_COST_TABLE = 7.0  # one entry of a direct-address table
_COST_STEP = 50_000.0  # Python overhead of one vectorised step


class PairResult(NamedTuple):
    """Pairs of hashes within a radius.

    Attributes
    ----------
    pairs
        ``(k, 2)`` int64 array of indices ``i < j`` into the hashes the index was built from,
        sorted by ``i`` then ``j``.
    distances
        ``(k,)`` uint8 array, the Hamming distance of each pair.
    """

    pairs: np.ndarray
    distances: np.ndarray


@dataclass(frozen=True)
class _Substring:
    shift: int  # bits to shift right so the substring is the low bits
    width: int
    limit: int  # largest substring distance that must be probed; -1 means "not needed"

    @property
    def mask(self) -> np.uint64:
        return np.uint64((1 << self.width) - 1)

    @property
    def n_masks(self) -> int:
        """Flip masks probed (including the zero mask)."""
        return sum(math.comb(self.width, k) for k in range(self.limit + 1))


@dataclass
class _Table:
    keys: np.ndarray  # int64 substring value of each distinct hash
    order: np.ndarray  # distinct-hash indices sorted by key
    sorted_keys: np.ndarray
    starts: np.ndarray | None  # direct-address bucket start per key (2**width), or None
    sizes: np.ndarray | None  # direct-address bucket size per key, or None

    def size(self, targets: np.ndarray) -> np.ndarray:
        """Bucket size of each target key."""
        if self.sizes is not None:
            return self.sizes[targets]
        return np.searchsorted(self.sorted_keys, targets, side="right") - np.searchsorted(
            self.sorted_keys, targets, side="left"
        )

    def start(self, targets: np.ndarray) -> np.ndarray:
        """Position in ``order`` where the bucket of each target key starts."""
        if self.starts is not None:
            return self.starts[targets]
        return np.searchsorted(self.sorted_keys, targets, side="left")


def _layout(m: int, radius: int) -> list[_Substring]:
    """Split 64 bits into ``m`` substrings (the wider ones first) with their probe limits."""
    base, extra = divmod(_BITS, m)
    q, a = divmod(radius, m)
    subs = []
    top = _BITS
    for k in range(m):
        width = base + (1 if k < extra else 0)
        top -= width
        subs.append(_Substring(shift=top, width=width, limit=q if k <= a else q - 1))
    return subs


def _flip_masks(width: int, limit: int) -> np.ndarray:
    """Every ``width``-bit value with 1..limit bits set, as int64 (the bits of a uint64)."""
    out = [
        sum(1 << b for b in combo)
        for k in range(1, limit + 1)
        for combo in itertools.combinations(range(width), k)
    ]
    return np.asarray(out, dtype=np.uint64).view(np.int64)


def _top_bit(masks: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of each (non-zero) mask."""
    u = masks.view(np.uint64)
    out = np.zeros(len(u), dtype=np.int64)
    for b in range(_BITS):
        out[(u >> np.uint64(b)) != 0] = b
    return out


def _check_masks(sub: _Substring, m: int, radius: int) -> None:
    if sub.n_masks > _MAX_MASKS:
        raise ParameterError(
            f"{m} substrings are too few for radius {radius}: that would probe "
            f"{sub.n_masks:,} keys per hash; use more substrings or the default plan"
        )


def _check_radius(radius: Any) -> int:
    return check_int(radius, "radius", low=0, high=_BITS)


def _as_uint64_array(hashes: Any) -> np.ndarray:
    """The hashes as a 1-D uint64 array (see :class:`HammingIndex` for what is accepted)."""
    if isinstance(hashes, (str, bytes)) or not hasattr(hashes, "__len__"):
        if not hasattr(hashes, "__iter__") or isinstance(hashes, (str, bytes)):
            raise ParameterError(
                "hashes must be a 1-D array of uint64 (see hash_to_uint64 for ImageHash objects)"
            )
        hashes = list(hashes)
    if hasattr(hashes, "__array__"):
        arr = np.asarray(hashes)
    else:
        seq = list(hashes)
        if seq and not isinstance(seq[0], (int, np.integer)):
            return hashes_to_uint64(seq)  # ImageHash objects or hex strings
        try:
            return np.array(seq, dtype=np.uint64)
        except (OverflowError, TypeError, ValueError):
            raise ParameterError("hashes must be integers from 0 to 2**64 - 1") from None
    if arr.ndim != 1:
        raise ParameterError(f"hashes must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype == np.int64:
        # uint64 values often travel as int64 (parquet, some pandas paths): keep the bits.
        return arr.view(np.uint64)
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "i" and (arr < 0).any():
            raise ParameterError("hashes must be non-negative 64-bit integers")
        return arr.astype(np.uint64)
    if arr.dtype == object or arr.dtype.kind in "US":
        return hashes_to_uint64(arr.tolist())
    if arr.size == 0:
        return arr.astype(np.uint64)
    raise ParameterError(f"hashes must be 64-bit unsigned integers, got dtype {arr.dtype}")


def hash_to_uint64(h: Any) -> np.uint64:
    """One 64-bit perceptual hash as an unsigned integer.

    Parameters
    ----------
    h
        An ``imagehash.ImageHash`` of 64 bits (``hash_size=8``, the default), its hex string
        (``str(h)``), or an integer.

    Returns
    -------
    numpy.uint64
        The bits in row-major order, first bit most significant, so that
        ``hash_to_uint64(h) == int(str(h), 16)`` and ``bitwise_count(a ^ b) == a_hash - b_hash``.
    """
    bits = getattr(h, "hash", None)
    if bits is not None:
        flat = np.asarray(bits, dtype=bool).ravel()
        if flat.size != _BITS:
            raise ParameterError(
                f"the hash has {flat.size} bits; HammingIndex needs 64-bit hashes "
                "(compute them with hash_size=8)"
            )
        return np.frombuffer(np.packbits(flat).tobytes(), dtype=">u8")[0].astype(np.uint64)
    if isinstance(h, str):
        try:
            value = int(h, 16)
        except ValueError:
            raise ParameterError(f"{h!r} is not a hexadecimal hash") from None
    elif is_int(h):
        value = int(h)
    else:
        raise ParameterError(f"expected an ImageHash, a hex string or an integer, got {type(h)}")
    if not 0 <= value < 1 << _BITS:
        raise ParameterError(f"the hash {h!r} does not fit in 64 bits")
    return np.uint64(value)


def hashes_to_uint64(hashes: Any) -> np.ndarray:
    """Many hashes (see :func:`hash_to_uint64`) as a uint64 array."""
    return np.asarray([hash_to_uint64(h) for h in hashes], dtype=np.uint64)


#: The eight lowest DCT-II basis rows for 32 samples, scaled as ``scipy.fftpack.dct`` scales them.
_DCT_ROWS = 2.0 * np.cos(np.pi * np.outer(np.arange(8), 2 * np.arange(32) + 1) / 64)


@functools.cache
def _lanczos(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's Lanczos (a = 3) resampling from ``n_in`` to ``n_out`` samples as a matrix."""
    if n_in == n_out:
        return np.eye(n_in)
    scale = n_in / n_out
    x = (np.arange(n_in) + 0.5)[None, :] - ((np.arange(n_out) + 0.5) * scale)[:, None]
    x = np.abs(x / max(scale, 1.0))
    w = np.where(x < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)
    return w / w.sum(axis=1, keepdims=True)


@functools.cache
def _hash_rows(n: int, dhash_side: int) -> np.ndarray:
    """``(8 + dhash_side, n)``: takes ``n`` samples to pHash's 8 lowest DCT terms of 32 Lanczos
    samples (rows 0-7) and to dHash's ``dhash_side`` Lanczos samples (the rest)."""
    return np.vstack([_DCT_ROWS @ _lanczos(n, 32), _lanczos(n, dhash_side)])


def perceptual_hashes(im: Any) -> tuple[int, int]:
    """pHash and dHash (64 bits each) of a decoded image, as int64 bit patterns.

    imagehash's algorithms: pHash is the 8×8 lowest DCT coefficients of a 32×32 Lanczos gray
    copy against their median, dHash compares neighbours in a 9×8 one. Our own resampling
    (cached float matrices on a box-reduced gray copy of at most 127 px) is at least 3× faster per
    image than calling imagehash, for 28-px to 640-px images (section 4 of
    ``benchmarks/bench_clean.py`` prints the ratio per image size); on an image already at hash
    size the bits equal imagehash's (tests). Catalog scans (``perceptual_hash=True``) and the
    near-duplicate check both call this on the decoded image, so their hashes are identical.
    int64 because parquet has no uint64 every reader agrees on; ``np.int64(v).view(np.uint64)``
    gives the bits.
    """
    gray = im.convert("L") if im.mode != "L" else im
    k = max(im.size) // 64
    # uint8 first: asarray(image, dtype=float64) takes a slow path (28 us against 8 us + cast)
    a = np.asarray(gray.reduce(k) if k > 1 else gray).astype(np.float64)
    t = _hash_rows(a.shape[0], 8) @ a @ _hash_rows(a.shape[1], 9).T  # both hashes at once
    c = t[:8, :8].ravel()  # pHash: 8×8 lowest DCT terms
    mid = np.partition(c, (31, 32))
    g = np.rint(t[8:, 8:])  # dHash: 9×8 gray, rounded as imagehash compares 8-bit pixels
    bits = np.empty((2, 64), dtype=bool)
    np.greater(c, (mid[31] + mid[32]) / 2, out=bits[0])
    np.greater(g[:, 1:], g[:, :-1], out=bits[1].reshape(8, 8))
    phash, dhash = np.packbits(bits).view(">i8").tolist()  # first bit most significant
    return phash, dhash


def _expand(counts: np.ndarray, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Split ``sum(counts)`` items into blocks of about ``block``.

    Yields ``(owner, offset)``: for every item, which entry of ``counts`` it belongs to and its
    offset within that entry. One entry larger than ``block`` makes a block of its own.
    """
    n = len(counts)
    if n == 0:
        return
    cum = np.cumsum(counts)
    total = int(cum[-1])
    if total == 0:
        return
    a = 0
    done = 0  # items before entry a
    while a < n:
        b = int(np.searchsorted(cum, done + block, side="right"))
        b = max(b, a + 1)
        c = counts[a:b]
        size = int(cum[b - 1]) - done
        if size:
            owner = np.repeat(np.arange(a, b), c)
            first = np.repeat(cum[a:b] - c - done, c)
            yield owner, np.arange(size, dtype=np.int64) - first
        done = int(cum[b - 1])
        a = b


def _bucket_members(
    rows: np.ndarray, lo: np.ndarray, size: np.ndarray, order: np.ndarray, block: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pair each ``rows[h]`` with every member of its bucket ``order[lo[h] : lo[h] + size[h]]``.

    Yields ``(i, j)`` index arrays. Most buckets hold one or two hashes, so the first members
    are taken level by level (cheap gathers); only larger buckets go through ``_expand``.
    """
    for level in range(_LEVELS):
        if level:
            more = np.flatnonzero(size > level)
            rows, lo, size = rows[more], lo[more], size[more]
        if not len(rows):
            return
        yield rows, order[lo + level]
    more = np.flatnonzero(size > _LEVELS)
    rows, lo, size = rows[more], lo[more] + _LEVELS, size[more] - _LEVELS
    for owner, offset in _expand(size, block):
        yield rows[owner], order[lo[owner] + offset]


class HammingIndex:
    """Exact search for hashes within a Hamming radius, via multi-index hashing.

    Parameters
    ----------
    hashes
        1-D array of 64-bit hashes, ``uint64``. ``int64`` is reinterpreted bit for bit (the way
        uint64 often comes back from parquet); other non-negative integers, Python ints, and
        ``imagehash.ImageHash`` objects or hex strings are converted. Indices in the results
        refer to positions in this sequence.
    block
        Most candidate pairs handled in one vectorised step; bounds the working memory
        (about 50 bytes per candidate).

    Attributes
    ----------
    hashes : numpy.ndarray
        The hashes, uint64.
    unique : numpy.ndarray
        The distinct hashes, sorted.
    counts : numpy.ndarray
        How often each distinct hash occurs.

    Examples
    --------
    >>> import numpy as np
    >>> index = HammingIndex(np.array([0b1011, 0b1001, 0xFF00], dtype=np.uint64))
    >>> index.pairs(1).pairs.tolist()
    [[0, 1]]
    >>> index.query(np.uint64(0b0011), 1).tolist()
    [0]
    """

    def __init__(self, hashes: Any, *, block: int = _DEFAULT_BLOCK) -> None:
        check_positive_int(block, "block")
        self.hashes = _as_uint64_array(hashes)
        self.block = int(block)
        self.unique, inverse, self.counts = np.unique(
            self.hashes, return_inverse=True, return_counts=True
        )
        # Original indices grouped by distinct hash, ascending within a group.
        self._members = np.argsort(inverse.ravel(), kind="stable")
        self._group_start = np.concatenate([[0], np.cumsum(self.counts)])
        self._tables: dict[tuple[int, int], _Table] = {}

    def __len__(self) -> int:
        return len(self.hashes)

    def __repr__(self) -> str:
        return f"HammingIndex({len(self.hashes)} hashes, {len(self.unique)} distinct)"

    # ------------------------------------------------------------------ planning

    def _table(self, sub: _Substring) -> _Table:
        key = (sub.shift, sub.width)
        table = self._tables.get(key)
        if table is None:
            # Signed keys (a 64-bit substring wraps around, which keeps equality and a total
            # order); int32 when they fit, which halves the memory traffic of the probes.
            keys = ((self.unique >> np.uint64(sub.shift)) & sub.mask).view(np.int64)
            if sub.width <= 31:
                keys = keys.astype(np.int32)
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            starts = sizes = None
            # A direct table (two int32 arrays of 2**width, at most 128 MB) turns each lookup
            # into one gather; wider substrings fall back to binary search.
            if sub.width <= _TABLE_BITS:
                dtype = np.int32 if len(keys) < 2**31 else np.int64
                sizes = np.bincount(keys, minlength=1 << sub.width).astype(dtype)
                starts = np.cumsum(sizes, dtype=dtype)
                starts -= sizes
            table = _Table(keys, order, sorted_keys, starts, sizes)
            self._tables[key] = table
        return table

    def _plan_cost(self, m: int, radius: int, *, query: bool = False) -> float:
        u = len(self.unique)
        cost = 0.0
        for sub in _layout(m, radius):
            if sub.limit < 0:
                continue
            n_masks = sub.n_masks
            if n_masks > _MAX_MASKS:
                return math.inf
            lookup = _COST_LOOKUP * (1 if sub.width <= _TABLE_BITS else math.log2(u + 2))
            # Expected bucket members per probe if the bits are uniform; real hashes are
            # clumpier, which only makes every plan slower, not wrong.
            per_probe = u / 2.0**sub.width
            if query:
                cost += n_masks * (lookup + per_probe * _COST_CANDIDATE) + _COST_STEP
            else:
                # Non-zero masks are probed from one side of each pair only: half the probes.
                probes = 1 + (n_masks - 1) / 2.0
                cost += u * probes * (lookup + per_probe * _COST_CANDIDATE)
                cost += _COST_STEP * sub.width * max(1.0, u * n_masks / sub.width / self.block)
            if (sub.shift, sub.width) not in self._tables:
                cost += u * _COST_BUILD
                if sub.width <= _TABLE_BITS:
                    cost += _COST_TABLE * 2.0**sub.width
        return cost

    def plan(self, radius: int) -> int:
        """The number of substrings ``pairs(radius)`` would use; 0 means a brute-force scan.

        Only speed depends on the plan; every plan returns exactly the same pairs.
        """
        radius = _check_radius(radius)
        u = len(self.unique)
        best_m, best = 0, _COST_BRUTE * u * (u - 1) / 2.0
        for m in range(1, min(radius + 1, _BITS) + 1):
            cost = self._plan_cost(m, radius)
            if cost < best:
                best_m, best = m, cost
        return best_m

    # ------------------------------------------------------------------ pairs

    def pairs(
        self,
        radius: int,
        *,
        n_substrings: int | None = None,
        max_pairs: int | None = 50_000_000,
    ) -> PairResult:
        """Every pair of hashes within ``radius`` bits of each other.

        Parameters
        ----------
        radius
            Largest Hamming distance reported, 0 to 64 (0 finds identical hashes).
        n_substrings
            Force multi-index hashing with this many substrings (1 to 64); ``0`` forces the
            brute-force scan. Default: chosen by :meth:`plan`. The result never depends on it.
        max_pairs
            Raise :class:`~workbench.errors.ParameterError` instead of building more pairs than
            this (e.g. thousands of identical blank images make millions of pairs). ``None``
            for no limit.

        Returns
        -------
        PairResult
            ``pairs`` ``(k, 2)`` int64 with ``i < j`` sorted lexicographically, and
            ``distances`` ``(k,)`` uint8.
        """
        radius = _check_radius(radius)
        m = self.plan(radius) if n_substrings is None else self._check_substrings(n_substrings)
        limit = math.inf if max_pairs is None else check_int(max_pairs, "max_pairs", low=0)

        # Identical hashes: every pair inside a group, distance 0.
        dup = self.counts * (self.counts - 1) // 2
        n_out = int(dup.sum())
        self._check_limit(n_out, limit)

        parts_a: list[np.ndarray] = []
        parts_b: list[np.ndarray] = []
        parts_d: list[np.ndarray] = []
        if radius == 0:  # distinct hashes are never within radius 0
            blocks = iter(())
        elif m == 0:
            blocks = self._distinct_pairs_brute(radius)
        else:
            blocks = self._distinct_pairs(radius, m)
        for a, b, d in blocks:
            n_out += int((self.counts[a] * self.counts[b]).sum())
            self._check_limit(n_out, limit)
            parts_a.append(a)
            parts_b.append(b)
            parts_d.append(d)
        a = np.concatenate(parts_a) if parts_a else np.zeros(0, dtype=np.int64)
        b = np.concatenate(parts_b) if parts_b else np.zeros(0, dtype=np.int64)
        d = np.concatenate(parts_d) if parts_d else np.zeros(0, dtype=np.uint8)
        return self._to_original(a, b, d, dup)

    @staticmethod
    def _check_substrings(n_substrings: Any) -> int:
        return check_int(n_substrings, "n_substrings", low=0, high=_BITS)

    @staticmethod
    def _check_limit(n_out: int, limit: float) -> None:
        if n_out > limit:
            raise ParameterError(
                f"more than {int(limit):,} pairs are within the radius; lower the radius, "
                "drop identical hashes first (e.g. group by hash), or pass a larger max_pairs"
            )

    def _verify(
        self, a: np.ndarray, b: np.ndarray, radius: int, earlier: list[_Substring]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keep candidate pairs within ``radius`` that no earlier substring reports."""
        x = self.unique[a] ^ self.unique[b]
        d = np.bitwise_count(x)
        keep = d <= radius
        x = x[keep]
        for sub in earlier:
            found_before = np.bitwise_count((x >> np.uint64(sub.shift)) & sub.mask) <= sub.limit
            if found_before.any():
                sel = np.flatnonzero(keep)
                keep[sel[found_before]] = False
                x = x[~found_before]
        a, b, d = a[keep], b[keep], d[keep]
        return np.minimum(a, b), np.maximum(a, b), d.astype(np.uint8)

    def _distinct_pairs(
        self, radius: int, m: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Pairs of distinct hashes (indices into ``unique``) by multi-index hashing."""
        u = len(self.unique)
        if u < 2:
            return
        earlier: list[_Substring] = []
        for sub in _layout(m, radius):
            if sub.limit < 0:
                continue
            _check_masks(sub, m, radius)
            table = self._table(sub)
            # Zero mask: pairs inside one bucket. Position p pairs with p+1 .. bucket end - 1.
            ends = table.start(table.sorted_keys) + table.size(table.sorted_keys)
            for owner, offset in _expand(ends - np.arange(u) - 1, self.block):
                out = self._verify(
                    table.order[owner], table.order[owner + 1 + offset], radius, earlier
                )
                if len(out[0]):
                    yield out
            # Non-zero masks: the bucket of key ^ mask. Of the two keys k and k ^ mask exactly one
            # has a 0 at the mask's highest bit; looking up only from that side visits each
            # unordered pair once. Masks sharing their highest bit are probed together as a
            # (hashes x masks) matrix, so the Python loop runs per bit, not per mask.
            masks = _flip_masks(sub.width, sub.limit)
            top_bit = _top_bit(masks)
            for bit in np.unique(top_bit).tolist():
                group = masks[top_bit == bit].astype(table.keys.dtype)
                src = np.flatnonzero(((table.keys >> bit) & 1) == 0)
                if not len(src):
                    continue
                src_keys = table.keys[src]
                step = max(1, self.block // len(src))
                for c in range(0, len(group), step):
                    targets = (src_keys[:, None] ^ group[None, c : c + step]).ravel()
                    size = table.size(targets)
                    hit = np.flatnonzero(size)
                    rows = src[hit // min(step, len(group) - c)]
                    lo = table.start(targets[hit])
                    for i, j in _bucket_members(rows, lo, size[hit], table.order, self.block):
                        out = self._verify(i, j, radius, earlier)
                        if len(out[0]):
                            yield out
            earlier.append(sub)

    def _distinct_pairs_brute(
        self, radius: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Pairs of distinct hashes by a blocked all-pairs scan (fast for small inputs)."""
        u = len(self.unique)
        rows = max(1, self.block // max(u, 1))
        for start in range(0, u - 1, rows):
            stop = min(u - 1, start + rows)
            d = np.bitwise_count(self.unique[start:stop, None] ^ self.unique[None, start + 1 :])
            # Row r (hash start + r) is compared with hashes start+1 .. u-1; keep j > i only.
            upper = np.arange(start + 1, u)[None, :] > np.arange(start, stop)[:, None]
            r, c = np.nonzero((d <= radius) & upper)
            if len(r):
                yield r + start, c + start + 1, d[r, c].astype(np.uint8)

    def _to_original(
        self, a: np.ndarray, b: np.ndarray, d: np.ndarray, dup: np.ndarray
    ) -> PairResult:
        """Expand pairs of distinct hashes and groups of identical ones to original indices."""
        members, start, counts = self._members, self._group_start, self.counts
        out_i: list[np.ndarray] = []
        out_j: list[np.ndarray] = []
        out_d: list[np.ndarray] = []
        # Every member of group a with every member of group b.
        ca, cb = counts[a], counts[b]
        for owner, offset in _expand(ca * cb, max(self.block, 1)):
            x = members[start[a[owner]] + offset // cb[owner]]
            y = members[start[b[owner]] + offset % cb[owner]]
            out_i.append(np.minimum(x, y))
            out_j.append(np.maximum(x, y))
            out_d.append(d[owner])
        # Pairs inside a group of identical hashes; members are ascending within a group.
        if dup.any():
            group = np.repeat(np.arange(len(counts)), counts)
            pos = np.arange(len(members))
            partners = start[group + 1] - pos - 1
            for owner, offset in _expand(partners, max(self.block, 1)):
                out_i.append(members[owner])
                out_j.append(members[owner + 1 + offset])
                out_d.append(np.zeros(len(owner), dtype=np.uint8))
        if not out_i:
            return PairResult(np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.uint8))
        i = np.concatenate(out_i).astype(np.int64)
        j = np.concatenate(out_j).astype(np.int64)
        dist = np.concatenate(out_d)
        order = np.lexsort((j, i))
        return PairResult(np.stack([i[order], j[order]], axis=1), dist[order])

    # ------------------------------------------------------------------ query

    def query(
        self,
        h: Any,
        radius: int,
        *,
        return_distances: bool = False,
        n_substrings: int | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Indices of the hashes within ``radius`` bits of ``h``.

        Parameters
        ----------
        h
            The query: a uint64, an integer, a hex string or an ``imagehash.ImageHash``.
        radius
            Largest Hamming distance, 0 to 64.
        return_distances
            Also return the distance of each hit.
        n_substrings
            Force multi-index hashing with this many substrings; ``0`` forces a linear scan.
            Default: whichever the cost model expects to be faster (the substring tables are
            built on first use and kept, so repeated queries get cheaper).

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            Sorted int64 indices into the hashes, and their uint8 distances if asked for.
        """
        radius = _check_radius(radius)
        q = hash_to_uint64(h)
        u = len(self.unique)
        if n_substrings is not None:
            best_m = self._check_substrings(n_substrings)
        else:
            best_m, best = 0, _COST_SCAN * u  # linear scan over the distinct hashes
            for m in range(1, min(radius + 1, _BITS) + 1):
                cost = self._plan_cost(m, radius, query=True)
                if cost < best:
                    best_m, best = m, cost
        if best_m == 0:
            d = np.bitwise_count(self.unique ^ q)
            hit = np.flatnonzero(d <= radius)
        else:
            cand = []
            for sub in _layout(best_m, radius):
                if sub.limit < 0:
                    continue
                _check_masks(sub, best_m, radius)
                table = self._table(sub)
                key = np.uint64((q >> np.uint64(sub.shift)) & sub.mask).view(np.int64)
                targets = np.concatenate([[key], key ^ _flip_masks(sub.width, sub.limit)])
                size = table.size(targets)
                lo = table.start(targets)
                for owner, offset in _expand(size, self.block):
                    cand.append(table.order[lo[owner] + offset])
            hit = np.unique(np.concatenate(cand)) if cand else np.zeros(0, dtype=np.int64)
            d = np.bitwise_count(self.unique[hit] ^ q)
            hit = hit[d <= radius]
        dist_u = np.bitwise_count(self.unique[hit] ^ q).astype(np.uint8)
        counts = self.counts[hit]
        owner = np.repeat(np.arange(len(hit)), counts)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        idx = self._members[self._group_start[hit][owner] + offset].astype(np.int64)
        dist = dist_u[owner]
        order = np.argsort(idx, kind="stable")
        idx, dist = idx[order], dist[order]
        if return_distances:
            return idx, dist
        return idx

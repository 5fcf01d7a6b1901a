"""Tests for workbench.hashindex: exact Hamming-radius pairs and queries over 64-bit hashes."""

from __future__ import annotations

import tracemalloc

import imagehash
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from workbench.errors import ParameterError
from workbench.hashindex import (
    HammingIndex,
    PairResult,
    hash_to_uint64,
    hashes_to_uint64,
    perceptual_hashes,
)

# ---------------------------------------------------------------------------- oracles


def brute_pairs(hashes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j within radius, by comparing every pair (row blocks keep memory small)."""
    n = len(hashes)
    out_i, out_j, out_d = [], [], []
    for start in range(0, n, 512):
        d = np.bitwise_count(hashes[start : start + 512, None] ^ hashes[None, :])
        i, j = np.nonzero(d <= radius)
        i = i + start
        keep = i < j
        out_i.append(i[keep])
        out_j.append(j[keep])
        out_d.append(d[i[keep] - start, j[keep]])
    if not out_i:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.uint8)
    i, j, d = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
    order = np.lexsort((j, i))
    return np.stack([i[order], j[order]], axis=1), d[order].astype(np.uint8)


def brute_query(hashes: np.ndarray, q: np.uint64, radius: int) -> np.ndarray:
    return np.flatnonzero(np.bitwise_count(hashes ^ q) <= radius)


def random_mask(rng: np.random.Generator, weight: int) -> np.uint64:
    bits = rng.choice(64, size=weight, replace=False)
    return np.uint64(sum(1 << int(b) for b in bits))


def make_hashes(
    rng: np.random.Generator, n: int, radius: int, planted: int, dup: int, clump: bool
) -> np.ndarray:
    """Random hashes with near pairs planted around the radius, duplicates, optional clumps."""
    h = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    if n < 2:
        return h
    for _ in range(planted):
        a, b = rng.integers(0, n, size=2)
        weight = int(np.clip(radius + rng.integers(-2, 2), 0, 64))  # just inside and outside
        h[b] = h[a] ^ random_mask(rng, weight)
    for _ in range(dup):
        a, b = rng.integers(0, n, size=2)
        h[b] = h[a]
    if clump:
        # Every hash shares its top 44 bits: each substring but the lowest ones is one big bucket.
        h &= np.uint64((1 << 20) - 1)
    return h


def assert_same(result: PairResult, expected: tuple[np.ndarray, np.ndarray]) -> None:
    assert result.pairs.dtype == np.int64
    assert result.pairs.shape == (len(expected[0]), 2)
    np.testing.assert_array_equal(result.pairs, expected[0])
    np.testing.assert_array_equal(result.distances, expected[1])


def valid_substrings(radius: int) -> list[int]:
    """Substring counts whose probe sets stay small enough for a quick test."""
    return [m for m in range(1, radius + 2) if radius // m <= 2 or m == radius + 1]


# ---------------------------------------------------------------------------- pairs


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 2000),
    radius=st.integers(0, 12),
    planted=st.integers(0, 300),
    dup=st.integers(0, 50),
    clump=st.booleans(),
    data=st.data(),
)
def test_pairs_equal_brute_force(seed, n, radius, planted, dup, clump, data):
    rng = np.random.default_rng(seed)
    hashes = make_hashes(rng, n, radius, planted, dup, clump)
    expected = brute_pairs(hashes, radius)
    block = data.draw(st.sampled_from([1, 7, 1000, 1 << 21]), label="block")
    index = HammingIndex(hashes, block=block)
    assert_same(index.pairs(radius, max_pairs=None), expected)
    m = data.draw(st.sampled_from(valid_substrings(radius)), label="n_substrings")
    assert_same(index.pairs(radius, n_substrings=m, max_pairs=None), expected)
    assert_same(index.pairs(radius, n_substrings=0, max_pairs=None), expected)


@pytest.mark.parametrize("radius", [4, 8])
def test_pairs_at_scale_use_multi_index_and_stay_exact(radius):
    rng = np.random.default_rng(radius)
    hashes = make_hashes(rng, 20_000, radius, planted=2_000, dup=200, clump=False)
    index = HammingIndex(hashes)
    assert index.plan(radius) > 0  # the index, not the all-pairs scan
    assert_same(index.pairs(radius), brute_pairs(hashes, radius))


def test_every_substring_count_finds_the_same_pairs():
    rng = np.random.default_rng(7)
    hashes = make_hashes(rng, 1500, 6, planted=400, dup=30, clump=False)
    expected = brute_pairs(hashes, 6)
    index = HammingIndex(hashes)
    # m = 1 would probe every 64-bit mask of weight <= 6 (too many); m > 7 leaves substrings
    # unused but must still be exact.
    for m in range(2, 20):
        assert_same(index.pairs(6, n_substrings=m), expected)


def test_radius_zero_finds_exact_duplicates_only():
    h = np.array([5, 9, 5, 5, 9, 4], dtype=np.uint64)
    res = HammingIndex(h).pairs(0)
    assert res.pairs.tolist() == [[0, 2], [0, 3], [1, 4], [2, 3]]
    assert res.distances.tolist() == [0, 0, 0, 0]


def test_full_radius_is_all_pairs():
    rng = np.random.default_rng(3)
    h = rng.integers(0, 2**63, size=50, dtype=np.uint64)
    res = HammingIndex(h).pairs(64)
    assert len(res.pairs) == 50 * 49 // 2


# ---------------------------------------------------------------------------- degenerate


def test_empty_and_single():
    for hashes in (np.zeros(0, dtype=np.uint64), [], np.array([42], dtype=np.uint64)):
        index = HammingIndex(hashes)
        for radius in (0, 5, 64):
            res = index.pairs(radius)
            assert res.pairs.shape == (0, 2)
            assert res.distances.shape == (0,)
    assert HammingIndex([]).query(np.uint64(0), 10).tolist() == []
    assert HammingIndex([42]).query(np.uint64(43), 1).tolist() == [0]


def test_all_identical_blank_images():
    """Blank images all hash to 0: one big group, every pair at distance 0, no blow-up."""
    n = 600
    index = HammingIndex(np.zeros(n, dtype=np.uint64), block=1000)
    res = index.pairs(8)
    assert len(res.pairs) == n * (n - 1) // 2
    assert (res.pairs[:, 0] < res.pairs[:, 1]).all()
    assert (res.distances == 0).all()
    assert len(np.unique(res.pairs[:, 0] * n + res.pairs[:, 1])) == len(res.pairs)
    assert index.query(np.uint64(1), 1).tolist() == list(range(n))


def test_identical_plus_near_groups():
    h = np.array([0] * 5 + [1] * 3 + [0xFFFF] * 2, dtype=np.uint64)
    res = HammingIndex(h, block=3).pairs(1)
    expected = brute_pairs(h, 1)
    assert_same(res, expected)
    assert len(res.pairs) == 10 + 3 + 15 + 1  # 0-group, 1-group, across, 0xFFFF pair


def test_max_pairs_guard():
    index = HammingIndex(np.zeros(2000, dtype=np.uint64))
    with pytest.raises(ParameterError, match="max_pairs"):
        index.pairs(0, max_pairs=1000)
    h = np.arange(3000, dtype=np.uint64)  # all within 12 bits of each other
    with pytest.raises(ParameterError, match="pairs are within the radius"):
        HammingIndex(h).pairs(12, max_pairs=10_000)


def test_huge_bucket_memory_is_bounded():
    """Distinct hashes sharing 48 bits put everything in one bucket of most substrings."""
    rng = np.random.default_rng(0)
    h = rng.choice(1 << 16, size=4000, replace=False).astype(np.uint64)
    index = HammingIndex(h, block=4096)
    index.pairs(2, n_substrings=3)  # build tables outside the measurement
    tracemalloc.start()
    try:
        res = index.pairs(2, n_substrings=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_same(res, brute_pairs(h, 2))
    # About 8M candidate pairs in the shared bucket: tens of MB if held at once.
    assert peak < 8 * 2**20


# ---------------------------------------------------------------------------- query


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 2000),
    radius=st.integers(0, 12),
    clump=st.booleans(),
    data=st.data(),
)
def test_query_equals_brute_force(seed, n, radius, clump, data):
    rng = np.random.default_rng(seed)
    hashes = make_hashes(rng, n, radius, planted=n // 4, dup=n // 20, clump=clump)
    index = HammingIndex(hashes)
    if n and data.draw(st.booleans(), label="near an existing hash"):
        q = hashes[rng.integers(0, n)] ^ random_mask(rng, int(rng.integers(0, radius + 2)))
    else:
        q = rng.integers(0, 2**64 - 1, dtype=np.uint64, endpoint=True)
    expected = brute_query(hashes, q, radius)
    np.testing.assert_array_equal(index.query(q, radius), expected)
    m = data.draw(st.sampled_from([0, *valid_substrings(radius)]), label="n_substrings")
    idx, dist = index.query(q, radius, return_distances=True, n_substrings=m)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(dist, np.bitwise_count(hashes[expected] ^ q))
    assert idx.dtype == np.int64 and dist.dtype == np.uint8


def test_query_accepts_imagehash_and_hex():
    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**63, size=100, dtype=np.uint64)
    index = HammingIndex(h)
    target = int(h[17])
    assert 17 in index.query(format(target, "016x"), 0)
    assert 17 in index.query(target, 0)


# ---------------------------------------------------------------------------- conversion


def _noise_image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(32, 32), dtype=np.uint8))


@pytest.mark.parametrize("fn", [imagehash.average_hash, imagehash.phash, imagehash.dhash])
def test_hash_to_uint64_matches_imagehash(fn):
    hashes = [fn(_noise_image(s)) for s in range(6)]
    values = hashes_to_uint64(hashes)
    assert values.dtype == np.uint64
    for h, v in zip(hashes, values, strict=True):
        assert int(v) == int(str(h), 16)
        assert hash_to_uint64(h) == v
    for a in range(6):
        for b in range(6):
            assert int(np.bitwise_count(values[a] ^ values[b])) == hashes[a] - hashes[b]
    # The index takes ImageHash objects directly.
    res = HammingIndex(hashes).pairs(64)
    assert res.distances.tolist() == [hashes[i] - hashes[j] for i, j in res.pairs.tolist()]


def _imagehash_bits(h) -> int:
    return int(hash_to_uint64(h).view(np.int64))


def test_perceptual_hashes_equal_imagehash_on_images_at_hash_size():
    """Same algorithm: where no resampling is needed (32×32 for pHash, 9×8 for dHash) the bits
    are imagehash's exactly, gray or colour."""
    rng = np.random.default_rng(7)
    for mode in ("L", "RGB"):
        shape = (32, 32) if mode == "L" else (32, 32, 3)
        for _ in range(40):
            im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            assert perceptual_hashes(im)[0] == _imagehash_bits(imagehash.phash(im))
            im = Image.fromarray(rng.integers(0, 256, (8, 9, 3)[: len(shape)], dtype=np.uint8))
            assert perceptual_hashes(im)[1] == _imagehash_bits(imagehash.dhash(im))


def test_perceptual_hashes_stay_close_to_imagehash_on_photos():
    """Elsewhere only the resampling differs (float matrices on a box-reduced copy against
    Pillow's 8-bit Lanczos): about one bit in 64 on average, far below the distance between
    different photos."""
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(),
              skimage.data.rocket(), skimage.data.camera()]  # fmt: skip
    ours, theirs = [], []
    for a in photos:
        for side in (40, 97, 200, 512):
            im = Image.fromarray(a).resize((side, side * a.shape[0] // a.shape[1]))
            ours.append(perceptual_hashes(im))
            theirs.append(
                (_imagehash_bits(imagehash.phash(im)), _imagehash_bits(imagehash.dhash(im)))
            )
    ours_u = np.array(ours, dtype=np.int64).view(np.uint64)
    theirs_u = np.array(theirs, dtype=np.int64).view(np.uint64)
    to_imagehash = np.bitwise_count(ours_u ^ theirs_u)
    assert to_imagehash.mean(axis=0).max() <= 1.5  # measured: 0.6 (pHash), 0.7 (dHash)
    between = np.bitwise_count(ours_u[0::4, None] ^ ours_u[None, 1::4]).sum(-1)  # photo i vs j
    assert between[~np.eye(len(photos), dtype=bool)].min() >= 40  # measured: 57 of 128


def test_hash_to_uint64_rejects_other_sizes_and_junk():
    with pytest.raises(ParameterError, match="64-bit"):
        hash_to_uint64(imagehash.phash(_noise_image(0), hash_size=16))
    with pytest.raises(ParameterError):
        hash_to_uint64("not hex")
    with pytest.raises(ParameterError):
        hash_to_uint64(1 << 64)
    with pytest.raises(ParameterError):
        hash_to_uint64(1.5)


def test_input_types():
    # int64 is reinterpreted bit for bit (uint64 stored as int64 in parquet).
    signed = np.array([-1, 0], dtype=np.int64)
    assert HammingIndex(signed).hashes.tolist() == [2**64 - 1, 0]
    assert HammingIndex([2**64 - 1, 3]).hashes.dtype == np.uint64
    assert HammingIndex(np.array([1, 2], dtype=np.uint8)).pairs(2).pairs.tolist() == [[0, 1]]
    for bad in ([-1], [1 << 64], np.zeros((2, 2), dtype=np.uint64), np.array([0.5]), "ab"):
        with pytest.raises(ParameterError):
            HammingIndex(bad)
    with pytest.raises(ParameterError):
        HammingIndex([1], block=0)


@pytest.mark.parametrize("radius", [-1, 65, 2.0, True, "3"])
def test_bad_radius(radius):
    index = HammingIndex([1, 2])
    with pytest.raises(ParameterError):
        index.pairs(radius)
    with pytest.raises(ParameterError):
        index.query(1, radius)


def test_bad_substrings():
    index = HammingIndex([1, 2])
    with pytest.raises(ParameterError):
        index.pairs(3, n_substrings=65)
    with pytest.raises(ParameterError, match="too few"):
        index.pairs(12, n_substrings=1)


def test_integer_arguments_refuse_bools_and_fractions_with_the_range():
    with pytest.raises(ParameterError, match=r"^radius must be an integer from 0 to 64, got 2\.0$"):
        HammingIndex([1, 2]).pairs(2.0)
    for bad in (True, 0, 2.0):
        with pytest.raises(ParameterError, match="block must be an integer >= 1"):
            HammingIndex([1], block=bad)
    for bad in (-1, 1.5, True):
        with pytest.raises(ParameterError, match="max_pairs must be an integer >= 0"):
            HammingIndex([1, 2]).pairs(1, max_pairs=bad)
    with pytest.raises(ParameterError, match="n_substrings must be an integer from 0 to 64"):
        HammingIndex([1, 2]).query(1, 1, n_substrings=False)
    assert HammingIndex([1, 3], block=np.int64(2)).pairs(np.uint8(1)).pairs.tolist() == [[0, 1]]

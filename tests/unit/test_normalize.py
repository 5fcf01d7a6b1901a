"""Tests for workbench.normalize: streaming per-channel mean / std and the Normalizer estimator."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from torchvision.transforms import v2

import workbench._moments as moments
from workbench.errors import ParameterError, WorkbenchError
from workbench.normalize import Moments, Normalizer, image_moments

# ---------------------------------------------------------------------------- helpers


def two_pass(images, scale, *, per_channel=True):
    """Oracle: mean and std (ddof=0) over all pixels of all images concatenated, [0, 1] scale."""
    arrays = [np.asarray(im) for im in images]
    c = 1 if arrays[0].ndim == 2 else arrays[0].shape[2]
    values = np.concatenate([a.reshape(-1, c).astype(np.float64) for a in arrays]) / scale
    if not per_channel:
        values = values.reshape(-1, 1)
    mean = values.mean(axis=0)
    return mean, np.sqrt(((values - mean) ** 2).mean(axis=0))


def random_images(rng, n, channels, dtype, *, pil=False):
    top = np.iinfo(dtype).max
    out = []
    for _ in range(n):
        h, w = rng.integers(1, 40, size=2)
        shape = (h, w) if channels == 1 else (h, w, channels)
        # Per-image brightness offsets make the merge across images matter.
        lo = int(rng.integers(0, top // 2))
        a = rng.integers(lo, top, size=shape, endpoint=True).astype(dtype)
        out.append(Image.fromarray(a) if pil else a)
    return out


class FakeCatalog:
    """Exactly the Catalog interface the Normalizer uses: ids, df (id, path, status), root."""

    def __init__(self, root: Path, rows: list[tuple[str, str, str]]) -> None:
        self.root = root
        self.df = pd.DataFrame(rows, columns=["id", "path", "status"])

    @property
    def ids(self) -> list[str]:
        return self.df["id"].tolist()

    def image(self, sample_id, keep_16bit=True):  # pragma: no cover - part of the interface
        from workbench.io import decode

        path = self.df.set_index("id").loc[sample_id, "path"]
        return decode(Path(self.root) / path, keep_16bit=keep_16bit)


def write_catalog(tmp_path: Path, images, *, extra_bad=True) -> FakeCatalog:
    rows = []
    for k, im in enumerate(images):
        name = f"img_{k:04d}.png"
        (im if isinstance(im, Image.Image) else Image.fromarray(im)).save(tmp_path / name)
        # Alternate absolute and root-relative paths; both must resolve.
        rows.append((name, str(tmp_path / name) if k % 2 else name, "ok"))
    if extra_bad:
        rows.insert(1, ("missing.png", str(tmp_path / "missing.png"), "missing"))
        (tmp_path / "broken.png").write_bytes(b"not a png")
        rows.append(("broken.png", str(tmp_path / "broken.png"), "corrupt"))
    return FakeCatalog(tmp_path, rows)


def assert_close(norm: Normalizer, expected, rtol=1e-6):
    mean, std = expected
    np.testing.assert_allclose(norm.mean_, mean, rtol=rtol, atol=0)
    np.testing.assert_allclose(norm.std_, std, rtol=rtol, atol=0)


# ---------------------------------------------------------------------------- statistics

CASES = {
    "gray8": (1, np.uint8, 255, False),
    "rgb8": (3, np.uint8, 255, True),
    "gray16": (1, np.uint16, 65535, True),
    "rgb16_array": (3, np.uint16, 65535, False),
    "four_channel8": (4, np.uint8, 255, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_equals_two_pass_over_all_pixels(case):
    channels, dtype, scale, pil = CASES[case]
    rng = np.random.default_rng(len(case))
    images = random_images(rng, 25, channels, dtype, pil=pil)
    norm = Normalizer().fit(images, progress=False)
    assert_close(norm, two_pass(images, scale))
    assert norm.scale_ == scale
    assert norm.channels_ == channels
    assert norm.n_ == sum(np.asarray(im).shape[0] * np.asarray(im).shape[1] for im in images)
    assert norm.n_images_ == 25
    assert norm.mean_.shape == norm.std_.shape == (channels,)
    assert norm.mean_.dtype == norm.std_.dtype == np.float64

    pooled = Normalizer(per_channel=False).fit(images, progress=False)
    assert_close(pooled, two_pass(images, scale, per_channel=False))
    assert pooled.mean_.shape == (1,)
    assert pooled.channels_ == channels


def test_blocks_inside_one_image(monkeypatch):
    """Large images are reduced in blocks of pixels; tiny blocks must give the same answer."""
    rng = np.random.default_rng(5)
    images = random_images(rng, 6, 3, np.uint8)
    expected = two_pass(images, 255)
    monkeypatch.setattr(moments, "_BLOCK_PIXELS", 7)
    assert_close(Normalizer().fit(images, progress=False), expected, rtol=1e-10)


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize(
    "shape, fill",
    [
        ((1, 1), "random"),
        ((3, 7), "random"),
        ((256, 256), "random"),
        ((1100, 1500), "random"),
        ((1100, 1500), 255),  # the largest sums: any overflow or rounding shows
        ((1100, 1500), "near_constant"),  # std close to 0: the cancellation case
        ((2000, 3000), "random"),  # 24 MB as RGBX: rows in several blocks, histogram fallback
    ],
)
def test_integer_sums_of_8bit_images_are_exact(mode, shape, fill):
    """``Σx`` and ``Σx²`` per channel, read back from OpenCV's float mean and std, equal
    numpy's int64 sums exactly."""
    rng = np.random.default_rng(shape[0] + len(mode))
    c = len(mode)
    if fill == "random":
        a = rng.integers(0, 256, size=(*shape, c), dtype=np.uint8)
    elif fill == "near_constant":
        a = np.full((*shape, c), 200, np.uint8)
        a[0, 0] = 201
    else:
        a = np.full((*shape, c), fill, np.uint8)
    image = Image.fromarray(a[..., 0] if c == 1 else a, mode)
    n, s1, s2 = moments._sums8(image)
    flat = a.reshape(-1, c).astype(np.int64)
    assert n == flat.shape[0]
    assert [int(v) for v in s1] == flat.sum(axis=0).tolist()
    assert [int(v) for v in s2] == (flat * flat).sum(axis=0).tolist()


@pytest.mark.parametrize(
    "dtype, shape, fill",
    [
        (np.uint16, (300, 700), "random"),  # 210,000 values: four float64 blocks
        (np.uint16, (300, 700), 65535),  # the largest squares
        (np.uint16, (40, 50, 3), "random"),
        (np.uint8, (300, 700, 4), "random"),
        (np.uint8, (1, 1), 255),
    ],
)
@pytest.mark.parametrize("as_pil", [False, True])
def test_integer_moments_are_exact(dtype, shape, fill, as_pil):
    """16-bit (and 8-bit array) moments come from exact integer sums: equal, bit for bit, to
    the same formula over numpy's int64 sums."""
    if as_pil and len(shape) == 3 and dtype == np.uint16:
        pytest.skip("Pillow has no multi-channel 16-bit mode")
    rng = np.random.default_rng(sum(shape))
    top = np.iinfo(dtype).max
    a = np.full(shape, fill, dtype) if fill != "random" else rng.integers(0, top + 1, shape, dtype)
    image = Image.fromarray(a) if as_pil else a
    m = Moments.from_image(image)
    flat = a.reshape(a.shape[0] * a.shape[1], -1).astype(np.int64)
    n = flat.shape[0]
    expected = Moments.from_sums(n, flat.sum(axis=0), (flat * flat).sum(axis=0), float(top))
    assert m.n == n and m.scale == expected.scale
    np.testing.assert_array_equal(m.mean, expected.mean)
    np.testing.assert_array_equal(m.m2, expected.m2)


def test_integer_sums_do_not_use_the_histogram(monkeypatch):
    """The fast path is taken for an ordinary image (Pillow's histogram is never called)."""
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 48, 3), np.uint8))
    expected = moments._sums8(image)

    def fail(*args, **kwargs):
        raise AssertionError("the histogram was computed")

    monkeypatch.setattr(Image.Image, "histogram", fail)
    got = moments._sums8(image)
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])


def test_accuracy_with_large_offset():
    """A 16-bit channel near the top of the range with a tiny spread: no cancellation."""
    rng = np.random.default_rng(2)
    images = [rng.integers(65000, 65003, size=(64, 64), dtype=np.uint16) for _ in range(20)]
    assert_close(Normalizer().fit(images, progress=False), two_pass(images, 65535), rtol=1e-9)


def test_streaming_inputs():
    rng = np.random.default_rng(11)
    images = random_images(rng, 10, 3, np.uint8)
    expected = two_pass(images, 255)
    assert_close(Normalizer().fit((im for im in images), progress=False), expected)
    stack = rng.integers(0, 256, size=(5, 8, 9, 2), dtype=np.uint8)
    assert_close(Normalizer().fit(stack, progress=False), two_pass(list(stack), 255))


def test_float_images_are_taken_as_they_are():
    rng = np.random.default_rng(4)
    images = [rng.random((10, 12, 3)).astype(np.float32) for _ in range(4)]
    norm = Normalizer().fit(images, progress=False)
    assert norm.scale_ == 1.0
    assert_close(norm, two_pass(images, 1.0))
    pil = [Image.fromarray(rng.random((6, 7)).astype(np.float32), mode="F") for _ in range(3)]
    assert_close(Normalizer().fit(pil, progress=False), two_pass(pil, 1.0))


@st.composite
def image_sets(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    channels = draw(st.sampled_from([1, 2, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    n = draw(st.integers(2, 24))
    rng = np.random.default_rng(seed)
    return random_images(rng, n, channels, dtype), rng


@settings(max_examples=60, deadline=None)
@given(data=image_sets(), k=st.integers(2, 8))
def test_chunked_merge_equals_serial(data, k):
    images, rng = data
    serial = Moments.merge_all(image_moments(im) for im in images)
    # k contiguous chunks (some may be empty), reduced separately, then merged.
    cuts = np.sort(rng.integers(0, len(images) + 1, size=k - 1))
    bounds = [0, *cuts.tolist(), len(images)]
    parts = [
        Moments.merge_all(image_moments(im) for im in images[a:b])
        for a, b in itertools.pairwise(bounds)
    ]
    # Merge the chunks in a random tree order, not just left to right.
    while len(parts) > 1:
        i = int(rng.integers(0, len(parts) - 1))
        parts[i : i + 2] = [parts[i].merge(parts[i + 1])]
    merged = parts[0]
    assert merged.n == serial.n
    np.testing.assert_allclose(merged.mean, serial.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.m2, serial.m2, rtol=1e-10)
    scale = np.iinfo(np.asarray(images[0]).dtype).max
    mean, std = two_pass(images, scale)
    np.testing.assert_allclose(merged.mean / scale, mean, rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(merged.m2 / merged.n) / scale, std, rtol=1e-9)


def test_moments_merge_identity_and_errors():
    m = Moments.from_values(np.array([[1.0, 2.0], [3.0, 5.0]]))
    assert Moments.empty().merge(m) is m
    assert m.merge(Moments.empty()) is m
    np.testing.assert_allclose(m.var(), [1.0, 2.25])
    with pytest.raises(ParameterError, match="channel"):
        m.merge(Moments.from_values(np.array([1.0, 2.0])))
    a = image_moments(np.zeros((2, 2), np.uint8) + 3)
    b = image_moments(np.zeros((2, 2), np.uint16) + 3)
    with pytest.raises(ParameterError, match="8-bit and 16-bit"):
        a.merge(b)
    pooled = m.pooled()
    np.testing.assert_allclose(pooled.mean, [2.75])
    np.testing.assert_allclose(pooled.m2, [((np.array([1, 2, 3, 5.0]) - 2.75) ** 2).sum()])


# ---------------------------------------------------------------------------- zero spread


def test_constant_images_raise_unless_eps():
    images = [np.full((8, 8, 3), 77, dtype=np.uint8) for _ in range(5)]
    with pytest.raises(ParameterError, match="eps"):
        Normalizer().fit(images, progress=False)
    norm = Normalizer(eps=1e-3).fit(images, progress=False)
    np.testing.assert_allclose(norm.mean_, [77 / 255] * 3)
    np.testing.assert_array_equal(norm.std_, [1e-3] * 3)
    out = norm.transform(images[0])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 0.0, atol=1e-3)


def test_one_constant_channel_is_named():
    rng = np.random.default_rng(0)
    images = []
    for _ in range(3):
        a = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        a[..., 1] = 9
        images.append(a)
    with pytest.raises(ParameterError, match=r"\[1\]"):
        Normalizer().fit(images, progress=False)
    # Pooled over channels the spread is not zero.
    assert Normalizer(per_channel=False).fit(images, progress=False).std_[0] > 0
    norm = Normalizer(eps=0.5).fit(images, progress=False)
    assert norm.std_[1] == 0.5 and (norm.std_ >= 0.5).all()  # eps floors every channel


# ---------------------------------------------------------------------------- bad input


def test_mixed_channels_and_depths_are_rejected():
    rgb = np.zeros((4, 4, 3), np.uint8)
    gray = np.zeros((4, 4), np.uint8)
    with pytest.raises(ParameterError, match=r"image 2 has 1 channel.*convert"):
        Normalizer().fit([rgb, rgb + 1, gray], progress=False)
    with pytest.raises(ParameterError, match="16-bit"):
        Normalizer().fit([gray, gray.astype(np.uint16)], progress=False)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "no images"),
        (np.zeros((4, 4, 3), np.uint8), "ambiguous"),
        (Image.new("RGB", (3, 3)), "wrap one image"),
        ("some/folder", "path"),
        (42, "cannot fit"),
        ([np.zeros((3, 3), np.int32)], "dtype int32"),
        ([np.zeros(5, np.uint8)], "shape"),
        ([np.full((2, 2), np.nan, np.float32)], "NaN"),
        ([Image.new("P", (3, 3))], "mode 'P'"),
        ([np.zeros((0, 0), np.uint8)], "no pixels"),
        (pd.DataFrame({"a": ["x", "y"]}), "non-numeric"),
        (pd.DataFrame({"a": [1.0, np.nan]}), "NaN"),
        (pd.DataFrame(), "empty"),
    ],
)
def test_bad_data(data, match):
    with pytest.raises(ParameterError, match=match):
        Normalizer().fit(data, progress=False)


@pytest.mark.parametrize(
    "params", [{"eps": -1.0}, {"eps": float("nan")}, {"eps": "x"}, {"per_channel": "yes"}]
)
def test_bad_params(params):
    with pytest.raises(ParameterError):
        Normalizer(**params).fit([np.arange(4, dtype=np.uint8).reshape(2, 2)], progress=False)


@pytest.mark.parametrize("eps", [True, "0.5", float("inf")])
def test_eps_is_a_finite_number_not_a_flag_or_text(eps):
    with pytest.raises(ParameterError, match=r"^eps must be a finite number >= 0, got "):
        Normalizer(eps=eps).fit([np.arange(4, dtype=np.uint8).reshape(2, 2)], progress=False)


def test_not_fitted():
    norm = Normalizer()
    for call in (
        lambda: norm.transform(np.zeros((2, 2), np.uint8)),
        lambda: norm.inverse_transform(np.zeros((2, 2))),
        norm.to_torchvision,
        norm.to_dict,
    ):
        with pytest.raises(WorkbenchError, match="not fitted"):
            call()


# ---------------------------------------------------------------------------- tabular


def test_dataframe_matches_standard_scaler():
    rng = np.random.default_rng(9)
    n = 150_000  # several row blocks
    df = pd.DataFrame(
        {
            "a": rng.normal(5.0, 2.0, n),
            "b": rng.normal(1e6, 1e-2, n),  # large offset, tiny spread
            "c": rng.integers(0, 10, n),
            "d": rng.random(n) < 0.3,
        }
    )
    norm = Normalizer().fit(df, progress=False)
    ref = StandardScaler().fit(df)
    np.testing.assert_allclose(norm.mean_, ref.mean_, rtol=1e-9, atol=0)
    np.testing.assert_allclose(norm.std_, ref.scale_, rtol=1e-9, atol=0)
    assert norm.kind_ == "table" and norm.n_ == n and norm.n_features_in_ == 4
    assert list(norm.feature_names_in_) == ["a", "b", "c", "d"]
    out = norm.transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(df.columns)
    # Column b amplifies one ulp of its mean (1e-10) by 1/std = 100: compare at 1e-7 absolute.
    np.testing.assert_allclose(out.to_numpy(), ref.transform(df), rtol=1e-9, atol=1e-7)
    back = norm.inverse_transform(out)
    np.testing.assert_allclose(back.to_numpy(), df.to_numpy(dtype=float), rtol=1e-9, atol=1e-9)
    plain = norm.transform(df.to_numpy(dtype=float))
    np.testing.assert_allclose(plain, ref.transform(df), rtol=1e-9, atol=1e-7)
    with pytest.raises(ParameterError, match="columns"):
        norm.transform(df[["b", "a", "c", "d"]])
    with pytest.raises(ParameterError, match="images"):
        norm.to_torchvision()


def test_dataframe_constant_column():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "k": [0.1, 0.1, 0.1]})
    with pytest.raises(ParameterError, match=r"column\(s\) \[1\]"):
        Normalizer().fit(df, progress=False)
    norm = Normalizer(eps=1e-8).fit(df, progress=False)
    assert norm.std_[1] == 1e-8


# ---------------------------------------------------------------------------- applying


@pytest.mark.parametrize("case", ["rgb8", "gray16", "four_channel8", "gray8"])
def test_torchvision_normalize_matches_transform(case):
    channels, dtype, _, _ = CASES[case]
    rng = np.random.default_rng(3)
    images = random_images(rng, 8, channels, dtype)
    norm = Normalizer().fit(images, progress=False)
    pipeline = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    tv_norm = norm.to_torchvision()
    assert isinstance(tv_norm, v2.Normalize)
    assert tv_norm.mean == norm.mean_.tolist() and tv_norm.std == norm.std_.tolist()
    for a in images[:3]:
        src = Image.fromarray(a) if channels in (1, 3) else torch.from_numpy(a).permute(2, 0, 1)
        ours = norm.transform(src if isinstance(src, Image.Image) else a)
        theirs = tv_norm(pipeline(src)).numpy()
        theirs = theirs[0] if ours.ndim == 2 else theirs.transpose(1, 2, 0)
        assert ours.dtype == np.float32 and ours.shape == a.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_transform_of_fitted_data_is_standardised():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, size=(50, 60, 3), dtype=np.uint8)
    norm = Normalizer().fit([a], progress=False)
    out = norm.transform(a)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(-1, 3).std(axis=0), 1, rtol=1e-4)
    batch = norm.transform(np.stack([a, a]))  # NHWC batch
    np.testing.assert_array_equal(batch[1], out)
    with pytest.raises(ParameterError, match="channel"):
        norm.transform(a[..., 0])
    pooled = Normalizer(per_channel=False).fit([a], progress=False)
    assert pooled.transform(a[..., :2]).shape == (50, 60, 2)  # one mean/std fits any channels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_inverse_transform_round_trip(dtype):
    rng = np.random.default_rng(1)
    images = random_images(rng, 4, 3, dtype)
    norm = Normalizer().fit(images, progress=False)
    top = np.iinfo(dtype).max
    for a in images:
        z = norm.transform(a)
        np.testing.assert_allclose(norm.inverse_transform(z), a / top, atol=1e-5)
        np.testing.assert_array_equal(norm.inverse_transform(z, dtype="original"), a)
        np.testing.assert_array_equal(norm.inverse_transform(z, dtype=dtype), a)
    eight = norm.inverse_transform(norm.transform(images[0]), dtype=np.uint8)
    assert eight.dtype == np.uint8
    with pytest.raises(ParameterError, match="dtype"):
        norm.inverse_transform(z, dtype=np.int32)


# ---------------------------------------------------------------------------- persistence


def test_json_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    images = random_images(rng, 5, 3, np.uint16, pil=False)
    norm = Normalizer(eps=1e-7).fit(images, progress=False)
    text = norm.to_json()
    d = json.loads(text)
    assert d == norm.to_dict()
    assert d["format"] == "workbench.Normalizer" and d["scale"] == 65535.0
    assert d["params"] == {"per_channel": True, "eps": 1e-7}
    for source in (text, tmp_path / "normalizer.json"):
        if isinstance(source, Path):
            norm.to_json(source)
        back = Normalizer.from_json(source)
        np.testing.assert_array_equal(back.mean_, norm.mean_)  # exact: repr round-trips floats
        np.testing.assert_array_equal(back.std_, norm.std_)
        assert (back.n_, back.scale_, back.channels_, back.kind_, back.n_images_) == (
            norm.n_,
            norm.scale_,
            norm.channels_,
            norm.kind_,
            norm.n_images_,
        )
        assert back.get_params() == norm.get_params()
        np.testing.assert_array_equal(back.transform(images[0]), norm.transform(images[0]))
    table = Normalizer().fit(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}), progress=False)
    back = Normalizer.from_json(table.to_json())
    assert list(back.feature_names_in_) == ["a", "b"] and back.kind_ == "table"
    for bad in ('{"format": "other"}', "{not json", tmp_path / "nope.json"):
        with pytest.raises(ParameterError):
            Normalizer.from_json(bad)
    broken = norm.to_dict()
    broken["std"] = [0.0, 1.0, 1.0]
    with pytest.raises(ParameterError):
        Normalizer.from_dict(broken)


def test_sklearn_conventions():
    norm = Normalizer(per_channel=False, eps=0.1)
    assert norm.get_params() == {"per_channel": False, "eps": 0.1}
    assert not [k for k in vars(norm) if k.endswith("_")]
    images = [np.arange(12, dtype=np.uint8).reshape(3, 4)]
    assert norm.fit(images, progress=False) is norm
    check_is_fitted(norm)
    twin = clone(norm)
    assert twin.get_params() == norm.get_params() and not hasattr(twin, "mean_")
    twin.set_params(per_channel=True)
    assert twin.per_channel is True


# ---------------------------------------------------------------------------- catalogs


def test_catalog_serial_skips_unreadable_rows(tmp_path):
    rng = np.random.default_rng(12)
    images = random_images(rng, 12, 3, np.uint8)
    catalog = write_catalog(tmp_path, images)
    norm = Normalizer().fit(catalog, workers=1, progress=False)
    assert_close(norm, two_pass(images, 255))
    assert norm.n_images_ == 12


def test_catalog_file_gone_since_the_scan_is_named_with_what_to_do(tmp_path):
    from workbench.errors import DecodeError

    catalog = write_catalog(tmp_path, random_images(np.random.default_rng(14), 4, 3, np.uint8))
    (tmp_path / "img_0002.png").unlink()  # listed as "ok", gone since
    with pytest.raises(DecodeError, match=r"img_0002\.png: file not found.*re-scan") as e:
        Normalizer().fit(catalog, workers=1, progress=False)
    assert e.value.status == "missing"


def test_catalog_16bit(tmp_path):
    rng = np.random.default_rng(13)
    images = random_images(rng, 6, 1, np.uint16, pil=True)
    catalog = write_catalog(tmp_path, images, extra_bad=False)
    norm = Normalizer().fit(catalog, workers=1, progress=False)
    assert norm.scale_ == 65535.0
    assert_close(norm, two_pass(images, 65535))


def test_catalog_exif_rotated_files(tmp_path):
    """The workers skip the EXIF rotation (it only moves pixels): the moments are still those of
    the oriented images that decode() gives, and a rotated file really is stored rotated."""
    from workbench.io import decode

    rng = np.random.default_rng(15)
    images = random_images(rng, 4, 3, np.uint8)
    catalog = write_catalog(tmp_path, images, extra_bad=False)
    for k, name in enumerate(catalog.df["id"]):
        exif = Image.Exif()
        exif[0x0112] = 6 + (k % 2) * 2  # orientation 6 or 8: a 90-degree turn
        Image.fromarray(images[k]).save(tmp_path / name, exif=exif)
    oriented = [np.asarray(decode(tmp_path / name)) for name in catalog.df["id"]]
    stored = np.asarray(decode(tmp_path / catalog.df["id"][0], orient=False))
    np.testing.assert_array_equal(stored, images[0])
    assert not np.array_equal(oriented[0], stored)
    norm = Normalizer().fit(catalog, workers=1, progress=False)
    assert_close(norm, two_pass(oriented, 255))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_catalog_of_jpegs_decoded_directly_has_the_moments_of_pillows_pixels(tmp_path, mode):
    """JPEGs reach the sums as the decoder's own arrays (no Pillow image): the moments are those
    of Pillow's decode of the same files, the first file of a chunk and the rest alike, with an
    EXIF-rotated file among them."""
    rng = np.random.default_rng(16)
    catalog = write_catalog(tmp_path, random_images(rng, 9, 3, np.uint8), extra_bad=False)
    for k, name in enumerate(catalog.df["id"]):
        im = Image.fromarray(random_images(rng, 1, 3, np.uint8)[0]).convert(mode)
        exif = Image.Exif()
        exif[0x0112] = 6 if k == 4 else 1
        im.save(tmp_path / name, "JPEG", quality=70 + k, exif=exif)
    pillow = []
    for name in catalog.df["id"]:
        with Image.open(tmp_path / name) as im:
            assert im.format == "JPEG" and im.mode == mode
            pillow.append(np.asarray(im))
    arrays = []
    real = moments.wb_io._pixels_scanned
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moments.wb_io, "_pixels_scanned", lambda *a, **k: arrays.append(real(*a, **k))
                   or arrays[-1])  # fmt: skip
        mp.setattr(moments, "_chunk_size", lambda n: 5)  # chunks of 5 and 4 files
        norm = Normalizer().fit(catalog, workers=1, progress=False)
    assert all(isinstance(a, np.ndarray) for a in arrays) and len(arrays) == 9
    assert_close(norm, two_pass(pillow, 255), rtol=1e-9)


@pytest.mark.parametrize(
    "first, odd",
    [
        (np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.uint8)),
        (np.zeros((4, 4), np.uint8), np.ones((4, 4, 3), np.uint8)),
        (np.zeros((4, 4), np.uint16), np.ones((4, 4), np.uint8)),
        (np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint16)),
    ],
    ids=["rgb-then-gray", "gray-then-rgb", "16bit-then-8bit", "8bit-then-16bit"],
)
def test_catalog_mixed_modes_names_the_file(tmp_path, first, odd):
    images = [first, first + 1, odd]  # the first image is counted apart from the later ones
    catalog = write_catalog(tmp_path, images, extra_bad=False)
    with pytest.raises(ParameterError, match=r"img_0002\.png.*convert"):
        Normalizer().fit(catalog, workers=1, progress=False)


def test_catalog_without_readable_images(tmp_path):
    catalog = FakeCatalog(tmp_path, [("a.png", str(tmp_path / "a.png"), "missing")])
    with pytest.raises(ParameterError, match="no readable images"):
        Normalizer().fit(catalog, progress=False)


def test_chunks_are_many_enough_for_the_pool():
    """From MIN_PARALLEL_ITEMS images on there are at least that many chunks, so a catalog fit
    with workers > 1 really runs in the pool; and no chunk is empty or over the cap."""
    from workbench.parallel import MIN_PARALLEL_ITEMS

    for n in [*range(1, 3000), 10_000, 123_457, 1_000_000]:
        size = moments._chunk_size(n)
        assert 1 <= size <= moments._MAX_CHUNK
        if n >= MIN_PARALLEL_ITEMS:
            assert -(-n // size) >= MIN_PARALLEL_ITEMS, n
    assert moments._chunk_size(5000) > 16  # large catalogs: big chunks, little overhead


def test_catalog_process_pool_matches_serial(tmp_path):
    rng = np.random.default_rng(14)
    images = random_images(rng, 140, 3, np.uint8)  # >= 128 images: one image per chunk
    catalog = write_catalog(tmp_path, images)
    serial = Normalizer().fit(catalog, workers=1, progress=False)
    pooled = Normalizer().fit(catalog, workers=2, progress=False)
    np.testing.assert_allclose(pooled.mean_, serial.mean_, rtol=1e-12)
    np.testing.assert_allclose(pooled.std_, serial.std_, rtol=1e-12)
    assert pooled.n_ == serial.n_
    assert_close(pooled, two_pass(images, 255))
    # An explicit executor whose children import everything afresh: the worker must pickle.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as ex:
        remote = Normalizer().fit(catalog, executor=ex, progress=False)
    np.testing.assert_allclose(remote.mean_, serial.mean_, rtol=1e-12)
    np.testing.assert_allclose(remote.std_, serial.std_, rtol=1e-12)


def test_the_fit_sums_with_opencv_on_one_thread_and_gives_its_threads_back():
    import cv2

    from workbench._moments import _opencv_on_one_thread

    before = cv2.getNumThreads()
    with _opencv_on_one_thread():
        assert cv2.getNumThreads() == 1  # its pool would spin a second core beside the decode
    assert cv2.getNumThreads() == before

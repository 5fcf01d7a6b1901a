import io

import numpy as np
import pytest
from corpus import bomb_png, encode, make_corpus
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from workbench.errors import DecodeError, WorkbenchError
from workbench.io import decode, normalize_mode, probe


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


def test_every_bad_file_gets_its_status_and_a_reason(corpus):
    root, expect = corpus
    for rel, status in expect.items():
        if status == "ok":
            p = probe(root / rel)
            assert p.width > 0 and len(p.hash) == 32, rel
            continue
        with pytest.raises(DecodeError) as e:
            probe(root / rel)
        assert e.value.status == status, (rel, str(e.value))
        assert len(str(e.value)) > 10 and "Traceback" not in str(e.value)
        assert isinstance(e.value, WorkbenchError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DecodeError, match="not found") as e:
        decode(tmp_path / "nope.png")
    assert e.value.status == "missing"
    with pytest.raises(DecodeError, match="folder"):
        decode(tmp_path)


def test_exif_orientation_is_applied(corpus):
    root, _ = corpus
    p = probe(root / "good/exif_rotated.jpg")
    assert (p.width, p.height) == (30, 40)  # stored 40×30, displayed rotated
    assert decode(root / "good/exif_rotated.jpg").size == (30, 40)


@pytest.mark.parametrize(
    ("name", "mode", "mode16"),
    [
        ("good/cmyk.jpg", "RGB", "RGB"),
        ("good/palette_transparent.png", "RGB", "RGB"),
        ("good/gray_alpha.png", "L", "L"),
        ("good/rgba.png", "RGB", "RGB"),
        ("good/sixteen.png", "L", "I;16"),
        ("good/sixteen.tif", "L", "I;16"),
        ("good/anim.gif", "RGB", "RGB"),
        ("good/plain.webp", "RGB", "RGB"),
    ],
)
def test_modes_are_normalised(corpus, name, mode, mode16):
    root, _ = corpus
    assert decode(root / name).mode == mode
    assert decode(root / name, keep_16bit=True).mode == mode16


def test_sixteen_bit_values_survive_when_asked(corpus):
    root, _ = corpus
    a16 = np.asarray(decode(root / "good/sixteen.png", keep_16bit=True))
    expected = (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16)
    assert a16.dtype == np.uint16
    np.testing.assert_array_equal(a16, expected)
    a8 = np.asarray(decode(root / "good/sixteen.png"))
    np.testing.assert_array_equal(a8, (expected >> 8).astype(np.uint8))
    assert probe(root / "good/sixteen.png").bits == 16


def test_transparency_is_composited_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert normalize_mode(im).getpixel((0, 0)) == (255, 255, 255)
    assert normalize_mode(im, background=(0, 0, 0)).getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16bit_and_int_modes(mode):
    """16-bit data stays exact with keep_16bit (clipped to 0..65535 for 32-bit ``I``) and is
    reduced by its high byte otherwise, whatever the byte order."""
    values = np.array([[0, 1, 255, 256], [1234, 40000, 65535, 65535]], dtype=np.int64)
    if mode == "I":
        values[0, 0], values[1, 3] = -5, 70000  # out of the 16-bit range: clipped
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
    im = Image.frombytes(mode, (4, 2), values.astype(dtype).tobytes())
    expected = np.clip(values, 0, 65535)
    kept = normalize_mode(im, keep_16bit=True)
    assert kept.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(kept), expected)
    reduced = normalize_mode(im)
    assert reduced.mode == "L"
    np.testing.assert_array_equal(np.asarray(reduced), expected >> 8)


def test_pixel_limit_is_configurable(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(encode(Image.new("L", (100, 100)), "PNG"))
    with pytest.raises(DecodeError, match="over the limit") as e:
        decode(p, max_pixels=5_000)
    assert e.value.status == "too_large"
    assert decode(p, max_pixels=None).size == (100, 100)
    b = tmp_path / "bomb.png"
    b.write_bytes(bomb_png())
    with pytest.raises(DecodeError) as e:
        probe(b)
    assert e.value.status == "too_large"


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(1, 64),
    h=st.integers(1, 64),
    mode=st.sampled_from(["L", "RGB"]),
    seed=st.integers(0, 2**31),
    fmt=st.sampled_from(["PNG", "BMP", "TIFF", "WEBP"]),
)
def test_hash_depends_on_pixels_not_on_lossless_format(tmp_path_factory, w, h, mode, seed, fmt):
    rng = np.random.default_rng(seed)
    shape = (h, w) if mode == "L" else (h, w, 3)
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    d = tmp_path_factory.mktemp("h")
    kw = {"lossless": True} if fmt == "WEBP" else {}
    (d / "a.png").write_bytes(encode(im, "PNG"))
    (d / "b.img").write_bytes(encode(im, fmt, **kw))
    pa, pb = probe(d / "a.png"), probe(d / "b.img")
    assert (pb.width, pb.height) == (w, h)
    if fmt != "WEBP":  # lossless WebP stores gray as RGB
        assert pa.hash == pb.hash
    np.testing.assert_array_equal(np.asarray(decode(d / "b.img").convert(mode)), np.asarray(im))
    a = np.asarray(im).copy()
    a.flat[0] ^= 1
    (d / "c.png").write_bytes(encode(Image.fromarray(a), "PNG"))
    assert probe(d / "c.png").hash != pa.hash


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=0, max_size=300), cut=st.integers(8, 2000))
def test_random_bytes_never_crash(tmp_path_factory, data, cut):
    d = tmp_path_factory.mktemp("fuzz")
    png = encode(Image.new("RGB", (30, 30), (10, 20, 30)), "PNG")
    for name, payload in (("r.png", data), ("t.png", png[:cut] + data)):
        (d / name).write_bytes(payload)
        try:
            p = probe(d / name)
            assert p.width > 0
        except DecodeError as e:
            assert e.status in {"empty", "not_image", "corrupt", "too_large"}


def test_decode_is_pure_pillow_compatible(tmp_path):
    im = Image.new("RGB", (7, 5), (1, 2, 3))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    (tmp_path / "x.png").write_bytes(buf.getvalue())
    assert decode(tmp_path / "x.png").tobytes() == im.tobytes()

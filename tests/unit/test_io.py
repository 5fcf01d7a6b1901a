import io
import os

import numpy as np
import pytest
from corpus import bomb_png, encode, make_corpus
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from workbench.errors import DecodeError, WorkbenchError
from workbench.io import _pixel_hash, decode, normalize_mode, probe


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


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])  # both also decoded without Pillow
def test_pixel_limit_is_configurable(tmp_path, monkeypatch, fmt):
    p = tmp_path / f"big.{fmt.lower()}"
    p.write_bytes(encode(Image.new("L", (100, 100)), fmt))
    for read in (decode, probe, lambda p, **kw: probe(p, perceptual_hash=True, **kw)):
        with pytest.raises(DecodeError, match="over the limit") as e:
            read(p, max_pixels=5_000)
        assert e.value.status == "too_large"
    assert decode(p, max_pixels=None).size == (100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000)  # Pillow's own limit holds too
    with pytest.raises(DecodeError) as e:
        probe(p, max_pixels=None)
    assert e.value.status == "too_large"
    monkeypatch.undo()
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


# Stored pixels -> displayed pixels for each EXIF orientation (the TIFF/EXIF specification):
# 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
# 8 rotate 90 counter-clockwise.
_ORIENTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_every_exif_orientation_gives_the_pixels_a_person_sees(tmp_path, orientation, fmt):
    """Compared pixel for pixel with Pillow's own ``exif_transpose`` and with the specification's
    transform of the stored pixels, on an image with no symmetry (a size check alone would pass
    a rotation the wrong way)."""
    from PIL import ImageOps

    stored = np.random.default_rng(orientation).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    stored[:5, :8] = (255, 0, 0)  # a marker in one corner: any wrong turn moves it
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.{fmt.lower()}"
    kw = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    p.write_bytes(encode(Image.fromarray(stored), fmt, exif=exif.tobytes(), **kw))
    with Image.open(p) as raw:
        reference = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))
        as_stored = np.asarray(raw.convert("RGB"))
    got = np.asarray(decode(p))
    np.testing.assert_array_equal(got, reference)
    np.testing.assert_array_equal(got, _ORIENTED[orientation](as_stored))
    np.testing.assert_array_equal(np.asarray(decode(p, orient=False)), as_stored)
    pr = probe(p)
    assert (pr.width, pr.height) == (got.shape[1], got.shape[0])
    assert pr.hash == _pixel_hash(Image.fromarray(got))  # the scan hashes what a person sees


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_orientation_from_xmp_alone_is_applied(tmp_path, fmt):
    """An orientation stored only in an XMP block (no EXIF) is applied as Pillow's
    exif_transpose applies it: the scan's short cut for files without EXIF must not skip it."""
    from PIL import ImageOps

    stored = np.random.default_rng(6).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    p = tmp_path / f"xmp.{fmt.lower()}"
    if fmt == "JPEG":
        kw = {"quality": 100, "subsampling": 0, "xmp": xmp}
    else:  # PNG keeps XMP in an iTXt chunk, read back as info["XML:com.adobe.xmp"]
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode())
        kw = {"pnginfo": info}
    Image.fromarray(stored).save(p, fmt, **kw)
    with Image.open(p) as raw:
        assert "exif" not in raw.info
        reference = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))
    assert reference.shape[:2] == (40, 30)  # Pillow does read the XMP orientation
    np.testing.assert_array_equal(np.asarray(decode(p)), reference)
    assert (probe(p).width, probe(p).height) == (30, 40)


def test_float_images_are_stretched_to_8_bit_or_kept(tmp_path):
    """Mode ``F`` (32-bit float TIFF, e.g. a depth map): min-max stretched to ``L``, NaN as the
    minimum; kept exactly with ``keep_16bit``; a flat image becomes black, not a division error."""
    a = np.array([[-2.5, 0.0, 1.0, 7.5], [3.0, np.nan, -1.0, 2.0]], dtype=np.float32)
    p = tmp_path / "depth.tif"
    Image.fromarray(a).save(p)
    pr = probe(p)
    assert (pr.mode, pr.bits, pr.width, pr.height) == ("F", 32, 4, 2)
    lo, hi = -2.5, 7.5
    expected = np.nan_to_num((a.astype(np.float64) - lo) / (hi - lo) * 255.0).round()
    got = decode(p)
    assert got.mode == "L"
    np.testing.assert_array_equal(np.asarray(got), expected.astype(np.uint8))
    assert np.asarray(got)[0, 0] == 0 and np.asarray(got)[0, 3] == 255
    kept = decode(p, keep_16bit=True)
    assert kept.mode == "F"
    np.testing.assert_array_equal(np.asarray(kept), a)
    flat = tmp_path / "flat.tif"
    Image.fromarray(np.full((3, 5), 4.25, np.float32)).save(flat)
    np.testing.assert_array_equal(np.asarray(decode(flat)), np.zeros((3, 5), np.uint8))


def test_a_file_that_vanishes_after_the_scan_is_a_clear_decode_error(tmp_path):
    p = tmp_path / "gone.png"
    p.write_bytes(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG"))
    assert probe(p).width == 8
    p.unlink()
    for read in (decode, probe):
        with pytest.raises(DecodeError, match="not found") as e:
            read(p)
        assert e.value.status == "missing" and isinstance(e.value, WorkbenchError)


def test_decode_error_keeps_its_status_across_processes():
    import pickle

    from workbench.errors import DecodeError

    back = pickle.loads(pickle.dumps(DecodeError("gone: re-scan", status="missing")))
    assert isinstance(back, DecodeError) and back.status == "missing"
    assert str(back) == "gone: re-scan"


def test_scan_row_holds_what_probe_reports(corpus):
    # The scan builds its row without a Probe object: field for field it must say the same.
    from workbench.hashindex import perceptual_hashes
    from workbench.io import scan_file

    ok = [p for p in sorted(corpus[0].glob("**/*")) if p.is_file()]
    checked = 0
    for p in ok:
        try:
            pr = probe(p)
        except DecodeError:
            continue
        row = scan_file(str(p), perceptual_hash=True)
        fields = (pr.width, pr.height, pr.mode, pr.channels, pr.bits, pr.bytes, pr.hash, pr.format)
        assert row[:10] == (*fields, "ok", "")
        assert row[10:] == perceptual_hashes(decode(p))
        checked += 1
    assert checked >= 5


def test_pillows_bomb_warning_is_ours_to_decide_per_file_and_per_batch(tmp_path, monkeypatch):
    """Over Pillow's process-wide pixel threshold but inside our ``max_pixels``: no warning
    escapes, per file or inside one batch context, and the warning filters are as before."""
    import warnings

    from workbench.catalog import scan_paths
    from workbench.io import quiet_bomb_warnings

    path = tmp_path / "big.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,200 pixels: Pillow would warn
    before = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escapes fails the test
        assert decode(path, max_pixels=None).size == (40, 30)
        with quiet_bomb_warnings():
            assert decode(path, max_pixels=None).size == (40, 30)
        assert list(scan_paths([str(path)] * 3, workers=1, progress=False)["status"]) == ["ok"] * 3
    assert warnings.filters == before
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's own open still warns
        Image.open(path)


def test_a_pipe_or_a_device_named_like_an_image_is_refused_at_once(tmp_path):
    """Opened without blocking (a pipe with no writer would hang a plain open), then refused."""
    import os
    import threading

    os.mkfifo(tmp_path / "pipe.png")
    os.symlink("/dev/zero", tmp_path / "zero.png")  # endless bytes: must never be read
    errors: dict[str, DecodeError] = {}

    def read_all() -> None:
        for name in ("pipe.png", "zero.png"):
            try:
                decode(tmp_path / name)
            except DecodeError as e:
                errors[name] = e

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "decode blocked on a special file"
    for name in ("pipe.png", "zero.png"):
        assert errors[name].status == "unreadable"
        assert "special file" in str(errors[name])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: no permission to deny")
def test_a_file_this_user_cannot_read_is_unreadable_with_the_reason(tmp_path):
    p = tmp_path / "secret.png"
    p.write_bytes(encode(Image.new("L", (4, 4)), "PNG"))
    p.chmod(0)
    with pytest.raises(DecodeError, match="permission denied") as e:
        decode(p)
    assert e.value.status == "unreadable"


def test_small_files_read_into_memory_decode_as_large_files_opened_by_path(corpus, monkeypatch):
    """Files up to ``_READ_WHOLE_UP_TO`` bytes are read in one call and decoded from memory,
    larger ones are opened by path: the same pixels, hash, format and status either way (the
    limit lowered to 0 sends every file of the corpus, all formats and faults, by path)."""
    import workbench.io as wio

    root, expect = corpus
    in_memory = {}
    for rel in expect:
        try:
            pr = probe(root / rel)
            in_memory[rel] = (pr, np.asarray(decode(root / rel)))
        except DecodeError as e:
            in_memory[rel] = e.status
    frames = root / "frames.gif"  # multi-frame: the first frame, from memory as from the path
    first, second = Image.new("P", (6, 4), 1), Image.new("P", (6, 4), 2)
    first.save(frames, save_all=True, append_images=[second])
    in_memory["frames.gif"] = (probe(frames), np.asarray(decode(frames)))
    assert sum(not isinstance(v, str) for v in in_memory.values()) >= 5
    monkeypatch.setattr(wio, "_READ_WHOLE_UP_TO", 0)
    for rel, before in in_memory.items():
        try:
            pr = probe(root / rel)
            after = (pr, np.asarray(decode(root / rel)))
        except DecodeError as e:
            assert e.status == before, rel
            continue
        assert not isinstance(before, str), rel
        assert after[0] == before[0], rel
        np.testing.assert_array_equal(after[1], before[1], err_msg=rel)


def _jpeg_kinds() -> dict[str, bytes]:
    """JPEGs of every layout a camera, a library or a web pipeline writes."""
    import simplejpeg

    rng = np.random.default_rng(7)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 9, 3), np.uint8)).resize((45, 31)))
    rgb = np.clip(smooth.astype(int) + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)
    pil = Image.fromarray(rgb)
    kinds = {f"subsampling {s}": encode(pil, "JPEG", subsampling=s) for s in (0, 1, 2)}
    for s in ("440", "411"):  # layouts Pillow does not write
        kinds[f"subsampling {s}"] = simplejpeg.encode_jpeg(rgb, 85, "RGB", s)
    kinds |= {
        "progressive": encode(pil, "JPEG", progressive=True, quality=80),
        "optimized": encode(pil, "JPEG", optimize=True, quality=100),
        "quality 5": encode(pil, "JPEG", quality=5),
        "restart markers": encode(pil, "JPEG", restart_marker_blocks=3),
        "gray": encode(pil.convert("L"), "JPEG"),
        "gray progressive": encode(pil.convert("L"), "JPEG", progressive=True),
        "one pixel": encode(pil.resize((1, 1)), "JPEG"),
        "tall 4:2:0": encode(pil.resize((17, 300)), "JPEG", subsampling=2),
    }
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the array must be transposed after the direct decode too
    kinds["exif rotated"] = encode(pil, "JPEG", exif=exif.tobytes())
    exif[0x0112] = 1  # an EXIF block, nothing to rotate
    kinds["exif upright"] = encode(pil, "JPEG", exif=exif.tobytes())
    for o in (2, 3, 4, 5, 7, 8):  # every other turn and mirror
        exif[0x0112] = o
        kinds[f"exif orientation {o}"] = encode(pil.convert("L" if o == 3 else "RGB"), "JPEG",
                                                exif=exif.tobytes())  # fmt: skip
    return kinds


@pytest.mark.parametrize("large", [False, True])
def test_jpegs_decoded_directly_give_pillows_pixels_hash_and_fields(tmp_path, monkeypatch, large):
    """JPEGs (RGB and gray) are decoded by libjpeg-turbo into one array instead of through
    Pillow's decoder, plain ones without Pillow's header parse either: the same pixels, content
    hash and fields as Pillow gives, for every layout (the direct decode switched off for the
    reference). A file with EXIF (a possible rotation) or several pictures is not plain; the
    scan takes the array of an upright one all the same. ``large``: every file over the limit
    of what is read into memory, as a camera JPEG is: the scan still reads and decodes it
    directly, ``decode`` leaves it to Pillow."""
    import workbench.io as wio

    if large:
        monkeypatch.setattr(wio, "_READ_WHOLE_UP_TO", 0)
    calls = []
    real = wio._decode_jpeg
    monkeypatch.setattr(wio, "_decode_jpeg", lambda d, c: calls.append(c) or real(d, c))
    kinds = _jpeg_kinds()
    second = Image.new("RGB", (45, 31), (200, 10, 10))
    pictures = io.BytesIO()
    Image.open(io.BytesIO(kinds["subsampling 2"])).save(
        pictures, "MPO", save_all=True, append_images=[second]
    )
    kinds["multi-picture"] = pictures.getvalue()
    got = {}
    for name, data in kinds.items():
        p = tmp_path / f"{name}.jpg"
        p.write_bytes(data)
        calls.clear()
        got[name] = (probe(p), probe(p, perceptual_hash=True))
        assert len(calls) == (0 if name == "multi-picture" else 2), name
        got[name] += (np.asarray(decode(p)), decode(p).size)
        assert len(calls) == (0 if name == "multi-picture" else 2 if large else 4), name
        plain = isinstance(wio._open_sized(str(p), None, plain=True)[0], wio._PlainFile)
        assert plain == (not name.startswith("exif") and name != "multi-picture"), name
    monkeypatch.setattr(wio, "_decode_jpeg", lambda d, c: None)  # Pillow decodes every file
    for name, (pr, prh, pixels, _) in got.items():
        p = tmp_path / f"{name}.jpg"
        assert probe(p) == pr, name
        assert probe(p, perceptual_hash=True) == prh, name
        np.testing.assert_array_equal(np.asarray(decode(p)), pixels, err_msg=name)
    assert got["exif rotated"][3] == (31, 45) and got["exif upright"][3] == (45, 31)
    assert got["multi-picture"][0].format == "MPO"
    assert got["gray"][0].mode == "L" and got["gray"][2].ndim == 2


def test_a_jpeg_libjpeg_warns_about_keeps_pillows_pixels_or_verdict(tmp_path):
    """A JPEG with damaged entropy-coded data makes libjpeg warn: the direct decode gives way
    to Pillow's, so the pixels (or the status and message) are the ones Pillow gives."""
    import simplejpeg

    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)
    data = bytearray(encode(Image.fromarray(noise), "JPEG"))
    start = data.index(b"\xff\xda") + 40  # into the scan's entropy-coded bytes
    data[start : start + 6] = b"\xff\xd0\x00\x13\x37\x42"  # a stray restart marker, junk
    with pytest.raises(ValueError, match="Corrupt JPEG data"):  # libjpeg warns: the fallback
        simplejpeg.decode_jpeg(bytes(data))
    p = tmp_path / "damaged.jpg"
    p.write_bytes(bytes(data))
    with Image.open(io.BytesIO(bytes(data))) as reference:
        reference.load()
        np.testing.assert_array_equal(np.asarray(decode(p)), np.asarray(reference))
        assert probe(p).hash == _pixel_hash(reference)
    jpg = encode(Image.fromarray(np.resize(noise, (150, 200, 3))), "JPEG", quality=95)
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(jpg[: len(jpg) // 2])
    with pytest.raises(DecodeError, match="truncated") as e:
        decode(truncated)
    assert e.value.status == "corrupt"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    import zlib

    return (
        len(payload).to_bytes(4, "big")
        + kind
        + payload
        + zlib.crc32(kind + payload).to_bytes(4, "big")
    )


def _filtered(rows: np.ndarray, kind: int, bpp: int) -> np.ndarray:
    """PNG filter ``kind`` (0 none, 1 sub, 2 up, 3 average, 4 Paeth) of every row of ``rows``
    (height x bytes), each against the row above it (zeros above the first)."""
    r = rows.astype(np.int32)
    up = np.vstack([np.zeros_like(r[:1]), r[:-1]])
    left = np.hstack([np.zeros_like(r[:, :bpp]), r[:, :-bpp]])
    up_left = np.hstack([np.zeros_like(up[:, :bpp]), up[:, :-bpp]])
    if kind == 0:
        pred = np.zeros_like(r)
    elif kind == 1:
        pred = left
    elif kind == 2:
        pred = up
    elif kind == 3:
        pred = (left + up) // 2
    else:
        p = left + up - up_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
        pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    return ((r - pred) % 256).astype(np.uint8)


def _png(a: np.ndarray, filters=(0,), interlace: bool = False, before=(), after=(),
         depth: int = 8) -> bytes:  # fmt: skip
    """A PNG of ``a`` (h x w gray or h x w x 3), written by hand: the filter of row i is
    ``filters[i % len(filters)]``, Adam7 interlacing on request, extra chunks before and after
    the pixel data."""
    import zlib

    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else 3
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]  # fmt: skip
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        v = sub.astype(">u2") if depth == 16 else sub
        rows = np.frombuffer(v.tobytes(), np.uint8).reshape(sub.shape[0], -1)
        for i in range(len(rows)):
            f = filters[i % len(filters)]
            line = _filtered(rows, f, c * depth // 8)[i]
            raw += bytes([f]) + line.tobytes()
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([depth, 0 if c == 1 else 2, 0, 0,
                                                                int(interlace)])  # fmt: skip
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + b"".join(before)
            + _png_chunk(b"IDAT", zlib.compress(raw)) + b"".join(after)
            + _png_chunk(b"IEND", b""))  # fmt: skip


def test_pngs_decoded_directly_give_pillows_pixels_hash_and_fields(tmp_path, monkeypatch):
    """8-bit RGB and gray PNGs are decoded by libspng into one array instead of by Pillow (the
    scan without Pillow's header parse either): the same pixels, content hash and fields as
    Pillow gives (the direct decode switched off for the
    reference), for every row filter, interlacing and the chunks that cannot change Pillow's
    result. A PNG with transparency, an EXIF block (before or after the pixels), text, another
    bit depth or colour type, a malformed chunk list or damaged pixel data goes to Pillow."""
    import workbench.io as wio

    rng = np.random.default_rng(3)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (5, 7, 3), np.uint8)).resize((37, 23)))
    rgb = np.clip(smooth.astype(int) + rng.integers(-9, 10, smooth.shape), 0, 255).astype(np.uint8)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    exif = Image.Exif()
    exif[0x0112] = 6
    plain_chunks = [
        _png_chunk(b"sRGB", b"\x00"), _png_chunk(b"gAMA", (45455).to_bytes(4, "big")),
        _png_chunk(b"cHRM", bytes(32)), _png_chunk(b"pHYs", bytes(8) + b"\x01"),
        _png_chunk(b"sBIT", b"\x08\x08\x08"), _png_chunk(b"tIME", b"\x07\xe9\x01\x02\x03\x04\x05"),
    ]  # fmt: skip
    direct = {}
    for name, a in (("rgb", rgb), ("gray", gray)):
        for f in range(5):
            direct[f"{name} filter {f}"] = _png(a, (f,))
        direct[f"{name} mixed filters"] = _png(a, (0, 1, 2, 3, 4, 4, 3))
        direct[f"{name} interlaced"] = _png(a, (4, 1), interlace=True)
    direct["rgb 1 pixel"] = _png(rgb[:1, :1], (4,))
    direct["rgb plain chunks"] = _png(rgb, (4,), before=plain_chunks)
    direct["rgb written by Pillow"] = encode(Image.fromarray(rgb), "PNG", optimize=True)
    direct["rgb with an icc profile"] = encode(Image.fromarray(rgb), "PNG",
                                               icc_profile=b"\x00" * 128)  # fmt: skip
    pillow = {
        "gray transparent": _png(gray, before=[_png_chunk(b"tRNS", b"\x00\x07")]),
        "rgb exif before": _png(rgb, before=[_png_chunk(b"eXIf", exif.tobytes()[6:])]),
        "rgb exif after": _png(rgb, after=[_png_chunk(b"eXIf", exif.tobytes()[6:])]),
        "rgb text": _png(rgb, after=[_png_chunk(b"tEXt", b"Comment\x00hello")]),
        "rgb 16 bit": _png(rgb.astype(np.uint16) * 257 + 3, depth=16),
        "palette": encode(Image.fromarray(rgb).quantize(16), "PNG"),
        "rgba": encode(Image.fromarray(np.dstack([rgb, gray])), "PNG"),
        "no end chunk": _png(rgb)[:-12],
    }
    raw = bytearray(_png(rgb, (2,)))
    at = raw.index(b"IDAT") + 30
    raw[at : at + 4] = b"\x00\xff\x00\xff"  # damaged deflate data: libspng refuses it
    pillow["damaged pixel data"] = bytes(raw)
    used = []
    real = wio._decode_png
    monkeypatch.setattr(wio, "_decode_png", lambda d: used.append((a := real(d)) is not None) or a)
    got = {}
    for name, data in (direct | pillow).items():
        p = tmp_path / f"{name}.png"
        p.write_bytes(data)
        used.clear()
        try:
            got[name] = (probe(p), probe(p, perceptual_hash=True), np.asarray(decode(p)))
        except DecodeError as e:
            got[name] = e.status
        assert any(used) == (name in direct), name
        if not isinstance(got[name], str):  # the scan skips Pillow's header parse too
            plain = isinstance(wio._open_sized(str(p), None, plain=True)[0], wio._PlainFile)
            assert plain == (name in direct), name
    monkeypatch.setattr(wio, "_decode_png", lambda d: None)  # Pillow decodes every file
    for name, before in got.items():
        p = tmp_path / f"{name}.png"
        try:
            after = (probe(p), probe(p, perceptual_hash=True), np.asarray(decode(p)))
        except DecodeError as e:
            assert e.status == before, name
            continue
        assert after[:2] == before[:2], name
        np.testing.assert_array_equal(after[2], before[2], err_msg=name)
    assert got["rgb exif after"][0].width == 23  # turned: the orientation after the pixels
    assert got["gray filter 4"][0].mode == "L" and got["rgb filter 4"][0].format == "PNG"
    assert isinstance(got["damaged pixel data"], str) or got["damaged pixel data"][2].shape

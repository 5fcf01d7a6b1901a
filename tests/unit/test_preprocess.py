from pathlib import Path

import numpy as np
import pytest
from corpus import encode
from PIL import Image

from workbench import Catalog, Workspace
from workbench.errors import ParameterError
from workbench.preprocess import Preprocessor


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(3):
            im = Image.fromarray(rng.integers(0, 256, (40 + i, 60, 3), dtype=np.uint8))
            (root / cls / f"{i}.jpg").write_bytes(encode(im, "JPEG"))
    a16 = (np.linspace(1000, 3000, 30 * 20).reshape(20, 30)).astype(np.uint16)
    (root / "a" / "sixteen.png").write_bytes(encode(Image.fromarray(a16), "PNG"))
    return root


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [("keep", 32, (32, 20)), ("pad", [32, 32], (32, 32)), ("crop", [16, 24], (16, 24)),
     ("stretch", [10, 50], (10, 50))],
)  # fmt: skip
def test_resize_modes(mode, size, expected):
    im = Image.new("RGB", (80, 50), (10, 200, 30))
    out = Preprocessor().add("resize", size=size, mode=mode).apply(im)
    assert out.size == expected


def test_denoise_brings_a_noisy_image_closer_to_the_clean_one():
    clean = np.tile(np.linspace(0, 255, 64), (64, 1)).astype(np.uint8)
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    err = lambda a: float(np.abs(np.asarray(a, float) - clean).mean())  # noqa: E731
    for method, strength in [("median", 2), ("gaussian", 1.5), ("nl_means", 1.0), ("tv", 0.1)]:
        out = (
            Preprocessor()
            .add("denoise", method=method, strength=strength)
            .apply(Image.fromarray(noisy))
        )
        assert err(out) < 0.8 * err(noisy), method


def test_stretch_maps_16_bit_percentiles_to_8_bit(folder):
    from workbench.io import decode

    im = decode(folder / "a" / "sixteen.png", keep_16bit=True)
    out = np.asarray(Preprocessor().add("stretch", low=0, high=100).apply(im))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_bad_parameters_name_step_and_parameter():
    with pytest.raises(ParameterError, match=r"step 0 \(resize\).*'mode'"):
        Preprocessor().add("resize", mode="zoom")
    with pytest.raises(ParameterError, match=r"step 1 \(denoise\).*strength"):
        Preprocessor().add("convert", mode="L").add("denoise", strength=0)
    with pytest.raises(ParameterError, match="unknown step"):
        Preprocessor().add("sharpen")
    with pytest.raises(ParameterError, match="unknown parameter"):
        Preprocessor().add("stretch", lo=1)
    with pytest.raises(ParameterError, match="low < high"):
        Preprocessor().add("stretch", low=50, high=10)


def test_run_writes_new_folder_keeps_labels_and_reapplies(folder, tmp_path):
    cat = Catalog.from_folder(folder, progress=False)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    pre = Preprocessor().add("convert", mode="L").add("resize", size=[16, 16], mode="pad")
    out = pre.run(cat, tmp_path / "out", progress=False)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # untouched
    assert len(out) == len(cat) and (out.df["status"] == "ok").all()
    assert set(out.df["width"]) == {16} and set(out.df["mode"]) == {"L"}
    assert (
        out.df.set_index("source_id")["label"].to_dict()
        == cat.df.set_index("id")["label"].to_dict()
    )
    ws = Workspace(tmp_path / "ws")
    pre.save(ws)
    again = Preprocessor.load(ws)
    assert again.to_json() == pre.to_json()
    src = cat.image("a/0.jpg")
    assert again.apply(src).tobytes() == pre.apply(src).tobytes()
    with pytest.raises(ParameterError, match="overlaps the dataset root"):
        pre.run(cat, folder / "inside", progress=False)
    with pytest.raises(ParameterError, match="overlaps"):
        pre.run(cat, folder, progress=False)


def _bands(widths, colours, height=50) -> Image.Image:
    """Vertical colour bands left to right (``widths`` px each)."""
    cols = [
        np.broadcast_to(np.array(c, np.uint8), (height, w, 3))
        for w, c in zip(widths, colours, strict=True)
    ]
    return Image.fromarray(np.concatenate(cols, axis=1))


RED, GREEN, BLUE = (200, 0, 0), (0, 180, 0), (0, 0, 220)


@pytest.mark.parametrize("image_mode", ["RGB", "L"])
def test_pad_centres_the_content_on_the_fill_colour(image_mode):
    """80×50 into 32×32: the content becomes 32×20, centred (6 rows of fill above, 6 below)."""
    im = Image.new("RGB", (80, 50), GREEN).convert(image_mode)
    pre = Preprocessor().add("resize", size=[32, 32], mode="pad", fill=7, resample="nearest")
    out = np.asarray(pre.apply(im))
    content = np.asarray(im)[0, 0]
    assert out.shape[:2] == (32, 32)
    assert (out[:6] == 7).all() and (out[26:] == 7).all()
    assert (out[6:26] == content).all()
    tall = np.asarray(pre.apply(im.rotate(90, expand=True)))  # 50×80: fill left and right
    assert (tall[:, :6] == 7).all() and (tall[:, 26:] == 7).all()
    assert (tall[:, 6:26] == content).all()


def test_pad_with_lanczos_keeps_the_fill_exact_outside_the_content():
    out = np.asarray(
        Preprocessor().add("resize", size=[32, 32], mode="pad", fill=255)
        .apply(Image.new("RGB", (80, 50), BLUE))
    )  # fmt: skip
    assert (out[:6] == 255).all() and (out[26:] == 255).all()
    assert np.abs(out[8:24].astype(int) - BLUE).max() <= 1


def test_crop_keeps_the_centre():
    """80×50 cropped to the 16:24 aspect keeps the middle 33 columns: all of the green band."""
    im = _bands([23, 34, 23], [RED, GREEN, BLUE])
    out = np.asarray(
        Preprocessor().add("resize", size=[16, 24], mode="crop", resample="nearest").apply(im)
    )
    assert out.shape == (24, 16, 3) and (out == GREEN).all()
    wide = np.asarray(  # 50×80 to a 4:1 strip: the middle rows
        Preprocessor().add("resize", size=[40, 10], mode="crop", resample="nearest")
        .apply(im.rotate(90, expand=True))
    )  # fmt: skip
    assert wide.shape == (10, 40, 3) and (wide == GREEN).all()


@pytest.mark.parametrize(("low", "high"), [(0, 100), (2, 98), (10, 60)])
@pytest.mark.parametrize("kind", ["16-bit gray", "8-bit RGB"])
def test_stretch_content_matches_a_numpy_reference(low, high, kind):
    """Percentiles of all pixel values (every channel together) map to 0 and 255, linearly in
    between, clipped outside, rounded."""
    rng = np.random.default_rng(low * 100 + high)
    if kind == "16-bit gray":
        a = rng.normal(20000, 4000, (30, 40)).clip(0, 65535).astype(np.uint16)
        im = Image.fromarray(a)
    else:
        a = rng.integers(30, 200, (30, 40, 3), dtype=np.uint8)
        im = Image.fromarray(a)
    lo, hi = np.percentile(a.astype(np.float64), [low, high])
    expected = np.round(np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    out = Preprocessor().add("stretch", low=low, high=high).apply(im)
    assert out.mode == ("L" if a.ndim == 2 else "RGB")
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_a_file_that_vanished_after_the_scan_is_named_in_a_clear_error(folder, tmp_path):
    import shutil

    from workbench.errors import DecodeError

    root = tmp_path / "data"
    shutil.copytree(folder, root)
    cat = Catalog.from_folder(root, progress=False)
    (root / "b" / "1.jpg").unlink()
    with pytest.raises(DecodeError, match=r"b/1\.jpg.*re-scan") as e:
        Preprocessor().add("resize", size=8).run(cat, tmp_path / "out", progress=False, workers=1)
    assert e.value.status == "missing" and "Traceback" not in str(e.value)


def test_save_and_load_go_through_the_workspace(tmp_path):
    from workbench.errors import WorkbenchError

    ws = Workspace(tmp_path / "ws")
    with pytest.raises(WorkbenchError, match="not in workspace"):
        Preprocessor.load(ws)
    pre = Preprocessor().add("stretch", low=2, high=98).add("resize", size=[8, 8], mode="crop")
    assert pre.save(ws) == ws.file("preprocess") and ws.has("preprocess")
    assert Preprocessor.load(ws).to_json() == ws.load("preprocess").to_json() == pre.to_json()


@pytest.mark.parametrize(
    ("step", "params", "message"),
    [
        ("resize", {"size": True}, r"'size' must be a positive int or \[w, h\], got True"),
        ("resize", {"size": 2.5}, r"'size' must be a positive int or \[w, h\], got 2.5"),
        ("resize", {"size": [8, 0]}, r"'size' must be a positive int"),
        ("resize", {"fill": 256}, r"'fill' must be an integer from 0 to 255, got 256"),
        ("resize", {"fill": 1.5}, r"'fill' must be an integer"),
        ("resize", {"resample": "cubic"}, r"'resample' must be one of 'lanczos', 'bilinear'"),
        ("convert", {"mode": "CMYK"}, r"'mode' must be either 'L' or 'RGB', got 'CMYK'"),
        ("denoise", {"method": "bm3d"}, r"'method' must be one of 'median', 'gaussian'"),
        ("denoise", {"strength": float("nan")}, r"'strength' must be a finite number > 0"),
        ("stretch", {"high": 101}, r"'high' must be a finite number in \[0, 100\], got 101"),
        ("stretch", {"low": "1"}, r"'low' must be a finite number in \[0, 100\], got '1'"),
    ],
)
def test_parameter_messages_say_what_is_accepted(step, params, message):
    with pytest.raises(ParameterError, match=rf"^step 0 \({step}\): parameter {message}"):
        Preprocessor().add(step, **params)


def test_numpy_sizes_are_taken_as_plain_ints():
    pre = Preprocessor().add("resize", size=np.int64(16)).add("resize", size=(np.int32(8), 4))
    assert [s["params"]["size"] for s in pre.steps] == [16, [8, 4]]
    assert Preprocessor.from_json(pre.to_json()).to_json() == pre.to_json()
    assert pre.apply(Image.new("RGB", (32, 16))).size == (8, 4)


def test_output_names_follow_the_one_sample_file_scheme(tmp_path):
    """Ordinary ids keep their folders and stems; ids whose stems clash (another extension, or
    another case) and ids outside the root get a file each instead of overwriting one another."""
    import pandas as pd

    from workbench.fsutil import sample_file_names

    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    colours = {
        root / "cls" / "x.jpg": 10,
        root / "cls" / "x.png": 60,
        root / "cls" / "X.bmp": 110,
        root / "cls" / "plain.png": 160,
        elsewhere / "one" / "y.png": 210,
        elsewhere / "two" / "y.png": 250,
    }
    for path, value in colours.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix]
        path.write_bytes(encode(Image.new("L", (8, 8), value), fmt))
    df = pd.DataFrame({"path": [str(p) for p in colours]})
    cat = Catalog.from_dataframe(df, root=root, allow_outside_root=True, progress=False)
    out = Preprocessor().run(cat, tmp_path / "out", progress=False, workers=1)

    assert len({*out.ids}) == len(out) == len(colours)  # nothing overwritten
    assert "cls/x.png" in out.ids and "cls/plain.png" in out.ids  # ordinary ids keep names
    names = sample_file_names(cat.ids, suffix=".png", nested=True)
    assert out.df.set_index("source_id")["id"].to_dict() == names
    assert all(names[i].startswith("_outside/") for i in cat.ids if i.startswith("/"))
    for source, new in zip(out.df["source_id"], out.df["id"], strict=True):
        value = colours[Path(source) if source.startswith("/") else root / source]
        assert abs(int(np.asarray(out.image(new)).mean()) - value) <= 2, (source, new)

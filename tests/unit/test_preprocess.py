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

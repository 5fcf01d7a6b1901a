import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from corpus import encode, make_corpus
from PIL import Image
from torchvision.datasets import FakeData, ImageFolder

from workbench import Catalog, Workspace
from workbench.catalog import COLUMNS
from workbench.errors import ManifestError, ParameterError, PathOutsideRootError, WorkbenchError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


@pytest.fixture(scope="module")
def classes_root(tmp_path_factory):
    """ImageFolder layout: 3 classes, 5 images each, mixed formats and sizes."""
    root = tmp_path_factory.mktemp("classes")
    rng = np.random.default_rng(0)
    for k, cls in enumerate(["cat", "dog", "zebra crossing"]):
        for i in range(5):
            a = rng.integers(0, 256, (10 + i, 12 + k, 3), dtype=np.uint8)
            fmt, ext = (("PNG", "png"), ("JPEG", "jpg"))[i % 2]
            (root / cls).mkdir(exist_ok=True)
            (root / cls / f"{i:02d}.{ext}").write_bytes(encode(Image.fromarray(a), fmt))
    return root


def test_scan_of_bad_corpus_never_aborts(corpus):
    root, expect = corpus
    cat = Catalog.from_folder(root, progress=False, workers=2)
    assert list(cat.df.columns[: len(COLUMNS)]) == list(COLUMNS)
    got = dict(zip(cat.df["id"], cat.df["status"], strict=True))
    assert got == expect
    bad = cat.df[cat.df["status"] != "ok"]
    assert (bad["error"].str.len() > 10).all()
    ok = cat.df[cat.df["status"] == "ok"]
    assert (ok["error"] == "").all() and (ok["hash"].str.len() == 32).all()
    assert cat.df.attrs["skipped_files"] == 1  # notes.txt
    assert "good/ñandú ü/猫 with space.png" in cat
    row = cat.row("good/sixteen.png")
    assert (row["mode"], row["bits"], row["channels"]) == ("I;16", 16, 1)
    assert cat.row("good/cmyk.jpg")["channels"] == 4
    assert cat.row("good/exif_rotated.jpg")["width"] == 30
    assert cat.thumbnail("bad/truncated.jpg").format == "png"  # placeholder, no exception


def test_perceptual_hashes_in_the_scan_equal_the_checks_own(corpus, tmp_path):
    """One decode gives the same pHash/dHash the near-duplicate check computes on its own."""
    from workbench.clean import image_features

    root, _ = corpus
    plain = Catalog.from_folder(root, progress=False)
    cat = Catalog.from_folder(root, progress=False, perceptual_hash=True, workers=2)
    pd.testing.assert_frame_equal(cat.df[list(COLUMNS)], plain.df)
    assert cat.df["phash"].dtype == cat.df["dhash"].dtype == np.int64
    ok = cat.df[cat.df["status"] == "ok"]
    assert len(ok) >= 8  # palette, 16-bit, CMYK, EXIF-rotated, unicode names ...
    for path, ph, dh in ok[["path", "phash", "dhash"]].itertuples(index=False):
        f = image_features(path, hashes_only=True)
        assert (f["phash"], f["dhash"]) == (ph, dh), path
    bad = cat.df[cat.df["status"] != "ok"]
    assert (bad[["phash", "dhash"]] == 0).all().all()
    ws = Workspace(tmp_path / "ws")
    ws.save_catalog(cat)
    pd.testing.assert_frame_equal(
        ws.load_catalog().df[["phash", "dhash"]], cat.df[["phash", "dhash"]]
    )


def test_one_worker_pool_and_foreign_executor_agree(corpus):
    root, _ = corpus
    a = Catalog.from_folder(root, progress=False, workers=1).df
    b = Catalog.from_folder(root, progress=False, workers=2).df
    with ThreadPoolExecutor(3) as ex:
        c = Catalog.from_folder(root, progress=False, executor=ex).df
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_imagefolder_layout_matches_torchvision(classes_root):
    cat = Catalog.from_folder(classes_root, progress=False)
    ref = ImageFolder(str(classes_root))
    ds = cat.to_torch()
    assert ds.classes == ref.classes
    assert ds.class_to_idx == ref.class_to_idx
    assert [str(classes_root / i) for i in ds.ids] == [p for p, _ in ref.samples]
    assert ds.targets == ref.targets
    x, y = ds[7]
    rx, ry = ref[7]
    assert y == ry and np.array_equal(np.asarray(x), np.asarray(rx))


def test_labels_modes(classes_root, tmp_path):
    assert Catalog.from_folder(classes_root, labels=None, progress=False).df["label"].isna().all()
    flat = tmp_path / "flat"
    shutil.copytree(classes_root, flat)
    shutil.copy(flat / "cat" / "00.png", flat / "top.png")
    auto = Catalog.from_folder(flat, progress=False)
    assert auto.df["label"].isna().all()  # a file at the top: not an ImageFolder tree
    folder = Catalog.from_folder(flat, labels="folder", progress=False)
    assert folder.row("cat/00.png")["label"] == "cat" and folder.row("top.png")["label"] is None
    with pytest.raises(ParameterError):
        Catalog.from_folder(flat, labels="nope")
    with pytest.raises(ParameterError, match=r"^labels must be one of 'auto', 'folder', None"):
        Catalog.from_folder(flat, labels=True)
    with pytest.raises(ManifestError, match="does not exist"):
        Catalog.from_folder(tmp_path / "missing")
    nonrec = Catalog.from_folder(flat, recursive=False, progress=False)
    assert nonrec.ids == ["top.png"]


def test_csv_manifest_keeps_metadata_and_flags_missing(classes_root, tmp_path):
    csv = tmp_path / "data.csv"
    pd.DataFrame(
        {
            "path": ["cat/00.png", "dog/01.jpg", "cat/nothere.png"],
            "label": ["cat", "dog", "cat"],
            "annotator": ["ann", "bob", "cy"],
            "width": [1, 2, 3],
        }
    ).to_csv(csv, index=False)
    cat = Catalog.from_csv(csv, root=classes_root, progress=False)
    assert cat.ids == ["cat/00.png", "dog/01.jpg", "cat/nothere.png"]
    assert cat.df["annotator"].tolist() == ["ann", "bob", "cy"]
    assert cat.df["manifest_width"].tolist() == [1, 2, 3]  # clash with a scanned column
    assert cat.df["width"].tolist()[:2] == [12, 13]
    assert cat.df["status"].tolist() == ["ok", "ok", "missing"]
    assert cat.row("cat/nothere.png")["error"] == "file not found"


@pytest.mark.parametrize("bad", ["../escape.png", "/etc/passwd", "cat/../../x.png"])
def test_manifest_paths_outside_root_are_refused(classes_root, tmp_path, bad):
    df = pd.DataFrame({"path": ["cat/00.png", bad]})
    with pytest.raises(PathOutsideRootError, match="outside the dataset root") as e:
        Catalog.from_dataframe(df, root=classes_root, progress=False)
    assert "allow_outside_root=True" in str(e.value)
    cat = Catalog.from_dataframe(df, root=classes_root, allow_outside_root=True, progress=False)
    assert cat.ids[1].startswith("/")
    assert len(cat) == 2


def test_manifest_errors_are_clear(classes_root, tmp_path):
    with pytest.raises(ManifestError, match="no 'path' column"):
        Catalog.from_dataframe(pd.DataFrame({"file": ["a"]}), root=classes_root)
    with pytest.raises(ManifestError, match="more than once"):
        Catalog.from_dataframe(pd.DataFrame({"path": ["cat/00.png", "./cat/00.png"]}),
                               root=classes_root)  # fmt: skip
    with pytest.raises(ManifestError, match="empty"):
        Catalog.from_dataframe(pd.DataFrame({"path": ["cat/00.png", None]}), root=classes_root)
    with pytest.raises(ManifestError, match="does not exist"):
        Catalog.from_csv(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(WorkbenchError):
        Catalog.from_csv(tmp_path / "bin.csv")


def test_from_torchvision_materialises_files(tmp_path):
    ds = FakeData(size=12, image_size=(3, 20, 16), num_classes=3, random_offset=5)
    cat = Catalog.from_torchvision(ds, tmp_path / "fake", classes=["a", "b", "c"], progress=False)
    assert len(cat) == 12 and (cat.df["status"] == "ok").all()
    assert set(cat.df["label"]) <= {"a", "b", "c"}
    img, target = ds[4]
    row = cat.df[cat.df["id"].str.endswith("00004.png")].iloc[0]
    assert row["label"] == ["a", "b", "c"][int(target)]
    assert np.array_equal(np.asarray(cat.image(row["id"])), np.asarray(img))


def test_filter_sort_and_errors(classes_root):
    cat = Catalog.from_folder(classes_root, progress=False)
    assert len(cat.filter("label == 'dog'")) == 5
    assert len(cat.filter(lambda d: d["width"] > 12)) == 10
    assert len(cat.filter(cat.df["format"] == "PNG")) == 9
    s = cat.sort("height", ascending=False)
    assert s.df["height"].is_monotonic_decreasing
    with pytest.raises(ParameterError, match="cannot filter"):
        cat.filter("label ==")
    with pytest.raises(ParameterError, match="unknown column"):
        cat.sort("nope")
    with pytest.raises(ParameterError, match="no sample"):
        cat.image("nope.png")


def test_workspace_round_trip_and_moving_the_root(classes_root, tmp_path):
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(classes_root, ws.images_dir / "mine")
    cat = Catalog.from_folder(ws.images_dir / "mine", progress=False)
    ws.save_catalog(cat)
    moved = tmp_path / "moved"
    shutil.move(ws.path, moved)
    back = Workspace(moved, create=False).load_catalog()
    pd.testing.assert_frame_equal(
        back.df.drop(columns="path"), cat.df.drop(columns="path"), check_dtype=False
    )
    assert all(p.startswith(str(moved)) for p in back.df["path"])
    assert back.image("cat/00.png").tobytes() == Image.open(classes_root / "cat/00.png").tobytes()
    t1 = back.thumbnail("cat/00.png")
    assert back.thumbs.misses == 1
    assert Workspace(moved).load_catalog().thumbnail("cat/00.png") == t1  # from disk cache


def test_workspace_errors(tmp_path):
    from workbench.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace(tmp_path / "none", create=False)
    ws = Workspace(tmp_path / "w")
    with pytest.raises(WorkspaceError, match="no catalog"):
        ws.load_catalog()
    (ws.path / "workspace.json").write_text("{broken")
    with pytest.raises(WorkspaceError, match="not valid JSON"):
        Workspace(ws.path)


def test_summary_figure_two_panels_as_pyplot_figure_and_as_png(classes_root):
    import io

    import matplotlib.pyplot as plt

    from workbench.plots import plot_summary, summary_png

    cat = Catalog.from_folder(classes_root, progress=False)
    fig = plot_summary(cat)
    try:
        assert plt.fignum_exists(fig.number)  # a pyplot figure: a notebook shows it
        balance, sizes = fig.axes
        assert [t.get_text() for t in balance.get_xticklabels()] == cat.classes
        assert sizes.get_xlabel() == "width (px)"
    finally:
        plt.close(fig)
    png = Image.open(io.BytesIO(summary_png(cat)))
    assert png.size == (900, 315)  # 10 x 3.5 inches at 90 dpi


def test_html_escaping_lives_with_the_views_and_the_old_import_still_works():
    # in a fresh interpreter: what the core imports is the point (and ipywidgets' import-time
    # warnings stay out of this suite)
    code = """
import sys, workbench.thumbs, workbench.catalog
assert "ipywidgets" not in sys.modules and "workbench.views" not in sys.modules
from workbench.thumbs import escape as old
from workbench.views._common import escape
assert old is escape
assert escape('<b title="x">&</b>') == "&lt;b title=&quot;x&quot;&gt;&amp;&lt;/b&gt;"
assert escape(None) == "" and escape(3) == "3"
"""
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, cwd=root,
                   timeout=120, env={**os.environ, "PYTHONPATH": str(root)})  # fmt: skip


def test_every_id_is_found_at_its_row_and_unknown_ids_are_refused(classes_root):
    cat = Catalog.from_folder(classes_root, progress=False, workers=1)
    # as many rows as a large catalog would make equal 64-bit hash prefixes likely: none mixed up
    big = Catalog(cat.df.iloc[np.arange(5000) % len(cat.df)].assign(
        id=[f"x/{k:05d}.png" for k in range(5000)]), classes_root)  # fmt: skip
    for c in (cat, big):
        for k, sid in enumerate(c.df["id"]):
            assert sid in c and c.row(sid)["id"] == sid and c.path(sid) == Path(c.df["path"][k])
            assert c.row_at(k) == c.row(sid)
        for bad in ("nope.png", "", 5, ("a",)):
            assert bad not in c
            with pytest.raises(ParameterError, match="no sample with id"):
                c.row(bad)
    index = big._id_index()  # 12 bytes a row: 64-bit hashes and int32 rows
    assert (index._hashes.nbytes + index._order.nbytes) / len(big) == 12
    for k, sid in enumerate(cat.df["id"]):  # by position, as by id
        assert cat.thumbnail_at(k, 40) == cat.thumbnail(sid, 40)
    sub = cat.filter(cat.df["label"] == cat.df["label"].iloc[-1])  # rows renumbered from 0
    assert [sub.row(i)["id"] for i in sub.ids] == sub.ids

"""Exports and imports, validated with the real clients (pycocotools, torchvision, PyYAML)."""

import contextlib
import io
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.datasets import ImageFolder

from workbench import Catalog
from workbench.labels import LabelError, LabelStore
from workbench.labels.batch import ImportRow

FAST = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HOSTILE = [
    "cat", "Cat", "../../escape", "/etc/passwd", "a/b", "..", ".", "", "\x00nul", "line\nbreak",
    "x" * 300, "CON", ".hidden", "dog ", "猫", "tab\there", "a\\b", "\u202eevil",
]  # fmt: skip


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Ten PNG/JPEG images of different sizes; ids include a nested folder and a clash of stems."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(7)
    names = [f"img{i}.png" for i in range(6)] + ["sub/img0.png", "sub/deep/x.jpg", "y.png", "y.jpg"]
    for k, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (24 + 3 * k, 32 + 2 * k, 3), dtype=np.uint8)
        Image.fromarray(a).save(p, quality=95)
    cat = Catalog.from_folder(root, labels=None, progress=False, workers=1)
    assert (cat.df["status"] == "ok").all()
    return cat


def _size(catalog, sid):
    r = catalog.row(sid)
    return r["width"], r["height"]


def _store(url, catalog, classes=("cat", "dog", "bird")):
    s = LabelStore(url, catalog=catalog)
    s.add_classes(list(classes))
    return s


@pytest.fixture
def shared(fresh_url, catalog):
    """Stores made once per test and kept across its examples: a new database per example costs
    about a second on a server. Exports hold every current label, so a round trip of the whole
    store still equals the store after each example."""
    made: dict[str, LabelStore] = {}

    def get(name: str, classes=()) -> LabelStore:
        if name not in made:
            made[name] = _store(fresh_url(), catalog, classes)
        return made[name]

    return get


def _values(store, task="class", annotator=None):
    cur = store.current(task=task, annotator=annotator)
    return dict(zip(cur["id"], cur["value"], strict=True))


def _quiet(fn, *a, **kw):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **kw)


def _tree(root):
    return {p.relative_to(root).as_posix() for p in Path(root).rglob("*")}


# ------------------------------------------------------------------- the two batch entry points
def test_import_batch_checks_every_row_and_writes_all_or_nothing(fresh_url, catalog):
    s = _store(fresh_url(), catalog)
    a, b, c = catalog.ids[:3]
    sizes = []

    def read(size):  # a value that needs the image size (normalised boxes)
        sizes.append(size)
        return [[0, 0, size[0], size[1], "dog"]]

    good = [
        ImportRow(a, "cat", where="r1"),
        ImportRow(b, annotator="bo", round=2, task="boxes", where="r2", read=read, seconds=1.5),
    ]
    for bad, match in [
        (ImportRow(c, [[0, 0, 1e6, 1, "cat"]], where="r3"), "r3: box"),  # leaves the image
        (ImportRow("nope.png", "cat", where="r4"), "r4: no sample"),
        (ImportRow(c, "cat", annotator="", where="r5"), "r5: annotator"),
        (ImportRow(c, "cat", round=-1, where="r6"), "r6: round"),
    ]:
        before = s.events_count()
        with pytest.raises(LabelError, match=match):
            s.import_batch(iter([*good, bad]), origin="test")
        assert s.events_count() == before  # nothing written, not even the good rows
    with pytest.raises(LabelError, match="classes the store does not have"):
        s.import_batch([ImportRow(a, "new", where="r7")], add_classes=False)
    assert s.import_batch(iter(good), origin="test") == 2
    assert sizes[-1] == _size(catalog, b)
    h = s.history(kind="import")
    assert list(h["id"]) == [a, b] and list(h["annotator"]) == ["import", "bo"]
    assert h["extra"].tolist() == [{"from": "test"}] * 2 and h["seconds"].iloc[1] == 1.5
    assert h["hash"].tolist() == [catalog.row(a)["hash"], catalog.row(b)["hash"]]
    assert _values(s, "boxes", "bo") == {b: [[0.0, 0.0, *map(float, _size(catalog, b)), "dog"]]}


def test_export_batch_gives_files_sizes_and_skipped(fresh_url, catalog):
    s = LabelStore(fresh_url())  # labels made without a catalog
    s.add_classes(["cat", "dog"])
    s.label(catalog.ids[0], "cat", annotator="a")
    s.label(catalog.ids[0], "dog", annotator="b")  # latest among annotators wins
    s.label("gone.png", "cat", annotator="a")
    with pytest.raises(LabelError, match="catalog"):
        s.export_batch()
    batch = s.export_batch(catalog)
    assert batch.classes == {"cat": 0, "dog": 1}
    assert batch.skipped == [{"id": "gone.png", "reason": "not in catalog"}]
    (row,) = batch.rows
    r = catalog.row(catalog.ids[0])
    assert (row.sample_id, row.value, row.path) == (catalog.ids[0], "dog", r["path"])
    assert (row.width, row.height) == _size(catalog, catalog.ids[0])


# ----------------------------------------------------------------------------------- CSV
def test_csv_round_trip_keeps_every_current_label(tmp_path, fresh_url, catalog):
    a = _store(fresh_url(), catalog)
    ids = catalog.ids
    a.label(ids[0], "cat", annotator="ana", seconds=1.25)
    a.label(ids[1], ["dog", "bird"], annotator="ana", round=2, task="multi")
    w, h = _size(catalog, ids[2])
    a.label(ids[2], [[0, 0, w, h, "bird"], [1.5, 2.25, 3, 4, "cat"]], annotator="bo", task="boxes")
    a.label(ids[3], [], annotator="bo", task="boxes")  # looked: no objects
    a.label(ids[4], "dog", annotator="ana")
    a.undo(ids[4], annotator="ana")  # not current: not exported
    path = a.to_csv(tmp_path / "labels.csv")
    b = LabelStore(fresh_url(), catalog=catalog)
    assert b.import_csv(path) == 4
    key = ["id", "annotator", "round", "task", "value", "seconds", "hash"]
    expect = a.current(task=None)[key].fillna(-1).to_dict("records")
    got = b.current(task=None)
    assert got[key].fillna(-1).to_dict("records") == expect
    assert set(got["source"]) == {"import"} and set(b.history()["kind"]) >= {"import"}


@given(
    picks=st.lists(
        st.tuples(st.integers(0, 9), st.sampled_from(["ana", "bo"]), st.integers(0, 2),
                  st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3)),
        min_size=1, max_size=6,
    )
)  # fmt: skip
@FAST
def test_csv_round_trip_with_hostile_class_names(shared, catalog, picks):
    with tempfile.TemporaryDirectory() as d:
        a = shared("a", HOSTILE)
        for i, who, rnd, names in picks:
            value = names[0] if len(names) == 1 else names
            a.label(catalog.ids[i], value, annotator=who, round=rnd)
        a.to_csv(Path(d) / "l.csv")
        b = shared("b")
        b.import_csv(Path(d) / "l.csv")
        key = ["id", "annotator", "round", "value"]
        got, expect = b.current()[key], a.current()[key]
        # a multi-label value is a set, listed in code order; the importing store assigns codes
        # in order of appearance, so compare sets
        for df in (got, expect):
            df["value"] = [v if isinstance(v, str) else sorted(v) for v in df["value"]]
        assert got.to_dict("records") == expect.to_dict("records")


def test_plain_id_label_csv_imports(tmp_path, fresh_url, catalog):
    p = tmp_path / "plain.csv"
    p.write_text(f"id,label\n{catalog.ids[0]},cat\n{catalog.ids[1]},NA\n", encoding="utf-8")
    s = LabelStore(fresh_url(), catalog=catalog)
    assert s.import_csv(p, annotator="legacy") == 2
    assert s.classes == ["cat", "NA"]  # "NA" is a class name, not a missing value
    assert set(s.current()["annotator"]) == {"legacy"}


# ---------------------------------------------------------------------------------- COCO
def test_coco_classification_loads_in_pycocotools_and_round_trips(tmp_path, fresh_url, catalog):
    s = _store(fresh_url(), catalog)
    ids = catalog.ids
    s.label(ids[0], "cat", annotator="ana")
    s.label(ids[1], "dog", annotator="ana")
    s.label(ids[2], ["cat", "bird"], annotator="ana")
    s.label(ids[3], ["bird"], annotator="ana")  # multi-label with one class stays a list
    path = s.to_coco(tmp_path / "cls.json")
    coco = _quiet(COCO, str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "dog", "bird"]
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == 5
    img = coco.loadImgs(1)[0]
    w, h = _size(catalog, img["file_name"])
    (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert ann["bbox"] == [0, 0, w, h] and ann["area"] == w * h and ann["image_level"]
    assert len(coco.getImgIds(catIds=[coco.getCatIds(catNms=["bird"])[0]])) == 2
    b = LabelStore(fresh_url(), catalog=catalog)
    assert b.import_coco(path) == 4
    assert _values(b) == _values(s) and b.classes == s.classes
    assert b.class_codes == s.class_codes  # categories are added in file order


def test_coco_image_sizes_are_the_real_width_and_height(tmp_path, fresh_url, catalog):
    """``images[i]["width"]`` / ``["height"]`` are the decoded file's, never swapped."""
    s = _store(fresh_url(), catalog)
    for k, sid in enumerate(catalog.ids):
        if k % 2:
            s.label(sid, "cat", annotator="ana")
        w, h = _size(catalog, sid)
        s.label(sid, [[w - 4, h - 4, 4, 4, "dog"]], annotator="ana", task="boxes")
    for task in ("class", "boxes"):
        path = s.to_coco(tmp_path / f"{task}.json", task=task)
        coco = _quiet(COCO, str(path))
        images = coco.loadImgs(coco.getImgIds())
        assert len(images) == (5 if task == "class" else 10)
        assert sum(img["width"] != img["height"] for img in images) >= 4  # swaps would show
        for img in images:
            with Image.open(catalog.row(img["file_name"])["path"]) as im:
                real = ImageOps.exif_transpose(im).size
            assert (img["width"], img["height"]) == real
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
                x, y, bw, bh = ann["bbox"]
                assert x + bw <= img["width"] and y + bh <= img["height"]
                if ann.get("image_level"):
                    assert ann["bbox"] == [0, 0, *real]
                else:  # the box sits in the bottom-right corner of the real image
                    assert (x + bw, y + bh) == real


def test_coco_boxes_load_evaluate_to_ap_one_and_round_trip(tmp_path, fresh_url, catalog):
    s = _store(fresh_url(), catalog)
    rng = np.random.default_rng(3)
    for sid in catalog.ids[:8]:
        w, h = _size(catalog, sid)
        boxes = []
        for _ in range(int(rng.integers(0, 4))):
            x, y = float(rng.integers(0, w - 8)), float(rng.integers(0, h - 8))
            bw, bh = float(rng.integers(4, w - x + 1)), float(rng.integers(4, h - y + 1))
            boxes.append([x, y, bw, bh, ["cat", "dog", "bird"][int(rng.integers(3))]])
        s.label(sid, boxes, annotator="ana", task="boxes")
    path = s.to_coco(tmp_path / "boxes.json", task="boxes")
    gt = _quiet(COCO, str(path))
    anns = gt.loadAnns(gt.getAnnIds())
    assert anns and all(a["area"] == a["bbox"][2] * a["bbox"][3] for a in anns)
    assert not any(a.get("image_level") for a in anns)
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1}
        for a in anns
    ]
    dt = _quiet(gt.loadRes, dets)
    ev = COCOeval(gt, dt, "bbox")
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)
    b = LabelStore(fresh_url(), catalog=catalog)
    assert b.import_coco(path) == 8  # images without boxes come back as []
    assert _values(b, "boxes") == _values(s, "boxes")


def test_foreign_coco_matches_file_names_and_infers_boxes(tmp_path, fresh_url, catalog):
    sid = "sub/deep/x.jpg"
    doc = {
        "images": [{"id": 7, "file_name": "x.jpg", "width": 1, "height": 1}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4]}],
        "categories": [{"id": 3, "name": "person"}],
    }
    p = tmp_path / "f.json"
    p.write_text(json.dumps(doc))
    s = LabelStore(fresh_url(), catalog=catalog)
    assert s.import_coco(p, annotator="coco") == 1
    assert _values(s, "boxes") == {sid: [[1.0, 2.0, 3.0, 4.0, "person"]]}
    doc["images"][0]["file_name"] = "elsewhere/img0.png"  # two samples have that file name
    p.write_text(json.dumps(doc))
    with pytest.raises(LabelError, match="several"):
        s.import_coco(p)


# --------------------------------------------------------------------------------- YOLO
def test_yolo_export_format_and_round_trip(tmp_path, fresh_url, catalog):
    s = _store(fresh_url(), catalog)
    sid = "y.png"
    w, h = _size(catalog, sid)
    s.label(sid, [[0, 0, w, h, "dog"], [2, 4, 6, 8, "bird"]], annotator="ana", task="boxes")
    s.label("y.jpg", [], annotator="ana", task="boxes")
    s.label("sub/img0.png", [[1, 1, 2, 2, "cat"]], annotator="ana", task="boxes")
    out = s.to_yolo(tmp_path / "yolo", catalog)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog", 2: "bird"} and data["nc"] == 3
    stems = dict(line.split(",") for line in (out / "samples.csv").read_text().split()[1:])
    txt = (out / "labels" / f"{stems[sid]}.txt").read_text().split("\n")
    first = [float(v) for v in txt[0].split()]
    assert first == [1, 0.5, 0.5, 1.0, 1.0]
    cls, cx, cy, bw, bh = (float(v) for v in txt[1].split())
    assert (cls, cx * w, cy * h, bw * w, bh * h) == pytest.approx((2, 5, 8, 6, 8))
    assert (out / "labels" / f"{stems['y.jpg']}.txt").read_text() == ""
    assert stems["y.png"] != stems["y.jpg"]  # two ids with one stem get distinct files
    for sid_, stem in stems.items():
        assert (out / "images" / (stem + Path(sid_).suffix)).is_file()
    b = LabelStore(fresh_url(), catalog=catalog)
    assert b.import_yolo(out) == 3
    assert _values(b, "boxes") == _values(s, "boxes")


@given(
    boxes=st.lists(
        st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.01, 1), st.floats(0.01, 1),
                  st.sampled_from(["cat", "dog", "bird"])),
        max_size=5,
    ),
    which=st.integers(0, 9),
)  # fmt: skip
@FAST
def test_boxes_survive_coco_and_yolo_round_trips(shared, catalog, boxes, which):
    sid = catalog.ids[which]
    w, h = _size(catalog, sid)
    value = [
        [round(x * w, 3), round(y * h, 3), round(min(bw, 1 - x) * w, 3),
         round(min(bh, 1 - y) * h, 3), c]
        for x, y, bw, bh, c in boxes
    ]  # fmt: skip
    value = [b for b in value if b[2] > 0 and b[3] > 0]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        a = shared("a", ("cat", "dog", "bird"))
        a.label(sid, value, annotator="ana", task="boxes")
        b = shared("b")
        b.import_coco(a.to_coco(d / "c.json", task="boxes"))
        assert _values(b, "boxes") == _values(a, "boxes")  # COCO keeps pixels exactly
        c = shared("c")
        c.import_yolo(a.to_yolo(d / "y", mode=None))
        got = _values(c, "boxes")[sid]
        assert len(got) == len(value)
        for g, v in zip(got, value, strict=True):  # YOLO is normalised floats: 1e-6 px
            assert g[4] == v[4] and g[:4] == pytest.approx(v[:4], abs=1e-6)


def test_foreign_ultralytics_folder_imports(tmp_path, fresh_url, catalog):
    root = tmp_path / "ds"
    (root / "labels" / "train").mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [person, car]\n")
    (root / "labels" / "train" / "img3.txt").write_text(
        "1 0.5 0.5 0.5 0.5\n\n0 0.25 0.25 0.5 0.5\n"
    )
    s = LabelStore(fresh_url(), catalog=catalog)
    assert s.import_yolo(root) == 1
    w, h = _size(catalog, "img3.png")
    (value,) = _values(s, "boxes").values()
    assert value == [[w / 4, h / 4, w / 2, h / 2, "car"], [0.0, 0.0, w / 2, h / 2, "person"]]
    assert s.classes == ["person", "car"]


# --------------------------------------------------------------------------- ImageFolder
@pytest.mark.parametrize("mode", ["copy", "symlink", "hardlink"])
def test_imagefolder_loads_in_torchvision_with_classes_and_counts(
    tmp_path, fresh_url, catalog, mode
):
    s = _store(fresh_url(), catalog)
    labels = ["cat", "dog", "cat", "bird", "cat", "dog"]
    for sid, v in zip(catalog.ids, labels, strict=False):
        s.label(sid, v, annotator="ana")
    s.label(catalog.ids[6], ["dog", "bird"], annotator="ana")  # multi-label: in both folders
    out = s.to_imagefolder(tmp_path / "tree", mode=mode)
    ds = ImageFolder(str(out))
    assert ds.classes == ["bird", "cat", "dog"]
    counts = Counter(ds.classes[t] for _, t in ds.samples)
    assert counts == {"cat": 3, "dog": 3, "bird": 2}
    img, _ = ds[0]
    assert img.size[0] > 0
    f = Path(ds.samples[0][0])
    assert f.is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert f.stat().st_nlink >= 2
    meta = json.loads((out / "classes.json").read_text())
    assert [c["count"] for c in meta["classes"]] == [3, 3, 2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tree")]  # no temp left


def test_boxes_cannot_go_to_imagefolder_and_classes_not_to_yolo(tmp_path, fresh_url, catalog):
    s = _store(fresh_url(), catalog)
    s.label(catalog.ids[0], [[0, 0, 1, 1, "cat"]], annotator="a", task="boxes")
    s.label(catalog.ids[0], "cat", annotator="a")
    with pytest.raises(LabelError, match="boxes"):
        s.to_imagefolder(tmp_path / "t", task="boxes")
    with pytest.raises(LabelError, match="class labels"):
        s.to_yolo(tmp_path / "y", task="class")
    with pytest.raises(LabelError, match="mode"):
        s.to_imagefolder(tmp_path / "t", mode="move")
    assert not (tmp_path / "t").exists() and not (tmp_path / "y").exists()


# ------------------------------------------------------------------ hostile names, atomicity
def test_hostile_class_names_never_write_outside_the_target(tmp_path, fresh_url, catalog):
    s = _store(fresh_url(), catalog, HOSTILE)
    for sid, name in zip(catalog.ids, HOSTILE, strict=False):
        s.label(sid, name, annotator="ana")
        w, h = _size(catalog, sid)
        s.label(sid, [[0, 0, w / 2, h / 2, name]], annotator="ana", task="boxes")
    work = tmp_path / "work"
    work.mkdir()
    before = _tree(tmp_path)
    tree = s.to_imagefolder(work / "tree")
    yolo = s.to_yolo(work / "yolo", task="boxes")
    coco = s.to_coco(work / "c.json")
    csv = s.to_csv(work / "l.csv")
    new = _tree(tmp_path) - before
    allowed = ("work/tree", "work/yolo", "work/c.json", "work/l.csv")
    assert new and all(p == "work" or p.startswith(allowed) for p in new), sorted(new)[:5]
    for p in tree.rglob("*"):  # every path resolves inside the export
        assert p.resolve().is_relative_to(tree.resolve()) or p.is_symlink()
    meta = json.loads((tree / "classes.json").read_text())
    folders = {c["name"]: c["folder"] for c in meta["classes"]}
    assert list(folders) == HOSTILE and len({f.casefold() for f in folders.values()}) == len(
        HOSTILE
    )
    used = [n for n in HOSTILE[: len(catalog.ids)]]
    ds = ImageFolder(str(tree))
    assert sorted(ds.classes) == sorted(folders[n] for n in used)
    assert len(ds) == len(used)
    names = yaml.safe_load((yolo / "data.yaml").read_text(encoding="utf-8"))["names"]
    assert [names[i] for i in range(len(names))] == HOSTILE  # YAML escapes, names unchanged
    assert [c["name"] for c in json.loads(coco.read_text())["categories"]] == HOSTILE
    b = LabelStore(fresh_url(), catalog=catalog)
    b.import_coco(coco)
    b.import_yolo(yolo)
    b.import_csv(csv, annotator="x", task="from_csv")
    assert _values(b) == _values(s) and _values(b, "boxes") == _values(s, "boxes")


def test_exports_are_atomic_and_refuse_to_clobber(tmp_path, fresh_url, catalog):
    s = _store(fresh_url(), catalog)
    for sid in catalog.ids[:3]:
        s.label(sid, "cat", annotator="a")
    out = s.to_imagefolder(tmp_path / "tree")
    with pytest.raises(LabelError, match="overwrite"):
        s.to_imagefolder(out)
    s.label(catalog.ids[3], "dog", annotator="a")
    s.to_imagefolder(out, overwrite=True)
    assert len(ImageFolder(str(out))) == 4
    # a failure half-way (an image vanished) leaves the previous export and no temp folders
    broken = Catalog(catalog.df.assign(path=catalog.df["path"].str.replace("img3", "gone")),
                     catalog.root)  # fmt: skip
    before = _tree(tmp_path)
    with pytest.raises(LabelError, match="missing"):
        s.to_imagefolder(out, broken, overwrite=True)
    assert _tree(tmp_path) == before and len(ImageFolder(str(out))) == 4
    (tmp_path / "file").write_text("x")
    with pytest.raises(LabelError, match="not a folder"):
        s.to_imagefolder(tmp_path / "file", overwrite=True)
    # a failed file export leaves the old file (atomic_write writes a temp file and renames)
    csv = s.to_csv(tmp_path / "l.csv")
    assert csv.read_text().count("\n") == 5
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_export_skips_samples_missing_from_catalog(tmp_path, fresh_url, catalog):
    s = LabelStore(fresh_url())  # labels made without a catalog
    s.add_classes(["cat"])
    s.label(catalog.ids[0], "cat", annotator="a")
    s.label("gone.png", "cat", annotator="a")
    out = s.to_imagefolder(tmp_path / "t", catalog)
    assert json.loads((out / "classes.json").read_text())["skipped"] == [
        {"id": "gone.png", "reason": "not in catalog"}
    ]
    doc = json.loads(s.to_coco(tmp_path / "c.json", catalog).read_text())
    assert len(doc["images"]) == 1 and doc["info"]["workbench"]["skipped"][0]["id"] == "gone.png"
    with pytest.raises(LabelError, match="catalog"):
        s.to_coco(tmp_path / "c2.json")

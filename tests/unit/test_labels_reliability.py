"""LabelStore reliability: SIGKILL durability, 4 concurrent writer processes, fuzzed bad input."""

import hashlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from postgres_server import raw_connection

from workbench import Catalog
from workbench.labels import LabelError, LabelStore

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CLASSES = ["cat", "dog"]


def _run(script, *args, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw,
    )  # fmt: skip


def _integrity(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def _event_ids(db, kind="label"):
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT id FROM events WHERE kind = ?", (kind,))}
    finally:
        con.close()


def _checksum(db):
    """Count and SHA-256 of every row of the events table, in id order."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT * FROM events ORDER BY id").fetchall()
    finally:
        con.close()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


# ------------------------------------------------------------------------- 1. durability
LABELER = r"""
import sys
from workbench.labels import LabelStore
store = LabelStore(sys.argv[1])
i = 0
while True:
    eid = store.label(f"s{i}", ("cat", "dog")[i % 2], annotator="child", seconds=0.5)
    sys.stdout.write(f"{eid}\n")  # acknowledged: label() returned, so the event is committed
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.parametrize("kill_after", [5, 50, 200])
def test_every_acknowledged_event_survives_sigkill(tmp_path, kill_after):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kill_after += rng.randrange(5)
    db = tmp_path / "labels.db"
    LabelStore(db).add_classes(CLASSES)
    proc = _run(LABELER, db)
    acked = []
    for line in proc.stdout:
        acked.append(int(line))
        if len(acked) >= kill_after:
            break
    assert len(acked) >= kill_after, proc.stderr.read().decode()[-2000:]
    time.sleep(rng.uniform(0, 0.008))  # land the kill anywhere, often inside a commit
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    tail = proc.stdout.read().split(b"\n")[:-1]  # complete lines only: those were acknowledged
    acked += [int(x) for x in tail]
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert _integrity(db) == "ok"
    stored = _event_ids(db)
    lost = sorted(set(acked) - stored)
    assert not lost, f"seed {seed}: acknowledged events lost: {lost[:10]}"
    assert len(stored) - len(acked) <= 1  # at most the one committed but not yet printed
    after = LabelStore(db)  # the store opens and takes writes after the crash
    after.label("again", "cat", annotator="parent")
    assert after.events_count("label") == len(stored) + 1


IMPORTER = r"""
import sys
from workbench.labels import LabelStore
store = LabelStore(sys.argv[1])
print("ready", flush=True)
store.import_csv(sys.argv[2])
print("imported", flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_an_import_killed_midway_is_all_or_nothing(tmp_path, delay, label_url):
    s = LabelStore(label_url)
    s.add_classes(CLASSES)
    before = s.events_count()
    csv = tmp_path / "big.csv"
    pd.DataFrame({"id": [f"s{i}" for i in range(3000)], "label": "cat"}).to_csv(csv, index=False)
    proc = _run(IMPORTER, label_url, csv)
    assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()[-2000:]
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    if s.backend == "sqlite":
        assert _integrity(s.path) == "ok"
    assert LabelStore(label_url).events_count() in (before, before + 3000)


# ------------------------------------------------------------------------ 2. concurrency
WRITER = r"""
import os, sys, time
from workbench.labels import LabelStore
db, k, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
store = LabelStore(db)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
t = time.perf_counter()
ids = [store.label(f"p{k}-{i}", ("cat", "dog")[i % 2], annotator=f"w{k}") for i in range(n)]
assert ids == sorted(ids)
print(f"{n / (time.perf_counter() - t):.0f} events/s, {store.retries} retries", flush=True)
"""


def _concurrent(folder, processes, per_process):
    db = folder / "labels.db"
    LabelStore(db).add_classes(CLASSES)
    go = folder / "go"
    procs = [_run(WRITER, db, k, per_process, go) for k in range(processes)]
    for p in procs:
        assert p.stdout.readline() == b"ready\n", p.stderr.read().decode()[-2000:]
    t = time.perf_counter()
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    elapsed = time.perf_counter() - t
    for p, (out, err) in zip(procs, outs, strict=True):
        text = (out + err).decode()
        assert p.returncode == 0, text[-3000:]
        assert "locked" not in text.lower() and "busy" not in text.lower(), text[-3000:]
    s = LabelStore(db)
    assert s.events_count("label") == processes * per_process
    cur = s.current()
    assert len(cur) == processes * per_process
    expect = {(f"w{k}", f"p{k}-{i}") for k in range(processes) for i in range(per_process)}
    assert set(zip(cur["annotator"], cur["id"], strict=True)) == expect
    assert _integrity(db) == "ok"
    print(f"{processes} x {per_process}: {processes * per_process / elapsed:.0f} events/s;",
          [o.decode().strip() for o, _ in outs])  # fmt: skip


def test_four_processes_write_10000_events_none_lost(tmp_path):
    # Same settings as on disk (WAL, synchronous=FULL, BEGIN IMMEDIATE); on tmpfs an fsync is
    # free, so 10,000 commits fit the test budget while the locking is exercised just as hard.
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(dir=base or tmp_path))
    try:
        _concurrent(folder, 4, 2500)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_four_processes_on_disk_with_real_fsync(tmp_path):
    _concurrent(tmp_path, 4, 100)


# -------------------------------------------------------------------------- 3. bad input
@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def world(request, tmp_path_factory):
    """A catalog, a store with labels (on each backend), and valid COCO / YOLO / CSV exports to
    corrupt."""
    root = tmp_path_factory.mktemp("fuzz")
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    url = server.new_database() if server else f"sqlite:///{root / 'labels.db'}"
    rng = np.random.default_rng(5)
    (root / "imgs").mkdir()
    for i in range(4):
        a = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / "imgs" / f"im{i}.png")
    cat = Catalog.from_folder(root / "imgs", labels=None, progress=False, workers=1)
    store = LabelStore(url, catalog=cat)
    store.add_classes(CLASSES)
    for k, sid in enumerate(cat.ids):
        store.label(sid, CLASSES[k % 2], annotator="ana", seconds=1.0)
        store.label(sid, [[1, 2, 10, 8, CLASSES[k % 2]]], annotator="ana", task="boxes")
    coco = json.loads(store.to_coco(root / "boxes.json", task="boxes").read_text())
    store.to_yolo(root / "yolo", task="boxes", mode=None)
    csv = pd.read_csv(store.to_csv(root / "l.csv"), dtype=str, keep_default_na=False)
    assert _store_checksum(store)[0] == 2 + 2 * len(cat.ids)  # the checksum reads this store
    yield {"root": root, "cat": cat, "store": store, "coco": coco, "csv": csv}
    store.close()
    if server:
        server.drop_database(url)


def _store_checksum(store):
    """Count and SHA-256 of every row of the store's events table, in id order, on its backend."""
    con = raw_connection(store)
    try:
        rows = con.execute("SELECT * FROM events ORDER BY id").fetchall()
    finally:
        con.raw.close()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


def _unchanged(world, fn):
    """``fn`` must raise LabelError and leave the events table exactly as it was."""
    before = _store_checksum(world["store"])
    with pytest.raises(LabelError) as e:
        fn()
    assert _store_checksum(world["store"]) == before
    assert str(e.value) and "Traceback" not in str(e.value)
    return e.value


names = st.text(max_size=20)


@given(name=names.filter(lambda n: n not in CLASSES), shape=st.sampled_from(["one", "set", "box"]))
@FUZZ
def test_fuzz_unknown_class(world, name, shape):
    sid = world["cat"].ids[0]
    value = {"one": name, "set": ["cat", name], "box": [[0, 0, 1, 1, name]]}[shape]
    _unchanged(world, lambda: world["store"].label(sid, value, annotator="fuzz"))
    _unchanged(world, lambda: world["store"].suggest(sid, value, model="fuzz"))


@given(sid=st.one_of(names, st.integers(), st.none()))
@FUZZ
def test_fuzz_unknown_sample_id(world, sid):
    if sid in world["cat"].ids:
        return
    s = world["store"]
    _unchanged(world, lambda: s.label(sid, "cat", annotator="fuzz"))
    _unchanged(world, lambda: s.skip(sid, annotator="fuzz"))
    _unchanged(world, lambda: s.review(sid, "accept", reviewer="fuzz"))


def _not_whole(s):
    try:
        return int(s) < 0
    except ValueError:
        return s != ""  # an empty cell means "the default round"


def _not_json(s):
    try:
        json.loads(s)
        return False
    except ValueError:
        return True


CSV_DEFECTS = {
    "value_not_json": st.text(max_size=15).filter(_not_json),
    "unknown_id": names.filter(lambda n: not n.startswith("im")),
    "bad_round": st.one_of(st.text(max_size=5).filter(_not_whole),
                           st.integers(max_value=-1).map(str)),
    "bad_seconds": st.one_of(st.floats(max_value=-0.001).map(str),
                             st.sampled_from(["nan", "inf", "abc", "-1"])),
    "bad_box": st.sampled_from([
        [[0, 0, 0, 1, "cat"]], [[0, 0, 1e6, 1, "cat"]], [[-1, 0, 1, 1, "cat"]], [[0, 0, 1]],
        [["x", 0, 1, 1, "cat"]], [[0, 0, 1, 1, 3]], 5, {"class": 0}, None, [1, "cat"],
    ]).map(json.dumps),
    "unknown_class_strict": names.filter(lambda n: n not in CLASSES).map(json.dumps),
}  # fmt: skip


@given(data=st.data(), defect=st.sampled_from(sorted(CSV_DEFECTS)))
@FUZZ
def test_fuzz_malformed_csv(world, data, defect, tmp_path_factory):
    df = world["csv"].copy()
    row = data.draw(st.integers(0, len(df) - 1))
    columns = {"unknown_id": "id", "bad_round": "round", "bad_seconds": "seconds"}
    col = columns.get(defect, "value")
    df.loc[row, col] = data.draw(CSV_DEFECTS[defect])
    path = tmp_path_factory.mktemp("csv") / "bad.csv"
    df.to_csv(path, index=False)
    strict = defect == "unknown_class_strict"
    err = _unchanged(world, lambda: world["store"].import_csv(path, add_classes=not strict))
    assert "bad.csv" in str(err)


@given(blob=st.binary(max_size=200), header=st.booleans())
@FUZZ
def test_fuzz_garbage_csv(world, blob, header, tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "garbage.csv"
    path.write_bytes((b"id,value\n" if header else b"") + blob)
    before = _store_checksum(world["store"])
    try:
        imported = world["store"].import_csv(path)
    except LabelError:
        imported = 0
    assert imported == 0  # a header and blank lines is an empty file; anything else is refused
    assert _store_checksum(world["store"]) == before


def _coco_mutations(doc, data):
    """Apply one random defect to a valid COCO document (in place)."""
    kind = data.draw(st.sampled_from([
        "drop_key", "not_list", "cat_id_text", "cat_dup", "cat_name_int", "img_dup",
        "img_unknown_file", "img_no_file", "ann_unknown_img", "ann_unknown_cat", "bbox_len",
        "bbox_text", "bbox_neg", "bbox_nan", "bbox_outside", "mixed_levels", "bool_id",
    ]))  # fmt: skip
    anns, imgs, cats = doc["annotations"], doc["images"], doc["categories"]
    a = anns[data.draw(st.integers(0, len(anns) - 1))]
    if kind == "drop_key":
        del doc[data.draw(st.sampled_from(["images", "annotations", "categories"]))]
    elif kind == "not_list":
        doc[data.draw(st.sampled_from(["images", "annotations"]))] = {"0": 1}
    elif kind == "cat_id_text":
        cats[0]["id"] = str(cats[0]["id"])
    elif kind == "cat_dup":
        cats.append(dict(cats[0], name="other"))
    elif kind == "cat_name_int":
        cats[0]["name"] = 7
    elif kind == "img_dup":
        imgs.append(dict(imgs[0]))
    elif kind == "img_unknown_file":
        known = {PurePosixPath(im["file_name"]).name for im in imgs}
        imgs[0]["file_name"] = data.draw(names.filter(lambda n: PurePosixPath(n).name not in known))
    elif kind == "img_no_file":
        del imgs[0]["file_name"]
    elif kind == "ann_unknown_img":
        a["image_id"] = 10_000
    elif kind == "ann_unknown_cat":
        a["category_id"] = 10_000
    elif kind == "bbox_len":
        a["bbox"] = a["bbox"][: data.draw(st.integers(0, 3))]
    elif kind == "bbox_text":
        a["bbox"][data.draw(st.integers(0, 3))] = "1"
    elif kind == "bbox_neg":
        a["bbox"][data.draw(st.integers(0, 3))] = data.draw(st.floats(-1e6, -0.01))
    elif kind == "bbox_nan":
        a["bbox"][data.draw(st.integers(0, 3))] = data.draw(st.sampled_from([math.nan, math.inf]))
    elif kind == "bbox_outside":
        a["bbox"][data.draw(st.integers(2, 3))] = data.draw(st.floats(1e3, 1e9))
    elif kind == "mixed_levels":
        anns.append(dict(a, id=999, image_level=True))
    elif kind == "bool_id":
        a["image_id"] = True
    return kind


@given(data=st.data())
@FUZZ
def test_fuzz_malformed_coco(world, data, tmp_path_factory):
    doc = json.loads(json.dumps(world["coco"]))
    _coco_mutations(doc, data)
    text = json.dumps(doc)  # NaN / Infinity are written as JSON extensions Python reads back
    if data.draw(st.booleans()):  # or: the file is cut short, or is random bytes
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    path = tmp_path_factory.mktemp("coco") / "bad.json"
    path.write_text(text)
    _unchanged(world, lambda: world["store"].import_coco(path))


@given(blob=st.binary(max_size=300))
@FUZZ
def test_fuzz_garbage_coco(world, blob, tmp_path_factory):
    path = tmp_path_factory.mktemp("coco") / "garbage.json"
    path.write_bytes(blob)
    _unchanged(world, lambda: world["store"].import_coco(path))


BAD_TOKEN = st.one_of(
    st.floats(max_value=-1e-6), st.floats(min_value=1.000001), st.sampled_from(["nan", "inf", "x"])
)


@given(data=st.data())
@FUZZ
def test_fuzz_malformed_yolo(world, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("yolo") / "y"
    shutil.copytree(world["root"] / "yolo", folder)
    txts = sorted((folder / "labels").glob("*.txt"))
    txt = txts[data.draw(st.integers(0, len(txts) - 1))]
    lines = txt.read_text().splitlines()
    kind = data.draw(st.sampled_from(
        ["tokens", "coordinate", "class", "zero_size", "outside", "stray_file", "no_names",
         "bad_classes_json", "unknown_id", "not_utf8"]
    ))  # fmt: skip
    good = "0 0.5 0.5 0.2 0.2"
    if kind == "tokens":
        n = data.draw(st.integers(0, 9).filter(lambda n: n != 5))
        bad = " ".join(data.draw(st.lists(st.sampled_from(["0", "0.5", "1"]), min_size=n,
                                          max_size=n)))  # fmt: skip
        bad = bad or "x"
    elif kind == "coordinate":
        parts = good.split()
        parts[data.draw(st.integers(1, 4))] = str(data.draw(BAD_TOKEN))
        bad = " ".join(parts)
    elif kind == "class":
        k = data.draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=len(CLASSES))))
        bad = f"{k} 0.5 0.5 0.2 0.2"
    elif kind == "zero_size":
        bad = "0 0.5 0.5 0 0.2"
    elif kind == "outside":
        bad = "1 0.95 0.5 0.5 0.2"  # right edge at 1.2 x width
    else:
        bad = good
    lines.insert(data.draw(st.integers(0, len(lines))), bad)
    txt.write_text("\n".join(lines) + "\n")
    if kind == "stray_file":
        (folder / "labels" / "stray.txt").write_text(good + "\n")
    elif kind == "no_names":
        (folder / "classes.json").unlink()
        (folder / "data.yaml").unlink()
    elif kind == "bad_classes_json":
        (folder / "classes.json").write_text(data.draw(st.sampled_from(["{", "[]", '{"x": 1}'])))
    elif kind == "unknown_id":
        table = (folder / "samples.csv").read_text().replace("im0.png", "nothere.png")
        (folder / "samples.csv").write_text(table)
        if "nothere" not in table:
            return
    elif kind == "not_utf8":
        txt.write_bytes(b"\xff\xfe" + txt.read_bytes())
    _unchanged(world, lambda: world["store"].import_yolo(folder))

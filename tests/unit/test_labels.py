"""LabelStore: events, the derived current view, undo/skip, classes, catalog checks, queries."""

import re
import threading
import unicodedata

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from postgres_server import raw_connection, raw_errors

from workbench import Catalog, Workspace
from workbench.errors import WorkbenchError
from workbench.fsutil import sample_file_names
from workbench.labels import LabelError, LabelStore, safe_names

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(6):
        (root / "d").mkdir(exist_ok=True)
        a = rng.integers(0, 256, (20 + i, 30 + i, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / ("d" if i % 2 else ".") / f"im{i}.png")
    return Catalog.from_folder(root, labels=None, progress=False, workers=1)


@pytest.fixture
def store(label_url):
    s = LabelStore(label_url)
    s.add_classes(["cat", "dog", "bird"])
    return s


def test_event_is_committed_durably_and_visible_to_other_connections(store):
    eid = store.label("x", "cat", annotator="ana", seconds=2.5)
    con = store._db.connection()
    if store.backend == "sqlite":
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    else:  # the commit waits for the server's WAL flush
        assert con.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert con.execute("SHOW fsync").fetchone()[0] == "on"
    assert not con.in_transaction  # nothing left uncommitted after the call returned
    raw = raw_connection(store)
    kind, value, secs = raw.execute(
        "SELECT kind, value, seconds FROM events WHERE id = ?", (eid,)
    ).fetchone()
    assert (kind, secs) == ("label", 2.5) and value == '{"class":0}'
    other = LabelStore(store.url)
    assert other.current()["value"].tolist() == ["cat"]


def test_events_are_append_only(store):
    store.label("x", "cat", annotator="ana")
    raw = raw_connection(store)
    stmts = ["UPDATE events SET value = NULL", "DELETE FROM events"]
    if store.backend == "postgresql":
        stmts.append("TRUNCATE events")
    for stmt in stmts:
        with pytest.raises(raw_errors(), match="append-only"):
            raw.execute(stmt)
    assert store.events_count("label") == 1


def test_current_is_latest_per_sample_annotator_round_task(store):
    store.label("x", "cat", annotator="ana")
    store.label("x", "dog", annotator="ana")  # relabel: latest wins
    store.label("x", "bird", annotator="bo")
    store.label("x", "cat", annotator="ana", round=1)
    store.label("x", ["dog", "cat", "dog"], annotator="ana", task="multi")
    cur = store.current()
    got = {(r.annotator, r.round): r.value for r in cur.itertuples()}
    assert got == {("ana", 0): "dog", ("bo", 0): "bird", ("ana", 1): "cat"}
    assert list(cur.columns) == [
        "id", "annotator", "round", "task", "value", "source", "ts", "hash", "seconds", "event",
        "extra",
    ]  # fmt: skip
    assert store.current(annotator="ana", round=0)["value"].tolist() == ["dog"]
    assert store.current(task="multi")["value"].tolist() == [["cat", "dog"]]  # a set, code order
    assert len(store.current(task=None)) == 4
    assert str(cur["ts"].dtype).startswith("datetime64") and cur["ts"].dt.tz is not None
    assert len(store.history(sample_id="x")) == 5  # nothing was overwritten
    assert store.events_count("label") == 5 and store.events_count() == 8  # + 3 class_add


def test_skip_and_undo(store):
    store.label("a", "cat", annotator="ana")
    store.label("b", "dog", annotator="ana")
    store.skip("c", annotator="ana", seconds=1.0)
    assert store.labeled_ids("ana") == {"a", "b"}
    assert store.labeled_ids("ana", include_skipped=True) == {"a", "b", "c"}
    assert store.undo(annotator="ana") is not None  # cancels the skip of c
    assert store.labeled_ids("ana", include_skipped=True) == {"a", "b"}
    store.undo("a", annotator="ana")  # a specific sample
    assert store.labeled_ids("ana") == {"b"}
    assert store.undo("a", annotator="ana") is None  # nothing left on a
    assert store.undo("b", annotator="bo") is None  # others' labels are not mine to undo
    # a skip after a label hides it; undoing the skip brings the label back
    store.label("d", "cat", annotator="ana")
    store.skip("d", annotator="ana")
    assert "d" not in store.labeled_ids("ana")
    store.undo("d", annotator="ana")
    assert store.current(annotator="ana").set_index("id").loc["d", "value"] == "cat"
    kinds = store.history(annotator="ana")["kind"].tolist()
    assert kinds.count("undo") == 3 and kinds.count("skip") == 2


def test_undo_walks_back_through_relabels(store):
    for v in ("cat", "dog", "bird"):
        store.label("x", v, annotator="ana")
    seen = []
    while store.undo("x", annotator="ana") is not None:
        cur = store.current()
        seen.append(cur["value"].iloc[0] if len(cur) else None)
    assert seen == ["dog", "cat", None]


def test_a_folder_holds_labels_db(tmp_path):
    s = LabelStore(tmp_path)
    assert s.path == tmp_path / "labels.db" and s.backend == "sqlite"
    assert LabelStore(f"sqlite:///{tmp_path / 'labels.db'}").path == s.path
    with pytest.raises(LabelError, match="unknown database URL"):
        LabelStore("mysql://host/db")


def test_class_codes_are_stable_through_rename_and_merge(label_url):
    s = LabelStore(label_url)
    assert s.add_classes(["cat", "dog"]) == [0, 1]
    assert s.add_classes(["dog", "cow", "cow"]) == [1, 2, 2]  # existing keep theirs
    s.label("1", "cat", annotator="a")
    s.label("2", [[0, 0, 1, 1, "dog"]], annotator="a", task="boxes")
    s.label("3", ["cow", "dog"], annotator="a", task="multi")
    assert s.rename_class("cat", "feline") == 0
    assert s.current()["value"].tolist() == ["feline"]  # the label followed its code
    with pytest.raises(LabelError):
        s.rename_class("dog", "feline")
    with pytest.raises(LabelError, match="unknown class"):
        s.rename_class("cat", "x")
    assert s.merge_classes(["dog", "cow"], "animal") == 3
    assert s.classes == ["feline", "animal"]
    assert s.class_codes == {"feline": 0, "animal": 3}
    assert s.current(task="boxes")["value"].iloc[0][0][4] == "animal"
    assert s.current(task="multi")["value"].iloc[0] == ["animal"]  # two codes folded into one
    assert s.decode([0, 1, 2, 3]) == ["feline", "animal", "animal", "animal"]
    assert s.encode(["animal", "feline"]) == [3, 0] and s.encode("feline") == 0
    with pytest.raises(LabelError):
        s.encode("dog")  # merged away
    with pytest.raises(LabelError):
        s.decode(99)
    assert s.add_classes(["dog"]) == [4]  # a new class never reuses a retired code
    assert LabelStore(label_url).class_codes == {"feline": 0, "animal": 3, "dog": 4}
    kinds = s.history(kind=None)["kind"].tolist()
    assert kinds.count("class_rename") == 1 and kinds.count("class_merge") == 1
    with pytest.raises(LabelError, match="nothing to merge"):
        s.merge_classes(["animal"], "animal")


@given(names=st.lists(st.text(max_size=12), min_size=1, max_size=8, unique=True))
@FAST
def test_encode_decode_round_trip_any_names(fresh_url, names):
    with LabelStore(fresh_url()) as s:
        try:
            codes = s.add_classes(names)
        except LabelError:  # only text that is not valid Unicode (lone surrogates) is refused
            assert any(not _encodable(n) for n in names)
            return
        assert codes == list(range(len(names)))
        assert s.decode(s.encode(names)) == names
        assert s.classes == names


def _encodable(s):
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_unknown_class_and_bad_values_are_refused_and_store_unchanged(store):
    store.label("x", "cat", annotator="a")
    before = store.events_count()
    bad_values = [
        "cow", ["cat", "cow"], [[0, 0, 1, 1, "cow"]], 3, None, {"class": 0}, [[0, 0, 1]],
        [[0, 0, -1, 1, "cat"]], [[-1, 0, 1, 1, "cat"]], [[0, 0, float("nan"), 1, "cat"]],
        [[0, 0, True, 1, "cat"]], [["0", 0, 1, 1, "cat"]], ["cat", [0, 0, 1, 1, "cat"]],
    ]  # fmt: skip
    for v in bad_values:
        with pytest.raises(LabelError):
            store.label("x", v, annotator="a")
    for kw in ({"annotator": ""}, {"annotator": "a", "round": -1}, {"annotator": "a", "task": ""},
               {"annotator": "a", "seconds": -2}, {"annotator": "a", "source": "robot"},
               {"annotator": "a", "round": 1.5}):  # fmt: skip
        with pytest.raises(LabelError):
            store.label("x", "cat", **kw)
    with pytest.raises(WorkbenchError):  # LabelError is a WorkbenchError
        store.label("", "cat", annotator="a")
    assert store.events_count() == before


def test_catalog_checks_ids_records_hashes_and_box_bounds(label_url, catalog):
    s = LabelStore(label_url, catalog=catalog)
    s.add_classes(["cat"])
    sid = catalog.ids[0]
    s.label(sid, "cat", annotator="a")
    assert s.current()["hash"].iloc[0] == catalog.row(sid)["hash"]
    with pytest.raises(LabelError, match="no sample"):
        s.label("not/there.png", "cat", annotator="a")
    w, h = catalog.row(sid)["width"], catalog.row(sid)["height"]
    s.label(sid, [[0, 0, w, h, "cat"]], annotator="a", task="boxes")  # the whole image is fine
    with pytest.raises(LabelError, match="leaves"):
        s.label(sid, [[1, 0, w, h, "cat"]], annotator="a", task="boxes")
    assert s.progress("a")["total"] == len(catalog)


def test_stale_reports_changed_missing_and_unhashed(fresh_url, catalog):
    s = LabelStore(fresh_url(), catalog=catalog)
    s.add_classes(["cat"])
    a, b, c = catalog.ids[:3]
    for sid in (a, b, c):
        s.label(sid, "cat", annotator="ana")
    assert s.stale().empty
    df = catalog.df.copy()
    df.loc[df["id"] == a, "hash"] = "0" * 32  # a's pixels changed
    df = df[df["id"] != b]  # b was removed
    rescanned = Catalog(df, catalog.root)
    st_ = s.stale(rescanned)
    assert dict(zip(st_["id"], st_["reason"], strict=True)) == {a: "changed", b: "missing"}
    assert st_.set_index("id").loc[a, "catalog_hash"] == "0" * 32
    bare = LabelStore(fresh_url())
    bare.add_classes(["cat"])
    bare.label(c, "cat", annotator="ana")  # no catalog: no hash to compare
    assert bare.stale(catalog)["reason"].tolist() == ["unhashed"]
    with pytest.raises(LabelError, match="catalog"):
        bare.stale()


def test_suggestions_and_reviews(store):
    e = store.label("x", "cat", annotator="ana")
    store.suggest("x", "dog", model="m1", probs={"dog": 0.7, "cat": 0.3})
    store.suggest("x", "cat", model="m1", probs={"cat": 0.9})
    store.suggest("y", [[1, 1, 2, 2, "bird"]], model="det", task="boxes")
    sug = store.suggestions()
    assert sug[["id", "model", "value"]].values.tolist() == [["x", "m1", "cat"]]
    assert sug["probs"].iloc[0] == {"cat": 0.9}
    assert store.suggestions(task="boxes")["value"].iloc[0] == [[1.0, 1.0, 2.0, 2.0, "bird"]]
    assert store.current()["value"].tolist() == ["cat"]  # suggestions are not labels
    r = store.review("x", "reject", reviewer="rev", note="tail is a dog's", target=e)
    rev = store.history(kind="review")
    assert rev[["event", "value", "target"]].values.tolist() == [[r, "reject", e]]
    assert rev["extra"].iloc[0] == {"note": "tail is a dog's"}
    for bad in (
        lambda: store.review("x", "maybe", reviewer="rev"),
        lambda: store.review("y", "accept", reviewer="rev", target=e),  # e is on x
        lambda: store.suggest("x", "cat", model="m1", probs={"cat": 1.5}),
        lambda: store.suggest("x", "cat", model="m1", probs={"cow": 0.5}),
    ):
        with pytest.raises(LabelError):
            bad()


def test_progress_and_resume_position(store):
    assert store.last_position("ana") is None
    store.label("a", "cat", annotator="ana", seconds=3)
    store.label("b", "dog", annotator="ana", seconds=1)
    store.skip("c", annotator="ana")
    store.label("z", "dog", annotator="bo")
    p = store.progress("ana")
    assert (p["labeled"], p["skipped"], p["done"], p["seconds"]) == (2, 1, 3, 4.0)
    assert p["per_minute"] == pytest.approx(30.0) and p["total"] is None
    assert store.last_position("ana") == "c"
    reopened = LabelStore(store.url)  # a kernel restart: resume where ana left off
    assert reopened.last_position("ana") == "c" and reopened.last_position("bo") == "z"
    reopened.undo(annotator="ana")
    assert reopened.last_position("ana") == "c"  # back on the item whose skip was undone


def test_workspace_holds_labels_db(tmp_path):
    ws = Workspace(tmp_path / "ws")
    s = LabelStore(ws)
    assert s.path == ws.path / "labels.db" and s.path.exists()
    with s:
        s.add_classes(["a"])
    assert s.classes == ["a"]  # reopens after close
    with pytest.raises(LabelError):
        LabelStore(42)


def test_one_environment_variable_points_workspace_stores_at_one_database(
    tmp_path, label_url, monkeypatch
):
    monkeypatch.setenv("WORKBENCH_LABELS_URL", label_url)
    one, two = Workspace(tmp_path / "one"), Workspace(tmp_path / "two")
    LabelStore(one).add_classes(["cat"])
    LabelStore(one).label("x", "cat", annotator="ana")
    other = LabelStore(two)  # another notebook's workspace: the same database
    assert other.url == label_url and other.current()["id"].tolist() == ["x"]
    assert not (two.path / "labels.db").exists()
    monkeypatch.delenv("WORKBENCH_LABELS_URL")
    assert LabelStore(two).current().empty  # without it: the workspace's own file


def test_an_unreachable_server_says_what_to_do():
    with pytest.raises(
        LabelError, match=r"cannot reach the label server.*WORKBENCH_LABELS_URL"
    ) as e:
        LabelStore("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(e.value)  # never the password


def test_classes_added_at_once_by_many_writers_get_distinct_codes(store):
    barrier = threading.Barrier(6)

    def work(k):
        own = LabelStore(store.url)  # a connection of its own, as in another kernel
        barrier.wait()
        for i in range(5):
            own.add_classes([f"c{k}-{i}"])
        own.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = store.class_codes
    assert len(codes) == 3 + 30 and sorted(codes.values()) == list(range(33))


def test_threads_share_one_store(store):
    def work(k):
        for i in range(20):
            store.label(f"t{k}-{i}", "cat", annotator=f"w{k}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.events_count("label") == 80 and len(store.current()) == 80


def test_safe_names_are_unique_safe_and_keep_safe_names():
    hostile = ["cat", "Cat", "../x", "/etc", "a/b", "a_b", "", ".", "..", "\x00", "\n", "CON",
               "x" * 300, ".hidden", "tail. ", "猫", "e\u0301", "\u00e9", "a\u202eb"]  # fmt: skip
    m = safe_names(hostile)
    assert m["cat"] == "cat" and m["猫"] == "猫" and m["a_b"] == "a_b"
    folded = {v.casefold() for v in m.values()}
    assert len(folded) == len(hostile)
    for v in m.values():
        assert v and v not in (".", "..") and not v.startswith(".") and "/" not in v
        assert v.isprintable() and len(v.encode()) <= 100 and not v.endswith((" ", "."))


FORBIDDEN = set('/\\:*?"<>|')


DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10))}


def _safe_part(p):
    return (
        p and p not in (".", "..") and not p.startswith((".", " ")) and not p.endswith((" ", "."))
        and not set(p) & FORBIDDEN and p.isprintable() and len(p.encode()) <= 100
        and p.split(".")[0].upper() not in DEVICES
    )  # fmt: skip


def test_sample_file_names_flat_and_nested():
    ids = ["cat/001.jpg", "cat/001.png", "y.png", "Y.png", "/data/x.png", "a/../b.png", "CON.png",
           "plain.png", "deep/er/z.JPG"]  # fmt: skip
    flat = sample_file_names(ids)
    assert flat["cat/001.jpg"] == "cat__001.jpg" and flat["plain.png"] == "plain.png"
    assert flat["deep/er/z.JPG"] == "deep__er__z.JPG" and flat["/data/x.png"] == "data__x.png"
    assert flat["cat/001.png"] == "cat__001~" + flat["cat/001.png"].split("~")[1]  # stem taken
    nested = sample_file_names(ids, suffix=".png", nested=True)
    assert nested["cat/001.jpg"] == "cat/001.png" and nested["deep/er/z.JPG"] == "deep/er/z.png"
    assert nested["/data/x.png"] == "_outside/data/x.png" and nested["plain.png"] == "plain.png"
    assert nested["cat/001.png"].startswith("cat/001~") and nested["Y.png"].startswith("Y~")
    assert nested["CON.png"].startswith("_CON~") and nested["a/../b.png"] == "a/b.png"
    stems = sample_file_names(ids, suffix="", nested=True)
    assert all(nested[i] == stems[i] + ".png" for i in ids)
    assert sample_file_names(ids, suffix="") == {i: f[: f.rfind(".")] for i, f in flat.items()}


TOKENS = [*"aAb/._-~: \\\x00\n猫é", "e\u0301", "CON", ".png", ".JPG"]


@given(
    ids=st.lists(
        st.lists(st.sampled_from(TOKENS), max_size=8).map("".join)
        .filter(lambda i: not i.endswith("/")),  # ids name files, never folders
        min_size=1, max_size=8,
    ),
    suffix=st.sampled_from([None, "", ".png", "_aug12.png"]),
    nested=st.booleans(),
)  # fmt: skip
@FAST
def test_sample_file_names_are_safe_and_unique(ids, suffix, nested):
    names = sample_file_names(ids, suffix=suffix, nested=nested)
    assert list(names) == list(dict.fromkeys(ids))

    def fold(s):
        return unicodedata.normalize("NFC", s).casefold()

    assert len({fold(n) for n in names.values()}) == len(names)  # unique where case does not count
    for name in names.values():
        parts = name.split("/")
        assert len(parts) == 1 or nested
        assert all(_safe_part(p) for p in parts), name
    if nested and suffix is None:  # a safe id keeps its name unless an earlier one took its stem
        taken = set()
        for i, name in names.items():
            stem = re.sub(r"\.[A-Za-z0-9]{1,10}$", "", i)  # stems are unique, for label files
            parts = [*i.split("/"), stem.rsplit("/", 1)[-1]]
            safe = all(_safe_part(p) for p in parts) and unicodedata.is_normalized("NFC", i)
            if safe and fold(stem) not in taken:
                assert name == i
            taken.add(fold(re.sub(r"\.[A-Za-z0-9]{1,10}$", "", name)))


# ---------------------------------------------------------------- a model of the current view
OPS = st.lists(
    st.tuples(
        st.sampled_from(["label", "label", "skip", "undo", "undo_any"]),
        st.sampled_from(["s1", "s2", "s3"]),
        st.sampled_from(["ana", "bo"]),
        st.sampled_from(["cat", "dog", "bird"]),
    ),
    max_size=14,
)


@given(ops=OPS)
@FAST
def test_current_view_matches_a_simple_model(fresh_url, ops):
    with LabelStore(fresh_url()) as s:
        s.add_classes(["cat", "dog", "bird"])
        log = []  # (sample, annotator, value or None for skip), undone ones removed
        for op, sid, who, value in ops:
            if op == "label":
                s.label(sid, value, annotator=who)
                log.append((sid, who, value))
            elif op == "skip":
                s.skip(sid, annotator=who)
                log.append((sid, who, None))
            else:
                target = sid if op == "undo" else None
                mine = [i for i, e in enumerate(log) if e[1] == who and target in (None, e[0])]
                got = s.undo(target, annotator=who)
                assert (got is None) == (not mine)
                if mine:
                    del log[mine[-1]]
        expect = {}
        for sid, who, value in log:
            expect[(sid, who)] = value
        expect = {k: v for k, v in expect.items() if v is not None}
        cur = s.current()
        keys = zip(cur["id"], cur["annotator"], strict=True)
        assert isinstance(cur, pd.DataFrame)
        assert dict(zip(keys, cur["value"], strict=True)) == expect

"""The store's side of quality control: extra on labels, consensus labels, assignments and gold
events, and the upgrade of a schema-1 file. All on a real store in a temp file."""

from __future__ import annotations

import json
import sqlite3

import pytest
from postgres_server import raw_connection

from workbench.labels import AssignRow, ImportRow, LabelError, LabelStore
from workbench.labels._migrations import SCHEMA_VERSION


@pytest.fixture
def store(label_url):
    s = LabelStore(label_url)
    s.add_classes(["cat", "dog"])
    return s


def test_label_extra_round_trips_through_current_and_history(store):
    extra = {"method": "majority", "confidence": 0.75, "events": [1, 2], "note": "猫", "ok": True}
    e = store.label("x", "cat", annotator="ana", extra=extra)
    plain = store.label("y", "dog", annotator="ana")
    cur = store.current().set_index("event")
    assert cur.loc[e, "extra"] == extra and cur.loc[plain, "extra"] is None
    hist = store.history(kind="label").set_index("event")
    assert hist.loc[e, "extra"] == extra
    # a key named "probs" is the label's own data, not a suggestion's class codes
    e2 = store.label("x", "dog", annotator="bo", extra={"probs": [[0, 0.5]]})
    assert store.history("x", "bo").set_index("event").loc[e2, "extra"] == {"probs": [[0, 0.5]]}


@pytest.mark.parametrize(
    "extra, match",
    [
        ([1, 2], "dict"),
        ("text", "dict"),
        ({1: "a"}, "keys must be text"),
        ({"x": float("nan")}, "finite JSON"),
        ({"x": float("inf")}, "finite JSON"),
        ({"x": object()}, "JSON"),
        ({"x": {1, 2}}, "JSON"),
        ({"x": "y" * 70_000}, "more than"),
    ],
)
def test_bad_extra_raises_and_writes_nothing(store, extra, match):
    before = store.events_count()
    with pytest.raises(LabelError, match=match):
        store.label("x", "cat", annotator="ana", extra=extra)
    assert store.events_count() == before


def test_self_referencing_extra_is_refused(store):
    loop: dict = {}
    loop["me"] = loop
    with pytest.raises(LabelError):
        store.label("x", "cat", annotator="ana", extra=loop)
    assert store.events_count("label") == 0


def test_sources_and_reserved_names(store):
    e = store.label("x", "cat", annotator="consensus:majority", source="consensus", round=1)
    assert store.current(round=1).set_index("event").loc[e, "source"] == "consensus"
    before = store.events_count()
    for kw in [
        {"annotator": "ana", "source": "consensus"},  # a consensus needs a consensus: name
        {"annotator": "gold:ref", "source": "import"},  # gold names never label
        {"annotator": "ana", "source": "oracle"},
    ]:
        with pytest.raises(LabelError):
            store.label("x", "cat", **kw)
    assert store.events_count() == before


def test_import_batch_takes_consensus_rows_in_one_transaction(store):
    rows = [
        ImportRow("x", "cat", annotator="consensus:dawid_skene", round=2, source="consensus",
                  extra={"method": "dawid_skene", "confidence": 0.9, "events": []}),
        ImportRow("y", "cat", annotator="ana", where="r2"),  # a plain import
    ]  # fmt: skip
    assert store.import_batch(rows, origin="t") == 2
    hist = store.history().set_index("id")
    assert hist.loc["x", "kind"] == "label" and hist.loc["x", "source"] == "consensus"
    assert hist.loc["x", "extra"]["confidence"] == 0.9
    assert hist.loc["y", "kind"] == "import" and hist.loc["y", "extra"] == {"from": "t"}
    before = store.events_count()
    bad = [rows[0], ImportRow("z", "cat", annotator="ana", source="consensus", where="r9")]
    with pytest.raises(LabelError, match="r9"):
        store.import_batch(bad)
    bad = [rows[0], ImportRow("z", "cat", where="r8", extra={"x": float("nan")})]
    with pytest.raises(LabelError, match="r8"):
        store.import_batch(bad)
    assert store.events_count() == before


def test_assign_batch_and_gold_events_are_not_labels(store):
    rows = [AssignRow("x", "ana", False, 2), AssignRow("x", "bo", False, 2),
            AssignRow("g", "ana", True, 1)]  # fmt: skip
    assert store.assign_batch(rows, round=1, gold={"g": "dog"}) == 3
    a = store.assignments(round=1)
    assert list(a.columns) == ["id", "annotator", "round", "task", "gold", "overlap", "event"]
    assert a[["id", "annotator", "gold", "overlap"]].values.tolist() == [
        ["x", "ana", False, 2], ["x", "bo", False, 2], ["g", "ana", True, 1]]  # fmt: skip
    assert store.current(task=None).empty  # neither assignments nor gold answers are labels
    gold = store.history(kind="gold")
    assert gold["value"].tolist() == ["dog"] and gold["annotator"].tolist() == ["gold:reference"]
    assert set(gold["source"]) == {"import"}
    with pytest.raises(LabelError, match="has an assignment already"):
        store.assign_batch([AssignRow("y", "ana")], round=1)
    assert store.assign_batch([AssignRow("y", "ana")], round=1, task="boxes") == 1
    before = store.events_count()
    for bad, kw in [
        ([AssignRow("y", "ana"), AssignRow("y", "ana")], {}),  # twice to one person
        ([AssignRow("y", "")], {}),
        ([AssignRow("y", "consensus:x")], {}),
        ([AssignRow("y", "ana", gold="yes")], {}),
        ([AssignRow("y", "ana", overlap=0)], {}),
        ([AssignRow("y", "ana")], {"round": -1}),
        ([AssignRow("y", "ana")], {"gold": {"y": "cow"}}),  # not a class
        ([AssignRow("y", "ana")], {"gold_by": "ref"}),  # gold_by needs the gold: prefix
        ([("y", "ana")], {}),
        ([], {}),
    ]:
        with pytest.raises(LabelError):
            store.assign_batch(bad, **{"round": 5, **kw})
    assert store.events_count() == before


# The schema as version 1 wrote it: the events table's CHECKs lack the new kinds and source.
V1_DDL = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('label', 'skip', 'undo', 'import', 'model', 'review',
            'class_add', 'class_rename', 'class_merge')),
        sample_id TEXT, hash TEXT, annotator TEXT NOT NULL,
        round INTEGER NOT NULL DEFAULT 0 CHECK (round >= 0),
        task TEXT NOT NULL DEFAULT 'class', value TEXT,
        source TEXT NOT NULL CHECK (source IN ('human', 'model', 'import')),
        ts REAL NOT NULL, seconds REAL CHECK (seconds IS NULL OR seconds >= 0),
        target INTEGER, extra TEXT)""",
    "CREATE INDEX events_key ON events (sample_id, annotator, round, task)",
    "CREATE INDEX events_annotator ON events (annotator, task)",
    "CREATE INDEX events_kind ON events (kind)",
    "CREATE INDEX events_target ON events (target) WHERE target IS NOT NULL",
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END",
    "INSERT INTO meta VALUES ('schema_version', '1')",
]


def _v1_file(path):
    con = sqlite3.connect(path)
    for stmt in V1_DDL:
        con.execute(stmt)
    rows = [
        (1, "class_add", None, "", '{"name":"cat","code":0}', "human", None, None),
        (2, "class_add", None, "", '{"name":"dog","code":1}', "human", None, None),
        (3, "label", "x", "ana", '{"class":0}', "human", None, None),
        (4, "import", "y", "bo", '{"class":1}', "import", None, '{"from":"a.csv"}'),
        (5, "review", "x", "rita", '"accept"', "human", 3, None),
    ]
    con.executemany(
        "INSERT INTO events (id, kind, sample_id, annotator, value, source, ts, target, extra) "
        "VALUES (?, ?, ?, ?, ?, ?, 1.0, ?, ?)",
        [r[:6] + r[6:] for r in rows],
    )
    con.commit()
    with pytest.raises(sqlite3.IntegrityError):  # the old CHECK refuses what version 2 adds
        con.execute("INSERT INTO events (kind, annotator, source, ts) VALUES ('assign', 'a', "
                    "'human', 1)")  # fmt: skip
    con.close()


def test_a_schema_1_file_opens_and_is_upgraded_once(tmp_path):
    path = tmp_path / "old.db"
    _v1_file(path)
    store = LabelStore(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
    # every event kept, with its id, value, target and extra
    hist = store.history()
    assert hist["event"].tolist() == [1, 2, 3, 4, 5]
    assert hist.set_index("event").loc[5, "target"] == 3
    assert hist.set_index("event").loc[4, "extra"] == {"from": "a.csv"}
    assert store.classes == ["cat", "dog"]
    assert dict(zip(store.current()["id"], store.current()["value"], strict=True)) == {
        "x": "cat", "y": "dog"}  # fmt: skip
    # the new kinds and source work, and the table is still append-only with its indexes
    store.label("x", "dog", annotator="consensus:majority", source="consensus", round=1)
    store.assign_batch([AssignRow("y", "ana")], round=2, gold={"x": "cat"})
    for stmt in ["UPDATE events SET annotator = 'eve'", "DELETE FROM events"]:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(stmt)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert {"events_key", "events_annotator", "events_kind", "events_target"} <= names
    assert "events_new" not in names
    con.close()
    store.close()
    # opening again changes nothing
    again = LabelStore(path)
    assert again.events_count() == 8 and again.history()["event"].tolist()[:5] == [1, 2, 3, 4, 5]


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    LabelStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(LabelError, match="newer workbench"):
        LabelStore(path)


def test_extra_survives_json_exactly(store):
    extra = {"a": [1, 2.5, None, "x"], "b": {"c": False}}
    e = store.label("x", "cat", annotator="ana", extra=extra)
    raw = raw_connection(store).execute("SELECT extra FROM events WHERE id = ?", (e,))
    assert json.loads(raw.fetchone()[0]) == extra

"""Leased assignment from a pool, and the versioned schema, on both backends: no item served twice
unless overlap asked for it, leases that run out, gold at its rate, sessions that ask the store."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from postgres_server import raw_connection, raw_errors

from workbench import Catalog
from workbench.errors import LabelError, ParameterError
from workbench.labels import LabelStore
from workbench.labels._migrations import SCHEMA_VERSION
from workbench.labels.session import LabelingSession
from workbench.quality.assignment import gold_accuracy, gold_answers, open_pool, plan_pool

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    for i in range(30):
        Image.fromarray(np.full((5, 5), i * 8, np.uint8)).save(root / f"{i:03d}.png")
    return Catalog.from_folder(root, labels=None, progress=False, workers=1)


@pytest.fixture
def store(label_url, catalog):
    s = LabelStore(label_url, catalog=catalog)
    s.add_classes(CLASSES)
    return s


def _drain(store, names, lease=600.0, **kw):
    """Annotators take turns claiming and labeling until the pool has nothing left for anyone."""
    got: dict[str, list[str]] = {n: [] for n in names}
    active = list(names)
    while active:
        for who in list(active):
            sid = store.claim(who, lease=lease, **kw)
            if sid is None:
                active.remove(who)
                continue
            got[who].append(sid)
            store.label(sid, "cat", annotator=who, **kw)
    return got


def test_schema_version_lists_every_migration_and_a_newer_database_is_refused(store):
    raw = raw_connection(store)
    versions = [r[0] for r in raw.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    url = store.url
    store.close()
    LabelStore(url).close()  # opening again applies nothing twice
    assert raw.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    raw.execute(
        "INSERT INTO schema_version (version, applied) VALUES (?, 0)", (SCHEMA_VERSION + 1,)
    )
    with pytest.raises(LabelError, match="newer workbench"):
        LabelStore(url)


def test_the_pool_plan_is_append_only_in_the_database(store, catalog):
    open_pool(store, catalog.ids[:6], overlap=0.0)
    raw = raw_connection(store)
    for stmt in ["UPDATE pool_items SET needed = 5", "DELETE FROM pool_items", "DELETE FROM pools"]:
        with pytest.raises(raw_errors(), match="append-only"):
            raw.execute(stmt)


def test_without_overlap_no_item_goes_to_two_annotators(store, catalog):
    ids = catalog.ids[:20]
    plan = open_pool(store, ids, overlap=0.0, seed=3)
    assert sorted(plan["id"]) == sorted(ids) and (plan["overlap"] == 1).all()
    got = _drain(store, ["ana", "bo", "cy"])
    served = [s for v in got.values() for s in v]
    assert sorted(served) == sorted(ids)  # each item exactly once
    assert max(map(len, got.values())) - min(map(len, got.values())) <= 1
    assert store.claim("dee") is None
    status = store.pool_status()
    assert status["items"] == 20 and sum(status["done"].values()) == 20
    assert not any(status["held"].values())


def test_overlap_items_go_to_exactly_per_item_annotators(store, catalog):
    ids = catalog.ids[:20]
    plan = open_pool(store, ids, overlap=0.2, per_item=2, seed=1)
    got = _drain(store, ["ana", "bo", "cy"])
    by_item: dict[str, set[str]] = {}
    for who, items in got.items():
        assert len(items) == len(set(items))  # nobody gets an item twice
        for s in items:
            by_item.setdefault(s, set()).add(who)
    want = dict(zip(plan["id"], plan["overlap"], strict=True))
    assert {s: len(w) for s, w in by_item.items()} == want
    assert sum(len(w) == 2 for w in by_item.values()) == 4  # round(0.2 * 20)
    assert len(store.current()) == 24


def test_a_lease_runs_out_and_the_item_goes_to_someone_else(store, catalog):
    ids = catalog.ids[:2]
    open_pool(store, ids, overlap=0.0)
    first = store.claim("ana", lease=0.5)
    assert store.claim("ana", lease=0.5) == first  # asking again renews, not a second item
    other = store.claim("bo", lease=0.5)
    assert other != first
    assert store.claim("cy", lease=0.5) is None  # both items are held
    time.sleep(0.8)  # ana and bo disappear: their leases run out
    assert store.claim("cy", lease=60) == first
    with pytest.raises(LabelError, match="not yours any more"):
        store.label(first, "cat", annotator="ana")  # ana comes back too late
    assert store.current(annotator="ana").empty
    store.label(other, "dog", annotator="bo")  # expired, but nobody took it: it counts
    store.label(first, "cat", annotator="cy")
    assert store.pool_status()["done"] == {"ana": 0, "bo": 1, "cy": 1}


def test_gold_is_mixed_in_at_its_rate_and_never_twice_to_one_annotator(store, catalog):
    gold = {sid: CLASSES[k % 3] for k, sid in enumerate(catalog.ids[-6:])}
    plan = open_pool(store, catalog.ids, overlap=0.0, gold=gold, gold_rate=0.2, seed=2)
    assert set(plan.loc[plan["gold"], "id"]) == set(gold)
    got = _drain(store, ["ana", "bo"])
    for items in got.values():
        flags = [s in gold for s in items]
        assert len(set(items)) == len(items)
        for k in range(1, len(flags) + 1):  # at every point within one item of the rate
            assert abs(sum(flags[:k]) - 0.2 * k) <= 1
    regular = [s for v in got.values() for s in v if s not in gold]
    assert sorted(regular) == sorted(set(catalog.ids) - set(gold))
    assert gold_answers(store) == gold
    acc = gold_accuracy(store).set_index("annotator")  # the quality side reads it as always
    for who, items in got.items():
        assert acc.loc[who, "n"] == sum(s in gold for s in items)
    assert set(store.current()["annotator"]) == {"ana", "bo"}  # gold answers are never current


def test_a_pool_and_an_assignment_do_not_mix_and_plans_are_checked(store, catalog):
    open_pool(store, catalog.ids[:4])
    with pytest.raises(LabelError, match="already"):
        open_pool(store, catalog.ids[:4])
    with pytest.raises(ParameterError, match="gold_rate"):
        plan_pool(catalog.ids, gold_rate=0.3)
    with pytest.raises(LabelError, match="lease"):
        store.claim("ana", lease=0)
    with pytest.raises(LabelError, match="no pool"):
        store.claim("ana", round=5)


def test_sessions_ask_the_store_for_their_next_item(store, catalog):
    ids = catalog.ids[:12]
    open_pool(store, ids, overlap=0.25, per_item=2, seed=4)
    a = LabelingSession(catalog, store, annotator="ana", lease=60)
    b = LabelingSession(catalog, store, annotator="bo", lease=60)
    shared = overlapping(store)
    assert a.pooled and a.blind and (a.current != b.current or a.current in shared)
    while a.current is not None or b.current is not None:
        for s, other in ((a, b), (b, a)):
            if s.current is not None:
                assert s.current not in other.queue or s.current in shared
                s.submit("dog")
    cur = store.current()
    per_item = cur.groupby("id")["annotator"].nunique()
    assert sorted(per_item.index) == sorted(ids)
    assert int((per_item == 2).sum()) == 3 and len(cur) == 15
    again = LabelingSession(catalog, store, annotator="ana", lease=60)  # a restart resumes
    assert again.current is None and set(again.queue) == set(a.queue)


def overlapping(store):
    raw = raw_connection(store)
    return {r[0] for r in raw.execute("SELECT sample_id FROM pool_items WHERE needed > 1")}


def test_annotators_claiming_at_once_never_get_the_same_item(store, catalog):
    import threading

    open_pool(store, catalog.ids, overlap=0.0)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def annotator(who):
        own = LabelStore(store.url)  # a connection of its own, as in another kernel
        barrier.wait()
        mine = got.setdefault(who, [])
        while (sid := own.claim(who, lease=600)) is not None:
            mine.append(sid)
            own.label(sid, "cat", annotator=who)
        own.close()

    threads = [threading.Thread(target=annotator, args=(f"a{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = [s for v in got.values() for s in v]
    assert sorted(served) == sorted(catalog.ids)  # every item once: none twice, none lost

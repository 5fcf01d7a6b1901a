"""Assignment on a real store: overlap, gold rate, coverage, determinism; sessions that serve only
an annotator's share and never show other annotators' labels or gold answers; gold accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import workbench.quality as quality
from workbench import Catalog
from workbench.errors import WorkbenchError
from workbench.labels import LabelStore
from workbench.labels.session import LabelingSession
from workbench.quality.assignment import assign, gold_accuracy, gold_answers, plan_assignment

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """60 tiny images without folder labels (the class must not show in the catalog)."""
    root = tmp_path_factory.mktemp("assign")
    for i in range(60):
        Image.fromarray(np.full((6, 6), i * 4, np.uint8)).save(root / f"{i:03d}.png")
    return Catalog.from_folder(root, labels=None, progress=False, workers=1)


@pytest.fixture
def store(label_url, catalog):
    s = LabelStore(label_url, catalog=catalog)
    s.add_classes(CLASSES)
    return s


def _gold(catalog, n=10):
    ids = catalog.ids[-n:]
    return {sid: CLASSES[k % 3] for k, sid in enumerate(ids)}


@pytest.mark.parametrize("m, per_item", [(2, 2), (3, 2), (3, 3), (5, 2), (4, 3)])
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.37, 1.0])
@pytest.mark.parametrize("seed", [0, 7])
def test_plan_overlap_coverage_and_balance(catalog, m, per_item, overlap, seed):
    names = [f"a{k}" for k in range(m)]
    ids = catalog.ids[:47]
    plan = plan_assignment(ids, names, overlap=overlap, per_item=per_item, seed=seed)
    counts = plan.groupby("id")["annotator"].nunique()
    assert set(counts.index) == set(ids)  # every item covered
    assert not plan.duplicated(["id", "annotator"]).any()
    shared = int((counts > 1).sum())
    assert abs(shared - overlap * len(ids)) <= 1
    assert set(counts[counts > 1]) <= {per_item}
    assert (plan.set_index("id")["overlap"] == counts.reindex(plan["id"]).to_numpy()).all()
    load = plan["annotator"].value_counts().reindex(names, fill_value=0)
    assert load.max() - load.min() <= 1
    again = plan_assignment(ids, names, overlap=overlap, per_item=per_item, seed=seed)
    assert again.equals(plan)  # deterministic per seed


def test_pairs_share_items_about_equally(catalog):
    plan = plan_assignment(catalog.ids, [f"a{k}" for k in range(4)], overlap=1.0, seed=0)
    pairs = plan.groupby("id")["annotator"].apply(lambda a: tuple(sorted(a))).value_counts()
    assert len(pairs) == 6 and pairs.max() - pairs.min() <= 4  # 60 items over 6 pairs


def test_a_different_seed_gives_a_different_plan(catalog):
    a = plan_assignment(catalog.ids, ["ana", "bo", "cy"], overlap=0.2, seed=1)
    b = plan_assignment(catalog.ids, ["ana", "bo", "cy"], overlap=0.2, seed=2)
    assert not a.equals(b)


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.25])
def test_gold_rate_within_one_item_per_annotator(catalog, rate):
    gold = _gold(catalog, 15)
    plan = plan_assignment(catalog, ["ana", "bo", "cy"], overlap=0.2, gold=gold,
                           gold_rate=rate, seed=3)  # fmt: skip
    for _, mine in plan.groupby("annotator"):
        assert abs(mine["gold"].sum() - rate * len(mine)) <= 1
    served = set(plan.loc[plan["gold"], "id"])
    assert served <= set(gold)
    assert not set(plan.loc[~plan["gold"], "id"]) & served  # a gold item is nobody's regular
    assert set(plan["id"]) == set(catalog.ids)  # the pool's other items are regular items


@pytest.mark.parametrize("m, pool, rate", [(3, 25, 0.05), (2, 30, 0.1), (5, 40, 0.05),
                                           (3, 10, 0.0), (4, 8, 0.25)])  # fmt: skip
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_gold_pool_item_is_left_unlabeled(catalog, m, pool, rate, seed):
    gold = _gold(catalog, pool)
    names = [f"a{k}" for k in range(m)]
    plan = plan_assignment(catalog, names, overlap=0.2, gold=gold, gold_rate=rate, seed=seed)
    assert set(plan["id"]) == set(catalog.ids)  # every item goes to someone
    served = plan.loc[plan["gold"], "id"]
    regular = plan.loc[~plan["gold"], "id"]
    assert not set(served) & set(regular)
    assert not plan.duplicated(["id", "annotator"]).any()
    # each queue still holds its share of gold (within one item) and no more pool items serve
    # as gold than the fullest queue needs
    for _, mine in plan.groupby("annotator"):
        assert abs(mine["gold"].sum() - rate * len(mine)) <= 1
    fullest = plan.groupby("annotator")["gold"].sum().max()
    assert served.nunique() == fullest
    again = plan_assignment(catalog, names, overlap=0.2, gold=gold, gold_rate=rate, seed=seed)
    assert again.equals(plan)


def test_gold_answers_are_recorded_only_for_items_served_as_gold(catalog, store):
    gold = _gold(catalog, 30)
    plan = assign(store, ["ana", "bo", "cy"], overlap=0.2, gold=gold, gold_rate=0.05, seed=0)
    served = set(plan.loc[plan["gold"], "id"])
    assert 0 < len(served) < len(gold)
    assert gold_answers(store) == {s: gold[s] for s in served}
    rec = store.assignments(round=0)
    assert set(rec["id"]) == set(catalog.ids)


def test_two_annotators_with_20_percent_overlap_get_the_right_counts(catalog, store):
    plan = assign(store, ["ana", "bo"], overlap=0.2, seed=0)
    n = len(catalog.ids)  # 60: 12 shared, 48 split 24 / 24
    ana = LabelingSession(catalog, store, annotator="ana")
    bo = LabelingSession(catalog, store, annotator="bo")
    assert ana.assigned and bo.assigned and ana.blind and bo.blind
    assert len(ana.queue) == len(bo.queue) == 12 + 24
    assert len(set(ana.queue) & set(bo.queue)) == round(0.2 * n)
    assert set(ana.queue) | set(bo.queue) == set(catalog.ids)
    assert set(ana.queue) == set(plan.loc[plan["annotator"] == "ana", "id"])
    # the store's record is the plan
    rec = store.assignments(round=0)
    pairs = sorted(zip(rec["id"], rec["annotator"], strict=True))
    assert pairs == sorted(zip(plan["id"], plan["annotator"], strict=True))


def test_a_session_serves_exactly_its_items_and_never_others_labels_or_gold(catalog, store):
    gold = _gold(catalog, 12)
    plan = assign(store, ["ana", "bo", "cy"], overlap=0.3, gold=gold, gold_rate=0.1, seed=5)
    mine = set(plan.loc[plan["annotator"] == "ana", "id"])
    # bo labels everything he was given, including items shared with ana
    bo = LabelingSession(catalog, store, annotator="bo")
    while bo.current is not None:
        bo.submit("bird")
    ana = LabelingSession(catalog, store, annotator="ana")
    assert set(ana.queue) == mine and ana.blind and ana.progress["done"] == 0
    shared = mine & set(plan.loc[plan["annotator"] == "bo", "id"])
    assert shared
    gold_mine = mine & set(gold)
    assert gold_mine
    for sid in ana.queue:
        assert ana.value_of(sid) is None and ana.start_value(sid) is None
        assert ana.status(sid) == "todo"
    assert ana.pre_annotations == {}
    # nothing in the session's state says which items are gold (the assignment's "gold" flag)
    assert "'gold'" not in repr(vars(ana)) and "True" not in repr(vars(ana).get("ids"))
    # asking for other people's labels or the gold answers as a start is refused
    for name in ("bo", "gold:reference"):
        with pytest.raises(WorkbenchError):
            LabelingSession(catalog, store, annotator="ana", pre_annotations=name)
    # ana labels her share; the session walks exactly her items
    seen = []
    while ana.current is not None:
        seen.append(ana.current)
        ana.submit("cat")
    assert sorted(seen) == sorted(mine)
    # the reviewer side reads the gold answers back and scores everyone on them
    assert gold_answers(store) == {s: gold[s] for s in set(plan.loc[plan["gold"], "id"])}
    acc = gold_accuracy(store).set_index("annotator")
    for who, answer in [("ana", "cat"), ("bo", "bird")]:
        given = set(plan.loc[(plan["annotator"] == who) & plan["gold"], "id"])
        assert acc.loc[who, "n"] == len(given)
        assert acc.loc[who, "correct"] == sum(gold[s] == answer for s in given)


def test_sessions_without_an_assignment_are_unchanged_and_assigned_only_is_checked(catalog, store):
    s = LabelingSession(catalog, store, annotator="ana")
    assert not s.assigned and len(s.queue) == len(catalog.ids) and not s.blind
    with pytest.raises(WorkbenchError, match="no assignment"):
        LabelingSession(catalog, store, annotator="ana", assigned_only=True)
    assign(store, ["ana", "bo"], overlap=0.0, round=1)
    with pytest.raises(WorkbenchError, match="no items"):
        LabelingSession(catalog, store, annotator="zed", round=1)
    everything = LabelingSession(catalog, store, annotator="ana", round=1, assigned_only=False)
    assert len(everything.queue) == len(catalog.ids)
    with pytest.raises(WorkbenchError):
        LabelingSession(catalog, store, annotator="ana", assigned_only="yes")
    # round 0 still has no assignment: the session there serves everything
    assert len(LabelingSession(catalog, store, annotator="bo").queue) == len(catalog.ids)


BAD = [
    ({"annotators": []}, "annotator"),
    ({"annotators": "ana"}, "list"),
    ({"annotators": ["ana", "ana"]}, "distinct"),
    ({"annotators": ["ana", ""]}, "annotator"),
    ({"annotators": ["ana", "consensus:x"]}, "reserved"),
    ({"annotators": ["ana", "gold:x"]}, "reserved"),
    ({"annotators": ["ana", 3]}, "annotator"),
    ({"overlap": 1.5}, "overlap"),
    ({"overlap": -0.1}, "overlap"),
    ({"overlap": float("nan")}, "overlap"),
    ({"overlap": "20%"}, "overlap"),
    ({"per_item": 3}, "annotators"),  # two annotators cannot share an item three ways
    ({"per_item": 1}, "per_item"),
    ({"per_item": 2.0}, "per_item"),
    ({"gold_rate": 0.1}, "gold"),  # no gold given
    ({"gold_rate": 1.0, "gold": {"000.png": "cat"}}, "below 1"),
    ({"gold_rate": 0.5, "gold": {"000.png": "cat"}}, "gold"),  # too few gold items
    ({"gold": ["000.png"]}, "gold"),
    ({"gold": {"000.png": "cow"}, "gold_rate": 0.02}, "cow|class"),  # not a class
    ({"gold": {"nope.png": "cat"}, "gold_rate": 0.02}, "nope"),  # not in the catalog
    ({"items": ["000.png", "000.png"]}, "distinct"),
    ({"items": ["nope.png"]}, "nope"),
    ({"items": 5}, "items"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"round": -1}, "round"),
    ({"task": ""}, "task"),
    ({"gold_by": "ref", "gold": {"000.png": "cat"}, "gold_rate": 0.02}, "gold_by"),
]


@pytest.mark.parametrize("kw, match", BAD)
def test_bad_inputs_raise_workbench_errors_and_leave_the_store_unchanged(store, kw, match):
    store.label("001.png", "cat", annotator="ana")
    before = store.events_count()
    args = {"annotators": ["ana", "bo"], **kw}
    with pytest.raises(WorkbenchError, match=match):
        assign(store, **args)
    assert store.events_count() == before


def test_fuzzed_inputs_never_escape_as_other_errors(store):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                     st.text(max_size=4), st.lists(st.text(max_size=3), max_size=3))  # fmt: skip
    before = store.events_count()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(junk, junk, junk, junk, junk)
    def run(annotators, overlap, per_item, gold_rate, seed):
        try:
            assign(store, annotators, overlap=overlap, per_item=per_item, gold_rate=gold_rate,
                   seed=seed, round=9)  # fmt: skip
        except WorkbenchError:
            return
        raise AssertionError("junk was accepted")  # every draw holds at least one bad value

    run()
    assert store.events_count() == before


def test_assigning_a_round_twice_is_refused(store):
    assign(store, ["ana", "bo"], round=2)
    before = store.events_count()
    with pytest.raises(WorkbenchError, match="already"):
        assign(store, ["ana", "bo"], round=2, seed=4)
    assert store.events_count() == before


def test_the_quality_package_exports_every_public_name():
    import importlib

    for name in (*quality._MODULES, "_votes"):
        mod = importlib.import_module(f"workbench.quality.{name}")
        for public in mod.__all__:
            if public in quality._MODULES:  # consensus.consensus, completeness.completeness
                continue
            assert getattr(quality, public) is getattr(mod, public), public
            assert public in quality.__all__
    assert quality.consensus.consensus.__module__ == "workbench.quality.consensus"
    assert quality.assign is assign
    with pytest.raises(AttributeError):
        quality.nothing_here  # noqa: B018

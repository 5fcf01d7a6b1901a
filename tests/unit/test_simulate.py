"""Simulated annotators: stated error rates, determinism, and labels that go through the real
labeling path (a LabelingSession per annotator, over their assigned items only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench import Catalog
from workbench.errors import ParameterError
from workbench.labels import LabelStore
from workbench.labels.session import LabelingSession
from workbench.quality.assignment import assign
from workbench.quality.simulate import (
    SIMULATION_COLUMNS,
    SimulatedAnnotator,
    answers,
    biased,
    careful,
    careless,
    simulate,
)

CLASSES = ["cat", "dog", "horse", "zebra", "cow"]
N = 20_000  # answers per rate check: the standard error of a 20 % rate is 0.3 %


def _truth_of(ids):
    return {sid: CLASSES[k % len(CLASSES)] for k, sid in enumerate(ids)}


def _answers(annotator, n=N):
    ids = [f"item{k:05d}" for k in range(n)]
    truth = _truth_of(ids)
    given = [annotator.answer(i, truth[i], CLASSES) for i in ids]
    return pd.DataFrame({"id": ids, "truth": [truth[i] for i in ids], "value": given})


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """90 tiny images without folder labels."""
    root = tmp_path_factory.mktemp("simulate")
    for i in range(90):
        Image.fromarray(np.full((6, 6), i, np.uint8)).save(root / f"{i:03d}.png")
    return Catalog.from_folder(root, labels=None, progress=False, workers=1)


@pytest.fixture
def store(label_url, catalog):
    s = LabelStore(label_url, catalog=catalog)
    s.add_classes(CLASSES)
    return s


def _team():
    return [careful("ana"), careless("bo"), biased("cy")]


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("make, rate", [(careful, 0.02), (careless, 0.2)])
def test_error_rate_is_the_stated_one(make, rate):
    df = _answers(make("x"))
    wrong = df["value"] != df["truth"]
    assert abs(wrong.mean() - rate) < 0.01
    # every class is wrong about as often: the errors are not tied to a class
    per_class = wrong.groupby(df["truth"]).mean()
    assert (per_class - rate).abs().max() < 0.025


def test_careless_errors_are_uniform_over_the_other_classes():
    df = _answers(careless("x"))
    wrong = df[df["value"] != df["truth"]]
    for cls, rows in wrong.groupby("truth"):
        shares = rows["value"].value_counts(normalize=True)
        assert cls not in shares.index
        assert set(shares.index) == set(CLASSES) - {cls}
        assert (shares - 1 / (len(CLASSES) - 1)).abs().max() < 0.05


def test_biased_confuses_the_stated_pairs_else_careful():
    a = biased("x", rate=0.4, error_rate=0.02)
    df = _answers(a)
    for true, given in (("horse", "zebra"), ("cat", "dog")):
        rows = df[df["truth"] == true]
        assert abs((rows["value"] == given).mean() - (0.4 + 0.6 * 0.02 / 4)) < 0.02
        assert abs((rows["value"] != true).mean() - a.error_probability(true, 5)) < 0.02
    others = df[~df["truth"].isin(["horse", "cat"])]
    assert abs((others["value"] != others["truth"]).mean() - 0.02) < 0.01
    # the reverse confusion is not part of the behaviour
    zebras = df[df["truth"] == "zebra"]
    assert (zebras["value"] == "horse").mean() < 0.02


def test_stated_probabilities_and_description():
    a = biased("x", {"horse": "zebra"}, rate=0.5, error_rate=0.1)
    assert a.error_probability("horse", 10) == pytest.approx(0.5 + 0.5 * 0.1)
    assert a.error_probability("cat", 10) == pytest.approx(0.1)
    assert a.error_probability("cat", 1) == 0.0  # one class: nothing to get wrong
    assert careless("y").describe() == "careless: 20% random errors"
    assert "horse → zebra at 50%" in a.describe()


def test_a_single_class_cannot_be_wrong():
    a = careless("x", error_rate=1.0)
    assert {a.answer(f"i{k}", "cat", ["cat"]) for k in range(50)} == {"cat"}


# ------------------------------------------------------------------ determinism
def test_answers_depend_on_seed_name_and_item_only():
    a = careless("x", seed=3)
    ids = [f"item{k}" for k in range(500)]
    truth = _truth_of(ids)
    forward = {i: a.answer(i, truth[i], CLASSES) for i in ids}
    backward = {i: a.answer(i, truth[i], CLASSES) for i in reversed(ids)}
    assert forward == backward  # the order items come in changes nothing
    assert forward == {i: careless("x", seed=3).answer(i, truth[i], CLASSES) for i in ids}
    for other in (careless("x", seed=4), careless("z", seed=3)):
        assert forward != {i: other.answer(i, truth[i], CLASSES) for i in ids}


def test_simulation_is_deterministic(fresh_url, catalog):
    truth = _truth_of(catalog.ids)
    tables = []
    for _ in range(2):
        s = LabelStore(fresh_url(), catalog=catalog)
        s.add_classes(CLASSES)
        assign(s, ["ana", "bo", "cy"], overlap=0.3, seed=1)
        tables.append(simulate(catalog, s, _team(), truth).drop(columns="event"))
        cur = s.current(task="class")[["id", "annotator", "value"]]
        tables.append(cur.sort_values(["id", "annotator"]).reset_index(drop=True))
    assert tables[0].equals(tables[2]) and tables[1].equals(tables[3])


def test_an_interrupted_simulation_resumes_with_the_same_answers(fresh_url, catalog):
    truth = _truth_of(catalog.ids)
    team = _team()
    whole = LabelStore(fresh_url(), catalog=catalog)
    whole.add_classes(CLASSES)
    assign(whole, ["ana", "bo", "cy"], overlap=0.3, seed=1)
    simulate(catalog, whole, team, truth)

    parts = LabelStore(fresh_url(), catalog=catalog)
    parts.add_classes(CLASSES)
    assign(parts, ["ana", "bo", "cy"], overlap=0.3, seed=1)
    first = LabelingSession(catalog, parts, annotator="bo")
    for _ in range(7):  # bo labels a few items, then stops
        sid = first.current
        first.submit(team[1].answer(sid, truth[sid], CLASSES))
    first.close()
    rest = simulate(catalog, parts, team, truth)
    assert (rest["annotator"] == "bo").sum() == len(first.queue) - 7  # only what was left

    def labels(s):
        cur = s.current(task="class")
        return dict(zip(zip(cur["id"], cur["annotator"], strict=True), cur["value"], strict=True))

    assert labels(parts) == labels(whole)
    again = simulate(catalog, parts, team, truth)  # everything done: nothing more to give
    assert again.empty and list(again.columns) == SIMULATION_COLUMNS
    assert labels(parts) == labels(whole)


# ------------------------------------------------------------------ through the store
def test_labels_land_in_the_store_with_annotator_round_and_task(store, catalog):
    truth = _truth_of(catalog.ids)
    plan = assign(store, ["ana", "bo", "cy"], overlap=0.2, round=2, task="kind", seed=0)
    out = simulate(catalog, store, _team(), truth, round=2, task="kind")
    assert list(out.columns) == SIMULATION_COLUMNS
    assert len(out) == len(plan)
    assert (out["correct"] == (out["value"] == out["truth"])).all()
    assert (out["truth"] == out["id"].map(truth)).all()

    hist = store.history(kind="label", task="kind")
    assert len(hist) == len(plan)
    assert set(hist["round"]) == {2} and set(hist["source"]) == {"human"}
    assert sorted(hist["event"]) == sorted(out["event"])
    by_event = hist.set_index("event")
    assert (by_event.loc[out["event"], "annotator"].to_numpy() == out["annotator"]).all()
    assert (by_event.loc[out["event"], "value"].to_numpy() == out["value"]).all()
    assert store.current(task="class").empty  # other tasks untouched


def test_each_session_serves_only_its_annotators_items(store, catalog):
    truth = _truth_of(catalog.ids)
    plan = assign(store, ["ana", "bo", "cy"], overlap=0.25, seed=5)
    simulate(catalog, store, _team(), truth)
    cur = store.current(task="class")
    for name, mine in plan.groupby("annotator"):
        labeled = set(cur.loc[cur["annotator"] == name, "id"])
        assert labeled == set(mine["id"])
    shared = cur.groupby("id")["annotator"].nunique()
    assert int((shared == 2).sum()) == round(0.25 * len(catalog))


def test_gold_items_are_labeled_blind_like_any_other(store, catalog):
    truth = _truth_of(catalog.ids)
    gold = {sid: truth[sid] for sid in catalog.ids[-20:]}
    plan = assign(store, ["ana", "bo", "cy"], overlap=0.2, gold=gold, gold_rate=0.1, seed=2)
    out = simulate(catalog, store, _team(), truth)
    gold_rows = plan[plan["gold"]]
    assert len(gold_rows) > 0
    done = set(zip(out["id"], out["annotator"], strict=True))
    assert set(zip(gold_rows["id"], gold_rows["annotator"], strict=True)) <= done


def test_answers_in_memory_are_the_labels_simulate_records(store, catalog):
    truth = _truth_of(catalog.ids)
    plan = assign(store, ["ana", "bo", "cy"], overlap=0.3, seed=4)
    recorded = simulate(catalog, store, _team(), truth)
    memory = answers(plan, _team(), truth, CLASSES)
    assert list(memory.columns) == ["id", "annotator", "truth", "value", "correct"]
    key = ["id", "annotator"]
    a = recorded.drop(columns="event").sort_values(key).reset_index(drop=True)
    b = memory.sort_values(key).reset_index(drop=True)
    assert a.equals(b)


@pytest.mark.parametrize(
    "plan, team, truth, message",
    [
        ("not a plan", None, None, "columns id and annotator"),
        (None, [careful("ana")], None, "not simulated"),
        (None, None, {}, "no true class"),
        (None, [], None, "non-empty list"),
    ],
)
def test_answers_refuses_bad_inputs(catalog, plan, team, truth, message):
    from workbench.quality.assignment import plan_assignment

    good = plan_assignment(catalog.ids, ["ana", "bo", "cy"], overlap=0.2, seed=0)
    with pytest.raises(ParameterError, match=message):
        answers(
            good if plan is None else plan,
            _team() if team is None else team,
            _truth_of(catalog.ids) if truth is None else truth,
            CLASSES,
        )


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    "team, truth, message",
    [
        ([], None, "non-empty list"),
        (["ana"], None, "SimulatedAnnotator"),
        ([careful("ana"), careless("ana")], None, "distinct"),
        ([careful("ana"), careful("dan")], None, "no items in the assignment"),
        ([careful("ana")], "partial", "no true class"),
        ([biased("ana", {"cat": "lynx"})], None, "does not offer"),
        ([careful("ana")], "unknown class", "does not offer"),
        ([careful("ana")], ["cat"], "truth maps"),
    ],
)
def test_bad_inputs_raise_and_write_nothing(store, catalog, team, truth, message):
    full = _truth_of(catalog.ids)
    if truth is None:
        truth = full
    elif truth == "partial":
        truth = dict(list(full.items())[:10])
    elif truth == "unknown class":
        truth = dict.fromkeys(full, "lynx")
    assign(store, ["ana", "bo", "cy"], overlap=0.2, seed=0)
    before = store.events_count()
    with pytest.raises(ParameterError, match=message):
        simulate(catalog, store, team, truth)
    assert store.events_count() == before


def test_without_an_assignment_nothing_is_labeled(store, catalog):
    before = store.events_count()
    with pytest.raises(ParameterError, match="no assignment"):
        simulate(catalog, store, _team(), _truth_of(catalog.ids))
    assert store.events_count() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "x", "error_rate": 1.5},
        {"name": "x", "error_rate": -0.1},
        {"name": "x", "seed": -1},
        {"name": "x", "confusions": {"cat": "dog"}},
        {"name": "x", "confusions": {"cat": ("dog", 2.0)}},
        {"name": "x", "confusions": {"cat": ("cat", 0.5)}},
    ],
)
def test_bad_behaviour_is_refused(kwargs):
    with pytest.raises(ParameterError):
        SimulatedAnnotator(**kwargs)


def test_catalog_labels_are_the_default_truth(tmp_path, label_url):
    root = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((6, 6), i, np.uint8)).save(root / cls / f"{i}.png")
    cat = Catalog.from_folder(root, progress=False, workers=1)
    s = LabelStore(label_url, catalog=cat)
    s.add_classes(["cat", "dog"])
    assign(s, ["ana", "bo"], overlap=0.5, seed=0)
    out = simulate(cat, s, [careful("ana", error_rate=0.0), careful("bo", error_rate=0.0)])
    assert out["correct"].all()
    assert (out["truth"] == out["id"].str.split("/").str[0]).all()

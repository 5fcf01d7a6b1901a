"""Completeness and balance on a real LabelStore: unlabeled, under-labeled, class counts,
coverage by round, throughput."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench import Catalog
from workbench.errors import WorkbenchError
from workbench.labels import LabelStore
from workbench.quality.completeness import (
    balance,
    class_counts,
    completeness,
    coverage_by_round,
    throughput,
    under_labeled,
    unlabeled,
)


@pytest.fixture
def store(tmp_path, label_url):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), i * 30, np.uint8)).save(root / f"{i}.png")
    cat = Catalog.from_folder(root, labels=None, progress=False, workers=1)
    s = LabelStore(label_url, catalog=cat)
    s.add_classes(["cat", "dog", "bird"])
    # 0: ana+bo, 1: ana, 2: ana skipped, 3: bo (undone), 4: consensus only, 5: nothing
    s.label("0.png", "cat", annotator="ana", seconds=2.0)
    s.label("0.png", "cat", annotator="bo", seconds=4.0)
    s.label("1.png", "dog", annotator="ana", seconds=3.0)
    s.skip("2.png", annotator="ana", seconds=1.0)
    s.label("3.png", "dog", annotator="bo", seconds=10.0)
    s.undo("3.png", annotator="bo")
    s.label("4.png", "cat", annotator="consensus:majority", round=1, source="consensus",
            extra={"method": "majority", "confidence": 1.0, "events": []})  # fmt: skip
    s.label("1.png", "cat", annotator="bo", round=1, seconds=5.0)
    s.review("0.png", "accept", reviewer="rita", round=2)
    return s


def test_unlabeled_and_under_labeled(store):
    assert unlabeled(store) == ["2.png", "3.png", "4.png", "5.png"]
    under = under_labeled(store, required=2)
    assert under["id"].tolist() == ["2.png", "3.png", "4.png", "5.png"]
    assert (under["labels"] == 0).all() and (under["missing"] == 2).all()
    u3 = under_labeled(store, required=3).set_index("id")
    assert u3.loc["0.png", "missing"] == 1 and u3.loc["1.png", "labels"] == 2
    # the consensus annotator's name is a parameter: another name makes it an annotator
    assert "4.png" not in unlabeled(store, consensus="nobody")


def test_class_counts_and_balance():
    counts = class_counts(["cat", "cat", ["dog", "cat"], [[0, 0, 1, 1, "bird"]]],
                          ["cat", "dog", "bird", "fish"])  # fmt: skip
    assert counts.to_dict() == {"cat": 3, "dog": 1, "bird": 1, "fish": 0}
    b = balance(counts)
    assert b["ratio"] == math.inf and b["largest"] == "cat" and b["smallest"] == "fish"
    even = balance({"a": 5, "b": 5, "c": 5})
    assert even["ratio"] == 1.0 and even["entropy"] == pytest.approx(1.0)
    skew = balance({"a": 90, "b": 10})
    p = np.array([0.9, 0.1])
    assert skew["ratio"] == 9.0
    assert skew["entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(2))
    assert balance({"a": 4})["entropy"] == 1.0
    for bad in ({}, {"a": -1}, {"a": float("nan")}):
        with pytest.raises(WorkbenchError):
            balance(bad)


def test_coverage_by_round(store):
    cov = coverage_by_round(store).set_index("round")
    assert cov.loc[0, "labeled"] == 2 and cov.loc[0, "annotators"] == 2
    assert cov.loc[0, "labels"] == 3 and cov.loc[0, "coverage"] == pytest.approx(2 / 6)
    assert cov.loc[1, "labeled"] == 1  # the consensus label is not counted
    assert cov.loc[2, "reviewed"] == 1 and cov.loc[2, "labeled"] == 0


def test_throughput_counts_time_of_every_decision(store):
    t = throughput(store).set_index("annotator")
    assert t.loc["ana", "labeled"] == 2 and t.loc["ana", "decisions"] == 3
    assert t.loc["ana", "seconds"] == 6.0 and t.loc["ana", "seconds_per_item"] == 2.0
    assert t.loc["ana", "per_hour"] == pytest.approx(3600 * 3 / 6)
    bo = t.loc["bo"]  # the undone label's 10 s were spent all the same
    assert (bo["labeled"], bo["decisions"], bo["undos"], bo["seconds"]) == (2, 3, 1, 19.0)
    assert t.loc["rita", "reviews"] == 1 and math.isnan(t.loc["rita", "per_hour"])
    assert isinstance(t.loc["ana", "first"], pd.Timestamp) and t.loc["ana", "span_hours"] >= 0


def test_completeness_summary(store):
    c = completeness(store, required=2)
    assert (c["samples"], c["labeled"], c["unlabeled"], c["under_required"]) == (6, 2, 4, 4)
    assert c["fraction_labeled"] == pytest.approx(2 / 6)
    # final labels: 0 cat (review accepted the unanimous cat), 1 conflict, 4 consensus cat
    assert c["class_counts"].to_dict() == {"cat": 2, "dog": 0, "bird": 0}
    assert c["balance"]["ratio"] == math.inf


@pytest.mark.parametrize(
    "fn, kw, match",
    [
        (under_labeled, {"required": 0}, "required"),
        (under_labeled, {"required": 1.5}, "required"),
        (unlabeled, {"task": ""}, "task"),
        (unlabeled, {"consensus": 7}, "consensus"),
        (coverage_by_round, {"task": None}, "task"),
        (completeness, {"required": -1}, "required"),
    ],
)
def test_bad_arguments_raise_and_leave_the_store_unchanged(store, fn, kw, match):
    before = store.events_count()
    with pytest.raises(WorkbenchError, match=match):
        fn(store, **kw)
    assert store.events_count() == before


def test_a_store_without_catalog_needs_one(label_url):
    s = LabelStore(label_url)
    with pytest.raises(WorkbenchError, match="catalog"):
        unlabeled(s)
    with pytest.raises(WorkbenchError, match="LabelStore"):
        throughput(object())

"""Final labels: review > consensus > the annotators' labels, with the events behind each."""

import math

import numpy as np
import pytest
from PIL import Image

from workbench import Catalog
from workbench.errors import WorkbenchError
from workbench.labels import LabelStore
from workbench.quality.final import FINAL_COLUMNS, final_labels


@pytest.fixture
def store(label_url):
    s = LabelStore(label_url)
    s.add_classes(["cat", "dog", "bird"])
    return s


def _consensus(
    store, sid, value, *, round=1, method="dawid_skene", confidence=0.9, who=None, events=None
):
    """A consensus label event with its provenance, as write_consensus records it."""
    extra = {"method": method, "confidence": confidence, "events": events or []}
    who = who or f"consensus:{method}"
    source = "consensus" if who.startswith("consensus:") else "human"
    return store.label(sid, value, annotator=who, round=round, source=source, extra=extra)


def _row(df, sid):
    return df.set_index("id").loc[sid]


def test_priority_review_over_consensus_over_single(store):
    a = store.label("s1", "cat", annotator="ana")
    store.label("s1", "dog", annotator="bo")
    c = _consensus(store, "s1", "dog")
    single = store.label("s2", "bird", annotator="ana")
    u1 = store.label("s3", "cat", annotator="ana")
    u2 = store.label("s3", "cat", annotator="bo")
    store.label("s4", "cat", annotator="ana")
    store.label("s4", "dog", annotator="bo")
    df = final_labels(store)
    assert list(df.columns) == FINAL_COLUMNS
    s1 = _row(df, "s1")
    assert (s1["label"], s1["source"], s1["events"]) == ("dog", "consensus", [c])
    assert s1["method"] == "dawid_skene" and s1["confidence"] == pytest.approx(0.9)
    assert tuple(_row(df, "s2")[["label", "source"]]) == ("bird", "single")
    assert _row(df, "s2")["events"] == [single]
    assert _row(df, "s3")["source"] == "unanimous" and _row(df, "s3")["events"] == [u1, u2]
    s4 = _row(df, "s4")
    assert s4["label"] is None and s4["source"] == "conflict" and len(s4["events"]) == 2

    # a reviewer accepts ana's label against the consensus: the review wins
    r = store.review("s1", "accept", reviewer="rita", round=2, target=a)
    s1 = _row(final_labels(store), "s1")
    assert (s1["label"], s1["source"], s1["events"], s1["review"]) == ("cat", "review", [r, a],
                                                                      "accept")  # fmt: skip
    assert math.isnan(s1["confidence"]) and s1["method"] is None


def test_reject_with_a_correction_and_without(store):
    store.label("s1", "cat", annotator="ana")
    store.label("s2", "cat", annotator="ana")
    r1 = store.review("s1", "reject", reviewer="rita", round=1)
    fix = store.label("s1", "dog", annotator="rita", round=1)
    r2 = store.review("s2", "reject", reviewer="rita", round=1)
    df = final_labels(store)
    assert tuple(_row(df, "s1")[["label", "source"]]) == ("dog", "review")
    assert _row(df, "s1")["events"] == [r1, fix]
    s2 = _row(df, "s2")
    assert s2["label"] is None and s2["source"] == "rejected" and s2["events"][0] == r2
    # the reviewer's correction is not counted as one more annotator on s1
    assert "conflict" not in set(df["source"])


def test_latest_review_wins_and_unsure_falls_through(store):
    a = store.label("s1", "cat", annotator="ana")
    store.review("s1", "reject", reviewer="rita", round=1)
    store.review("s1", "unsure", reviewer="rob", round=2)
    s1 = _row(final_labels(store), "s1")
    assert (s1["label"], s1["source"], s1["review"], s1["events"]) == ("cat", "single", "unsure",
                                                                      [a])  # fmt: skip
    r = store.review("s1", "accept", reviewer="rob", round=3)  # no target: the label shown
    s1 = _row(final_labels(store), "s1")
    assert (s1["label"], s1["source"], s1["events"]) == ("cat", "review", [r, a])


def test_undone_labels_and_latest_rounds(store):
    store.label("s1", "cat", annotator="ana")
    store.label("s1", "dog", annotator="ana", round=1)  # ana re-labels in round 1
    store.label("s2", "cat", annotator="ana")
    store.label("s2", "dog", annotator="bo")
    store.undo("s2", annotator="bo")
    old = _consensus(store, "s3", "cat", round=1)
    new = _consensus(store, "s3", "bird", round=2, method="majority", confidence=0.6)
    df = final_labels(store)
    assert tuple(_row(df, "s1")[["label", "source"]]) == ("dog", "single")
    assert tuple(_row(df, "s2")[["label", "source"]]) == ("cat", "single")
    s3 = _row(df, "s3")
    assert (s3["label"], s3["events"], s3["method"]) == ("bird", [new], "majority") and old < new


def test_consensus_name_is_a_parameter_and_tasks_are_separate(store):
    store.label("s1", "cat", annotator="ana")
    store.label("s1", "dog", annotator="bo")
    e = _consensus(store, "s1", "dog", who="ds-v2")
    store.label("s1", [[0, 0, 5, 5, "cat"]], annotator="ana", task="boxes")
    # under the default name, "ds-v2" is one more annotator and the three disagree
    assert _row(final_labels(store), "s1")["source"] == "conflict"
    assert _row(final_labels(store, consensus="ds-v2"), "s1")["events"] == [e]
    boxes = final_labels(store, task="boxes")
    assert _row(boxes, "s1")["label"] == [[0, 0, 5, 5, "cat"]]


def test_catalog_samples_without_labels_are_listed_unlabeled(tmp_path, label_url):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(root / f"{i}.png")
    cat = Catalog.from_folder(root, labels=None, progress=False, workers=1)
    store = LabelStore(label_url, catalog=cat)
    store.add_classes(["a"])
    store.label("1.png", "a", annotator="ana")
    df = final_labels(store)
    assert df["id"].tolist() == ["0.png", "1.png", "2.png"]
    assert df["source"].tolist() == ["unlabeled", "single", "unlabeled"]


@pytest.mark.parametrize(
    "kw, match",
    [({"task": ""}, "task"), ({"task": 3}, "task"), ({"consensus": None}, "consensus"),
     ({"consensus": " "}, "consensus")],
)  # fmt: skip
def test_bad_arguments_raise_and_leave_the_store_unchanged(store, kw, match):
    store.label("s1", "cat", annotator="ana")
    before = store.events_count()
    with pytest.raises(WorkbenchError, match=match):
        final_labels(store, **kw)
    with pytest.raises(WorkbenchError, match="LabelStore"):
        final_labels(object())
    assert store.events_count() == before


def test_write_consensus_is_read_back_with_method_confidence_and_vote_events(store):
    from workbench.quality import Votes, write_consensus
    from workbench.quality.consensus import majority_vote

    votes = {}
    for sid, labels in [("s1", "cat cat dog"), ("s2", "dog dog dog"), ("s3", "cat dog bird")]:
        votes[sid] = [store.label(sid, v, annotator=a) for a, v in
                      zip(["ana", "bo", "cy"], labels.split(), strict=True)]  # fmt: skip
    res = majority_vote(Votes.from_store(store), reliability=None)
    write_consensus(store, res, round=1)
    df = final_labels(store).set_index("id")
    cur = store.current(round=1).set_index("id")
    for sid, label in [("s1", "cat"), ("s2", "dog")]:
        row = df.loc[sid]
        assert (row["label"], row["source"], row["method"]) == (label, "consensus", "majority")
        assert row["events"] == [int(cur.loc[sid, "event"]), *votes[sid]]
    assert df.loc["s1", "confidence"] == pytest.approx(2 / 3)
    assert df.loc["s3", "source"] == "conflict"  # tied: not written, left to review
    # a reviewer's correction of the consensus, as the review convention records it
    r = store.review("s1", "reject", reviewer="rita", round=2, target=int(cur.loc["s1", "event"]))
    fix = store.label("s1", "bird", annotator="rita", round=2)
    s1 = final_labels(store).set_index("id").loc["s1"]
    assert (s1["label"], s1["source"], s1["events"]) == ("bird", "review", [r, fix])

"""ReviewSession on a real store: what is queued, in which order, and which events each decision
writes (round, target, correction), as final_labels reads them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.errors import LabelError, ParameterError
from workbench.labels import LabelStore
from workbench.quality._votes import Votes
from workbench.quality.consensus import majority_vote, write_consensus
from workbench.quality.final import final_labels
from workbench.quality.label_errors import find_label_errors
from workbench.quality.review import REASONS, UNDO_NOTE, ReviewSession

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture
def store(label_url):
    """Planted: t (1:1 tie; ana and bo equally reliable), d3 (2:1), d4 (3:1), u (unanimous),
    g (gold cat; cy and di say dog), x (single)."""
    s = LabelStore(label_url)
    s.add_classes(CLASSES)
    s.label("t", "cat", annotator="ana")
    s.label("t", "dog", annotator="bo")
    for who, v in (("ana", "dog"), ("bo", "dog"), ("cy", "cat")):
        s.label("d3", v, annotator=who)
    for who, v in (("ana", "bird"), ("bo", "bird"), ("cy", "bird"), ("di", "cat")):
        s.label("d4", v, annotator=who)
    s.label("u", "cat", annotator="ana")
    s.label("u", "cat", annotator="bo")
    s.label("g", "dog", annotator="cy")
    s.label("g", "dog", annotator="di", round=1)  # di's label is in round 1
    s.label("x", "bird", annotator="ana")
    return s


def events(store: LabelStore, sid: str, who: str | None = None) -> dict[str, int]:
    cur = store.current()
    cur = cur[(cur["id"] == sid) & ((cur["annotator"] == who) if who else True)]
    return dict(zip(cur["annotator"], cur["event"].astype(int), strict=True))


def last_review(store: LabelStore) -> dict:
    return store.history(kind="review").iloc[-1].to_dict()


def test_queue_holds_the_planted_items_by_severity(store):
    s = ReviewSession(store, reviewer="rita", gold={"g": "cat", "u": "cat"})
    assert s.round == 2  # one after the labels' highest round (bo's round 1)
    assert s.queue == ["t", "g", "d3", "d4"]  # ties and gold (1.0), then 1 - 2/3, 1 - 3/4
    t, g, d3, d4 = (s.items[i] for i in s.queue)
    assert t.reasons == ("disagreement", "tie") and t.severity == 1.0
    assert g.reasons == ("gold",) and g.gold == "cat" and g.severity == 1.0
    assert d3.severity == pytest.approx(1 / 3) and d4.severity == pytest.approx(1 / 4)
    assert t.consensus["tied"] and t.consensus["label"] is None and t.consensus["event"] is None
    # every annotator's label with its event id; the consensus points at the first vote for it
    assert {r["annotator"]: r["event"] for r in d3.labels} == events(store, "d3")
    assert d3.consensus["label"] == "dog" and d3.consensus["confidence"] == pytest.approx(2 / 3)
    assert d3.consensus["event"] == events(store, "d3")["ana"] and not d3.consensus["stored"]
    assert s.progress == {"total": 4, "done": 0, "session": 0,
                          "by_reason": {"disagreement": 3, "label_error": 0, "tie": 1,
                                        "gold": 1}}  # fmt: skip
    # equal severity: more reasons first (t before g), then first appearance (t before x)
    s2 = ReviewSession(store, reviewer="rita", gold={"x": "cat"})
    assert s2.queue == ["t", "x", "d3", "d4"] and s2.items["x"].reasons == ("gold",)


def test_stored_consensus_is_used_with_its_confidence(store):
    votes = Votes.from_store(store)
    table = majority_vote(votes)
    write_consensus(store, table[table["id"] == "d3"], round=5)
    s = ReviewSession(store, reviewer="rita")
    c = s.items["d3"].consensus
    assert c["stored"] and c["label"] == "dog" and c["method"] == "majority"
    assert c["event"] == events(store, "d3", "consensus:majority")["consensus:majority"]
    assert s.round == 6  # after the stored consensus (round 5): a review follows it
    assert "consensus:majority" not in s.annotators


def test_default_round_follows_a_stored_consensus_and_resumes(store):
    votes = Votes.from_store(store)
    write_consensus(store, majority_vote(votes), round=2)  # labels in rounds 0-1, consensus 2
    s = ReviewSession(store, reviewer="rita")
    assert s.round == 3
    s.accept("d3")
    s.set_label("bird", "t")  # a correction: rita's label in round 3
    s.unsure("d4")
    s.undo()  # an undo marker in round 3 too
    assert set(store.history(kind="review")["round"]) == {3}
    assert store.current(annotator="rita")["round"].tolist() == [3]
    # the review round's own events do not push the round on: rita resumes, ivo joins, in 3
    again = ReviewSession(store, reviewer="rita")
    assert again.round == 3 and again.progress["done"] == 2
    assert ReviewSession(store, reviewer="ivo").round == 3
    # an explicit round still wins; a new labeling round moves the default on
    assert ReviewSession(store, reviewer="rita", round=7).round == 7
    store.label("x", "cat", annotator="bo", round=4)
    assert ReviewSession(store, reviewer="rita").round == 5


def test_label_errors_and_model_suggestions(store, tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(["cat", "dog"], 30)
    X = rng.normal(size=(60, 4)) + np.where(y == "cat", 2.0, -2.0)[:, None]
    y = y.copy()
    y[[3, 4, 40]] = ["dog", "dog", "cat"]  # planted label errors
    ids = [f"s{i}" for i in range(60)]
    report = find_label_errors(X, y, ids=ids)
    flagged = report.flagged_ids()
    assert "s40" in flagged
    s = ReviewSession(store, reviewer="rita", report=report)
    it = s.items["s40"]
    assert it.reasons == ("label_error",) and it.labels == []
    assert it.model["label"] == "dog" and it.model["source"] == "label issues"
    assert it.severity == pytest.approx(report.table.set_index("id").loc["s40", "score"])
    assert sorted(s.filter(reason="label_error")) == sorted(flagged)
    probs = pd.DataFrame({"cat": [0.2, 0.7], "dog": [0.8, 0.3], "bird": [0.0, 0.0]},
                         index=["d3", "t"])  # fmt: skip
    s = ReviewSession(store, reviewer="rita", probs=probs)
    assert s.items["d3"].model == {"label": "dog", "confidence": 0.8, "source": "probs"}


def test_filters(store):
    s = ReviewSession(store, reviewer="rita", gold={"g": "cat"})
    assert s.filter(reason="tie") == ["t"]
    assert s.filter(annotator="di") == ["g", "d4"]
    assert s.filter(cls="bird") == ["d4"]
    assert s.filter(reason="gold", cls="cat") == ["g"]
    assert s.filter() == ["t", "g", "d3", "d4"]
    for bad in ({"reason": "boring"}, {"cls": "unicorn"}, {"annotator": "zed"}):
        with pytest.raises(ParameterError):
            s.filter(**bad)
    assert s.filters == {"reason": None, "cls": None, "annotator": None}


def test_accept_writes_an_accept_review_in_the_review_round(store):
    s = ReviewSession(store, reviewer="rita")
    s.go("d3")
    ev = s.accept()
    r = last_review(store)
    assert (r["event"], r["id"], r["annotator"], r["round"], r["value"]) == (
        ev, "d3", "rita", 2, "accept")  # fmt: skip
    assert r["target"] == events(store, "d3")["ana"]  # the first "dog" vote
    assert s.current != "d3" and s.decision("d3")["verdict"] == "accept"
    # accept a named label event; an event of another item is refused, nothing written
    cy = events(store, "d4")["di"]
    s.accept("d4", cy)
    assert last_review(store)["target"] == cy
    n = store.events_count()
    with pytest.raises(LabelError, match="not one of the labels"):
        s.accept("t", cy)
    with pytest.raises(LabelError, match="tied"):
        s.accept("t")
    assert store.events_count() == n
    fin = final_labels(store).set_index("id")
    assert fin.loc["d3", "label"] == "dog" and fin.loc["d4", "label"] == "cat"
    assert fin.loc["d4", "source"] == "review"


def test_set_label_correction_is_reject_plus_label_and_final_labels_reads_it(store):
    s = ReviewSession(store, reviewer="rita")
    ev = s.set_label("bird", "t")  # nobody said bird
    r = last_review(store)
    assert (r["event"], r["value"], r["round"], r["target"]) == (ev, "reject", 2, None)
    fix = store.current(annotator="rita")
    assert fix[["id", "value", "round"]].values.tolist() == [["t", "bird", 2]]
    # a class an annotator gave: an accept of their label
    s.set_label("cat", "d3")
    assert last_review(store)["value"] == "accept"
    assert last_review(store)["target"] == events(store, "d3")["cy"]
    # a correction against a consensus targets the consensus' event
    s.set_label("dog", "d4")
    assert last_review(store)["target"] == events(store, "d4")["ana"]
    fin = final_labels(store).set_index("id")
    assert fin.loc["t", "label"] == "bird" and fin.loc["t", "source"] == "review"
    assert fin.loc["d3", "label"] == "cat" and fin.loc["d4", "label"] == "dog"
    # the reviewer's corrections are not votes: a new session sees the same items, same round
    again = ReviewSession(store, reviewer="rita")
    assert again.round == 2 and "rita" not in again.annotators
    assert again.progress["done"] == 3 and again.current is None  # all three decided


def test_unsure_skip_undo(store):
    s = ReviewSession(store, reviewer="rita")
    first = s.current
    ev = s.unsure()
    r = last_review(store)
    assert (r["event"], r["value"], r["round"], r["id"]) == (ev, "unsure", 2, first)
    assert s.current != first
    n = store.events_count()
    nxt = s.current
    s.skip()
    assert store.events_count() == n and s.current != nxt
    s.go("t")
    s.set_label("bird")
    assert store.current(annotator="rita")["value"].tolist() == ["bird"]
    assert s.undo() == "t"  # the correction: its label undone, an undo marker review
    assert store.current(annotator="rita").empty
    r = last_review(store)
    assert r["value"] == "unsure" and r["extra"]["note"].startswith(UNDO_NOTE)
    assert s.current == "t" and s.decision("t") is None
    assert final_labels(store).set_index("id").loc["t", "source"] == "conflict"
    assert s.undo() == first and s.decision(first) is None
    assert s.undo() is None
    assert ReviewSession(store, reviewer="rita").progress["done"] == 0  # undone for good


def test_everything_decided_then_nothing_left(store):
    s = ReviewSession(store, reviewer="rita")
    for sid in list(s.queue):
        s.unsure(sid)
    assert s.current is None and s.progress["done"] == len(s.queue)
    with pytest.raises(LabelError, match="every item is decided"):
        s.accept()
    with pytest.raises(LabelError):
        s.skip()


@pytest.mark.parametrize(
    "kwargs",
    [{"reviewer": ""}, {"reviewer": 3}, {"reviewer": "consensus:me"}, {"method": "vote"},
     {"probs": [[0.5, 0.5]]}, {"gold": ["cat"]}, {"round": -1}, {"round": 1.5}],
)  # fmt: skip
def test_bad_arguments_raise_and_write_nothing(store, kwargs):
    n = store.events_count()
    with pytest.raises(ParameterError):
        ReviewSession(store, **{"reviewer": "rita", **kwargs})
    assert store.events_count() == n


def test_bad_decisions_write_nothing(store):
    s = ReviewSession(store, reviewer="rita")
    n = store.events_count()
    with pytest.raises(LabelError, match="unknown class"):
        s.set_label("unicorn")
    with pytest.raises(ParameterError):
        s.accept("nope")
    with pytest.raises(ParameterError):
        s.go("u")  # unanimous: not in the queue
    assert store.events_count() == n
    assert set(REASONS) == {"disagreement", "label_error", "tie", "gold"}
    assert math.isnan(s.items["t"].issue_score)

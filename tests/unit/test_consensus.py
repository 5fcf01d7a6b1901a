"""Consensus: majority vote and its tie rule, Dawid–Skene (full and one-coin), CROWDLAB, writing."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ParameterError, WorkbenchError
from workbench.labels import LabelStore
from workbench.quality import consensus as cs
from workbench.quality._votes import Votes


def votes_from(rows, classes):
    return Votes.from_frame(
        pd.DataFrame(rows, columns=["id", "annotator", "value"]), classes=classes
    )


def simulate(confusions, n_items, per_item, rng, prior=None):
    """Votes drawn from planted confusion matrices; returns (votes, truth by item id)."""
    confusions = np.asarray(confusions)
    m, k, _ = confusions.shape
    truth = rng.choice(k, n_items, p=prior)
    rows = []
    for i in range(n_items):
        for a in rng.choice(m, per_item, replace=False):
            rows.append((i, a, int(rng.choice(k, p=confusions[a, truth[i]]))))
    return votes_from(rows, list(range(k))), truth


def one_coin(acc, k):
    c = np.full((k, k), (1 - acc) / (k - 1))
    np.fill_diagonal(c, acc)
    return c


def accuracy_of(result, truth):
    return float(
        np.mean([lab == truth[i] for i, lab in zip(result["id"], result["label"], strict=True)])
    )


def test_dawid_skene_recovers_planted_confusion_matrices():
    rng = np.random.default_rng(0)
    planted = np.array(
        [
            one_coin(0.9, 3),
            one_coin(0.6, 3),
            [[0.9, 0.1, 0.0], [0.45, 0.5, 0.05], [0.05, 0.05, 0.9]],  # confuses class 1 for 0
            [[1 / 3] * 3] * 3,  # a spammer
        ]
    )
    votes, truth = simulate(planted, 4000, 4, rng, prior=[0.5, 0.3, 0.2])
    ds = cs.DawidSkene().fit(votes)
    assert np.abs(ds.confusion_ - planted).max() < 0.05
    assert np.abs(ds.class_prior_ - [0.5, 0.3, 0.2]).max() < 0.03
    assert np.allclose(ds.posterior_.sum(axis=1), 1.0)
    result = ds.consensus()
    assert list(result.columns) == cs.COLUMNS
    assert accuracy_of(result, truth) > accuracy_of(cs.majority_vote(votes), truth)
    assert ((result["confidence"] > 0) & (result["confidence"] <= 1)).all()


def test_one_coin_recovers_planted_accuracies():
    rng = np.random.default_rng(1)
    accs = [0.95, 0.8, 0.6, 0.4, 0.25]
    planted = [one_coin(a, 4) for a in accs]
    votes, _ = simulate(planted, 3000, 3, rng)
    ds = cs.DawidSkene(one_coin=True).fit(votes)
    assert (
        np.abs(np.diagonal(ds.confusion_, axis1=1, axis2=2) - np.array(accs)[:, None]).max() < 0.04
    )
    assert (cs.dawid_skene(votes, one_coin=True)["method"] == "one_coin").all()


def test_default_beats_majority_on_a_crowd_with_few_labels_each():
    # The known trap: hundreds of annotators with ~30-100 labels and errors spread evenly; full
    # maximum-likelihood confusion matrices overfit and fall below majority vote.
    rng = np.random.default_rng(2)
    k, m = 8, 200
    accs = rng.uniform(0.45, 0.95, m)
    accs[rng.random(m) < 0.1] = 1 / k  # spammers
    planted = np.stack([one_coin(a, k) for a in accs])
    votes, truth = simulate(planted, 4000, 3, rng)
    majority = accuracy_of(cs.majority_vote(votes), truth)
    overfit = accuracy_of(cs.dawid_skene(votes, prior=0.0), truth)
    default = accuracy_of(cs.consensus(votes), truth)
    assert overfit < majority <= default
    assert (cs.consensus(votes)["method"].isin(["dawid_skene", "tied"])).all()


def test_majority_tie_is_marked_not_broken_without_evidence():
    votes = votes_from(
        [("x", "ana", "cat"), ("x", "bo", "dog"), ("y", "ana", "dog")], ["cat", "dog"]
    )
    res = cs.majority_vote(votes, reliability=None).set_index("id")
    assert (
        res.loc["x", "tied"] and pd.isna(res.loc["x", "label"]) and res.loc["x", "method"] == "tied"
    )
    assert res.loc["y", "label"] == "dog" and res.loc["y", "method"] == "majority"
    assert res.loc["x", "confidence"] == 0.5 and res.loc["y", "confidence"] == 1.0
    # Estimated reliability cannot tell ana from bo here (no clear majority to agree with).
    assert cs.majority_vote(votes).set_index("id").loc["x", "tied"]


def test_majority_tie_goes_to_the_model_then_to_reliability():
    votes = votes_from(
        [("x", "ana", "cat"), ("x", "bo", "dog"), ("y", "ana", "cat"), ("y", "bo", "bird")],
        ["cat", "dog", "bird"],
    )
    probs = pd.DataFrame(
        [[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], index=["x", "y"], columns=["cat", "dog", "bird"]
    )
    res = cs.majority_vote(votes, pred_probs=probs, reliability=None).set_index("id")
    assert res.loc["x", "label"] == "dog" and res.loc["x", "method"] == "majority+model"
    assert res.loc["y", "label"] == "bird"  # cat and bird tie; the model says 0.4 over 0.3
    res = cs.majority_vote(votes, pred_probs=probs.assign(bird=[0.1, 0.3]), reliability=None)
    res = res.set_index("id")
    assert res.loc["y", "tied"]  # cat 0.3 vs bird 0.3: the model cannot decide either
    res = cs.majority_vote(
        votes, pred_probs=probs.assign(bird=[0.1, 0.3]), reliability={"ana": 0.9, "bo": 0.6}
    ).set_index("id")
    assert res.loc["y", "label"] == "cat" and res.loc["y", "method"] == "majority+reliability"
    assert res.loc["x", "method"] == "majority+model"  # the model comes first


def test_model_breaks_the_tie_when_it_can():
    votes = votes_from([("y", "ana", "cat"), ("y", "bo", "bird")], ["cat", "dog", "bird"])
    res = cs.majority_vote(votes, pred_probs=[[0.3, 0.3, 0.4]], reliability=None)
    assert res.loc[0, "label"] == "bird" and res.loc[0, "method"] == "majority+model"


def test_estimated_reliability_breaks_ties_by_agreement_with_others():
    rows = [(f"i{i}", a, "cat") for i in range(6) for a in ("ana", "bo", "cy")]
    rows += [(f"j{i}", "ana", "dog") for i in range(4)] + [(f"j{i}", "cy", "dog") for i in range(4)]
    rows += [(f"j{i}", "bo", "cat") for i in range(4)]  # bo disagrees with the clear majority
    rows += [("t", "ana", "dog"), ("t", "bo", "cat")]
    res = cs.majority_vote(votes_from(rows, ["cat", "dog"])).set_index("id")
    assert res.loc["t", "label"] == "dog" and res.loc["t", "method"] == "majority+reliability"


def test_dawid_skene_marks_a_perfectly_symmetric_item_tied():
    votes = votes_from(
        [("x", "ana", "cat"), ("x", "bo", "dog"), ("y", "ana", "dog"), ("y", "bo", "cat")],
        ["cat", "dog"],
    )
    for one in (False, True):
        res = cs.dawid_skene(votes, one_coin=one)
        assert res["tied"].all() and res["label"].isna().all()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from("abcd"), st.integers(0, 2)),
        min_size=1,
        max_size=40,
    )
)
def test_every_method_returns_a_label_or_a_tie_for_every_item(rows):
    votes = votes_from(rows, [0, 1, 2])
    for res in (
        cs.majority_vote(votes),
        cs.dawid_skene(votes),
        cs.dawid_skene(votes, one_coin=True),
    ):
        assert list(res["id"]) == list(votes.items)
        assert (res["tied"] == res["label"].isna()).all()
        assert res["confidence"].between(0, 1).all() and not res["confidence"].isna().any()
        # an undecided item is never labeled; a decided one carries a voted-or-plausible class
        assert res.loc[~res["tied"], "label"].isin([0, 1, 2]).all()


def test_single_class_is_certain():
    votes = votes_from([("x", "a", "cat"), ("x", "b", "cat"), ("y", "a", "cat")], ["cat"])
    res = cs.dawid_skene(votes)
    assert (res["label"] == "cat").all() and np.allclose(res["confidence"], 1.0)


def test_crowdlab_through_cleanlab_uses_the_model():
    rng = np.random.default_rng(3)
    planted = [one_coin(0.7, 3), one_coin(0.6, 3), one_coin(0.55, 3)]
    votes, truth = simulate(planted, 300, 2, rng)
    t = truth[np.asarray(votes.items, dtype=int)]
    probs = np.full((votes.n_items, 3), 0.1)
    probs[np.arange(votes.n_items), t] = 0.8
    res = cs.consensus(votes, "crowdlab", pred_probs=probs)
    assert (res["method"] == "crowdlab").all()
    assert accuracy_of(res, truth) > accuracy_of(cs.majority_vote(votes), truth)
    assert res["confidence"].between(0, 1).all()
    with pytest.raises(ParameterError, match="shape"):
        cs.crowdlab(votes, probs[:-1])
    with pytest.raises(ParameterError, match="sum to 1"):
        cs.crowdlab(votes, probs * 2)
    with pytest.raises(ParameterError, match="pred_probs"):
        cs.consensus(votes, "crowdlab")


def test_write_consensus_appends_a_round_with_provenance(label_url):
    store = LabelStore(label_url)
    store.add_classes(["cat", "dog"])
    for sid, a, b in [("x", "cat", "cat"), ("y", "cat", "dog"), ("z", "dog", "dog")]:
        store.label(sid, a, annotator="ana")
        store.label(sid, b, annotator="bo")
    votes = Votes.from_store(store)
    res = cs.majority_vote(votes, reliability=None)
    assert res.set_index("id").loc["y", "events"] == (5, 6)  # the votes behind y
    written = cs.write_consensus(store, res, round=1)
    assert set(written["id"]) == {"x", "z"}  # y is tied: it goes to review, not to the store
    cur = store.current(round=1)
    assert set(cur["annotator"]) == {"consensus:majority"} and set(cur["source"]) == {"consensus"}
    assert dict(zip(cur["id"], cur["value"], strict=True)) == {"x": "cat", "z": "dog"}
    assert store.events_count("import") == 0  # labels with source "consensus", not imports
    extra = dict(zip(cur["id"], cur["extra"], strict=True))
    assert extra["x"] == {"method": "majority", "confidence": 1.0, "events": [3, 4]}
    assert list(Votes.from_store(store).annotators) == ["ana", "bo"]  # never votes on itself


def test_bad_consensus_inputs_raise_and_leave_the_store_unchanged(label_url):
    store = LabelStore(label_url)
    store.add_classes(["cat", "dog"])
    store.label("x", "cat", annotator="ana")
    store.label("x", "dog", annotator="bo")
    votes = Votes.from_store(store)
    before = store.events_count()
    tied = cs.majority_vote(votes, reliability=None)
    bad = tied.assign(label=["cow"], tied=[False], method=["majority"])
    for result, kwargs in [
        (tied, {"round": 1}),  # everything tied
        (bad, {"round": 1}),  # a class the store lacks
        (tied.drop(columns="events"), {"round": 1}),
        (tied, {"round": -1}),
        ([1, 2], {"round": 1}),
    ]:
        with pytest.raises(WorkbenchError):
            cs.write_consensus(store, result, **kwargs)
    assert store.events_count() == before
    for call in [
        lambda: cs.consensus(votes, "best"),
        lambda: cs.dawid_skene(votes, prior=-1.0),
        lambda: cs.dawid_skene(votes, max_iter=0),
        lambda: cs.majority_vote(votes, reliability=[1, 2]),
        lambda: cs.majority_vote(votes, reliability={"zed": 1.0}),
        lambda: cs.majority_vote(votes, reliability={"ana": -1.0}),
        lambda: cs.majority_vote(votes, pred_probs=[[0.5, float("nan")]]),
        lambda: cs.majority_vote(store.current()),
    ]:
        with pytest.raises(WorkbenchError):
            call()


def _model_probs(truth, items, k, acc, rng, over=None):
    """Probabilities whose arg-max is right with probability ``acc`` (wrong: uniform other)."""
    t = truth[np.asarray(items, dtype=int)]
    guess = np.where(rng.random(len(t)) < acc, t, (t + rng.integers(1, k, len(t))) % k)
    probs = np.full((len(t), k), 0.02 if over else 0.1)
    probs[np.arange(len(t)), guess] = 1 - probs[0, 0] * (k - 1)
    return probs


def test_default_with_a_model_is_dawid_skene_with_the_model_as_an_annotator():
    rng = np.random.default_rng(5)
    k = 4
    planted = [one_coin(0.7, k), one_coin(0.6, k), one_coin(0.55, k), np.full((k, k), 1 / k)]
    votes, truth = simulate(planted, 600, 3, rng)
    good = _model_probs(truth, votes.items, k, 0.9, rng)
    res = cs.consensus(votes, pred_probs=good)
    assert (res["method"] == "dawid_skene+model").all()
    assert res["votes"].tolist() == votes.votes_per_item().tolist()  # the model is no vote here
    majority_model = accuracy_of(cs.majority_vote(votes, pred_probs=good), truth)
    assert accuracy_of(res, truth) > majority_model + 0.05  # the model weighs as it earns
    # the model's votes as an ordinary annotator give the same posterior
    frame = pd.DataFrame({"id": np.concatenate([votes.items[votes.item], votes.items]),
                          "annotator": np.concatenate([votes.annotators[votes.annotator],
                                                       ["model"] * votes.n_items]),
                          "value": np.concatenate([votes.code, good.argmax(axis=1)])})  # fmt: skip
    by_hand = cs.dawid_skene(Votes.from_frame(frame, classes=list(range(k))))
    assert by_hand["label"].tolist() == res["label"].tolist()
    np.testing.assert_allclose(by_hand["confidence"], res["confidence"], atol=1e-9)
    # a useless, over-confident model (the trap of trusting probabilities) costs little: its
    # confusion matrix is estimated, so it earns almost no weight
    useless = _model_probs(truth, votes.items, k, 1 / k, rng, over=True)
    alone = accuracy_of(cs.dawid_skene(votes), truth)
    assert accuracy_of(cs.consensus(votes, pred_probs=useless), truth) > alone - 0.02
    assert accuracy_of(cs.crowdlab(votes, useless), truth) < alone - 0.05
    one = cs.consensus(votes, "one_coin", pred_probs=good)
    assert (one["method"] == "one_coin+model").all()
    named = votes_from([("x", "model", "cat"), ("x", "b", "dog")], ["cat", "dog"])
    with pytest.raises(ParameterError, match="model"):
        cs.consensus(named, pred_probs=np.array([[0.5, 0.5]]))

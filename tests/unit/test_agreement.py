"""Agreement figures against their reference implementations (sklearn, statsmodels, krippendorff).

krippendorff (GPL) and statsmodels are test-only oracles; workbench never imports them.
"""

import itertools
import warnings

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from workbench.errors import ParameterError, WorkbenchError
from workbench.labels import LabelStore
from workbench.quality import agreement as ag
from workbench.quality._votes import Votes

TOL = 1e-9
FAST = settings(max_examples=60, deadline=None)


def frame_of(matrix, names=None):
    """Long votes table from an items × annotators matrix (-1 = no vote)."""
    m = np.asarray(matrix)
    names = names or [f"a{j}" for j in range(m.shape[1])]
    rows = [
        (f"i{i}", names[j], int(m[i, j]))
        for i in range(m.shape[0])
        for j in range(m.shape[1])
        if m[i, j] >= 0
    ]
    return pd.DataFrame(rows, columns=["id", "annotator", "value"])


def votes_of(matrix, k):
    m = np.asarray(matrix)
    names = [f"a{j}" for j in range(m.shape[1])]
    return Votes.from_frame(frame_of(m, names), classes=list(range(k)), annotators=names)


def same(x, y):
    return (np.isnan(x) and np.isnan(y)) or abs(x - y) <= TOL


def sk_kappa(x, y, k, w):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its 0/0 warning: the NaN itself is what we compare
        return cohen_kappa_score(x, y, labels=list(range(k)), weights=w)


def kripp(matrix):
    data = np.where(np.asarray(matrix) < 0, np.nan, matrix).T.astype(float)
    try:
        return krippendorff.alpha(data, level_of_measurement="nominal")
    except ValueError:  # it refuses where the figure is undefined (one value, no pairable item)
        return float("nan")


def brute_percent(matrix):
    shares = []
    for row in np.asarray(matrix):
        v = row[row >= 0]
        if len(v) >= 2:
            pairs = list(itertools.permutations(range(len(v)), 2))
            shares.append(sum(v[i] == v[j] for i, j in pairs) / len(pairs))
    return float(np.mean(shares)) if shares else float("nan")


@st.composite
def vote_matrices(draw, min_items=1, dense=False):
    k = draw(st.integers(1, 5))
    n = draw(st.integers(min_items, 30))
    m = draw(st.integers(2, 5))
    low = 0 if dense else -1
    cells = draw(st.lists(st.integers(low, k - 1), min_size=n * m, max_size=n * m))
    matrix = np.array(cells).reshape(n, m)
    if (matrix < 0).all():
        matrix[0, 0] = 0
    return matrix, k


@FAST
@given(vote_matrices())
def test_cohen_kappa_matches_sklearn_all_weightings_and_pairwise_table(data):
    matrix, k = data
    v = votes_of(matrix, k)
    table = ag.pairwise(v).set_index(["a", "b"])
    for ja, jb in itertools.combinations(range(matrix.shape[1]), 2):
        both = (matrix[:, ja] >= 0) & (matrix[:, jb] >= 0)
        key = (f"a{ja}", f"a{jb}")
        if not both.any():
            assert np.isnan(ag.cohen_kappa(v, *key)) and key not in table.index
            continue
        x, y = matrix[both, ja], matrix[both, jb]
        row = table.loc[key]
        assert row["n"] == both.sum()
        assert abs(row["agreement"] - np.mean(x == y)) <= TOL
        cols = ("kappa", "kappa_linear", "kappa_quadratic")
        for w, col in zip(ag.WEIGHTS, cols, strict=True):
            ref = sk_kappa(x, y, k, w)
            assert same(ag.cohen_kappa(v, *key, weights=w), ref), (w, x, y)
            assert same(row[col], ref), (col, x, y)
        assert (row["note"] != "") == bool(np.isnan(row["kappa"]))


@FAST
@given(vote_matrices())
def test_krippendorff_alpha_matches_the_krippendorff_package(data):
    matrix, k = data
    assert same(ag.krippendorff_alpha(votes_of(matrix, k)), kripp(matrix))


@FAST
@given(vote_matrices(dense=True))
def test_fleiss_kappa_matches_statsmodels(data):
    matrix, k = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm_fleiss(aggregate_raters(matrix, n_cat=k)[0])
    assert same(ag.fleiss_kappa(votes_of(matrix, k)), ref)


@FAST
@given(vote_matrices())
def test_fleiss_kappa_on_the_subset_with_a_given_number_of_votes(data):
    matrix, k = data
    counts = (matrix >= 0).sum(axis=1)
    r = int(counts.max())
    v = votes_of(matrix, k)
    if r < 2:
        with pytest.raises(ParameterError):
            ag.fleiss_kappa(v, raters=max(r, 2))
        return
    rows = matrix[counts == r]
    table = np.stack([np.bincount(row[row >= 0], minlength=k) for row in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm_fleiss(table)
    assert same(ag.fleiss_kappa(v, raters=r), ref)


@FAST
@given(vote_matrices())
def test_percent_agreement_is_the_mean_share_of_agreeing_pairs(data):
    matrix, k = data
    assert same(ag.percent_agreement(votes_of(matrix, k)), brute_percent(matrix))


def test_all_agree_gives_one_everywhere():
    matrix = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [1, 1, 1]])
    v = votes_of(matrix, 3)
    assert ag.percent_agreement(v) == 1.0
    assert ag.krippendorff_alpha(v) == pytest.approx(1.0, abs=TOL) == kripp(matrix)
    assert ag.fleiss_kappa(v) == pytest.approx(1.0, abs=TOL)
    assert (ag.pairwise(v)[["kappa", "kappa_linear", "kappa_quadratic"]] == 1.0).all().all()


def test_one_class_only_is_nan_not_one_as_in_the_oracles():
    matrix = np.zeros((5, 3), dtype=int)
    v = votes_of(matrix, 2)
    assert ag.percent_agreement(v) == 1.0  # no chance term: everyone agreed
    assert np.isnan(sk_kappa(matrix[:, 0], matrix[:, 1], 2, None))
    assert np.isnan(ag.cohen_kappa(v, "a0", "a1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(sm_fleiss(aggregate_raters(matrix, n_cat=2)[0]))
    assert np.isnan(ag.fleiss_kappa(v))
    with pytest.raises(ValueError, match="more than one value"):
        krippendorff.alpha(matrix.T.astype(float), level_of_measurement="nominal")
    assert np.isnan(ag.krippendorff_alpha(v))
    table = ag.pairwise(v)
    assert table["kappa"].isna().all() and table["note"].str.contains("chance").all()
    notes = ag.summary(v).set_index("metric")["note"]
    assert "chance" in notes["krippendorff_alpha"] and "chance" in notes["fleiss_kappa"]


def test_an_annotator_without_labels_is_reported_with_nan():
    matrix = np.array([[0, 1, -1], [1, 1, -1], [2, 0, -1], [0, 0, -1]])
    v = votes_of(matrix, 3)
    assert list(v.annotators) == ["a0", "a1", "a2"]
    assert np.isnan(ag.cohen_kappa(v, "a0", "a2"))
    assert set(ag.pairwise(v)[["a", "b"]].itertuples(index=False)) == {("a0", "a1")}
    assert same(ag.krippendorff_alpha(v), kripp(matrix))
    acc = ag.accuracy(v, {"i0": 0, "i1": 1}).set_index("annotator")
    assert acc.loc["a2", "n"] == 0 and np.isnan(acc.loc["a2", "accuracy"])
    assert v.matrix()["a2"].isna().all()


def test_items_with_a_single_label_are_left_out_and_only_them_give_nan():
    matrix = np.array([[0, 1], [1, 1], [2, -1], [-1, 0], [0, 0]])
    v = votes_of(matrix, 3)
    assert same(ag.krippendorff_alpha(v), kripp(matrix))
    assert ag.percent_agreement(v) == pytest.approx(2 / 3)
    assert ag.fleiss_kappa(v, raters=2) == pytest.approx(
        sm_fleiss(aggregate_raters(matrix[[0, 1, 4]], n_cat=3)[0]), abs=TOL
    )
    single = votes_of(np.array([[0, -1], [-1, 1]]), 2)
    assert np.isnan(ag.percent_agreement(single)) and np.isnan(ag.krippendorff_alpha(single))
    assert np.isnan(kripp(np.array([[0, -1], [-1, 1]])))
    assert len(ag.pairwise(single)) == 0
    assert ag.summary(single)["note"].str.contains("no item has two votes").all()


def test_weighted_kappa_uses_the_class_order_given():
    # Classes "lo" < "mid" < "hi": quadratic kappa must weigh lo-vs-hi as 4, not by name order.
    df = frame_of(np.array([[0, 2], [1, 1], [2, 0], [0, 0], [2, 2], [1, 2]]))
    names = ["lo", "mid", "hi"]
    df["value"] = [names[c] for c in df["value"]]
    v = Votes.from_frame(df, classes=names)
    x = [0, 1, 2, 0, 2, 1]
    y = [2, 1, 0, 0, 2, 2]
    for w in ag.WEIGHTS:
        assert same(ag.cohen_kappa(v, "a0", "a1", weights=w), sk_kappa(x, y, 3, w))


def test_fleiss_refuses_uneven_counts_and_says_what_to_do():
    v = votes_of(np.array([[0, 1, 1], [1, 1, -1]]), 2)
    with pytest.raises(ParameterError, match="raters=") as err:
        ag.fleiss_kappa(v)
    assert isinstance(err.value, WorkbenchError) and "krippendorff_alpha" in str(err.value)
    with pytest.raises(ParameterError, match="exactly 4"):
        ag.fleiss_kappa(v, raters=4)
    with pytest.raises(ParameterError):
        ag.fleiss_kappa(v, raters=1)


def test_accuracy_against_gold_and_against_a_consensus_table():
    matrix = np.array([[0, 0, 1], [1, 1, 1], [2, 0, 2], [1, -1, 0]])
    v = votes_of(matrix, 3)
    acc = ag.accuracy(v, {"i0": 0, "i1": 1, "i2": 2, "i3": 1, "nope": 0}).set_index("annotator")
    assert acc["n"].tolist() == [4, 3, 4]
    assert acc["correct"].tolist() == [4, 2, 2]
    cons = pd.DataFrame({"id": ["i0", "i1", "i2", "i3"], "label": [0, 1, None, 7]})
    acc = ag.accuracy(v, cons).set_index("annotator")
    assert acc["n"].tolist() == [3, 2, 3]  # the tied item (no label) is not counted
    assert acc["correct"].tolist() == [2, 2, 1]  # a label outside the classes is missed by all
    assert ag.accuracy(v, pd.Series({"i0": 1}))["correct"].tolist() == [0, 0, 1]


def test_annotator_confusion_counts_shared_items():
    matrix = np.array([[0, 0], [1, 0], [1, 1], [2, -1], [1, 0]])
    v = votes_of(matrix, 3)
    conf = ag.annotator_confusion(v, "a0", "a1")
    expected = np.zeros((3, 3), dtype=int)
    for x, y in matrix[(matrix >= 0).all(axis=1)]:
        expected[x, y] += 1
    assert (conf.to_numpy() == expected).all()
    assert conf.index.name == "a0" and list(conf.columns) == [0, 1, 2]


def test_votes_from_a_store_take_the_latest_round_and_skip_consensus(label_url):
    store = LabelStore(label_url)
    store.add_classes(["cat", "dog", "bird"])
    for sid, a, b in [("x", "cat", "cat"), ("y", "dog", "cat"), ("z", "bird", "bird")]:
        store.label(sid, a, annotator="ana")
        store.label(sid, b, annotator="bo")
    store.label("y", "cat", annotator="ana", round=1)  # ana changes her mind in a later round
    store.label("y", "dog", annotator="consensus:majority", round=2, source="consensus")
    v = Votes.from_store(store)
    assert list(v.annotators) == ["ana", "bo"] and v.classes == ("cat", "dog", "bird")
    assert (v.matrix().to_numpy() == [[0, 0], [0, 0], [2, 2]]).all()
    assert v.event is not None and len(v.event) == 6
    assert ag.percent_agreement(v) == 1.0
    first = Votes.from_store(store, round=0)
    assert ag.percent_agreement(first) == pytest.approx(2 / 3)
    assert "consensus:majority" in Votes.from_store(store, include_consensus=True).annotators


@pytest.mark.parametrize(
    "frame, kwargs",
    [
        (pd.DataFrame(columns=["id", "annotator", "value"]), {}),
        (pd.DataFrame({"id": ["a"], "annotator": ["x"], "value": [None]}), {}),
        (pd.DataFrame({"id": ["a"], "who": ["x"], "value": ["cat"]}), {}),
        (pd.DataFrame({"id": ["a"], "annotator": ["x"], "value": [["cat", "dog"]]}), {}),
        (pd.DataFrame({"id": [["a"]], "annotator": ["x"], "value": ["cat"]}), {}),
        (pd.DataFrame({"id": ["a"], "annotator": ["x"], "value": ["cow"]}), {"classes": ["cat"]}),
        (pd.DataFrame({"id": ["a"], "annotator": ["x"], "value": ["cat"]}), {"classes": "cat"}),
        (pd.DataFrame({"id": ["a"], "annotator": ["x"], "value": ["c"]}), {"annotators": ["y"]}),
        (pd.DataFrame({"id": ["a", "a"], "annotator": "x", "value": "c", "task": ["t", "u"]}), {}),
        ([("a", "x", "cat")], {}),
    ],
)
def test_bad_vote_tables_raise_workbench_errors(frame, kwargs):
    with pytest.raises(WorkbenchError):
        Votes.from_frame(frame, **kwargs)


def test_bad_arguments_to_the_metrics_raise_workbench_errors():
    v = votes_of(np.array([[0, 1], [1, 1]]), 2)
    with pytest.raises(WorkbenchError, match="unknown annotator"):
        ag.cohen_kappa(v, "a0", "zed")
    with pytest.raises(WorkbenchError, match="weights"):
        ag.cohen_kappa(v, "a0", "a1", weights="cubic")
    with pytest.raises(WorkbenchError, match="Votes"):
        ag.krippendorff_alpha(frame_of(np.array([[0, 1]])))
    with pytest.raises(WorkbenchError, match="truth"):
        ag.accuracy(v, ["i0", 0])

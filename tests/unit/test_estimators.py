"""scikit-learn's estimator checks on the workbench estimators: Normalizer, Assistant, GraphBlend.

Every check runs. The ones listed in ``_EXPECTED_FAILURES`` fail for the reason given there, by
design; the list is strict, so a listed check that starts to pass fails this test and the list
stays true. What the generic checks cannot reach (the Normalizer refuses 2-D arrays, the blend's
graph has a fixed width) is checked on the inputs these estimators do take below.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from workbench.assist import Assistant, GraphBlend, default_classifier
from workbench.normalize import Normalizer

# The checks fit on 2-D arrays of 1 to 10 features. The Normalizer takes images (HW, HWC, NHWC),
# a Catalog or a DataFrame, and refuses a 2-D array: an HW gray image or an (N, C) table?
_TABLE = "fit refuses a 2-D array as ambiguous (gray image or table?); tables come as DataFrames"
# The blend propagates over a fixed graph of the samples to label (here 10 features); rows of
# another width cannot be placed on it, and the checks use 1 to 5 features.
_GRAPH = "the k-NN graph is fixed (10 features): X of another width cannot be placed on it"

# The checks that fit on a generic 2-D X of their own choosing: both the Normalizer and the blend
# refuse such an X (each for its own reason, above).
_ON_GENERIC_X = (
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
)
_NORMALIZER = dict.fromkeys(
    (
        *_ON_GENERIC_X,
        "check_complex_data",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
    ),
    _TABLE,
)
_ASSISTANT = {
    "check_fit2d_predict1d": "a 1-D X is one embedding: predict and suggest take a single row",
    "check_supervised_y_2d": "y must be 1-D: a column vector is refused rather than raveled",
}
_BLEND = dict.fromkeys(
    (
        *_ON_GENERIC_X,
        "check_classifier_data_not_an_array",
        "check_classifiers_classes",
        "check_classifiers_train",
        "check_supervised_y_2d",
    ),
    _GRAPH,
)
_EXPECTED_FAILURES = {Normalizer: _NORMALIZER, Assistant: _ASSISTANT, GraphBlend: _BLEND}

_POOL = np.random.default_rng(0).normal(size=(60, 10))  # "every sample to label" of the blend
_GRAPH_OF_POOL = default_classifier(0, scale_on=_POOL, propagation=0.5).graph


@parametrize_with_checks(
    [
        Normalizer(),
        Assistant(cv=3),
        GraphBlend(LogisticRegression(), _GRAPH_OF_POOL, 0.5),
    ],
    expected_failed_checks=lambda estimator: _EXPECTED_FAILURES[type(estimator)],
    xfail_strict=True,
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------ on the inputs they take
def _table(rng: np.random.Generator, n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(rng.normal(size=(n, 3)) * [1, 10, 100], columns=["a", "b", "c"])


def test_normalizer_conventions_on_tables():
    """What the refused checks test, on a DataFrame: fit returns self, is idempotent, leaves
    its parameters and the data alone, ignores row order, pickles and clones."""
    rng = np.random.default_rng(1)
    df = _table(rng)
    before = df.copy()
    norm = Normalizer(eps=0.0)
    assert norm.fit(df, progress=False) is norm
    pd.testing.assert_frame_equal(df, before)
    assert norm.get_params() == {"per_channel": True, "eps": 0.0}
    assert norm.n_features_in_ == 3 and list(norm.feature_names_in_) == ["a", "b", "c"]
    first = norm.transform(df)
    state = dict(vars(norm))
    norm.transform(df.iloc[:5])
    assert vars(norm).keys() == state.keys()  # transform changes nothing
    pd.testing.assert_frame_equal(norm.fit(df, progress=False).transform(df), first)
    shuffled = Normalizer().fit(df.sample(frac=1.0, random_state=0), progress=False)
    np.testing.assert_allclose(shuffled.mean_, norm.mean_, rtol=1e-12)
    np.testing.assert_allclose(shuffled.std_, norm.std_, rtol=1e-12)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(norm)).transform(df.values), first)
    assert not hasattr(clone(norm), "mean_")
    np.testing.assert_array_equal(  # fit_transform from TransformerMixin
        Normalizer().fit_transform(df, progress=False).to_numpy(), first.to_numpy()
    )


def test_blend_conventions_on_its_graph():
    """What the refused checks test, on rows of the graph's width: fit returns self and is
    idempotent, predict matches predict_proba, one sample order or another gives one model, a
    pickled blend predicts the same, a clone is unfitted."""
    X = _POOL
    y = np.where(X[:, 0] > 0, "pos", "neg")
    lab = np.arange(0, 60, 3)
    blend = default_classifier(0, scale_on=_POOL, propagation=0.5)
    assert blend.fit(X[lab], y[lab]) is blend
    p = blend.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (blend.predict(X) == blend.classes_[p.argmax(axis=1)]).all()
    np.testing.assert_allclose(blend.fit(X[lab], y[lab]).predict_proba(X), p, rtol=1e-12)
    order = lab[::-1]
    again = clone(blend).fit(X[order], y[order])
    np.testing.assert_allclose(again.predict_proba(X), p, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        pickle.loads(pickle.dumps(blend)).predict_proba(X + 0.01), blend.predict_proba(X + 0.01)
    )
    assert not hasattr(clone(blend), "F_")


def test_assistant_is_a_plain_estimator():
    """Clone-able and picklable before and after a background refit; not fitted means
    NotFittedError (an AttributeError, so hasattr stays False)."""
    from sklearn.exceptions import NotFittedError

    X = _POOL
    y = np.where(X[:, 1] > 0, "up", "down")
    a = Assistant(cv=None, random_state=3)
    assert not hasattr(a, "classes_")
    with pytest.raises(NotFittedError):
        a.predict(X)
    assert a.refit_async(X, y).result(30) is True
    assert a.n_features_in_ == 10
    twin = clone(a)
    assert twin.get_params() == a.get_params() and not hasattr(twin, "classes_")
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(b.predict_proba(X), a.predict_proba(X))
    a.close()

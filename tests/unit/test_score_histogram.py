"""The issue histogram's kept base: warmed from chunks, it is the one drawn for all scores."""

import numpy as np
import pandas as pd
import pytest

from workbench import plots
from workbench.clean import IssueReport
from workbench.errors import WorkbenchError


def test_a_histogram_warmed_from_chunks_is_the_one_drawn_for_all_scores():
    scores = np.random.default_rng(0).beta(1.0, 12.0, 5000) * 1.8
    scores = scores.clip(0.0, 1.0)
    plots._HIST_BASES.clear()
    plots.warm_score_histogram([scores[:1234], scores[1234:4000], scores[4000:]], xlabel="x")
    assert len(plots._HIST_BASES) == 1
    warmed = plots.score_histogram_png(scores, 0.5, xlabel="x")
    assert len(plots._HIST_BASES) == 1  # the warmed base was used, not drawn again
    plots._HIST_BASES.clear()
    assert plots.score_histogram_png(scores, 0.5, xlabel="x") == warmed  # as drawn from scratch


def _report(table: pd.DataFrame) -> IssueReport:
    thresholds = {"blurry": 0.5, "dark": 0.5, "bright": 0.5, "odd_size": 0.5}
    samples = pd.DataFrame({"id": [], "hash": [], "area": []})
    return IssueReport(table, pd.DataFrame({"a": [], "b": [], "distance": []}), thresholds, samples)


def test_an_issues_scores_come_in_table_order_from_its_chunks():
    rng = np.random.default_rng(1)
    issues = rng.choice(["blurry", "dark", "bright"], 3000)
    table = pd.DataFrame({"issue": pd.Categorical(issues, ["blurry", "dark", "bright", "odd_size"]),
                          "score": rng.random(3000)})  # fmt: skip
    for issue in ("blurry", "dark", "odd_size"):
        want = table.loc[table["issue"] == issue, "score"].to_numpy()
        for t in (table, table.astype({"issue": str})):  # categorical, and plain strings
            report = _report(t)
            got = list(report.score_chunks(issue, step=700))
            assert len(got) == 5
            assert np.array_equal(np.concatenate(got), want)
            assert np.array_equal(report.scores(issue), want)
    assert _report(table.iloc[:0]).scores("dark").shape == (0,)
    with pytest.raises(WorkbenchError, match="issue"):
        _report(table).score_chunks("blury")

"""The issue histogram's kept base: warmed from chunks, it is the one drawn for all scores."""

import numpy as np
import pandas as pd

from workbench import plots
from workbench.views.issues import _score_chunks


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


def test_score_chunks_are_the_issues_scores_in_table_order():
    rng = np.random.default_rng(1)
    issues = rng.choice(["blurry", "dark", "bright"], 3000)
    table = pd.DataFrame({"issue": pd.Categorical(issues, ["blurry", "dark", "bright", "odd"]),
                          "score": rng.random(3000)})  # fmt: skip
    for issue in ("blurry", "dark", "odd"):
        want = table.loc[table["issue"] == issue, "score"].to_numpy()
        for t in (table, table.astype({"issue": str})):  # categorical, and plain strings
            got = list(_score_chunks(t, issue, step=700))
            assert np.array_equal(np.concatenate(got) if got else np.empty(0), want)

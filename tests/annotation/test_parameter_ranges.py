"""The annotation library refuses parameters out of range itself, as the command line does: a threshold outside
[0, 1] or an expert cut-off that is negative (nan included), no votes per item, more bootstrap resamples than memory
allows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from annotation.agreement import MAX_BOOTSTRAP, agreement_report
from annotation.consistency import evaluate_consistency
from annotation.stage_plan import plan_stage
from emotions_data.layout import DatasetLayout
from emotions_data.schema import Stage


@pytest.mark.parametrize("threshold", [math.nan, -0.1, 1.5, math.inf])
def test_consistency_refuses_a_threshold_that_is_no_share(threshold):
    with pytest.raises(ValueError, match="threshold must be a share in"):
        evaluate_consistency(pd.DataFrame(columns=["video_id", "annotator_id", "stage", "group", "label"]), threshold)


@pytest.mark.parametrize(
    ("votes_per_item", "min_agreement", "expected"),
    [(0, 0.5, "votes_per_item must be an integer >= 1"), (True, 0.5, "votes_per_item"), (2.5, 0.5, "votes_per_item"),
     (3, -0.1, "min_agreement must be a finite share >= 0"), (3, math.nan, "min_agreement must be a finite"),
     (3, math.inf, "min_agreement must be a finite")],
)  # fmt: skip
def test_a_push_plan_refuses_impossible_parameters(tmp_path, votes_per_item, min_agreement, expected):
    with pytest.raises(ValueError, match=expected):
        plan_stage(DatasetLayout(tmp_path), Stage.LABEL, "ds", votes_per_item, min_agreement)


def test_agreement_caps_the_bootstrap():
    votes = pd.DataFrame({"video_id": ["v1", "v1"], "annotator_id": ["a", "b"], "label": ["Fear", "Fear"]})
    with pytest.raises(ValueError, match=f"n_bootstrap must be at most {MAX_BOOTSTRAP}"):
        agreement_report(votes, n_bootstrap=MAX_BOOTSTRAP + 1)
    assert agreement_report(votes, n_bootstrap=10).n_bootstrap == 10

"""Consistency evaluation against the rotating cross-check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annotation.allocation import crosscheck_group
from annotation.consistency import evaluate_consistency, plurality
from emotions_data.taxonomy import EMOTIONS6


def workflow_votes(seed: int = 0, items_per_group: int = 60, weak: str = "B2") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = ["A", "B", "C"]
    members = {g: [f"{g}{i}" for i in range(3)] for g in groups}
    accuracy = {a: (0.2 if a == weak else 0.9) for g in groups for a in members[g]}
    rows = []
    for gi, group in enumerate(groups):
        for k in range(items_per_group):
            vid, truth = f"{group}-{k:03d}", EMOTIONS6.classes[(k + gi) % 6]
            for stage, by in (("label", group), ("crosscheck", crosscheck_group(group, groups))):
                for ann in members[by]:
                    good = rng.random() < accuracy[ann]
                    label = truth if good else EMOTIONS6.classes[int(rng.integers(0, 6))]
                    rows.append((vid, ann, stage, by, label))
    return pd.DataFrame(rows, columns=["video_id", "annotator_id", "stage", "group", "label"])


def test_the_weak_annotator_is_flagged_with_their_items():
    votes = workflow_votes()
    result = evaluate_consistency(votes, threshold=0.6)
    assert result.annotators.index[0] == "B2" and result.annotators.loc["B2", "flagged"]
    assert result.annotators["flagged"].sum() == 1
    assert result.annotators.loc["A0", "crosscheck_agreement"] > 0.8
    assert result.flagged_items == sorted(votes.query("annotator_id == 'B2' and stage == 'label'")["video_id"].unique())
    assert result.groups.loc["B", "mean_annotator_agreement"] < result.groups.loc["A", "mean_annotator_agreement"]
    assert set(result.groups["n_items"]) == {60}


def test_plurality_leaves_ties_out():
    votes = pd.DataFrame({"video_id": ["x", "x", "y", "y", "y"], "label": ["P", "Q", "P", "P", "Q"]})
    assert plurality(votes).to_dict() == {"y": "P"}


def test_consistency_needs_label_votes():
    with pytest.raises(ValueError, match="label"):
        evaluate_consistency(pd.DataFrame(columns=["video_id", "annotator_id", "stage", "group", "label"]))


def test_the_re_evaluation_compares_with_the_second_cross_check_round():
    from emotions_data.schema import Stage

    votes = workflow_votes()
    # The second round (after the adjustments) disagrees with group A everywhere: only the re-evaluation sees it.
    second = votes[votes["stage"] == "crosscheck"].assign(stage="crosscheck2")
    second["label"] = np.where(second["video_id"].str.startswith("A"), "no such class", second["label"])
    both = pd.concat([votes, second], ignore_index=True)
    first = evaluate_consistency(both, threshold=0.6)
    again = evaluate_consistency(both, threshold=0.6, crosscheck=Stage.CROSSCHECK2)
    assert not first.annotators.loc[["A0", "A1", "A2"], "flagged"].any()
    assert again.annotators.loc[["A0", "A1", "A2"], "flagged"].all()
    with pytest.raises(ValueError, match="not a cross-check stage"):
        evaluate_consistency(both, crosscheck=Stage.EXPERT)

"""Suspect labels: confident learning on planted noise (pure maths), group-aware folds, the suspects table and the
requests that send suspects to the expert stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data.layout import DatasetLayout
from emotions_data.split_step import split_items, with_near_duplicate_edges
from emotions_data.stratified_split import connected_groups, grouping_links
from emotions_data.suspects import (
    DISPUTE_REASON,
    SUSPECTS_SCHEMA,
    expert_requests_path,
    find_suspects,
    group_folds,
    record_validation,
    request_expert_review,
)
from emotions_data.taxonomy import EMOTIONS6
from tests.support.manifests import released_dataset
from tests.support.planted_noise import planted_noise, precision_recall


def test_confident_learning_thresholds_and_rule_on_a_hand_example():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.85, 0.15]])
    result = find_suspects(labels, probs, "off-diagonal")
    assert result.thresholds == pytest.approx([0.8, (0.8 + 0.15) / 2])  # mean self-confidence per given class
    assert result.suspect.tolist() == [False, False, False, True]  # item 3: p0 0.85 >= t0 0.8, labelled 1
    assert result.suggested.tolist() == [0, -1, 1, 0] and result.margin[3] == pytest.approx(-0.7)
    assert result.ranked().tolist() == [3]


def test_suspects_recover_most_flipped_labels_on_planted_noise():
    given, probs, flipped = planted_noise(600, 6, noise=0.1, seed=3)
    result = find_suspects(given, probs)  # prune by noise rate
    precision, recall = precision_recall(result.suspect, flipped)
    assert precision > 0.85 and recall > 0.75, (precision, recall)
    strict = find_suspects(given, probs, "off-diagonal")
    assert precision_recall(strict.suspect, flipped)[0] > 0.95 and strict.suspect.sum() < result.suspect.sum()
    top = result.ranked()[: int(flipped.sum()) // 2]
    assert flipped[top].mean() > 0.9, "the lowest margins are the flipped labels"


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        find_suspects(np.array([0, 1]), np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="unknown rule"):
        find_suspects(np.array([0, 1]), np.ones((2, 2)) / 2, "vote")
    with pytest.raises(ValueError, match="labels must lie"):
        find_suspects(np.array([0, 5]), np.ones((2, 2)) / 2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> DatasetLayout:
    layout, _ = released_dataset(tmp_path_factory.mktemp("suspects") / "ds")
    return layout


def test_folds_keep_every_leakage_group_whole_and_are_stratified(dataset):
    folds = group_folds(dataset, k=5, seed=0)
    items = with_near_duplicate_edges(split_items(dataset))
    groups = connected_groups(len(items), list(grouping_links(items).values()))
    fold_of = folds.set_index("video_id")["fold"]
    per_group = pd.Series(items["video_id"].map(fold_of).to_numpy()).groupby(groups).nunique()
    assert (per_group == 1).all(), "no group in two folds"
    assert fold_of["v0000"] == fold_of["v0001"], "the near-duplicate pair stays together"
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert folds.groupby("fold").size().between(18, 30).all()
    with pytest.raises(ValueError, match="folds must be >= 2"):
        group_folds(dataset, k=1)


def test_suspects_table_and_requests_to_the_expert(dataset):
    folds = group_folds(dataset, k=3)
    classes = list(EMOTIONS6.classes)
    codes = folds["label"].map(classes.index).to_numpy()
    probs = np.full((len(folds), 6), 0.02)
    probs[np.arange(len(folds)), codes] = 0.9
    probs[5] = [0.9 if c == (codes[5] + 1) % 6 else 0.02 for c in range(6)]  # the model disputes item 5
    votes = pd.DataFrame({"video_id": folds["video_id"].repeat(3), "label": folds["label"].repeat(3)})
    trained = {f: folds.loc[folds["fold"] != f, "video_id"].tolist() for f in range(3)}
    table, report = record_validation(dataset, folds, probs, classes, votes, {"folds": 3, "config": "tiny",
                                      "fold_accuracy": [1.0, 1.0, 0.9]}, trained)  # fmt: skip
    assert table.schema.equals(SUSPECTS_SCHEMA) and table.num_rows == report["n_suspects"] == 1
    row = table.to_pylist()[0]
    assert row["video_id"] == folds["video_id"][5] and row["suggested"] == classes[(codes[5] + 1) % 6]
    assert row["votes"] == f"{folds['label'][5]}:3" and row["decided_by"] and row["agreement"] == 1.0
    labels_before = pq.read_table(dataset.labels)
    assert request_expert_review(dataset, top=1) == 1
    queued = pq.read_table(expert_requests_path(dataset)).to_pylist()
    assert queued[0]["video_id"] == row["video_id"] and queued[0]["reason"] == DISPUTE_REASON
    assert pq.read_table(dataset.labels).equals(labels_before), "a suspect label is never changed by the model"


def test_a_request_reaches_the_expert_plan_with_its_reason(tmp_path):
    from annotation.stage_plan import plan_stage
    from emotions_data.schema import ANNOTATORS_SCHEMA, Stage

    layout, votes = released_dataset(tmp_path / "ds")
    votes.assign(group="A", unsure=False, lead_time_s=1.0, ls_task_id=1, ls_annotation_id=range(len(votes)),
                 created_at=pd.NaT).to_parquet(layout.votes)  # fmt: skip
    people = [{"annotator_id": a, "role": "annotator", "group": "A", "active": True, "ls_user_id": i}
              for i, a in enumerate(["ann0", "ann1", "ann2"], start=2)]  # fmt: skip
    people.append({"annotator_id": "E1", "role": "expert", "group": None, "active": True, "ls_user_id": 9})
    pq.write_table(pa.Table.from_pylist(people, schema=ANNOTATORS_SCHEMA), layout.annotators)
    assert plan_stage(layout, Stage.EXPERT, "ds", 3, 0.5)["expert/E1"]["videos"] == {}, "unanimous: no expert item"
    folds = group_folds(layout, k=3)
    probs = np.full((len(folds), 6), 0.02)
    probs[:, 0] = 0.9  # the model says Excitation everywhere: every other label disputed
    record_validation(layout, folds, probs / probs.sum(1, keepdims=True), list(EMOTIONS6.classes), None, {})
    request_expert_review(layout, top=2)
    plan = plan_stage(layout, Stage.EXPERT, "ds", 3, 0.5)["expert/E1"]
    assert len(plan["videos"]) == 2
    assert all(DISPUTE_REASON in text and "suggests Excitation" in text for text in plan["earlier"].values())

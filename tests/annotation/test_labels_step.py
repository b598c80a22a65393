"""The labels step: counted votes in, labels (with per-item agreement), the expert's queue and the agreement
report out, as the files releases and cards read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from annotation.agreement import agreement_report, item_agreement
from annotation.labels_step import decide_labels
from emotions_data.layout import DatasetLayout
from emotions_data.schema import ANNOTATORS_SCHEMA, LABELS_SCHEMA
from emotions_data.storage import write_table_atomic
from emotions_data.taxonomy import EMOTIONS6

F, T, N = "Fear", "Tension", "Neutral"


def _votes() -> pd.DataFrame:
    rows = [
        ("v1", "a1", "label", F), ("v1", "a2", "label", F), ("v1", "a3", "label", T),
        ("v2", "a1", "label", N), ("v2", "a2", "label", N), ("v2", "a3", "label", N),
        ("v3", "a1", "label", F), ("v3", "a2", "label", T),  # a tie: the expert's
        ("v4", "a1", "label", T), ("v4", "a2", "label", F), ("v4", "x9", "label", T),
        ("v4", "e1", "expert", F),
        ("v5", "x9", "label", N), ("v5", "a1", "label", F), ("v5", "a2", "label", T), ("v5", "a3", "label", F),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["video_id", "annotator_id", "stage", "label"])


@pytest.fixture
def dataset(tmp_path) -> DatasetLayout:
    layout = DatasetLayout(tmp_path / "ds")
    votes = _votes()
    layout.manifests.mkdir(parents=True)
    votes.to_csv(layout.manifests / "votes.csv", index=False)
    people = [("a1", "A", True), ("a2", "A", True), ("a3", "B", True), ("x9", "B", False)]
    annotators = [{"annotator_id": a, "role": "annotator", "group": g, "active": on, "ls_user_id": None}
                  for a, g, on in people] + [{"annotator_id": "e1", "role": "expert", "group": None, "active": True,
                                              "ls_user_id": None}]  # fmt: skip
    write_table_atomic(layout.annotators, pa.Table.from_pylist(annotators, schema=ANNOTATORS_SCHEMA))
    return layout


def test_labels_step_writes_labels_queue_and_agreement_from_counted_votes(dataset):
    layout = dataset
    outcome = decide_labels(layout, EMOTIONS6, votes=layout.manifests / "votes.csv", n_bootstrap=50)
    assert (outcome.n_votes, outcome.n_counted) == (16, 14)  # x9 was dropped: on record, not counted
    labels = pd.read_parquet(layout.labels).set_index("video_id")
    assert list(pd.read_parquet(layout.labels).columns) == LABELS_SCHEMA.names
    assert labels["label"].to_dict() == {"v1": F, "v2": N, "v4": F, "v5": F}
    assert labels.loc["v4", "decided_by"] == "expert" and labels.loc["v1", "decided_by"] == "majority"
    needs = pd.read_parquet(layout.needs_expert)
    assert needs["video_id"].tolist() == ["v3"]
    # per-item agreement over the counted crowd votes only (x9's vote on v4 and v5 left out)
    counted = _votes().query("annotator_id != 'x9' and stage != 'expert'")
    counts = counted.groupby(["video_id", "label"]).size().unstack(fill_value=0)
    expected = dict(zip(counts.index, item_agreement(counts.to_numpy()), strict=True))
    for vid, value in labels["agreement"].items():
        assert value == pytest.approx(expected[vid])
    assert labels.loc["v2", "agreement"] == 1.0 and labels.loc["v1", "agreement"] == pytest.approx(1 / 3)
    report = json.loads(layout.agreement_report.read_text())
    assert report == agreement_report(counted, list(EMOTIONS6.classes), n_bootstrap=50, seed=0).to_dict()
    assert outcome.agreement is not None and outcome.agreement.to_dict() == report
    assert report["n_annotators"] == 3 and report["n_votes"] == 13


def test_labels_step_refuses_an_unknown_method_and_writes_nothing(dataset):
    with pytest.raises(ValueError, match="unknown method"):
        decide_labels(dataset, EMOTIONS6, "median", votes=dataset.manifests / "votes.csv")
    assert not dataset.labels.exists() and not dataset.agreement_report.exists()


def test_labels_step_without_crowd_votes_leaves_no_stale_report(dataset):
    layout = dataset
    decide_labels(layout, EMOTIONS6, votes=layout.manifests / "votes.csv", n_bootstrap=10)
    assert layout.agreement_report.exists()
    expert_only = _votes().query("stage == 'expert'")
    expert_only.to_csv(layout.manifests / "expert.csv", index=False)
    outcome = decide_labels(layout, EMOTIONS6, votes=layout.manifests / "expert.csv")
    assert outcome.agreement is None and not layout.agreement_report.exists()
    assert np.isnan(pd.read_parquet(layout.labels)["agreement"].astype(float)).all()

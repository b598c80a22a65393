"""`emotions validate` through the real CLI on a tiny real corpus (the tiny configuration on CPU): out-of-fold
probabilities from models that never trained on the items they score, the suspects table, the expert requests,
and the card of the next release."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from emotions_data.layout import DatasetLayout
from emotions_data.suspects import (
    DISPUTE_REASON,
    SUSPECTS_SCHEMA,
    expert_requests_path,
    suspects_path,
    validation_folds_path,
    validation_report_path,
)
from tests.support.baseline_release import tiny_release
from tests.support.commands import run_cli


def test_validate_tiny_on_cpu(tmp_path):
    release = tiny_release(tmp_path)
    dataset = release.parents[1]
    layout = DatasetLayout(dataset)
    labels_before = pq.read_table(layout.labels)
    proc = run_cli("validate", str(dataset), "--folds", "2", "--epochs", "1", "--device", "cpu", "--to-expert", "2",
                   check=True)  # fmt: skip
    assert "fold 2/2: accuracy" in proc.stderr
    folds = pq.read_table(validation_folds_path(layout)).to_pandas()
    scored = folds[folds["role"] == "scored"]
    assert len(scored) == 12 and sorted(scored["fold"].unique()) == [0, 1]
    for fold, part in folds.groupby("fold"):
        trained = set(part.loc[part["role"] == "trained", "video_id"])
        assert trained and not trained & set(part.loc[part["role"] == "scored", "video_id"]), f"fold {fold} saw it"
        assert len(trained) + (part["role"] == "scored").sum() == 12
    suspects = pq.read_table(suspects_path(layout))
    assert suspects.schema.equals(SUSPECTS_SCHEMA)
    report = json.loads(validation_report_path(layout).read_text())
    assert report["n_suspects"] == suspects.num_rows and len(report["fold_accuracy"]) == 2
    if suspects.num_rows:
        queued = pq.read_table(expert_requests_path(layout)).to_pylist()
        assert 1 <= len(queued) <= 2 and all(q["reason"] == DISPUTE_REASON for q in queued)
    assert pq.read_table(layout.labels).equals(labels_before)
    run_cli("release", str(dataset), "--version", "1.1.0", check=True)
    card = (dataset / "releases" / "1.1.0" / "README.md").read_text()
    assert (
        "## Label validation" in card
        and f"Suspect labels (the model disputes the final label): {report['n_suspects']}" in card
    )


def test_push_suspects_refusals(tmp_path):
    (tmp_path / "ds" / "manifests").mkdir(parents=True)
    wrong = run_cli("annotate", "push", str(tmp_path / "ds"), "--stage", "label", "--suspects", "2")
    assert wrong.returncode != 0 and "--suspects N (N >= 1) goes with --stage expert" in wrong.stderr
    none = run_cli("annotate", "push", str(tmp_path / "ds"), "--stage", "expert", "--suspects", "2")
    assert none.returncode != 0 and "no suspects (run 'emotions validate' first)" in none.stderr
    folds = run_cli("validate", str(tmp_path / "ds"), "--folds", "1")
    assert folds.returncode != 0 and "--folds must be >= 2" in folds.stderr

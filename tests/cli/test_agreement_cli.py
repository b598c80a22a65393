"""`emotions agreement` and `emotions labels` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from emotions_data.taxonomy import EMOTIONS6
from tests.support.votes import simulated

EMOTIONS = str(Path(sys.executable).with_name("emotions"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EMOTIONS, *args], capture_output=True, text=True, timeout=120)


def test_agreement_cli_json_and_table(tmp_path):
    votes, _ = simulated(1, items=200)
    votes["stage"] = "label"
    votes.to_csv(tmp_path / "votes.csv", index=False)
    proc = run("agreement", str(tmp_path / "votes.csv"), "--json", "--stage", "label", "--taxonomy", "emotions6")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean", "alpha_ci", "n_items", "n_annotators",
                "n_votes", "per_class", "per_annotator"):  # fmt: skip
        assert key in report
    assert report["n_items"] == 200 and report["n_votes"] == 1000 and len(report["alpha_ci"]) == 2
    assert set(report["per_class"]) == set(EMOTIONS6.classes)
    table = run("agreement", str(tmp_path / "votes.csv"))
    assert table.returncode == 0 and "Krippendorff" in table.stdout and "ann0" in table.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("video_id,annotator_id\nx,a\n", "missing column(s) label"),
        ("video_id,annotator_id,label\nx,a,Joy\n", "outside the eMotions taxonomy: Joy"),
        ("video_id,annotator_id,label\nx,a,Fear\n,b,Fear\n", "row 3"),
    ],
)
def test_agreement_cli_bad_tables_give_one_line_errors(tmp_path, content, expected):
    (tmp_path / "v.csv").write_text(content)
    proc = run("agreement", str(tmp_path / "v.csv"), "--taxonomy", "emotions6")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and expected in lines[0] and "v.csv" in lines[0]


def test_labels_cli_writes_parquet_that_pandas_reads(tmp_path):
    votes, _ = simulated(2, items=100)
    votes["stage"] = "label"
    (tmp_path / "manifests").mkdir()
    votes.to_parquet(tmp_path / "manifests" / "votes.parquet")
    proc = run("labels", str(tmp_path), "--method", "dawid-skene")
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_parquet(tmp_path / "manifests" / "labels.parquet")
    assert len(labels) == 100 and set(labels["decided_by"]) == {"model"}
    assert set(labels["polarity"]) <= {"positive", "neutral", "negative"}
    assert pq.read_table(tmp_path / "manifests" / "needs_expert.parquet").num_rows == 0

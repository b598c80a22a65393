"""`emotions split` through the real command line: checked splits, refused tampering, missing labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.support.manifests import write_dataset

EMOTIONS = str(Path(sys.executable).with_name("emotions"))


def test_split_cli_writes_checked_splits_and_refuses_tampered_ones(tmp_path):
    write_dataset(tmp_path / "ds")
    proc = subprocess.run([EMOTIONS, "split", str(tmp_path / "ds"), "--seed", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    splits = pq.read_table(tmp_path / "ds" / "manifests" / "splits.parquet").to_pandas()
    full = splits[splits["variant"] == "full"].set_index("video_id")["split"]
    assert full["v0000"] == full["v0001"], "the near-duplicate pair found by fingerprint stays together"
    assert subprocess.run([EMOTIONS, "split", str(tmp_path / "ds"), "--check"]).returncode == 0
    other = "test" if full["v0000"] != "test" else "train"
    splits.loc[(splits["variant"] == "full") & (splits["video_id"] == "v0001"), "split"] = other
    splits.to_parquet(tmp_path / "ds" / "manifests" / "splits.parquet")
    check = subprocess.run([EMOTIONS, "split", str(tmp_path / "ds"), "--check"], capture_output=True, text=True)
    assert check.returncode == 1
    assert "v0000" in check.stderr and "v0001" in check.stderr and "near_duplicate" in check.stderr
    assert check.stderr.strip().splitlines()[-1].startswith("error: ")


def test_split_cli_needs_labels(tmp_path):
    write_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "manifests" / "labels.parquet").unlink()
    proc = subprocess.run([EMOTIONS, "split", str(tmp_path / "ds")], capture_output=True, text=True)
    assert proc.returncode == 1 and "labels.parquet" in proc.stderr and "emotions labels" in proc.stderr

"""Releases: Parquet per variant and split, the authors' formats, checksums, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_splits import write_dataset

from emotions_data.layout import DatasetLayout
from emotions_data.release import verify_release, write_release
from emotions_data.schema import RELEASE_SCHEMA
from emotions_data.splits import SplitSettings
from emotions_data.splitting import LeakageError, split_dataset
from emotions_data.taxonomy import EMOTIONS6

EMOTIONS = str(Path(sys.executable).with_name("emotions"))


def released_dataset(root: Path) -> tuple[DatasetLayout, pd.DataFrame]:
    videos = write_dataset(root)
    videos = videos.assign(source=[f"https://www.douyin.com/video/{i}" for i in range(len(videos))], platform="douyin",
                           duration_s=3.0, width=720, height=1280, fps=30.0,
                           media_sha256=[f"{i:064x}" for i in range(len(videos))])  # fmt: skip
    videos.to_parquet(root / "manifests" / "videos.parquet")
    labels = pd.read_parquet(root / "manifests" / "labels.parquet")
    labels = labels.assign(polarity=labels["label"].map(EMOTIONS6.polarity), confidence=1.0, n_votes=3,
                           decided_by="majority")  # fmt: skip
    labels.to_parquet(root / "manifests" / "labels.parquet")
    votes = pd.DataFrame(
        [
            (v, f"ann{k}", "label", lab)
            for v, lab in zip(labels["video_id"], labels["label"], strict=True)
            for k in range(3)
        ],
        columns=["video_id", "annotator_id", "stage", "label"],
    )
    layout = DatasetLayout(root)
    split_dataset(layout, SplitSettings(seed=0))
    return layout, votes


def test_release_holds_every_variant_and_split_and_the_authors_formats(tmp_path):
    layout, votes = released_dataset(tmp_path / "ds")
    folder = write_release(layout, "1.0.0", votes=votes)
    meta = json.loads((folder / "release.json").read_text())
    splits = pd.read_parquet(layout.splits)
    for variant in ("full", "balanced", "test_oriented"):
        for split in ("train", "val", "test"):
            table = pq.read_table(folder / "data" / variant / f"{split}.parquet")
            assert table.schema.names == RELEASE_SCHEMA.names
            expected = splits.query("variant == @variant and split == @split")
            assert table.num_rows == len(expected) == meta["variants"][variant][split]
            assert sorted(table["video_id"].to_pylist()) == sorted(expected["video_id"])
        official = folder / "official" / variant
        assert (official / "classInd.txt").read_text().splitlines()[0] == "1 Excitation"
        train = (official / "trainlist01.txt").read_text().splitlines()
        assert len(train) == meta["variants"][variant]["train"] and all("/" in line for line in train)
        database = json.loads((official / "emotions.json").read_text())["database"]
        assert {d["subset"] for d in database.values()} <= {"training", "validation", "testing"}
    full = pd.read_parquet(folder / "data" / "full" / "train.parquet")
    assert (full["label_index"] == full["label"].map(EMOTIONS6.index)).all()
    assert full["votes"].map(len).eq(3).all() and (full["agreement"] == 1.0).all()
    assert not list(folder.rglob("*.mp4")), "media are never part of a release"
    assert meta["split_settings"]["seed"] == 0 and "balanced" in meta["split_settings"]["rules"]
    assert verify_release(folder) == []


def test_checksums_catch_a_changed_file(tmp_path):
    layout, votes = released_dataset(tmp_path / "ds")
    folder = write_release(layout, "0.1.0", votes=votes)
    target = folder / "official" / "full" / "testlist01.txt"
    target.write_text(target.read_text() + "Fear/intruder\n")
    assert verify_release(folder) == ["official/full/testlist01.txt"]


def test_existing_versions_bad_versions_and_leaks_are_refused_without_writing(tmp_path):
    layout, votes = released_dataset(tmp_path / "ds")
    folder = write_release(layout, "0.1.0", votes=votes)
    before = (folder / "SHA256SUMS").read_bytes()
    with pytest.raises(ValueError, match="never overwritten"):
        write_release(layout, "0.1.0", votes=votes)
    assert (folder / "SHA256SUMS").read_bytes() == before
    with pytest.raises(ValueError, match=r"X\.Y\.Z"):
        write_release(layout, "latest", votes=votes)
    splits = pd.read_parquet(layout.splits)
    first = splits.index[(splits["variant"] == "full") & (splits["video_id"] == "v0000")][0]
    partner = splits.loc[(splits["variant"] == "full") & (splits["video_id"] == "v0001"), "split"].iloc[0]
    splits.loc[first, "split"] = "test" if partner != "test" else "train"
    splits.to_parquet(layout.splits)
    with pytest.raises(LeakageError):
        write_release(layout, "0.2.0", votes=votes)
    assert sorted(p.name for p in (layout.root / "releases").iterdir()) == ["0.1.0"]


def test_release_cli(tmp_path):
    released_dataset(tmp_path / "ds")
    proc = subprocess.run(
        [EMOTIONS, "release", str(tmp_path / "ds"), "--version", "0.3.0"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "full: train" in proc.stdout and (tmp_path / "ds" / "releases" / "0.3.0" / "SHA256SUMS").exists()
    again = subprocess.run(
        [EMOTIONS, "release", str(tmp_path / "ds"), "--version", "0.3.0"], capture_output=True, text=True
    )
    lines = [ln for ln in again.stderr.splitlines() if ln.strip()]
    assert again.returncode == 1 and len(lines) == 1 and "never overwritten" in lines[0]

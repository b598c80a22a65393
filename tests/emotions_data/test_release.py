"""Releases: Parquet per variant and split, the authors' formats, checksums, refusals."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from emotions_data.release import verify_release, write_release
from emotions_data.schema import RELEASE_SCHEMA
from emotions_data.split_step import LeakageError
from emotions_data.taxonomy import EMOTIONS6
from tests.support.manifests import released_dataset


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


def test_public_source_names_local_files_by_name_and_drops_url_credentials():
    from emotions_data.release import public_source

    assert public_source("/home/alice/data/Fear/fear 0.mp4", "file") == "fear 0.mp4"
    assert public_source("file:///home/alice/x%20y.mp4", "url") == "x y.mp4"
    assert public_source("C:\\Users\\bob\\clip.mp4", "file") == "clip.mp4"
    assert (
        public_source("https://u:pw@www.douyin.com:8443/video/1?x=1", "url")
        == "https://www.douyin.com:8443/video/1?x=1"
    )
    assert public_source("https://www.tiktok.com/@bob/video/7", "url") == "https://www.tiktok.com/@bob/video/7"

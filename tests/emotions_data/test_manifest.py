"""The one reader of the videos manifest (emotions_data.manifest): a newer or unknown schema version is refused with
one message naming the file and both versions; the current version and a file without a version are read."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data.ingest import read_manifest
from emotions_data.manifest import ManifestVersionError, read_versioned_table
from emotions_data.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY


def _write(path, version: str | None) -> None:
    table = pa.table({"video_id": ["a", "b"], "status": ["ok", "failed"]})
    if version is not None:
        table = table.replace_schema_metadata({SCHEMA_VERSION_KEY: version.encode()})
    pq.write_table(table, path)


@pytest.mark.parametrize("version", [SCHEMA_VERSION, None])
def test_the_current_version_and_an_unversioned_file_are_read(tmp_path, version):
    _write(tmp_path / "videos.parquet", version)
    assert read_versioned_table(tmp_path / "videos.parquet", ["video_id"]).column_names == ["video_id"]
    assert read_manifest(tmp_path / "videos.parquet")["video_id"].tolist() == ["a", "b"]


def test_an_older_readable_version_is_read_and_its_missing_columns_are_null(tmp_path):
    from emotions_data.schema import READABLE_SCHEMA_VERSIONS, VIDEOS_SCHEMA

    assert READABLE_SCHEMA_VERSIONS[-1] == SCHEMA_VERSION and "1.0" in READABLE_SCHEMA_VERSIONS
    _write(tmp_path / "videos.parquet", "1.0")
    table = read_versioned_table(tmp_path / "videos.parquet")
    assert table.column_names == ["video_id", "status"]
    widened = pq.read_table(
        tmp_path / "videos.parquet", schema=pa.schema([*table.schema, VIDEOS_SCHEMA.field("color_transfer")])
    )
    assert widened["color_transfer"].to_pylist() == [None, None]


def test_a_hand_written_pandas_manifest_is_read(tmp_path):
    pd.DataFrame({"video_id": ["a"], "status": ["ok"]}).to_parquet(tmp_path / "videos.parquet")
    assert len(read_manifest(tmp_path / "videos.parquet")) == 1


@pytest.mark.parametrize("version", ["1.4", "2.0", "10.0", "1.3.1"])
def test_a_newer_version_is_refused_naming_the_file_and_both_versions(tmp_path, version):
    _write(tmp_path / "videos.parquet", version)
    with pytest.raises(ManifestVersionError) as caught:
        read_versioned_table(tmp_path / "videos.parquet")
    assert str(caught.value) == (
        f"{tmp_path / 'videos.parquet'}: manifest schema version {version}, this emotions reads {SCHEMA_VERSION}: "
        "written by a newer emotions; upgrade (pip install -U emotions)"
    )


@pytest.mark.parametrize("version", ["banana", "", "0.9", "2.x"])
def test_an_unknown_version_is_refused(tmp_path, version):
    _write(tmp_path / "videos.parquet", version)
    with pytest.raises(ManifestVersionError) as caught:
        read_manifest(tmp_path / "videos.parquet")
    assert f"unknown manifest schema version '{version}', this emotions reads {SCHEMA_VERSION}" in str(caught.value)


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    (tmp_path / "videos.parquet").write_text("url\nhttp://x\n")
    with pytest.raises(ValueError, match=r"videos\.parquet: not a readable Parquet manifest"):
        read_versioned_table(tmp_path / "videos.parquet")

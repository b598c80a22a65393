"""SOURCE tables and folders that cannot be read as they are: a column given twice, a Parquet column of lists or
structs, a file name that is not UTF-8. A table is refused in one line naming file and column; a folder's badly named
file is left out and reported, naming it with its bytes escaped, and the rest of the folder is ingested."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data.executor import make_executor
from emotions_data.ingest import ingest, read_manifest
from emotions_data.sources import SourceError, read_source, read_sources
from tests.support.corpus import settings


def _parquet(path, table):
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("dup.csv", lambda p: p.write_text("url,video_id,url\nhttp://a.example/x.mp4,a,http://b.example/y.mp4\n"),
         "dup.csv: column(s) 'url' appear more than once"),
        ("bom.csv", lambda p: p.write_bytes(b"\xef\xbb\xbfurl,url\nhttp://a.example/x.mp4,y\n"),
         "bom.csv: column(s) 'url' appear more than once"),
        ("ids.csv", lambda p: p.write_text("url,video_id,video_id\nhttp://a.example/x.mp4,a,b\n"),
         "ids.csv: column(s) 'video_id' appear more than once"),
        ("dup.parquet", lambda p: _parquet(p, pa.table([pa.array(["http://a.example/x.mp4"])] * 2, names=["url"] * 2)),
         "dup.parquet: column(s) 'url' appear more than once"),
        ("lists.parquet", lambda p: _parquet(p, pa.table({"url": [["http://a.example/x.mp4"]]})),
         "lists.parquet: row 0: column 'url' holds a list (['http://a.example/x.mp4']), not text"),
        ("struct.parquet", lambda p: _parquet(p, pa.table({"url": ["http://a.example/x.mp4"], "uploader": [{"a": 1}]})),
         "struct.parquet: row 0: column 'uploader' holds a struct"),
        ("bytes.parquet", lambda p: _parquet(p, pa.table({"url": pa.array([b"http://a.example/x.mp4"], pa.binary())})),
         "bytes.parquet: row 0: column 'url' holds a bytes"),
    ],
)  # fmt: skip
def test_a_table_with_a_column_twice_or_of_lists_is_named(tmp_path, name, make, expected):
    make(tmp_path / name)
    with pytest.raises(SourceError) as caught:
        read_source(tmp_path / name)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_parquet_column_of_numbers_is_still_read(tmp_path):
    path = _parquet(tmp_path / "n.parquet", pa.table({"url": ["http://a.example/x.mp4"], "video_id": [5]}))
    assert [item.video_id for item in read_source(path)] == ["5"]


def _bad_name(folder) -> bytes:
    name = os.fsencode(folder) + b"/caf\xe9 clip.mp4"  # Latin-1 "é": not UTF-8
    with open(name, "wb") as handle:
        handle.write(b"not read")
    return name


def test_a_file_name_that_is_not_utf8_is_left_out_and_named(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(b"x")
    _bad_name(folder)
    refused: list[str] = []
    items = read_sources([folder], refused)
    assert [item.source for item in items] == [str((folder / "good.mp4").resolve())]
    assert refused == [f"{folder}/caf\\xe9 clip.mp4: the file name is not UTF-8 text; rename it to ingest it"]
    with pytest.raises(SourceError, match=r"caf\\xe9 clip\.mp4: the file name is not UTF-8"):
        read_sources([folder])  # without a list to report in, the first is the error
    (folder / "good.mp4").unlink()
    with pytest.raises(SourceError, match=r"no videos in this folder .*; 1 refused, the first .*caf\\xe9"):
        read_sources([folder], [])


def test_ingest_goes_on_without_the_file_whose_name_is_not_utf8(corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "portrait.mp4").write_bytes((corpus / "portrait.mp4").read_bytes())
    _bad_name(folder)
    report = ingest([folder], tmp_path / "ds", settings(), executor=make_executor("serial", 1))
    frame = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet")
    assert list(frame["status"]) == ["ok"] and frame["source"][0].endswith("portrait.mp4")
    assert len(report.refused_inputs) == 1 and "caf\\xe9 clip.mp4" in report.refused_inputs[0]
    assert "caf\\\\xe9" in (tmp_path / "ds" / "manifests" / "ingest_summary.json").read_text()

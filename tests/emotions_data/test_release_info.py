"""release.json through its one reader and writer: a written release reads back to the same bytes, and a
missing, truncated or foreign file is refused with one line naming it."""

from __future__ import annotations

import json

import pytest

from emotions_data.release import write_release
from emotions_data.release_info import ReleaseInfo
from tests.support.manifests import released_dataset


def test_a_written_release_json_reads_back_to_the_same_bytes(tmp_path):
    layout, votes = released_dataset(tmp_path / "ds")
    folder = write_release(layout, "1.0.0", votes=votes)
    written = (folder / "release.json").read_bytes()
    info = ReleaseInfo.from_directory(folder)
    assert list(json.loads(written)) == list(info.to_dict())
    assert info.name == "ds" and info.version == "1.0.0" and info.classes[0] == "Excitation"
    assert info.files["full"]["test"] == "data/full/test.parquet"
    info.write_to_directory(tmp_path)
    assert (tmp_path / "release.json").read_bytes() == written


def test_a_flat_file_list_and_missing_name_are_read(tmp_path):
    folder = tmp_path / "mine" / "releases" / "0.2.0"
    folder.mkdir(parents=True)
    (folder / "release.json").write_text(json.dumps({"files": ["data/full/val.parquet", "official/x.txt"]}))
    info = ReleaseInfo.from_directory(folder)
    assert (info.name, info.version, info.license) == ("mine", "0.2.0", "other")
    assert info.files == {"full": {"val": "data/full/val.parquet"}}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "not a release folder"),
        ('{"name": "x", "version": "1.0', "not valid JSON"),
        ("", "not valid JSON"),
        ("name: x\n", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"variants": [1]}', "'variants' must be a JSON object"),
    ],
)
def test_unreadable_release_json_is_one_line_naming_the_file(tmp_path, content, reason):
    if content is not None:
        (tmp_path / "release.json").write_text(content)
    with pytest.raises(ValueError, match=reason) as caught:
        ReleaseInfo.from_directory(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'release.json'}: ") and "\n" not in message

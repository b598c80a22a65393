"""import-official: every unusable file of a published layout is one error line naming it (and the line or video),
before anything is fetched or written; a UTF-8 byte-order mark is accepted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.cli.test_official_cli import authors_layout
from tests.support.commands import run_cli


def fake_layout(root):
    """The authors' layout with empty stand-in videos: these errors are found before any video is read."""
    for cls, names in {"Excitation": ["e0", "e1"], "Fear": ["f0", "f1"]}.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            (root / cls / f"{name}.mp4").write_bytes(b"")
    (root / "classInd.txt").write_text("1 Excitation\n2 Fear\n")
    (root / "trainlist01.txt").write_text("Excitation/e0.mp4 1\nFear/f0.mp4 2\n")
    (root / "testlist01.txt").write_text("Excitation/e1.mp4\n")
    database = {"f1": {"subset": "validation", "annotations": {"label": "Fear"}}}
    (root / "emotions.json").write_text(json.dumps({"labels": ["Excitation", "Fear"], "database": database}))
    return root


BAD_FILES = {
    "truncated JSON": ("emotions.json", b'{"database": {"f1": {"subset": "valid', "emotions.json: not valid JSON"),
    "database a list": ("emotions.json", b'{"database": [{"id": "f1"}]}', "'database' must be a JSON object"),
    "entry a list": ("emotions.json", b'{"database": {"f1": ["validation"]}}', "f1: an entry must be a JSON object"),
    "unknown subset": ("emotions.json", b'{"database": {"f1": {"subset": "dev"}}}', "f1: unknown subset 'dev'"),
    "annotations a string": (
        "emotions.json", b'{"database": {"f1": {"annotations": "Fear"}}}', "f1: 'annotations' must be a JSON object"
    ),
    "classInd not UTF-8": (
        "classInd.txt", "1 Excitation\n2 Fe\xe4r\n".encode("latin-1"), "classInd.txt: line 2: not UTF-8"
    ),
    "list not UTF-8": ("testlist01.txt", b"Excitation/e1.mp4\n\xff\xfe\n", "testlist01.txt: line 2: not UTF-8"),
    "JSON not UTF-8": ("emotions.json", b'{"database": {"\xe9": {}}}', "emotions.json: line 1: not UTF-8"),
    "class twice": (
        "classInd.txt", b"1 Excitation\n2 Fear\n3 Fear\n", "classInd.txt: line 3: class Fear already given on line 2"
    ),
    "index twice": ("classInd.txt", b"1 Excitation\n1 Fear\n", "classInd.txt: line 2: index 1 already given on line 1"),
    "two lists": (
        "testlist01.txt", b"Fear/f0.mp4\n",
        "trainlist01.txt: line 2: 'Fear/f0.mp4' is also in the test split (testlist01.txt: line 1)",
    ),
    "list and JSON": ("testlist01.txt", b"Excitation/e1.mp4\n", None),  # the JSON below puts e1 in train
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_an_unusable_layout_file_is_one_line_naming_it(tmp_path, case):
    root = fake_layout(tmp_path / "layout")
    name, content, expected = BAD_FILES[case]
    (root / name).write_bytes(content)
    if expected is None:
        database = {"e1": {"subset": "training", "annotations": {"label": "Excitation"}}}
        (root / "emotions.json").write_text(json.dumps({"database": database}))
        expected = "emotions.json: e1: in the train split here but in test (testlist01.txt: line 1)"
    proc = run_cli("import-official", str(root), "--out", str(tmp_path / "ds"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert not (tmp_path / "ds").exists(), "refused before anything was fetched or written"


def test_byte_order_marks_are_accepted(corpus, tmp_path):
    plain = authors_layout(corpus, tmp_path / "plain")
    marked = authors_layout(corpus, tmp_path / "marked")
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt", "emotions.json"):
        (marked / name).write_bytes(b"\xef\xbb\xbf" + (marked / name).read_bytes())
    for layout in (plain, marked):
        proc = run_cli("import-official", str(layout), "--out", str(tmp_path / f"ds-{layout.name}"))
        assert proc.returncode == 0, proc.stderr
    for name in ("labels.parquet", "splits.parquet"):
        frames = [pd.read_parquet(tmp_path / f"ds-{which}" / "manifests" / name) for which in ("plain", "marked")]
        pd.testing.assert_frame_equal(*frames)
    splits = pd.read_parquet(tmp_path / "ds-marked" / "manifests" / "splits.parquet").set_index("video_id")
    assert splits.loc["excitation_0", "split"] == "train" and splits.loc["fear_1", "split"] == "test"

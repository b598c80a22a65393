"""Options and inputs that used to be accepted silently (or died in a traceback) now give one error line naming the
option or file, exit 1, and change nothing: split's ratios and counts, agreement's options and one-vote tables,
taxonomy files."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.commands import run_cli
from tests.support.manifests import write_dataset
from tests.support.votes import simulated


def one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--ratios", "a,b,c"], "--ratios 'a,b,c'"),
        (["--ratios", "0.5,0.5"], "--ratios"),
        (["--ratios", "0.5,0.3,0.3"], "--ratios"),
        (["--ratios", "-0.1,0.6,0.5"], "--ratios"),
        (["--ratios", "nan,0.5,0.5"], "--ratios"),
        (["--ratios", "0.8,0.1,0.1,0"], "--ratios"),
        (["--balanced-per-class", "-1"], "--balanced-per-class"),
        (["--balanced-per-class", "0"], "--balanced-per-class"),
        (["--test-per-class", "0"], "--test-per-class"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_split_refuses_bad_options_naming_them_and_keeps_the_old_splits(tmp_path, args, named):
    write_dataset(tmp_path / "ds")
    run_cli("split", str(tmp_path / "ds"), check=True)
    before = (tmp_path / "ds" / "manifests" / "splits.parquet").read_bytes()
    line = one_error_line(run_cli("split", str(tmp_path / "ds"), *args))
    assert named in line
    assert (tmp_path / "ds" / "manifests" / "splits.parquet").read_bytes() == before


@pytest.fixture(scope="module")
def votes_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("votes") / "votes.csv"
    simulated(3, items=40)[0].to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--confidence", "1.5"], "--confidence"),
        (["--confidence", "1"], "--confidence"),
        (["--confidence", "0"], "--confidence"),
        (["--bootstrap", "-1"], "--bootstrap"),
        (["--top", "-1"], "--top"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_agreement_refuses_options_out_of_range_naming_them(votes_csv, args, named):
    assert named in one_error_line(run_cli("agreement", str(votes_csv), *args))


def test_agreement_needs_two_votes_on_one_item(tmp_path):
    (tmp_path / "one.csv").write_text("video_id,annotator_id,label\nv1,a1,Fear\n")
    line = one_error_line(run_cli("agreement", str(tmp_path / "one.csv")))
    assert "one.csv" in line and "no item has two or more votes (1 vote(s) on 1 item(s))" in line
    (tmp_path / "spread.csv").write_text("video_id,annotator_id,label\nv1,a1,Fear\nv2,a2,Tension\nv3,a1,Fear\n")
    assert "spread.csv" in one_error_line(run_cli("agreement", str(tmp_path / "spread.csv"), "--json"))
    # Two votes on one item are enough; a statistic that is still undefined says why instead of a bare dash.
    (tmp_path / "same.csv").write_text("video_id,annotator_id,label\nv1,a1,Fear\nv1,a2,Fear\n")
    proc = run_cli("agreement", str(tmp_path / "same.csv"))
    assert proc.returncode == 0 and "no variation" in proc.stdout and "no two annotators share" in proc.stdout


def test_labels_refuses_an_unknown_method_naming_the_option(tmp_path):
    line = one_error_line(run_cli("labels", str(tmp_path), "--method", "median"))
    assert "--method 'median'" in line and "majority or dawid-skene" in line


def test_labels_from_single_votes_write_no_agreement_report(tmp_path):
    (tmp_path / "manifests").mkdir()
    votes = pd.DataFrame({"video_id": ["v1", "v2"], "annotator_id": ["a1", "a2"], "label": ["Fear", "Tension"],
                          "stage": "label"})  # fmt: skip
    votes.to_parquet(tmp_path / "manifests" / "votes.parquet")
    run_cli("labels", str(tmp_path), check=True)
    assert len(pd.read_parquet(tmp_path / "manifests" / "labels.parquet")) == 2
    assert not (tmp_path / "manifests" / "agreement.json").exists()


TAXONOMY = '[taxonomy]\nname = "Mine"\n'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('classes = "Joy"\n', "taxonomy.classes must be a non-empty list of class names, not str 'Joy'"),
        ("classes = []\n", "taxonomy.classes must be a non-empty list"),
        ('classes = ["Joy", "Joy"]\n', "taxonomy.classes lists 'Joy' more than once"),
        ('classes = ["Joy", ""]\n', "taxonomy.classes: '' is empty"),
        ('classes = ["Joy", " Fear"]\n', "taxonomy.classes: ' Fear' has surrounding spaces"),
        ('classes = ["Joy", "a/b"]\n', "taxonomy.classes: 'a/b' holds '/'"),
        ("classes = [1, 2]\n", "taxonomy.classes: 1 is a int, not text"),
        ('classes = ["Joy"]\n[taxonomy.polarity]\nJoy = "positive"\nAnger = "negative"\n',
         "taxonomy.polarity names class(es) not in taxonomy.classes: Anger"),
        ('classes = ["Joy", "Fear"]\n[taxonomy.polarity]\nJoy = "positive"\n', "missing: Fear"),
        ('classes = ["Joy"]\n[taxonomy.polarity]\nJoy = "happy"\n', "'happy' is not one of positive"),
        ('classes = ["Joy"]\npolarity = "positive"\n', "taxonomy.polarity must be a table"),
        ('classes = ["Joy"]\n[taxonomy.aliases]\nHappy = "Glad"\n', "aliases point to class(es) not in"),
        ("name = 3\n", "not a taxonomy file"),  # TOML error: the name is given twice
    ],
)  # fmt: skip
def test_a_bad_taxonomy_file_is_one_line_naming_it_and_the_key(tmp_path, votes_csv, body, expected):
    path = tmp_path / "mine.toml"
    path.write_text(TAXONOMY + body)
    line = one_error_line(run_cli("agreement", str(votes_csv), "--taxonomy", str(path)))
    assert "mine.toml" in line and expected in line


def test_a_taxonomy_file_that_is_not_utf8_or_lacks_the_table_is_named(tmp_path, votes_csv):
    (tmp_path / "latin1.toml").write_bytes('[taxonomy]\nclasses = ["Frühling"]\n'.encode("latin-1"))
    (tmp_path / "other.toml").write_text('[classes]\nnames = ["Joy"]\n')
    for name in ("latin1.toml", "other.toml"):
        line = one_error_line(run_cli("agreement", str(votes_csv), "--taxonomy", str(tmp_path / name)))
        assert name in line and "not a taxonomy file" in line

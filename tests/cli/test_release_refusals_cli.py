"""`emotions release` refuses, in one line, what it used to accept silently: splits that no longer fit the labels,
names that are not one folder name, labels outside the taxonomy; nothing is written then."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.commands import run_cli
from tests.support.manifests import released_dataset


def one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def nothing_released(ds) -> bool:
    return not (ds / "releases").exists() or not any((ds / "releases").iterdir())


def test_a_label_changed_after_the_split_is_refused_until_split_runs_again(tmp_path):
    ds = tmp_path / "ds"
    released_dataset(ds)
    labels = pd.read_parquet(ds / "manifests" / "labels.parquet")
    labels.loc[labels["video_id"] == "v0003", "label"] = "Fear" if labels.loc[3, "label"] != "Fear" else "Tension"
    labels.to_parquet(ds / "manifests" / "labels.parquet")
    for args in (["release", str(ds), "--version", "1.0.0"], ["split", str(ds), "--check"]):
        line = one_error_line(run_cli(*args))
        assert "splits.parquet" in line and "labels.parquet" in line and "re-run 'emotions split'" in line
    assert nothing_released(ds) and not (ds / "data_cards").exists()
    run_cli("split", str(ds), check=True)
    run_cli("release", str(ds), "--version", "1.0.0", check=True)


def test_a_labelled_video_in_no_split_is_refused(tmp_path):
    ds = tmp_path / "ds"
    released_dataset(ds)
    manifests = ds / "manifests"
    videos = pd.read_parquet(manifests / "videos.parquet")
    extra = videos.iloc[[5]].assign(video_id="v9999", uploader="u-new", sha256="f" * 64, input_index=999)
    pd.concat([videos, extra], ignore_index=True).to_parquet(manifests / "videos.parquet")
    labels = pd.read_parquet(manifests / "labels.parquet")
    pd.concat([labels, labels.iloc[[5]].assign(video_id="v9999")]).to_parquet(manifests / "labels.parquet")
    line = one_error_line(run_cli("release", str(ds), "--version", "1.0.0"))
    assert "re-run 'emotions split'" in line and "labels.parquet" in line
    # Splits written by other means (no record of their labels): the coverage of the full variant still tells.
    pd.read_parquet(manifests / "splits.parquet").to_parquet(manifests / "splits.parquet")
    line = one_error_line(run_cli("release", str(ds), "--version", "1.0.0"))
    assert "1 labelled video(s) in no split (e.g. v9999)" in line and "re-run 'emotions split'" in line
    assert nothing_released(ds)
    run_cli("split", str(ds), check=True)
    run_cli("release", str(ds), "--version", "1.0.0", check=True)


@pytest.mark.parametrize("name", ["../../x", "..", ".", "...", "a/b", "a\\b", "", " ", "tab\there"])
def test_a_release_name_must_be_one_folder_name(tmp_path, name):
    ds = tmp_path / "data" / "ds"
    released_dataset(ds)
    line = one_error_line(run_cli("release", str(ds), "--version", "1.0.0", "--name", name))
    assert "--name" in line
    assert nothing_released(ds) and not (ds / "data_cards").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "ds" not in p.parts) == []


def test_labels_outside_the_release_taxonomy_name_the_labels_file(tmp_path):
    ds = tmp_path / "ds"
    released_dataset(ds)
    (tmp_path / "ekman.toml").write_text('[taxonomy]\nname = "Ekman-6"\nclasses = ["Anger", "Disgust", "Fear"]\n')
    line = one_error_line(run_cli("release", str(ds), "--version", "1.0.0", "--taxonomy", str(tmp_path / "ekman.toml")))
    assert "labels.parquet" in line and "outside the Ekman-6 taxonomy" in line and "Excitation" in line
    assert nothing_released(ds)

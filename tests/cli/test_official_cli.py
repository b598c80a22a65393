"""import-official: the authors' layout and folder-per-class datasets, through the real ingest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.official_format import discover
from emotions_data.taxonomy import EMOTIONS6

EMOTIONS = str(Path(sys.executable).with_name("emotions"))
CLIPS = {"Excitation": ["landscape.mp4", "portrait.mp4"], "Sad": ["rotated.mp4", "source.mp4"],
         "Fear": ["lookalike_a.mp4", "lookalike_b.mp4"]}  # fmt: skip


def authors_layout(corpus: Path, root: Path) -> Path:
    for cls, names in CLIPS.items():
        (root / cls).mkdir(parents=True)
        for k, name in enumerate(names):
            shutil.copy(corpus / name, root / cls / f"{cls.lower()}_{k}.mp4")
    (root / "classInd.txt").write_text("1 Excitation\n2 Fear\n3 Neutral\n4 Relaxation\n5 Sad\n6 Tension\n")
    (root / "trainlist01.txt").write_text("Excitation/excitation_0.mp4 1\nSad/sad_0.mp4 5\nFear/fear_0.mp4 2\n")
    (root / "testlist01.txt").write_text("Excitation/excitation_1.mp4\nSad/sad_1.mp4\n")
    database = {"fear_1": {"subset": "validation", "annotations": {"label": "Fear"}}}
    (root / "emotions.json").write_text(json.dumps({"labels": ["Excitation", "Fear"], "database": database}))
    return root


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EMOTIONS, *args], capture_output=True, text=True, timeout=600)


def test_the_authors_layout_becomes_labels_and_an_official_split(corpus, tmp_path):
    root = authors_layout(corpus, tmp_path / "eMotions")
    proc = run("import-official", str(root), "--out", str(tmp_path / "ds"))
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_parquet(tmp_path / "ds" / "manifests" / "labels.parquet").set_index("video_id")
    assert labels.loc["sad_0", "label"] == "Sadness" and labels.loc["sad_0", "polarity"] == "negative"
    assert set(labels["decided_by"]) == {"official"} and len(labels) == 6
    splits = pd.read_parquet(tmp_path / "ds" / "manifests" / "splits.parquet").set_index("video_id")
    assert splits.loc["excitation_1", "split"] == "test" and splits.loc["fear_0", "split"] == "train"
    assert splits.loc["fear_1", "split"] == "test", "the JSON's validation subset is the authors' test"
    videos = pd.read_parquet(tmp_path / "ds" / "manifests" / "videos.parquet")
    assert set(videos["status"]) == {"ok"} and videos["official_label"].notna().all()
    # Our own variants come on top and the official one survives; a release carries both.
    assert run("split", str(tmp_path / "ds")).returncode == 0
    variants = set(pd.read_parquet(tmp_path / "ds" / "manifests" / "splits.parquet")["variant"])
    assert variants == {"official", "full", "balanced", "test_oriented"}
    released = run("release", str(tmp_path / "ds"), "--version", "1.0.0")
    assert released.returncode == 0, released.stderr
    test_list = tmp_path / "ds" / "releases" / "1.0.0" / "official" / "official" / "testlist01.txt"
    assert sorted(test_list.read_text().splitlines()) == ["Excitation/excitation_1", "Fear/fear_1", "Sadness/sad_1"]


def test_a_folder_per_class_dataset_with_its_taxonomy(corpus, tmp_path):
    for cls, name in (("Joy", "landscape.mp4"), ("Anger", "portrait.mp4")):
        (tmp_path / "ve" / cls).mkdir(parents=True)
        shutil.copy(corpus / name, tmp_path / "ve" / cls / f"{cls}.mp4")
    (tmp_path / "ekman.toml").write_text(
        '[taxonomy]\nname = "Ekman-6"\nclasses = ["Anger", "Disgust", "Fear", "Joy", "Sadness", "Surprise"]\n'
    )
    proc = run("import-official", str(tmp_path / "ve"), "--out", str(tmp_path / "ds"), "--taxonomy",
               str(tmp_path / "ekman.toml"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_parquet(tmp_path / "ds" / "manifests" / "labels.parquet")
    assert sorted(labels["label"]) == ["Anger", "Joy"]
    assert not (tmp_path / "ds" / "manifests" / "splits.parquet").exists()


def test_bad_layouts_give_errors_naming_the_file(corpus, tmp_path):
    root = authors_layout(corpus, tmp_path / "eMotions")
    (root / "testlist01.txt").write_text("Excitation/missing_clip.mp4\n")
    with pytest.raises(ValueError) as err:
        discover(root, EMOTIONS6)
    assert "testlist01.txt: line 1: 'Excitation/missing_clip.mp4' names no video" in str(err.value)
    (root / "testlist01.txt").unlink()
    (root / "Joyful").mkdir()
    shutil.copy(corpus / "landscape.mp4", root / "Joyful" / "x.mp4")
    proc = run("import-official", str(root), "--out", str(tmp_path / "ds"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert (
        proc.returncode == 1 and len(lines) == 1 and "Joyful" in lines[0] and "not in the eMotions taxonomy" in lines[0]
    )


def test_an_import_never_silently_replaces_a_datasets_labels_or_splits(corpus, tmp_path):
    root = authors_layout(corpus, tmp_path / "eMotions")
    ds = tmp_path / "ds"
    assert run("import-official", str(root), "--out", str(ds)).returncode == 0
    assert run("split", str(ds)).returncode == 0
    manifests = ds / "manifests"
    # The annotation workflow's expert re-decided one item: an import must not quietly undo that.
    labels = pd.read_parquet(manifests / "labels.parquet")
    labels.loc[labels["video_id"] == "fear_0", "decided_by"] = "expert"
    labels.to_parquet(manifests / "labels.parquet")
    before = {name: (manifests / name).read_bytes() for name in ("labels.parquet", "splits.parquet")}

    other = tmp_path / "other"
    (other / "Fear").mkdir(parents=True)
    shutil.copy(corpus / "landscape.mp4", other / "Fear" / "fear_9.mp4")
    for layout in (other, root):  # another dataset (drops 6 labels), and the same one (changes the expert's)
        proc = run("import-official", str(layout), "--out", str(ds))
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "labels.parquet" in lines[0]
        assert "--replace-labels" in lines[0] and "expert" in lines[0]
        assert {name: (manifests / name).read_bytes() for name in before} == before
    assert "fear_9" not in set(pd.read_parquet(manifests / "videos.parquet")["video_id"]), "refused before ingest"

    # Asked for explicitly, the import replaces the labels; the variants built from them go too.
    proc = run("import-official", str(root), "--out", str(ds), "--replace-labels")
    assert proc.returncode == 0, proc.stderr
    assert set(pd.read_parquet(manifests / "labels.parquet")["decided_by"]) == {"official"}
    assert set(pd.read_parquet(manifests / "splits.parquet")["variant"]) == {"official"}
    # Re-running the same import changes no decision, so our variants stay beside the published split.
    assert run("split", str(ds)).returncode == 0
    proc = run("import-official", str(root), "--out", str(ds))
    assert proc.returncode == 0, proc.stderr
    assert set(pd.read_parquet(manifests / "splits.parquet")["variant"]) == {"official", "full", "balanced",
                                                                             "test_oriented"}  # fmt: skip


def test_a_release_of_local_files_carries_no_local_path(corpus, tmp_path):
    root = authors_layout(corpus, tmp_path / "home" / "alice" / "eMotions")
    ds = tmp_path / "ds"
    assert run("import-official", str(root), "--out", str(ds)).returncode == 0
    assert run("split", str(ds)).returncode == 0
    proc = run("release", str(ds), "--version", "1.0.0")
    assert proc.returncode == 0, proc.stderr
    release = ds / "releases" / "1.0.0"
    for path in [*release.rglob("*"), *(ds / "data_cards").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert str(tmp_path).encode() not in data and b"alice" not in data, path
    full = pd.read_parquet(release / "data" / "full" / "train.parquet")
    assert full["source"].str.fullmatch(r"[a-z]+_\d\.mp4").all(), full["source"].tolist()


def test_a_layout_with_three_folds_imports_one_fold_and_says_which_there_are(corpus, tmp_path):
    root = authors_layout(corpus, tmp_path / "ucf")
    for path in (root / "trainlist01.txt", root / "testlist01.txt", root / "emotions.json"):
        path.unlink()
    videos = ["Excitation/excitation_0.mp4", "Excitation/excitation_1.mp4", "Sad/sad_0.mp4", "Sad/sad_1.mp4"]
    for fold in (1, 2, 3):  # each fold holds out another pair: merged, every video would be train
        test = videos[fold - 1 :: 3] if fold < 3 else videos[2:]
        (root / f"trainlist0{fold}.txt").write_text("".join(f"{v}\n" for v in videos if v not in test))
        (root / f"testlist0{fold}.txt").write_text("".join(f"{v}\n" for v in test))
    found = discover(root, EMOTIONS6)
    assert {v for v, s in found.splits.items() if s == "test"} == {"excitation_0", "sad_1"}
    assert {v for v, s in discover(root, EMOTIONS6, 3).splits.items() if s == "test"} == {"sad_0", "sad_1"}
    proc = run("import-official", str(root), "--out", str(tmp_path / "ds"), "--fold", "4")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "fold 04" in proc.stderr and "01, 02, 03" in proc.stderr
    proc = run("import-official", str(root), "--out", str(tmp_path / "ds"), "--fold", "2")
    assert proc.returncode == 0, proc.stderr
    splits = pd.read_parquet(tmp_path / "ds" / "manifests" / "splits.parquet").set_index("video_id")["split"]
    assert {v for v, s in splits.items() if s == "test"} == {"excitation_1"}
    # a video in both lists of one fold names both files and lines
    (root / "testlist02.txt").write_text("Excitation/excitation_1.mp4\nSad/sad_0.mp4\n")
    with pytest.raises(ValueError) as caught:
        discover(root, EMOTIONS6, 2)
    assert "trainlist02.txt: line 2" in str(caught.value) and "testlist02.txt: line 2" in str(caught.value)

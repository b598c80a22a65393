"""`emotions release verify` and `emotions release record-baseline` through the real CLI: a release is checked
against the digests its dataset recorded outside it (so a rewritten SHA256SUMS is caught too), a copy without its
dataset against its own SHA256SUMS, and recording a baseline makes a new version that verifies while the recorded
release stays byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from emotions_data.taxonomy import EMOTIONS6
from tests.support.commands import run_cli
from tests.support.manifests import released_dataset


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify") / "ds"
    released_dataset(root)
    run_cli("release", str(root), "--version", "1.0.0", check=True)
    return root


@pytest.fixture
def release(dataset, tmp_path) -> Path:
    """A copy of the dataset (its ledger included), so each test may damage its release."""
    shutil.copytree(dataset, tmp_path / "ds")
    return tmp_path / "ds" / "releases" / "1.0.0"


def verify_lines(release: Path) -> tuple[int, list[str], str]:
    proc = run_cli("release", "verify", str(release))
    return proc.returncode, proc.stdout.strip().splitlines(), proc.stderr


def test_an_untouched_release_verifies_against_its_ledger(release):
    code, lines, err = verify_lines(release)
    assert code == 0 and lines == [] and "release-ledger/1.0.0.json" in err and "warning" not in err


def test_a_changed_data_file_is_named(release):
    target = release / "data" / "full" / "test.parquet"
    target.write_bytes(target.read_bytes() + b"\0")
    code, lines, err = verify_lines(release)
    assert code == 1 and lines == ["changed: data/full/test.parquet"]
    assert err.strip().splitlines()[-1].startswith("error: ") and "1 file(s)" in err


def test_a_rewritten_sha256sums_is_named_with_the_file_it_hides(release):
    # Whoever changes a file and rewrites SHA256SUMS to match passes the release's own check, not the ledger's.
    target = release / "official" / "full" / "testlist01.txt"
    target.write_text(target.read_text() + "Fear/intruder\n")
    sums = [line for line in (release / "SHA256SUMS").read_text().splitlines() if "full/testlist01" not in line]
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (release / "SHA256SUMS").write_text("\n".join([*sums, f"{digest}  official/full/testlist01.txt"]) + "\n")
    code, lines, _ = verify_lines(release)
    assert code == 1 and lines == ["changed: SHA256SUMS", "changed: official/full/testlist01.txt"]


def test_missing_and_extra_files_are_named(release):
    (release / "croissant.json").unlink()
    (release / "data" / "full" / "notes.txt").write_text("added later\n")
    code, lines, _ = verify_lines(release)
    assert code == 1 and lines == ["missing: croissant.json", "extra: data/full/notes.txt"]


def test_a_copy_without_its_dataset_is_checked_against_its_own_sha256sums(release, tmp_path):
    copy = tmp_path / "elsewhere" / "1.0.0"
    shutil.copytree(release, copy)
    code, lines, err = verify_lines(copy)
    assert code == 0 and lines == [] and "not available" in err and "SHA256SUMS only" in err
    (copy / "release.json").write_text("{}")
    code, lines, err = verify_lines(copy)
    assert code == 1 and lines == ["changed: release.json"] and "not available" in err


def evaluation(folder: Path, release: str, split: str = "test") -> Path:
    """An `emotions evaluate` output folder (metrics.json, confusion.csv, confusion.png), written by hand: the
    real command is tested in tests/cli/test_baseline_cli.py."""
    classes = list(EMOTIONS6.classes)
    metrics = {
        "n": 24, "accuracy": 0.5, "uar": 0.5, "weighted_f1": 0.5, "polarity_accuracy": 0.75, "audio_accuracy": 0.25,
        "visual_accuracy": 0.5, "per_class_accuracy": dict.fromkeys(classes, 0.5), "confusion_matrix": [[0] * 6] * 6,
        "run": {"checkpoint": "/home/someone/runs/best.pt", "config": "tiny", "release": release, "variant": "full",
                "split": split, "epoch": 2, "epochs": 2, "val_accuracy": 0.5, "classes": classes},
    }  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "confusion.csv").write_text("true \\ predicted\n")
    (folder / "confusion.png").write_bytes(b"\x89PNG\r\n")
    return folder


def test_record_baseline_makes_a_new_version_and_leaves_the_release_as_it_was(release, tmp_path):
    before = files_of(release)
    proc = run_cli("release", "record-baseline", str(release), str(evaluation(tmp_path / "eval", "ds 1.0.0")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    recorded = release.parent / "1.0.1"
    assert files_of(release) == before
    assert verify_lines(recorded)[:2] == (0, [])
    assert verify_lines(release)[:2] == (0, [])
    card = (recorded / "README.md").read_text()
    assert card.count("## Baseline validation") == 1 and "Version **1.0.1**" in card
    assert json.loads((recorded / "release.json").read_text())["version"] == "1.0.1"
    metrics = json.loads((recorded / "baseline" / "full" / "metrics.json").read_text())
    assert metrics["run"]["checkpoint"] == "best.pt", "the release names the checkpoint, never a local path"
    after = files_of(recorded)
    assert {k: v for k, v in after.items() if k.startswith(("data/", "official/", "plots/"))} == {
        k: v for k, v in before.items() if k.startswith(("data/", "official/", "plots/"))
    }
    assert (release.parents[1] / "data_cards" / "ds-1.0.1" / "README.md").read_text() == card

    again = run_cli("release", "record-baseline", str(release), str(tmp_path / "eval"))
    assert again.returncode == 1 and "1.0.1 exists" in again.stderr.strip().splitlines()[-1]
    chosen = run_cli("release", "record-baseline", str(release), str(tmp_path / "eval"), "--version", "1.1.0")
    assert chosen.returncode == 0 and verify_lines(release.parent / "1.1.0")[:2] == (0, [])


@pytest.mark.parametrize(
    ("made_for", "split", "message"),
    [("ds 1.0.0", "val", "an evaluation on val"), ("ds 0.9.0", "test", "an evaluation of release 'ds 0.9.0'")],
)
def test_record_baseline_refuses_an_evaluation_it_cannot_record(release, tmp_path, made_for, split, message):
    before = files_of(release.parents[1])
    proc = run_cli("release", "record-baseline", str(release), str(evaluation(tmp_path / "eval", made_for, split)))
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: ") and message in last
    assert files_of(release.parents[1]) == before, "nothing written"


def test_record_baseline_refuses_a_release_that_does_not_verify(release, tmp_path):
    (release / "release.json").write_text((release / "release.json").read_text() + " ")
    proc = run_cli("release", "record-baseline", str(release), str(evaluation(tmp_path / "eval", "ds 1.0.0")))
    assert proc.returncode == 1 and "does not verify (release.json)" in proc.stderr
    assert not (release.parent / "1.0.1").exists()

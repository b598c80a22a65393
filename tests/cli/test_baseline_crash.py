"""`emotions cache` and `emotions train` killed (SIGKILL, from outside) as they enter a commit point leave the old
files or the new ones, never a torn file or a mix, and the same command then finishes with what an uninterrupted
run makes: the same cache files byte for byte, the same checkpoints. `emotions evaluate` killed anywhere leaves the
release it reads byte for byte as it was.

The commands run with `--executor serial`, so every rename is the main process's and the harness (which counts
renames per process) kills the command itself. A tiny release keeps a run to seconds; commit points are sampled
evenly (first and last always)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from baselines.checkpoint import read_checkpoint
from tests.support.baseline_release import tiny_release
from tests.support.commands import run_cli
from tests.support.crash import killed_at, renames

CACHE_POINTS, TRAIN_POINTS, EVALUATE_POINTS = 3, 4, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset folder holding a tiny release (and no cache yet)."""
    return tiny_release(tmp_path_factory.mktemp("baseline-crash")).parents[1]


def sampled(n: int, samples: int) -> list[int]:
    """Commit points 1..n: all of them, or every k-th (first and last always) when there are more than `samples`."""
    if n <= samples:
        return list(range(1, n + 1))
    step = math.ceil((n - 1) / (samples - 1))
    return sorted({*range(1, n, step), n})


def copy_of(dataset: Path, to: Path, *, with_cache: bool = False) -> Path:
    """A copy of the dataset; returns its release."""
    shutil.copytree(dataset, to, ignore=None if with_cache else shutil.ignore_patterns("cache"))
    return to / "releases" / "1.0.0"


def clips(release: Path) -> dict[str, bytes]:
    """The committed cache files; temporaries are left out (a killed build may leave one, the next sweeps it)."""
    folder = release.parents[1] / "cache" / "baseline"
    return {p.name: p.read_bytes() for p in folder.glob("*/*.clip") if not p.name.startswith(".tmp-")}


def temporaries(folder: Path) -> list[Path]:
    return list(folder.rglob(".tmp-*"))


def cache_args(release: Path) -> list[str]:
    return ["cache", str(release), "--variant", "full", "--executor", "serial"]


def test_cache_killed_at_a_commit_point_keeps_whole_files_and_resumes_byte_identical(dataset, tmp_path):
    reference_release = copy_of(dataset, tmp_path / "reference")
    n = renames(cache_args(reference_release))
    reference = clips(reference_release)
    assert n == len(reference) > 0, "one commit point per cache file"
    for point in sampled(n, CACHE_POINTS):
        release = copy_of(dataset, tmp_path / f"killed-{point}")
        assert killed_at(cache_args(release), point).returncode != 0
        committed = clips(release)
        assert len(committed) == point - 1, f"killed at commit {point}"
        assert all(data == reference[name] for name, data in committed.items()), "no torn or foreign file"

        proc = run_cli(*cache_args(release))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"built {n - point + 1}, current {point - 1}, failed 0" in proc.stderr
        assert "warning" not in proc.stderr, "a kill leaves nothing damaged"
        assert clips(release) == reference and not temporaries(release.parents[1] / "cache"), f"after commit {point}"


def train_args(release: Path, out: Path) -> list[str]:
    return ["train", str(release), "--epochs", "2", "--out", str(out), "--executor", "serial"]


def commits_of(history: list[dict]) -> list[tuple[str, int]]:
    """The (file, epoch) commits of a run, in order: each epoch writes best.pt when it beats every earlier one on
    val, then last.pt."""
    commits, best = [], -1.0
    for epoch, result in enumerate(history):
        if result["val"]["accuracy"] > best:
            best = result["val"]["accuracy"]
            commits.append(("best.pt", epoch))
        commits.append(("last.pt", epoch))
    return commits


def assert_same_run(state: dict, reference: dict, what: str) -> None:
    assert state["epoch"] == reference["epoch"], what
    assert [h["val"] for h in state["history"]] == [h["val"] for h in reference["history"]], what
    assert [h["train_loss"] for h in state["history"]] == pytest.approx(
        [h["train_loss"] for h in reference["history"]], rel=1e-5
    ), what
    for key, value in reference["model"].items():
        assert torch.allclose(state["model"][key].float(), value.float(), atol=1e-5), f"{what}: {key}"


def test_train_killed_at_a_commit_point_keeps_whole_checkpoints_and_resumes(dataset, tmp_path):
    # The cache is built first (its commit points are the cache command's, tested above): train's own are the
    # checkpoints.
    built = tmp_path / "built"
    run_cli(*cache_args(copy_of(dataset, built)), "--split", "train", "--split", "val", check=True)
    reference_release = copy_of(built, tmp_path / "reference", with_cache=True)
    n = renames(train_args(reference_release, tmp_path / "reference-run"))
    reference = {name: read_checkpoint(tmp_path / "reference-run" / name) for name in ("best.pt", "last.pt")}
    commits = commits_of(reference["last.pt"]["history"])
    assert n == len(commits), "one commit point per checkpoint written"
    for point in sampled(n, TRAIN_POINTS):
        release, run = copy_of(built, tmp_path / f"killed-{point}", with_cache=True), tmp_path / f"run-{point}"
        assert killed_at(train_args(release, run), point).returncode != 0
        expected = dict(commits[: point - 1])  # file -> epoch of its latest commit before the kill
        present = {p.name for p in run.glob("*.pt") if not p.name.startswith(".tmp-")}
        assert present == set(expected), f"killed at commit {point}"
        for name, epoch in expected.items():
            state = read_checkpoint(run / name)  # whole: not torn, CRCs hold
            assert state["epoch"] == epoch and len(state["history"]) == epoch + 1, f"{name} at commit {point}"

        proc = run_cli(*train_args(release, run))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not temporaries(run), "the killed run's temporaries are swept"
        for name in ("best.pt", "last.pt"):
            assert_same_run(read_checkpoint(run / name), reference[name], f"{name} after commit {point}")


def release_files(release: Path) -> dict[str, bytes]:
    """Every file under a release folder, temporaries included."""
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in sorted(release.rglob("*")) if p.is_file()}


def test_evaluate_killed_at_a_commit_point_leaves_the_release_as_it_was(dataset, tmp_path):
    # The release is only read: whenever evaluate dies, the release holds the same files, byte for byte, and no
    # temporary of the evaluation's own writes.
    release = copy_of(dataset, tmp_path / "ds")
    run_cli(*train_args(release, tmp_path / "run"), check=True)
    before = release_files(release)
    # val: the tiny release has no test rows.
    args = ["evaluate", str(tmp_path / "run" / "best.pt"), str(release), "--split", "val"]
    n = renames([*args, "--out", str(tmp_path / "eval-reference")])
    assert n >= 4, "metrics, confusion (CSV and PNG) and predictions are each committed"
    for point in sampled(n, EVALUATE_POINTS):
        assert killed_at([*args, "--out", str(tmp_path / f"eval-{point}")], point).returncode != 0
        assert release_files(release) == before, f"killed at commit {point}"
    proc = run_cli(*args, "--out", str(tmp_path / "eval"))
    assert proc.returncode == 0 and release_files(release) == before, proc.stderr[-3000:]

"""The baseline's commands do not trust torn files and refuse impossible options: the right result, or one stderr
line naming the file or option and why, a non-zero exit, and nothing already done lost or changed. Through the real
CLI on a tiny real release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from baselines.checkpoint import read_checkpoint
from tests.support.baseline_release import tiny_release
from tests.support.commands import run_cli


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return tiny_release(tmp_path_factory.mktemp("baseline-integrity"))


@pytest.fixture(scope="module")
def run_dir(release, tmp_path_factory) -> Path:
    """A finished two-epoch run (its training also built the train and val cache)."""
    out = tmp_path_factory.mktemp("run") / "run"
    run_cli("train", str(release), "--epochs", "2", "--out", str(out), "--executor", "serial", check=True)
    return out


def cache_dir(release: Path) -> Path:
    (folder,) = (release.parents[1] / "cache" / "baseline").iterdir()
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_error_line(proc, *parts: str) -> str:
    """The process failed with exactly one stderr line, `error: ...`, holding every part."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ") and all(part in lines[0] for part in parts), lines[0]
    return lines[0]


def cut_after_header(data: bytes) -> bytes:
    return data[: 12 + int.from_bytes(data[:8], "little")]


def flip_in_payload(data: bytes) -> bytes:
    at = len(data) - 50
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_cache_rebuilds_damaged_files_and_sweeps_temporaries(release):
    run_cli("cache", str(release), "--variant", "full", "--executor", "serial", check=True)
    folder = cache_dir(release)
    good = snapshot(folder)
    clips = sorted(name for name in good if name.endswith(".clip"))
    damaged = {clips[0]: good[clips[0]][:5], clips[1]: cut_after_header(good[clips[1]]),
               clips[2]: flip_in_payload(good[clips[2]])}  # fmt: skip
    for name, data in damaged.items():
        (folder / name).write_bytes(data)
    (folder / f".tmp-0123456789ab-{clips[3]}").write_bytes(good[clips[3]][:1000])  # left by a killed build

    proc = run_cli("cache", str(release), "--variant", "full", "--executor", "serial")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(damaged), proc.stderr
    for line, (name, reason) in zip(
        warnings,
        [(clips[0], "truncated"), (clips[1], "truncated"), (clips[2], "payload checksum mismatch")],
        strict=True,
    ):
        assert line.startswith(f"warning: {folder / name}: ") and reason in line and line.endswith(": rebuilt")
    assert f"built {len(damaged)}, current {len(clips) - len(damaged)}, failed 0" in proc.stderr
    assert snapshot(folder) == good, "rebuilt byte for byte, the temporary swept"


def test_train_and_evaluate_rebuild_a_damaged_cache_file(release, run_dir, tmp_path):
    folder = cache_dir(release)
    clips = sorted(folder.glob("*.clip"))
    good = {p: p.read_bytes() for p in clips}
    clips[0].write_bytes(b"\x01\x02\x03")  # under 8 bytes: was a struct.error traceback
    proc = run_cli("train", str(release), "--epochs", "1", "--out", str(tmp_path / "run"), "--executor", "serial")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warning: {clips[0]}: truncated" in proc.stderr and "epoch 1:" in proc.stderr
    assert clips[0].read_bytes() == good[clips[0]]

    clips[1].write_bytes(cut_after_header(good[clips[1]]))  # was "image file is truncated", naming no file
    out = tmp_path / "eval"
    proc = run_cli("evaluate", str(run_dir / "best.pt"), str(release), "--split", "val", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warning: {clips[1]}: truncated" in proc.stderr and (out / "metrics.json").is_file()
    assert clips[1].read_bytes() == good[clips[1]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "0"], "--epochs must be >= 1 (got 0)"),
        (["train", "--epochs", "-2"], "--epochs must be >= 1 (got -2)"),
        (["train", "--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
        (["train", "--batch-size", "-4"], "--batch-size must be >= 1 (got -4)"),
        (["train", "--loader-workers", "-1"], "--loader-workers must be >= 0 (got -1)"),
        (["train", "--workers", "0"], "--workers must be >= 1 (got 0)"),
        (["cache", "--workers", "-1"], "--workers must be >= 1 (got -1)"),
    ],
)
def test_impossible_options_are_refused_in_one_line_before_anything_runs(release, run_dir, tmp_path, args, message):
    before = snapshot(cache_dir(release)), snapshot(run_dir)
    command, *options = args
    out = ["--out", str(tmp_path / "new-run")] if command == "train" else []
    one_error_line(run_cli(command, str(release), *options, *out), message)
    assert not (tmp_path / "new-run").exists(), "no run folder, let alone checkpoints"
    assert (snapshot(cache_dir(release)), snapshot(run_dir)) == before


CHECKPOINTS = {  # name -> (bytes from a good checkpoint, what the error line says)
    "text.pt": (lambda d: b"these are notes, not weights\n", "not a checkpoint of `emotions train`"),
    "empty.pt": (lambda d: b"", "truncated checkpoint (0 bytes)"),
    "cut.pt": (lambda d: d[: len(d) // 2], "truncated checkpoint"),
    "cut-short.pt": (lambda d: d[:3], "truncated checkpoint (3 bytes)"),
    "flipped.pt": (lambda d: flip_in_payload(d[: len(d) // 2]) + d[len(d) // 2 :], "damaged checkpoint"),
}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_evaluate_refuses_an_unusable_checkpoint_in_one_line(release, run_dir, tmp_path, name):
    make, message = CHECKPOINTS[name]
    checkpoint = tmp_path / name
    checkpoint.write_bytes(make((run_dir / "best.pt").read_bytes()))
    card = (release / "README.md").read_bytes()
    one_error_line(run_cli("evaluate", str(checkpoint), str(release), "--split", "val"), f"{checkpoint}: ", message)
    assert (release / "README.md").read_bytes() == card and not (tmp_path / "eval-full-val").exists()


@pytest.mark.parametrize("name", ["text.pt", "cut.pt", "flipped.pt"])
def test_resuming_from_an_unusable_last_pt_says_how_to_restart_and_keeps_the_files(release, run_dir, tmp_path, name):
    make, message = CHECKPOINTS[name]
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "last.pt").write_bytes(make((run_dir / "last.pt").read_bytes()))
    before = snapshot(run)
    proc = run_cli("train", str(release), "--epochs", "2", "--out", str(run), "--executor", "serial")
    one_error_line(proc, f"{run / 'last.pt'}: ", message, "cannot resume", "--restart")
    assert snapshot(run) == before, "nothing deleted or replaced"

    proc = run_cli("train", str(release), "--epochs", "2", "--out", str(run), "--executor", "serial", "--restart")
    assert proc.returncode == 0 and "epoch 2:" in proc.stderr, proc.stderr[-3000:]
    state, straight = read_checkpoint(run / "last.pt"), read_checkpoint(run_dir / "last.pt")
    assert len(state["history"]) == 2 and state["epoch"] == 1
    for key, value in straight["model"].items():  # the restarted run is the run
        assert torch.allclose(state["model"][key].float(), value.float(), atol=1e-6), key


@pytest.mark.parametrize("name", ["text.pt", "cut.pt"])
def test_train_refuses_an_unusable_weights_file_before_anything_runs(release, run_dir, tmp_path, name):
    make, _ = CHECKPOINTS[name]
    weights = tmp_path / "swin.pth"
    weights.write_bytes(make((run_dir / "best.pt").read_bytes()))
    message = "truncated weights file" if name == "cut.pt" else "not a torch weights file"
    proc = run_cli("train", str(release), "--weights", str(weights), "--out", str(tmp_path / "new-run"))
    one_error_line(proc, f"{weights}: {message}")
    assert not (tmp_path / "new-run").exists()


def dataset_copy(release: Path, to: Path) -> Path:
    """A copy of the release's dataset folder (media and cache included); returns the copy's release."""
    shutil.copytree(release.parents[1], to)
    return to / "releases" / release.name


def test_cache_refuses_a_media_file_changed_since_the_release_naming_it(release, tmp_path):
    copy = dataset_copy(release, tmp_path / "ds")
    shutil.rmtree(copy.parents[1] / "cache", ignore_errors=True)
    ids = sorted(pd.read_parquet(copy / "data" / "full" / "train.parquet")["video_id"])
    victim = copy.parents[1] / "media" / f"{ids[0]}.mp4"
    victim.write_bytes((victim.parent / f"{ids[1]}.mp4").read_bytes())  # replaced after ingest
    proc = run_cli("cache", str(copy), "--variant", "full", "--split", "train", "--executor", "serial")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"failed: {ids[0]}: {victim}: its bytes no longer match the media_sha256" in proc.stderr
    assert f"built {len(ids) - 1}, current 0, failed 1" in proc.stderr
    assert not list((copy.parents[1] / "cache").rglob(f"{ids[0]}.clip")), "never cached under the old id"


def test_train_and_evaluate_refuse_a_changed_release_and_never_write_into_one(release, run_dir, tmp_path):
    copy = dataset_copy(release, tmp_path / "ds")
    inside = copy / "eval"
    proc = run_cli("evaluate", str(run_dir / "best.pt"), str(copy), "--split", "val", "--out", str(inside))
    one_error_line(proc, f"{inside}: inside the release")
    assert not inside.exists()
    val = copy / "data" / "full" / "val.parquet"
    pd.read_parquet(val).iloc[:-1].to_parquet(val)  # a row dropped after the release was made
    proc = run_cli("train", str(copy), "--epochs", "1", "--out", str(tmp_path / "run"), "--executor", "serial")
    one_error_line(proc, f"{val}: does not match its sha256 in SHA256SUMS", "emotions release verify")
    assert not (tmp_path / "run").exists()
    proc = run_cli("evaluate", str(run_dir / "best.pt"), str(copy), "--split", "val", "--out", str(tmp_path / "e"))
    one_error_line(proc, f"{val}: does not match its sha256 in SHA256SUMS")
    assert not (tmp_path / "e").exists()

"""`emotions cache | train | evaluate` through the real CLI on a small release of demo-style clips."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from emotions_data.demo_corpus import ClipSpec, make_clip
from emotions_data.release import verify_release
from emotions_data.taxonomy import EMOTIONS6

EMOTIONS = str(Path(sys.executable).with_name("emotions"))
PER_CLASS = 4


def files_of(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (temporaries included), by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([EMOTIONS, *args], capture_output=True, text=True, timeout=900)
    assert not check or proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """Class folders of clips that encode their class in picture and sound -> import, split, release."""
    root = tmp_path_factory.mktemp("baseline-cli")
    for c, label in enumerate(EMOTIONS6.classes):
        (root / "in" / label).mkdir(parents=True)
        for k in range(PER_CLASS):
            make_clip(ClipSpec(label, 100 * c + k, duration_s=2.0), root / "in" / label / f"{label.lower()}_{k}.mp4")
    run("import-official", str(root / "in"), "--out", str(root / "ds"), check=True)
    run("split", str(root / "ds"), "--ratios", "0.5,0.25,0.25", check=True)
    run("release", str(root / "ds"), "--version", "1.0.0", check=True)
    return root / "ds" / "releases" / "1.0.0"


def test_train_never_reads_test_and_evaluate_leaves_the_release_as_it_was(release, tmp_path):
    test_file = release / "data" / "full" / "test.parquet"
    test_ids = set(pd.read_parquet(test_file)["video_id"])
    hidden = tmp_path / "test.parquet"
    shutil.move(test_file, hidden)  # training must not need, let alone read, the test split
    try:
        proc = run("train", str(release), "--config", "tiny", "--epochs", "2", "--out", str(tmp_path / "run"))
    finally:
        shutil.move(hidden, test_file)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 2:" in proc.stderr and "val acc" in proc.stderr and "best epoch" in proc.stderr
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["variant"] == "full" and best["model_config"]["visual_backbone"] == "tiny"
    assert best["release"]["version"] == "1.0.0" and best["classes"] == list(EMOTIONS6.classes)
    assert best["model_name"] == "avcanet" and best["preprocessing"]["crop"] == 112 and best["pretrained"] == []
    assert "weights: random initialisation" in proc.stdout
    cached = {p.stem for p in (release.parents[1] / "cache" / "baseline").glob("*/*.clip")}
    assert cached and not cached & test_ids, "the cache of a training run holds train and val videos only"

    # The same command resumes (nothing to do); other settings are refused rather than mixed into the run.
    assert run("train", str(release), "--epochs", "2", "--out", str(tmp_path / "run")).returncode == 0
    changed = run("train", str(release), "--epochs", "3", "--out", str(tmp_path / "run"))
    assert changed.returncode == 1 and "epochs: 2 -> 3" in changed.stderr.strip().splitlines()[-1]

    before = files_of(release)
    proc = run("evaluate", str(tmp_path / "run" / "best.pt"), str(release), "--split", "test", check=True)
    assert files_of(release) == before, "evaluating a release writes nothing into it"
    assert "emotions release record-baseline" in proc.stderr
    assert "(WAR)" in proc.stdout and "per-class accuracy" in proc.stdout
    out = tmp_path / "run" / "eval-full-test"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == len(test_ids) and metrics["run"]["split"] == "test"
    assert {"accuracy", "uar", "weighted_f1", "per_class_accuracy", "polarity_accuracy", "audio_accuracy",
            "visual_accuracy", "confusion_matrix"} <= set(metrics)  # fmt: skip
    with open(out / "predictions.csv") as f:
        predictions = list(csv.DictReader(f))
    assert {p["video_id"] for p in predictions} == test_ids
    for p in predictions:
        probs = [float(p[f"p_{c}"]) for c in EMOTIONS6.classes]
        assert sum(probs) == pytest.approx(1, abs=1e-4) and p["predicted"] == EMOTIONS6.classes[probs.index(max(probs))]
    with open(out / "confusion.csv") as f:
        confusion = list(csv.reader(f))
    assert sum(int(v) for row in confusion[1:] for v in row[1:]) == len(test_ids)
    assert (out / "confusion.png").read_bytes().startswith(b"\x89PNG")

    # Recording the validation makes the next release version: its card's section, the files, and checksums that
    # hold (on its own and against the ledger); the evaluated release stays byte for byte as it was.
    recorded = release.parent / "1.0.1"
    run("release", "record-baseline", str(release), str(out), check=True)
    assert files_of(release) == before
    card = (recorded / "README.md").read_text()
    assert "## Baseline validation" in card and "baseline/full/confusion.png" in card
    assert "Initialisation (full): model `avcanet`, random weights" in card
    assert json.loads((recorded / "baseline" / "full" / "metrics.json").read_text())["run"]["checkpoint"] == "best.pt"
    assert "## Baseline validation" in (release.parents[1] / "data_cards" / "ds-1.0.1" / "README.md").read_text()
    assert verify_release(recorded) == [] and "baseline/full/metrics.json" in (recorded / "SHA256SUMS").read_text()
    assert run("release", "verify", str(recorded)).returncode == 0
    assert {k: v for k, v in files_of(recorded).items() if k.startswith(("data/", "official/"))} == {
        k: v for k, v in before.items() if k.startswith(("data/", "official/"))
    }, "the new version publishes the same data"
    again = run("evaluate", str(tmp_path / "run" / "best.pt"), str(release), check=True)
    assert again.returncode == 0 and files_of(release) == before
    assert (recorded / "README.md").read_text().count("## Baseline validation") == 1

    # A checkpoint of another taxonomy, or a file that is no `emotions train` checkpoint: one line, card untouched.
    card = (release / "README.md").read_bytes()
    best["classes"] = ["Joy", *EMOTIONS6.classes[1:]]
    torch.save(best, tmp_path / "other.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    for name, message in (("other.pt", "trained on classes"), ("foreign.pt", "not a checkpoint of `emotions train`")):
        proc = run("evaluate", str(tmp_path / name), str(release))
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 1 and last.startswith("error: ") and message in last, proc.stderr[-2000:]
    assert (release / "README.md").read_bytes() == card and verify_release(release) == []
    assert files_of(release) == before


def test_cache_command_builds_once(release):
    proc = run("cache", str(release), "--variant", "full", check=True)
    n = sum(len(pd.read_parquet(p)) for p in (release / "data" / "full").glob("*.parquet"))
    assert f"current {n}" in proc.stderr or f"built {n}" in proc.stderr or "built" in proc.stderr
    again = run("cache", str(release), "--variant", "full", check=True)
    assert f"built 0, current {n}, failed 0" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{tmp}/nowhere"], "not a release folder"),
        (["train", "{release}", "--config", "huge"], "unknown configuration 'huge'"),
        (["train", "{release}", "--variant", "nope"], "variant 'nope' is not in this release"),
        (["evaluate", "{tmp}/none.pt", "{release}"], "no such checkpoint"),
        (["train", "{release}", "--lr", "nan"], "--lr must be a finite number > 0 (got nan)"),
        (["train", "{release}", "--lr", "0"], "--lr must be a finite number > 0 (got 0.0)"),
        (["train", "{release}", "--weight-decay", "-0.1"], "--weight-decay must be a finite number >= 0"),
        (["train", "{release}", "--ep-ce-lambdas", "0.5,x,0.5"], "--ep-ce-lambdas must be three finite numbers"),
        (["train", "{release}", "--ep-ce-lambdas", "0.5,inf,0.5"], "--ep-ce-lambdas must be three finite numbers"),
        (["train", "{release}", "--lr-schedule", "cosine"], "--lr-schedule must be one of paper, released, per-step"),
        (["train", "{release}", "--warmup-epochs", "inf"], "--warmup-epochs must be a finite number in [0, 100000]"),
        (["train", "{release}", "--loss", "focal"], "--loss must be one of ep-ce, ce (got 'focal')"),
        (["train", "{release}", "--precision", "fp16"], "--precision must be one of bf16, fp32 (got 'fp16')"),
        (["train", "{release}", "--progress-interval", "-1"], "--progress-interval must be a finite number >= 0"),
        (["train", "{release}", "--config", "paper"], "--random-init to train from random weights"),
        (["train", "{release}", "--model", "nope"], "unknown model 'nope'"),
        (["train", "{release}", "--device", "cuda:7"] if not torch.cuda.is_available() else ["train", "{tmp}/x"],
         "no CUDA device" if not torch.cuda.is_available() else "not a release folder"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(release, tmp_path, args, message):
    proc = run(*(a.format(tmp=tmp_path, release=release) for a in args))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, proc.stderr[-2000:]


def test_train_prints_and_records_the_weights_it_loaded(release, tmp_path):
    """Weight files the test makes (random tensors in the tiny backbones' key layout): each is named on stdout with
    its SHA-256 and counts, and recorded in the checkpoint."""
    from baselines.model import AVCANet, ModelConfig

    net = AVCANet(ModelConfig.tiny())
    files = {"visual": tmp_path / "visual.pth", "audio": tmp_path / "audio.pth"}
    for part, path in files.items():
        torch.save({"state_dict": getattr(net, part).backbone.state_dict()}, path)
    proc = run("train", str(release), "--epochs", "1", "--weights", str(files["visual"]), "--audio-weights",
               str(files["audio"]), "--out", str(tmp_path / "run"), check=True)  # fmt: skip
    pretrained = torch.load(tmp_path / "run" / "best.pt", weights_only=False)["pretrained"]
    assert [(p["part"], p["file"]) for p in pretrained] == [("visual", "visual.pth"), ("audio", "audio.pth")]
    for p, path in zip(pretrained, files.values(), strict=True):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert p["sha256"] == digest and p["loaded"] > 0 and p["skipped"] == p["kept_random"] == 0
        assert f"weights: {p['part']} backbone from {path.name} (sha256 {digest}): {p['loaded']} tensors loaded" in (
            proc.stdout
        )


def test_train_under_torchrun_with_two_processes(release, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", EMOTIONS, "train",
           str(release), "--epochs", "1", "--out", str(tmp_path / "ddp")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("epoch 1: train loss") == 1, "rank 0 alone reports and checkpoints"
    state = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    n_train = len(pd.read_parquet(release / "data" / "full" / "train.parquet"))
    assert len(state["history"]) == 1 and state["history"][0]["val"]["n"] > 0 and n_train > 0


def test_a_batch_job_gets_plain_progress_lines_during_the_epoch(release, tmp_path):
    """stdout not a terminal: flushed `epoch E/N step B/M ...` lines, here one per step (interval 0), all before
    the epoch's summary; the training options reach the run's settings."""
    out = tmp_path / "run"
    cmd = [EMOTIONS, "train", str(release), "--epochs", "1", "--batch-size", "2", "--out", str(out), "--lr", "2e-3",
           "--weight-decay", "0", "--lr-schedule", "released", "--loss", "ce", "--ep-ce-lambdas", "1,0.25,2",
           "--precision", "fp32", "--warmup-epochs", "0.25", "--hold-epochs", "0.5"]  # fmt: skip
    env = {**os.environ, "EMOTIONS_PROGRESS_INTERVAL": "0"}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = proc.stdout.splitlines()
    steps = [ln for ln in lines if ln.startswith("epoch 1/1 step ")]
    n_train = len(pd.read_parquet(release / "data" / "full" / "train.parquet"))
    batches = -(-n_train // 2)
    assert [ln.split()[3] for ln in steps] == [f"{b}/{batches}" for b in range(1, batches + 1)], steps
    assert all(" clips/s " in ln and " ETA epoch " in ln and " run " in ln for ln in steps)
    summary = next(i for i, ln in enumerate(lines) if ln.startswith("epoch 1: train loss"))
    assert lines.index(steps[-1]) < summary, "the step lines come while the epoch runs, not after it"
    saved = torch.load(out / "last.pt", weights_only=False)["train_config"]
    assert saved["lr"] == 2e-3 and saved["weight_decay"] == 0 and saved["lr_schedule"] == "released"
    assert saved["plain_ce"] is True and list(saved["lambdas"]) == [1, 0.25, 2] and saved["bf16"] is False
    assert saved["warmup_epochs"] == 0.25 and saved["hold_epochs"] == 0.5
    assert run("train", str(release), "--epochs", "1", "--out", str(out)).returncode == 1, "other settings refused"

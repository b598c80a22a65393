"""Release -> model inputs, through the real ffmpeg on a real (small) release."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.data import ReleaseDataset, decode_frames, video_stream
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.release import write_release
from emotions_data.settings import load_settings
from emotions_data.splits import SplitSettings
from emotions_data.splitting import split_dataset
from emotions_data.taxonomy import EMOTIONS6

CLIPS = ["landscape.mp4", "portrait.mp4", "rotated.mp4", "lookalike_a.mp4", "lookalike_b.mp4", "source.mp4"]


def _probe(path, entries: str) -> list[str]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-of", "csv=p=0", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().split(",")


def all_frames(path, height=240):
    width, h = (int(v) for v in _probe(path, "stream=width,height"))
    w = max(2, round(width * height / h / 2) * 2)
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"scale={w}:{height}", "-f", "rawvideo",
           "-pix_fmt", "rgb24",
           "pipe:1"]  # fmt: skip
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, w, 3)


@pytest.fixture(scope="module")
def release(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline-ds")
    folder = root / "in"
    folder.mkdir()
    for name in CLIPS:
        shutil.copy(corpus / name, folder / name)
    ingest([folder], root / "ds", load_settings(None), executor=make_executor("serial", 1))
    layout = DatasetLayout(root / "ds")
    videos = pd.read_parquet(layout.videos_manifest).query("status == 'ok'")
    classes = [EMOTIONS6.classes[i % 6] for i in range(len(videos))]
    labels = pd.DataFrame({"video_id": videos["video_id"], "label": classes, "polarity": None, "confidence": 1.0,
                           "n_votes": 0, "decided_by": "official"})  # fmt: skip
    labels.to_parquet(layout.labels)
    split_dataset(layout, SplitSettings(ratios=(0.5, 0.25, 0.25), seed=0))
    return write_release(layout, "0.0.1"), layout


def test_selected_frames_equal_a_full_decode(release):
    _, layout = release
    media = sorted(layout.media.glob("*.mp4"))[0]
    full = all_frames(media)
    assert video_stream(media).n_frames == len(full)
    indices = np.array([5, 0, 5, len(full) - 1, 1, 2])
    picked = decode_frames(media, indices).numpy()
    assert picked.shape == (6, *full.shape[1:])
    assert np.array_equal(picked, full[indices])


def test_release_dataset_items_and_determinism(release):
    folder, _ = release
    evaluation = ReleaseDataset(folder, "full", "train", train=False)
    video, audio, label = evaluation[0]
    assert video.shape == (16, 3, 8, 112, 112) and audio.shape == (16, 256, 32) and 0 <= label < 6
    assert torch.equal(evaluation[0][0], video), "evaluation is deterministic"
    training = ReleaseDataset(folder, "full", "train", train=True)
    first = training[0][0]
    training.set_epoch(1)
    assert not torch.equal(training[0][0], first), "training draws new snippets every epoch"
    training.set_epoch(0)
    assert torch.equal(training[0][0], first), "and reproducibly"


def test_missing_media_is_a_clear_error(release, tmp_path):
    folder, _ = release
    with pytest.raises(ValueError, match="media file"):
        ReleaseDataset(folder, "full", "train", media_dir=tmp_path)

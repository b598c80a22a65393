"""Dataset folders with real Parquet manifests and no media, for the split and release tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from annotation.labels import final_labels
from emotions_data import fingerprint as fp
from emotions_data.layout import DatasetLayout
from emotions_data.split_step import split_dataset
from emotions_data.storage import write_table_atomic
from emotions_data.stratified_split import SplitSettings
from emotions_data.taxonomy import EMOTIONS6


def write_dataset(root: Path, n: int = 120) -> pd.DataFrame:
    """A dataset folder with real Parquet manifests: ok videos, labels, fingerprints with one near-duplicate pair."""
    rng = np.random.default_rng(7)
    (root / "manifests").mkdir(parents=True)
    frames = rng.integers(0, 255, (n, 4, fp.FRAME_SIZE, fp.FRAME_SIZE)).astype(np.uint8)
    frames[1] = np.clip(frames[0].astype(int) + 3, 0, 255)  # v0001 is a near copy of v0000
    videos = pd.DataFrame(
        {
            "video_id": [f"v{i:04d}" for i in range(n)], "status": "ok", "uploader": [f"u{i % 30}" for i in range(n)],
            "sha256": [f"{i:064x}" for i in range(n)], "dup_of": None, "media_duration_s": 3.0,
            "fingerprint": [fp.fingerprint_frames(f) for f in frames], "input_index": range(n),
        }
    )  # fmt: skip
    videos.loc[1, "uploader"] = "u-other"
    videos.to_parquet(root / "manifests" / "videos.parquet")
    labels = pd.DataFrame({"video_id": videos["video_id"], "label": [EMOTIONS6.classes[i % 6] for i in range(n)]})
    labels.to_parquet(root / "manifests" / "labels.parquet")
    return videos


def released_dataset(root: Path) -> tuple[DatasetLayout, pd.DataFrame]:
    videos = write_dataset(root)
    videos = videos.assign(source=[f"https://www.douyin.com/video/{i}" for i in range(len(videos))], platform="douyin",
                           duration_s=3.0, width=720, height=1280, fps=30.0,
                           media_sha256=[f"{i:064x}" for i in range(len(videos))])  # fmt: skip
    videos.to_parquet(root / "manifests" / "videos.parquet")
    labels = pd.read_parquet(root / "manifests" / "labels.parquet")
    votes = pd.DataFrame(
        [
            (v, f"ann{k}", "label", lab)
            for v, lab in zip(labels["video_id"], labels["label"], strict=True)
            for k in range(3)
        ],
        columns=["video_id", "annotator_id", "stage", "label"],
    )
    layout = DatasetLayout(root)
    # The labels the labels step decides from these unanimous votes (majority, confidence 1, per-item agreement 1).
    write_table_atomic(layout.labels, final_labels(votes, EMOTIONS6).labels)
    split_dataset(layout, SplitSettings(seed=0))
    return layout, votes

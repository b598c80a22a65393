"""Two releases of one dataset with known changes between them: one label changed (by the expert), one item added
and one removed (rejected as a near-duplicate), made with the real release writer from `released_dataset`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emotions_data import fingerprint as fp
from emotions_data.layout import DatasetLayout
from emotions_data.release import write_release
from emotions_data.split_step import split_dataset
from emotions_data.stratified_split import SplitSettings
from tests.support.manifests import released_dataset

RELABELLED, ADDED, REMOVED = "v0010", "v9000", "v0020"


def change_dataset(layout: DatasetLayout) -> None:
    """Relabel `RELABELLED` by the expert, add the labelled video `ADDED`, reject `REMOVED`; then split again."""
    videos = pd.read_parquet(layout.videos_manifest)
    labels = pd.read_parquet(layout.labels)
    new = videos[videos["video_id"] == "v0002"].copy()
    frames = np.random.default_rng(11).integers(0, 255, (4, fp.FRAME_SIZE, fp.FRAME_SIZE)).astype(np.uint8)
    new = new.assign(video_id=ADDED, sha256="f" * 64, media_sha256="e" * 64, uploader="u-new",
                     fingerprint=fp.fingerprint_frames(frames), input_index=len(videos))  # fmt: skip
    videos = pd.concat([videos, new], ignore_index=True)
    videos["reason"] = None
    gone = videos["video_id"] == REMOVED
    videos.loc[gone, ["status", "reason"]] = ["rejected", "near_duplicate"]
    videos.to_parquet(layout.videos_manifest)
    old = labels.loc[labels["video_id"] == RELABELLED, "label"].iloc[0]
    labels.loc[labels["video_id"] == RELABELLED, ["label", "decided_by"]] = [
        "Fear" if old != "Fear" else "Sadness", "expert"]  # fmt: skip
    added = labels[labels["video_id"] == "v0002"].assign(video_id=ADDED)
    labels = pd.concat([labels, added], ignore_index=True)
    labels.to_parquet(layout.labels)
    split_dataset(layout, SplitSettings(seed=0))


def two_releases(root: Path) -> tuple[Path, Path]:
    """`root` holds a dataset with releases 1.0.0 and 1.1.0 (the changes of `change_dataset` between them)."""
    layout, votes = released_dataset(root)
    first = write_release(layout, "1.0.0", votes=votes)
    change_dataset(layout)
    return first, write_release(layout, "1.1.0", votes=votes)

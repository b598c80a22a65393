"""Release -> model inputs, through the real ffmpeg on a real (small) release."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.cache import CacheSettings, build_release_cache, is_current, open_clip
from baselines.data import ReleaseDataset, decode_frames
from baselines.media import video_stream
from baselines.sampling import normalise_on_device
from emotions_data.executor import SerialExecutor, make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from tests.support.releases import label_and_release

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
    return label_and_release(root / "ds", "0.0.1"), DatasetLayout(root / "ds")


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


def test_the_cache_holds_every_frame_and_the_same_inputs(release, tmp_path):
    folder, layout = release
    cache = tmp_path / "cache"
    # No size budget: the demo's test patterns would otherwise drop below JPEG quality 85 to fit it (the budget's
    # own tests are in test_baseline_cache_files.py); what is compared here is the pipeline at the top quality.
    settings = CacheSettings(frame_bytes=1 << 30)
    report = build_release_cache(folder, settings, SerialExecutor(), cache_dir=cache)
    rows = pd.concat(pd.read_parquet(p) for p in folder.glob("data/*/*.parquet")).drop_duplicates("video_id")
    assert report.built == len(rows) and not report.failed
    again = build_release_cache(folder, settings, make_executor("local", 2), cache_dir=cache)
    assert again.built == 0 and again.current == len(rows), "current files are kept: an interrupted build resumes"
    for video_id in rows["video_id"]:
        clip = open_clip(cache / f"{video_id}.clip")
        assert clip.n_frames == video_stream(layout.media / f"{video_id}.mp4").n_frames
    direct = ReleaseDataset(folder, "full", "train")
    cached = ReleaseDataset(folder, "full", "train", cache_dir=cache, cache_settings=settings)
    for i in range(len(direct)):
        (v1, a1, y1), (v2, a2, y2) = direct[i], cached[i]
        v1, v2 = normalise_on_device(v1), normalise_on_device(v2)  # uint8 until the device
        assert v1.shape == v2.shape and y1 == y2
        assert torch.equal(a1, a2), "the cached MFCCs are the MFCCs"
        # The same frames, scaled to 112 lines by ffmpeg instead of cropped from 240 and resized, and JPEG-coded:
        # close, not equal.
        assert (v1 - v2).abs().mean() < 0.03


def test_a_stale_or_broken_cache_is_rebuilt_or_refused(release, tmp_path):
    folder, _ = release
    cache = tmp_path / "cache"
    build_release_cache(folder, CacheSettings(), SerialExecutor(), cache_dir=cache)
    victim = sorted(cache.glob("*.clip"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # a torn file (as if written without the atomic rename)
    split = next(s for s in ("train", "val", "test") if victim.stem in _ids(folder, s))
    with pytest.raises(ValueError, match=f"stale, e.g. {victim.stem}.clip"):
        ReleaseDataset(folder, "full", split, cache_dir=cache)
    assert build_release_cache(folder, CacheSettings(), SerialExecutor(), cache_dir=cache).built == 1
    other = CacheSettings(short_side=144)
    assert not is_current(victim, None, other), "another recipe is another cache"
    assert not is_current(victim, "0" * 64, CacheSettings()), "so is other media"


def _ids(folder, split: str) -> set[str]:
    return set(pd.read_parquet(folder / "data" / "full" / f"{split}.parquet")["video_id"])


def test_a_video_that_cannot_be_decoded_fails_alone(release, tmp_path):
    folder, layout = release
    media = tmp_path / "media"
    shutil.copytree(layout.media, media)
    broken = sorted(media.glob("*.mp4"))[0]
    broken.write_bytes(b"not a video")
    report = build_release_cache(folder, CacheSettings(), SerialExecutor(), cache_dir=tmp_path / "c", media_dir=media)
    assert [f.video_id for f in report.failed] == [broken.stem] and broken.stem in report.failed[0].error
    assert report.built == len(list(media.glob("*.mp4"))) - 1


def test_video_stream_refuses_what_is_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError, match=r"notes\.mp4: cannot probe: ") as err:
        video_stream(text)
    assert str(err.value).count(str(text)) == 1  # ffprobe's message shows the file as <file>

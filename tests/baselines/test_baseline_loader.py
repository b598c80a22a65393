"""The loader against the authors' sampling rules, on cache files whose frames carry their own index; uint8 batches
normalised on the device against the float pipeline; loader workers that follow the epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader

from baselines.cache import CacheSettings, cache_folder, write_cache_file
from baselines.data import ReleaseDataset, default_loader_workers
from baselines.sampling import (
    SpatialParams,
    apply_spatial,
    augment_clip,
    crop_clip,
    draw_spatial,
    frame_indices,
    normalise_on_device,
)
from baselines.synthetic import PortraitSpec, write_synthetic_release

SETTINGS = CacheSettings()


def authors_snippets(n_frames: int, train: bool, draw=None) -> np.ndarray:
    """The authors' TSN as their `transforms/temporal.py` describes it, written out from its rules: indices
    1..n loop-padded to 128, 16 segments of len // 16, an 8-frame crop per segment (centred, or random with the
    start in [0, segment - 9]). Returned 0-based, (16, 8)."""
    padded = list(range(n_frames))
    while len(padded) < 128:
        padded.append(padded[len(padded) - n_frames])
    segment = len(padded) // 16
    out = []
    for s in range(16):
        part = padded[segment * s : segment * (s + 1)]
        if train:
            begin = draw(0, max(0, len(part) - 8 - 1))
        else:
            begin = max(0, len(part) // 2 - 4)
        out.append(part[begin : begin + 8])
    return np.array(out)


@pytest.mark.parametrize("n_frames", [16, 50, 100, 127])
def test_short_clips_wrap_round_the_video_as_the_authors(n_frames):
    ours_eval = frame_indices(n_frames, train=False)
    ours_train = frame_indices(n_frames, train=True, rng=np.random.default_rng(3))
    assert np.array_equal(ours_eval, authors_snippets(n_frames, False))
    assert np.array_equal(ours_train, authors_snippets(n_frames, True, lambda a, b: a))  # nothing left to draw
    if n_frames == 50:
        assert ours_eval[:, 0].tolist()[:9] == [0, 8, 16, 24, 32, 40, 48, 6, 14]


def _planted_release(tmp_path, n_frames: int):
    """A release of one clip whose frame i is a flat grey of value 2 * (i % 110) + 10, and its cache."""
    release = tmp_path / "ds" / "releases" / "0.0.0"
    (release / "data" / "full").mkdir(parents=True)
    pd.DataFrame([{"video_id": "planted", "label_index": 2, "media_sha256": "ab" * 32}]).to_parquet(
        release / "data" / "full" / "train.parquet"
    )
    frames = (np.full((200, 112, 3), 2 * (i % 110) + 10, np.uint8) for i in range(n_frames))
    cache = cache_folder(release, SETTINGS)
    write_cache_file(cache / "planted.clip", frames, np.zeros((32, 40), np.float32), SETTINGS, "ab" * 32)
    return release, cache


@pytest.mark.parametrize("n_frames", [50, 100, 300])
def test_the_loader_returns_the_planted_frames_the_rules_pick(tmp_path, n_frames):
    release, cache = _planted_release(tmp_path, n_frames)
    for train in (False, True):
        dataset = ReleaseDataset(release, "full", "train", train=train, cache_dir=cache)
        checked = 0
        for epoch in range(24):
            dataset.set_epoch(epoch)
            rng = np.random.default_rng([0, epoch, 0])  # the dataset's draws, in its order
            expected, params = frame_indices(n_frames, train=train, rng=rng), draw_spatial(train, rng)
            if params.augment in ("rotate", "brightness"):
                continue  # they change the grey levels; the frames picked are what is checked here
            if n_frames < 128:
                assert np.array_equal(expected, authors_snippets(n_frames, train, lambda a, b: a))
            video, _, label = dataset[0]
            assert video.dtype == torch.uint8 and video.shape == (16, 3, 8, 112, 112) and label == 2
            grey = video.float().mean(dim=(1, 3, 4))  # (16, 8)
            assert torch.allclose(grey, torch.from_numpy(2.0 * (expected % 110) + 10).float(), atol=1.5)
            checked += 1
        assert checked >= 8


def test_uint8_clips_normalised_on_the_device_equal_the_float_pipeline():
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (6, 200, 112, 3), dtype=torch.uint8, generator=gen)
    variants = [SpatialParams(p) for p in ("centre", "top_left", "bottom_right")]
    variants += [SpatialParams("top_right", "flip"), SpatialParams("centre", "brightness", brightness=0.7),
                 SpatialParams("centre", "rotate", angle=13.0)]  # fmt: skip
    for params in variants:
        clip = crop_clip(frames, params)
        assert clip.dtype == torch.uint8 and clip.shape == (3, 6, 112, 112)
        assert torch.equal(normalise_on_device(clip[None], "cpu")[0], apply_spatial(frames, params))
        assert torch.equal(normalise_on_device(clip), clip.float() / 255.0 - 100.0 / 255.0), "the paper's scale"
    # A larger frame: the largest square is resized (antialiased) to the crop, as from the authors' 240 lines.
    big = torch.randint(0, 256, (2, 240, 426, 3), dtype=torch.uint8, generator=gen)
    assert crop_clip(big, SpatialParams()).shape == (3, 2, 112, 112)
    chw = frames[:, :112, :112].permute(0, 3, 1, 2)
    bright = augment_clip(chw, SpatialParams(augment="brightness", brightness=0.63))
    assert torch.equal(bright, TF.adjust_brightness(chw, 0.63)), "torchvision's brightness, slice by slice"
    turned = augment_clip(chw, SpatialParams(augment="rotate", angle=-17.0))
    assert torch.equal(turned, TF.rotate(chw, -17.0, interpolation=TF.InterpolationMode.BILINEAR))
    already = torch.rand(2, 3) - 0.5
    assert normalise_on_device(already) is already, "a float batch is taken as normalised"


def test_rotation_is_bilinear_as_the_authors():
    ramp = torch.arange(112, dtype=torch.uint8).repeat(112, 1)[None, :, :, None].expand(1, 112, 112, 3) * 2
    rotated = crop_clip(ramp.contiguous(), SpatialParams("centre", "rotate", angle=10.0))
    centre = rotated[0, 0, 40:72, 40:72].int()
    # Bilinear interpolation of a ramp gives values between the grid's, which nearest-neighbour never does.
    assert (centre % 2 == 1).any()


def test_loader_workers_draw_a_new_epoch_and_batches_stay_uint8(tmp_path):
    release, cache = write_synthetic_release(
        tmp_path / "ds", [PortraitSpec(s, seconds=6.0) for s in range(4)], SETTINGS, ["a", "b", "c"], val=2
    )
    dataset = ReleaseDataset(release, "full", "train", train=True, cache_dir=cache)
    loader = DataLoader(dataset, batch_size=2, num_workers=1, persistent_workers=True)
    first = next(iter(loader))[0]
    assert first.dtype == torch.uint8 and first.shape == (2, 16, 3, 8, 112, 112)
    dataset.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], first), "persistent workers see the new epoch"
    dataset.set_epoch(0)
    assert torch.equal(next(iter(loader))[0], first), "and draw reproducibly"
    assert torch.equal(first[0], dataset[0][0]), "workers and the process draw the same"


def test_default_loader_workers_follow_the_machine(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_loader_workers() == 16
    assert default_loader_workers(8) == 7, "eight training processes share the CPUs"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_loader_workers() == 15
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert default_loader_workers() == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert default_loader_workers() == 1

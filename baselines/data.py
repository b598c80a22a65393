"""Release -> model inputs: video snippets and MFCC chunks per row of a release split.

Media are not part of a release: they are looked up in the dataset folder the release came from
(`DATASET/releases/X.Y.Z/` -> `DATASET/media/<video_id>.mp4`), or in any folder given.
Frames are decoded by ffmpeg at height 240 (the paper's extraction), only the 128 the sampler picks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from baselines.audio import MFCC, AudioConfig, audio_chunks, load_waveform
from baselines.cache import CacheSettings, check_clip, open_clip
from baselines.media import VideoStream, media_folder, video_stream
from baselines.model import ModelConfig
from baselines.sampling import augment_clip, crop_box, crop_clip, draw_spatial, frame_indices
from emotions_data.parquet_format import read_split

EXTRACT_HEIGHT = 240


def decode_frames(
    path: Path, indices: np.ndarray, height: int = EXTRACT_HEIGHT, stream: VideoStream | None = None
) -> torch.Tensor:
    """The frames at `indices` (any order, repeats allowed) as (len(indices), height, W, 3) uint8, W keeping the
    aspect ratio (even). `stream` saves a probe when the caller has one. Raises `ValueError` when ffmpeg fails."""
    stream = stream or video_stream(path)
    wanted = np.unique(indices)
    width = max(2, round(stream.width * height / stream.height / 2) * 2)
    # Consecutive runs as between() terms: one per snippet, where 128 eq() terms overflow ffmpeg's parser.
    breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
    runs = [(int(r[0]), int(r[-1])) for r in np.split(wanted, breaks)]
    select = "+".join(f"between(n\\,{a}\\,{b})" for a, b in runs)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"select='{select}',scale={width}:{height}",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"{path}: cannot decode frames: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    frames = np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width, 3)
    if len(frames) < len(wanted):  # a short read: repeat the last frame rather than fail mid-epoch
        frames = np.concatenate([frames, np.repeat(frames[-1:], len(wanted) - len(frames), axis=0)])
    position = {int(i): k for k, i in enumerate(wanted)}
    return torch.from_numpy(frames[[position[int(i)] for i in indices]].copy())


def default_loader_workers(processes_per_machine: int | None = None) -> int:
    """DataLoader workers per training or evaluation process: the CPUs this process may run on
    (`os.sched_getaffinity`), shared by the processes on the machine (`LOCAL_WORLD_SIZE` under torchrun), one
    left for the process itself, at most 16 (the authors' `--n_threads`); 0 (load in the process) on one CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = processes_per_machine or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(0, min(16, cpus // max(1, processes) - 1))


class ReleaseDataset(Dataset):
    """Rows of `data/<variant>/<split>.parquet` -> (video (S, 3, T, crop, crop) uint8, audio (S, frames/S, mfcc)
    float32, label). The video stays uint8 until `sampling.normalise_on_device` scales it where the model runs.

    Reads the preprocessing cache when `cache_dir` is given (every file must be current, which is checked by header
    and length: build it with `emotions cache`), else decodes the media with ffmpeg on every access. Raises
    `ValueError` when a cache file or a media file is missing, or a cache file is stale or cut.
    """

    def __init__(
        self, release_dir: Path, variant: str, split: str, *, train: bool = False, media_dir: Path | None = None,
        cache_dir: Path | None = None, cache_settings: CacheSettings | None = None, segments: int = 16,
        frames_per_segment: int = 8, crop: int = 112, audio_frames: int = 4096, seed: int = 0,
    ) -> None:  # fmt: skip
        self.rows = read_split(release_dir, variant, split)
        self.media_dir = Path(media_dir) if media_dir else media_folder(release_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.train, self.segments, self.length, self.crop, self.seed = train, segments, frames_per_segment, crop, seed
        # Shared memory: loader workers (persistent across epochs) hold copies of the dataset, and must see the
        # epoch that `set_epoch` sets in the training process, or they would draw the first epoch's snippets again.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._ids = self.rows["video_id"].astype(str).tolist()
        self._labels = [int(v) for v in self.rows["label_index"]] if "label_index" in self.rows else []
        self.audio = AudioConfig(frames=audio_frames, chunks=segments)
        self.mfcc = MFCC(self.audio)
        if self.cache_dir is not None:
            settings = cache_settings or CacheSettings()
            # Header and length only: reading every payload again would double the start-up time of a run whose
            # cache was verified by the build just before (`emotions cache`, `train` and `evaluate` build first).
            checks = {
                v: check_clip(self.cache_dir / f"{v}.clip", sha, settings, verify=False)
                for v, sha in zip(self.rows["video_id"], self.rows["media_sha256"], strict=True)
            }
            stale = {v: check for v, check in checks.items() if check.state != "current"}
            if stale:
                first, check = next(iter(stale.items()))
                raise ValueError(
                    f"{self.cache_dir}: {len(stale)} cache file(s) missing, damaged or stale, e.g. {first}.clip "
                    f"({check.reason or check.state}; run `emotions cache` on the release)"
                )
        else:
            missing = [v for v in self.rows["video_id"] if not (self.media_dir / f"{v}.mp4").is_file()]
            if missing:
                raise ValueError(f"{self.media_dir}: {len(missing)} media file(s) missing, e.g. {missing[0]}.mp4")

    @classmethod
    def for_model(cls, release_dir: Path, variant: str, split: str, cfg: ModelConfig, **kwargs) -> ReleaseDataset:
        """A dataset shaped for `cfg` (segments, frames per segment, crop, audio frames)."""
        return cls(release_dir, variant, split, segments=cfg.segments, frames_per_segment=cfg.frames_per_segment,
                   crop=cfg.crop, audio_frames=cfg.audio_frames, **kwargs)  # fmt: skip

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Training draws new snippets and crops every epoch, reproducibly (also in loader workers)."""
        self._epoch[0] = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        video_id = self._ids[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.cache_dir is not None:
            clip = open_clip(self.cache_dir / f"{video_id}.clip")
            idx = frame_indices(clip.n_frames, self.segments, self.length, self.train, rng)
            params, mfcc = draw_spatial(self.train, rng), clip.mfcc()
            decoded, where = clip.decode(idx)
            top, left, side = crop_box(*decoded[0].shape[-2:], params.position)
            if side == self.crop:  # a cache at the crop's size: crop straight into the batch layout
                video = torch.empty((self.segments, 3, self.length, side, side), dtype=torch.uint8)
                for j, k in enumerate(where.tolist()):
                    video[j // self.length, :, j % self.length] = decoded[k][:, top : top + side, left : left + side]
                return augment_clip(video, params), audio_chunks(mfcc, self.audio), self._labels[index]
            frames = torch.stack(decoded)[torch.from_numpy(where)]
        else:
            path = self.media_dir / f"{video_id}.mp4"
            stream = video_stream(path)
            idx = frame_indices(stream.n_frames, self.segments, self.length, self.train, rng)
            frames = decode_frames(path, idx.ravel(), stream=stream).permute(0, 3, 1, 2)
            with torch.no_grad():
                mfcc = self.mfcc(load_waveform(path))
            params = draw_spatial(self.train, rng)
        video = crop_clip(frames, params, self.crop, channels_last=False)  # (3, S*T, c, c)
        video = video.unflatten(1, (self.segments, self.length)).transpose(0, 1)  # a view; one copy below
        return video.contiguous(), audio_chunks(mfcc, self.audio), self._labels[index]

"""A learnable synthetic dataset for the baseline's training tests (no media, no ffmpeg)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from baselines.model import ModelConfig

MODEL = ModelConfig.tiny(segments=4, frames_per_segment=4, crop=32, audio_frames=256)


class Synthetic(Dataset):
    """Each class is a brightness level in the picture and a constant in the sound: learnable."""

    def __init__(self, n: int, seed: int, cfg: ModelConfig = MODEL) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % cfg.n_classes
        self.noise = torch.randn(n, cfg.segments, 3, cfg.frames_per_segment, cfg.crop, cfg.crop, generator=g)
        self.audio_noise = torch.randn(n, cfg.segments, cfg.chunk_frames, cfg.mfcc, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        level = float(self.labels[i]) / 5 - 0.5
        return 0.3 * self.noise[i] + level, 0.3 * self.audio_noise[i] + 4 * level, int(self.labels[i])

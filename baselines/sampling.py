"""Which frames and which crop the baseline sees (the paper's recipe).

Temporal (TSN style): 16 segments x 8 consecutive frames = 128 frames per video; the snippet sits at a
random position in its segment when training and centred when evaluating; frames past the end loop
back to the start (loop-padding). Videos with fewer frames than segments are not usable.
Spatial: the largest square crop at one of 5 positions (centre, corners) resized to 112x112; when
training, with p = 0.3, one of horizontal flip, rotation within +-20 degrees, or brightness x[0.5, 1];
all parameters drawn once per video. Pixels: value / 255 - 100 / 255 (no per-channel std).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

POSITIONS = ("centre", "top_left", "top_right", "bottom_left", "bottom_right")
MEAN = 100.0 / 255.0


class TooFewFrames(ValueError):
    """The video has fewer frames than segments: the paper drops such videos."""


def frame_indices(
    n_frames: int, segments: int = 16, length: int = 8, train: bool = False, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(segments, length) frame indices into a video of `n_frames` frames."""
    if n_frames < segments:
        raise TooFewFrames(f"{n_frames} frames < {segments} segments")
    bounds = np.linspace(0, n_frames, segments + 1)
    starts = np.empty(segments, dtype=np.int64)
    for s in range(segments):
        low, high = int(bounds[s]), max(int(bounds[s]), int(bounds[s + 1]) - length)
        if train:
            starts[s] = (rng or np.random.default_rng()).integers(low, high + 1)
        else:
            starts[s] = (low + high) // 2
    return (starts[:, None] + np.arange(length)[None, :]) % n_frames


@dataclass(frozen=True)
class SpatialParams:
    position: str = "centre"
    augment: str | None = None  # None, "flip", "rotate", "brightness"
    angle: float = 0.0
    brightness: float = 1.0


def draw_spatial(train: bool, rng: np.random.Generator | None = None, p: float = 0.3) -> SpatialParams:
    """Once per video. Evaluation is always the plain centre crop."""
    if not train:
        return SpatialParams()
    rng = rng or np.random.default_rng()
    position = POSITIONS[int(rng.integers(len(POSITIONS)))]
    if rng.random() >= p:
        return SpatialParams(position)
    augment = ("flip", "rotate", "brightness")[int(rng.integers(3))]
    return SpatialParams(position, augment, float(rng.uniform(-20, 20)), float(rng.uniform(0.5, 1.0)))


def apply_spatial(frames: torch.Tensor, params: SpatialParams, size: int = 112) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames -> (3, T, size, size) float, normalised as in the paper."""
    video = frames.permute(0, 3, 1, 2)  # T, C, H, W
    height, width = video.shape[-2:]
    side = min(height, width)
    top = {"centre": (height - side) // 2, "top_left": 0, "top_right": 0}.get(params.position, height - side)
    left = {"centre": (width - side) // 2, "top_left": 0, "bottom_left": 0}.get(params.position, width - side)
    video = TF.resized_crop(video, top, left, side, side, [size, size], antialias=True)
    if params.augment == "flip":
        video = TF.horizontal_flip(video)
    elif params.augment == "rotate":
        video = TF.rotate(video, params.angle)
    elif params.augment == "brightness":
        video = TF.adjust_brightness(video, params.brightness)
    return (video.float() / 255.0 - MEAN).permute(1, 0, 2, 3).contiguous()

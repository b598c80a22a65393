"""Which frames and which crop the baseline sees (the paper's recipe).

Temporal (TSN style): 16 segments x 8 consecutive frames = 128 frames per video; the snippet sits at a
random position in its segment when training and centred when evaluating. A video shorter than the 128
frames is loop-padded to 128 indices first, as the authors' `transforms/temporal.py` (XuecWu/eMotions,
from maysonma/VAANet) does: snippet s is then frames 8s..8s+7 of the repeated video, so the snippets wrap
round it (start order 0, 8, ..., 48, 6, 14, ... for 50 frames), in training and evaluation alike.
Videos with fewer frames than segments are not usable.
Spatial: the largest square crop at one of 5 positions (centre, corners) resized to 112x112; when
training, with p = 0.3, one of horizontal flip, rotation within +-20 degrees (bilinear, as the authors'
PIL rotation), or brightness x[0.5, 1]; all parameters drawn once per video. Clips stay uint8 until they
reach the device, where `normalise_on_device` maps a value v to v / 255 - 100 / 255 (no per-channel std).
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
    """(segments, length) frame indices into a video of `n_frames` frames.

    With at least `segments * length` frames, snippet s lies in the s-th of `segments` equal spans (random start
    in training, centred otherwise). With fewer, the video is loop-padded to `segments * length` indices and
    snippet s is padded indices s*length .. s*length+length-1, so indices wrap round the video (the authors' TSN
    with LoopPadding; there a segment is exactly one snippet long, so training draws nothing). Raises
    `TooFewFrames` below `segments` frames."""
    if n_frames < segments:
        raise TooFewFrames(f"{n_frames} frames < {segments} segments")
    if n_frames < segments * length:
        return np.arange(segments * length, dtype=np.int64).reshape(segments, length) % n_frames
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


def crop_box(height: int, width: int, position: str) -> tuple[int, int, int]:
    """(top, left, side) of the largest square of a `height` x `width` frame at `position`."""
    side = min(height, width)
    top = {"centre": (height - side) // 2, "top_left": 0, "top_right": 0}.get(position, height - side)
    left = {"centre": (width - side) // 2, "top_left": 0, "bottom_left": 0}.get(position, width - side)
    return top, left, side


def augment_clip(video: torch.Tensor, params: SpatialParams, chunk: int = 8) -> torch.Tensor:
    """The drawn augmentation of a uint8 clip (..., H, W) whose last three dimensions are images of any channel
    count: flip, bilinear rotation (the authors' PIL `rotate` with BILINEAR) or brightness (torchvision's:
    value x factor, truncated). Rotation and brightness run `chunk` leading slices at a time, so their float
    temporaries stay small. Returns a new tensor or `video` itself (no augmentation)."""
    if params.augment == "flip":
        return video.flip(-1)
    if params.augment not in ("rotate", "brightness"):
        return video
    out = torch.empty_like(video)
    flat_in, flat_out = video.reshape(-1, *video.shape[-3:]), out.view(-1, *video.shape[-3:])
    for at in range(0, flat_in.shape[0], chunk):
        part = flat_in[at : at + chunk]
        if params.augment == "rotate":
            flat_out[at : at + chunk] = TF.rotate(part, params.angle, interpolation=TF.InterpolationMode.BILINEAR)
        else:
            flat_out[at : at + chunk] = (part.float() * params.brightness).clamp_(0, 255)  # truncated to uint8
    return out


def crop_clip(frames: torch.Tensor, params: SpatialParams, size: int = 112, channels_last: bool = True) -> torch.Tensor:
    """Frames (T, H, W, 3) uint8, or (T, 3, H, W) when not `channels_last` -> (3, T, size, size) uint8 (a view
    where nothing had to be computed, so not necessarily contiguous): the largest square at `params.position`,
    resized to `size` (bilinear, antialiased; skipped when the square is already `size`, as in a cache made at
    short side `size`), then the drawn augmentation (`augment_clip`). Whole-clip uint8 ops."""
    video = frames.permute(0, 3, 1, 2) if channels_last else frames  # T, C, H, W (a view)
    top, left, side = crop_box(*video.shape[-2:], params.position)
    video = video[..., top : top + side, left : left + side]
    if side != size:
        video = TF.resize(video, [size, size], antialias=True)
    return augment_clip(video, params).transpose(0, 1)  # a view: the caller makes the one copy into its layout


def normalise_on_device(video: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """A uint8 batch (any shape, e.g. (N, S, 3, T, H, W)) moved to `device` (asynchronously from pinned memory)
    and scaled there to float32 v / 255 - 100 / 255, the paper's pixel scale (the authors' `AVNet.py` does the
    same inside the model). A floating tensor is taken as already normalised and only moved."""
    video = video.to(device, non_blocking=True) if device is not None else video
    if video.dtype != torch.uint8:
        return video
    return video.float() / 255.0 - MEAN


def apply_spatial(frames: torch.Tensor, params: SpatialParams, size: int = 112) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames -> (3, T, size, size) float, normalised as in the paper (`crop_clip`, then
    `normalise_on_device` where the frames are)."""
    return normalise_on_device(crop_clip(frames, params, size)).contiguous()

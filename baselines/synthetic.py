"""Generated portrait clips for benchmarks and tests: talking-head-like pictures (a shaded face that drifts, blinks
and opens its mouth on a smooth background, with fine skin texture and sensor noise), made in numpy, so a release
and its preprocessing cache can be written without ffmpeg.

The pictures are smoother than the demo corpus's patterns, which are made to be told apart, not to look like
footage; a cache's size depends on the pictures, so figures from these clips estimate, not measure, real footage.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from baselines.cache import CacheSettings, cache_folder, scaled_size, write_cache_file
from emotions_data.layout import DatasetLayout

_SKIN = np.array([205.0, 150.0, 125.0])


@dataclass(frozen=True)
class PortraitSpec:
    """A generated clip: `seconds` at `fps`, `width` x `height` pixels (portrait by default)."""

    seed: int
    seconds: float = 15.0
    fps: float = 30.0
    width: int = 720
    height: int = 1280

    @property
    def n_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Noise in [-1, 1] with features about `cell` pixels wide (bilinear upsampling of a coarse grid)."""
    grid = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2))
    ys, xs = np.arange(height) / cell, np.arange(width) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def portrait_frames(spec: PortraitSpec) -> Iterator[np.ndarray]:
    """The clip's frames, (height, width, 3) uint8 each, in order."""
    rng = np.random.default_rng(spec.seed)
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = min(h, w)
    base = rng.uniform(60, 200, 3)
    background = (base[None, None, :] + 25 * (yy / h)[..., None] * rng.uniform(-1, 1, 3)
                  + 18 * _smooth_noise(rng, h, w, max(8, scale // 6))[..., None]).astype(np.float32)  # fmt: skip
    texture = (5 * _smooth_noise(rng, h, w, max(2, scale // 90))).astype(np.float32)[..., None]
    skin = _SKIN * rng.uniform(0.6, 1.1)
    phase = rng.uniform(0, 2 * math.pi, 4)
    for t in range(spec.n_frames):
        s = t / spec.fps
        cx = w / 2 + 0.06 * scale * math.sin(0.7 * s + phase[0])
        cy = h * 0.45 + 0.04 * scale * math.sin(0.5 * s + phase[1])
        rx, ry = 0.33 * scale, 0.45 * scale
        r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        face = np.clip(1.5 * (1 - r2), 0, 1)[..., None]  # soft edge
        shade = (1 - 0.25 * np.clip(r2, 0, 1) - 0.1 * (xx - cx) / rx)[..., None]
        frame = background * (1 - face) + (skin * shade + texture) * face
        blink = 0.15 if (s + phase[2]) % 3.7 < 0.15 else 1.0
        for ex in (-0.35, 0.35):  # eyes
            eye = ((xx - cx - ex * rx) / (0.12 * rx)) ** 2 + ((yy - cy + 0.2 * ry) / (0.05 * ry * blink)) ** 2 < 1
            frame[eye] = (40, 30, 30)
        mouth_open = 0.02 + 0.05 * abs(math.sin(6 * s + phase[3]))
        mouth = ((xx - cx) / (0.3 * rx)) ** 2 + ((yy - cy - 0.45 * ry) / (mouth_open * ry)) ** 2 < 1
        frame[mouth] = (110, 40, 45)
        frame += rng.normal(0, 1.5, (h, w, 1)).astype(np.float32)  # sensor noise left after the encoder
        yield np.clip(frame, 0, 255).astype(np.uint8)


def synthetic_mfcc(seed: int, seconds: float, n_mfcc: int = 32, sample_rate: int = 44100, hop: int = 512) -> np.ndarray:
    """A (n_mfcc, frames) float32 matrix shaped like the MFCCs of a clip `seconds` long (c0 around -200, smaller
    spread in higher coefficients); random values, not computed from audio."""
    frames = int(seconds * sample_rate / hop) + 1
    rng = np.random.default_rng(seed)
    spread = np.linspace(40, 2, n_mfcc)[:, None]
    return (rng.normal(0, 1, (n_mfcc, frames)) * spread - 200 * (np.arange(n_mfcc) == 0)[:, None]).astype(np.float32)


def write_synthetic_clip(cache: Path, spec: PortraitSpec, settings: CacheSettings, n_classes: int) -> dict:
    """Write the cache file of one generated clip into `cache` (frames drawn at the cache's size directly) and
    return its release row (video_id, label_index, media_sha256)."""
    video_id, sha = f"gen{spec.seed:06d}", f"{spec.seed:064x}"
    width, height = scaled_size(spec.width, spec.height, settings.short_side)
    frames = portrait_frames(replace(spec, width=width, height=height))
    write_cache_file(cache / f"{video_id}.clip", frames, synthetic_mfcc(spec.seed, spec.seconds), settings, sha)
    return {"video_id": video_id, "label_index": spec.seed % n_classes, "media_sha256": sha}


def write_synthetic_release(
    dataset: Path, specs: list[PortraitSpec], settings: CacheSettings, classes: list[str], val: int = 8,
    pool: Executor | None = None,
) -> tuple[Path, Path]:  # fmt: skip
    """A release `dataset/releases/0.0.0` (data/full/{train,val}.parquet; the first `val` clips are also the val
    split) and its preprocessing cache written straight from generated frames (no media, no ffmpeg), the clips
    spread over `pool` when given.

    Returns (release folder, cache folder)."""
    layout = DatasetLayout(Path(dataset)).release("0.0.0")
    release = layout.root
    layout.data_file("full", "train").parent.mkdir(parents=True, exist_ok=True)
    cache = cache_folder(release, settings)
    cache.mkdir(parents=True, exist_ok=True)
    one = partial(write_synthetic_clip, cache, settings=settings, n_classes=len(classes))
    table = pd.DataFrame(list(pool.map(one, specs, chunksize=4) if pool else map(one, specs)))
    table["label"] = [classes[i] for i in table["label_index"]]
    table.to_parquet(layout.data_file("full", "train"))
    table.iloc[:val].to_parquet(layout.data_file("full", "val"))
    return release, cache

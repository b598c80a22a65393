"""The CPU cost of one training clip in the baseline's loader, and the size of its cache, beside the loader it replaced.

Generates `--clips` portrait clips (720x1280, 30 fps, `--seconds` long, H.264 + stereo AAC, talking-head-like
pictures from `baselines.synthetic`), caches each with the real ffmpeg twice, then measures, in one process on one
thread, the CPU time (`time.process_time`) of training items (random snippets, crops and augmentations) collated
into batches of 8:
  now       the cache as built today (short side 112, still frames stored once, JPEG q85 lowered per clip until
            it fits 2900 bytes per frame), frames decoded in one batched call and cropped in uint8
            (`ReleaseDataset`); the batch stays uint8 (the device normalises it)
  before    the earlier recipe (short side 128, every frame, JPEG q90, no size budget), frames decoded one by one
            through Pillow, resized crop and pixel scaling in float32 on the CPU (the earlier
            `ReleaseDataset.__getitem__`, restated here)
and the cache's size per clip for both, with the JPEG qualities the budget left. Target: at most 30 CPU-ms per clip
and 1.5 MB per 15 s clip.

`--content test-pattern` uses the demo corpus's moving test patterns instead (`emotions_data.demo_corpus`, at the
same size, rate and length): fine detail everywhere, so they compress and decode far worse than faces, and bound the
cost from above.

Run: python benchmarks/baseline_loader.py [--clips 4] [--items 64] [--content talking-head|test-pattern]
                                         [--out /tmp/loader-bench]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, copied rather than installed

import argparse
import io
import subprocess
import tempfile
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch.utils.data import default_collate

from baselines.audio import AudioConfig, audio_chunks
from baselines.cache import CacheSettings, open_clip, write_clip
from baselines.data import ReleaseDataset
from baselines.sampling import MEAN, SpatialParams, draw_spatial, frame_indices
from baselines.synthetic import PortraitSpec, portrait_frames
from emotions_data.demo_corpus import ClipSpec, make_clip

BEFORE = CacheSettings(short_side=128, jpeg_quality=90, frame_bytes=1 << 30, min_jpeg_quality=90, still_tolerance=-1)
NOW = CacheSettings()
SHA = "0" * 64


def make_media(path: Path, spec: PortraitSpec) -> Path:
    """An H.264/AAC clip of `spec`'s pictures (drawn at half size, scaled up by ffmpeg) with a stereo tone."""
    half = replace(spec, width=spec.width // 2, height=spec.height // 2)
    tone = f"aevalsrc=0.3*sin(2*PI*220*t)|0.2*sin(2*PI*330*t):s=44100:d={spec.seconds}"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
           f"{half.width}x{half.height}", "-r", str(spec.fps), "-i", "pipe:0", "-f", "lavfi", "-i", tone,
           "-vf", f"scale={spec.width}:{spec.height}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)]  # fmt: skip
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        for frame in portrait_frames(half):
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
    if proc.returncode:
        raise SystemExit(f"{path}: ffmpeg failed ({proc.returncode})")
    return path


def before_item(path: Path, index: int, epoch: int, crop: int = 112) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One training item as the earlier loader made it: Pillow per frame, float32 crop and scale on the CPU."""
    rng = np.random.default_rng([0, epoch, index])
    clip = open_clip(path)
    idx = frame_indices(clip.n_frames, 16, 8, True, rng).ravel()
    frames_at, offsets, wanted = clip.data_at + clip._mfcc_bytes, clip.header["offsets"], np.unique(idx)
    decoded = {}
    with open(path, "rb") as f:
        for i in wanted.tolist():
            f.seek(frames_at + offsets[i])
            data = f.read(offsets[i + 1] - offsets[i])
            decoded[i] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    frames = torch.from_numpy(np.stack([decoded[int(i)] for i in idx]))
    params: SpatialParams = draw_spatial(True, rng)
    video = frames.permute(0, 3, 1, 2)
    height, width = video.shape[-2:]
    side = min(height, width)
    top = {"centre": (height - side) // 2, "top_left": 0, "top_right": 0}.get(params.position, height - side)
    left = {"centre": (width - side) // 2, "top_left": 0, "bottom_left": 0}.get(params.position, width - side)
    video = TF.resized_crop(video, top, left, side, side, [crop, crop], antialias=True)
    if params.augment == "flip":
        video = TF.horizontal_flip(video)
    elif params.augment == "rotate":
        video = TF.rotate(video, params.angle)
    elif params.augment == "brightness":
        video = TF.adjust_brightness(video, params.brightness)
    video = (video.float() / 255.0 - MEAN).permute(1, 0, 2, 3).contiguous()
    video = video.reshape(3, 16, 8, crop, crop).permute(1, 0, 2, 3, 4).contiguous()
    return video, audio_chunks(clip.mfcc(), AudioConfig()), 0


def cpu_ms(make_item, n_items: int, batch: int = 8) -> float:
    """CPU milliseconds per clip of `n_items` items (`make_item(k)`) collated in batches of `batch`."""
    start = time.process_time()
    for first in range(0, n_items, batch):
        default_collate([make_item(k) for k in range(first, min(first + batch, n_items))])
    return (time.process_time() - start) / n_items * 1e3


def release_of(root: Path, ids: list[str]) -> Path:
    """A release folder whose train split lists `ids` (the loader reads the cache only)."""
    release = root / "ds" / "releases" / "0.0.0"
    (release / "data" / "full").mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame({"video_id": ids, "label_index": 0, "media_sha256": SHA})
    rows.to_parquet(release / "data" / "full" / "train.parquet")
    return release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--items", type=int, default=64, help="training items timed per loader")
    parser.add_argument("--out", type=Path, default=None, help="scratch folder [a temporary one]")
    parser.add_argument("--content", choices=("talking-head", "test-pattern"), default="talking-head")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a loader worker's view: one CPU
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        (out / "media").mkdir(parents=True, exist_ok=True)
        ids, sizes, qualities = [], {"before": 0, "now": 0}, []
        for k in range(args.clips):
            media = out / "media" / f"gen{k}.mp4"
            if args.content == "talking-head":
                make_media(media, PortraitSpec(k, seconds=args.seconds))
            else:
                make_clip(ClipSpec("Excitation", k, width=720, height=1280, fps="30", duration_s=args.seconds), media)
            for name, settings in (("before", BEFORE), ("now", NOW)):
                (out / name).mkdir(exist_ok=True)
                sizes[name] += write_clip(media, out / name / f"gen{k}.clip", settings, SHA).stat().st_size
            ids.append(f"gen{k}")
            qualities.append(open_clip(out / "now" / f"gen{k}.clip").header["jpeg_quality"])
        dataset = ReleaseDataset(release_of(out, ids), "full", "train", train=True, cache_dir=out / "now")
        for warm in range(len(ids)):  # the files in the page cache for both, as in a long run
            dataset[warm], before_item(out / "before" / f"{ids[warm]}.clip", warm, 0)
        n, rounds = len(ids), []

        def now_item(k: int):
            dataset.set_epoch(k // n)  # every item a fresh draw, as over epochs
            return dataset[k % n]

        for _ in range(3):  # alternated, so a busy machine slows both alike
            now = cpu_ms(now_item, args.items)
            before = cpu_ms(lambda k: before_item(out / "before" / f"{ids[k % n]}.clip", k % n, k // n), args.items)
            rounds.append((now, before))
    now, before = min(r[0] for r in rounds), min(r[1] for r in rounds)
    scale = 15.0 / args.seconds / args.clips / 1e6
    print(f"CPU per training clip (one thread, batches of 8, best of 3): now {now:.1f} ms, before {before:.1f} ms, "
          f"x{before / now:.2f} less (target <= 30 ms)")  # fmt: skip
    print(f"cache per 15 s clip: now {sizes['now'] * scale:.2f} MB, before {sizes['before'] * scale:.2f} MB "
          f"(target <= 1.5 MB; 28k clips: {sizes['now'] * scale * 28:.0f} GB); JPEG quality per clip now: "
          f"{', '.join(map(str, qualities))}")  # fmt: skip


if __name__ == "__main__":
    main()

"""The baseline's training speed on a GPU, beside decoding the media with ffmpeg for every item.

Generates a release of `--clips` clips at a realistic size (portrait 720x1280, 30 fps, `--seconds` long, H.264/AAC
like the normalised media), builds the preprocessing cache, then measures:
  data      the data pipeline alone (DataLoader over the cache, train mode, `--loader-workers` processes): clips/s,
            and the same without the cache (ffmpeg decoding every item): the cache's speed-up ratio
  train     the paper configuration (Swin-T + ResNet-34 + fusion, bf16 autocast, batch 8) for `--steps` batches
            after `--warmup` batches: clips/s, share of step time spent waiting for data, peak GPU memory,
            model FLOPs utilisation (FLOPs counted by torch's FlopCounterMode on one forward+backward)
Targets: data wait <= 10 % of the step time, and a 28k-clip epoch (28,000 / train clips/s) <= 5 minutes.

Run (device machine): python benchmarks/baseline_gpu.py --out /tmp/bench [--write-results benchmarks/RESULTS.md]
CPU smoke test:       python benchmarks/baseline_gpu.py --device cpu --config tiny --clips 16 --steps 3 --warmup 1
                        --width 240 --height 426 --seconds 3 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode

from baselines.cache import CacheSettings, build_release_cache, cache_folder
from baselines.data import ReleaseDataset
from baselines.distributed import World
from baselines.loss import total_loss
from baselines.model import AVCANet, ModelConfig
from baselines.recipes import CONFIGS
from baselines.train import StepInfo, train
from emotions_data.demo_corpus import CLASS_STYLE
from emotions_data.executor import make_executor
from emotions_data.layout import DatasetLayout
from emotions_data.probe import sha256_file
from emotions_data.release_info import ReleaseInfo
from emotions_data.taxonomy import EMOTIONS6

# Dense bf16 tensor-core peaks (TFLOP/s) for MFU; anything else: pass --peak-tflops.
PEAK_TFLOPS = {"H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H200": 989.0, "A100": 312.0}


def make_release(root: Path, clips: int, width: int, height: int, seconds: float) -> Path:
    """A minimal release (data/full/{train,val}.parquet + DATASET/media) of generated clips."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    classes = list(EMOTIONS6.classes)

    def one(i: int) -> dict:
        label = classes[i % len(classes)]
        path = media / f"clip{i:06d}.mp4"
        if not path.exists():
            _, _, _, rate, tone, tremolo = CLASS_STYLE[label]
            video = f"life=s={width // 8}x{height // 8}:seed={i}:ratio=0.35:rate={rate},scale={width}:{height}:flags=neighbor,format=yuv420p"  # noqa: E501
            audio = f"sine=f={tone}:sample_rate=44100,tremolo=f={tremolo}"
            tmp = path.with_suffix(".tmp.mp4")
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi",
                            "-i", audio, "-t", str(seconds), "-r", "30", "-c:v", "libx264", "-preset", "ultrafast",
                            "-crf", "28", "-c:a", "aac", "-shortest", str(tmp)], check=True)  # fmt: skip
            tmp.replace(path)
        return {"video_id": path.stem, "label": label, "label_index": classes.index(label),
                "media_sha256": sha256_file(path)}  # fmt: skip

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        rows = pd.DataFrame(list(pool.map(one, range(clips))))
    release = DatasetLayout(root).release("0.0.0")
    folder = release.root
    release.data_file("full", "train").parent.mkdir(parents=True, exist_ok=True)
    val = rows.iloc[: max(8, clips // 20)]
    rows.to_parquet(release.data_file("full", "train"))
    val.to_parquet(release.data_file("full", "val"))
    ReleaseInfo(name="bench", version="0.0.0", variants={"full": {"train": len(rows), "val": len(val)}},
                taxonomy={"classes": classes, "polarity": EMOTIONS6.polarity}).write_to_directory(folder)  # fmt: skip
    return folder


def loader_speed(dataset, batch: int, workers: int, batches: int) -> float:
    """Clips/s of a DataLoader alone, after its first batch (worker start-up excluded)."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        prefetch_factor=4 if workers else None, persistent_workers=False)  # fmt: skip
    iterator = iter(loader)
    next(iterator)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        try:
            seen += len(next(iterator)[2])
        except StopIteration:
            break
    return seen / (time.perf_counter() - start)


def flops_per_clip(cfg: ModelConfig, device: torch.device, bf16: bool) -> float:
    """Forward + backward FLOPs of one clip (batch of 2 counted, halved)."""
    model = AVCANet(cfg).to(device)
    video = torch.randn(2, cfg.segments, 3, cfg.frames_per_segment, cfg.crop, cfg.crop, device=device)
    audio = torch.randn(2, cfg.segments, cfg.chunk_frames, cfg.mfcc, device=device)
    polarity = torch.tensor([0, 2, 1, 0, 2, 2], device=device)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = total_loss(model(video, audio), torch.tensor([0, 1], device=device), polarity)
        loss.backward()
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (generated media, cache)")
    parser.add_argument("--clips", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--height", type=int, default=1280)
    parser.add_argument("--config", default="paper", choices=sorted(CONFIGS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--loader-workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--steps", type=int, default=300, help="measured batches")
    parser.add_argument("--warmup", type=int, default=20, help="batches before measuring")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--write-results", type=Path, default=None, help="append the results (markdown) here")
    args = parser.parse_args()
    device = torch.device(args.device)
    started = time.perf_counter()
    release = make_release(args.out, args.clips, args.width, args.height, args.seconds)
    generated = time.perf_counter() - started

    settings = CacheSettings()
    start = time.perf_counter()
    with make_executor("local", os.cpu_count() or 2) as pool:
        build_release_cache(release, settings, pool)
    cache_s = time.perf_counter() - start
    cache_bytes = sum(p.stat().st_size for p in cache_folder(release, settings).glob("*.clip"))
    media_bytes = sum(p.stat().st_size for p in (args.out / "media").glob("*.mp4"))

    model_config, train_config = CONFIGS[args.config]
    cfg = model_config(n_classes=6)
    cached = ReleaseDataset.for_model(
        release, "full", "train", cfg, train=True, cache_dir=cache_folder(release, settings)
    )
    direct = ReleaseDataset.for_model(release, "full", "train", cfg, train=True)
    probe_batches = max(4, 64 // args.batch)
    data_cached = loader_speed(cached, args.batch, args.loader_workers, probe_batches * 4)
    data_direct = loader_speed(direct, args.batch, args.loader_workers, probe_batches)

    n_items = min(len(cached), (args.steps + args.warmup) * args.batch)
    config = replace(train_config(), epochs=1, batch_size=args.batch, accumulation=4, num_workers=args.loader_workers)
    steps: list[StepInfo] = []
    val = Subset(ReleaseDataset.for_model(release, "full", "val", cfg, cache_dir=cache_folder(release, settings)),
                 range(8))  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    model = AVCANet(cfg)
    train(model, Subset(cached, range(n_items)), val, config, args.out / "run", classes=list(EMOTIONS6.classes),
          class_polarity=torch.tensor([0, 2, 1, 0, 2, 2]), device=device, resume=False, on_step=steps.append,
          world=World())  # fmt: skip
    peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    first, last = steps[min(args.warmup, len(steps) - 2)], steps[-1]
    clips = (last.batch - first.batch) * args.batch
    elapsed = last.elapsed_s - first.elapsed_s
    waited = last.waited_s - first.waited_s
    train_cps = clips / elapsed
    flops = flops_per_clip(cfg, device, device.type == "cuda")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    mfu = flops * train_cps / (peak * 1e12) if peak else None
    lines = [
        f"### {args.config} configuration on {name} ({time.strftime('%Y-%m-%d')})",
        "",
        f"{args.clips} generated clips, {args.width}x{args.height}, {args.seconds:g} s, 30 fps, H.264/AAC "
        f"(generated in {generated:.0f} s); batch {args.batch}, bf16 autocast on CUDA, "
        f"{args.loader_workers} loader workers, {os.cpu_count()} CPU cores.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| cache build | {args.clips / cache_s:.1f} clips/s ({cache_bytes / 2**20 / args.clips:.2f} MiB per clip; "
        f"media {media_bytes / 2**20 / args.clips:.2f} MiB) |",
        f"| data pipeline, cache | {data_cached:.1f} clips/s |",
        f"| data pipeline, ffmpeg per item | {data_direct:.1f} clips/s "
        f"(cache speed-up x{data_cached / data_direct:.1f}) |",
        f"| training | {train_cps:.1f} clips/s over {last.batch - first.batch} batches |",
        f"| data wait | {waited / elapsed:.1%} of step time (target <= 10 %) |",
        f"| 28k-clip epoch | {28000 / train_cps / 60:.1f} min (target <= 5) |",
        f"| peak GPU memory | {peak_gib:.1f} GiB |",
        f"| FLOPs per clip (fwd+bwd) | {flops / 1e9:.1f} GFLOP |",
        f"| MFU | {'n/a (unknown peak: --peak-tflops)' if mfu is None else f'{mfu:.1%} of {peak:g} TFLOP/s'} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        with open(args.write_results, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

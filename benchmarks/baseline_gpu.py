"""The baseline's training speed on one GPU: the model's bf16 step, the loader that feeds it, and what an epoch takes.

Runs on a stock GPU machine as it is: Python, PyTorch and torchvision, no ffmpeg, no network, the repository copied
(not installed). It writes its own release: `--clips` generated portrait clips (720x1280 at 30 fps, `--seconds`
long) straight into the preprocessing cache's format (frames drawn at the cache's size, JPEG-coded; synthetic
MFCCs), then measures:
  model    the paper configuration (Swin-T + ResNet-34 + fusion, batch 8, bf16 autocast) on one batch held on the
           device: step time, clips/s, FLOPs per clip (torch's FlopCounterMode on the real model, forward and
           backward), achieved TFLOP/s and MFU against the chip's dense bf16 peak
  loader   the DataLoader alone over the cache (train mode, `--loader-workers` processes): clips/s; and the CPU
           time of one clip in this process
  train    both together for `--steps` batches: clips/s, share of the time spent waiting for data, peak memory,
           and the predicted time of a 28k-clip epoch and of 30 epochs

GPU (about 3 minutes on an H100): python benchmarks/baseline_gpu.py [--write-results benchmarks/RESULTS.md]
CPU check (seconds):               python benchmarks/baseline_gpu.py --device cpu --tiny
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, copied rather than installed

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from baselines.cache import CacheSettings
from baselines.data import ReleaseDataset, default_loader_workers
from baselines.loss import total_loss
from baselines.model import AVCANet, ModelConfig
from baselines.recipes import CONFIGS
from baselines.sampling import normalise_on_device
from baselines.synthetic import PortraitSpec, write_synthetic_release

# Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, without sparsity), matched against
# torch.cuda.get_device_name; anything else: --peak-tflops.
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0, "GH200": 989.0, "B200": 2250.0,
               "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}  # fmt: skip
POLARITY = torch.tensor([0, 2, 1, 0, 2, 2])
CLASSES = ["Anger", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]


def peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of the chip called `name` (the longest matching key), None when unknown."""
    keys = sorted((k for k in PEAK_TFLOPS if k in name), key=len, reverse=True)
    return PEAK_TFLOPS[keys[0]] if keys else None


def make_data(out: Path, clips: int, seconds: float, workers: int) -> tuple[Path, Path, float]:
    """The generated release and its cache (see `baselines.synthetic`): (release, cache folder, MB per clip)."""
    specs = [PortraitSpec(i, seconds=seconds) for i in range(clips)]
    with ProcessPoolExecutor(max(1, workers)) as pool:
        release, cache = write_synthetic_release(out, specs, CacheSettings(), CLASSES, val=min(8, clips), pool=pool)
    size = sum(p.stat().st_size for p in cache.glob("*.clip"))
    return release, cache, size / clips / 1e6


def cycle(loader: DataLoader) -> Iterator:
    """The loader's batches, epoch after epoch (persistent workers keep running between epochs)."""
    while True:
        yield from loader


def loader_speed(batches: Iterator, batch: int, n: int) -> float:
    """Clips/s of `n` batches from a running loader."""
    start = time.perf_counter()
    for _ in range(n):
        next(batches)
    return n * batch / (time.perf_counter() - start)


def cpu_ms_per_clip(dataset: ReleaseDataset, n: int) -> float:
    """CPU milliseconds of one item in this process (read, decode, sample, crop, augment, audio), one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.process_time()
    for i in range(n):
        dataset[i % len(dataset)]
    torch.set_num_threads(threads)
    return (time.process_time() - start) / n * 1e3


def flops_per_clip(model: torch.nn.Module, cfg: ModelConfig, device: torch.device, bf16: bool) -> float:
    """Forward + backward FLOPs of one clip, counted by FlopCounterMode on a batch of 2 (halved)."""
    video, audio, label = fake_batch(cfg, 2, device)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = total_loss(model(normalise_on_device(video), audio), label, POLARITY.to(device))
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def fake_batch(cfg: ModelConfig, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A uint8 video batch (N, S, 3, T, crop, crop), MFCC chunks and labels, on `device`."""
    shape = (batch, cfg.segments, 3, cfg.frames_per_segment, cfg.crop, cfg.crop)
    video = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    audio = torch.randn(batch, cfg.segments, cfg.chunk_frames, cfg.mfcc, device=device)
    return video, audio, torch.arange(batch, device=device) % len(CLASSES)


def run_steps(model, optimizer, batches: Iterator, steps: int, device: torch.device, bf16: bool) -> tuple[float, float]:
    """`steps` training steps (accumulation 4, as the paper) fed by `batches`: (seconds, of which waiting for data).
    The device is synchronised every step, so waiting is time the GPU had nothing to do."""
    polarity, waited = POLARITY.to(device), 0.0
    start = time.perf_counter()
    for i in range(steps):
        tick = time.perf_counter()
        video, audio, label = next(batches)
        video = normalise_on_device(video, device)
        audio, label = audio.to(device, non_blocking=True), label.to(device, non_blocking=True)
        waited += time.perf_counter() - tick
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = total_loss(model(video, audio), label, polarity)
        (loss / 4).backward()
        if (i + 1) % 4 == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - start, waited


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny model and a few short clips (a CPU check)")
    parser.add_argument("--clips", type=int, default=None, help="generated clips [256; --tiny 6]")
    parser.add_argument("--seconds", type=float, default=None, help="clip length [15; --tiny 2]")
    parser.add_argument("--batch", type=int, default=None, help="[8; --tiny 2]")
    parser.add_argument("--loader-workers", type=int, default=default_loader_workers())
    parser.add_argument("--steps", type=int, default=None, help="measured batches [60; --tiny 2]")
    parser.add_argument("--warmup", type=int, default=None, help="batches before measuring [8; --tiny 1]")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense bf16 peak, if unknown")
    parser.add_argument("--out", type=Path, default=None, help="scratch folder [a temporary one]")
    parser.add_argument("--write-results", type=Path, default=None, help="append the results (markdown) here")
    args = parser.parse_args()
    small = {"clips": (256, 6), "seconds": (15.0, 2.0), "batch": (8, 2), "steps": (60, 2), "warmup": (8, 1)}
    for name, (paper, tiny) in small.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else paper)
    return args


def main() -> None:
    args = parse_args()
    device, started = torch.device(args.device), time.perf_counter()
    bf16 = device.type == "cuda"
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        release, cache, mb_per_clip = make_data(out, args.clips, args.seconds, os.cpu_count() or 1)
        generated = time.perf_counter() - started
        model_config, train_config = CONFIGS["tiny" if args.tiny else "paper"]
        cfg = model_config(n_classes=len(CLASSES))
        dataset = ReleaseDataset.for_model(release, "full", "train", cfg, train=True, cache_dir=cache)
        cpu_ms = cpu_ms_per_clip(dataset, min(32, 4 * len(dataset)))

        torch.manual_seed(0)
        model = AVCANet(cfg).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_config().lr)
        flops = flops_per_clip(model, cfg, device, bf16)
        held = fake_batch(cfg, args.batch, device)
        run_steps(model, optimizer, iter(lambda: held, None), args.warmup, device, bf16)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model_s, _ = run_steps(model, optimizer, iter(lambda: held, None), args.steps, device, bf16)

        loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                            num_workers=args.loader_workers, pin_memory=device.type == "cuda",
                            persistent_workers=args.loader_workers > 0,
                            prefetch_factor=4 if args.loader_workers else None)  # fmt: skip
        batches = cycle(loader)
        next(batches)  # worker start-up is not the loader's speed
        loader_cps = loader_speed(batches, args.batch, max(4, args.steps // 2))
        run_steps(model, optimizer, batches, args.warmup, device, bf16)
        train_s, waited = run_steps(model, optimizer, batches, args.steps, device, bf16)
        peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        del batches, loader

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or (peak_tflops(name) if device.type == "cuda" else None)
    model_cps, train_cps = args.steps * args.batch / model_s, args.steps * args.batch / train_s
    achieved = flops * model_cps / 1e12
    mfu = f"{achieved / peak:.1%} of {peak:g} TFLOP/s" if peak else "n/a (unknown peak: --peak-tflops)"
    epoch_min = 28000 / train_cps / 60
    lines = [
        f"### {'tiny' if args.tiny else 'paper'} configuration on {name} ({time.strftime('%Y-%m-%d')})",
        "",
        f"{args.clips} generated clips ({args.seconds:g} s, 30 fps, portrait; cache {mb_per_clip:.2f} MB per clip, "
        f"written in {generated:.0f} s); batch {args.batch}, {'bf16 autocast' if bf16 else 'fp32'}, "
        f"{args.loader_workers} loader workers, {os.cpu_count()} CPU cores.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| model step (batch on the device) | {model_s / args.steps * 1e3:.1f} ms, {model_cps:.1f} clips/s |",
        f"| FLOPs per clip (fwd+bwd) | {flops / 1e9:.1f} GFLOP |",
        f"| achieved | {achieved:.1f} TFLOP/s; MFU {mfu} |",
        f"| loader alone | {loader_cps:.1f} clips/s with {args.loader_workers} workers; {cpu_ms:.1f} CPU-ms per clip |",
        f"| training (loader + model) | {train_cps:.1f} clips/s; waiting for data {waited / train_s:.1%} |",
        f"| peak GPU memory | {peak_gib:.1f} GiB |",
        f"| 28k-clip epoch | {epoch_min:.1f} min; 30 epochs {epoch_min * 30 / 60:.1f} h |",
        f"| whole benchmark | {time.perf_counter() - started:.0f} s |",
        "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    if args.write_results:
        with open(args.write_results, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

"""Ingest against a peer: emotions and video2dataset on the same URLs, in the same run.

What is measured
    ours    `emotions_data.ingest.ingest` on a CSV of N loopback URLs into a fresh dataset folder, timed around
            the call: download (yt-dlp), ffprobe + sha256, filters, exact and near-duplicate checks, the transcode
            with its fingerprint, verification of the output, the fsynced shard logs and the manifest.
    peer    video2dataset (the release pinned in constraints-peers.txt, in its own virtualenv) on the same CSV:
            download, then its `ResolutionSubsampler` to the same short side, written as files. Timed around its
            `video2dataset()` call inside its process (its import of torch and friends is reported apart).

Both sides run WORKERS jobs at once (video2dataset: WORKERS processes of one thread each) and encode with the same
ffmpeg options (those of emotions' normalise step: libx264, preset, CRF, yuv420p, high profile, AAC at the same bit
rate and sample rate, faststart). video2dataset has no options for these, so its driver
(benchmarks/peers/video2dataset_run.py) passes them through a subclass of its `ResolutionSubsampler`, which also has
to set `encode_formats`: video2dataset 1.3.0's download worker reads that attribute from every video subsampler and
`ResolutionSubsampler` does not define it. The clips are served by emotions' loopback HTTP server, warmed up first.
The ratio printed is throughput ours / peer: above 1 means emotions ingests faster, and it buys its extra checks.

    make bench-peers        # once: the peers' virtualenv, .venv-peers
    python benchmarks/ingest_peers.py [--n 24] [--workers 2] [--duration 6.0] [--size 640x360] [--repeats 1]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emotions_data.ingest import ingest
from emotions_data.loopback import serve
from emotions_data.settings import IngestSettings, NormaliseSettings

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE.parent / ".venv-peers" / "bin" / "python"
PEER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the peer imports only its own packages


def _sibling(name: str):
    """A benchmark script next to this one, as a module (the clip generator of benchmarks/ingest.py)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def encoder_settings(normalise: NormaliseSettings, short_side: int) -> dict:
    """ffmpeg output options of emotions' normalise step (emotions_data.normalise.build_command), as keyword
    arguments for ffmpeg-python's `output()`."""
    return {
        "short_side": short_side,
        "output_options": {"c:v": "libx264", "preset": normalise.preset, "crf": normalise.crf, "pix_fmt": "yuv420p",
                           "profile:v": "high", "c:a": "aac", "b:a": normalise.audio_bitrate,
                           "ar": normalise.audio_sample_rate, "ac": 2, "movflags": "+faststart", "f": "mp4"},
    }  # fmt: skip


def run_ours(urls: Path, n: int, workers: int, short_side: int, out: Path) -> float:
    settings = IngestSettings(workers=workers, normalise=NormaliseSettings(max_short_side=short_side))
    dataset = Path(tempfile.mkdtemp(prefix="ours-", dir=out))
    try:
        started = time.perf_counter()
        report = ingest([urls], dataset, settings)
        wall = time.perf_counter() - started
    finally:
        shutil.rmtree(dataset, ignore_errors=True)
    if report.status_counts != {"ok": n}:
        raise SystemExit(f"emotions did not accept all {n} clips: {report.status_counts} {report.reason_counts}")
    return wall


def run_peer(urls: Path, n: int, workers: int, settings: dict, out: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="peer-", dir=out))
    try:
        argv = [str(PEERS_PYTHON), str(HERE / "peers" / "video2dataset_run.py"), str(urls), str(folder / "out"),
                str(workers)]  # fmt: skip
        env = {**PEER_ENV, "EMOTIONS_BENCH_ENCODER": json.dumps(settings)}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"video2dataset failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["log"] = proc.stderr[-3000:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if result["successes"] != n:
        log = result.pop("log")
        raise SystemExit(f"video2dataset wrote {result['successes']} of {n} clips: {result}\n{log}")
    return result


def main(argv: list[str] | None = None) -> int:
    bench = _sibling("ingest")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="number of clips")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs on both sides")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per clip")
    parser.add_argument("--size", type=bench.parse_size, default=(640, 360), help="clip size, WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (alternating); the best counts")
    args = parser.parse_args(argv)
    if not PEERS_PYTHON.is_file():
        raise SystemExit(f"{PEERS_PYTHON} not found: run `make bench-peers` first")
    width, height = args.size
    clips = bench.ensure_clips(bench.clip_specs(args.n, width, height, args.duration))
    short_side = min(width, height)
    settings = encoder_settings(NormaliseSettings(), short_side)
    bench.OUT_DIR.mkdir(parents=True, exist_ok=True)
    ours, peer, peer_import = [], [], []
    with serve(clips[0].parent) as server, tempfile.TemporaryDirectory(dir=bench.OUT_DIR) as tmp:
        urls = Path(tmp) / "urls.csv"
        with urls.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["url"])
            writer.writerows([server.url(p.name)] for p in clips)
        for path in clips:  # into the page cache
            path.read_bytes()
        for _ in range(args.repeats):
            ours.append(run_ours(urls, len(clips), args.workers, short_side, Path(tmp)))
            result = run_peer(urls, len(clips), args.workers, settings, Path(tmp))
            peer.append(result["wall_s"])
            peer_import.append(result["import_s"])
    best_ours, best_peer = min(ours), min(peer)
    ask = "import importlib.metadata as m; print(m.version('video2dataset'))"
    version = subprocess.run([str(PEERS_PYTHON), "-c", ask], capture_output=True, text=True).stdout.strip()
    print(f"{len(clips)} clips of {args.duration:g} s at {width}x{height}, {args.workers} workers, "
          f"encoder {settings['output_options']['c:v']} {settings['output_options']['preset']} "
          f"crf {settings['output_options']['crf']}")  # fmt: skip
    print(f"{'side':<24}{'wall s':>10}{'clips/s':>10}")
    print(f"{'emotions ingest':<24}{best_ours:>10.2f}{len(clips) / best_ours:>10.2f}")
    print(f"{'video2dataset ' + version:<24}{best_peer:>10.2f}{len(clips) / best_peer:>10.2f}"
          f"   (+{min(peer_import):.1f} s importing it)")  # fmt: skip
    print(f"ratio ours/peer (throughput): {best_peer / best_ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

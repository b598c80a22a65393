"""Ingest throughput: our pipeline against the raw ffmpeg CLI doing the same probe + transcode.

What is measured
    ours  `emotions_data.ingest.ingest` on a folder of N local clips into a fresh dataset folder,
          timed around the whole call: worker pool start-up, ffprobe + sha256 of every input,
          filters and duplicate checks, the transcode (with the fingerprint thumbnail branch), the
          probe and sha256 of every output, the durable (fsynced) shard logs and the manifest.
    raw   what a person would do by hand with the same tools: per file, the same ffprobe call as
          `probe.ffprobe_command` (JSON saved next to the output), then the transcode argv of
          `normalise.build_command(..., with_thumbnails=False)`; one shell line per file, run by
          `xargs -P WORKERS`, timed around the xargs process. The facts the argv needs (size, rate,
          duration, audio) are probed beforehand, outside the timed region.

Both sides use the same clips, the same worker count and the same encoder settings, in the same
run on the same machine, after a warm-up (clips read into the page cache, one transcode), so the
ratio of throughputs (ours / raw) is the pipeline's cost over the bare tools: bookkeeping, the
fingerprint, verification of the output, crash-safety. The target is a ratio of at least 0.85.

With `--executor ray` our side runs three ways on the same clips, each into a fresh dataset folder:
    local     the local process pool, as above (the reference);
    ray       `RayExecutor` on a Ray instance started inside the timed region (`ray.init`, worker
              processes, then the ingest): what one `emotions ingest --executor ray` costs;
    ray-warm  the same on a Ray instance started and warmed up (its worker processes running)
              before the timed region: the steady state of a cluster that is already up.
and the Ray overhead is reported as ray / local throughput (target: at least 0.8, i.e. within 20 %).

    python benchmarks/ingest.py [--n 24] [--workers 2] [--duration 6.0] [--size 640x360]
                                [--executor local|serial|ray] [--repeats 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emotions_data.demo_corpus import ClipSpec, make_clip
from emotions_data.executor import Executor, RayExecutor, make_executor
from emotions_data.ingest import FETCH, NORMALISE, ingest
from emotions_data.normalise import SourceVideo, build_command
from emotions_data.probe import ProbeFacts, ffprobe_command, probe_file
from emotions_data.settings import IngestSettings, NormaliseSettings
from emotions_data.taxonomy import EMOTIONS6

OUT_DIR = Path(__file__).resolve().parent / "out"
TARGET_RATIO = 0.85
TARGET_RAY_RATIO = 0.8
CLIP_FPS = "30"
COMPLETE_MARKER = ".complete"


@dataclass
class SideResult:
    """Timings of one side over all repeats; throughputs use the best (minimum) wall time."""

    name: str
    clips: int
    media_s: float
    wall_s: list[float] = field(default_factory=list)

    @property
    def best_s(self) -> float:
        return min(self.wall_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.best_s

    @property
    def media_s_per_s(self) -> float:
        return self.media_s / self.best_s

    def as_dict(self) -> dict[str, object]:
        return {
            "clips": self.clips,
            "media_s": round(self.media_s, 3),
            "wall_s": round(self.best_s, 3),
            "wall_s_all": [round(t, 3) for t in self.wall_s],
            "wall_s_median": round(self.median_s, 3),
            "clips_per_s": round(self.clips_per_s, 4),
            "media_s_per_s": round(self.media_s_per_s, 4),
        }


# ---------------------------------------------------------------- inputs


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None


def clip_specs(n: int, width: int, height: int, duration_s: float) -> list[ClipSpec]:
    """N different clips cycling through the six classes: distinct seeds and tones, so none is
    a near-duplicate of another."""
    classes = EMOTIONS6.classes
    return [
        ClipSpec(
            label=classes[i % len(classes)],
            seed=5000 + i,
            width=width,
            height=height,
            fps=CLIP_FPS,
            duration_s=duration_s,
            tone_shift=round(0.95 + 0.1 * i / max(1, n - 1), 4),
        )
        for i in range(n)
    ]


def clip_folder(specs: list[ClipSpec]) -> Path:
    digest = hashlib.sha1(json.dumps([asdict(s) for s in specs], sort_keys=True).encode()).hexdigest()[:12]
    return OUT_DIR / f"clips-{digest}"


def ensure_clips(specs: list[ClipSpec]) -> list[Path]:
    """Generate the clips into their cache folder, or reuse it when a previous run completed it."""
    folder = clip_folder(specs)
    paths = [folder / f"{i:03d}_{spec.label.lower()}{spec.suffix}" for i, spec in enumerate(specs)]
    marker = folder / COMPLETE_MARKER
    if marker.is_file() and all(p.is_file() for p in paths):
        return paths
    shutil.rmtree(folder, ignore_errors=True)
    print(f"generating {len(specs)} clips in {folder} ...", flush=True)
    for spec, path in zip(specs, paths, strict=True):
        make_clip(spec, path)
    marker.write_text("\n".join(p.name for p in paths) + "\n")
    return paths


def media_seconds(facts: ProbeFacts) -> float:
    return facts.video_duration_s or facts.duration_s or 0.0


# ---------------------------------------------------------------- the two sides


def run_ours(folder: Path, n_clips: int, workers: int, executor: Executor, stages: dict[str, float]) -> float:
    """Ingest `folder` into a fresh dataset with `executor` (closed afterwards, outside the timing);
    returns the wall time. Fills `stages` with the time at which each stage's progress was first
    and last reported (seconds from the start). Executors start their workers lazily, inside it."""
    dataset = Path(tempfile.mkdtemp(prefix="ours-", dir=OUT_DIR))
    settings = IngestSettings(workers=workers)
    started = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - started
        stages.setdefault(f"{stage}_start", now)
        if done == total:
            stages[f"{stage}_end"] = now

    try:
        report = ingest([folder], dataset, settings, executor=executor, progress=progress)
        wall = time.perf_counter() - started
    finally:
        executor.close()
        shutil.rmtree(dataset, ignore_errors=True)
    stages["total"] = wall
    if report.status_counts != {"ok": n_clips}:
        raise SystemExit(
            f"ingest did not accept all {n_clips} clips: status {report.status_counts}, reasons {report.reason_counts}"
        )
    return wall


def transcode_argv(src: Path, dst: Path, facts: ProbeFacts, settings: NormaliseSettings) -> list[str]:
    source = SourceVideo(
        facts.width or 0, facts.height or 0, facts.fps, media_seconds(facts), facts.has_audio, facts.vfr
    )
    return build_command(src, dst, source, settings, with_thumbnails=False)


def raw_command_lines(clips: list[Path], facts: list[ProbeFacts], out: Path) -> list[str]:
    """One shell line per clip: the probe (JSON kept, as a person would) and then the transcode."""
    settings = IngestSettings().normalise
    lines = []
    for src, clip_facts in zip(clips, facts, strict=True):
        probe = shlex.join(ffprobe_command(src)) + " > " + shlex.quote(str(out / f"{src.stem}.json"))
        transcode = shlex.join(transcode_argv(src, out / f"{src.stem}.mp4", clip_facts, settings))
        lines.append(f"{probe} && {transcode}")
    return lines


def run_raw(clips: list[Path], facts: list[ProbeFacts], workers: int) -> float:
    """Run the raw CLI lines through `xargs -P`; returns the wall time of the xargs process."""
    out = Path(tempfile.mkdtemp(prefix="raw-", dir=OUT_DIR))
    try:
        commands = out / "commands.sh"
        commands.write_text("\n".join(raw_command_lines(clips, facts, out)) + "\n")
        argv = ["xargs", "-a", str(commands), "-P", str(workers), "-d", "\n", "-I{}", "sh", "-c", "{}"]
        started = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"raw ffmpeg run failed (xargs exit {proc.returncode}); commands in {commands}")
        made = [out / f"{src.stem}.mp4" for src in clips]
        missing = [p.name for p in made if not p.is_file() or p.stat().st_size == 0]
        if missing:
            raise SystemExit(f"raw ffmpeg run produced no output for {missing}")
        return wall
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_ray_warm(folder: Path, n_clips: int, workers: int, stages: dict[str, float]) -> float:
    """`run_ours` on a Ray instance started, with its worker processes running, before the timing."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        with RayExecutor(workers) as warm:  # a cluster that is up has its workers running
            list(warm.map_unordered(time.sleep, [0.5] * workers))
        return run_ours(folder, n_clips, workers, RayExecutor(workers), stages)
    finally:
        ray.shutdown()


def warm_up(clips: list[Path], facts: list[ProbeFacts]) -> None:
    """Read every clip into the page cache and run one transcode, so neither side pays a cold start."""
    for path in clips:
        path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="warmup-", dir=OUT_DIR) as tmp:
        argv = transcode_argv(clips[0], Path(tmp) / "warmup.mp4", facts[0], IngestSettings().normalise)
        subprocess.run(argv, check=True, capture_output=True)


# ---------------------------------------------------------------- report


def ffmpeg_version() -> str:
    proc = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()[0] if proc.stdout else "unknown"


def stage_breakdown(stages: dict[str, float]) -> dict[str, float]:
    """Seconds spent before the first stage, in each stage (pool start-up included), between the
    stages, and after the last one (manifest and logs)."""
    marks = [stages.get(k) for k in (f"{FETCH}_start", f"{FETCH}_end", f"{NORMALISE}_start", f"{NORMALISE}_end")]
    if any(m is None for m in marks):
        return {}
    fetch_start, fetch_end, norm_start, norm_end = marks  # type: ignore[misc]
    return {
        "setup": round(fetch_start, 3),
        "fetch_probe": round(fetch_end - fetch_start, 3),
        "between_stages": round(norm_start - fetch_end, 3),
        "normalise": round(norm_end - norm_start, 3),
        "finish": round(stages["total"] - norm_end, 3),
    }


def print_table(sides: list[SideResult], ratios: list[str]) -> None:
    header = f"{'side':<8} {'clips':>6} {'media s':>9} {'wall s':>8} {'clips/s':>8} {'media s/s':>10}"
    print(header)
    print("-" * len(header))
    for side in sides:
        print(
            f"{side.name:<8} {side.clips:>6d} {side.media_s:>9.1f} {side.best_s:>8.2f} "
            f"{side.clips_per_s:>8.3f} {side.media_s_per_s:>10.2f}"
        )
    for line in ratios:
        print(line)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="number of clips")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs on both sides")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per clip")
    parser.add_argument("--size", type=parse_size, default=(640, 360), help="clip size, WIDTHxHEIGHT")
    parser.add_argument(
        "--executor", default="local", choices=("local", "serial", "ray"), help="our side's backend (ray: see above)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (alternating); the best counts")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.n < 1 or args.workers < 1 or args.repeats < 1 or args.duration <= 0:
        parser.error("--n, --workers and --repeats must be >= 1 and --duration > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    width, height = args.size
    clips = ensure_clips(clip_specs(args.n, width, height, args.duration))
    facts = [probe_file(path) for path in clips]
    total_media = sum(media_seconds(f) for f in facts)
    cpus = os.cpu_count() or 0
    print(f"cpus: {cpus} (usable {len(os.sched_getaffinity(0))}); {ffmpeg_version()}")
    print(f"clips: {len(clips)} x {args.duration:g} s at {width}x{height}, {CLIP_FPS} fps; workers: {args.workers}")

    warm_up(clips, facts)
    folder, n = clips[0].parent, len(clips)
    # Our side is "ours" with one executor, or with --executor ray: the local pool and Ray, cold and warm.
    runners: dict[str, Callable[[dict[str, float]], float]] = {
        "ours": lambda stages: run_ours(folder, n, args.workers, make_executor(args.executor, args.workers), stages)
    }
    if args.executor == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a benchmark
        runners = {
            "local": lambda stages: run_ours(folder, n, args.workers, make_executor("local", args.workers), stages),
            "ray": lambda stages: run_ours(folder, n, args.workers, RayExecutor(args.workers), stages),
            "ray-warm": lambda stages: run_ray_warm(folder, n, args.workers, stages),
        }
    sides = {name: SideResult(name, n, total_media) for name in [*runners, "raw"]}
    breakdowns: dict[str, list[dict[str, float]]] = {name: [] for name in runners}
    names = list(sides)
    for i in range(args.repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order against drift
            if name == "raw":
                sides[name].wall_s.append(run_raw(clips, facts, args.workers))
            else:
                stages: dict[str, float] = {}
                sides[name].wall_s.append(runners[name](stages))
                breakdowns[name].append(stage_breakdown(stages))

    ours, raw = sides[names[0]], sides["raw"]
    ratio = ours.clips_per_s / raw.clips_per_s
    lines = [f"ratio ({ours.name}/raw throughput) = {ratio:.2f} (target >= {TARGET_RATIO})"]
    ray_ratios = {name: sides[name].clips_per_s / ours.clips_per_s for name in ("ray", "ray-warm") if name in sides}
    # Best run against best run, as above; and the medians' ratio, less swayed by one lucky run on a noisy machine.
    median_ratios = {name: ours.median_s / sides[name].median_s for name in ray_ratios}
    lines += [
        f"ratio ({name}/local throughput) = {r:.2f} (target >= {TARGET_RAY_RATIO}); medians {median_ratios[name]:.2f}"
        for name, r in ray_ratios.items()
    ]
    print()
    print_table(list(sides.values()), lines)
    best = {name: runs[sides[name].wall_s.index(sides[name].best_s)] for name, runs in breakdowns.items()}
    for name, stages in best.items():
        if stages:
            print(f"{name} by stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    if args.json:
        result = {
            "params": {
                "n": args.n,
                "workers": args.workers,
                "duration_s": args.duration,
                "size": f"{width}x{height}",
                "executor": args.executor,
                "repeats": args.repeats,
            },
            "machine": {"cpu_count": cpus, "ffmpeg": ffmpeg_version(), "python": sys.version.split()[0]},
            "ours": {**ours.as_dict(), "stages_s": best[ours.name]},
            "raw": raw.as_dict(),
            "ratio": round(ratio, 4),
            "target_ratio": TARGET_RATIO,
        }
        if ray_ratios:
            result["sides"] = {name: {**sides[name].as_dict(), "stages_s": best[name]} for name in ray_ratios}
            result["ray_ratio"] = {name: round(r, 4) for name, r in ray_ratios.items()}
            result["ray_ratio_of_medians"] = {name: round(r, 4) for name, r in median_ratios.items()}
            result["target_ray_ratio"] = TARGET_RAY_RATIO
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

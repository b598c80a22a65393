"""Near-duplicate search at scale: the indexed search (banded LSH, `dedup.indexed_pairs`) beside the exact search
(`dedup.exact_pairs`, every pair within the duration window) in the same run, with the recall of planted copies.

Data: N random ``p2`` fingerprints (picture bits of unrelated clips, 85 % with sound: --with-sound) with log-normal
durations (median 15 s, as short videos), plus one planted copy for every 100 clips: its picture bits flipped at a rate
drawn uniformly from [0, --max-picture] (real re-encodes, crops and watermarks measure 0.00-0.27:
docs/lead/duplicates.md), its sound bits at a rate from [0, 0.05], its length moved within the duration window, 10 % of
them muted. Prints time and peak memory of each search, their ratio, the recall of the planted copies (those within the
threshold, which the exact search finds, computed at any n; all, with sound, muted or silent, by picture distance),
and the pairs the indexed search found beyond the planted ones that the exact search does not have (none by
construction: every candidate is verified exactly).

Run: python benchmarks/dedup.py --real                 (distances of real copies made with ffmpeg, then exits)
     python benchmarks/dedup.py --n 30000 --exact      (both searches, recall against the exact search)
     python benchmarks/dedup.py --n 1000000            (the indexed search alone; target <= 60 s, <= 4 GB)
Each search runs in a fresh process so peak memory is its own. CPU seconds are printed beside wall seconds: on a
shared machine, CPU / 2 is what two free cores would take.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import resource
import time

import numpy as np

from emotions_data import fingerprint as fp
from emotions_data.dedup import SEARCH_THREADS, Candidate, near_duplicate_pairs
from emotions_data.settings import DedupSettings


def planted(
    n: int, max_picture: float, seed: int = 0, with_sound: float = 0.85
) -> tuple[list[Candidate], np.ndarray, np.ndarray]:
    """(candidates, planted pairs (m, 2), the planted copies' picture flip rates (m,))."""
    rng = np.random.default_rng(seed)
    m = n // 101
    base = n - m
    picture = rng.integers(0, 2**fp.BITS_PER_FRAME, (n, fp.N_FRAMES), dtype=np.uint64)
    sound = rng.integers(0, 2**fp.BITS_PER_SEGMENT, (n, fp.N_SEGMENTS), dtype=np.uint64)
    sounding = np.repeat(rng.random((n, 1)) < with_sound, fp.N_SEGMENTS, axis=1)
    durations = np.round(np.exp(rng.normal(np.log(15.0), 0.6, n)) + 1.0, 3)
    src = rng.choice(base, m, replace=False)
    rate = rng.uniform(0.0, max_picture, m)

    def flip(words: np.ndarray, bits: int, p: np.ndarray) -> np.ndarray:
        mask = rng.random((len(words), words.shape[1], bits)) < p[:, None, None]
        return words ^ (mask.astype(np.uint64) << np.arange(bits, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)

    picture[base:] = flip(picture[src], fp.BITS_PER_FRAME, rate)
    sound[base:] = flip(sound[src], fp.BITS_PER_SEGMENT, rng.uniform(0.0, 0.05, m))
    sounding[base:] = sounding[src] & (rng.random((m, 1)) >= 0.10)
    window = np.maximum(1.0, 0.05 * durations[src])
    durations[base:] = np.maximum(0.5, durations[src] + rng.uniform(-0.45, 0.45, m) * window)
    fps = fp.Decoded(picture, np.ones((n, fp.N_FRAMES), bool), sound, sounding, np.full(n, 2, np.int8))
    strings = fp.encode_many(fps)
    candidates = [Candidate(f"v{k}", k, float(durations[k]), 0, strings[k]) for k in range(n)]
    return candidates, np.stack([src, np.arange(base, n)], axis=1), rate


def _timed(args: tuple) -> tuple[float, float, list]:
    n, max_picture, method, seed, with_sound = args
    candidates, _, _ = planted(n, max_picture, seed, with_sound)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    pairs = near_duplicate_pairs(candidates, DedupSettings(), method=method)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu
    return elapsed, usage.ru_maxrss / 1024, before, cpu, [(i, j) for i, j, _ in pairs]


SOURCES = {
    "life": "life=s=60x34:seed=3:ratio=0.35:rate=25:mold=10,scale=640:360:flags=neighbor",
    "testsrc2": "testsrc2=s=640x360:r=25",
    "mandelbrot": "mandelbrot=s=640x360:r=25",
}
COPIES = {
    "re-encode (half size, crf 35)": ("scale=iw/2:ih/2", "35"),
    "crop 8 %": ("crop=iw*0.92:ih*0.92", "28"),
    "crop 15 %": ("crop=iw*0.85:ih*0.85", "28"),
    "watermark (a quarter of the width)": ("drawbox=x=8:y=8:w=iw/4:h=ih/10:color=white@0.8:t=fill", "28"),
    "re-upload (crop 8 %, 75 %, small watermark)": (
        "crop=iw*0.92:ih*0.92,scale=trunc(iw*0.75/2)*2:trunc(ih*0.75/2)*2,drawbox=x=8:y=8:w=iw/5:h=ih/14:"
        "color=white@0.7:t=fill",
        "28",
    ),
    "mirrored (a different clip to the fingerprint)": ("hflip", "28"),
}


def real_copies() -> None:
    """Fingerprint distances of copies made with the real ffmpeg, through the normalising pass ingest runs."""
    import subprocess
    import tempfile
    from pathlib import Path

    from emotions_data.normalise import SourceVideo, fingerprint_file, normalise
    from emotions_data.probe import probe_file
    from emotions_data.settings import FilterSettings, NormaliseSettings

    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y"]

    def fingerprint(path: Path) -> str:
        facts = probe_file(path)
        source = SourceVideo(facts.width, facts.height, facts.fps, facts.video_duration_s or 0.0, facts.has_audio)
        return normalise(path, path.with_suffix(".out.mp4"), source, NormaliseSettings(), FilterSettings()).fingerprint

    with tempfile.TemporaryDirectory() as folder:
        for name, video in SOURCES.items():
            src = Path(folder) / f"{name}.mp4"
            sound = "sine=f=330:sample_rate=44100,tremolo=f=3:d=0.8"
            subprocess.run([*ffmpeg, "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", sound, "-t", "8",
                            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                            str(src)], check=True)  # fmt: skip
            original = fingerprint(src)
            again = fingerprint_file(src.with_suffix(".out.mp4"), 8.0, True)  # how an older fingerprint is upgraded
            print(f"{name:10s} {'made again from the normalised file':48s} {fp.describe_distance(original, again)}")
            for k, (copy, (vf, crf)) in enumerate(COPIES.items()):
                dst = Path(folder) / f"{name}-{k}.mp4"
                subprocess.run([*ffmpeg, "-i", str(src), "-vf", vf, "-c:v", "libx264", "-crf", crf, "-preset",
                                "veryfast", "-c:a", "aac", "-b:a", "64k", str(dst)], check=True)  # fmt: skip
                print(f"{name:10s} {copy:48s} {fp.describe_distance(original, fingerprint(dst))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--exact", action="store_true", help="run the exact search too (quadratic: keep n small)")
    parser.add_argument("--max-picture", type=float, default=0.28)
    parser.add_argument("--seed", type=int, default=0, help="of the random fingerprints and copies")
    parser.add_argument("--with-sound", type=float, default=0.85, help="the share of clips with sound")
    parser.add_argument("--real", action="store_true", help="distances of real ffmpeg copies, then exit")
    args = parser.parse_args()
    if args.real:
        real_copies()
        return
    ctx = mp.get_context("spawn")
    runs = {}
    for method in ["indexed"] + (["exact"] if args.exact else []):
        with ctx.Pool(1) as pool:
            runs[method] = pool.apply(_timed, ((args.n, args.max_picture, method, args.seed, args.with_sound),))
    candidates, truth, rate = planted(args.n, args.max_picture, args.seed, args.with_sound)
    fps = fp.decode_many([c.fingerprint for c in candidates])
    with_sound = fps.sounding[truth[:, 0]].any(1) & fps.sounding[truth[:, 1]].any(1)
    found = {tuple(p) for p in runs["indexed"][4]}
    hit = np.array([tuple(sorted(p)) in found for p in truth.tolist()])
    # The planted copies the exact search reports: within the threshold and the duration window (at any n,
    # without running it).
    settings = DedupSettings()
    durations = np.array([c.duration_s for c in candidates])
    a, b = truth[:, 0], truth[:, 1]
    short, long = np.minimum(durations[a], durations[b]), np.maximum(durations[a], durations[b])
    window = np.maximum(settings.duration_tolerance_s, settings.duration_tolerance_ratio * short)
    within = (fp.pair_distances(fps, a, b)[0] <= settings.near_duplicate_threshold) & (long - short <= window + 1e-9)
    print(
        f"{args.n:,} clips, {len(truth):,} planted copies (picture distance 0-{args.max_picture}, seed {args.seed}), "
        f"{SEARCH_THREADS} threads"
    )
    for method, (elapsed, peak, before, cpu, pairs) in runs.items():
        print(f"{method:8s}: {elapsed:7.2f} s wall, {cpu:7.2f} s CPU, peak memory {peak:6.0f} MB (data alone "
              f"{before:.0f} MB), {len(pairs):,} pairs")  # fmt: skip
    if "exact" in runs:
        exact = {tuple(p) for p in runs["exact"][4]}
        print(f"ratio exact / indexed: {runs['exact'][0] / runs['indexed'][0]:.1f}x")
        print(
            f"pairs of the exact search found by the indexed one: {len(found & exact) / max(1, len(exact)):.4f} "
            f"({len(exact - found)} missed); indexed pairs not in the exact search: {len(found - exact)}"
        )
        planted_exact = np.array([tuple(sorted(p)) in exact for p in truth.tolist()])
        print(f"planted copies within the threshold (exact search): {planted_exact.mean():.4f}")
    print(
        f"recall of the planted copies within the threshold (what the exact search finds of them: "
        f"{within.sum():,}): {hit[within].mean():.4f} ({(within & ~hit).sum()} missed; with sound "
        f"{hit[within & with_sound].mean():.4f}, muted or silent {hit[within & ~with_sound].mean():.4f})"
    )
    print(
        f"recall of planted copies: all {hit.mean():.4f}, with sound {hit[with_sound].mean():.4f} "
        f"({with_sound.sum()}), muted or silent {hit[~with_sound].mean():.4f} ({(~with_sound).sum()})"
    )
    edges = np.arange(0.0, args.max_picture + 0.04, 0.04)
    for lo, hi in itertools.pairwise(edges):
        sel = (rate >= lo) & (rate < hi) & ~with_sound
        if sel.any():
            print(f"  muted or silent, picture flip rate {lo:.2f}-{hi:.2f}: recall {hit[sel].mean():.4f} ({sel.sum()})")
    print(json.dumps({"n": args.n, "recall": round(float(hit[within].mean()), 4),
                      **{m: round(r[0], 2) for m, r in runs.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()

"""The baseline's preprocessing cache: every video decoded once, so training does not re-decode H.264 each epoch.

One file per video, ``<cache>/<video_id>.clip``, written atomically::

    8 bytes   little-endian uint64: header length N
    N bytes   JSON header: format, recipe, media_sha256, n_frames, height, width, mfcc_shape, offsets (of each
              frame's JPEG within the frames section, plus the end)
    mfcc      float32 (n_mfcc, frames): the whole clip's MFCCs (tiling to the model's chunks happens at load time)
    frames    every frame at native rate, scaled to `short_side`, JPEG-encoded back to back

A reader seeks to the frames a snippet needs and decodes only those (libjpeg-turbo through Pillow), so a
training step reads ~1 MB per clip instead of decoding a whole video. A file is valid only for the media it was
made from (`media_sha256`, from the release) and for the cache recipe (short side, JPEG quality, audio settings):
anything else is rebuilt. Building runs on any `emotions_data.executor` backend (local pool or Ray).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from baselines.audio import MFCC, AudioConfig, load_waveform
from baselines.media import media_folder, video_stream
from emotions_data.executor import Executor
from emotions_data.layout import DatasetLayout
from emotions_data.storage import atomic_path

FORMAT = "emotions-clip-1"
_HEADER_LEN = struct.Struct("<Q")


@dataclass(frozen=True)
class CacheSettings:
    short_side: int = 128  # >= the 112 crop: the largest square of a frame is then resized down, as from 240p
    jpeg_quality: int = 90
    audio: AudioConfig = field(default_factory=AudioConfig)

    @property
    def recipe(self) -> str:
        """Short hash of everything that changes a cache file's content."""
        return hashlib.sha256(json.dumps([FORMAT, asdict(self)], sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CachedClip:
    """A cache file opened for reading: header parsed, frames decoded on demand."""

    path: Path
    header: dict
    data_at: int  # where the MFCC section starts (the frames follow it)

    @property
    def n_frames(self) -> int:
        """Frames stored, every frame of the video at its native rate."""
        return int(self.header["n_frames"])

    def mfcc(self) -> torch.Tensor:
        """The whole clip's MFCCs, (n_mfcc, frames) float32."""
        rows, cols = self.header["mfcc_shape"]
        with open(self.path, "rb") as f:
            f.seek(self.data_at)
            data = f.read(rows * cols * 4)
        return torch.from_numpy(np.frombuffer(data, dtype="<f4").reshape(rows, cols).copy())

    def frames(self, indices: np.ndarray) -> torch.Tensor:
        """The frames at `indices` (any order, repeats allowed) as (len(indices), H, W, 3) uint8."""
        offsets = self.header["offsets"]
        rows, cols = self.header["mfcc_shape"]
        frames_at = self.data_at + rows * cols * 4
        wanted = np.unique(indices)
        encoded: dict[int, bytes] = {}
        with open(self.path, "rb") as f:
            for i in wanted.tolist():
                f.seek(frames_at + offsets[i])
                encoded[i] = f.read(offsets[i + 1] - offsets[i])
        decoded = {i: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for i, data in encoded.items()}
        return torch.from_numpy(np.stack([decoded[int(i)] for i in indices]))


def open_clip(path: Path) -> CachedClip:
    """Open a cache file by its header; `ValueError` when it is not one, `OSError` when it cannot be read."""
    with open(path, "rb") as f:
        (length,) = _HEADER_LEN.unpack(f.read(_HEADER_LEN.size))
        header = json.loads(f.read(length))
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not an {FORMAT} cache file")
    return CachedClip(path, header, _HEADER_LEN.size + length)


def cache_folder(release_dir: Path, settings: CacheSettings) -> Path:
    """`DATASET/cache/baseline/<recipe>/`: next to the media the cache is made from, one folder per recipe."""
    return DatasetLayout.of_release(release_dir).baseline_cache / settings.recipe


def is_current(path: Path, media_sha256: str | None, settings: CacheSettings) -> bool:
    """Whether `path` holds a complete cache of this media made with this recipe."""
    try:
        header = open_clip(path).header
    except (OSError, ValueError):
        return False
    return header["recipe"] == settings.recipe and (media_sha256 is None or header["media_sha256"] == media_sha256)


def _scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _frames_of(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Every frame of `path` scaled to (height, width), streamed from ffmpeg one at a time."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"scale={width}:{height}",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]  # fmt: skip
    size = width * height * 3
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(size):
            if len(chunk) < size:
                break
            yield np.frombuffer(chunk, np.uint8).reshape(height, width, 3)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise ValueError(f"{path}: cannot decode frames: {err.strip()[-200:]}")


def write_clip(media: Path, out: Path, settings: CacheSettings, media_sha256: str = "") -> Path:
    """Decode `media` once and write its cache file to `out`, atomically (a reader never sees a torn file).

    Returns `out`. Raises `ValueError` when the media cannot be probed or decoded, `OSError` when writing fails.
    """
    stream = video_stream(media)
    width, height = _scaled_size(stream.width, stream.height, settings.short_side)
    offsets, chunks = [0], []
    for frame in _frames_of(media, width, height):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=settings.jpeg_quality)
        chunks.append(buffer.getvalue())
        offsets.append(offsets[-1] + len(chunks[-1]))
    if not chunks:
        raise ValueError(f"{media}: no frames decoded")
    with torch.no_grad():
        mfcc = MFCC(settings.audio)(load_waveform(media, settings.audio.sample_rate)).numpy().astype("<f4")
    header = {"format": FORMAT, "recipe": settings.recipe, "media_sha256": media_sha256, "n_frames": len(chunks),
              "height": height, "width": width, "mfcc_shape": list(mfcc.shape), "offsets": offsets}  # fmt: skip
    head = json.dumps(header).encode()
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            f.write(_HEADER_LEN.pack(len(head)))
            f.write(head)
            f.write(mfcc.tobytes())
            for chunk in chunks:
                f.write(chunk)
    return out


@dataclass(frozen=True)
class CacheJob:
    """One shard of videos for a worker: (video_id, media path, media_sha256) triples."""

    items: tuple[tuple[str, str, str], ...]
    cache_dir: str
    settings: CacheSettings


@dataclass(frozen=True)
class CacheResult:
    video_id: str
    status: str  # "built", "current" or "failed"
    error: str = ""


def run_cache_job(job: CacheJob) -> list[CacheResult]:
    """Worker side: build every stale or missing file of the shard; one video's failure does not stop the rest."""
    torch.set_num_threads(1)  # workers run in parallel; nested intra-op threads only contend
    results = []
    for video_id, media, sha in job.items:
        out = Path(job.cache_dir) / f"{video_id}.clip"
        if is_current(out, sha, job.settings):
            results.append(CacheResult(video_id, "current"))
            continue
        try:
            write_clip(Path(media), out, job.settings, sha)
            results.append(CacheResult(video_id, "built"))
        except (OSError, ValueError) as exc:
            results.append(CacheResult(video_id, "failed", str(exc).splitlines()[0]))
    return results


def cache_jobs(
    items: Sequence[tuple[str, str, str]], cache_dir: Path, settings: CacheSettings, shard_size: int = 8
) -> list[CacheJob]:
    """`items` ((video_id, media path, media_sha256) triples) cut into jobs of `shard_size` videos, in order."""
    return [
        CacheJob(tuple(items[i : i + shard_size]), str(cache_dir), settings) for i in range(0, len(items), shard_size)
    ]


@dataclass
class CacheReport:
    cache_dir: Path
    built: int = 0
    current: int = 0
    failed: list[CacheResult] = field(default_factory=list)


def build_release_cache(
    release_dir: Path, settings: CacheSettings, executor: Executor, *, variant: str | None = None,
    splits: Sequence[str] | None = None, cache_dir: Path | None = None, media_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CacheReport:  # fmt: skip
    """Cache the videos of a release (all variants and splits, or those named), on `executor` (an
    `emotions_data.executor` backend: local pool, serial or Ray). Current files are kept, so an interrupted build
    resumes."""
    release_dir = Path(release_dir)
    cache_dir = Path(cache_dir) if cache_dir else cache_folder(release_dir, settings)
    media_dir = Path(media_dir) if media_dir else media_folder(release_dir)
    items: dict[str, tuple[str, str, str]] = {}
    import pyarrow.parquet as pq

    for path in sorted((release_dir / "data").glob(f"{variant or '*'}/*.parquet")):
        if splits is not None and path.stem not in splits:
            continue
        table = pq.read_table(path, columns=["video_id", "media_sha256"]).to_pylist()
        for row in table:
            items[row["video_id"]] = (row["video_id"], str(media_dir / f"{row['video_id']}.mp4"), row["media_sha256"])
    if not items:
        raise ValueError(f"{release_dir}: no videos in data/{variant or '*'}/{'|'.join(splits or ['*'])}.parquet")
    report = CacheReport(cache_dir)
    done = 0
    if progress:
        progress("cache", 0, len(items))
    for results in executor.map_unordered(run_cache_job, cache_jobs(sorted(items.values()), cache_dir, settings)):
        for result in results:
            if result.status == "failed":
                report.failed.append(result)
            elif result.status == "built":
                report.built += 1
            else:
                report.current += 1
        done += len(results)
        if progress:
            progress("cache", done, len(items))
    return report

"""The baseline's preprocessing cache: every video decoded once, so training does not re-decode H.264 each epoch.

One file per video, ``<cache>/<video_id>.clip``, written atomically::

    8 bytes   little-endian uint64: header length N
    4 bytes   little-endian uint32: CRC-32 of the header
    N bytes   JSON header: format, recipe, media_sha256, n_frames, frame_jpeg (for each frame, which stored JPEG
              it is: still frames share one), height, width, jpeg_quality (the quality the size budget left this
              clip), mfcc_shape, offsets (of each stored JPEG within the frames section, plus the end),
              payload_bytes and payload_crc32 (the length and CRC-32 of everything after the header)
    mfcc      float32 (n_mfcc, frames): the whole clip's MFCCs (tiling to the model's chunks happens at load time)
    frames    the stored frames (every frame at native rate, still frames once), scaled to `short_side`, JPEG-encoded
              back to back

Every frame is kept because training draws 8 consecutive frames at a random position in each of 16 segments (in a
clip of 128 frames or more every frame can be drawn). The short side is the model's crop (112): the largest square
at any of the five crop positions is then the crop itself, with no resize at load time; in a portrait or landscape
frame the five squares overlap and cover it all, so nothing can be cut away. A still frame (within `still_tolerance`
grey levels of the last frame stored, in every 8 x 8 block) is stored once (`baselines.jpeg.distinct_frames`). What
bounds the size is a budget of `frame_bytes` JPEG bytes per frame on average over the clip
(`baselines.jpeg.encode_within`): each clip gets the highest JPEG quality from `jpeg_quality` (85) down to
`min_jpeg_quality` at which it fits. A 15 s clip at 30 fps (450 frames) then takes at most 450 x 2900 B of frames
plus 0.17 MB of MFCCs, 1.47 MB (generated talking heads stay at quality 85, about 1.05 MB; the demo's 720 x 1280
test patterns, sharp detail everywhere, drop to quality 70, about 1.37 MB; `benchmarks/baseline_loader.py`). A
reader seeks to the frames a snippet needs and decodes only those, in one batched call (libjpeg-turbo through
TorchCodec, `baselines.jpeg`). A file is valid only for the media it was made from (`media_sha256`, from the
release) and for the cache recipe (short side, JPEG qualities and budget, audio settings): anything else is rebuilt.
A cache made with another recipe (e.g. the earlier short side 128) sits in its own `<recipe>` folder and is never
read; `emotions cache` builds the current one beside it. Building runs on any `emotions_data.executor` backend
(local pool or Ray).

Files are checked where it is cheap to: opening one checks its header's checksum and the file's length (a cut
file is refused before a frame is read); the build's check (`check_clip`) also reads the payload once against its
checksum, so a damaged file (a flipped byte, a torn copy) is rebuilt, never trusted. Reading frames at training
time verifies nothing more.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch

from baselines.audio import MFCC, AudioConfig, load_waveform
from baselines.jpeg import decode_rgb, distinct_frames, encode_within, jpeg_error
from baselines.media import check_release_files, media_folder, video_stream
from emotions_data.executor import Executor
from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.probe import sha256_file
from emotions_data.storage import atomic_path, sweep_temporaries

# Version 2 added the checksums, version 3 still frames stored once (`frame_jpeg`). The version is part of the
# recipe, so files of an earlier version sit in another folder and are never read; one met here is refused by name.
FORMAT = "emotions-clip-3"
_PREAMBLE = struct.Struct("<QI")  # header length, CRC-32 of the header
_HEADER_KEYS = ("format", "recipe", "media_sha256", "n_frames", "frame_jpeg", "mfcc_shape", "offsets",
                "payload_bytes", "payload_crc32")  # fmt: skip
_CHUNK = 1 << 20
_REBUILD = "`emotions cache` rebuilds it"


@dataclass(frozen=True)
class CacheSettings:
    # The model's crop: the largest square is the crop, so loading resizes nothing. (The authors resized a 240-line
    # frame's square to 112 after cropping; resizing the whole frame first is the same up to rounding at the edges.)
    short_side: int = 112
    jpeg_quality: int = 85  # the highest quality a clip gets
    # The size budget: JPEG bytes per frame on average over a clip (a 15 s clip at 30 fps: 1.31 MB of frames, plus
    # its MFCCs, within 1.5 MB), and the lowest quality the budget may push a clip to.
    frame_bytes: int = 2900
    min_jpeg_quality: int = 10
    still_tolerance: float = 1.5  # grey levels; negative: store every frame
    audio: AudioConfig = field(default_factory=AudioConfig)

    @property
    def recipe(self) -> str:
        """Short hash of everything that changes a cache file's content."""
        return hashlib.sha256(json.dumps([FORMAT, asdict(self)], sort_keys=True).encode()).hexdigest()[:12]


class ClipError(ValueError):
    """A file that is not a complete, intact cache file; the message names the file and what is wrong with it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


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

    @property
    def _mfcc_bytes(self) -> int:
        rows, cols = self.header["mfcc_shape"]
        return rows * cols * 4

    def _read(self, f: BinaryIO, at: int, size: int) -> bytes:
        f.seek(at)
        data = f.read(size)
        if len(data) != size:  # cut since it was opened
            raise ClipError(self.path, f"truncated (ends before byte {at + size}); {_REBUILD}")
        return data

    def mfcc(self) -> torch.Tensor:
        """The whole clip's MFCCs, (n_mfcc, frames) float32. Raises `ClipError` when the file was cut."""
        rows, cols = self.header["mfcc_shape"]
        with open(self.path, "rb") as f:
            data = self._read(f, self.data_at, self._mfcc_bytes)
        return torch.from_numpy(np.frombuffer(data, dtype="<f4").reshape(rows, cols).copy())

    def frames(self, indices: np.ndarray, *, channels_last: bool = True) -> torch.Tensor:
        """The frames at `indices` (any order, repeats allowed) as (len(indices), H, W, 3) uint8, or
        (len(indices), 3, H, W) when not `channels_last` (the decoder's own layout: no transpose).

        Raises `ClipError` naming the file when a frame cannot be read or decoded (a file damaged since it was
        checked)."""
        decoded, where = self.decode(indices)
        stacked = torch.stack(decoded)
        if len(where) != len(decoded) or (where != np.arange(len(where))).any():
            stacked = stacked[torch.from_numpy(where)]
        return stacked.permute(0, 2, 3, 1) if channels_last else stacked

    def decode(self, indices: np.ndarray) -> tuple[list[torch.Tensor], np.ndarray]:
        """Each distinct stored frame of `indices` decoded once, (3, H, W) uint8 in ascending frame order (still
        frames share one), and for each of `indices` its position in that list. The reads are merged where frames
        are adjacent in the file, and the frames decoded in one batched call. Raises `ClipError` as `frames`
        does."""
        offsets = self.header["offsets"]
        frames_at = self.data_at + self._mfcc_bytes
        flat = np.asarray(indices).reshape(-1)
        wanted, first_of, where = np.unique(
            np.asarray(self.header["frame_jpeg"])[flat], return_index=True, return_inverse=True
        )
        encoded: list[torch.Tensor] = []
        with open(self.path, "rb") as f:
            for run in np.split(wanted, np.flatnonzero(np.diff(wanted) != 1) + 1):  # a snippet: one read
                first, last = int(run[0]), int(run[-1])
                data = self._read(f, frames_at + offsets[first], offsets[last + 1] - offsets[first])
                block = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                encoded += [block[offsets[i] - offsets[first] : offsets[i + 1] - offsets[first]] for i in run]
        return self._decode(encoded, flat[first_of]), where.reshape(-1)

    def _decode(self, encoded: list[torch.Tensor], frames: np.ndarray) -> list[torch.Tensor]:
        """(3, H, W) uint8 per JPEG (`frames`: a frame index that each stands for, to name it); a batch that fails
        is decoded again one by one to name the bad frame."""
        try:
            return decode_rgb(encoded)
        except RuntimeError:
            pass
        decoded = []
        for i, data in zip(frames.tolist(), encoded, strict=True):
            try:
                decoded.extend(decode_rgb([data]))
            except RuntimeError as exc:  # libjpeg's way of saying "not a JPEG (any more)"
                raise ClipError(self.path, f"frame {i} cannot be decoded ({jpeg_error(exc)}); {_REBUILD}") from None
        return decoded


def _parse_header(path: Path, f: BinaryIO) -> tuple[dict, int]:
    """The header of the open cache file `f` and where its payload starts, after the cheap checks: the header's
    checksum and the file's length. Raises `ClipError`."""
    size = os.fstat(f.fileno()).st_size
    preamble = f.read(_PREAMBLE.size)
    if len(preamble) < _PREAMBLE.size:
        raise ClipError(path, f"truncated ({size} bytes, not even the {_PREAMBLE.size}-byte preamble)")
    length, header_crc = _PREAMBLE.unpack(preamble)
    data_at = _PREAMBLE.size + length
    if data_at > size:
        raise ClipError(path, f"truncated or not a cache file ({size} bytes, header claims {length})")
    raw = f.read(length)
    if zlib.crc32(raw) != header_crc:
        raise ClipError(path, "damaged or not a cache file (header checksum mismatch)")
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ClipError(path, "not a cache file (header is not a JSON object)")
    missing = [key for key in _HEADER_KEYS if key not in header]
    if header.get("format") != FORMAT:
        raise ClipError(path, f"not an {FORMAT} cache file (format {header.get('format')!r})")
    if missing:
        raise ClipError(path, f"not an {FORMAT} cache file (header lacks {', '.join(missing)})")
    jpegs, stored = header["frame_jpeg"], len(header["offsets"]) - 1
    if not isinstance(jpegs, list) or len(jpegs) != header["n_frames"] or not all(0 <= k < stored for k in jpegs):
        raise ClipError(path, f"not an {FORMAT} cache file (frame_jpeg does not fit n_frames and offsets)")
    expected = data_at + int(header["payload_bytes"])
    if size != expected:
        what = "truncated" if size < expected else "longer than written"
        raise ClipError(path, f"{what} ({size} of {expected} bytes)")
    return header, data_at


def open_clip(path: Path) -> CachedClip:
    """Open a cache file by its header, checking the header's checksum and the file's length (not the payload's
    checksum: see `verify_clip`). Raises `ClipError` (a `ValueError`) naming the file when it is not a complete
    cache file, `OSError` when it cannot be read."""
    path = Path(path)
    with open(path, "rb") as f:
        header, data_at = _parse_header(path, f)
    return CachedClip(path, header, data_at)


def verify_clip(clip: CachedClip) -> None:
    """Read the payload of an opened cache file once against its recorded checksum; `ClipError` when it differs
    (a flipped byte, a torn copy), `OSError` when it cannot be read."""
    crc, left = 0, int(clip.header["payload_bytes"])
    with open(clip.path, "rb") as f:
        f.seek(clip.data_at)
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise ClipError(clip.path, "truncated (shorter than its header says)")
            crc, left = zlib.crc32(chunk, crc), left - len(chunk)
    if crc != clip.header["payload_crc32"]:
        raise ClipError(clip.path, "damaged (payload checksum mismatch)")


ClipState = Literal["current", "missing", "stale", "damaged"]


@dataclass(frozen=True)
class ClipCheck:
    """What `check_clip` found: `current`, `missing`, `stale` (another recipe or other media) or `damaged`
    (cut, corrupted, or not a cache file: `reason` says how)."""

    state: ClipState
    reason: str = ""


def check_clip(path: Path, media_sha256: str | None, settings: CacheSettings, *, verify: bool = True) -> ClipCheck:
    """Whether `path` holds a complete, intact cache of this media made with this recipe. With `verify` (what a
    build does) the payload is read once against its checksum; without, only the header and the length are
    checked (cheap: what a dataset does before training on a cache that was just built)."""
    try:
        clip = open_clip(path)
        if verify:
            verify_clip(clip)
    except FileNotFoundError:
        return ClipCheck("missing")
    except ClipError as exc:
        return ClipCheck("damaged", exc.reason)
    except OSError as exc:
        return ClipCheck("damaged", f"unreadable ({exc.strerror or exc})")
    header = clip.header
    if header["recipe"] != settings.recipe or (media_sha256 is not None and header["media_sha256"] != media_sha256):
        return ClipCheck("stale", "made from other media or with another recipe")
    return ClipCheck("current")


def cache_folder(release_dir: Path, settings: CacheSettings) -> Path:
    """`DATASET/cache/baseline/<recipe>/`: next to the media the cache is made from, one folder per recipe."""
    return DatasetLayout.of_release(release_dir).baseline_cache / settings.recipe


def is_current(path: Path, media_sha256: str | None, settings: CacheSettings, *, verify: bool = True) -> bool:
    """Whether `path` holds a complete, intact cache of this media made with this recipe (see `check_clip`)."""
    return check_clip(path, media_sha256, settings, verify=verify).state == "current"


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) of a `width` x `height` frame scaled so its short side is `short_side` (even sides)."""
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
    width, height = scaled_size(stream.width, stream.height, settings.short_side)
    frames = _frames_of(media, width, height)
    with torch.no_grad():
        mfcc = MFCC(settings.audio)(load_waveform(media, settings.audio.sample_rate)).numpy()
    return write_cache_file(out, frames, mfcc, settings, media_sha256)


def write_cache_file(
    out: Path, frames: Iterable[np.ndarray], mfcc: np.ndarray, settings: CacheSettings, media_sha256: str = ""
) -> Path:
    """Write a cache file from frames already at the cache's size ((H, W, 3) uint8 each, short side
    `settings.short_side`) and the clip's MFCCs ((n_mfcc, frames) float), atomically, the frames as JPEGs within
    the recipe's size budget (`settings.frame_bytes` per frame on average; the quality used goes into the header).
    `write_clip` calls it with decoded media; a benchmark or a test can call it with frames it made. The frames are
    held in memory until encoded (a 15 s clip at short side 112: about 30 MB). Returns `out`; `ValueError` when
    there are no frames, `OSError` when writing fails."""
    frames = list(frames)
    if not frames:
        raise ValueError(f"{out}: no frames decoded")
    height, width = frames[-1].shape[:2]
    budget = settings.frame_bytes * len(frames)  # per frame of the clip: still frames leave more to the others
    stored, frame_jpeg = distinct_frames(frames, settings.still_tolerance)
    chunks, quality = encode_within(stored, budget, settings.jpeg_quality, settings.min_jpeg_quality)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).tolist()
    mfcc_bytes = np.ascontiguousarray(mfcc, dtype="<f4").tobytes()
    payload_crc = zlib.crc32(mfcc_bytes)
    for chunk in chunks:
        payload_crc = zlib.crc32(chunk, payload_crc)
    header = {"format": FORMAT, "recipe": settings.recipe, "media_sha256": media_sha256, "n_frames": len(frames),
              "frame_jpeg": frame_jpeg, "height": height, "width": width, "jpeg_quality": quality,
              "mfcc_shape": list(np.shape(mfcc)), "offsets": offsets, "payload_bytes": len(mfcc_bytes) + offsets[-1],
              "payload_crc32": payload_crc}  # fmt: skip
    head = json.dumps(header).encode()
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            f.write(_PREAMBLE.pack(len(head), zlib.crc32(head)))
            f.write(head)
            f.write(mfcc_bytes)
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
    damaged: str = ""  # for a rebuilt file: what was wrong with the one it replaced ("file: reason")


def changed_media(media: Path, media_sha256: str) -> str:
    """Why `media` may not be cached under its video id: "" when its bytes hash to `media_sha256` (the release's
    record of it), else one line naming the file. Raises `OSError` when it cannot be read."""
    if not media_sha256 or sha256_file(media) == media_sha256:
        return ""
    return (f"{media}: its bytes no longer match the media_sha256 the release records ({media_sha256[:12]}...); "
            "it was changed or replaced after ingest, so it is not cached: restore it, or ingest it again")  # fmt: skip


def run_cache_job(job: CacheJob) -> list[CacheResult]:
    """Worker side: build every missing, stale or damaged file of the shard; one video's failure does not stop
    the rest. A media file is hashed before it is decoded: one that no longer matches the release's
    `media_sha256` fails (named), and is never cached under its video id."""
    torch.set_num_threads(1)  # workers run in parallel; nested intra-op threads only contend
    results = []
    for video_id, media, sha in job.items:
        out = Path(job.cache_dir) / f"{video_id}.clip"
        check = check_clip(out, sha, job.settings)
        if check.state == "current":
            results.append(CacheResult(video_id, "current"))
            continue
        damaged = f"{out}: {check.reason}" if check.state == "damaged" else ""
        try:
            if changed := changed_media(Path(media), sha):
                results.append(CacheResult(video_id, "failed", changed, damaged))
                continue
            write_clip(Path(media), out, job.settings, sha)
            results.append(CacheResult(video_id, "built", damaged=damaged))
        except (OSError, ValueError) as exc:
            results.append(CacheResult(video_id, "failed", str(exc).splitlines()[0], damaged))
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
    damaged: list[CacheResult] = field(default_factory=list)  # files found damaged (and rebuilt, unless failed)
    swept: int = 0  # temporaries of interrupted builds removed


@contextmanager
def _build_lock(cache_dir: Path) -> Iterator[None]:
    """Hold the cache folder's build lock. A second build of the same folder waits for the first (then finds its
    files current) rather than fail: `train` and `evaluate` build the cache too, and may well start together."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process is killed


def build_release_cache(
    release_dir: Path, settings: CacheSettings, executor: Executor, *, variant: str | None = None,
    splits: Sequence[str] | None = None, cache_dir: Path | None = None, media_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None, check_files: bool = True,
) -> CacheReport:  # fmt: skip
    """Cache the videos of a release (all variants and splits, or those named), on `executor` (an
    `emotions_data.executor` backend: local pool, serial or Ray). Current files are kept, so an interrupted build
    resumes: its temporaries are swept first, and missing, stale or damaged files (checked against their
    checksums) are rebuilt; `CacheReport.damaged` names the damaged ones.

    Raises `ValueError` when the release has no videos there or a file of it that is read here no longer matches
    its `SHA256SUMS` (`check_release_files`; `check_files=False` only for a release-shaped working folder that
    the caller has just written itself), `OSError` when the cache folder cannot be made or locked, and what the
    executor raises."""
    release_dir = Path(release_dir)
    if check_files:
        check_release_files(release_dir, variant, splits)
    cache_dir = Path(cache_dir) if cache_dir else cache_folder(release_dir, settings)
    media_dir = Path(media_dir) if media_dir else media_folder(release_dir)
    items: dict[str, tuple[str, str, str]] = {}
    import pyarrow.parquet as pq

    for path in ReleaseLayout(release_dir).data_files(variant):
        if splits is not None and path.stem not in splits:
            continue
        table = pq.read_table(path, columns=["video_id", "media_sha256"]).to_pylist()
        for row in table:
            items[row["video_id"]] = (row["video_id"], str(media_dir / f"{row['video_id']}.mp4"), row["media_sha256"])
    if not items:
        raise ValueError(f"{release_dir}: no videos in data/{variant or '*'}/{'|'.join(splits or ['*'])}.parquet")
    report = CacheReport(cache_dir)
    with _build_lock(cache_dir):
        # Under the lock no other build is writing here, so every temporary is a killed build's leftover.
        report.swept = sweep_temporaries(cache_dir)
        done = 0
        if progress:
            progress("cache", 0, len(items))
        for results in executor.map_unordered(run_cache_job, cache_jobs(sorted(items.values()), cache_dir, settings)):
            for result in results:
                if result.damaged:
                    report.damaged.append(result)
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

"""Facts about a media file from ffprobe, as displayed (rotation and sample aspect ratio applied).

Every ffprobe run of the toolkit goes through :func:`run_ffprobe`, so all share one timeout and one error type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

FFPROBE_TIMEOUT_S = 120


class ProbeError(RuntimeError):
    """ffprobe could not read the file: it is missing, empty, truncated or not media."""


@dataclass(frozen=True)
class ProbeFacts:
    size_bytes: int
    container: str | None
    duration_s: float | None
    has_video: bool
    width: int | None  # displayed width
    height: int | None  # displayed height
    rotation: int  # display rotation as ffprobe reports it, 0/90/180/270; 90 and 270 swap the sides
    fps: float | None
    vfr: bool
    video_codec: str | None
    color_transfer: str | None  # ffprobe's names: smpte2084 (PQ) and arib-std-b67 (HLG) are HDR
    color_primaries: str | None
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_codec: str | None
    audio_duration_s: float | None
    video_duration_s: float | None
    bit_rate: int | None
    audio_tracks: int = 0  # how many audio tracks the file has
    audio_track: int | None = None  # the one kept (`played_audio_track`), 0-based among them; its facts are above

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _rate(text: str | None) -> float | None:
    try:
        value = Fraction(text) if text else None
    except (ValueError, ZeroDivisionError):
        return None
    return float(value) if value else None


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _rotation(stream: dict) -> int:
    degrees = 0.0
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            degrees = float(side["rotation"])
    if not degrees and "rotate" in stream.get("tags", {}):
        degrees = float(stream["tags"]["rotate"])
    return round(degrees / 90.0) * 90 % 360


def _is_vfr(r_rate: float | None, avg_rate: float | None) -> bool:
    """ffprobe's r_frame_rate is the timebase-implied rate; a lower average means frames are
    missing or unevenly spaced, which is what browsers and frame samplers trip over."""
    if not r_rate or not avg_rate:
        return False
    return abs(r_rate - avg_rate) / r_rate > 0.01


FULL_PROBE = ("-show_format", "-show_streams")


def ffprobe_command(path: Path, args: Sequence[str] = FULL_PROBE) -> list[str]:
    """The ffprobe argv that prints, as JSON, what `args` ask for about `path` (by default its format and every
    stream)."""
    return ["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)]


def run_ffprobe(path: Path, args: Sequence[str] = FULL_PROBE) -> dict:
    """Run :func:`ffprobe_command` and return its parsed JSON (``{}`` when ffprobe prints nothing).

    Raises `ProbeError` when ffprobe fails (its last error line, the path shown as ``<file>``) or runs longer than
    `FFPROBE_TIMEOUT_S` seconds, `FileNotFoundError` when ffprobe is not installed.
    """
    cmd = ffprobe_command(path, args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"ffprobe timed out after {FFPROBE_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise ProbeError(message.replace(f"{path}: ", "").replace(str(path), "<file>"))
    return json.loads(proc.stdout or "{}")


def played_audio_track(audio_streams: Sequence[dict]) -> int | None:
    """Pure: which of a file's audio streams (ffprobe's, in file order) a player plays: the first whose disposition
    is default, else the first (the rule of ffmpeg's own stream selection and of the players that follow the
    container's default flag: an iPhone's spatial audio or a commentary track sits beside the default one). None
    when there is none."""
    if not audio_streams:
        return None
    return next((i for i, s in enumerate(audio_streams) if s.get("disposition", {}).get("default")), 0)


def facts_from_ffprobe(data: dict, size_bytes: int) -> ProbeFacts:
    """Pure: ffprobe's JSON to ProbeFacts."""
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    audio_track = played_audio_track(audio_streams)
    audio = audio_streams[audio_track] if audio_track is not None else None
    if not fmt and not streams:
        raise ProbeError("no streams found")

    width = height = None
    rotation = 0
    fps = None
    vfr = False
    if video is not None:
        width, height = video.get("width"), video.get("height")
        sar = _rate(video.get("sample_aspect_ratio", "1:1").replace(":", "/")) or 1.0
        if width and height and abs(sar - 1.0) > 1e-3:
            width = round(width * sar / 2) * 2
        rotation = _rotation(video)
        if rotation in (90, 270) and width and height:
            width, height = height, width
        r_rate, avg_rate = _rate(video.get("r_frame_rate")), _rate(video.get("avg_frame_rate"))
        fps = avg_rate or r_rate
        vfr = _is_vfr(r_rate, avg_rate)

    video_duration = _float(video.get("duration")) if video else None
    audio_duration = _float(audio.get("duration")) if audio else None
    duration = _float(fmt.get("duration")) or video_duration or audio_duration
    return ProbeFacts(
        size_bytes=size_bytes,
        container=fmt.get("format_name"),
        duration_s=duration,
        has_video=video is not None,
        width=width,
        height=height,
        rotation=rotation,
        fps=round(fps, 6) if fps else None,
        vfr=vfr,
        video_codec=video.get("codec_name") if video else None,
        color_transfer=video.get("color_transfer") if video else None,
        color_primaries=video.get("color_primaries") if video else None,
        has_audio=audio is not None,
        audio_sample_rate=int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
        audio_channels=audio.get("channels") if audio else None,
        audio_codec=audio.get("codec_name") if audio else None,
        audio_duration_s=audio_duration,
        video_duration_s=video_duration,
        bit_rate=int(fmt["bit_rate"]) if fmt.get("bit_rate") else None,
        audio_tracks=len(audio_streams),
        audio_track=audio_track,
    )


PACKET_PROBE = ("-show_entries", "packet=stream_index,pts_time,duration_time")


def with_packet_durations(data: dict, packets: dict) -> dict:
    """Pure: ffprobe's format/streams JSON with the durations its headers lack measured from the packets (each
    stream's last presentation time plus that packet's duration, relative to its first), e.g. a WebM written to a
    pipe, whose header could not be rewritten with a duration. Durations the headers give are kept."""
    first: dict[int, float] = {}
    end: dict[int, float] = {}
    for packet in packets.get("packets", []):
        pts = _float(packet.get("pts_time"))
        if pts is None or "stream_index" not in packet:
            continue
        index = int(packet["stream_index"])
        first[index] = min(first.get(index, pts), pts)
        end[index] = max(end.get(index, pts), pts + (_float(packet.get("duration_time")) or 0.0))
    streams = [dict(s) for s in data.get("streams", [])]
    for stream in streams:
        index = stream.get("index")
        if _float(stream.get("duration")) is None and index in end:
            stream["duration"] = str(round(end[index] - first[index], 6))
    fmt = dict(data.get("format", {}))
    measured = [float(s["duration"]) for s in streams if _float(s.get("duration")) is not None]
    if _float(fmt.get("duration")) is None and measured:
        fmt["duration"] = str(max(measured))
    return {**data, "format": fmt, "streams": streams}


#: Containers whose timestamps may jump inside one file: MPEG-TS and MPEG-PS (a recording joined from parts, a
#: broadcast capture with a discontinuity), FLV. ffmpeg's demuxers flag these formats as discontinuous and ffmpeg
#: re-times the jumps away when it decodes, so their content is as long as their packets, not as their timestamps' span.
DISCONTINUOUS_FORMATS = frozenset({"mpegts", "mpeg", "flv"})
_JUMP_TOLERANCE_S = 0.5


def with_content_durations(data: dict, packets: dict) -> dict:
    """Pure: ffprobe's format/streams JSON with each stream's duration replaced by the sum of its packets' durations
    where that differs from the stated one (the span of its timestamps) by more than half a second and 5 %: the
    timestamps jumped (forward: the span overstates the content, which was then judged truncated; backward, a
    second part starting again from zero: the span understates it, and the second part was cut off). The format's
    duration becomes the longest stream's. Streams with a packet of unknown duration keep what was stated."""
    total: dict[int, float] = {}
    unknown: set[int] = set()
    for packet in packets.get("packets", []):
        if "stream_index" not in packet:
            continue
        index = int(packet["stream_index"])
        length = _float(packet.get("duration_time"))
        if length is None:
            unknown.add(index)
        else:
            total[index] = total.get(index, 0.0) + length
    streams = [dict(s) for s in data.get("streams", [])]
    changed = False
    for stream in streams:
        index = stream.get("index")
        stated = _float(stream.get("duration"))
        if index in unknown or index not in total or stated is None:
            continue
        content = total[index]
        if abs(content - stated) > max(_JUMP_TOLERANCE_S, 0.05 * max(content, stated)):
            stream["duration"] = str(round(content, 6))
            changed = True
    if not changed:
        return data
    fmt = dict(data.get("format", {}))
    fmt["duration"] = str(max(float(s["duration"]) for s in streams if _float(s.get("duration")) is not None))
    return {**data, "format": fmt, "streams": streams}


def peak_rate(pts: Sequence[float], window: int = 15) -> float | None:
    """Pure: the frame rate of the fastest stretch of a video's presentation times (seconds, any order): the
    most frames per second over `window` consecutive frame intervals, so one short gap (a duplicated timestamp,
    jitter) does not count as a burst. None with fewer than two frames."""
    times = np.unique(np.asarray([t for t in pts if t == t], dtype=np.float64))
    if len(times) < 2:
        return None
    span = min(window, len(times) - 1)
    widths = times[span:] - times[:-span]
    widths = widths[widths > 0]
    return float(span / widths.min()) if len(widths) else None


def typical_rate(pts: Sequence[float]) -> float | None:
    """Pure: the frame rate of a video's most common frame interval (the median interval of its presentation times,
    seconds, any order): what a constant-rate source runs at whatever its container states (a fragmented MP4's
    average rate is computed over a duration that counts one frame too many or too few). None with fewer than two
    frames."""
    times = np.unique(np.asarray([t for t in pts if t == t], dtype=np.float64))
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    return float(1.0 / np.median(gaps)) if len(gaps) else None


def _video_pts(path: Path) -> list[float]:
    data = run_ffprobe(path, ("-select_streams", "v:0", "-show_entries", "packet=pts_time"))
    return [t for p in data.get("packets", []) if (t := _float(p.get("pts_time"))) is not None]


def peak_frame_rate(path: Path) -> float | None:
    """The peak frame rate (`peak_rate`) of `path`'s first video stream, from its packets' timestamps (no
    decoding). Raises ProbeError like `run_ffprobe`."""
    return peak_rate(_video_pts(path))


def frame_rates(path: Path) -> tuple[float | None, float | None]:
    """(typical, peak) frame rates (`typical_rate`, `peak_rate`) of `path`'s first video stream, from one read of its
    packets' timestamps (no decoding). Raises ProbeError like `run_ffprobe`."""
    pts = _video_pts(path)
    return typical_rate(pts), peak_rate(pts)


def probe_file(path: Path) -> ProbeFacts:
    """Probe one file; raises ProbeError when it is not readable media. When the container or a stream states no
    duration, it is measured from the packets (no decoding); so is the content of a format whose timestamps may
    jump (`with_content_durations`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProbeError(f"cannot read file: {exc.strerror}") from exc
    if size == 0:
        raise ProbeError("empty file (0 bytes)")
    data = run_ffprobe(path)
    stated = [data.get("format", {}).get("duration")]
    stated += [s.get("duration") for s in data.get("streams", []) if s.get("codec_type") in ("video", "audio")]
    packets = None
    if any(_float(value) is None for value in stated):
        packets = run_ffprobe(path, PACKET_PROBE)
        data = with_packet_durations(data, packets)
    if set(str(data.get("format", {}).get("format_name", "")).split(",")) & DISCONTINUOUS_FORMATS:
        data = with_content_durations(data, packets or run_ffprobe(path, PACKET_PROBE))
    return facts_from_ffprobe(data, size)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()

"""Transcode one video to the browser-safe target and fingerprint it in the same decoding pass.

One ffmpeg process decodes the source once (ffmpeg applies rotation metadata while decoding, so
the output is upright and carries no rotation), encodes the MP4 and, through further branches of the
filter graph, writes small grey thumbnails to stdout and the output's sound, mono at `fp.AUDIO_RATE` Hz, to a
temporary file: what the fingerprint is made of.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from emotions_data import fingerprint as fp
from emotions_data.faults import as_local_fault, local_fault_in_text
from emotions_data.probe import ProbeError, frame_rates, probe_file, sha256_file
from emotions_data.settings import FilterSettings, NormaliseSettings
from emotions_data.storage import commit_file, temp_path_for


class NormaliseError(RuntimeError):
    """The item's media could not be made: `corrupt` when the source cannot be decoded (vs. a failure worth
    retrying). Plain values only, so it pickles."""

    def __init__(self, message: str, corrupt: bool) -> None:
        super().__init__(message, corrupt)
        self.message = message
        self.corrupt = corrupt

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class SourceVideo:
    """The probed facts of a source that decide its transcode."""

    width: int  # as displayed
    height: int
    fps: float | None
    duration_s: float  # of the video stream: the output is cut to exactly this
    has_audio: bool
    vfr: bool = False
    peak_fps: float | None = None  # a variable-rate source's fastest stretch (probe.frame_rates)
    typical_fps: float | None = None  # the rate of its median frame interval (probe.frame_rates)
    transfer: str | None = None  # colour transfer (ffprobe's name); HDR ones are tone-mapped
    primaries: str | None = None
    audio_track: int = 0  # the audio track to keep, 0-based among the file's (probe.played_audio_track)


@dataclass(frozen=True)
class NormalisedMedia:
    sha256: str
    duration_s: float
    width: int
    height: int
    fps: float
    fingerprint: str
    fps_reason: str = ""  # why the media has that rate (`choose_fps`)


def recipe_id(settings: NormaliseSettings, fingerprint_version: str = fp.VERSION) -> str:
    """Changes whenever the output would change, so a re-run with new settings redoes the media. The fingerprint's
    version is part of it: media made with the same settings under an older version (`older_recipes`) are kept and
    only fingerprinted again."""
    blob = json.dumps({"normalise": asdict(settings), "fingerprint": fingerprint_version}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def older_recipes(settings: NormaliseSettings) -> set[str]:
    """The recipes of media made with these settings by an older fingerprint version (`fp.READABLE`): the same
    media, an older fingerprint."""
    return {recipe_id(settings, version) for version in fp.READABLE if version != fp.VERSION}


def target_size(width: int, height: int, max_short_side: int) -> tuple[int, int]:
    """Downscale so the short side is at most `max_short_side`; keep the aspect ratio; even sides."""
    scale = min(1.0, max_short_side / min(width, height))
    out_w, out_h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    cap = max(2, max_short_side // 2 * 2)  # rounding to even must not push the short side over an odd cap
    if width <= height:
        out_w = min(out_w, cap)
    if height <= width:
        out_h = min(out_h, cap)
    return out_w, out_h


#: Constant rates cameras, phones and platforms record and serve video at (NTSC ones exact), from 10 fps (screen
#: recordings, low-light phone video) to 60: a measured rate close to one of them is that rate.
PLAUSIBLE_RATES = tuple(
    Fraction(n, d)
    for n, d in ((10, 1), (12, 1), (25, 2), (15000, 1001), (15, 1), (20, 1), (24000, 1001), (24, 1), (25, 1),
                 (30000, 1001), (30, 1), (50, 1), (60000, 1001), (60, 1))
)  # fmt: skip
_CONSTANT_TOLERANCE = 0.01  # a median frame interval within 1 % of a plausible rate's is that rate
_STATED_TOLERANCE = 0.001  # a stated average further than this from every plausible rate is measured
_BURST_TOLERANCE = 1.05  # a fastest stretch up to 5 % faster than that is timestamp jitter, not a burst


def _fps_text(rate: Fraction | float) -> str:
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def plausible_rate(fps: float | None, tolerance: float = _CONSTANT_TOLERANCE) -> Fraction | None:
    """The `PLAUSIBLE_RATES` entry nearest `fps` when within `tolerance` (a fraction of it), else None."""
    if not fps or fps <= 0:
        return None
    nearest = min(PLAUSIBLE_RATES, key=lambda r: abs(float(r) - fps))
    return nearest if abs(float(nearest) - fps) <= tolerance * fps else None


def choose_fps(
    fps: float | None,
    max_fps: float,
    vfr: bool = False,
    peak_fps: float | None = None,
    typical_fps: float | None = None,
) -> tuple[Fraction, str]:
    """(the media's frame rate, why) for a source whose average rate is `fps` (ffprobe's), capped at `max_fps`.

    * Unknown: 25.
    * A source whose frames are evenly spaced at a plausible rate (`typical_fps`, the median interval's rate, within
      1 % of one of `PLAUSIBLE_RATES`, and no stretch more than 5 % faster) keeps that rate, whatever its container
      states: a fragmented MP4 at 15 fps (whose average is computed over one frame too many) stays 15, a phone's
      12 fps clip with jittered timestamps stays 12; raising either would only add duplicated frames. Measured only
      for a variable-rate source or an average more than 0.1 % from every plausible rate.
    * Another variable-rate source gets the nearest plausible rate at or above its peak rate (its average when the
      peak is unknown or lower), so its fastest stretch keeps every frame: 2 s at 30 fps then 10 fps averages under
      24 fps, and encoding it at 23.976 would drop a fifth of the fast part. Timestamps measure a rate to about half
      a percent, which cannot tell 29.97 from 30: of the rates that close, the higher is taken (a duplicated frame,
      never a dropped one).
    * Any other source keeps its average rate (NTSC rates kept exact)."""
    cap = Fraction(max_fps).limit_denominator(1001)
    if not fps or fps <= 0:
        return min(Fraction(25), cap), "source rate unknown: 25 fps" + (" capped" if cap < 25 else "")
    rate = Fraction(fps).limit_denominator(1001)
    constant = plausible_rate(typical_fps) if vfr or plausible_rate(fps, _STATED_TOLERANCE) is None else None
    if constant is not None and (not peak_fps or peak_fps <= float(constant) * _BURST_TOLERANCE):
        rate = constant
        why = (
            f"constant {_fps_text(rate)} fps: the interval of most of its frames, from their timestamps "
            f"(the stated average is {_fps_text(fps)} fps)"
        )
    elif vfr:
        measured = Fraction(peak_fps).limit_denominator(1001) if peak_fps and peak_fps > fps else rate
        low, high = measured * Fraction(995, 1000), measured * Fraction(1005, 1000)
        above = [r for r in PLAUSIBLE_RATES if r >= low]
        near = [r for r in above if r <= high]
        rate = max(near) if near else above[0] if above else measured
        why = f"variable rate: the nearest plausible rate at or above its fastest stretch ({_fps_text(measured)} fps)"
    else:
        why = "the source's own rate"
    if rate > cap:
        return cap, f"{why}, capped at {_fps_text(cap)} fps (normalise.max_fps)"
    return rate, why


def target_fps(
    fps: float | None,
    max_fps: float,
    vfr: bool = False,
    peak_fps: float | None = None,
    typical_fps: float | None = None,
) -> Fraction:
    """The media's frame rate: :func:`choose_fps` without its reason."""
    return choose_fps(fps, max_fps, vfr, peak_fps, typical_fps)[0]


def thumbnail_rate(duration_s: float) -> float:
    """Enough thumbnails to pick `fp.N_FRAMES` evenly spaced ones, without decoding work to spare."""
    return min(8.0, max(1.0, 2 * fp.N_FRAMES / max(duration_s, 0.1)))


#: HDR transfer functions (ffprobe's names): PQ (SMPTE ST 2084) and HLG (ARIB STD-B67).
HDR_TRANSFERS = ("smpte2084", "arib-std-b67")
# zscale's names for the source primaries it converts from; anything else is taken as BT.2020, which HDR uses.
_ZSCALE_PRIMARIES = {"bt2020": "2020", "bt709": "709", "smpte432": "smpte432", "smpte431": "smpte431"}


def tone_map_filter(transfer: str | None, primaries: str | None) -> str:
    """The filter chain that turns an HDR picture into BT.709 SDR ("" for any other transfer): linear light from
    the source's transfer (explicit, since tags can be missing from the decoded frames), BT.709 primaries, Hable's
    filmic curve with the common 100-nit reference, then the BT.709 transfer and matrix in limited range, 8-bit.
    The recipe of the widely used zscale + tonemap chain (ffmpeg's filter documentation)."""
    if transfer not in HDR_TRANSFERS:
        return ""
    pin = _ZSCALE_PRIMARIES.get(primaries or "", "2020")
    return (
        f"zscale=tin={transfer}:pin={pin}:t=linear:npl=100,format=gbrpf32le,zscale=p=709,"
        "tonemap=tonemap=hable:desat=0,zscale=t=709:m=709:r=tv,format=yuv420p,"
    )


def build_command(
    src: Path,
    dst: Path,
    source: SourceVideo,
    settings: NormaliseSettings,
    *,
    with_thumbnails: bool = True,
    sound_path: Path | None = None,
) -> list[str]:
    """The ffmpeg argv. Without thumbnails it is the plain transcode (the benchmark's reference). An HDR source is
    tone-mapped to BT.709 SDR and its output tagged so (`tone_map_filter`). With thumbnails, the grey thumbnails go
    to stdout and, given `sound_path`, the output's sound as mono 16-bit PCM at `fp.AUDIO_RATE` Hz to that file:
    what the fingerprint is made of."""
    out_w, out_h = target_size(source.width, source.height, settings.max_short_side)
    rate = target_fps(source.fps, settings.max_fps, source.vfr, source.peak_fps, source.typical_fps)
    duration_s = source.duration_s
    tone_map = tone_map_filter(source.transfer, source.primaries)
    video = f"[0:v:0]{tone_map}scale={out_w}:{out_h}:flags=bicubic,setsar=1,fps={rate.numerator}/{rate.denominator}"
    if with_thumbnails:
        size = fp.FRAME_SIZE
        video += (
            f",split=2[v][t];[t]fps={thumbnail_rate(duration_s):.4f},scale={size}:{size}:flags=area,format=gray[thumbs]"
        )
    else:
        video += "[v]"
    audio_in = f"0:a:{source.audio_track}" if source.has_audio else "1:a"
    # apad + an explicit output duration make the audio exactly as long as the video.
    graph = f"{video};[{audio_in}]aresample={settings.audio_sample_rate},apad[a]"
    sound = with_thumbnails and sound_path is not None
    if sound:
        graph = (
            graph[: -len("[a]")]
            + f",asplit=2[a][s];[s]aresample={fp.AUDIO_RATE},aformat=sample_fmts=s16:channel_layouts=mono[sound]"
        )
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(src)]
    if not source.has_audio:
        cmd += ["-f", "lavfi", "-i", f"anullsrc=r={settings.audio_sample_rate}:cl=stereo"]
    cmd += ["-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-t", f"{duration_s:.6f}"]
    if settings.threads_per_job:
        cmd += ["-threads", str(settings.threads_per_job)]
    cmd += [
        "-c:v", "libx264", "-preset", settings.preset, "-crf", str(settings.crf),
        "-pix_fmt", "yuv420p", "-profile:v", "high", "-fps_mode", "cfr",
        "-c:a", "aac", "-b:a", settings.audio_bitrate, "-ac", "2",
    ]  # fmt: skip
    if tone_map:
        cmd += ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]
    cmd += ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(dst)]
    if with_thumbnails:
        cmd += ["-map", "[thumbs]", "-f", "rawvideo", "pipe:1"]
    if sound:
        cmd += ["-map", "[sound]", "-t", f"{duration_s:.6f}", "-f", "s16le", str(sound_path)]
    return cmd


def _last_error_line(stderr: bytes, src: Path) -> str:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return (lines[-1] if lines else "ffmpeg failed").replace(str(src), "<file>")[:300]


def normalise(
    src: Path, dst: Path, source: SourceVideo, settings: NormaliseSettings, filters: FilterSettings
) -> NormalisedMedia:
    """Transcode `src` to `dst` atomically and fingerprint it.

    Raises NormaliseError for a failure of the item, `LocalFault` when this machine cannot store the output
    (full disk, read-only or unwritable folder: what ffmpeg prints is read for it too)."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise as_local_fault(exc, dst.parent) from None
    tmp = temp_path_for(dst)
    duration_s = source.duration_s
    stated_rate_doubtful = source.vfr or plausible_rate(source.fps, _STATED_TOLERANCE) is None
    if stated_rate_doubtful and source.fps and source.typical_fps is None:
        try:
            typical, peak = frame_rates(src)
            source = replace(source, typical_fps=typical, peak_fps=source.peak_fps or peak)
        except ProbeError:
            pass  # the average then decides, as for a source whose timestamps cannot be read
    _, fps_reason = choose_fps(source.fps, settings.max_fps, source.vfr, source.peak_fps, source.typical_fps)
    sound_tmp = tmp.with_name(tmp.name + ".pcm")
    cmd = build_command(src, tmp, source, settings, sound_path=sound_tmp)
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=120 + 20 * duration_s)
        except subprocess.TimeoutExpired as exc:
            raise NormaliseError("ffmpeg timed out", corrupt=False) from exc
        if proc.returncode != 0 or not tmp.exists():
            stderr = proc.stderr.decode(errors="replace")
            fault = local_fault_in_text(stderr, dst.parent, ours=[dst.parent])
            if fault is not None:
                raise fault
            raise NormaliseError(f"cannot decode: {_last_error_line(proc.stderr, src)}", corrupt=True)
        frame_bytes = fp.FRAME_SIZE * fp.FRAME_SIZE
        n_thumbs = len(proc.stdout) // frame_bytes
        if n_thumbs == 0:
            raise NormaliseError("cannot decode: no video frame decoded", corrupt=True)
        thumbs = np.frombuffer(proc.stdout[: n_thumbs * frame_bytes], np.uint8)
        thumbs = thumbs.reshape(n_thumbs, fp.FRAME_SIZE, fp.FRAME_SIZE)
        sound = None  # a source without sound, or an output whose sound branch wrote nothing: no sound to compare
        if source.has_audio and sound_tmp.exists():
            sound = np.fromfile(sound_tmp, np.int16).astype(np.float32) / 32768.0
        try:
            out = probe_file(tmp)
        except ProbeError as exc:
            raise NormaliseError(f"output unreadable: {exc}", corrupt=False) from exc
        decoded = out.video_duration_s or 0.0
        if decoded < filters.min_decoded_fraction * duration_s:
            raise NormaliseError(f"truncated: decoded {decoded:.2f} s of the declared {duration_s:.2f} s", corrupt=True)
        media = NormalisedMedia(
            sha256=sha256_file(tmp),
            duration_s=round(out.duration_s or decoded, 6),
            width=out.width or 0,
            height=out.height or 0,
            fps=out.fps or 0.0,
            fingerprint=fp.fingerprint_clip(thumbs, sound),
            fps_reason=fps_reason,
        )
        commit_file(tmp, dst)
        return media
    except OSError as exc:  # on our own temporary or media file (a missing ffmpeg is reported as such)
        raise as_local_fault(exc, dst.parent) from None
    finally:
        tmp.unlink(missing_ok=True)
        sound_tmp.unlink(missing_ok=True)


def fingerprint_file(path: Path, duration_s: float, has_audio: bool, tone_map: str = "", audio_track: int = 0) -> str:
    """The fingerprint (`fp.fingerprint_clip`) of a file's own picture and sound, decoded again: what upgrades an
    older fingerprint without a transcode. The thumbnails and the sound go through the same filters as in
    `normalise` (the normalising pass takes them before encoding, so a normalised file's fingerprint made here
    differs from its pass's by the encoding's loss: docs/lead/duplicates.md). `duration_s` (the file's length) sets the
    thumbnail rate; `has_audio` False: no sound to compare; `tone_map`: `tone_map_filter` for an HDR original;
    `audio_track`: the original's track the media kept (0-based among its audio tracks).

    Raises NormaliseError (corrupt=False) when the file cannot be decoded, `LocalFault` when the temporary sound
    file cannot be written."""
    size = fp.FRAME_SIZE
    graph = f"[0:v:0]{tone_map}fps={thumbnail_rate(duration_s):.4f},scale={size}:{size}:flags=area,format=gray[thumbs]"
    with tempfile.TemporaryDirectory(prefix="emotions-fingerprint-") as folder:
        sound_path = Path(folder) / "sound.pcm"
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(path)]
        if has_audio:
            sound = f"aresample={fp.AUDIO_RATE},aformat=sample_fmts=s16:channel_layouts=mono"
            graph += f";[0:a:{audio_track}]{sound}[sound]"
        cmd += ["-filter_complex", graph, "-map", "[thumbs]", "-f", "rawvideo", "pipe:1"]
        if has_audio:
            cmd += ["-map", "[sound]", "-f", "s16le", str(sound_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=120 + 5 * duration_s)
        except subprocess.TimeoutExpired as exc:
            raise NormaliseError("ffmpeg timed out", corrupt=False) from exc
        except OSError as exc:
            raise as_local_fault(exc, Path(folder)) from None
        frame_bytes = size * size
        n_thumbs = len(proc.stdout) // frame_bytes
        if proc.returncode != 0 or n_thumbs == 0:
            raise NormaliseError(f"cannot decode {path.name}: {_last_error_line(proc.stderr, path)}", corrupt=False)
        thumbs = np.frombuffer(proc.stdout[: n_thumbs * frame_bytes], np.uint8).reshape(n_thumbs, size, size)
        sound = None
        if has_audio and sound_path.exists():
            sound = np.fromfile(sound_path, np.int16).astype(np.float32) / 32768.0
    return fp.fingerprint_clip(thumbs, sound)

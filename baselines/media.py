"""A release's media and files: where the videos are, the facts of their video stream that decoding needs, and
whether the release files a stage reads still match the release's own checksums.

Media are not part of a release: they live in the dataset folder the release came from
(`DATASET/releases/X.Y.Z/` -> `DATASET/media/<video_id>.mp4`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.probe import ProbeError, run_ffprobe, sha256_file
from emotions_data.release_ledger import listed_digests

_STREAM_ENTRIES = "stream=nb_frames,duration,r_frame_rate,width,height"


@dataclass(frozen=True)
class VideoStream:
    """Frame count and coded size (pixels) of a video stream."""

    n_frames: int
    width: int
    height: int


def video_stream(path: Path) -> VideoStream:
    """Frame count and size of the first video stream, in one ffprobe call (the normalised MP4s are constant
    frame rate and carry their frame count; otherwise it is duration times frame rate, rounded).

    Raises `ValueError` naming `path` when ffprobe cannot read it or it has no video stream.
    """
    try:
        data = run_ffprobe(path, ["-select_streams", "v:0", "-show_entries", _STREAM_ENTRIES])
    except ProbeError as err:
        raise ValueError(f"{path}: cannot probe: {err}") from None
    streams = data.get("streams")
    if not streams or not streams[0].get("width"):
        raise ValueError(f"{path}: cannot probe: no video stream")
    stream = streams[0]
    if str(stream.get("nb_frames", "")).isdigit():
        n_frames = int(stream["nb_frames"])
    else:
        num, _, den = str(stream.get("r_frame_rate", "0/1")).partition("/")
        n_frames = round(float(stream.get("duration", 0)) * float(num) / float(den or 1))
    return VideoStream(n_frames, int(stream["width"]), int(stream["height"]))


def media_folder(release_dir: Path) -> Path:
    """`DATASET/media/` of the dataset that holds `release_dir`."""
    return DatasetLayout.of_release(release_dir).media


INFO_FILE = "release.json"


def check_release_files(release_dir: Path, variant: str | None = None, splits: Sequence[str] | None = None) -> None:
    """Refuse a release whose files that the baseline reads (`release.json`, and `data/<variant>/<split>.parquet`
    of `variant` and `splits`, all when None) no longer match its own `SHA256SUMS`: a release is immutable once
    written, so a difference means it was changed or damaged since. Only the files read are hashed (a few small
    Parquet files), so a split that is not read may be absent.

    Raises `ValueError` naming the first file that differs (or is not listed, or the missing `SHA256SUMS`) and
    pointing to `emotions release verify`, which checks the whole release against the digest kept outside it."""
    layout = ReleaseLayout(Path(release_dir))
    listed = listed_digests(layout)
    hint = f"the release was changed after it was made (see `emotions release verify {layout.root}`)"
    if not listed and not (layout.root / INFO_FILE).is_file():
        raise ValueError(f"{layout.root / INFO_FILE}: no such file ({layout.root} is not a release folder)")
    if not listed:
        raise ValueError(f"{layout.checksums}: missing or empty, so the release cannot be checked; {hint}")
    read = [layout.root / INFO_FILE]
    read += [p for p in layout.data_files(variant) if splits is None or p.stem in splits]
    for path in read:
        rel = path.relative_to(layout.root).as_posix()
        if rel not in listed:
            raise ValueError(f"{path}: not listed in {layout.CHECKSUMS}; {hint}")
        if path.is_file() and sha256_file(path) != listed[rel]:
            raise ValueError(f"{path}: does not match its sha256 in {layout.CHECKSUMS}; {hint}")

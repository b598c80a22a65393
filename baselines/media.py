"""A release's media: where the videos are and the facts of their video stream that decoding needs.

Media are not part of a release: they live in the dataset folder the release came from
(`DATASET/releases/X.Y.Z/` -> `DATASET/media/<video_id>.mp4`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emotions_data.layout import DatasetLayout
from emotions_data.probe import ProbeError, run_ffprobe

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

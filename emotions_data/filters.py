"""Pure filter rules over probed facts. Each rule returns a (reason, message) when it rejects."""

from __future__ import annotations

from collections.abc import Mapping

from emotions_data.schema import Reason
from emotions_data.settings import FilterSettings

Rejection = tuple[Reason, str]


def check_filters(facts: Mapping[str, object], settings: FilterSettings) -> Rejection | None:
    """The first rule the probed item fails, or None when it passes them all. Durations are judged on the
    picture (`video_duration_s`), or the container's `duration_s` when the video stream states none."""
    if not facts.get("has_video"):
        return Reason.NO_VIDEO, "no video stream"
    if settings.require_audio and not facts.get("has_audio"):
        return Reason.NO_AUDIO, "no audio stream (audio is required)"
    # The picture's length is what a clip shows: audio running on after the last frame (or a container padded
    # by it) does not make a 0.5 s video long enough.
    duration, what = facts.get("video_duration_s"), "picture"
    if duration is None or duration != duration:  # NaN-safe
        duration, what = facts.get("duration_s"), "duration"
    if duration is None or duration != duration:
        return Reason.CORRUPT, "duration unknown"
    if duration < settings.min_duration_s:
        return Reason.TOO_SHORT, f"{what} {duration:.2f} s < minimum {settings.min_duration_s:g} s"
    if duration > settings.max_duration_s:
        return Reason.TOO_LONG, f"{what} {duration:.2f} s > maximum {settings.max_duration_s:g} s"
    width, height = facts.get("width"), facts.get("height")
    if not width or not height:
        return Reason.CORRUPT, "frame size unknown"
    short_side = min(int(width), int(height))
    if short_side < settings.min_short_side:
        return Reason.LOW_RESOLUTION, f"{width}x{height}: short side {short_side} < minimum {settings.min_short_side}"
    return None

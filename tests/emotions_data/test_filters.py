"""The ingest filters (emotions_data.filters) on probed facts."""

from __future__ import annotations

import pytest

from emotions_data.filters import check_filters
from emotions_data.schema import Reason
from emotions_data.settings import FilterSettings

GOOD_FACTS = {"has_video": True, "has_audio": True, "duration_s": 10.0, "width": 1280, "height": 720}


def _reason(changes, settings=None):
    result = check_filters({**GOOD_FACTS, **changes}, settings or FilterSettings())
    if result is None:
        return None
    reason, message = result
    assert isinstance(message, str) and message
    return reason


def test_filters_pass_good_video():
    assert check_filters(GOOD_FACTS, FilterSettings()) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"has_video": False}, Reason.NO_VIDEO),
        ({"has_video": False, "has_audio": False, "duration_s": None}, Reason.NO_VIDEO),
        ({"has_audio": False}, Reason.NO_AUDIO),
        ({"duration_s": 0.4}, Reason.TOO_SHORT),
        ({"duration_s": 0.999}, Reason.TOO_SHORT),
        ({"duration_s": 300.01}, Reason.TOO_LONG),
        ({"duration_s": 3600.0}, Reason.TOO_LONG),
        ({"width": 320, "height": 180}, Reason.LOW_RESOLUTION),
        ({"width": 1280, "height": 239}, Reason.LOW_RESOLUTION),
        ({"width": 239, "height": 1280}, Reason.LOW_RESOLUTION),
        ({"duration_s": None}, Reason.CORRUPT),
        ({"duration_s": float("nan")}, Reason.CORRUPT),
        ({"width": None}, Reason.CORRUPT),
        ({"height": 0}, Reason.CORRUPT),
    ],
)
def test_filters_reasons(changes, reason):
    assert _reason(changes) == reason


def test_filters_messages_mention_values():
    _, message = check_filters({**GOOD_FACTS, "duration_s": 0.5}, FilterSettings())
    assert "0.50" in message and "1" in message
    _, message = check_filters({**GOOD_FACTS, "width": 320, "height": 200}, FilterSettings())
    assert "200" in message and "240" in message


@pytest.mark.parametrize(
    "changes",
    [
        {"duration_s": 1.0},  # exactly the minimum
        {"duration_s": 300.0},  # exactly the maximum
        {"width": 1280, "height": 240},  # exactly the minimum short side, landscape
        {"width": 240, "height": 1280},  # ... and portrait
        {"width": 720, "height": 1280},
    ],
)
def test_filters_boundaries_pass(changes):
    assert _reason(changes) is None


def test_filters_custom_settings():
    settings = FilterSettings(min_duration_s=2.0, max_duration_s=5.0, min_short_side=480)
    assert _reason({"duration_s": 1.5}, settings) == Reason.TOO_SHORT
    assert _reason({"duration_s": 5.5}, settings) == Reason.TOO_LONG
    assert _reason({"duration_s": 3.0, "width": 854, "height": 470}, settings) == Reason.LOW_RESOLUTION
    assert _reason({"duration_s": 3.0, "width": 480, "height": 854}, settings) is None


def test_filters_silent_clip_passes_when_audio_not_required():
    settings = FilterSettings(require_audio=False)
    assert _reason({"has_audio": False}, settings) is None
    assert _reason({"has_audio": False, "duration_s": 0.2}, settings) == Reason.TOO_SHORT
    assert _reason({"has_video": False}, settings) == Reason.NO_VIDEO


def test_filters_judge_the_pictures_length_not_the_containers():
    # 0.5 s of picture with 4 s of sound: the container says 4 s, the clip shows half a second
    reason, message = check_filters({**GOOD_FACTS, "duration_s": 4.0, "video_duration_s": 0.5}, FilterSettings())
    assert reason == Reason.TOO_SHORT and message.startswith("picture 0.50 s")
    reason, message = check_filters({**GOOD_FACTS, "duration_s": 2.0, "video_duration_s": 400.0}, FilterSettings())
    assert reason == Reason.TOO_LONG and message.startswith("picture 400.00 s")
    assert _reason({"duration_s": 4.0, "video_duration_s": 3.9}) is None
    assert _reason({"duration_s": 0.5, "video_duration_s": None}) == Reason.TOO_SHORT  # no stream duration: container

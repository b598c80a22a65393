"""The pure helpers of normalisation (emotions_data.normalise): sizes, frame rates, recipes, ffmpeg argv."""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from pathlib import Path

import pytest

from emotions_data.normalise import (
    SourceVideo,
    build_command,
    choose_fps,
    older_recipes,
    recipe_id,
    target_fps,
    target_size,
)
from emotions_data.settings import NormaliseSettings


@pytest.mark.parametrize(
    ("width", "height", "cap", "expected"),
    [
        (1920, 1080, 720, (1280, 720)),
        (1080, 1920, 720, (720, 1280)),
        (3840, 2160, 720, (1280, 720)),
        (1440, 1080, 720, (960, 720)),
        (720, 720, 720, (720, 720)),
        (640, 360, 720, (640, 360)),  # never upscaled
        (320, 240, 720, (320, 240)),
        (1000, 563, 480, (852, 480)),
        (1920, 1080, 240, (426, 240)),
        (641, 361, 720, (640, 360)),  # odd sides become even
    ],
)
def test_target_size_examples(width, height, cap, expected):
    assert target_size(width, height, cap) == expected


SIZES = [(w, h) for w in (240, 321, 426, 640, 853, 1080, 1279, 1920, 3840) for h in (240, 359, 480, 719, 1080, 2160)]


@pytest.mark.parametrize("cap", [240, 360, 480, 720, 1080])
def test_target_size_properties(cap):
    for width, height in SIZES:
        out_w, out_h = target_size(width, height, cap)
        assert out_w % 2 == 0 and out_h % 2 == 0
        assert min(out_w, out_h) <= cap, (width, height, cap)
        scale = min(1.0, cap / min(width, height))
        # aspect ratio kept: each side within one pixel of the exact scaled size (rounding to even)
        assert abs(out_w - width * scale) <= 1 and abs(out_h - height * scale) <= 1
        if min(width, height) <= cap:  # no upscaling: only rounding to even sides
            assert abs(out_w - width) <= 1 and abs(out_h - height) <= 1
        # portrait stays portrait, landscape stays landscape
        assert (out_w >= out_h) == (width >= height) or width == height


@pytest.mark.parametrize("cap", [719, 721])
def test_target_size_respects_odd_cap(cap):
    # The docstring promises "the short side is at most `max_short_side`"; the setting accepts any int.
    out_w, out_h = target_size(1920, 1080, cap)
    assert out_w % 2 == 0 and out_h % 2 == 0
    assert min(out_w, out_h) <= cap


@pytest.mark.parametrize(
    ("fps", "cap", "vfr", "expected"),
    [
        (30000 / 1001, 60.0, False, Fraction(30000, 1001)),
        (29.97003, 60.0, False, Fraction(30000, 1001)),  # as probe.py rounds it
        (24000 / 1001, 60.0, False, Fraction(24000, 1001)),
        (23.976024, 60.0, False, Fraction(24000, 1001)),
        (59.94006, 60.0, False, Fraction(60000, 1001)),
        (25.0, 60.0, False, Fraction(25)),
        (15.0, 60.0, False, Fraction(15)),
        (120.0, 60.0, False, Fraction(60)),
        (60000 / 1001, 30.0, False, Fraction(30)),
        (29.97003, 30.0, False, Fraction(30000, 1001)),
        (None, 60.0, False, Fraction(25)),
        (0.0, 60.0, False, Fraction(25)),
        (-5.0, 60.0, False, Fraction(25)),
        (None, 24.0, False, Fraction(24)),
        (27.3, 60.0, True, Fraction(30000, 1001)),
        (24.5, 60.0, True, Fraction(25)),
        (30.0, 60.0, True, Fraction(30)),
        (12.0, 60.0, True, Fraction(12)),  # a low rate is kept: raising it would only duplicate frames
        (45.0, 60.0, True, Fraction(50)),
        (45.0, 30.0, True, Fraction(30)),
        (70.0, 60.0, True, Fraction(60)),
        (None, 60.0, True, Fraction(25)),
    ],
)
def test_target_fps(fps, cap, vfr, expected):
    rate = target_fps(fps, cap, vfr)
    assert isinstance(rate, Fraction)
    assert rate == expected


RECIPE_CHANGES = {
    "max_short_side": 480,
    "max_fps": 30.0,
    "crf": 28,
    "preset": "slow",
    "audio_bitrate": "96k",
    "audio_sample_rate": 48000,
    "threads_per_job": 2,
}


def test_recipe_changes_cover_every_field():
    assert set(RECIPE_CHANGES) == {f.name for f in dataclasses.fields(NormaliseSettings)}


def test_recipe_id_is_stable():
    assert recipe_id(NormaliseSettings()) == recipe_id(NormaliseSettings())
    assert re.fullmatch(r"[0-9a-f]{12}", recipe_id(NormaliseSettings()))


def test_the_same_settings_under_an_older_fingerprint_are_an_older_recipe_and_other_settings_are_not():
    settings = NormaliseSettings()
    assert older_recipes(settings) == {recipe_id(settings, "p1")}
    assert recipe_id(settings) == recipe_id(settings, "p2") not in older_recipes(settings)
    changed = dataclasses.replace(settings, crf=30)
    assert not older_recipes(changed) & older_recipes(settings)


@pytest.mark.parametrize(("name", "value"), sorted(RECIPE_CHANGES.items()))
def test_recipe_id_changes_with_each_setting(name, value):
    changed = dataclasses.replace(NormaliseSettings(), **{name: value})
    assert recipe_id(changed) != recipe_id(NormaliseSettings())


def _command(settings=None, with_thumbnails=True, **kwargs):
    source = {"width": 1920, "height": 1080, "fps": 29.97003, "duration_s": 12.5, "has_audio": True, **kwargs}
    return build_command(
        Path("/in/my video 视频.mov"),
        Path("/out/.tmp-1-x.mp4"),
        SourceVideo(**source),
        settings or NormaliseSettings(),
        with_thumbnails=with_thumbnails,
    )


def _after(cmd, flag):
    return cmd[cmd.index(flag) + 1]


def test_build_command_core_options():
    cmd = _command()
    assert cmd[0] == "ffmpeg"
    assert _after(cmd, "-i") == "/in/my video 视频.mov"  # one argv element, no shell quoting needed
    assert _after(cmd, "-t") == "12.500000"
    assert _after(cmd, "-c:v") == "libx264"
    assert _after(cmd, "-c:a") == "aac"
    assert _after(cmd, "-pix_fmt") == "yuv420p"
    assert _after(cmd, "-fps_mode") == "cfr"
    assert _after(cmd, "-movflags") == "+faststart"
    assert _after(cmd, "-crf") == "23" and _after(cmd, "-preset") == "veryfast"
    assert _after(cmd, "-b:a") == "128k"
    assert "/out/.tmp-1-x.mp4" in cmd
    graph = _after(cmd, "-filter_complex")
    assert "scale=1280:720" in graph
    assert "fps=30000/1001" in graph
    assert "[0:a:0]aresample=44100" in graph and "apad" in graph
    assert "-threads" not in cmd
    assert not any("anullsrc" in part for part in cmd)


def test_build_command_adds_silence_without_audio():
    cmd = _command(has_audio=False)
    assert "anullsrc=r=44100:cl=stereo" in cmd
    lavfi = cmd.index("lavfi")
    assert cmd[lavfi - 1] == "-f" and cmd[lavfi + 1] == "-i" and cmd[lavfi + 2].startswith("anullsrc")
    graph = _after(cmd, "-filter_complex")
    assert "[1:a]aresample" in graph and "0:a:0" not in graph


def test_build_command_thumbnails_branch():
    with_thumbs = _command()
    assert with_thumbs[-1] == "pipe:1"
    assert "[thumbs]" in with_thumbs
    assert "format=gray" in _after(with_thumbs, "-filter_complex")
    plain = _command(with_thumbnails=False)
    assert "pipe:1" not in plain
    assert not any("thumbs" in part for part in plain)
    assert plain[-1] == "/out/.tmp-1-x.mp4"


def test_build_command_settings_are_applied():
    settings = NormaliseSettings(max_short_side=480, max_fps=24.0, crf=30, threads_per_job=3, audio_sample_rate=48000)
    cmd = _command(width=1080, height=1920, settings=settings, has_audio=False, vfr=True)
    graph = _after(cmd, "-filter_complex")
    assert "scale=480:854" in graph
    assert "fps=24/1" in graph
    assert _after(cmd, "-crf") == "30"
    assert _after(cmd, "-threads") == "3"
    assert "anullsrc=r=48000:cl=stereo" in cmd
    assert "aresample=48000" in graph


@pytest.mark.parametrize(
    ("fps", "peak", "cap", "expected"),
    [
        (21.2, 30.0, 60.0, Fraction(30)),  # 30 fps then 10 fps: the fast part decides
        (21.2, 30.06, 60.0, Fraction(30)),  # timestamp noise above 30 is still 30, not 50
        (21.2, 29.97, 60.0, Fraction(30)),  # 29.97 and 30 cannot be told apart: the higher
        (21.2, 44.0, 60.0, Fraction(50)),
        (21.2, 90.0, 60.0, Fraction(60)),  # capped
        (21.2, 12.0, 60.0, Fraction(24000, 1001)),  # a peak under the average is noise: the average decides
    ],
)
def test_target_fps_of_a_variable_rate_source_covers_its_peak(fps, peak, cap, expected):
    assert target_fps(fps, cap, True, peak) == expected


@pytest.mark.parametrize(
    ("fps", "vfr", "peak", "typical", "expected", "why"),
    [
        # a fragmented MP4 at 15 fps: its average is off by one frame's duration and it is flagged variable
        (51200 / 3453, True, 15.0, 15.0, Fraction(15), "constant 15 fps: the interval of most of its frames"),
        (14.88, False, 15.0, 15.0, Fraction(15), "constant 15 fps"),  # not flagged: no 14.88 fps encode either
        (12.34, True, 12.4, 12.0, Fraction(12), "constant 12 fps"),  # a phone's jittered 12 fps
        (10.0, True, 10.2, 10.0, Fraction(10), "constant 10 fps"),
        (12.6, True, 12.9, 12.5, Fraction(25, 2), "constant 12.5 fps"),
        (29.97, True, 30.0, 1001 / 33.4, Fraction(30000, 1001), "constant 29.97 fps"),
        (21.2, True, 30.0, 30.0, Fraction(30), "constant 30 fps"),  # mostly 30 fps, with slow stretches
        (12.0, True, 30.0, 10.0, Fraction(30), "variable rate"),  # mostly 10 fps, a burst at 30: the burst decides
        (27.3, False, None, 27.3, Fraction(273, 10), "the source's own rate"),  # an odd but constant rate
        (15.0, False, None, None, Fraction(15), "the source's own rate"),
        (15.0, True, 15.0, 15.0, Fraction(12), "capped at 12 fps"),
        (None, False, None, None, Fraction(25), "source rate unknown"),
    ],
)
def test_a_plausible_constant_rate_is_kept_and_the_choice_explained(fps, vfr, peak, typical, expected, why):
    cap = 12.0 if "capped" in why else 60.0
    rate, reason = choose_fps(fps, cap, vfr, peak, typical)
    assert rate == expected and why in reason, reason

"""Facts from ffprobe's JSON (emotions_data.probe), no ffprobe run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from emotions_data.probe import FULL_PROBE, ProbeError, facts_from_ffprobe, ffprobe_command


def _video(**kw):
    stream = {
        "codec_type": "video",
        "codec_name": "h264",
        "width": 1920,
        "height": 1080,
        "r_frame_rate": "30/1",
        "avg_frame_rate": "30/1",
        "duration": "10.000000",
    }
    stream.update(kw)
    return stream


def _audio(**kw):
    stream = {"codec_type": "audio", "codec_name": "aac", "sample_rate": "44100", "channels": 2, "duration": "9.98"}
    stream.update(kw)
    return stream


def _probe(*streams, **fmt):
    data = {"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "10.02", "bit_rate": "800000", **fmt}}
    data["streams"] = list(streams)
    return facts_from_ffprobe(data, 12345)


def test_probe_plain_video():
    facts = _probe(_video(), _audio())
    assert facts.size_bytes == 12345
    assert facts.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert facts.duration_s == 10.02
    assert (facts.has_video, facts.width, facts.height, facts.rotation) == (True, 1920, 1080, 0)
    assert facts.fps == 30.0 and facts.vfr is False
    assert facts.video_codec == "h264"
    assert (facts.has_audio, facts.audio_sample_rate, facts.audio_channels, facts.audio_codec) == (
        True,
        44100,
        2,
        "aac",
    )
    assert facts.audio_duration_s == 9.98 and facts.video_duration_s == 10.0
    assert facts.bit_rate == 800000
    assert facts.as_dict()["width"] == 1920


@pytest.mark.parametrize(
    ("rotation", "expected_rotation", "size"),
    [
        (90, 90, (1080, 1920)),
        (-90, 270, (1080, 1920)),
        (270, 270, (1080, 1920)),
        (180, 180, (1920, 1080)),
        (-180, 180, (1920, 1080)),
        (0, 0, (1920, 1080)),
        (89.9, 90, (1080, 1920)),
    ],
)
def test_probe_rotation_from_side_data(rotation, expected_rotation, size):
    side = [{"side_data_type": "Display Matrix", "displaymatrix": "...", "rotation": rotation}]
    facts = _probe(_video(side_data_list=side), _audio())
    assert facts.rotation == expected_rotation
    assert (facts.width, facts.height) == size


@pytest.mark.parametrize(("tag", "expected"), [("90", 90), ("270", 270), ("180", 180)])
def test_probe_rotation_from_rotate_tag(tag, expected):
    facts = _probe(_video(tags={"rotate": tag, "language": "und"}), _audio())
    assert facts.rotation == expected
    assert (facts.width, facts.height) == ((1080, 1920) if expected in (90, 270) else (1920, 1080))


def test_probe_side_data_without_rotation_is_ignored():
    facts = _probe(_video(side_data_list=[{"side_data_type": "CPB properties"}]), _audio())
    assert (facts.rotation, facts.width, facts.height) == (0, 1920, 1080)


@pytest.mark.parametrize(
    ("sar", "width"),
    [("4:3", 1920), ("1:1", 1440), ("0:1", 1440), ("N/A", 1440), ("3:2", 2160)],
)
def test_probe_sample_aspect_ratio_widens_display(sar, width):
    facts = _probe(_video(width=1440, height=1080, sample_aspect_ratio=sar))
    assert (facts.width, facts.height) == (width, 1080)


def test_probe_sample_aspect_ratio_then_rotation():
    facts = _probe(_video(width=1440, height=1080, sample_aspect_ratio="4:3", side_data_list=[{"rotation": -90}]))
    assert (facts.width, facts.height, facts.rotation) == (1080, 1920, 270)


@pytest.mark.parametrize(
    ("r_rate", "avg_rate", "fps", "vfr"),
    [
        ("30/1", "30/1", 30.0, False),
        ("30000/1001", "30000/1001", 29.97003, False),
        ("30/1", "20/1", 20.0, True),
        ("60/1", "2997/100", 29.97, True),
        ("30/1", "0/0", 30.0, False),
        ("0/0", "25/1", 25.0, False),
        ("90000/1", "30/1", 30.0, True),
    ],
)
def test_probe_frame_rate_and_vfr(r_rate, avg_rate, fps, vfr):
    facts = _probe(_video(r_frame_rate=r_rate, avg_frame_rate=avg_rate), _audio())
    assert facts.fps == fps
    assert facts.vfr is vfr


def test_probe_audio_only():
    facts = _probe(_audio(duration="5.0"), duration="5.0", format_name="mov,mp4,m4a,3gp,3g2,mj2")
    assert facts.has_video is False
    assert (facts.width, facts.height, facts.fps, facts.video_codec) == (None, None, None, None)
    assert facts.has_audio is True
    assert facts.duration_s == 5.0


def test_probe_cover_art_is_not_video():
    cover = _video(codec_name="mjpeg", width=600, height=600, disposition={"default": 0, "attached_pic": 1})
    facts = _probe(_audio(), cover)
    assert facts.has_video is False
    assert facts.width is None and facts.video_codec is None


def test_probe_cover_art_before_real_video():
    cover = _video(codec_name="mjpeg", width=600, height=600, disposition={"attached_pic": 1})
    facts = _probe(cover, _video(width=1280, height=720, disposition={"attached_pic": 0}), _audio())
    assert (facts.has_video, facts.width, facts.height, facts.video_codec) == (True, 1280, 720, "h264")


def test_probe_duration_falls_back_to_streams():
    data = {"format": {"format_name": "matroska,webm"}, "streams": [_video(duration="7.5"), _audio(duration="7.4")]}
    assert facts_from_ffprobe(data, 1).duration_s == 7.5
    data = {"format": {"format_name": "matroska,webm"}, "streams": [_video(duration=None), _audio(duration="7.4")]}
    assert facts_from_ffprobe(data, 1).duration_s == 7.4


@pytest.mark.parametrize("data", [{}, {"format": {}, "streams": []}])
def test_probe_nothing_is_an_error(data):
    with pytest.raises(ProbeError):
        facts_from_ffprobe(data, 100)


def test_ffprobe_command_takes_the_arguments():
    path = Path("clip.mp4")
    assert ffprobe_command(path) == ["ffprobe", "-v", "error", "-print_format", "json", *FULL_PROBE, "clip.mp4"]
    entries = ["-show_entries", "stream=width"]
    assert ffprobe_command(path, entries) == ["ffprobe", "-v", "error", "-print_format", "json", *entries, "clip.mp4"]


def test_durations_missing_from_the_headers_are_measured_from_the_packets():
    from emotions_data.probe import with_packet_durations

    data = {"format": {"format_name": "matroska,webm"}, "streams": [
        {"index": 0, "codec_type": "video"}, {"index": 1, "codec_type": "audio", "duration": "2.5"}]}  # fmt: skip
    packets = {"packets": [
        {"stream_index": 0, "pts_time": "0.040", "duration_time": "0.040"},
        {"stream_index": 0, "pts_time": "2.960", "duration_time": "0.040"},
        {"stream_index": 0, "pts_time": "1.000"},
        {"stream_index": 1, "pts_time": "9.0", "duration_time": "0.02"},
        {"stream_index": 0, "pts_time": "N/A"},
    ]}  # fmt: skip
    filled = with_packet_durations(data, packets)
    assert filled["streams"][0]["duration"] == "2.96"  # last end minus first start
    assert filled["streams"][1]["duration"] == "2.5"  # stated durations are kept
    assert filled["format"]["duration"] == "2.96"
    assert "duration" not in data["streams"][0]  # pure: the input is not changed
    facts = facts_from_ffprobe(filled, 100)
    assert facts.duration_s == facts.video_duration_s == 2.96


def test_peak_rate_finds_the_fastest_stretch_not_the_average():
    from emotions_data.probe import peak_rate

    fast = [i / 30 for i in range(60)]  # 2 s at 30 fps
    slow = [2 + i / 10 for i in range(20)]  # then 2 s at 10 fps
    assert peak_rate(slow + fast) == pytest.approx(30.0)  # order does not matter
    jitter = [i / 25 for i in range(50)]
    jitter[10] = jitter[9] + 0.001  # one near-duplicate timestamp is no burst
    assert peak_rate(jitter) == pytest.approx(25.0, rel=0.08)
    assert peak_rate([1.0]) is None and peak_rate([]) is None


def test_the_audio_track_a_player_plays_is_the_one_described():
    commentary = _audio(codec_name="opus", channels=1, disposition={"default": 0})
    spatial = _audio(sample_rate="48000", channels=4, disposition={"default": 1})
    facts = _probe(_video(), commentary, spatial)
    assert (facts.audio_tracks, facts.audio_track) == (2, 1)
    assert (facts.audio_codec, facts.audio_sample_rate, facts.audio_channels) == ("aac", 48000, 4)
    no_default = _probe(_video(), _audio(codec_name="opus"), _audio())
    assert (no_default.audio_tracks, no_default.audio_track, no_default.audio_codec) == (2, 0, "opus")
    silent = _probe(_video())
    assert (silent.audio_tracks, silent.audio_track, silent.has_audio) == (0, None, False)


def test_typical_rate_is_the_median_frame_interval():
    from emotions_data.probe import typical_rate

    assert typical_rate([i / 15 for i in range(30)]) == pytest.approx(15.0)
    jitter = [i / 12 + 0.012 * math.sin(i * 2.3) for i in range(36)]  # a phone's 12 fps, timestamps off by 12 ms
    assert typical_rate(jitter) == pytest.approx(12.0, rel=0.01)
    assert typical_rate([1.0, 1.0]) is None and typical_rate([]) is None

"""Recordings whose timestamps jump, through `emotions ingest` (real ffmpeg and ffprobe): MPEG-TS parts joined end to
end (timestamps starting again, or jumping a minute ahead), MP4 edit lists (a cut inside a GOP, a delayed start) and
an MP4 with a gap in its picture. None is truncated: each is ok, and its media holds all of its content."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.probe import with_content_durations
from tests.support.commands import run_cli

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]


def _part(path: Path, video: str, tone: int, fmt: str, *extra: str) -> Path:
    picture = f"{video}{':' if '=' in video else '='}s=320x240:r=25:d=3"
    subprocess.run([*FF, "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", f"sine=f={tone}:d=3",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", *extra, "-f", fmt, str(path)],
                   check=True)  # fmt: skip
    return path


def _join(target: Path, *parts: Path) -> None:
    """Byte-level concatenation, as a recorder that appends its parts writes it."""
    target.write_bytes(b"".join(p.read_bytes() for p in parts))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    work = tmp_path_factory.mktemp("joined")
    parts, inputs = work / "parts", work / "in"
    parts.mkdir()
    inputs.mkdir()
    # two TS recordings joined: the second part's timestamps start from zero again
    _join(inputs / "ts_restart.ts", _part(parts / "a.ts", "testsrc2", 300, "mpegts"),
          _part(parts / "b.ts", "color=c=red", 500, "mpegts"))  # fmt: skip
    # a TS discontinuity: the second part's clock is a minute ahead
    _join(inputs / "ts_jump.ts", _part(parts / "c.ts", "smptebars", 350, "mpegts"),
          _part(parts / "d.ts", "rgbtestsrc", 650, "mpegts", "-output_ts_offset", "60"))  # fmt: skip
    source = _part(parts / "src.mp4", "testsrc2", 420, "mp4")
    # an edit list that starts inside a GOP (a copy cut at 1.3 s) and one that delays the start by 2 s
    subprocess.run([*FF, "-ss", "1.3", "-i", str(source), "-c", "copy", str(inputs / "edit_cut.mp4")], check=True)
    delayed = _part(parts / "src2.mp4", "testsrc", 720, "mp4")
    subprocess.run([*FF, "-itsoffset", "2", "-i", str(delayed), "-c", "copy", str(inputs / "edit_delay.mp4")],
                   check=True)  # fmt: skip
    # two takes concatenated with a 5 s gap in the picture's timestamps (variable-rate muxing keeps the gap)
    subprocess.run([*FF, "-f", "lavfi", "-i", "smptehdbars=s=320x240:r=25:d=3", "-f", "lavfi", "-i",
                    "color=c=red:s=320x240:r=25:d=3", "-f", "lavfi", "-i", "sine=f=900:d=6", "-filter_complex",
                    "[0:v][1:v]concat=n=2:v=1:a=0,setpts='if(gte(T,3),PTS+5/TB,PTS)'[v]", "-map", "[v]", "-map",
                    "2:a", "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                    str(inputs / "gap.mp4")], check=True)  # fmt: skip
    out = work / "ds"
    proc = run_cli("ingest", str(inputs), "--out", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out / "manifests" / "videos.parquet")
    return out, parts, {Path(r.source).name: r for r in frame.itertuples()}


def _rgb_at(path: Path, seconds: float) -> tuple[int, int, int]:
    """The mean colour of the frame shown at `seconds`."""
    cmd = [*FF, "-ss", str(seconds), "-i", str(path), "-frames:v", "1", "-vf", "scale=1:1", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return out[0], out[1], out[2]


@pytest.mark.parametrize(
    ("name", "first", "second"), [("ts_restart.ts", "a.ts", "b.ts"), ("ts_jump.ts", "c.ts", "d.ts")]
)
def test_joined_transport_streams_keep_both_parts(ingested, name, first, second):
    out, parts, rows = ingested
    row = rows[name]
    assert row.status == "ok", (row.reason, row.reason_detail)
    assert row.video_duration_s == pytest.approx(6.0, abs=0.1), "the content's length, not its timestamps' span"
    assert row.media_duration_s == pytest.approx(6.0, abs=0.15)
    media = out / row.media_path
    for at, part, part_at in ((1.5, parts / first, 1.5), (4.5, parts / second, 1.5)):
        shown, expected = _rgb_at(media, at), _rgb_at(part, part_at)
        assert all(abs(a - b) <= 25 for a, b in zip(shown, expected, strict=True)), (at, shown, expected)


def test_edit_lists_are_followed(ingested):
    _, _, rows = ingested
    cut, delayed = rows["edit_cut.mp4"], rows["edit_delay.mp4"]
    assert cut.status == "ok" and cut.media_duration_s == pytest.approx(1.7, abs=0.1), cut.reason_detail
    assert delayed.status == "ok" and delayed.media_duration_s == pytest.approx(3.0, abs=0.1), delayed.reason_detail


def test_a_gap_between_takes_is_no_truncation(ingested):
    out, _, rows = ingested
    row = rows["gap.mp4"]
    assert row.status == "ok", (row.reason, row.reason_detail)
    assert row.media_duration_s == pytest.approx(11.0, abs=0.15), "the gap holds the last picture; nothing is cut"
    red, green, blue = _rgb_at(out / row.media_path, 9.5)
    assert red > 180 and green < 80 and blue < 80, "the second take is in the media"


def test_content_durations_replace_a_span_that_jumped():
    data = {"format": {"format_name": "mpegts", "duration": "62.98"},
            "streams": [{"index": 0, "duration": "62.95"}, {"index": 1, "duration": "3.0"}]}  # fmt: skip
    packets = {"packets": [{"stream_index": 0, "duration_time": "0.04"}] * 150
               + [{"stream_index": 1, "duration_time": "0.02"}] * 150}  # fmt: skip
    fixed = with_content_durations(data, packets)
    assert [float(s["duration"]) for s in fixed["streams"]] == pytest.approx([6.0, 3.0])
    assert float(fixed["format"]["duration"]) == pytest.approx(6.0)
    unknown = {"packets": [{"stream_index": 0, "duration_time": "N/A"}, *packets["packets"]]}
    assert with_content_durations(data, unknown)["streams"][0]["duration"] == "62.95", "an unknown packet: kept"

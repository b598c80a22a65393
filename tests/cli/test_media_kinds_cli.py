"""Real phone and pipeline media through `emotions ingest`: containers written to a pipe (no duration in any
header) and audio that runs on after the picture ends."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.loopback import serve
from tests.support.commands import run_cli

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]


def _to_pipe(path: Path, video_s: float, audio_s: float, fmt: str, vcodec: str, acodec: str, src: str) -> Path:
    """Encode to stdout, as a phone app or a streaming recorder does: the muxer cannot seek back to write durations."""
    cmd = [*FF, "-f", "lavfi", "-i", f"{src}=s=320x240:r=25:d={video_s}", "-f", "lavfi",
           "-i", f"sine=f=330:d={audio_s}", "-c:v", vcodec, "-b:v", "300k", "-c:a", acodec,
           "-f", fmt, "pipe:1"]  # fmt: skip
    with open(path, "wb") as handle:
        subprocess.run(cmd, stdout=handle, check=True)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media-kinds")
    # different pictures, so none is a near-duplicate of another
    _to_pipe(folder / "piped.webm", 3, 3, "webm", "libvpx", "libopus", "testsrc2")
    _to_pipe(folder / "piped.mkv", 3, 3, "matroska", "libx264", "aac", "testsrc")
    subprocess.run([*FF, "-f", "lavfi", "-i", "smptebars=s=320x240:r=25:d=0.5", "-f", "lavfi", "-i",
                    "sine=f=440:d=4", "-c:v", "libx264", "-c:a", "aac", str(folder / "long_audio.mp4")],
                   check=True)  # fmt: skip
    _to_pipe(folder / "long_audio_piped.webm", 0.5, 4, "webm", "libvpx", "libopus", "smptehdbars")
    # a phone's variable rate: 2 s at 30 fps, then 2 s at 10 fps (averaging about 21 fps)
    subprocess.run([*FF, "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2", "-f", "lavfi", "-i",
                    "rgbtestsrc=s=320x240:r=10:d=2", "-f", "lavfi", "-i", "sine=f=300:d=4", "-filter_complex",
                    "[0:v]settb=1/1000,format=yuv420p[a];[1:v]settb=1/1000,format=yuv420p[b];[a][b]concat=n=2:v=1:a=0[v]",
                    "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-fps_mode", "vfr", "-c:a", "aac",
                    str(folder / "variable_rate.mp4")], check=True)  # fmt: skip
    return folder


def ingest_served(folder: Path, names: list[str], tmp_path: Path) -> dict[str, object]:
    """`emotions ingest` of `names` served from `folder` on loopback, in that order; the manifest rows by file name."""
    with serve(folder) as server:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{server.url(n)}\n" for n in names))
        proc = run_cli("ingest", str(urls), "--out", str(tmp_path / "ds"), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(tmp_path / "ds" / "manifests" / "videos.parquet")
    return {Path(r.source).name: r for r in frame.itertuples()}


def test_piped_containers_and_audio_longer_than_video(media, tmp_path):
    names = ["piped.webm", "piped.mkv", "long_audio.mp4", "long_audio_piped.webm", "variable_rate.mp4"]
    rows = ingest_served(media, names, tmp_path)
    for name in ("piped.webm", "piped.mkv"):  # no header states a duration: measured from the packets
        row = rows[name]
        assert row.status == "ok", (name, row.reason, row.reason_detail)
        assert row.duration_s == pytest.approx(3.0, abs=0.1) and row.video_duration_s == pytest.approx(3.0, abs=0.1)
        assert row.media_duration_s == pytest.approx(3.0, abs=0.15)
    for name in ("long_audio.mp4", "long_audio_piped.webm"):  # 0.5 s of picture, 4 s of sound: too short
        row = rows[name]
        assert (row.status, row.reason) == ("rejected", "too_short"), (name, row.reason_detail)
        assert row.reason_detail.startswith("picture 0.5") and row.duration_s == pytest.approx(4.0, abs=0.1)

    row = rows["variable_rate.mp4"]
    assert row.status == "ok" and row.vfr, (row.reason, row.reason_detail)
    assert row.media_fps == pytest.approx(30.0), "the target covers the fast stretch, not the ~21 fps average"
    out = _video_probe(tmp_path / "ds" / row.media_path, "packet=pts_time", "csv=p=0").split()
    assert sum(float(t) < 2.0 - 1e-6 for t in out) >= 60, "every frame of the 30 fps part is kept"


def _hdr_clip(path: Path, transfer: str, src: str) -> Path:
    """A phone's HDR clip: 10-bit HEVC tagged BT.2020 with the PQ or HLG transfer."""
    params = f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc:log-level=error"
    subprocess.run([*FF, "-f", "lavfi", "-i", f"{src}=s=320x240:r=25:d=2", "-f", "lavfi", "-i", "sine=d=2",
                    "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", params, "-c:a", "aac", str(path)],
                   check=True)  # fmt: skip
    return path


def _video_probe(path: Path, entries: str, output: str) -> str:
    """ffprobe's `entries` of the first video stream of `path`, printed as `output`."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-of", output, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def _stream(path: Path) -> dict:
    return json.loads(_video_probe(path, "stream=pix_fmt,color_transfer,color_primaries,color_space", "json"))[
        "streams"
    ][0]


def _mean_luma(path: Path) -> float:
    out = subprocess.run(
        [*FF, "-i", str(path), "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
         "-frames:v", "1", "-f", "null", "-"], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1].split("=")[1])


def test_hdr_sources_are_tone_mapped_to_bt709_sdr(tmp_path):
    folder = tmp_path / "hdr"
    folder.mkdir()
    _hdr_clip(folder / "pq.mp4", "smpte2084", "testsrc2")
    _hdr_clip(folder / "hlg.mp4", "arib-std-b67", "smptebars")
    for name, row in ingest_served(folder, ["pq.mp4", "hlg.mp4"], tmp_path).items():
        assert row.status == "ok", (name, row.reason_detail)
        assert row.color_transfer == {"pq.mp4": "smpte2084", "hlg.mp4": "arib-std-b67"}[name]  # the source's
        media = tmp_path / "ds" / row.media_path
        assert _stream(media) == {"pix_fmt": "yuv420p", "color_space": "bt709", "color_transfer": "bt709",
                                  "color_primaries": "bt709"}  # fmt: skip
        assert 40 < _mean_luma(media) < 200, "tone-mapped, neither crushed to black nor blown out"


def test_the_best_copy_of_a_near_duplicate_cluster_is_kept(tmp_path):
    folder = tmp_path / "copies"
    folder.mkdir()
    original = folder / "original.mp4"
    subprocess.run([*FF, "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=3", "-f", "lavfi", "-i", "sine=d=3",
                    "-c:v", "libx264", "-crf", "16", "-c:a", "aac", str(original)], check=True)  # fmt: skip
    # a re-upload of the same size, heavily re-compressed, listed first: it must not win over its original
    subprocess.run([*FF, "-i", str(original), "-c:v", "libx264", "-crf", "42", "-c:a", "aac", "-b:a", "48k",
                    str(folder / "reupload.mp4")], check=True)  # fmt: skip
    rows = ingest_served(folder, ["reupload.mp4", "original.mp4"], tmp_path)
    assert rows["original.mp4"].status == "ok"
    assert (rows["reupload.mp4"].status, rows["reupload.mp4"].reason) == ("rejected", "near_duplicate")
    assert rows["reupload.mp4"].dup_of == rows["original.mp4"].video_id


def _phone_media(folder: Path) -> None:
    """A clip with two audio tracks, the second the default (the first silent); a fragmented MP4 at 15 fps, as
    platforms serve it; a phone's variable-rate clip at about 12 fps, its timestamps jittered."""
    subprocess.run([*FF, "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-f", "lavfi", "-i",
                    "anullsrc=r=44100:cl=mono:d=3", "-f", "lavfi", "-i", "sine=f=440:d=3", "-map", "0:v",
                    "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-c:a", "aac", "-disposition:a:0", "0",
                    "-disposition:a:1", "default", "-shortest", str(folder / "two.mp4")], check=True)  # fmt: skip
    subprocess.run([*FF, "-f", "lavfi", "-i", "smptebars=s=320x240:r=15:d=2", "-f", "lavfi", "-i", "sine=d=2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-movflags",
                    "frag_keyframe+empty_moov+default_base_moof",
                    str(folder / "fragmented_15.mp4")], check=True)  # fmt: skip
    subprocess.run([*FF, "-f", "lavfi", "-i", "rgbtestsrc=s=320x240:r=60:d=3", "-f", "lavfi", "-i", "sine=d=3",
                    "-vf", "select='not(mod(n,5))',setpts='(N/12+0.012*sin(N*2.3))/TB'", "-fps_mode", "vfr",
                    "-video_track_timescale", "600", "-c:v", "libx264", "-c:a", "aac",
                    str(folder / "vfr_12.mp4")], check=True)  # fmt: skip


def _frames(path: Path) -> int:
    return len(_video_probe(path, "packet=pts_time", "csv=p=0").split())


def _mean_volume_db(path: Path) -> float:
    out = subprocess.run([*FF[:-1], "-v", "info", "-i", str(path), "-map", "0:a:0", "-af", "volumedetect", "-f", "null",
                          "-"], capture_output=True, text=True, check=True).stderr  # fmt: skip
    return float(out.split("mean_volume:")[1].split("dB")[0])


def test_the_played_audio_track_is_kept_and_low_rates_stay_their_own(tmp_path):
    folder = tmp_path / "phone"
    folder.mkdir()
    _phone_media(folder)
    rows = ingest_served(folder, ["two.mp4", "fragmented_15.mp4", "vfr_12.mp4"], tmp_path)
    for name, row in rows.items():
        assert row.status == "ok", (name, row.reason, row.reason_detail)
    two = rows["two.mp4"]
    assert (two.audio_tracks, two.audio_track) == (2, 1), "two tracks; the second, the default, is kept"
    assert _mean_volume_db(tmp_path / "ds" / two.media_path) > -40, "the default track's tone, not the silent first"
    for name, fps in (("fragmented_15.mp4", 15.0), ("vfr_12.mp4", 12.0)):
        row = rows[name]
        assert row.media_fps == pytest.approx(fps), (name, row.media_fps_reason)
        assert row.media_fps_reason.startswith(f"constant {fps:g} fps"), row.media_fps_reason
        source, made = folder / name, tmp_path / "ds" / row.media_path
        assert _frames(made) <= _frames(source), f"{name}: no frame duplicated"
    assert rows["fragmented_15.mp4"].vfr, "its container's average is not its rate: flagged, then measured"
    assert (rows["vfr_12.mp4"].audio_tracks, rows["vfr_12.mp4"].audio_track) == (1, 0)

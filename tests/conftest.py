"""Shared fixtures: a media corpus made with the real ffmpeg once per session, served on loopback."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from ls_fixtures import ls_data_dir, ls_server, ls_template  # noqa: F401  (a real Label Studio, once per session)

from emotions_data.demo import ClipSpec, make_clip, make_near_duplicate
from emotions_data.loopback import serve

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]


def _upright_marker(path: Path) -> Path:
    """A portrait clip (white top third) stored sideways with a rotate=90 tag, as phones do."""
    sideways = path.with_name("sideways-" + path.name)
    subprocess.run(
        [*FF, "-f", "lavfi", "-i", "color=black:s=240x320:d=2,drawbox=x=0:y=0:w=iw:h=ih/3:color=white:t=fill,"
         "transpose=1", "-f", "lavfi", "-i", "sine=f=500:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(sideways)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*FF, "-i", str(sideways), "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path)],
        check=True,
        capture_output=True,
    )
    sideways.unlink()
    return path


#: name -> (how to make it, expected status, expected reason)
CORPUS: dict[str, tuple[object, str, str | None]] = {
    "landscape.mp4": (ClipSpec("Excitation", 11, width=320, height=240, duration_s=2.0), "ok", None),
    "portrait.mp4": (ClipSpec("Fear", 12, width=240, height=426, fps="30", duration_s=2.0), "ok", None),
    "rotated.mp4": ("upright_marker", "ok", None),
    "variable rate.mp4": (
        ClipSpec("Neutral", 13, width=320, height=240, vfr=True, fps="30", duration_s=2.5),
        "ok",
        None,
    ),
    "vp9 clip.webm": (ClipSpec("Relaxation", 14, width=320, height=240, container="webm", duration_s=2.0), "ok", None),
    "ünïcödé 视频.mp4": (ClipSpec("Sadness", 15, width=320, height=240, duration_s=2.0), "ok", None),
    "lookalike_a.mp4": (ClipSpec("Tension", 16, width=320, height=240, duration_s=2.0), "ok", None),
    "lookalike_b.mp4": (ClipSpec("Tension", 17, width=320, height=240, duration_s=2.0), "ok", None),
    "source.mp4": (ClipSpec("Excitation", 18, width=640, height=360, duration_s=3.0), "ok", None),
    "reupload.mp4": ("near:source.mp4", "rejected", "near_duplicate"),
    "copy.mp4": ("copy:landscape.mp4", "rejected", "duplicate"),
    "silent.mp4": (ClipSpec("Neutral", 19, width=320, height=240, audio=False, duration_s=2.0), "rejected", "no_audio"),
    "short.mp4": (ClipSpec("Fear", 20, width=320, height=240, duration_s=0.4), "rejected", "too_short"),
    "small.mp4": (ClipSpec("Fear", 21, width=160, height=120, duration_s=2.0), "rejected", "low_resolution"),
    "long.mp4": (ClipSpec("Sadness", 22, width=320, height=240, duration_s=9.0), "rejected", "too_long"),
    "audio_only.m4a": ("audio_only", "rejected", "no_video"),
    "empty.mp4": ("empty", "failed", "download_error"),  # over HTTP; a local empty file is `corrupt`
    "truncated.mp4": ("truncated", "rejected", "corrupt"),
    "truncated_faststart.mp4": ("truncated_faststart", "rejected", "corrupt"),
    "garbage.mp4": ("garbage", "rejected", "corrupt"),
}

#: Settings the e2e tests use: a short maximum duration so `long.mp4` stays cheap to make.
TEST_FILTERS = {"filters.max_duration_s": 6.0}


def _make(name: str, how: object, folder: Path) -> None:
    path = folder / name
    if isinstance(how, ClipSpec):
        make_clip(how, path)
    elif how == "upright_marker":
        _upright_marker(path)
    elif isinstance(how, str) and how.startswith("near:"):
        make_near_duplicate(folder / how[5:], path)
    elif isinstance(how, str) and how.startswith("copy:"):
        path.write_bytes((folder / how[5:]).read_bytes())
    elif how == "audio_only":
        subprocess.run([*FF, "-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", str(path)], check=True)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        make_clip(ClipSpec("Tension", 23, width=320, height=240, duration_s=3.0), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "truncated_faststart":  # the index survives, the media data does not: probes fine, decodes short
        make_clip(ClipSpec("Tension", 24, width=320, height=240, duration_s=4.0), path.with_suffix(".src.mp4"))
        subprocess.run(
            [*FF, "-i", str(path.with_suffix(".src.mp4")), "-c", "copy", "-movflags", "+faststart", str(path)],
            check=True,
        )
        path.with_suffix(".src.mp4").unlink()
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    elif how == "garbage":
        path.write_bytes(random.Random(1).randbytes(30_000))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The test corpus folder (generated once per session; dependencies are made first)."""
    folder = tmp_path_factory.mktemp("corpus")
    ordered = sorted(CORPUS, key=lambda n: isinstance(CORPUS[n][0], str) and ":" in CORPUS[n][0])
    for name in ordered:
        _make(name, CORPUS[name][0], folder)
    return folder


@pytest.fixture()
def server(corpus):
    with serve(corpus) as srv:
        yield srv


def ffprobe_json(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)

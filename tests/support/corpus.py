"""The test corpus's design (name -> how it is made, expected status and reason) and helpers to ingest it.

The `corpus` and `server` fixtures that make and serve it live in tests/conftest.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from emotions_data.demo_corpus import ClipSpec
from emotions_data.settings import load_settings

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


def ffprobe_json(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


HOSTILE_IDS = {"copy.mp4": "../../etc/passwd", "landscape.mp4": "ok id with spaces/and slash"}


def url_table(server, path: Path, names, *, extra: dict[str, str] | None = None) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "video_id", "uploader", "note"])
        for name in names:
            writer.writerow([server.url(name), HOSTILE_IDS.get(name, ""), f"up-{len(name) % 3}", f"note {name}"])
        for name, url in (extra or {}).items():
            writer.writerow([url, name, "", ""])
    return path


def settings(**overrides):
    base = {**TEST_FILTERS, "download.backoff_s": 0.05, "workers": 2}
    return load_settings(None, **{**base, **overrides})

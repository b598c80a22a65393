"""Fast, pure unit tests of the ingest building blocks (no ffmpeg, no network)."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import re
import subprocess
import sys
import urllib.error
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data import fingerprint as fp
from emotions_data import storage
from emotions_data.dedup import Candidate, exact_duplicates, near_duplicates
from emotions_data.download import DownloadFailure, check_url_allowed, classify
from emotions_data.filters import check_filters
from emotions_data.normalise import SourceVideo, build_command, recipe_id, target_fps, target_size
from emotions_data.probe import ProbeError, facts_from_ffprobe
from emotions_data.schema import Reason
from emotions_data.settings import (
    COOKIES_ENV,
    PROXY_ENV,
    DedupSettings,
    DownloadSettings,
    FilterSettings,
    IngestSettings,
    NormaliseSettings,
    load_settings,
)
from emotions_data.sources import (
    SourceError,
    is_safe_id,
    make_video_id,
    platform_of,
    read_source,
    read_sources,
    slugify,
)
from emotions_data.storage import (
    TMP_MARK,
    StageLog,
    exclusive_lock,
    sweep_temporaries,
    write_table_atomic,
)

# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------

URL = "https://www.example.com/videos/clip.mp4"
HEX10 = re.compile(r"[0-9a-f]{10}")


@pytest.mark.parametrize("given", ["abc", "A1_b-c.d", "clip.2024-01-01", "0", "x" * 96])
def test_make_video_id_keeps_safe_given_id(given):
    assert is_safe_id(given)
    assert make_video_id(URL, given) == given


HOSTILE_IDS = [
    "../../etc/passwd",
    "a/b",
    "a b",
    "a?b",
    "a\\b",
    "..",
    ".",
    "...",
    "a..b",
    ".hidden",
    "-leading",
    "_leading",
    "视频 1",
    "视频 2",
    "视频",
    "影片",
    "my video",
    "my  video",
    "x" * 97,
    "x" * 98,
    "y" * 500,
    "a b/../c",
    "\x00nul",
    "line\nbreak",
    "C:\\Windows\\x",
    "/abs/path",
]


@pytest.mark.parametrize("given", HOSTILE_IDS)
def test_make_video_id_sanitises_hostile_given_id(given, tmp_path):
    vid = make_video_id(URL, given)
    assert vid != given
    assert is_safe_id(vid)
    assert "/" not in vid and "\\" not in vid and ".." not in vid
    assert not vid.startswith((".", "-"))
    assert len(vid) <= 96
    # A file named after the id stays inside its folder.
    target = tmp_path / f"{vid}.mp4"
    target.write_bytes(b"x")
    assert target.resolve().parent == tmp_path.resolve()
    # The sanitised id carries a hash of the original text.
    assert vid.endswith("-" + hashlib.sha1(given.encode()).hexdigest()[:10])


def test_make_video_id_hostile_ids_never_collide():
    ids = [make_video_id(URL, given) for given in HOSTILE_IDS]
    assert len(set(ids)) == len(HOSTILE_IDS)


def test_make_video_id_sanitised_id_differs_from_matching_safe_id():
    # "a/b" sanitises to a slug that looks like "a_b", but must not become "a_b" itself.
    assert make_video_id(URL, "a/b") != make_video_id(URL, "a_b") == "a_b"


def test_make_video_id_empty_given_falls_back_to_source():
    assert make_video_id(URL, "") == make_video_id(URL) == make_video_id(URL, None)
    assert is_safe_id(make_video_id(URL, ""))


def test_make_video_id_from_url_is_stable_and_hashed():
    expected = "clip-" + hashlib.sha1(URL.encode()).hexdigest()[:10]
    assert make_video_id(URL) == expected
    assert make_video_id(URL) == make_video_id(URL)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://a.example.com/x/clip.mp4", "https://b.example.com/y/clip.mp4"),
        ("https://example.com/watch?v=1", "https://example.com/watch?v=2"),
        ("/data/one/clip.mp4", "/data/two/clip.mp4"),
        ("/data/clip.mp4", "/data/clip.webm"),
    ],
)
def test_make_video_id_same_stem_different_source_differs(a, b):
    id_a, id_b = make_video_id(a), make_video_id(b)
    assert id_a != id_b
    stem_a, _, hash_a = id_a.rpartition("-")
    stem_b, _, hash_b = id_b.rpartition("-")
    assert stem_a == stem_b
    assert HEX10.fullmatch(hash_a) and HEX10.fullmatch(hash_b)


@pytest.mark.parametrize(
    ("source", "stem"),
    [
        ("https://www.douyin.com/video/7301234567890.mp4?x=1", "7301234567890"),
        ("https://example.com/%E8%A7%86%E9%A2%91%20clip.mp4", "clip"),
        ("https://example.com/", "video"),
        ("/home/u/videos/my holiday (1).mov", "my_holiday_1"),
        ("/home/u/videos/视频.mp4", "video"),
        ("/home/u/videos/../../etc/passwd", "passwd"),
    ],
)
def test_make_video_id_derived_ids_are_safe(source, stem):
    vid = make_video_id(source)
    assert is_safe_id(vid)
    assert vid == f"{stem}-{hashlib.sha1(source.encode()).hexdigest()[:10]}"


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Hello World", "Hello_World"),
        ("../../etc/passwd", "etc_passwd"),
        ("", "video"),
        ("...", "video"),
        ("视频", "video"),
        ("视频 1", "1"),
        ("Café déjà vu", "Cafe_deja_vu"),
        ("a..b", "a.b"),
        ("a....b", "a.b"),
        ("--x--", "x"),
        ("clip.final.v2", "clip.final.v2"),
    ],
)
def test_slugify_examples(text, slug):
    assert slugify(text) == slug


@pytest.mark.parametrize("text", ["x" * 200, "." * 70 + "abc", "a" * 59 + ".....b" * 10, "视" * 100, "a/" * 80])
def test_slugify_is_bounded_and_safe(text):
    slug = slugify(text)
    assert 1 <= len(slug) <= 60
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", slug)
    assert ".." not in slug
    assert not slug.endswith((".", "_", "-"))
    assert len(slugify(text, max_len=10)) <= 10


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://www.douyin.com/video/123", "douyin"),
        ("https://v.douyin.com/abc/", "douyin"),
        ("https://www.iesdouyin.com/share/video/1/", "douyin"),
        ("https://www.kuaishou.com/short-video/3x", "kuaishou"),
        ("https://v.kuaishou.com/abc", "kuaishou"),
        ("https://www.tiktok.com/@user/video/1", "tiktok"),
        ("https://vm.tiktok.com/ZMabc/", "tiktok"),
        ("https://WWW.TikTok.COM/@u/video/1", "tiktok"),
        ("https://www.youtube.com/watch?v=1", "www.youtube.com"),
        ("https://notdouyin.com/x", "notdouyin.com"),
        ("https://douyin.example.org/x", "douyin"),
        ("http://127.0.0.1:8000/a.mp4", "127.0.0.1"),
        ("not a url", None),
        ("", None),
    ],
)
def test_platform_of(url, platform):
    assert platform_of(url) == platform


def test_read_source_text_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text(
        "# a list of videos\n\n  https://www.douyin.com/video/1  \n   # indented comment\n\t\n"
        "https://example.com/a/b.mp4\n",
        encoding="utf-8",
    )
    items = read_source(path)
    assert [i.source for i in items] == ["https://www.douyin.com/video/1", "https://example.com/a/b.mp4"]
    assert [i.source_kind for i in items] == ["url", "url"]
    assert [i.platform for i in items] == ["douyin", "example.com"]
    assert [i.video_id for i in items] == [make_video_id(i.source) for i in items]
    assert all(i.uploader is None and i.extra == {} for i in items)


def test_read_source_text_with_utf8_bom(tmp_path):
    # Windows editors often save lists with a byte-order mark; it must not stick to the first URL.
    path = tmp_path / "urls.txt"
    path.write_bytes("\ufeffhttps://www.tiktok.com/@u/video/1\nhttps://www.tiktok.com/@u/video/2\n".encode())
    items = read_source(path)
    assert [i.source for i in items] == ["https://www.tiktok.com/@u/video/1", "https://www.tiktok.com/@u/video/2"]
    assert [i.platform for i in items] == ["tiktok", "tiktok"]


def test_read_source_csv_with_all_columns_and_extras(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(
        "url,video_id,platform,uploader,label,score\n"
        "https://www.douyin.com/video/1,clip1,custom,alice,joy,0.5\n"
        "https://www.kuaishou.com/v/2,,,,fear,\n"
        "https://example.com/3.mp4,../../evil,,bob,anger,1\n",
        encoding="utf-8",
    )
    items = read_source(path)
    assert len(items) == 3
    first, second, third = items
    assert (first.video_id, first.source, first.source_kind) == ("clip1", "https://www.douyin.com/video/1", "url")
    assert (first.platform, first.uploader) == ("custom", "alice")
    assert first.extra == {"label": "joy", "score": "0.5"}
    assert second.video_id == make_video_id("https://www.kuaishou.com/v/2")
    assert (second.platform, second.uploader) == ("kuaishou", None)
    assert second.extra == {"label": "fear", "score": ""}
    assert is_safe_id(third.video_id) and ".." not in third.video_id and "/" not in third.video_id
    assert (third.platform, third.uploader) == ("example.com", "bob")


def test_read_source_csv_with_utf8_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffurl,uploader\nhttps://www.douyin.com/video/1,dave\n".encode())
    items = read_source(path)
    assert [(i.source, i.platform, i.uploader) for i in items] == [("https://www.douyin.com/video/1", "douyin", "dave")]


def test_read_source_csv_without_url_column(tmp_path):
    path = tmp_path / "no_url.csv"
    path.write_text("link,video_id\nhttps://example.com/1,a\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(path)
    assert str(path) in str(info.value)
    assert "url" in str(info.value)


def test_read_source_csv_empty_url_names_the_row(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("url,video_id\nhttps://example.com/1,a\n  ,b\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(path)
    message = str(info.value)
    assert str(path) in message
    assert "row 3" in message  # line 3 of the file: header, first row, the empty one
    assert "empty url" in message


def test_read_source_parquet(tmp_path):
    path = tmp_path / "list.parquet"
    frame = pd.DataFrame(
        {
            "url": ["https://www.tiktok.com/@u/video/1", "https://example.com/2.mp4"],
            "video_id": ["p1", None],
            "uploader": ["carol", None],
            "views": [10, 20],
        }
    )
    frame.to_parquet(path)
    items = read_source(path)
    assert [i.video_id for i in items] == ["p1", make_video_id("https://example.com/2.mp4")]
    assert [i.platform for i in items] == ["tiktok", "example.com"]
    assert [i.uploader for i in items] == ["carol", None]
    assert [i.extra["views"] for i in items] == [10, 20]
    assert all(set(i.extra) == {"views"} for i in items)


def test_read_source_folder_is_recursive_and_only_takes_videos(tmp_path):
    folder = tmp_path / "videos"
    names = ["a.mp4", "sub/b.MOV", "sub/deep/视频 1.webm", "my clip.mkv", "sub/deep/视频 2.webm"]
    for name in [*names, "notes.txt", "sub/cover.jpg", "sub/deep/readme"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"data")
    items = read_source(folder)
    assert sorted(i.source for i in items) == sorted(str((folder / n).resolve()) for n in names)
    assert [i.source for i in items] == sorted(i.source for i in items)
    assert all(i.source_kind == "file" and i.platform == "local" for i in items)
    assert all(Path(i.source).is_absolute() for i in items)
    ids = [i.video_id for i in items]
    assert all(is_safe_id(v) for v in ids)
    assert len(set(ids)) == len(ids)


def test_read_source_missing_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(SourceError) as info:
        read_source(missing)
    assert str(missing) in str(info.value)


def test_read_sources_dedups_same_source_across_arguments(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("https://example.com/1.mp4\nhttps://example.com/2.mp4\nhttps://example.com/1.mp4\n")
    csv = tmp_path / "b.csv"
    csv.write_text("url\nhttps://example.com/2.mp4\nhttps://example.com/3.mp4\n")
    items = read_sources([txt, csv, txt])
    assert [i.source for i in items] == [f"https://example.com/{n}.mp4" for n in (1, 2, 3)]


def test_read_sources_rejects_one_id_for_two_sources(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("url,video_id\nhttps://example.com/1.mp4,dup\n")
    two = tmp_path / "two.csv"
    two.write_text("url,video_id\nhttps://example.com/2.mp4,dup\n")
    with pytest.raises(SourceError) as info:
        read_sources([one, two])
    message = str(info.value)
    assert "'dup'" in message
    assert "https://example.com/1.mp4" in message and "https://example.com/2.mp4" in message


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def clean_env(monkeypatch):
    monkeypatch.delenv(COOKIES_ENV, raising=False)
    monkeypatch.delenv(PROXY_ENV, raising=False)


CONFIG = """
[ingest]
workers = 4
shard_size = 3

[ingest.filters]
min_duration_s = 2.5
require_audio = false

[ingest.normalise]
max_short_side = 480
preset = "medium"

[ingest.dedup]
near_duplicate_threshold = 0.2

[ingest.download]
attempts = 5
user_agent = "test-agent"
"""


@pytest.fixture()
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_load_settings_defaults(clean_env):
    settings = load_settings()
    assert settings == IngestSettings()
    assert settings.filters.min_duration_s == 1.0
    assert settings.filters.max_duration_s == 300.0
    assert settings.filters.min_short_side == 240
    assert settings.filters.require_audio is True
    assert settings.normalise.max_short_side == 720
    assert settings.dedup.near_duplicate_threshold == 0.30
    assert settings.download.attempts == 3
    assert settings.download.allow_file_urls is False
    assert settings.download.cookies_file is None and settings.download.proxy is None
    assert settings.workers == 2


def test_load_settings_from_toml(clean_env, config_file):
    settings = load_settings(config_file)
    assert settings.workers == 4
    assert settings.shard_size == 3
    assert settings.filters.min_duration_s == 2.5
    assert settings.filters.require_audio is False
    assert settings.filters.max_duration_s == 300.0  # untouched default
    assert settings.normalise.max_short_side == 480
    assert settings.normalise.preset == "medium"
    assert settings.normalise.crf == 23
    assert settings.dedup.near_duplicate_threshold == 0.2
    assert settings.download.attempts == 5
    assert settings.download.user_agent == "test-agent"


def test_load_settings_without_ingest_table_gives_defaults(clean_env, tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[something_else]\nworkers = 9\n")
    assert load_settings(path) == IngestSettings()


def test_load_settings_overrides_win_over_file(clean_env, config_file):
    settings = load_settings(config_file, **{"filters.min_duration_s": 3.0, "workers": 8, "download.attempts": 1})
    assert settings.filters.min_duration_s == 3.0
    assert settings.workers == 8
    assert settings.download.attempts == 1
    assert settings.filters.require_audio is False  # from the file, not overridden
    assert settings.download.user_agent == "test-agent"


def test_load_settings_ignores_none_overrides(clean_env, config_file):
    settings = load_settings(config_file, **{"filters.min_duration_s": None, "workers": None})
    assert settings.filters.min_duration_s == 2.5
    assert settings.workers == 4
    assert load_settings(None, **{"dedup.near_duplicate_threshold": None}) == IngestSettings()


@pytest.mark.parametrize(
    ("toml", "overrides", "name"),
    [
        ("[ingest]\nbogus = 1\n", {}, "bogus"),
        ("[ingest.filters]\nmin_duraton_s = 1\n", {}, "min_duraton_s"),
        ("[ingest.nosuchtable]\nx = 1\n", {}, "nosuchtable"),
        ("", {"filters.nope": 1}, "nope"),
        ("", {"nosection.value": 1}, "nosection"),
    ],
)
def test_load_settings_unknown_key_is_named(clean_env, tmp_path, toml, overrides, name):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=name):
        load_settings(path, **overrides)


def test_load_settings_unreadable_toml_names_the_file(clean_env, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[ingest\nworkers = ")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_settings(path)


def test_load_settings_rejects_zero_workers(clean_env):
    with pytest.raises(ValueError, match="workers"):
        load_settings(workers=0)


SECRET_COOKIES = "/home/someone/secret-cookies.txt"
SECRET_PROXY = "http://user:hunter2@proxy.internal:3128"


def test_load_settings_secrets_from_environment(monkeypatch, config_file):
    monkeypatch.setenv(COOKIES_ENV, SECRET_COOKIES)
    monkeypatch.setenv(PROXY_ENV, SECRET_PROXY)
    settings = load_settings(config_file)
    assert settings.download.cookies_file == SECRET_COOKIES
    assert settings.download.proxy == SECRET_PROXY
    assert settings.download.attempts == 5  # the rest of the download table is kept


def test_load_settings_environment_wins_over_config_file(monkeypatch, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[ingest.download]\ncookies_file = "/from/file.txt"\nproxy = "http://file-proxy:1"\n')
    monkeypatch.delenv(COOKIES_ENV, raising=False)
    monkeypatch.delenv(PROXY_ENV, raising=False)
    assert load_settings(path).download.cookies_file == "/from/file.txt"
    monkeypatch.setenv(COOKIES_ENV, SECRET_COOKIES)
    monkeypatch.setenv(PROXY_ENV, SECRET_PROXY)
    settings = load_settings(path)
    assert settings.download.cookies_file == SECRET_COOKIES
    assert settings.download.proxy == SECRET_PROXY


def test_settings_repr_does_not_leak_secrets(monkeypatch):
    monkeypatch.setenv(COOKIES_ENV, SECRET_COOKIES)
    monkeypatch.setenv(PROXY_ENV, SECRET_PROXY)
    settings = load_settings()
    assert settings.download.cookies_file == SECRET_COOKIES
    for text in (repr(settings), str(settings), repr(settings.download), f"{settings}"):
        assert "secret-cookies" not in text
        assert "hunter2" not in text
        assert "proxy.internal" not in text
    assert "attempts=3" in repr(settings)  # the non-secret fields are still shown


# --------------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------

_X = np.linspace(0, 3, fp.FRAME_SIZE)
_UPSAMPLE = np.maximum(0.0, 1.0 - np.abs(_X[:, None] - np.arange(4)[None, :]))  # bilinear, 4 -> 32


def smooth_frames(rng, n):
    """(n, 32, 32) uint8 frames with smooth structure: bilinearly upsampled random 4x4 grids."""
    grids = rng.integers(0, 256, (n, 4, 4)).astype(np.float64)
    return np.rint(_UPSAMPLE @ grids @ _UPSAMPLE.T).astype(np.uint8)


def mild_copy(rng, frames, brightness=10.0, noise=3.0):
    """The same frames after a light re-encode: a brightness shift and some noise."""
    out = frames.astype(np.float64) + brightness + rng.normal(0.0, noise, frames.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_fingerprint_format_and_roundtrip_is_bit_exact():
    frames = smooth_frames(np.random.default_rng(1), 40)
    fingerprint = fp.fingerprint_frames(frames)
    assert re.fullmatch(r"p1:[0-9a-f]{256}", fingerprint)
    bits = fp.decode(fingerprint)
    assert bits.shape == (fp.N_FRAMES, fp.BITS_PER_FRAME) and bits.dtype == bool
    expected = fp.frame_bits(frames[fp.sample_indices(len(frames))])
    np.testing.assert_array_equal(bits, expected)
    assert 0 < bits.sum() < bits.size


def test_fingerprint_is_deterministic():
    frames = smooth_frames(np.random.default_rng(2), 20)
    assert fp.fingerprint_frames(frames) == fp.fingerprint_frames(frames.copy())


def test_distance_identical_is_zero():
    fingerprint = fp.fingerprint_frames(smooth_frames(np.random.default_rng(3), 30))
    assert fp.distance(fingerprint, fingerprint) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_distance_of_independent_clips_is_about_half(seed):
    rng = np.random.default_rng(seed)
    a = fp.fingerprint_frames(smooth_frames(rng, 40))
    b = fp.fingerprint_frames(smooth_frames(rng, 40))
    assert 0.35 < fp.distance(a, b) < 0.65
    assert fp.distance(a, b) == fp.distance(b, a)


@pytest.mark.parametrize("seed", range(6))
def test_distance_of_mild_copy_is_small(seed):
    rng = np.random.default_rng(100 + seed)
    frames = smooth_frames(rng, 40)
    a = fp.fingerprint_frames(frames)
    b = fp.fingerprint_frames(mild_copy(rng, frames))
    assert fp.distance(a, b) < 0.12
    assert fp.distance(a, b) < DedupSettings().near_duplicate_threshold


def test_fingerprint_of_one_frame():
    frame = smooth_frames(np.random.default_rng(4), 1)
    bits = fp.decode(fp.fingerprint_frames(frame))
    assert bits.shape == (fp.N_FRAMES, fp.BITS_PER_FRAME)
    assert (bits == bits[0]).all()  # the single frame repeated
    np.testing.assert_array_equal(bits[0], fp.frame_bits(frame)[0])


def test_fingerprint_of_many_frames_samples_evenly():
    frames = smooth_frames(np.random.default_rng(5), 500)
    indices = fp.sample_indices(len(frames))
    assert indices[0] == 0 and indices[-1] == 499 and len(indices) == fp.N_FRAMES
    assert (np.diff(indices) > 0).all()
    assert fp.fingerprint_frames(frames) == fp.fingerprint_frames(frames[indices])


def test_fingerprint_of_no_frames_is_an_error():
    with pytest.raises(ValueError):
        fp.fingerprint_frames(np.zeros((0, 32, 32), np.uint8))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "p1",
        "p1:",
        "0" * 256,
        "p2:" + "0" * 256,
        "P1:" + "0" * 256,
        "p1:" + "0" * 255,
        "p1:" + "0" * 257,
        "p1:" + "0" * 512,
        "p1:" + "g" * 256,
        "p1:" + "0" * 254 + "  ",
        "p1:" + "é" * 256,
    ],
)
def test_decode_rejects_malformed(bad):
    with pytest.raises(ValueError):
        fp.decode(bad)


# --------------------------------------------------------------------------------------------
# dedup
# --------------------------------------------------------------------------------------------


def test_exact_duplicates_keeps_earliest_input():
    items = [
        ("e", 4, "h1"),
        ("b", 1, "h1"),
        ("a", 0, "h1"),
        ("c", 2, "h2"),
        ("d", 3, "h2"),
        ("f", 5, "h3"),
    ]
    assert exact_duplicates(items) == {"b": "a", "e": "a", "d": "c"}


def test_exact_duplicates_order_of_list_does_not_matter():
    assert exact_duplicates([("late", 7, "x"), ("early", 2, "x")]) == {"late": "early"}


@pytest.mark.parametrize("items", [[], [("a", 0, "h1")], [("a", 0, "h1"), ("b", 1, "h2"), ("c", 2, "h3")]])
def test_exact_duplicates_none(items):
    assert exact_duplicates(items) == {}


@pytest.fixture(scope="module")
def clip_frames():
    rng = np.random.default_rng(42)
    base = smooth_frames(rng, 48)
    copies = [mild_copy(rng, base) for _ in range(3)]
    unrelated = [smooth_frames(rng, 48) for _ in range(2)]
    return base, copies, unrelated


def _cand(video_id, index, duration, pixels, frames):
    return Candidate(video_id, index, duration, pixels, fp.fingerprint_frames(frames))


def test_near_duplicates_cluster_keeps_largest_picture(clip_frames):
    base, copies, unrelated = clip_frames
    candidates = [
        _cand("small", 0, 10.0, 320 * 240, base),
        _cand("mid", 1, 10.2, 640 * 480, copies[0]),
        _cand("other", 2, 10.1, 1920 * 1080, unrelated[0]),
        _cand("big", 3, 9.9, 1280 * 720, copies[1]),
    ]
    assert near_duplicates(candidates, DedupSettings()) == {"small": "big", "mid": "big"}


def test_near_duplicates_tie_on_pixels_keeps_earliest_input(clip_frames):
    base, copies, _ = clip_frames
    candidates = [
        _cand("third", 7, 10.0, 1280 * 720, copies[0]),
        _cand("first", 2, 10.0, 1280 * 720, base),
        _cand("second", 5, 10.0, 1280 * 720, copies[1]),
    ]
    assert near_duplicates(candidates, DedupSettings()) == {"third": "first", "second": "first"}


def test_near_duplicates_unrelated_clips_are_not_merged(clip_frames):
    base, _, unrelated = clip_frames
    candidates = [
        _cand("a", 0, 10.0, 100, base),
        _cand("b", 1, 10.0, 100, unrelated[0]),
        _cand("c", 2, 10.0, 100, unrelated[1]),
    ]
    assert near_duplicates(candidates, DedupSettings()) == {}


def test_near_duplicates_single_or_no_candidate():
    frames = smooth_frames(np.random.default_rng(9), 10)
    assert near_duplicates([], DedupSettings()) == {}
    assert near_duplicates([_cand("a", 0, 5.0, 100, frames)], DedupSettings()) == {}


@pytest.mark.parametrize(
    ("duration_a", "duration_b", "merged"),
    [
        (10.0, 30.0, False),  # identical pictures, very different lengths: never compared
        (10.0, 11.5, False),  # beyond the 1 s absolute tolerance
        (10.0, 11.0, True),  # exactly at the absolute tolerance
        (100.0, 104.0, True),  # within 5 % of the duration
        (100.0, 106.0, False),  # beyond 5 %
        (30.0, 10.0, False),  # order of the list does not matter
    ],
)
def test_near_duplicates_only_compares_similar_durations(clip_frames, duration_a, duration_b, merged):
    base, _, _ = clip_frames
    candidates = [_cand("a", 0, duration_a, 100, base), _cand("b", 1, duration_b, 100, base)]
    assert near_duplicates(candidates, DedupSettings()) == ({"b": "a"} if merged else {})


def test_near_duplicates_respects_threshold(clip_frames):
    base, copies, _ = clip_frames
    a, b = _cand("a", 0, 10.0, 100, base), _cand("b", 1, 10.0, 100, copies[2])
    d = fp.distance(a.fingerprint, b.fingerprint)
    assert 0.0 < d < 0.3
    assert near_duplicates([a, b], DedupSettings(near_duplicate_threshold=d)) == {"b": "a"}
    assert near_duplicates([a, b], DedupSettings(near_duplicate_threshold=d - 0.01)) == {}
    assert near_duplicates([a, b], DedupSettings(near_duplicate_threshold=0.0)) == {}


def test_near_duplicates_huge_threshold_merges_unrelated(clip_frames):
    base, _, unrelated = clip_frames
    candidates = [_cand("a", 0, 10.0, 100, base), _cand("b", 1, 10.0, 200, unrelated[0])]
    assert near_duplicates(candidates, DedupSettings(near_duplicate_threshold=1.0)) == {"a": "b"}


# --------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------

LOG_SCHEMA = pa.schema([("video_id", pa.string()), ("status", pa.string()), ("n", pa.int64())])


def _rows(*triples):
    return [{"video_id": v, "status": s, "n": n} for v, s, n in triples]


def _records(log):
    return [(r["video_id"], r["status"], r["n"]) for r in log.load().to_dict("records")]


def test_stage_log_empty(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    assert log.shards() == []
    frame = log.load()
    assert list(frame.columns) == ["video_id", "status", "n"] and len(frame) == 0


def test_stage_log_shards_are_in_commit_order(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    paths = [log.commit(_rows((f"v{i}", "ok", i))) for i in range(5)]
    assert log.shards() == paths
    assert [r[0] for r in _records(log)] == [f"v{i}" for i in range(5)]


def test_stage_log_newest_row_per_key_wins(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("b", "failed", 1)))
    log.commit(_rows(("c", "ok", 1), ("a", "ok", 2)))
    log.commit(_rows(("b", "ok", 3)))
    records = _records(log)
    assert len(records) == 3
    assert {r[0]: r[1:] for r in records} == {"a": ("ok", 2), "b": ("ok", 3), "c": ("ok", 1)}


def test_stage_log_newest_row_within_one_shard_wins(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("a", "ok", 2)))
    assert _records(log) == [("a", "ok", 2)]


def test_stage_log_keeps_first_commit_order(tmp_path):
    # StageLog.load_table documents "the newest committed row for every key, in first-commit order".
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("b", "failed", 1)))
    log.commit(_rows(("c", "ok", 1), ("a", "ok", 2)))
    log.commit(_rows(("b", "ok", 3)))
    assert _records(log) == [("a", "ok", 2), ("b", "ok", 3), ("c", "ok", 1)]


def test_stage_log_commit_accepts_arrow_table(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(pa.Table.from_pylist(_rows(("x", "ok", 5)), schema=LOG_SCHEMA))
    assert _records(log) == [("x", "ok", 5)]


def test_stage_log_compact_keeps_the_answer_and_leaves_one_shard(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("b", "failed", 1)))
    log.commit(_rows(("c", "ok", 1), ("a", "ok", 2)))
    log.commit(_rows(("b", "ok", 3), ("d", "ok", 4)))
    before = log.load()
    log.compact()
    assert len(log.shards()) == 1
    pd.testing.assert_frame_equal(log.load(), before)
    assert len(list((tmp_path / "log").iterdir())) == 1  # no temporaries or old shards left
    # A later commit still wins over the compacted shard.
    log.commit(_rows(("a", "ok", 9)))
    assert {r[0]: r[2] for r in _records(log)} == {"a": 9, "b": 3, "c": 1, "d": 4}


def test_stage_log_compact_single_shard_is_a_no_op(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    path = log.commit(_rows(("a", "ok", 1)))
    log.compact()
    assert log.shards() == [path]
    StageLog(tmp_path / "empty", LOG_SCHEMA).compact()  # no folder at all: nothing to do
    assert not (tmp_path / "empty").exists()


def test_stage_log_ignores_temporaries(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "ok", 1)))
    stray = pa.Table.from_pylist(_rows(("a", "tmp", 99), ("zz", "tmp", 99)), schema=LOG_SCHEMA)
    for name in (f"{TMP_MARK}abcdef-99999999999999999999-x.parquet", f"{TMP_MARK}0.parquet"):
        pq.write_table(stray, tmp_path / "log" / name)
    assert len(log.shards()) == 1
    assert _records(log) == [("a", "ok", 1)]


def test_stage_log_a_retried_shard_adds_no_rows(tmp_path):
    # A shard job re-run after its worker died (Ray retries it) commits the same items again, with the
    # sequence its batch was given: still one row per item.
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    sequence = log.next_sequence()
    log.commit(_rows(("a", "ok", 1), ("b", "ok", 1)), sequence)
    log.commit(_rows(("c", "ok", 1)), sequence)
    log.commit(_rows(("a", "ok", 1), ("b", "ok", 1)), sequence)
    assert sorted(_records(log)) == [("a", "ok", 1), ("b", "ok", 1), ("c", "ok", 1)]


def test_stage_log_orders_by_the_drivers_sequence_not_the_committers_clock(tmp_path, monkeypatch):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    first = log.next_sequence()
    log.commit(_rows(("a", "failed", 1)), first)
    second = log.next_sequence()
    assert second > first
    monkeypatch.setattr(storage.time, "time_ns", lambda: 1)  # a worker (or this host) whose clock is far behind
    log.commit(_rows(("a", "ok", 2)), second)
    assert log.next_sequence() == second + 1
    log.compact()
    assert _records(log) == [("a", "ok", 2)]
    log.commit(_rows(("a", "ok", 3)))
    assert _records(log) == [("a", "ok", 3)]


def test_dataset_dir_takes_paths_and_file_urls_and_refuses_object_storage():
    from emotions_data.layout import local_dataset_dir

    assert local_dataset_dir("ds") == Path("ds") and local_dataset_dir("ds:v2") == Path("ds:v2")
    assert local_dataset_dir("file:///data/my%20ds") == Path("/data/my ds")
    assert local_dataset_dir(Path("file:///data/ds")) == Path("/data/ds")  # a Path folds "//" into "/"
    for url in ("s3://bucket/ds", Path("gs://bucket/ds"), "memory://ds", "file://otherhost/ds"):
        with pytest.raises(ValueError, match="not supported for a dataset folder yet"):
            local_dataset_dir(url)


def test_ray_executor_without_the_extra_says_how_to_install_it(monkeypatch):
    from emotions_data.executor import ExecutorError, make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when the extra is not installed
    with pytest.raises(ExecutorError) as caught:
        make_executor("ray", 2)
    assert str(caught.value) == "--executor ray needs the ray extra: pip install 'emotions[ray]'"
    with pytest.raises(ValueError, match="choose: local, serial, ray"):
        make_executor("spark", 2)


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_write_table_atomic_leaves_no_temporaries(tmp_path):
    path = tmp_path / "deep" / "folder" / "table.parquet"
    table = pa.table({"x": [1, 2, 3]})
    write_table_atomic(path, table)
    write_table_atomic(path, pa.table({"x": [4]}))  # overwrite in place
    assert pq.read_table(path).column("x").to_pylist() == [4]
    assert _listing(tmp_path / "deep" / "folder") == ["table.parquet"]


def test_write_table_atomic_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "table.parquet"
    write_table_atomic(path, pa.table({"x": [1]}))

    def broken_write(table, where):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_table_atomic(path, pa.table({"x": [2]}))
    monkeypatch.undo()
    assert pq.read_table(path).column("x").to_pylist() == [1]
    assert _listing(tmp_path) == ["table.parquet"]


def test_sweep_temporaries_removes_only_marked_files(tmp_path):
    keep = ["a.parquet", "sub/keep.tmp", "sub/x.tmp-y", "sub/deep/media.mp4", f"sub/{TMP_MARK}dir/inner.mp4"]
    marked = [f"{TMP_MARK}123-a.parquet", f"sub/{TMP_MARK}456-b.mp4", f"sub/deep/{TMP_MARK}x"]
    for name in keep + marked:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert sweep_temporaries(tmp_path) == len(marked)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(keep)
    assert sweep_temporaries(tmp_path) == 0
    assert sweep_temporaries(tmp_path / "missing") == 0


def test_exclusive_lock_conflicts_within_one_process(tmp_path):
    lock = tmp_path / "locks" / "run.lock"
    with exclusive_lock(lock, "ingest"):
        with pytest.raises(RuntimeError, match="ingest") as info:
            with exclusive_lock(lock, "ingest"):
                pass
        assert str(lock) in str(info.value)
    with exclusive_lock(lock, "ingest"):  # released again afterwards
        pass


_HOLD_LOCK = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""

_TRY_LOCK = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def test_exclusive_lock_conflicts_with_another_process(tmp_path):
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match="another run holds"):
            with exclusive_lock(lock, "ingest"):
                pass
    finally:
        holder.communicate("", timeout=10)
    with exclusive_lock(lock, "ingest"):  # the holder is gone
        pass


def test_exclusive_lock_is_seen_by_another_process(tmp_path):
    lock = tmp_path / "run.lock"

    def probe():
        return subprocess.run(
            [sys.executable, "-c", _TRY_LOCK, str(lock)], capture_output=True, text=True, timeout=10
        ).stdout.strip()

    with exclusive_lock(lock, "ingest"):
        assert probe() == "busy"
    assert probe() == "free"


def test_exclusive_lock_is_released_on_error(tmp_path):
    lock = tmp_path / "run.lock"
    with pytest.raises(KeyError):
        with exclusive_lock(lock, "ingest"):
            raise KeyError("boom")
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise BlockingIOError if still held
        fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# normalise (pure helpers)
# --------------------------------------------------------------------------------------------


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
        (12.0, 60.0, True, Fraction(24000, 1001)),
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


# --------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "retryable"),
    [
        ("ERROR: [generic] Unable to download webpage: HTTP Error 429: Too Many Requests", True),
        ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable", True),
        ("ERROR: unable to download video data: HTTP Error 500: Internal Server Error", True),
        ("ERROR: unable to download video data: HTTP Error 408: Request Timeout", True),
        ("ERROR: unable to download video data: HTTP Error 404: Not Found", False),
        ("ERROR: unable to download video data: HTTP Error 403: Forbidden", False),
        ("ERROR: [generic] Unable to download webpage: The read operation timed out", True),
        ("ERROR: Connection reset by peer", True),
        ("ERROR: [youtube] x: Sign in to confirm you're not a bot", True),
        ("ERROR: Unsupported URL: https://example.com/page", False),
        ("ERROR: [tiktok] 1: This video is private", False),
    ],
)
def test_classify_messages(message, retryable):
    text, is_retryable = classify(Exception(message))
    assert is_retryable is retryable
    assert not text.startswith("ERROR:")
    assert text == message.removeprefix("ERROR: ")


def test_classify_collapses_whitespace():
    assert classify(Exception("ERROR:  a\n  b\tc"))[0] == "a b c"


class _StatusError(Exception):
    def __init__(self, message, **attrs):
        super().__init__(message)
        for name, value in attrs.items():
            setattr(self, name, value)


@pytest.mark.parametrize(
    ("attrs", "retryable"),
    [
        ({"status": 503}, True),
        ({"status": 429}, True),
        ({"status": 404}, False),
        ({"code": 502}, True),
        ({"code": 410}, False),
        ({"code": 1, "status": "x"}, False),  # not HTTP statuses: falls back to the text
    ],
)
def test_classify_status_attributes(attrs, retryable):
    assert classify(_StatusError("request failed", **attrs))[1] is retryable


def test_classify_status_attribute_wins_over_text():
    assert classify(_StatusError("upstream says: try again later", status=404))[1] is False
    assert classify(_StatusError("HTTP Error 404: Not Found", status=503))[1] is True


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (429, True), (503, True)])
def test_classify_nested_via_exc_info(status, retryable):
    inner = urllib.error.HTTPError("https://example.com/v", status, "reason", None, None)
    outer = _StatusError("ERROR: download failed")
    outer.exc_info = (type(inner), inner, None)
    assert classify(outer)[1] is retryable


def test_classify_nested_via_cause():
    try:
        try:
            raise _StatusError("inner", status=502)
        except _StatusError as inner:
            raise RuntimeError("ERROR: wrapped") from inner
    except RuntimeError as outer:
        assert classify(outer) == ("wrapped", True)


def test_classify_self_referencing_exc_info_terminates():
    exc = _StatusError("ERROR: weird")
    exc.exc_info = (type(exc), exc, None)
    assert classify(exc) == ("weird", False)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/video.mp4", "file:///etc/passwd", "javascript:alert(1)", "/local/path.mp4", "data:,x", ""],
)
def test_check_url_allowed_refuses(url):
    with pytest.raises(DownloadFailure) as info:
        check_url_allowed(url, DownloadSettings())
    assert info.value.retryable is False
    assert "not allowed" in str(info.value)
    assert ("--allow-file-urls" in str(info.value)) is url.startswith("file:")


@pytest.mark.parametrize("url", ["http://example.com/a.mp4", "https://www.douyin.com/video/1", "HTTPS://X.COM/v"])
def test_check_url_allowed_accepts_http(url):
    assert check_url_allowed(url, DownloadSettings()) is None


def test_check_url_allowed_file_urls_when_asked():
    settings = DownloadSettings(allow_file_urls=True)
    assert check_url_allowed("file:///data/clip.mp4", settings) is None
    with pytest.raises(DownloadFailure) as info:
        check_url_allowed("ftp://example.com/x.mp4", settings)
    assert info.value.retryable is False

"""Source lists and video ids (emotions_data.sources): pure, no ffmpeg, no network."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.sources import (
    SourceError,
    is_safe_id,
    make_video_id,
    platform_of,
    read_source,
    read_sources,
    slugify,
)

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


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("urls.csv", "url,video_id\n", "urls.csv: no rows"),
        ("urls.txt", "# only a comment\n\n", "urls.txt: no URLs"),
        ("urls.txt", "", "urls.txt: no URLs"),
        ("urls.csv", "", "urls.csv: unreadable source"),
        ("urls.parquet", "url\nhttp://x/a.mp4\n", "urls.parquet: unreadable source"),
        ("urls.parquet", "", "urls.parquet: unreadable source"),
        ("urls.txt", b"\xff\xfe\x00bad", "urls.txt: unreadable source"),
    ],
)
def test_read_source_refuses_empty_and_unreadable_sources_naming_them(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SourceError, match=re.escape(expected)):
        read_source(path)


def test_read_source_header_only_parquet_has_no_rows(tmp_path):
    pd.DataFrame({"url": pd.Series([], dtype=str)}).to_parquet(tmp_path / "urls.parquet")
    with pytest.raises(SourceError, match=r"urls\.parquet: no rows"):
        read_source(tmp_path / "urls.parquet")


def test_read_source_folder_without_videos_or_unlistable(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match=r"in: no videos in this folder"):
        read_source(tmp_path / "in")


def test_read_source_that_is_a_fifo_or_a_dangling_link_is_named_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "urls.txt")
    with pytest.raises(SourceError, match=r"urls\.txt: not a regular file or a folder"):
        read_source(tmp_path / "urls.txt")
    (tmp_path / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(SourceError, match=r"gone\.csv: dangling symbolic link"):
        read_source(tmp_path / "gone.csv")


def test_a_folder_lists_every_video_named_entry_even_unreadable_ones(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub.mp4").mkdir(parents=True)  # a folder named like a video is searched, not an input
    (folder / "sub.mp4" / "inner.mp4").write_bytes(b"x")
    (folder / "good.mp4").write_bytes(b"x")
    os.mkfifo(folder / "fifo.mp4")
    (folder / "dangling.mp4").symlink_to(tmp_path / "missing.mp4")
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    sources = [Path(i.source) for i in read_source(folder)]
    assert [p.relative_to(folder).as_posix() for p in sources] == [
        "dangling.mp4", "fifo.mp4", "good.mp4", "loop.mp4", "sub.mp4/inner.mp4"
    ]  # fmt: skip


def test_a_malformed_url_is_an_input_not_an_unreadable_source(tmp_path):
    (tmp_path / "urls.txt").write_text("http://[::1/a.mp4\nhttp://bad host/b.mp4\n")
    items = read_source(tmp_path / "urls.txt")
    assert [i.platform for i in items] == [None, "bad host"] and all(is_safe_id(i.video_id) for i in items)

"""The platform metadata rules: scrubbing the info JSON, the manifest's platform columns, uploader groups, one item
per platform video, and fetch logs committed before the platform columns existed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data import url_shapes
from emotions_data.download import DownloadFailure, resolve
from emotions_data.platforms import platform_facts, platform_of_extractor, scrub_info, uploader_group
from emotions_data.schema import OUTCOME_FIELDS, PROBE_FIELDS, PROBE_STAGE_SCHEMA
from emotions_data.screening import platform_duplicates
from emotions_data.settings import DownloadSettings
from emotions_data.storage import StageLog


def test_scrubbing_drops_headers_cookies_media_addresses_local_paths_and_signatures():
    info = {
        "id": "7301", "webpage_url": "https://www.douyin.com/video/7301", "_type": "video",
        "http_headers": {"User-Agent": "x", "Cookie": "sid=1"}, "cookies": "sid_tt=secret",
        "url": "https://v26-web.douyinvod.com/a.mp4?x-signature=abc", "filepath": "/home/me/ds/originals/a.mp4",
        "formats": [{"format_id": "play_addr", "url": "https://cdn/a.mp4?sign=1", "http_headers": {"Referer": "r"},
                     "width": 320}],
        "thumbnail": "https://p3-sign.douyinpic.com/c.jpeg?x-expires=19&x-signature=def&from=4010",
        "uploader_url": "https://www.douyin.com/user/MS4w",
    }  # fmt: skip
    clean = scrub_info(info)
    assert clean == {
        "id": "7301", "webpage_url": "https://www.douyin.com/video/7301",
        "formats": [{"format_id": "play_addr", "width": 320}],
        "thumbnail": "https://p3-sign.douyinpic.com/c.jpeg?from=4010",
        "uploader_url": "https://www.douyin.com/user/MS4w",
    }  # fmt: skip


def test_platform_facts_name_the_account_and_the_upload_time():
    info = {"id": "7301", "uploader": "seaside_cat", "uploader_id": "1104", "channel_id": "MS4w", "title": "t",
            "timestamp": 1620905839, "duration": 19, "view_count": 5, "like_count": True,
            "tags": ["a", " ", "b"]}  # fmt: skip
    facts = platform_facts(info, "Douyin")
    assert facts["platform_video_id"] == "7301" and facts["uploader_id"] == "1104"
    assert facts["uploader_handle"] == "seaside_cat" and facts["tags"] == ["a", "b"]
    assert facts["upload_time"] == datetime(2021, 5, 13, 11, 37, 19, tzinfo=UTC)
    assert (facts["platform_duration_s"], facts["view_count"], facts["like_count"]) == (19.0, 5, None)
    assert platform_facts({"id": "clip", "upload_date": "20240102"}, "Generic")["platform_video_id"] is None
    assert platform_facts({"upload_date": "20240102"}, "Douyin")["upload_time"] == datetime(2024, 1, 2, tzinfo=UTC)


def test_uploader_groups_and_platform_names():
    assert uploader_group("douyin", "1104", "seaside_cat") == "douyin:1104"
    assert uploader_group("kuaishou", None, "小王") == "kuaishou:小王"
    assert uploader_group("douyin", None, None) is None
    assert [platform_of_extractor(k) for k in ("DouyinShare", "Kuaishou", "TikTokVM", "Youtube", "Generic", None)] == [
        "douyin", "kuaishou", "tiktok", "youtube", None, None]  # fmt: skip


def test_the_earliest_input_of_a_platform_video_is_the_item():
    inputs = [{"video_id": v, "input_index": i} for i, v in enumerate(["share", "page", "other", "failed", "mobile"])]
    ok = {"status": "ok", "resolved_platform": "douyin"}
    resolved = {
        "share": {**ok, "platform_video_id": "7301"}, "page": {**ok, "platform_video_id": "7301"},
        "other": {**ok, "resolved_platform": "tiktok", "platform_video_id": "7301"},
        "failed": {"status": "failed", "resolved_platform": None, "platform_video_id": None},
        "mobile": {**ok, "platform_video_id": "7301"},
    }  # fmt: skip
    assert platform_duplicates(inputs, resolved) == {"page": "share", "mobile": "share"}


def test_fetch_rows_committed_before_the_platform_columns_load_with_them_null(tmp_path):
    old = pa.schema([pa.field("video_id", pa.string(), nullable=False), *OUTCOME_FIELDS, *PROBE_FIELDS])
    log = StageLog(tmp_path / "fetch", PROBE_STAGE_SCHEMA)
    (tmp_path / "fetch").mkdir()
    row = {name: None for name in old.names} | {"video_id": "a", "status": "ok"}
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "fetch" / f"{1:020d}-old.parquet")
    loaded = log.load_table().to_pylist()
    assert loaded[0]["video_id"] == "a" and loaded[0]["platform_video_id"] is None and loaded[0]["tags"] is None


def test_the_plugin_extractors_are_found_when_their_folder_is_not_on_sys_path(tmp_path):
    """An editable install leaves `yt_dlp_plugins` in the source tree, whose folder is not on `sys.path` (the
    editable finder maps package names only): the downloader adds it before yt-dlp loads its plugins."""
    repo = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        f"import emotions_data.download as d\n"
        f"sys.path[:] = [p for p in sys.path if p not in ({str(repo)!r}, '')]\n"
        "d._load_plugins()\n"
        "from yt_dlp.extractor import gen_extractor_classes\n"
        "print(sorted(c.ie_key() for c in gen_extractor_classes() if 'emotions plugin' in (c.IE_DESC or '')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['DouyinPage', 'DouyinShare', 'Kuaishou', 'KuaishouShare']"


TT, DY, KS = "7301234567890123456", "7309876543210987654", "3xk5mq7wz2vhc4e"
TT_PAGE, DY_PAGE = f"https://www.tiktok.com/@seaside.cat/video/{TT}", f"https://www.douyin.com/video/{DY}"
KS_PAGE = f"https://www.kuaishou.com/short-video/{KS}"
#: One video of each platform in the shapes people paste: (URL, the canonical page it resolves to).
ONE_VIDEO_SHAPES = [
    (TT_PAGE, TT_PAGE),
    (f"https://www.tiktok.com/@seaside.cat/video/{TT}?is_from_webapp=1&sender_device=pc&web_id=7301", TT_PAGE),
    (f"https://www.tiktok.com/@seaside.cat/video/{TT}/", TT_PAGE),
    (f"https://www.tiktok.com/@seaside.cat/video/{TT}#comments", TT_PAGE),
    (f"HTTPS://WWW.TIKTOK.COM/@seaside.cat/video/{TT}", TT_PAGE),
    (f"https://TikTok.com/@seaside.cat/video/{TT}?_t=8kZ&_r=1", TT_PAGE),
    (f"https://tiktok.com/@seaside.cat/video/{TT}", TT_PAGE),
    (f"https://m.tiktok.com/@seaside.cat/video/{TT}", TT_PAGE),
    (f"https://www.tiktok.com/@other.handle/video/{TT}", f"https://www.tiktok.com/@other.handle/video/{TT}"),
    (f"https://www.tiktok.com/@/video/{TT}", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://m.tiktok.com/v/{TT}.html", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://m.tiktok.com/v/{TT}.html?u_code=d8&preview_pb=0&language=en", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://www.tiktok.com/embed/v2/{TT}", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://www.tiktok.com/embed/{TT}?lang=en", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://www.tiktok.com/player/v1/{TT}?autoplay=1", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://www.tiktok.com/share/video/{TT}", f"https://www.tiktok.com/@_/video/{TT}"),
    (f"https://www.tiktokv.com/share/video/{TT}/", f"https://www.tiktok.com/@_/video/{TT}"),
    (DY_PAGE, DY_PAGE),
    (f"https://www.douyin.com/video/{DY}?previous_page=app_code_link", DY_PAGE),
    (f"https://douyin.com/video/{DY}/", DY_PAGE),
    (f"HTTPS://WWW.DOUYIN.COM/video/{DY}#top", DY_PAGE),
    (f"https://www.iesdouyin.com/share/video/{DY}/?region=CN&mid=7301&u_code=0&did=MS4wL", DY_PAGE),
    (f"https://m.douyin.com/share/video/{DY}", DY_PAGE),
    (f"https://www.douyin.com/vsdetail/{DY}", DY_PAGE),
    (f"https://www.douyin.com/jingxuan?modal_id={DY}", DY_PAGE),
    (f"https://www.douyin.com/discover?modal_id={DY}&from=share", DY_PAGE),
    (f"https://www.douyin.com/user/MS4wLjABAAAAEKnf?modal_id={DY}&vid={DY}", DY_PAGE),
    (f"https://www.douyin.com/search/cat?aid=6383&modal_id={DY}&type=general", DY_PAGE),
    (KS_PAGE, KS_PAGE),
    (f"https://www.kuaishou.com/short-video/{KS}?authorId=3xauthor&streamSource=find&area=homexxbrilliant", KS_PAGE),
    (f"https://kuaishou.com/short-video/{KS}/", KS_PAGE),
    (f"https://WWW.KUAISHOU.COM/short-video/{KS}#x", KS_PAGE),
    (f"https://v.m.chenzhongtech.com/fw/photo/{KS}?fid=1533&cc=share_copylink&shareMethod=TOKEN", KS_PAGE),
    (f"https://m.gifshow.com/fw/photo/{KS}", KS_PAGE),
    (f"https://v.m.kuaishou.com/fw/photo/{KS}?fid=0", KS_PAGE),
    (f"https://m.kuaishou.com/fw/photo/{KS}", KS_PAGE),
    (f"https://www.kuaishou.com/short-video/x?photoId={KS}", KS_PAGE),
]
#: URLs that name no single video, and what the refusal calls them.
NOT_ONE_VIDEO_SHAPES = [
    ("https://www.tiktok.com/@seaside.cat", url_shapes.PROFILE),
    ("https://www.tiktok.com/@seaside.cat/?lang=en", url_shapes.PROFILE),
    ("https://TIKTOK.COM/@seaside.cat", url_shapes.PROFILE),
    ("https://www.tiktok.com/@seaside.cat/live", url_shapes.LIVE),
    (f"https://m.tiktok.com/share/live/{TT}/?language=en", url_shapes.LIVE),
    (f"https://www.tiktok.com/@seaside.cat/photo/{TT}", url_shapes.IMAGE_POST),
    (f"https://www.tiktok.com/@seaside.cat/collection/summer-{TT}", url_shapes.COLLECTION),
    ("https://www.tiktok.com/tag/cats", url_shapes.LISTING),
    (f"https://www.tiktok.com/music/original-sound-{TT}", url_shapes.LISTING),
    (f"https://www.douyin.com/note/{DY}", url_shapes.IMAGE_POST),
    (f"https://www.iesdouyin.com/share/note/{DY}/?region=CN", url_shapes.IMAGE_POST),
    ("https://www.douyin.com/user/MS4wLjABAAAAEKnf?from_tab_name=main", url_shapes.PROFILE),
    ("https://live.douyin.com/41526834417", url_shapes.LIVE),
    (f"https://www.douyin.com/collection/{DY}", url_shapes.COLLECTION),
    ("https://www.douyin.com/hashtag/1592", url_shapes.LISTING),
    ("https://www.kuaishou.com/profile/3xauthor9q8pd", url_shapes.PROFILE),
    ("https://live.kuaishou.com/u/3xauthor9q8pd", url_shapes.LIVE),
]
SHARE_SHAPES = [
    ("https://vm.tiktok.com/ZMhvqjqjQ/", "https://vm.tiktok.com/ZMhvqjqjQ/"),
    ("https://VT.TikTok.com/ZSe4FqkKd", "https://vt.tiktok.com/ZSe4FqkKd/"),
    ("https://tiktok.com/t/ZTRC5xgJp/?t=1", "https://www.tiktok.com/t/ZTRC5xgJp/"),
    ("https://v.douyin.com/iRNBho6/", "https://v.douyin.com/iRNBho6/"),
    ("https://V.DOUYIN.COM/iRNBho6?utm_source=copy", "https://v.douyin.com/iRNBho6/"),
    ("https://v.kuaishou.com/Kq7Xs2", "https://v.kuaishou.com/Kq7Xs2"),
    ("https://www.kuaishou.com/f/X-4hR9aQ2zk1", "https://www.kuaishou.com/f/X-4hR9aQ2zk1"),
]


@pytest.mark.parametrize(("url", "page"), ONE_VIDEO_SHAPES)
def test_every_shape_of_one_video_names_its_id_and_canonical_page(url, page):
    shape = url_shapes.url_shape(url)
    assert shape is not None and shape.one_video, url
    assert shape.url == page and shape.video_id == page.rstrip("/").rsplit("/", 1)[1]


@pytest.mark.parametrize(("url", "what"), NOT_ONE_VIDEO_SHAPES)
def test_urls_that_name_no_single_video_say_what_they_are(url, what):
    shape = url_shapes.url_shape(url)
    assert shape is not None and shape.refused and shape.kind == what and shape.video_id is None, url


@pytest.mark.parametrize(("url", "link"), SHARE_SHAPES)
def test_share_links_are_followed_in_one_spelling(url, link):
    shape = url_shapes.url_shape(url)
    assert shape is not None and shape.kind == url_shapes.SHARE and shape.url == link


@pytest.mark.parametrize("url", ["https://example.com/@a/video/7301234567890", "ftp://www.tiktok.com/@a/video/1",
                                 "https://www.tiktok.com/foryou", "https://www.douyin.com/", "not a url"])  # fmt: skip
def test_other_urls_are_left_to_yt_dlp(url):
    assert url_shapes.url_shape(url) is None


def test_resolving_needs_no_request_and_never_takes_a_handle_for_an_id(tmp_path):
    settings = DownloadSettings()
    for url, page in ONE_VIDEO_SHAPES[::4]:
        found = resolve(url, tmp_path / "w", settings)
        assert found is not None and (found.url, found.platform_video_id) == (page, page.rsplit("/", 1)[1])
    assert resolve(ONE_VIDEO_SHAPES[0][0], tmp_path, settings).extractor == "TikTok"
    for url, what in NOT_ONE_VIDEO_SHAPES[::3]:
        with pytest.raises(DownloadFailure) as refused:
            resolve(url, tmp_path / "w", settings)
        assert (refused.value.reason, refused.value.retryable) == ("not_one_video", False)
        assert what in str(refused.value) and url in str(refused.value)
    with pytest.raises(DownloadFailure, match=r"a list of videos \(vimeo:channel\), not one video"):
        resolve("https://vimeo.com/channels/staffpicks", tmp_path / "w", settings)
    # an extractor of channels or of videos (either): its id is no video's, the download tells which it is
    assert resolve("https://www.youtube.com/@SomeChannel/videos", tmp_path / "w", settings) is None
    assert resolve("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3", tmp_path / "w", settings).platform_video_id == (
        "dQw4w9WgXcQ"
    )

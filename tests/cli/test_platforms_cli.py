"""Kuaishou and Douyin through `emotions ingest`: the yt-dlp plugin extractors shipped with the package, on fixture
pages of the platforms' structure served under their real host names by the loopback proxy (HTTPS included).

One plain URL list (no uploader column) reaches two platform videos through every URL shape (share link, canonical
page with tracking parameters, mobile page, vsdetail, modal): each video is one item, downloaded once, with the
platform's metadata and an uploader group; a page of unknown structure fails with its own reason, once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.loopback import Route, serve
from tests.support.platform_pages import captcha_page, douyin_detail, ingest_via_proxy, kuaishou_page, redirect

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
KS_ID, KS_AUTHOR = "3xk5mq7wz2vhc4e", "3xauthor9q8pd"
DY_ID, DY_UID = "7301234567890123456", "110403406559"
KS_MEDIA = "https://v2.kwaicdn.com/upic/2026/k1.mp4?pkey=AAVx&clientCacheKey=k1.mp4&sign=4f2a9c&tt=b"
DY_MEDIA = "https://v26-web.douyinvod.com/video/tos/d1.mp4?a=6383&x-expires=1900000000&x-signature=U2lnbmVk"

URLS = [
    "https://v.kuaishou.com/Kq7Xs2",  # share link: first, so it is the item
    f"https://www.kuaishou.com/short-video/{KS_ID}?authorId={KS_AUTHOR}&streamSource=find&area=homexxbrilliant",
    f"https://v.m.chenzhongtech.com/fw/photo/{KS_ID}?fid=1533&cc=share_copylink&shareMethod=TOKEN",
    "https://www.kuaishou.com/short-video/3xbrokenpage00",  # a captcha wall instead of the page
    "https://v.douyin.com/iRNBho6/",
    f"https://www.douyin.com/vsdetail/{DY_ID}",
    f"https://www.douyin.com/jingxuan?modal_id={DY_ID}",
    "https://v.douyin.com/rT429x/?utm_source=copy",  # another share link of the same video: 429 once, then served
    "https://www.douyin.com/video/7309999999999999999",  # the detail API gives no video (Douyin wants cookies)
]


def _clip(path: Path, src: str, tone: int) -> None:
    subprocess.run([*FF, "-f", "lavfi", "-i", f"{src}=s=320x240:r=25:d=2", "-f", "lavfi", "-i",
                    f"sine=f={tone}:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(path)],
                   check=True)  # fmt: skip


def _routes() -> dict:
    ks_landing = f"https://www.kuaishou.com/short-video/{KS_ID}?fid=0&cc=share_copylink&shareId=18&utm_source=app"
    dy_landing = f"https://www.iesdouyin.com/share/video/{DY_ID}/?region=CN&mid=7301&u_code=0&did=MS4wL&with_sec_did=1"
    return {
        "v.kuaishou.com/Kq7Xs2": redirect(ks_landing),
        f"www.kuaishou.com/short-video/{KS_ID}": kuaishou_page(
            KS_ID,
            KS_AUTHOR,
            "小王的日常",
            KS_MEDIA,
            caption="今天好开心 #日常 #快乐",
            tags=["日常", "快乐"],
            timestamp_ms=1_700_000_000_000,
            duration_ms=2000,
            views=4321,
            likes=210,
        ),
        "www.kuaishou.com/short-video/3xbrokenpage00": captcha_page(),
        "v.douyin.com/iRNBho6/": redirect(dy_landing),
        "v.douyin.com/rT429x/": redirect(dy_landing),
        "www.douyin.com/aweme/v1/web/aweme/detail/?aweme_id=7309999999999999999": Route(
            200, body=b'{"status_code": 0, "aweme_detail": null}', content_type="application/json"
        ),
        f"www.iesdouyin.com/share/video/{DY_ID}/": captcha_page(),  # the landing page's body is never read
        f"www.douyin.com/aweme/v1/web/aweme/detail/?aweme_id={DY_ID}": douyin_detail(
            DY_ID,
            DY_UID,
            "seaside_cat",
            "海边的猫",
            DY_MEDIA,
            desc="#一起看海 出现在你的夏日里",
            create_time=1_620_905_839,
            duration_ms=2000,
            likes=1200,
            comments=45,
            shares=30,
        ),
    }


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("platforms")
    (root / "upic" / "2026").mkdir(parents=True)
    (root / "video" / "tos").mkdir(parents=True)
    _clip(root / "upic" / "2026" / "k1.mp4", "testsrc2", 330)
    _clip(root / "video" / "tos" / "d1.mp4", "smptebars", 550)
    urls = root / "urls.txt"
    urls.write_text("".join(f"{u}\n" for u in URLS))
    with serve(root, {"/rT429x/": [429]}, routes=_routes(), tls=True) as server:
        out = root / "ds"
        first = ingest_via_proxy(urls, out, server.proxy_url, attempts=3, backoff_s=0.0)
        hits_after_first = list(server.handler.host_log)
        again = ingest_via_proxy(urls, out, server.proxy_url, attempts=3, backoff_s=0.0)
        hits_after_again = list(server.handler.host_log)
        media_hits = {name: server.hits(name) for name in ("upic/2026/k1.mp4", "video/tos/d1.mp4")}
    frame = pd.read_parquet(out / "manifests" / "videos.parquet")
    return {"first": first, "again": again, "frame": frame, "out": out, "media_hits": media_hits,
            "log": hits_after_first, "log_again": hits_after_again[len(hits_after_first):]}  # fmt: skip


def test_each_platform_video_is_one_item_whatever_url_reached_it(ingested):
    assert ingested["first"].returncode == 0, ingested["first"].stderr
    rows = ingested["frame"].set_index("source").loc[URLS]
    ks, dy = rows.iloc[0], rows.iloc[4]
    assert (ks.status, ks.platform_video_id, ks.extractor) == ("ok", KS_ID, "Kuaishou")
    assert (dy.status, dy.platform_video_id, dy.extractor) == ("ok", DY_ID, "Douyin")
    for position, keeper in ((1, ks), (2, ks), (5, dy), (6, dy), (7, dy)):
        row = rows.iloc[position]
        assert (row.status, row.reason, row.dup_of) == ("rejected", "duplicate", keeper.video_id), row.reason_detail
        assert row.platform_video_id == keeper.platform_video_id and pd.isna(row.original_path)
    assert rows.iloc[7].attempts == 2, "a transient failure of a share link is retried"
    assert ingested["media_hits"] == {"upic/2026/k1.mp4": 1, "video/tos/d1.mp4": 1}, "each video downloaded once"
    # the mobile page and the vsdetail/modal shapes are resolved from the URL alone: no request for them
    assert not [e for e in ingested["log"] if e.startswith(("v.m.chenzhongtech.com", "www.douyin.com/vsdetail"))]


def test_the_platform_metadata_is_kept_and_gives_uploader_groups(ingested):
    rows = ingested["frame"].set_index("source").loc[URLS]
    ks, dy = rows.iloc[0], rows.iloc[4]
    assert ks.webpage_url == f"https://www.kuaishou.com/short-video/{KS_ID}"
    assert (ks.uploader_id, ks.uploader_handle, ks.uploader) == (KS_AUTHOR, "小王的日常", f"kuaishou:{KS_AUTHOR}")
    assert ks.title == ks.description == "今天好开心 #日常 #快乐" and list(ks.tags) == ["日常", "快乐"]
    assert ks.upload_time == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert (ks.platform_duration_s, ks.view_count, ks.like_count) == (2.0, 4321, 210)
    assert dy.webpage_url == f"https://www.douyin.com/video/{DY_ID}"
    assert (dy.uploader_id, dy.uploader_handle, dy.uploader) == (DY_UID, "seaside_cat", f"douyin:{DY_UID}")
    assert dy.description == "#一起看海 出现在你的夏日里" and dy.upload_time == pd.Timestamp("2021-05-13 11:37:19Z")
    assert (dy.like_count, dy.comment_count, dy.repost_count, dy.platform_duration_s) == (1200, 45, 30, 2.0)
    assert ks.status == dy.status == "ok" and ks.media_path and dy.media_path
    assert list(rows["platform"]) == ["kuaishou"] * 4 + ["douyin"] * 5, "mobile and share hosts name their platform"


def test_the_info_json_is_kept_without_headers_cookies_signatures_or_local_paths(ingested):
    out = ingested["out"]
    for row in ingested["frame"][ingested["frame"]["status"] == "ok"].itertuples():
        assert row.info_json_path == f"platform_info/{row.video_id}.info.json"
        text = (out / row.info_json_path).read_text(encoding="utf-8")
        info = json.loads(text)
        assert info["id"] == row.platform_video_id and info["webpage_url"] == row.webpage_url
        for secret in ("sign=4f2a9c", "x-signature", "U2lnbmVk", "c2lnbmF0dXJl", "http_headers", "User-Agent",
                       "cookies", str(out), "/tmp/"):  # fmt: skip
            assert secret not in text, secret
        assert not any(key.startswith("_") for key in info)


@pytest.mark.parametrize(
    ("position", "platform", "request_"),
    [(3, "kuaishou", "www.kuaishou.com/short-video/3xbrokenpage00"),
     (8, "douyin", "www.douyin.com/aweme/v1/web/aweme/detail/?aweme_id=7309999999999999999")],
)  # fmt: skip
def test_an_unrecognised_page_fails_once_with_its_own_reason(ingested, position, platform, request_):
    row = ingested["frame"].set_index("source").loc[URLS[position]]
    assert (row.status, row.reason, row.retryable) == ("failed", "unrecognised_page", False)
    assert row.reason_detail.startswith(f"{platform}: page structure not recognised") and "\n" not in row.reason_detail
    assert "EMOTIONS_COOKIES_FILE" in row.reason_detail and "max_requests_per_minute" in row.reason_detail
    assert ingested["log"].count(request_) == 1, "no blind retries"


def test_a_second_run_asks_the_platforms_nothing(ingested):
    assert ingested["again"].returncode == 0, ingested["again"].stderr
    assert ingested["log_again"] == [], "resolved, downloaded and failed permanently: nothing to ask again"

"""Platform URLs as people paste them, through `emotions ingest`, on fixture pages served under the platforms' real
host names by the loopback proxy (HTTPS included).

* TikTok: one video in pasted shapes (host in upper case, no `www`, `m.tiktok.com/v/ID.html`, `embed/v2`, a
  `vm.tiktok.com` share link) is one item, downloaded once.
* URLs that name no single video (a profile, a live room, a Douyin image post, a share link that leads to one, a page
  holding two videos) are refused before any media is fetched, permanently, saying what they are.
* Failures behind each platform extractor (HTTP 503 then 429, a timeout, a dropped connection; for Douyin hidden
  behind yt-dlp's "fresh cookies are needed") are transient: retried within the run and, when they last, on the
  next run, which then succeeds; only a page that answers with an unknown structure is `unrecognised_page`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.loopback import DROP, STALL, Route, serve
from tests.support.platform_pages import douyin_detail, ingest_via_proxy, kuaishou_page, redirect, tiktok_page

FF = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
TT = "7301000000000000001"
TT_MEDIA = "https://v16-webapp-prime.tiktok.com/video/tos/useast/t1.mp4?a=1988&expire=1900000000&signature=c2ln"
TT_OTHER_MEDIA = TT_MEDIA.replace("t1.mp4", "t2.mp4")  # the same bytes, for the pages the faults are scripted on
DY_MEDIA = "https://v26-web.douyinvod.com/video/tos/cn/d2.mp4?a=6383&x-expires=1900000000&x-signature=U2ln"
KS_MEDIA = "https://v2.kwaicdn.com/upic/2026/k2.mp4?pkey=AAVx&sign=4f2a9c"
TWO_VIDEOS = "http://clips.example.invalid/two.html"

SHAPES = [  # one TikTok video; the first is the item
    f"HTTPS://WWW.TIKTOK.COM/@seaside.cat/video/{TT}?is_from_webapp=1&sender_device=pc",
    f"https://tiktok.com/@seaside.cat/video/{TT}/",
    f"https://m.tiktok.com/v/{TT}.html?u_code=d8&language=en#x",
    f"https://www.tiktok.com/embed/v2/{TT}",
    "https://vm.tiktok.com/ZMvideo01/",
]
REFUSED = {  # URL -> words the refusal must say
    "https://www.tiktok.com/@seaside.cat": "a profile",
    "https://www.tiktok.com/@seaside.cat/live": "a live room",
    "https://www.douyin.com/note/7302000000000000009": "an image or slideshow post",
    "https://v.douyin.com/NoteLnk/": "leads to https://www.iesdouyin.com/share/note/7302000000000000009",
    "https://vm.tiktok.com/ZMprofile/": "a profile",
    f"https://www.tiktok.com/@seaside.cat/collection/summer-{TT}": "a collection or playlist",
    "https://live.douyin.com/41526834417": "a live room",
    "https://www.kuaishou.com/profile/3xauthor9q8pd": "a profile",
    TWO_VIDEOS: "holds 2 videos",
}
# Faults scripted per platform page: (platform, case) -> (video id, faults of its page in the first run).
CASES = {
    ("tiktok", "429 and 503"): ("7301000000000000429", [503, 429]),
    ("tiktok", "timeout"): ("7301000000000000408", [STALL, STALL]),
    ("tiktok", "dropped"): ("7301000000000000099", [DROP, DROP]),
    ("douyin", "429 once"): ("7302000000000000428", [429]),
    ("douyin", "429 and 503"): ("7302000000000000429", [503, 429]),
    ("douyin", "timeout"): ("7302000000000000408", [STALL, STALL]),
    ("douyin", "dropped"): ("7302000000000000099", [DROP, DROP]),
    ("kuaishou", "429 and 503"): ("3xfault429aaaaa", [503, 429]),
    ("kuaishou", "timeout"): ("3xfault408aaaaa", [STALL, STALL]),
    ("kuaishou", "dropped"): ("3xfault099aaaaa", [DROP, DROP]),
}
UNKNOWN = {  # a page that answers, in a structure no extractor knows
    "tiktok": "7301000000000000777",
    "douyin": "7302000000000000777",
    "kuaishou": "3xunknown777aaa",
}
_DETAIL = "/aweme/v1/web/aweme/detail/?aweme_id="


def _page_url(platform: str, video_id: str) -> str:
    return {
        "tiktok": f"https://www.tiktok.com/@seaside.cat/video/{video_id}",
        "douyin": f"https://www.douyin.com/video/{video_id}",
        "kuaishou": f"https://www.kuaishou.com/short-video/{video_id}",
    }[platform]


def _fault_path(platform: str, video_id: str) -> str:
    """The request the platform's extractor makes for the video's data (Douyin's, fetched non-fatally)."""
    return {"tiktok": f"/@seaside.cat/video/{video_id}", "douyin": f"{_DETAIL}{video_id}",
            "kuaishou": f"/short-video/{video_id}"}[platform]  # fmt: skip


def _page(platform: str, video_id: str) -> tuple[str, Route]:
    if platform == "tiktok":
        return f"www.tiktok.com/@seaside.cat/video/{video_id}", tiktok_page(
            video_id, "6897520", "seaside.cat", TT_MEDIA if video_id == TT else TT_OTHER_MEDIA, desc="海边 #cat",
            create_time=1_700_000_000, duration_s=1, plays=99)  # fmt: skip
    if platform == "douyin":
        return f"www.douyin.com{_DETAIL}{video_id}", douyin_detail(
            video_id, "1104", "seaside_cat", "海边的猫", DY_MEDIA, desc="看海", create_time=1_620_905_839,
            duration_ms=1000, likes=1, comments=2, shares=3)  # fmt: skip
    return f"www.kuaishou.com/short-video/{video_id}", kuaishou_page(
        video_id, "3xauthor", "小王", KS_MEDIA, caption="日常", tags=[], timestamp_ms=1_700_000_000_000,
        duration_ms=1000, views=1, likes=1)  # fmt: skip


def _routes() -> dict[str, Route]:
    routes = dict(_page(platform, video_id) for (platform, _), (video_id, _) in CASES.items())
    routes.update([_page("tiktok", TT)])
    routes |= {
        f"www.tiktok.com/@seaside.cat/video/{UNKNOWN['tiktok']}": Route(200, body=b"<html><body>hi</body></html>"),
        f"www.douyin.com{_DETAIL}{UNKNOWN['douyin']}": Route(200, body=b"<html>not json</html>"),
        f"www.kuaishou.com/short-video/{UNKNOWN['kuaishou']}": Route(
            200, body=b'<script>window.__APOLLO_STATE__={"defaultClient":{"x":1}};</script>'
        ),
        # where share links lead (followed by the redirect, their bodies never read)
        "www.tiktok.com/@seaside.cat": Route(200, body=b"<html>profile</html>"),
        "www.iesdouyin.com/share/note/7302000000000000009/": Route(200, body=b"<html>note</html>"),
        "vm.tiktok.com/ZMvideo01/": redirect(f"https://www.tiktok.com/@seaside.cat/video/{TT}?_r=1&_t=8kZ"),
        "vm.tiktok.com/ZMprofile/": redirect("https://www.tiktok.com/@seaside.cat?_t=8kZ&_r=1"),
        "v.douyin.com/NoteLnk/": redirect("https://www.iesdouyin.com/share/note/7302000000000000009/?region=CN"),
        "clips.example.invalid/two.html": Route(
            200, body=b'<html><body><video src="/c/a.mp4"></video><video src="/c/b.mp4"></video></body></html>'
        ),
    }
    return routes


def _clip(path: Path, picture: str, tone: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*FF, "-f", "lavfi", "-i", f"{picture}=s=320x240:r=25:d=1", "-f", "lavfi", "-i",
                    f"sine=f={tone}:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(path)],
                   check=True)  # fmt: skip


def _inputs() -> list[str]:
    urls = [*SHAPES, *REFUSED]
    urls += [_page_url(platform, video_id) for (platform, _), (video_id, _) in CASES.items()]
    return urls + [_page_url(platform, video_id) for platform, video_id in UNKNOWN.items()]


def _fetched(row: pd.Series) -> bool:
    """Fetched: ok, or the same content as an earlier item's (the fixtures share media)."""
    return pd.isna(row.reason) or row.reason == "duplicate"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("platform-inputs")
    clips = [("video/tos/useast/t1.mp4", "testsrc2", 300), ("video/tos/cn/d2.mp4", "smptebars", 500),
             ("upic/2026/k2.mp4", "rgbtestsrc", 700), ("c/a.mp4", "testsrc", 900)]  # fmt: skip
    for media, picture, tone in clips:
        _clip(root / media, picture, tone)
    (root / "c" / "b.mp4").write_bytes((root / "c" / "a.mp4").read_bytes())
    (root / "video/tos/useast/t2.mp4").write_bytes((root / "video/tos/useast/t1.mp4").read_bytes())
    urls = root / "urls.txt"
    urls.write_text("".join(f"{u}\n" for u in _inputs()))
    faults = {_fault_path(platform, video_id): list(codes) for (platform, _), (video_id, codes) in CASES.items()}
    with serve(root, faults, routes=_routes(), tls=True) as server:
        out, settings = root / "ds", {"attempts": 2, "backoff_s": 0.0, "socket_timeout_s": 1.0}
        first = ingest_via_proxy(urls, out, server.proxy_url, **settings)
        frame_first = pd.read_parquet(out / "manifests" / "videos.parquet").set_index("source")
        log_first = list(server.handler.host_log)
        again = ingest_via_proxy(urls, out, server.proxy_url, **settings)
        log_again = list(server.handler.host_log)[len(log_first) :]
        media_hits = {name: server.hits(name) for name in ("video/tos/useast/t1.mp4", "c/a.mp4", "c/b.mp4")}
    frame = pd.read_parquet(out / "manifests" / "videos.parquet").set_index("source")
    return {"first": first, "again": again, "frame_first": frame_first, "frame": frame, "log_first": log_first,
            "log_again": log_again, "media_hits": media_hits}  # fmt: skip


def test_pasted_shapes_of_one_tiktok_video_are_one_item_downloaded_once(ingested):
    assert ingested["first"].returncode == 0, ingested["first"].stderr
    rows = ingested["frame"].loc[SHAPES]
    keeper = rows.iloc[0]
    assert (keeper.status, keeper.platform, keeper.platform_video_id, keeper.extractor) == (
        "ok",
        "tiktok",
        TT,
        "TikTok",
    )
    assert (keeper.uploader_handle, keeper.uploader) == ("seaside.cat", "tiktok:6897520")
    for source, row in rows.iloc[1:].iterrows():
        assert (row.status, row.reason, row.dup_of) == ("rejected", "duplicate", keeper.video_id), source
        assert row.platform_video_id == TT, source
    assert ingested["media_hits"]["video/tos/useast/t1.mp4"] == 1, "downloaded once, not once per shape"


@pytest.mark.parametrize("url", list(REFUSED))
def test_a_url_that_names_no_single_video_is_refused_before_download(ingested, url):
    row = ingested["frame"].loc[url]
    assert (row.status, row.reason, row.retryable) == ("failed", "not_one_video", False)
    assert REFUSED[url] in row.reason_detail and "\n" not in row.reason_detail
    assert pd.isna(row.platform_video_id) and pd.isna(row.original_path) and pd.isna(row.sha256)
    assert ingested["media_hits"]["c/a.mp4"] == ingested["media_hits"]["c/b.mp4"] == 0, "nothing downloaded"
    never_asked = (
        "www.tiktok.com/@seaside.cat/live",
        "www.tiktok.com/@seaside.cat/collection",
        "www.douyin.com/note",
        "live.",
        "www.kuaishou.com/profile",
        "clips.example.invalid/c/",
    )
    assert not [e for e in ingested["log_first"] if e.startswith(never_asked)]


@pytest.mark.parametrize(("platform", "case"), list(CASES))
def test_a_failure_behind_each_platform_extractor_is_transient(ingested, platform, case):
    video_id, codes = CASES[(platform, case)]
    url = _page_url(platform, video_id)
    first, final = ingested["frame_first"].loc[url], ingested["frame"].loc[url]
    if len(codes) == 1:  # failed once: retried within the run
        assert first.status in ("ok", "rejected") and _fetched(first), first.reason_detail
        assert first.attempts == 2 and first.platform_video_id == video_id
    else:  # failed on every try of the run: retryable, and the next run fetches it
        assert (first.status, first.reason, first.retryable) == ("failed", "download_error", True), first.reason_detail
        assert first.attempts == 2
        if platform == "douyin":  # the failure yt-dlp only warned about, then what it said instead
            assert first.reason_detail.startswith("douyin: ") and "fresh cookies" in first.reason_detail.lower()
        words = {"429 and 503": "HTTP Error 429", "timeout": "timed out", "dropped": "closed connection"}[case]
        assert words in first.reason_detail, first.reason_detail
        if platform == "douyin":  # the warnings are kept with the item
            assert any(words in warning for warning in first.download_warnings), first.download_warnings
        assert final.status in ("ok", "rejected") and _fetched(final), final.reason_detail
        assert final.sha256 and final.platform_video_id == video_id


@pytest.mark.parametrize("platform", list(UNKNOWN))
def test_only_a_page_of_unknown_structure_is_unrecognised(ingested, platform):
    row = ingested["frame"].loc[_page_url(platform, UNKNOWN[platform])]
    assert (row.status, row.reason, row.retryable) == ("failed", "unrecognised_page", False), row.reason_detail
    assert row.reason_detail.startswith(f"{platform}: page structure not recognised")


def test_the_next_run_asks_again_only_for_what_failed_transiently(ingested):
    assert ingested["again"].returncode == 0, ingested["again"].stderr
    media_hosts = tuple(u.split("/")[2] for u in (TT_MEDIA, DY_MEDIA, KS_MEDIA))
    asked = sorted(entry for entry in ingested["log_again"] if not entry.startswith(media_hosts))
    transient = [(p, v) for (p, _), (v, codes) in CASES.items() if len(codes) > 1]
    assert asked == sorted(f"www.{p}.com{_fault_path(p, v)}" for p, v in transient)

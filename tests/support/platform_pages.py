"""Fixture pages of the structure Kuaishou, Douyin and TikTok serve, for the loopback server's proxy under the real
host names: a Kuaishou short-video page with its Apollo cache (`window.__APOLLO_STATE__`), Douyin's web detail API
answer (`aweme_detail`), a TikTok video page with its rehydration data (`__UNIVERSAL_DATA_FOR_REHYDRATION__`), and
the share links' redirects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from emotions_data.loopback import Route
from tests.support.commands import run_cli


def kuaishou_page(photo_id: str, author_id: str, author_name: str, media_url: str, *, caption: str,
                  tags: list[str], timestamp_ms: int, duration_ms: int, views: int, likes: int) -> Route:  # fmt: skip
    """www.kuaishou.com/short-video/<photo_id>: the data sits in the page's Apollo GraphQL cache."""
    root = f'$ROOT_QUERY.visionVideoDetail({{"page":"detail","photoId":"{photo_id}"}})'
    client: dict[str, object] = {
        f"VisionVideoDetailPhoto:{photo_id}": {
            "id": photo_id, "duration": duration_ms, "caption": caption, "likeCount": "1.2w", "realLikeCount": likes,
            "coverUrl": f"https://p2.a.yximgs.com/upic/cover/{photo_id}.jpg?tag=1-1&clientCacheKey={photo_id}.jpg",
            "photoUrl": media_url, "timestamp": timestamp_ms, "viewCount": views, "videoRatio": 1.33,
            "__typename": "VisionVideoDetailPhoto",
        },
        f"VisionVideoDetailAuthor:{author_id}": {
            "id": author_id, "name": author_name, "following": False, "__typename": "VisionVideoDetailAuthor",
        },
        root: {
            "status": 1, "type": "NORMAL",
            "author": {"type": "id", "generated": False, "id": f"VisionVideoDetailAuthor:{author_id}",
                       "typename": "VisionVideoDetailAuthor"},
            "photo": {"type": "id", "generated": False, "id": f"VisionVideoDetailPhoto:{photo_id}",
                      "typename": "VisionVideoDetailPhoto"},
            "tags": [{"type": "id", "generated": True, "id": f"{root}.tags.{i}", "typename": "Tag"}
                     for i in range(len(tags))],
            "__typename": "VisionVideoDetail",
        },
        **{f"{root}.tags.{i}": {"type": 1, "name": name, "__typename": "Tag"} for i, name in enumerate(tags)},
    }  # fmt: skip
    state = json.dumps({"defaultClient": client, "clients": {}}, ensure_ascii=False)
    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>快手</title></head><body><div id="app"></div>'
        f"<script>window.__INITIAL_STATE__={{}};window.__APOLLO_STATE__={state};(function(){{var s;"
        "(s=document.currentScript||document.scripts[document.scripts.length-1]).parentNode.removeChild(s);}());"
        "</script></body></html>"
    )
    return Route(200, body=html.encode())


def captcha_page() -> Route:
    """What a platform shows instead of the video when it wants a human: no data the extractor knows."""
    html = '<!DOCTYPE html><html><head><title>验证</title></head><body><div id="captcha"></div></body></html>'
    return Route(200, body=html.encode())


def douyin_detail(aweme_id: str, uid: str, handle: str, nickname: str, media_url: str, *, desc: str,
                  create_time: int, duration_ms: int, likes: int, comments: int, shares: int) -> Route:  # fmt: skip
    """www.douyin.com/aweme/v1/web/aweme/detail/?aweme_id=<id>: what yt-dlp's Douyin extractor reads."""
    detail = {
        "aweme_detail": {
            "aweme_id": aweme_id, "desc": desc, "create_time": create_time,
            "author": {"uid": uid, "unique_id": handle, "nickname": nickname, "sec_uid": f"MS4wLjABAAAA{uid}"},
            "statistics": {"digg_count": likes, "comment_count": comments, "share_count": shares,
                           "collect_count": 3},
            "video": {
                "duration": duration_ms, "width": 320, "height": 240,
                "play_addr": {"url_list": [media_url], "width": 320, "height": 240, "uri": f"v0d00fg{aweme_id}"},
                "cover": {"url_list": [f"https://p3-sign.douyinpic.com/obj/{aweme_id}.jpeg?x-expires=1900000000"
                                       "&x-signature=c2lnbmF0dXJl"]},
            },
            "music": {"title": f"@{nickname}创作的原声", "author": nickname, "duration": duration_ms // 1000},
        },
        "status_code": 0,
    }  # fmt: skip
    return Route(200, body=json.dumps(detail, ensure_ascii=False).encode(), content_type="application/json")


def redirect(location: str) -> Route:
    return Route(302, {"Location": location})


def tiktok_page(video_id: str, author_id: str, handle: str, media_url: str, *, desc: str, create_time: int,
                duration_s: int, plays: int) -> Route:  # fmt: skip
    """www.tiktok.com/@<handle>/video/<video_id>: the data sits in the page's rehydration script."""
    item = {
        "id": video_id, "desc": desc, "createTime": str(create_time),
        "author": {"id": author_id, "uniqueId": handle, "nickname": handle.title(), "secUid": f"MS4wLjAB{author_id}"},
        "video": {"duration": duration_s, "width": 320, "height": 240, "playAddr": media_url,
                  "cover": f"https://p16-sign.tiktokcdn.com/obj/{video_id}.jpeg?x-expires=1900000000&x-signature=c2ln"},
        "stats": {"playCount": plays, "diggCount": 12, "shareCount": 3, "commentCount": 4, "collectCount": 1},
        "music": {"title": "original sound", "authorName": handle, "duration": duration_s},
    }  # fmt: skip
    data = {"__DEFAULT_SCOPE__": {"webapp.video-detail": {"statusCode": 0, "statusMsg": "ok",
                                                          "itemInfo": {"itemStruct": item}}}}  # fmt: skip
    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>TikTok</title></head><body><div id="app"></div>'
        '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
        f"{json.dumps(data, ensure_ascii=False)}</script></body></html>"
    )
    return Route(200, body=html.encode())


def ingest_via_proxy(urls: Path, out: Path, proxy_url: str, **download: float) -> subprocess.CompletedProcess:
    """`emotions ingest` of the URL list `urls` into `out`, one worker, every request through the loopback proxy at
    `proxy_url` (its certificates unchecked), with these `[ingest.download]` settings besides."""
    config = out.parent / f"{out.name}.toml"
    settings = {"proxy": f'"{proxy_url}"', "check_certificates": "false", **{k: repr(v) for k, v in download.items()}}
    config.write_text("[ingest.download]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    return run_cli("ingest", str(urls), "--out", str(out), "--workers", "1", "--config", str(config))

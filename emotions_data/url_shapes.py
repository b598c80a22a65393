"""What a pasted TikTok, Douyin or Kuaishou URL names, read from the URL alone (no request).

People paste one video in many shapes: the host in any letter case, with or without ``www.`` or ``m.``, share and
embed hosts, tracking parameters, fragments, trailing slashes, another account's handle in the path, a page that
opens the video in a modal (``?modal_id=ID``). :func:`url_shape` reads all of them to the video's id and its
canonical page, so one video is one item before anything is downloaded. It also names the URLs that are not one
video (a profile, a live room, a collection, a tag or sound page, an image post), which are refused before download,
and the share links that only a redirect resolves (``vm.tiktok.com``, ``v.douyin.com``, ``v.kuaishou.com``).

The shapes are those of the platforms' own links as shared from their apps and web pages, and of the URL patterns
of yt-dlp's TikTok and Douyin extractors and the Kuaishou plugin shipped with emotions. A URL of these platforms
that matches none of them is left to yt-dlp (None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

VIDEO = "video"  # one video: `video_id` and its canonical `url`
SHARE = "share"  # a share link: its redirect names what it is

#: What a URL that names no single video is, as the refusal says it.
PROFILE = "a profile (an account's page)"
LIVE = "a live room"
COLLECTION = "a collection or playlist"
LISTING = "a page listing many videos (a tag, sound or search page)"
IMAGE_POST = "an image or slideshow post"


@dataclass(frozen=True)
class UrlShape:
    """What a platform URL names: `kind` is `VIDEO`, `SHARE` or one of the refusals (`PROFILE`, `LIVE`...);
    `url` the canonical page of a video, the share link to follow, or the URL as given."""

    platform: str
    kind: str
    url: str
    video_id: str | None = None

    @property
    def one_video(self) -> bool:
        return self.kind == VIDEO

    @property
    def refused(self) -> bool:
        return self.kind not in (VIDEO, SHARE)


def _host(netloc_host: str) -> str:
    """The host without a trailing dot and without the `www.` or `m.` the platforms serve the same pages under."""
    host = netloc_host.rstrip(".")
    for prefix in ("www.", "m."):
        if host.startswith(prefix) and host.count(".") > 1:
            host = host[len(prefix) :]
    return host


def _on(host: str, *domains: str) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _refused(platform: str, patterns: tuple[tuple[re.Pattern[str], str], ...], path: str, url: str) -> UrlShape | None:
    """The refusal whose pattern `path` matches, else None."""
    return next((UrlShape(platform, what, url) for pattern, what in patterns if pattern.fullmatch(path)), None)


_TIKTOK_VIDEO = re.compile(
    r"/(?:@(?P<handle>[\w.-]*)/video|share/video|embed(?:/v2)?|player/v1|v|video)/(?P<id>\d{6,})(?:\.html)?/?$"
)
_TIKTOK_REFUSED = (
    (re.compile(r"/@[\w.-]*/photo/\d+/?$"), IMAGE_POST),
    (re.compile(r"/(?:@[\w.-]+/live|share/live/\d+|live(?:/.*)?)/?$"), LIVE),
    (re.compile(r"/@[\w.-]+/(?:collection|playlist)/[^/]+/?$"), COLLECTION),
    (re.compile(r"/(?:tag|music|sticker|discover|search|channel)(?:/.*)?$"), LISTING),
    (re.compile(r"/@[\w.-]+/?$"), PROFILE),
)


def _tiktok(host: str, path: str, url: str) -> UrlShape | None:
    if (found := re.fullmatch(r"/t/(\w+)/?", path)) is not None:
        return UrlShape("tiktok", SHARE, f"https://www.tiktok.com/t/{found.group(1)}/")
    if (found := _TIKTOK_VIDEO.fullmatch(path)) is not None:
        video_id, handle = found.group("id"), found.group("handle") or "_"
        return UrlShape("tiktok", VIDEO, f"https://www.tiktok.com/@{handle}/video/{video_id}", video_id)
    return _refused("tiktok", _TIKTOK_REFUSED, path, url)


_DOUYIN_VIDEO = re.compile(r"/(?:video|share/video|vsdetail)/(?P<id>\d{6,})/?$")
_DOUYIN_REFUSED = (
    (re.compile(r"/(?:share/)?(?:note|slides)/\d+/?$"), IMAGE_POST),
    (re.compile(r"/(?:share/)?user/[^/]+/?$"), PROFILE),
    (re.compile(r"/(?:share/)?(?:collection|mix|series)/\d+(?:/.*)?$"), COLLECTION),
    (re.compile(r"/(?:follow/live|root/live|live)(?:/.*)?$"), LIVE),
    (re.compile(r"/(?:hashtag|music|search|topic)(?:/.*)?$"), LISTING),
)


def _douyin(host: str, path: str, query: dict[str, list[str]], url: str) -> UrlShape | None:
    if host == "live.douyin.com":
        return UrlShape("douyin", LIVE, url)
    modal = (query.get("modal_id") or [""])[0]
    found = _DOUYIN_VIDEO.fullmatch(path)
    video_id = modal if modal.isdigit() else found.group("id") if found else None
    if video_id:
        return UrlShape("douyin", VIDEO, f"https://www.douyin.com/video/{video_id}", video_id)
    return _refused("douyin", _DOUYIN_REFUSED, path, url)


_KUAISHOU_VIDEO = re.compile(r"/(?:short-video|fw/photo|photo)/(?P<id>[0-9A-Za-z_-]{6,})/?$")
_KUAISHOU_REFUSED = (
    (re.compile(r"/(?:profile|fw/user|u)/[^/]+/?$"), PROFILE),
    (re.compile(r"/(?:search|tag|fw/tag)(?:/.*)?$"), LISTING),
)


def _kuaishou(host: str, path: str, query: dict[str, list[str]], url: str) -> UrlShape | None:
    if host == "kuaishou.com" and (found := re.fullmatch(r"/f/([0-9A-Za-z_-]+)/?", path)) is not None:
        return UrlShape("kuaishou", SHARE, f"https://www.kuaishou.com/f/{found.group(1)}")
    if host.startswith("live.") or host.startswith("livev."):
        return UrlShape("kuaishou", LIVE, url)
    found = _KUAISHOU_VIDEO.fullmatch(path)
    photo = (query.get("photoId") or [""])[0]
    video_id = found.group("id") if found else photo if re.fullmatch(r"[0-9A-Za-z_-]{6,}", photo) else None
    if video_id:
        return UrlShape("kuaishou", VIDEO, f"https://www.kuaishou.com/short-video/{video_id}", video_id)
    return _refused("kuaishou", _KUAISHOU_REFUSED, path, url)


#: Share-link hosts whose path is one short code (the platform's redirect names the video): platform, link as kept.
_SHARE_CODE_HOSTS = {
    "vm.tiktok.com": ("tiktok", "https://vm.tiktok.com/{code}/"),
    "vt.tiktok.com": ("tiktok", "https://vt.tiktok.com/{code}/"),
    "v.douyin.com": ("douyin", "https://v.douyin.com/{code}/"),
    "v.kuaishou.com": ("kuaishou", "https://v.kuaishou.com/{code}"),
}


def url_shape(url: str) -> UrlShape | None:
    """What `url` names on TikTok, Douyin or Kuaishou, from the URL alone; None for any other URL and for a
    platform URL of no known shape (yt-dlp then decides). Host letter case, ``www.``/``m.``, the query (but
    ``modal_id``/``photoId``), the fragment and a trailing slash do not change the answer."""
    try:
        parts = urlsplit(url.strip())
        netloc_host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    host, path = _host(netloc_host), re.sub(r"/{2,}", "/", parts.path or "/")
    query = parse_qs(parts.query)
    if host in _SHARE_CODE_HOSTS and (code := path.strip("/")) and "/" not in code:
        platform, page = _SHARE_CODE_HOSTS[host]
        return UrlShape(platform, SHARE, page.format(code=code))
    if _on(host, "tiktok.com", "tiktokv.com"):
        return _tiktok(host, path, url)
    if _on(host, "douyin.com", "iesdouyin.com"):
        return _douyin(host, path, query, url)
    if _on(host, "kuaishou.com", "chenzhongtech.com", "gifshow.com"):
        return _kuaishou(host, path, query, url)
    return None

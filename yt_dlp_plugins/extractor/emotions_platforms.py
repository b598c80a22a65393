"""yt-dlp extractors for the short-video platforms eMotions was collected from, where yt-dlp has none of its own.

Shipped with the `emotions` package as a yt-dlp plugin (the `yt_dlp_plugins.extractor` namespace package), so both
`emotions ingest` and a plain `yt-dlp` run in the same environment use them without set-up.

* Kuaishou: canonical pages (``www.kuaishou.com/short-video/ID``), the mobile pages a share link may lead to
  (``v.m.chenzhongtech.com/fw/photo/ID``, ``m.gifshow.com/fw/photo/ID``), and share links (``v.kuaishou.com/CODE``,
  ``www.kuaishou.com/f/CODE``, resolved by following their redirect). The canonical page carries its data as an
  Apollo GraphQL cache, ``window.__APOLLO_STATE__ = {"defaultClient": {...}}``: the photo under
  ``VisionVideoDetailPhoto:<ID>`` (caption, ``photoUrl``, duration and timestamp in milliseconds, view and like
  counts), its author under ``VisionVideoDetailAuthor:<AUTHOR>`` (``id``, ``name``), referenced from the root query
  ``visionVideoDetail(...)`` together with the video's tags.
* Douyin: the URL shapes yt-dlp's own Douyin extractor does not match, i.e. share links (``v.douyin.com/CODE``),
  the share pages they lead to (``www.iesdouyin.com/share/video/ID``), ``www.douyin.com/vsdetail/ID`` and pages that
  open a video in a modal (``?modal_id=ID``). Each is resolved to the video id and handed to yt-dlp's own Douyin
  extractor (``www.douyin.com/video/ID``), which reads the web detail API.

A share link that leads to something other than a video (an image post, a profile) is handed on as the URL it leads
to, so whoever reads that URL tells what it is (emotions refuses it: `emotions_data.url_shapes`).

A page whose structure is not recognised (a changed layout, a captcha or login wall) raises an `ExtractorError`
whose message starts with ``<platform>: page structure not recognised``: callers tell it from network failures by
those words, and retrying the same request at once does not help.
"""

from __future__ import annotations

import re
import urllib.parse

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError, int_or_none, str_or_none, traverse_obj, url_or_none

NOT_RECOGNISED = "page structure not recognised"


def _not_recognised(platform: str, what: str) -> ExtractorError:
    return ExtractorError(f"{platform}: {NOT_RECOGNISED} ({what})", expected=True)


def _ms(value: object) -> float | None:
    number = int_or_none(value)
    return number / 1000 if number is not None else None


class KuaishouIE(InfoExtractor):
    IE_NAME = "kuaishou"
    IE_DESC = "Kuaishou short videos (emotions plugin)"
    _VALID_URL = (
        r"https?://(?:(?:www\.)?kuaishou\.com/short-video|(?:v\.m\.chenzhongtech\.com|m\.gifshow\.com"
        r"|v\.m\.kuaishou\.com|m\.kuaishou\.com)/fw/photo)/(?P<id>[0-9A-Za-z_-]+)"
    )

    @staticmethod
    def canonical_url(video_id: str) -> str:
        return f"https://www.kuaishou.com/short-video/{video_id}"

    def _real_extract(self, url: str) -> dict:
        video_id = self._match_id(url)
        page_url = self.canonical_url(video_id)
        webpage = self._download_webpage(page_url, video_id)
        state = self._search_json(
            r"window\.__APOLLO_STATE__\s*=", webpage, "Apollo state", video_id, default=None, fatal=False
        )
        client = traverse_obj(state, ("defaultClient", {dict}))
        if not client:
            raise _not_recognised("kuaishou", f"no Apollo state in {page_url}")

        def deref(value: object) -> object:
            if isinstance(value, dict) and value.get("type") == "id" and isinstance(value.get("id"), str):
                return client.get(value["id"])
            return value

        root = next(
            (v for k, v in client.items() if k.startswith("$ROOT_QUERY.visionVideoDetail(") and isinstance(v, dict)),
            {},
        )
        photo = deref(root.get("photo")) or client.get(f"VisionVideoDetailPhoto:{video_id}")
        if not isinstance(photo, dict):
            raise _not_recognised("kuaishou", f"no photo {video_id} in {page_url}")
        media_url = url_or_none(photo.get("photoUrl")) or traverse_obj(
            photo, ("manifest", "adaptationSet", ..., "representation", ..., "url", {url_or_none}), get_all=False
        )
        if not media_url:
            raise _not_recognised("kuaishou", f"no video address for {video_id} in {page_url}")
        author = deref(root.get("author"))
        if not isinstance(author, dict):
            author = next((v for k, v in client.items() if k.startswith("VisionVideoDetailAuthor:")), {})
        tags = [deref(tag) for tag in root.get("tags") or []]
        caption = str_or_none(photo.get("caption"))
        author_id = str_or_none(author.get("id"))
        return {
            "id": str(photo.get("id") or video_id),
            "title": caption[:72] if caption else video_id,
            "description": caption,
            "url": media_url,
            "ext": "mp4",
            "webpage_url": page_url,
            "duration": _ms(photo.get("duration")),
            "timestamp": _ms(photo.get("timestamp")),
            "view_count": int_or_none(photo.get("viewCount")),
            "like_count": int_or_none(photo.get("realLikeCount") or photo.get("likeCount")),
            "uploader": str_or_none(author.get("name")),
            "uploader_id": author_id,
            "uploader_url": f"https://www.kuaishou.com/profile/{author_id}" if author_id else None,
            "tags": [t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)],
            "thumbnail": url_or_none(photo.get("coverUrl")),
        }


def _query_value(url: str, *names: str) -> str | None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return next((query[name][0] for name in names if query.get(name)), None)


class KuaishouShareIE(InfoExtractor):
    IE_NAME = "kuaishou:share"
    IE_DESC = "Kuaishou share links (emotions plugin)"
    _VALID_URL = r"https?://(?:v\.kuaishou\.com|(?:www\.)?kuaishou\.com/f)/(?P<id>[0-9A-Za-z_-]+)/?(?:[?#]|$)"

    def _real_extract(self, url: str) -> dict:
        code = self._match_id(url)
        landed = self._request_webpage(url, code, "Resolving share link").url
        match = re.match(KuaishouIE._VALID_URL, landed)
        video_id = match.group("id") if match else _query_value(landed, "photoId", "shareObjectId")
        if not video_id:  # a profile, a live room: whoever reads the URL it leads to tells what it is
            return self.url_result(landed)
        return self.url_result(KuaishouIE.canonical_url(video_id), KuaishouIE, video_id)


_DOUYIN_ID = re.compile(r"/(?:share/video|video|vsdetail)/(?P<id>\d+)")


def _douyin_video_url(video_id: str) -> str:
    return f"https://www.douyin.com/video/{video_id}"


class DouyinShareIE(InfoExtractor):
    IE_NAME = "douyin:share"
    IE_DESC = "Douyin share links (emotions plugin), handed to yt-dlp's Douyin extractor"
    _VALID_URL = r"https?://v\.douyin\.com/(?P<id>[0-9A-Za-z_-]+)/?(?:[?#]|$)"

    def _real_extract(self, url: str) -> dict:
        code = self._match_id(url)
        landed = self._request_webpage(url, code, "Resolving share link").url
        match = _DOUYIN_ID.search(urllib.parse.urlsplit(landed).path)
        video_id = match.group("id") if match else _query_value(landed, "modal_id", "aweme_id", "vid")
        if not video_id or not video_id.isdigit():  # an image post, a profile: the URL it leads to tells what it is
            return self.url_result(landed)
        return self.url_result(_douyin_video_url(video_id), "Douyin", video_id)


class DouyinPageIE(InfoExtractor):
    IE_NAME = "douyin:page"
    IE_DESC = "Douyin pages other than /video/ID (emotions plugin), handed to yt-dlp's Douyin extractor"
    _VALID_URL = (
        r"https?://(?:(?:www\.)?douyin\.com/vsdetail/(?P<vsdetail>\d+)"
        r"|(?:www\.|m\.)?(?:ies)?douyin\.com/share/video/(?P<share>\d+)"
        r"|(?:www\.)?douyin\.com/[^?#]*\?(?:[^#]*&)?modal_id=(?P<modal>\d+))"
    )

    def _real_extract(self, url: str) -> dict:
        match = self._match_valid_url(url)
        video_id = match.group("vsdetail") or match.group("share") or match.group("modal")
        return self.url_result(_douyin_video_url(video_id), "Douyin", video_id)

    @classmethod
    def get_temp_id(cls, url: str) -> str | None:
        match = cls._match_valid_url(url)
        return match and (match.group("vsdetail") or match.group("share") or match.group("modal"))

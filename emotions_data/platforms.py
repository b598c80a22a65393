"""What a platform says about a video: its identity, its uploader, its own metadata.

Owns two things:

* the platform columns of the manifest (`schema.PLATFORM_FIELDS`), taken from yt-dlp's info dict by
  :func:`platform_facts`;
* the file format `platform_info/<video_id>.info.json`: yt-dlp's info dict of the download, scrubbed
  (:func:`scrub_info`) of what is not the platform's public description of the video: request headers, cookies,
  media addresses (signed, expiring), local file names and yt-dlp's private keys. Written by :func:`write_info_json`,
  read by :func:`read_info_json`; the manifest's `info_json_path` names it relative to the dataset folder, and a
  release never carries it.

And the identity rule: one platform video is one item whichever URL reached it, by (platform, platform video id)
(:func:`platform_of_extractor` names the platform of a yt-dlp extractor).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from emotions_data.storage import write_bytes_atomic

#: yt-dlp extractor keys (and their plugin siblings) of one platform. Others are named by their own key, lowercased.
_EXTRACTOR_PLATFORMS = {
    "Douyin": "douyin", "DouyinShare": "douyin", "DouyinPage": "douyin",
    "Kuaishou": "kuaishou", "KuaishouShare": "kuaishou",
    "TikTok": "tiktok", "TikTokVM": "tiktok", "TikTokLive": "tiktok",
}  # fmt: skip

#: Keys dropped wherever they appear: how to fetch the media (request headers, cookies, addresses that carry
#: signatures and expire, fragments) and where yt-dlp put files on this machine.
_DROPPED_KEYS = frozenset(
    {"http_headers", "cookies", "url", "manifest_url", "fragment_base_url", "fragments", "filepath", "filename",
     "_filename", "infojson_filename", "requested_downloads", "requested_formats", "requested_subtitles",
     "original_url", "downloader_options", "hls_aes", "extra_param_to_segment_url"}
)  # fmt: skip
#: Query parameters that sign or authorise a URL (CDNs, Douyin/TikTok `x-signature`, S3/CloudFront `Signature`).
_SIGNING_PARAMS = ("sign", "signature", "token", "expire", "policy", "key-pair-id", "auth", "sig", "credential")


def platform_of_extractor(extractor_key: str | None) -> str | None:
    """The platform a yt-dlp extractor key belongs to (`Douyin`, `DouyinShare` -> `douyin`); None for the generic
    extractor, whose ids are only file names."""
    if not extractor_key or extractor_key.lower() == "generic":
        return None
    return _EXTRACTOR_PLATFORMS.get(extractor_key, extractor_key.lower())


def _signed(url: str) -> bool:
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return False
    return any(any(word in name.lower() for word in _SIGNING_PARAMS) for name, _ in query)


def _strip_signature(url: str) -> str:
    """`url` without the query parameters that sign or authorise it (the rest stays: it identifies the page)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not any(word in k.lower() for word in _SIGNING_PARAMS)]  # fmt: skip
    return urlunsplit(parts._replace(query=urlencode(kept)))


def scrub_info(info: Any) -> Any:
    """A copy of a yt-dlp info dict (after `YoutubeDL.sanitize_info`) fit to keep: `_DROPPED_KEYS` and private
    (`_`-prefixed) keys removed at every depth, and every URL that carries a signature or token loses those query
    parameters."""
    if isinstance(info, dict):
        return {k: scrub_info(v) for k, v in info.items()
                if isinstance(k, str) and k not in _DROPPED_KEYS and not k.startswith("_")}  # fmt: skip
    if isinstance(info, list | tuple):
        return [scrub_info(v) for v in info]
    if isinstance(info, str) and "://" in info[:16] and _signed(info):
        return _strip_signature(info)
    return info


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _count(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def platform_facts(info: dict, extractor_key: str | None) -> dict[str, object]:
    """The manifest's platform columns (`schema.PLATFORM_FIELDS`, all but `info_json_path`) from a yt-dlp info dict.

    `uploader_id` is the platform's stable account id (yt-dlp's `uploader_id`, else `channel_id`); `uploader_handle`
    the account's handle or name as the platform shows it (`uploader`, else `channel`); `upload_time` from the
    platform's Unix `timestamp` (else its `upload_date`, at midnight UTC); `platform_duration_s` is what the platform
    states, not a measurement. Values the platform does not give are None."""
    timestamp = info.get("timestamp")
    upload_time = None
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        upload_time = datetime.fromtimestamp(int(timestamp), UTC)
    elif isinstance(info.get("upload_date"), str):
        try:
            upload_time = datetime.strptime(info["upload_date"], "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            upload_time = None
    tags = info.get("tags")
    duration = info.get("duration")
    return {
        "platform_video_id": _text(info.get("id")) if platform_of_extractor(extractor_key) else None,
        "webpage_url": _text(info.get("webpage_url")),
        "uploader_id": _text(info.get("uploader_id")) or _text(info.get("channel_id")),
        "uploader_handle": _text(info.get("uploader")) or _text(info.get("channel")),
        "title": _text(info.get("title")),
        "description": _text(info.get("description")),
        "tags": [str(t) for t in tags if _text(t)] if isinstance(tags, list) else None,
        "upload_time": upload_time,
        "platform_duration_s": float(duration) if isinstance(duration, int | float) and duration > 0 else None,
        "view_count": _count(info.get("view_count")),
        "like_count": _count(info.get("like_count")),
        "comment_count": _count(info.get("comment_count")),
        "repost_count": _count(info.get("repost_count")),
    }


def uploader_group(platform: str | None, uploader_id: str | None, handle: str | None) -> str | None:
    """The `uploader` a row gets when its source table named none: ``<platform>:<account id>`` (the handle when the
    platform gives no id), so accounts of different platforms never merge."""
    account = uploader_id or handle
    if not account:
        return None
    return f"{platform}:{account}" if platform else account


def write_info_json(path: Path, info: dict) -> None:
    """Write the scrubbed info dict to `path` atomically (UTF-8 JSON, keys sorted)."""
    text = json.dumps(scrub_info(info), ensure_ascii=False, sort_keys=True, indent=1, default=str)
    write_bytes_atomic(path, text.encode("utf-8"))


def read_info_json(path: Path) -> dict:
    """The scrubbed info dict written by :func:`write_info_json`. Raises OSError, ValueError (not JSON)."""
    return json.loads(path.read_text(encoding="utf-8"))

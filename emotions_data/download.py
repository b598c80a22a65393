"""Fetch a URL with yt-dlp into a per-item temporary folder, then move it into place atomically.

Before anything is downloaded, a URL is resolved to the platform video it names (`resolve`, from its shape alone
where it can be, `emotions_data.url_shapes`), and a download extracts first and downloads after: a URL that names no
single video (a profile, a live room, a playlist, a page with several videos, a post without a video) is refused.

Failures are classified (`emotions_data.download_errors`, with what yt-dlp only warned about): transient ones are
retried with exponential backoff within the run and again on the next run; permanent ones are recorded and left
alone. Faults of this machine (a full disk, an unwritable folder) are neither: they raise `LocalFault`,
which stops the run and leaves the item to the next one.
"""

from __future__ import annotations

import fcntl
import ipaddress
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from emotions_data.download_errors import (
    NOT_ONE_VIDEO,
    NOT_RECOGNISED_WORDS,
    UNRECOGNISED_PAGE,
    DownloadFailure,
    YtDlpLog,
    classify,
    failure_of,
)
from emotions_data.faults import as_local_fault, local_fault
from emotions_data.platforms import platform_of_extractor
from emotions_data.settings import DownloadSettings
from emotions_data.storage import TMP_MARK, commit_file
from emotions_data.url_shapes import UrlShape, url_shape

__all__ = ["DownloadFailure", "classify", "download", "resolve"]

DOWNLOADER = "yt-dlp"
_CONTROL_NAMES = {0: "NUL", 9: "TAB", 10: "LF", 13: "CR", 27: "ESC", 127: "DEL"}
_HOST_PUNCTUATION = frozenset("-._")
# yt-dlp's words for failing to write its own output (in our work folder), whatever file the error names: a buffered
# write that fails on close names none, and yt-dlp reports an OSError of its download step as "Unable to download
# video: [Errno N] ..." (network errors have their own words)
_WRITING_OUTPUT = re.compile(
    r"unable to (open for writing|write data|rename file)|unable to download video: \[errno|postprocessing:",
    re.IGNORECASE,
)


# Extractors that only lead to another URL (share links, pages that open a video elsewhere): resolving one asks the
# extractor where it leads; any other extractor names its video in the URL itself.
_REDIRECTING_EXTRACTORS = frozenset({"DouyinShare", "DouyinPage", "KuaishouShare", "TikTokVM"})
# The extractor of each platform's canonical page (`url_shapes`): a URL of known shape needs no matching.
_CANONICAL_EXTRACTORS = {"tiktok": "TikTok", "douyin": "Douyin", "kuaishou": "Kuaishou"}


@dataclass(frozen=True)
class Downloaded:
    path: Path
    extractor: str | None
    downloader_version: str
    attempts: int = 1
    info: dict | None = None  # yt-dlp's info dict, sanitised (no private keys); see emotions_data.platforms
    warnings: tuple[str, ...] = ()  # what yt-dlp only warned about on the try that succeeded


@dataclass(frozen=True)
class Resolved:
    """Which platform video a URL names, found before downloading: `url` is what to download (a share link's
    target, else the URL itself)."""

    platform: str
    platform_video_id: str
    url: str
    extractor: str


def downloader_version() -> str:
    from yt_dlp.version import __version__

    return __version__


def _control_character(url: str) -> str | None:
    for position, char in enumerate(url):
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0:
            return f"{_CONTROL_NAMES.get(code, f'U+{code:04X}')} at character {position + 1}"
    return None


def _host_problem(host: str) -> str | None:
    if host.startswith("["):  # an IPv6 literal
        try:
            ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return f"host {host} is not an IPv6 address"
        return None
    for char in host:
        if char.isspace():
            return f"host {host!r} contains a space"
        if not (char.isalnum() or char in _HOST_PUNCTUATION):
            return f"host {host!r} contains the character {char!r}"
    labels = host.removesuffix(".").split(".")  # a trailing dot (a fully qualified name) is allowed
    if any(not label for label in labels):
        return f"host {host!r} has an empty label"
    if any(len(label) > 63 for label in labels):
        return f"host {host!r} has a label longer than 63 characters"
    return None


def url_problem(url: str, settings: DownloadSettings) -> str | None:
    """Why `url` cannot be fetched whatever the network does (a permanent failure of its item), else None:
    a control character, a scheme that is not allowed, no host, a malformed host or port."""
    control = _control_character(url)
    if control:
        return f"malformed URL: control character {control}"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        return f"malformed URL: {exc}"
    scheme = parts.scheme.lower()
    if scheme == "file" and settings.allow_file_urls:
        return None
    if scheme not in ("http", "https"):
        hint = " (pass --allow-file-urls to read file:// URLs)" if scheme == "file" else ""
        return f"URL scheme {scheme or 'none'!r} is not allowed{hint}"
    hostport = parts.netloc.rpartition("@")[2]  # after any user:password@
    if hostport.startswith("["):  # an IPv6 literal, "[::1]:8080"; urlsplit has checked the brackets pair up
        host, _, rest = hostport.partition("]")
        host, port_text = host + "]", rest.removeprefix(":")
        if rest and not rest.startswith(":"):
            return f"malformed URL: {rest!r} after the host {host}"
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        return "malformed URL: no host"
    problem = _host_problem(host)
    if problem:
        return f"malformed URL: {problem}"
    if port_text and not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        return f"malformed URL: invalid port {port_text!r} (must be 1-65535)"
    return None


def check_url_allowed(url: str, settings: DownloadSettings) -> None:
    """Raises a permanent `DownloadFailure` naming the problem when :func:`url_problem` finds one."""
    problem = url_problem(url, settings)
    if problem:
        raise DownloadFailure(problem, retryable=False)


def plugins_findable() -> None:
    """Make the yt-dlp plugin extractors shipped with emotions (the `yt_dlp_plugins` package beside
    `emotions_data`) findable. yt-dlp looks for plugin packages in the folders of `sys.path`: an installed wheel puts
    them in site-packages, which is there already; an editable install (`pip install -e`) leaves them in the source
    tree, whose folder is then added once, at the end of `sys.path`."""
    root = Path(__file__).resolve().parent.parent
    if (root / "yt_dlp_plugins" / "extractor").is_dir() and str(root) not in sys.path:
        sys.path.append(str(root))


def throttle(url: str, lock_dir: Path, per_minute: float) -> None:
    """Space request starts to the same host across all local workers (a lock file per host)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(url).hostname or "unknown")
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{host}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            last = float(handle.read().strip() or 0.0)
            wait = last + 60.0 / per_minute - time.time()
            if wait > 0:
                time.sleep(wait)
            handle.seek(0)
            handle.truncate()
            handle.write(f"{time.time():.6f}")
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ydl_options(settings: DownloadSettings, workdir: Path, log: YtDlpLog | None = None) -> dict:
    options: dict = {
        "outtmpl": {"default": str(workdir / "original.%(ext)s")},
        "format": settings.format,
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": log if log is not None else YtDlpLog(),
        "socket_timeout": settings.socket_timeout_s,
        # Retries of whole requests are ours (with backoff and classification); yt-dlp only
        # resumes a transfer that broke midway.
        "retries": 2,
        "extractor_retries": 0,
        "fragment_retries": 2,
        "overwrites": True,
        "cachedir": False,
    }
    if settings.allow_file_urls:
        options["enable_file_urls"] = True
    if settings.rate_limit_bytes:
        options["ratelimit"] = settings.rate_limit_bytes
    if settings.user_agent:
        options["http_headers"] = {"User-Agent": settings.user_agent}
    if settings.proxy:
        options["proxy"] = settings.proxy
    if settings.cookies_file:
        options["cookiefile"] = settings.cookies_file
    if not settings.check_certificates:
        options["nocheckcertificate"] = True
    return options


def _extractor_for(url: str):  # type: ignore[no-untyped-def]
    from yt_dlp.extractor import gen_extractor_classes

    return next((ie for ie in gen_extractor_classes() if ie.suitable(url)), None)


def _refusal(url: str, shape: UrlShape) -> DownloadFailure:
    return DownloadFailure(
        f"{shape.platform}: {url} is {shape.kind}, not one video: give the URL of each video",
        False,
        reason=NOT_ONE_VIDEO,
    )


def resolve(
    url: str, workdir: Path, settings: DownloadSettings, before_request: Callable[[], None] | None = None
) -> Resolved | None:
    """Which platform video `url` names, without downloading it: None when no platform extractor knows the URL (a
    plain file URL, read by yt-dlp's generic extractor). A URL whose shape names the video (`url_shape`, or an
    extractor that names it in the URL) costs no request; a share link costs one per redirect it leads through
    (`before_request` is called first: throttling).

    Raises `DownloadFailure`: permanent with reason `not_one_video` for a URL that names no single video (a profile,
    a live room, a collection, an image post, any list yt-dlp's extractor knows as one), `unrecognised_page` for a
    share link that leads nowhere known; else classified like a download's failure when a share link cannot be
    followed."""
    check_url_allowed(url, settings)
    import yt_dlp

    _load_plugins()
    followed = link_platform = None  # the share link that led here, and its platform
    for _ in range(4):  # a share link leads to a page that leads to the video: a few hops at most
        shape = url_shape(url)
        if shape is not None and shape.refused:
            raise _refusal(url, shape) if followed is None else _refusal_after(followed, url, shape)
        if shape is not None and shape.one_video:
            key = _CANONICAL_EXTRACTORS[shape.platform]
            return Resolved(shape.platform, str(shape.video_id), shape.url, key)
        url = shape.url if shape is not None else url
        ie = _extractor_for(url)
        key = ie.ie_key() if ie is not None else None
        platform = platform_of_extractor(key)
        if ie is None or platform is None:
            if followed is not None:
                raise _led_nowhere(link_platform, followed, url)
            return None
        if ie.is_single_video(url) is False:  # an extractor of lists (a channel, a playlist, a user's videos)
            raise DownloadFailure(
                f"{platform}: {url} is a list of videos ({ie.IE_NAME}), not one video: give the URL of each video",
                False, reason=NOT_ONE_VIDEO,
            )  # fmt: skip
        if key not in _REDIRECTING_EXTRACTORS:
            # The id in the URL is a video's only for an extractor of videos: a channel's handle or a playlist's id
            # is not one (extractors of either kind are left to the download, which extracts before it downloads).
            video_id = ie.get_temp_id(url) if ie.is_single_video(url) else None
            return Resolved(platform, str(video_id), url, key) if video_id else None
        if before_request is not None:
            before_request()
        workdir.mkdir(parents=True, exist_ok=True)
        log = YtDlpLog()
        try:
            # A YoutubeDL costs about 0.2 s to make: only URLs that lead elsewhere need one.
            with yt_dlp.YoutubeDL(_ydl_options(settings, workdir, log)) as ydl:
                info = ydl.extract_info(url, download=False, process=False)
        except Exception as exc:  # yt-dlp raises many kinds
            raise failure_of(exc, log.warnings) from None
        if not info:
            return None
        followed, link_platform = followed or url, link_platform or platform
        if info.get("_type") in ("url", "url_transparent") and info.get("url"):
            url = info["url"]
            continue
        if info.get("id"):
            return Resolved(platform, str(info["id"]), info.get("webpage_url") or url, key)
        return None
    raise _led_nowhere(link_platform, str(followed), url)


def _refusal_after(link: str, landed: str, shape: UrlShape) -> DownloadFailure:
    return DownloadFailure(
        f"{shape.platform}: the share link {link} leads to {landed}, {shape.kind}, not one video",
        False,
        reason=NOT_ONE_VIDEO,
    )


def _led_nowhere(platform: str | None, link: str, landed: str) -> DownloadFailure:
    return DownloadFailure(
        f"{platform}: {NOT_RECOGNISED_WORDS} (the share link {link} leads to {landed}, which names no video)",
        False,
        reason=UNRECOGNISED_PAGE,
    )


def _load_plugins() -> None:
    """Register the plugin extractors with yt-dlp, as making a `YoutubeDL` does (once per process)."""
    plugins_findable()
    try:
        from yt_dlp.globals import all_plugins_loaded
        from yt_dlp.plugins import load_all_plugins
    except ImportError:  # a yt-dlp without the plugin globals: making a YoutubeDL loads them
        import yt_dlp

        yt_dlp.YoutubeDL({"quiet": True}).close()
        return
    if not all_plugins_loaded.value:
        load_all_plugins()


_LIVE = ("is_live", "is_upcoming")


def _one_video(ydl, url: str, info: dict | None) -> dict:  # type: ignore[no-untyped-def]
    """`info` (yt-dlp's result before any download) when it is one video with something to download; a result that
    only leads elsewhere is followed first (still without downloading).

    Raises `DownloadFailure`: permanent with reason `not_one_video` for a playlist or a page of several videos, a
    live stream, a platform post with no video (an image post, sound only) or nothing to download."""
    if info is not None and info.get("_type") in ("url", "url_transparent"):
        info = ydl.process_ie_result(info, download=False)
    if not info:
        raise DownloadFailure("yt-dlp returned no result", retryable=True)
    where = f"{info.get('extractor_key') or info.get('extractor') or 'yt-dlp'}"
    if info.get("_type") in ("playlist", "multi_video"):
        entries = info.get("entries")
        many = f"{len(entries)} videos" if isinstance(entries, list) else "a list of videos"
        raise DownloadFailure(
            f"{url} holds {many} ({where}), not one video: give the URL of each video", False, reason=NOT_ONE_VIDEO
        )
    if info.get("live_status") in _LIVE or info.get("is_live"):
        raise DownloadFailure(f"{url} is a live stream ({where}), not a recorded video", False, reason=NOT_ONE_VIDEO)
    formats = info.get("formats") or ([info] if info.get("url") else [])
    if not formats:
        raise DownloadFailure(f"{url} names nothing to download ({where})", False, reason=NOT_ONE_VIDEO)
    if platform_of_extractor(where) and all(f.get("vcodec") == "none" for f in formats):
        raise DownloadFailure(
            f"{url} is a post without a video, an image post or sound only ({where})", False, reason=NOT_ONE_VIDEO
        )
    return info


def _download_once(
    url: str, workdir: Path, settings: DownloadSettings, before_request: Callable[[], None], log: YtDlpLog
) -> tuple[Path, str | None, dict]:
    """Extract first, download after: what the URL names is checked (`_one_video`) before any media is fetched."""
    import yt_dlp

    plugins_findable()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with yt_dlp.YoutubeDL(_ydl_options(settings, workdir, log)) as ydl:
        # Match the URL against the extractors now (compiling their patterns takes a while the first
        # time), so that throttling spaces the requests themselves rather than this set-up.
        _extractor_for(url)
        before_request()
        info = _one_video(ydl, url, ydl.extract_info(url, download=False, process=False))
        info = ydl.process_ie_result(info, download=True)
        if info is not None:
            info = ydl.sanitize_info(info, remove_private_keys=True)
    if info is None:
        raise DownloadFailure("yt-dlp returned no result", retryable=True)
    downloads = info.get("requested_downloads") or []
    path = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
    if path is None or not path.is_file():
        files = [p for p in workdir.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
        if len(files) != 1:
            raise DownloadFailure("yt-dlp finished without a media file", retryable=True)
        path = files[0]
    return path, info.get("extractor_key") or info.get("extractor"), info


def download(
    url: str, dest_stem: Path, workdir: Path, settings: DownloadSettings, rate_dir: Path | None = None
) -> Downloaded:
    """Download `url` to `dest_stem` + the media's extension.

    Raises `DownloadFailure` for a failure of the item (classified transient or permanent, a plain message
    whatever yt-dlp raised), `LocalFault` when this machine cannot store the download (full disk, unwritable
    folder): the workdir is removed either way."""
    check_url_allowed(url, settings)
    ours = [workdir, dest_stem.parent] + ([rate_dir] if rate_dir is not None else [])
    attempts = max(1, settings.attempts)
    for attempt in range(1, attempts + 1):

        def before_request() -> None:
            if settings.max_requests_per_minute and rate_dir is not None:
                throttle(url, rate_dir, settings.max_requests_per_minute)

        log = YtDlpLog()
        try:
            path, extractor, info = _download_once(url, workdir, settings, before_request, log)
        except DownloadFailure as exc:
            failure = (
                exc if exc.warnings else DownloadFailure(exc.message, exc.retryable, 1, exc.reason, tuple(log.warnings))
            )
        except Exception as exc:  # yt-dlp raises many kinds (DownloadError, RequestError, ValueError, OSError)
            # An error writing the output is ours even when it names no file (a failed write() names none).
            fault = local_fault(exc, workdir, None if _WRITING_OUTPUT.search(str(exc)) else ours)
            if fault is not None:
                shutil.rmtree(workdir, ignore_errors=True)  # a partial download only takes space
                raise fault from None
            failure = failure_of(exc, log.warnings)
        else:
            try:
                final = _keep(path, dest_stem)
            except OSError as exc:
                raise as_local_fault(exc, dest_stem.parent) from None
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            return Downloaded(final, extractor, downloader_version(), attempt, info, tuple(log.warnings))
        if not failure.retryable or attempt == attempts:
            shutil.rmtree(workdir, ignore_errors=True)
            raise DownloadFailure(failure.message, failure.retryable, attempt, failure.reason, failure.warnings)
        time.sleep(settings.backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _keep(path: Path, dest_stem: Path) -> Path:
    """Move the downloaded `path` to `dest_stem` + its extension, atomically; returns the final path."""
    final = dest_stem.with_name(dest_stem.name + path.suffix.lower())
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{TMP_MARK}{final.name}")
    shutil.move(path, tmp)  # same filesystem: a rename; the final name only ever holds a whole file
    commit_file(tmp, final)
    return final

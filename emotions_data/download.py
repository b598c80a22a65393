"""Fetch a URL with yt-dlp into a per-item temporary folder, then move it into place atomically.

Failures are classified: transient ones (HTTP 408/425/429/5xx, timeouts, dropped connections,
bot checks) are retried with exponential backoff within the run and again on the next run;
permanent ones (404, removed, private, unsupported, malformed URLs) are recorded and left alone.
Faults of this machine (a full disk, an unwritable folder) are neither: they raise `LocalFault`,
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

from emotions_data.faults import as_local_fault, local_fault
from emotions_data.platforms import platform_of_extractor
from emotions_data.settings import DownloadSettings
from emotions_data.storage import TMP_MARK, commit_file

DOWNLOADER = "yt-dlp"
_TRANSIENT_STATUS = {408, 425, 429} | set(range(500, 600))
_TRANSIENT_TEXT = re.compile(
    r"timed? ?out|temporar|connection (reset|refused|aborted)|remote end closed|rate.?limit|too many requests"
    r"|sign in to confirm|try again later|incomplete ?read",
    re.IGNORECASE,
)
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_CONTROL_NAMES = {0: "NUL", 9: "TAB", 10: "LF", 13: "CR", 27: "ESC", 127: "DEL"}
_HOST_PUNCTUATION = frozenset("-._")
# yt-dlp's words for failing to write its own output (in our work folder), whatever file the error names: a buffered
# write that fails on close names none, and yt-dlp reports an OSError of its download step as "Unable to download
# video: [Errno N] ..." (network errors have their own words)
_WRITING_OUTPUT = re.compile(
    r"unable to (open for writing|write data|rename file)|unable to download video: \[errno|postprocessing:",
    re.IGNORECASE,
)


# The words the platform extractors shipped with emotions (yt_dlp_plugins/extractor/emotions_platforms.py) use for a
# page they cannot read; retrying the same request at once does not help.
_NOT_RECOGNISED = re.compile(r"(?P<platform>[a-z]+): page structure not recognised", re.IGNORECASE)
# yt-dlp's own words when a platform gives no video data where its extractor expects it (Douyin's web detail API
# answers an empty document to clients without fresh cookies): the same kind of failure, for the same remedies.
_NO_VIDEO_DATA = {"douyin": re.compile(r"\[Douyin\].*fresh cookies", re.IGNORECASE)}
UNRECOGNISED_PAGE = "unrecognised_page"  # schema.Reason.UNRECOGNISED_PAGE
DOWNLOAD_ERROR = "download_error"  # schema.Reason.DOWNLOAD_ERROR
_WHAT_TO_TRY = (
    "; try a cookies file from a logged-in browser (EMOTIONS_COOKIES_FILE) and fewer requests "
    "(download.max_requests_per_minute), see docs/lead/ingest.md"
)
# Extractors that only lead to another URL (share links, pages that open a video elsewhere): resolving one asks the
# extractor where it leads; any other extractor names its video in the URL itself.
_REDIRECTING_EXTRACTORS = frozenset({"DouyinShare", "DouyinPage", "KuaishouShare", "TikTokVM"})


class DownloadFailure(RuntimeError):
    """A URL that could not be fetched: `retryable` when the next try may succeed; `reason` the manifest's reason
    code (`download_error`, or `unrecognised_page` for a platform page of unknown structure). Plain values only (it
    pickles)."""

    def __init__(self, message: str, retryable: bool, attempts: int = 1, reason: str = DOWNLOAD_ERROR) -> None:
        super().__init__(message, retryable, attempts, reason)
        self.message = message
        self.retryable = retryable
        self.attempts = attempts
        self.reason = reason

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Downloaded:
    path: Path
    extractor: str | None
    downloader_version: str
    attempts: int = 1
    info: dict | None = None  # yt-dlp's info dict, sanitised (no private keys); see emotions_data.platforms


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


def _http_status(exc: BaseException) -> int | None:
    seen = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        for attr in ("status", "code"):
            value = getattr(node, attr, None)
            if isinstance(value, int) and 100 <= value < 600:
                return value
        exc_info = getattr(node, "exc_info", None)
        nxt = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        node = nxt or node.__cause__ or node.__context__
    match = _HTTP_STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def classify(exc: BaseException) -> tuple[str, bool]:
    """(one-line message, retryable) for a yt-dlp failure."""
    message = " ".join(str(exc).replace("ERROR: ", "").split())
    if "did not get any data blocks" in message.lower():
        return "empty response: the server sent 0 bytes", False
    if _NOT_RECOGNISED.search(message):
        return message, False
    status = _http_status(exc)
    if status is not None:
        return message, status in _TRANSIENT_STATUS
    return message, bool(_TRANSIENT_TEXT.search(message))


def _failure(exc: BaseException, attempts: int = 1) -> DownloadFailure:
    """The `DownloadFailure` a yt-dlp error becomes: a page of unknown structure gets its own reason and a message
    that starts with the platform and says what to try."""
    message, retryable = classify(exc)
    found = _NOT_RECOGNISED.search(message)
    if found:
        text = message[found.start() :] + _WHAT_TO_TRY
        return DownloadFailure(text, False, attempts, UNRECOGNISED_PAGE)
    for platform, words in _NO_VIDEO_DATA.items():
        if words.search(message):
            text = f"{platform}: page structure not recognised (no video data: {message})" + _WHAT_TO_TRY
            return DownloadFailure(text, False, attempts, UNRECOGNISED_PAGE)
    return DownloadFailure(message, retryable, attempts)


def plugins_findable() -> None:
    """Make the yt-dlp plugin extractors shipped with emotions (the `yt_dlp_plugins` package beside
    `emotions_data`) findable. yt-dlp looks for plugin packages in the folders of `sys.path`: an installed wheel puts
    them in site-packages, which is there already; an editable install (`pip install -e`) leaves them in the source
    tree, whose folder is then added once, at the end of `sys.path`."""
    root = Path(__file__).resolve().parent.parent
    if (root / "yt_dlp_plugins" / "extractor").is_dir() and str(root) not in sys.path:
        sys.path.append(str(root))


class _QuietLogger:
    """yt-dlp talks a lot; keep its messages out of the progress bar."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


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


def _ydl_options(settings: DownloadSettings, workdir: Path) -> dict:
    options: dict = {
        "outtmpl": {"default": str(workdir / "original.%(ext)s")},
        "format": settings.format,
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _QuietLogger(),
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


def resolve(
    url: str, workdir: Path, settings: DownloadSettings, before_request: Callable[[], None] | None = None
) -> Resolved | None:
    """Which platform video `url` names, without downloading it: None when no platform extractor knows the URL (a
    plain file URL, read by yt-dlp's generic extractor). A URL whose extractor names the video in the URL itself
    costs no request; a share link costs one (`before_request` is called first: throttling).

    Raises `DownloadFailure` (classified like a download's) when a share link cannot be followed."""
    check_url_allowed(url, settings)
    import yt_dlp

    _load_plugins()
    for _ in range(4):  # a share link leads to a page that leads to the video: a few hops at most
        ie = _extractor_for(url)
        key = ie.ie_key() if ie is not None else None
        platform = platform_of_extractor(key)
        if ie is None or platform is None:
            return None
        if key not in _REDIRECTING_EXTRACTORS:
            video_id = ie.get_temp_id(url)
            return Resolved(platform, str(video_id), url, key) if video_id else None
        if before_request is not None:
            before_request()
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            # A YoutubeDL costs about 0.2 s to make: only URLs that lead elsewhere need one.
            with yt_dlp.YoutubeDL(_ydl_options(settings, workdir)) as ydl:
                info = ydl.extract_info(url, download=False, process=False)
        except Exception as exc:  # yt-dlp raises many kinds
            raise _failure(exc) from None
        if not info:
            return None
        if info.get("_type") in ("url", "url_transparent") and info.get("url"):
            url = info["url"]
            continue
        if info.get("id"):
            return Resolved(platform, str(info["id"]), info.get("webpage_url") or url, key)
        return None
    return None


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


def _download_once(
    url: str, workdir: Path, settings: DownloadSettings, before_request: Callable[[], None]
) -> tuple[Path, str | None, dict]:
    import yt_dlp

    plugins_findable()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with yt_dlp.YoutubeDL(_ydl_options(settings, workdir)) as ydl:
        # Match the URL against the extractors now (compiling their patterns takes a while the first
        # time), so that throttling spaces the requests themselves rather than this set-up.
        _extractor_for(url)
        before_request()
        info = ydl.extract_info(url, download=True)
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

        try:
            path, extractor, info = _download_once(url, workdir, settings, before_request)
        except DownloadFailure as exc:
            failure = exc
        except Exception as exc:  # yt-dlp raises many kinds (DownloadError, RequestError, ValueError, OSError)
            # An error writing the output is ours even when it names no file (a failed write() names none).
            fault = local_fault(exc, workdir, None if _WRITING_OUTPUT.search(str(exc)) else ours)
            if fault is not None:
                shutil.rmtree(workdir, ignore_errors=True)  # a partial download only takes space
                raise fault from None
            failure = _failure(exc)
        else:
            try:
                final = _keep(path, dest_stem)
            except OSError as exc:
                raise as_local_fault(exc, dest_stem.parent) from None
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            return Downloaded(final, extractor, downloader_version(), attempt, info)
        if not failure.retryable or attempt == attempts:
            shutil.rmtree(workdir, ignore_errors=True)
            raise DownloadFailure(failure.message, failure.retryable, attempt, failure.reason)
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

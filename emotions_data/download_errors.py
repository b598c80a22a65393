"""What a failed fetch was, told from what yt-dlp raised and what it only warned about.

Transient failures (HTTP 408/425/429/5xx, timeouts, dropped connections, bot checks) are retried with backoff within
the run and again on the next; permanent ones (404, removed, private, unsupported, malformed URLs, a URL that names
no single video) are recorded and left alone; a platform page of a structure no extractor knows has its own reason.

yt-dlp fetches some of a platform's documents non-fatally (Douyin's web detail API): an HTTP 429 or a timeout there
is only a warning, and the error that follows ("fresh cookies are needed", "page structure not recognised") names
its consequence. :class:`YtDlpLog` keeps one item's warnings, and :func:`failure_of` reads them with the error, so a
page that failed on the way is transient and only a page that answered with an unknown structure is
`unrecognised_page`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TRANSIENT_STATUS = {408, 425, 429} | set(range(500, 600))
_TRANSIENT_TEXT = re.compile(
    r"timed? ?out|temporar|connection (reset|refused|aborted|broken)|remote end closed|rate.?limit|too many requests"
    r"|sign in to confirm|try again later|incomplete ?read|broken pipe|unexpected eof|eof occurred",
    re.IGNORECASE,
)
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
# The words the platform extractors shipped with emotions (yt_dlp_plugins/extractor/emotions_platforms.py) use for a
# page they cannot read; retrying the same request at once does not help.
NOT_RECOGNISED_WORDS = "page structure not recognised"
_NOT_RECOGNISED = re.compile(rf"(?P<platform>[a-z]+): {NOT_RECOGNISED_WORDS}", re.IGNORECASE)
# yt-dlp's own words when a platform gives no video data where its extractor expects it: Douyin's web detail API
# answers an empty document to clients without fresh cookies; TikTok's page may carry no rehydration data.
_NO_VIDEO_DATA = {
    "douyin": re.compile(r"\[Douyin\].*fresh cookies", re.IGNORECASE),
    "tiktok": re.compile(r"\[TikTok\].*(universal data for rehydration|unexpected response from webpage)", re.I),
}
UNRECOGNISED_PAGE = "unrecognised_page"  # schema.Reason.UNRECOGNISED_PAGE
DOWNLOAD_ERROR = "download_error"  # schema.Reason.DOWNLOAD_ERROR
NOT_ONE_VIDEO = "not_one_video"  # schema.Reason.NOT_ONE_VIDEO
_WHAT_TO_TRY = (
    "; try a cookies file from a logged-in browser (EMOTIONS_COOKIES_FILE) and fewer requests "
    "(download.max_requests_per_minute), see docs/lead/ingest.md"
)
_MAX_WARNINGS = 5  # kept per item: the first ones name the cause, the rest repeat it


class DownloadFailure(RuntimeError):
    """A URL that could not be fetched: `retryable` when the next try may succeed; `reason` the manifest's reason
    code (`download_error`, `unrecognised_page` for a platform page of unknown structure, `not_one_video` for a URL
    that names no single video); `warnings` what yt-dlp only warned about. Plain values only (it pickles)."""

    def __init__(
        self,
        message: str,
        retryable: bool,
        attempts: int = 1,
        reason: str = DOWNLOAD_ERROR,
        warnings: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, retryable, attempts, reason, warnings)
        self.message = message
        self.retryable = retryable
        self.attempts = attempts
        self.reason = reason
        self.warnings = tuple(warnings)  # what yt-dlp only warned about (`YtDlpLog`)

    def __str__(self) -> str:
        return self.message


class YtDlpLog:
    """A yt-dlp logger for one item: progress and debug output are dropped (they would break the progress bar),
    warnings are kept (the first `_MAX_WARNINGS`, one line each, but yt-dlp's notes about its own set-up) for
    :func:`failure_of`."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS and not _NOT_A_CAUSE.search(msg):
            self.warnings.append(_one_line(msg))


# yt-dlp's request to report a bug, appended to errors it did not expect: no help to a dataset's user.
_BUG_REPORT_HINT = re.compile(r";? ?please report this issue on https://github\.com/yt-dlp.*?yt-dlp -U", re.IGNORECASE)
# Warnings that name no failure of the item: yt-dlp's notes about its own set-up.
_NOT_A_CAUSE = re.compile(r"attempting impersonation|falling back on generic information extractor", re.IGNORECASE)


def _one_line(text: str) -> str:
    return " ".join(_BUG_REPORT_HINT.sub("", str(text)).replace("ERROR: ", "").replace("WARNING: ", "").split())


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


def transient_text(text: str) -> bool:
    """Whether a message names a failure the next try may not meet: an HTTP status of `_TRANSIENT_STATUS`, else
    words of a timeout, a dropped connection or a rate limit."""
    match = _HTTP_STATUS.search(text)
    if match:
        return int(match.group(1)) in _TRANSIENT_STATUS
    return bool(_TRANSIENT_TEXT.search(text))


def classify(exc: BaseException) -> tuple[str, bool]:
    """(one-line message, retryable) for a yt-dlp failure."""
    message = _one_line(str(exc))
    if "did not get any data blocks" in message.lower():
        return "empty response: the server sent 0 bytes", False
    if _NOT_RECOGNISED.search(message):
        return message, False
    status = _http_status(exc)
    if status is not None:
        return message, status in _TRANSIENT_STATUS
    return message, bool(_TRANSIENT_TEXT.search(message))


def _platform_of(message: str) -> str | None:
    found = _NOT_RECOGNISED.search(message)
    if found:
        return found.group("platform").lower()
    return next((platform for platform, words in _NO_VIDEO_DATA.items() if words.search(message)), None)


def failure_of(exc: BaseException, warnings: Sequence[str] = (), attempts: int = 1) -> DownloadFailure:
    """The `DownloadFailure` a yt-dlp error becomes, read with the item's yt-dlp `warnings` (`YtDlpLog`).

    An error that names no HTTP status and would be permanent is transient when a warning names a transient failure
    (HTTP 429/5xx, a timeout, a dropped connection): the request behind it failed, the page was never seen. A page
    of unknown structure gets `unrecognised_page` and a message that starts with the platform and says what to
    try; its warnings are kept in the message."""
    message, retryable = classify(exc)
    platform = _platform_of(message)
    kept = tuple(warnings)
    cause = next((w for w in warnings if transient_text(w)), None)
    if not retryable and cause is not None and _http_status(exc) is None:
        prefix = f"{platform}: " if platform else ""
        return DownloadFailure(f"{prefix}{cause} (yt-dlp then said: {message})", True, attempts, warnings=kept)
    if platform is None:
        return DownloadFailure(message, retryable, attempts, warnings=kept)
    found = _NOT_RECOGNISED.search(message)
    text = message[found.start() :] if found else f"{platform}: {NOT_RECOGNISED_WORDS} (no video data: {message})"
    if warnings:
        text += f" (yt-dlp warned: {'; '.join(warnings)})"
    return DownloadFailure(text + _WHAT_TO_TRY, False, attempts, UNRECOGNISED_PAGE, kept)

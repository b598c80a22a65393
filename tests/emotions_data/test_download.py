"""Download error classification and URL policy (emotions_data.download), no network."""

from __future__ import annotations

import urllib.error

import pytest

from emotions_data.download import DownloadFailure, check_url_allowed, classify, url_problem
from emotions_data.download_errors import YtDlpLog, failure_of
from emotions_data.settings import DownloadSettings


@pytest.mark.parametrize(
    ("message", "retryable"),
    [
        ("ERROR: [generic] Unable to download webpage: HTTP Error 429: Too Many Requests", True),
        ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable", True),
        ("ERROR: unable to download video data: HTTP Error 500: Internal Server Error", True),
        ("ERROR: unable to download video data: HTTP Error 408: Request Timeout", True),
        ("ERROR: unable to download video data: HTTP Error 404: Not Found", False),
        ("ERROR: unable to download video data: HTTP Error 403: Forbidden", False),
        ("ERROR: [generic] Unable to download webpage: The read operation timed out", True),
        ("ERROR: Connection reset by peer", True),
        ("ERROR: [youtube] x: Sign in to confirm you're not a bot", True),
        ("ERROR: Unsupported URL: https://example.com/page", False),
        ("ERROR: [tiktok] 1: This video is private", False),
    ],
)
def test_classify_messages(message, retryable):
    text, is_retryable = classify(Exception(message))
    assert is_retryable is retryable
    assert not text.startswith("ERROR:")
    assert text == message.removeprefix("ERROR: ")


def test_classify_collapses_whitespace():
    assert classify(Exception("ERROR:  a\n  b\tc"))[0] == "a b c"


class _StatusError(Exception):
    def __init__(self, message, **attrs):
        super().__init__(message)
        for name, value in attrs.items():
            setattr(self, name, value)


@pytest.mark.parametrize(
    ("attrs", "retryable"),
    [
        ({"status": 503}, True),
        ({"status": 429}, True),
        ({"status": 404}, False),
        ({"code": 502}, True),
        ({"code": 410}, False),
        ({"code": 1, "status": "x"}, False),  # not HTTP statuses: falls back to the text
    ],
)
def test_classify_status_attributes(attrs, retryable):
    assert classify(_StatusError("request failed", **attrs))[1] is retryable


def test_classify_status_attribute_wins_over_text():
    assert classify(_StatusError("upstream says: try again later", status=404))[1] is False
    assert classify(_StatusError("HTTP Error 404: Not Found", status=503))[1] is True


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (429, True), (503, True)])
def test_classify_nested_via_exc_info(status, retryable):
    inner = urllib.error.HTTPError("https://example.com/v", status, "reason", None, None)
    outer = _StatusError("ERROR: download failed")
    outer.exc_info = (type(inner), inner, None)
    assert classify(outer)[1] is retryable


def test_classify_nested_via_cause():
    try:
        try:
            raise _StatusError("inner", status=502)
        except _StatusError as inner:
            raise RuntimeError("ERROR: wrapped") from inner
    except RuntimeError as outer:
        assert classify(outer) == ("wrapped", True)


def test_classify_self_referencing_exc_info_terminates():
    exc = _StatusError("ERROR: weird")
    exc.exc_info = (type(exc), exc, None)
    assert classify(exc) == ("weird", False)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/video.mp4", "file:///etc/passwd", "javascript:alert(1)", "/local/path.mp4", "data:,x", ""],
)
def test_check_url_allowed_refuses(url):
    with pytest.raises(DownloadFailure) as info:
        check_url_allowed(url, DownloadSettings())
    assert info.value.retryable is False
    assert "not allowed" in str(info.value)
    assert ("--allow-file-urls" in str(info.value)) is url.startswith("file:")


@pytest.mark.parametrize("url", ["http://example.com/a.mp4", "https://www.douyin.com/video/1", "HTTPS://X.COM/v"])
def test_check_url_allowed_accepts_http(url):
    assert check_url_allowed(url, DownloadSettings()) is None


def test_check_url_allowed_file_urls_when_asked():
    settings = DownloadSettings(allow_file_urls=True)
    assert check_url_allowed("file:///data/clip.mp4", settings) is None
    with pytest.raises(DownloadFailure) as info:
        check_url_allowed("ftp://example.com/x.mp4", settings)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1:9/a\x00b.mp4", "control character NUL at character 21"),
        ("http://127.0.0.1:9/a\x1bb.mp4", "control character ESC"),
        ("http://example.com/\x85", "control character U+0085"),
        ("http://example.com\r\n/a.mp4", "control character CR"),
        ("http://bad host/a.mp4", "host 'bad host' contains a space"),
        ("http://bad\u3000host/a.mp4", "contains a space"),
        ("http:///a.mp4", "no host"),
        ("https://", "no host"),
        ("http://user@/a.mp4", "no host"),
        ("http://:80/a.mp4", "no host"),
        ("http://127.0.0.1:99999/a.mp4", "invalid port '99999'"),
        ("http://example.com:0/a.mp4", "invalid port '0'"),
        ("http://example.com:x/a.mp4", "invalid port 'x'"),
        ("http://[::1]:70000/a.mp4", "invalid port '70000'"),
        ("http://[::1/a.mp4", "Invalid IPv6 URL"),
        ("http://[::1]x/a.mp4", "'x' after the host [::1]"),
        ("http://%41.example/a.mp4", "contains the character '%'"),
        ("http://a..b/a.mp4", "empty label"),
        ("http://" + "a" * 64 + ".com/a.mp4", "longer than 63"),
        ("gopher://example.com/a.mp4", "scheme 'gopher' is not allowed"),
    ],
)
def test_malformed_urls_are_permanent_failures_naming_the_problem(url, named):
    with pytest.raises(DownloadFailure) as info:
        check_url_allowed(url, DownloadSettings())
    assert info.value.retryable is False and named in str(info.value)
    assert "\x00" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:8080/a.mp4",
        "http://user:secret@example.com:8080/a.mp4",
        "https://exämple.com/视频.mp4",
        "http://example.com./a.mp4",
        "http://127.0.0.1:/a.mp4",
        "http://a_b.example.com/a.mp4",
        "http://example.com/a b.mp4",  # a space in the path is escaped on the way out
    ],
)
def test_well_formed_urls_have_no_problem(url):
    assert url_problem(url, DownloadSettings()) is None


_DETAIL = "[Douyin] 7301: Failed to download web detail JSON: "
_FRESH_COOKIES = "ERROR: [Douyin] 7301: Fresh cookies (not necessarily logged in) are needed"


@pytest.mark.parametrize(
    ("warnings", "reason", "retryable"),
    [
        ([_DETAIL + "HTTP Error 429: Too Many Requests"], "download_error", True),
        ([_DETAIL + "HTTP Error 502: Bad Gateway"], "download_error", True),
        ([_DETAIL + "The read operation timed out"], "download_error", True),
        (["[Douyin] 7301: Unable to download JSON metadata: Remote end closed connection"], "download_error", True),
        (["[Douyin] 7301: Failed to parse JSON: Expecting value"], "unrecognised_page", False),
        ([], "unrecognised_page", False),
        ([_DETAIL + "HTTP Error 404: Not Found"], "unrecognised_page", False),
    ],
)
def test_what_yt_dlp_only_warned_about_decides_behind_fresh_cookies(warnings, reason, retryable):
    failure = failure_of(Exception(_FRESH_COOKIES), warnings)
    assert (failure.reason, failure.retryable, failure.warnings) == (reason, retryable, tuple(warnings))
    assert failure.message.startswith("douyin: ") and "Fresh cookies" in failure.message
    if warnings and not retryable:
        assert f"(yt-dlp warned: {warnings[0]})" in failure.message


def test_a_warning_does_not_turn_an_answered_http_error_transient():
    failure = failure_of(Exception("ERROR: unable to download video data: HTTP Error 404: Not Found"),
                         ["[generic] HTTP Error 429 on a thumbnail"])  # fmt: skip
    assert (failure.reason, failure.retryable) == ("download_error", False)


def test_the_log_keeps_a_few_warnings_not_yt_dlp_notes_about_itself():
    log = YtDlpLog()
    log.warning("[TikTok] The extractor is attempting impersonation, but no impersonate target is available")
    for i in range(9):
        log.warning(f"WARNING: [Douyin] try {i}:\n HTTP Error 429")
    assert log.warnings == [f"[Douyin] try {i}: HTTP Error 429" for i in range(5)]

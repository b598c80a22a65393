"""Ingest settings: every filter, normalisation and download knob, with its documented default.

Settings come from (lowest to highest precedence) the defaults below, a TOML config file
(``[ingest]`` table), then command-line flags. Secrets never come from argv: the cookies file
and the proxy are read from the ``EMOTIONS_COOKIES_FILE`` / ``EMOTIONS_PROXY`` environment
variables or the config file only.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

COOKIES_ENV = "EMOTIONS_COOKIES_FILE"
PROXY_ENV = "EMOTIONS_PROXY"  # may embed credentials, so it is treated like a secret too


@dataclass(frozen=True)
class FilterSettings:
    """Which probed videos are kept. A video failing any rule is `rejected` with that rule's reason."""

    min_duration_s: float = 1.0  # the baseline needs >= 16 frames; sub-second clips carry no emotion arc
    max_duration_s: float = 300.0  # short-video platforms; longer uploads are usually compilations
    min_short_side: int = 240  # the eMotions baseline extracts frames at height 240
    require_audio: bool = True  # the emotion is audio-visual
    min_decoded_fraction: float = 0.9  # decoding must reach this share of the declared duration


@dataclass(frozen=True)
class NormaliseSettings:
    """The browser-safe target: MP4, H.264 (yuv420p) + AAC, constant frame rate, equal stream lengths."""

    max_short_side: int = 720  # downscale larger videos, aspect ratio kept
    max_fps: float = 60.0  # the source rate is kept up to this cap
    crf: int = 23
    preset: str = "veryfast"
    audio_bitrate: str = "128k"
    audio_sample_rate: int = 44100  # the baseline's MFCCs are computed at 44.1 kHz
    threads_per_job: int = 0  # 0: let ffmpeg decide


@dataclass(frozen=True)
class DedupSettings:
    """Exact duplicates share a sha256; near-duplicates share a perceptual fingerprint."""

    near_duplicate_threshold: float = 0.30  # normalised Hamming distance; unrelated clips score ~0.5
    duration_tolerance_s: float = 1.0  # near-duplicates must have about the same length ...
    duration_tolerance_ratio: float = 0.05  # ... within max(abs, ratio * duration)


@dataclass(frozen=True)
class DownloadSettings:
    """yt-dlp options. The cookies file is a secret: environment or config file only."""

    attempts: int = 3  # tries per run for transient errors (429, 5xx, timeouts)
    backoff_s: float = 2.0  # first wait between tries; doubles each time
    socket_timeout_s: float = 30.0
    rate_limit_bytes: int | None = None  # bytes/s per download
    max_requests_per_minute: float | None = None  # per domain, across all local workers
    user_agent: str | None = None
    format: str = "bv*+ba/b"
    allow_file_urls: bool = False  # file:// reads local files: off unless asked for
    check_certificates: bool = True  # false only behind a TLS-intercepting proxy you trust (the tests' loopback)
    cookies_file: str | None = field(default=None, repr=False)
    proxy: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IngestSettings:
    filters: FilterSettings = FilterSettings()
    normalise: NormaliseSettings = NormaliseSettings()
    dedup: DedupSettings = DedupSettings()
    download: DownloadSettings = DownloadSettings()
    workers: int = 2
    shard_size: int = 0  # items per committed shard; 0 picks a size from the workload


#: The config file's tables: this module reads `[ingest]`, the annotation workflow `[label_studio]`. Other tools'
#: tables may share the file, but a table whose name is close to one of these is a typo and is refused.
CONFIG_TABLES = ("ingest", "label_studio")

#: x264's presets (`x264 --fullhelp`), fastest first.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
_BITRATE = re.compile(r"[1-9][0-9]{0,5}k?", re.ASCII)  # ffmpeg's -b:a: bits/s, or kbit/s with `k`

_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_type(value: object, annotation: str, where: str) -> None:
    """`annotation` is the field's type as written (`float`, `int | None`, ...); bool is not accepted as a number."""
    names = [part.strip() for part in annotation.split("|")]
    if value is None and "None" in names:
        return
    allowed = tuple(t for name in names for t in _TYPES.get(name, ()))
    if not allowed:
        return
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        wanted = " or ".join(n for n in names if n != "None") + (" (or unset)" if "None" in names else "")
        raise ValueError(f"{where}: {value!r} is not of type {wanted}")


def _build(cls: type, values: object, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a table of settings, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        else:
            _check_type(value, str(known[name].type), f"{where}.{name}")
            kwargs[name] = value
    return cls(**kwargs)


_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")  # what yt-dlp's --proxy takes


def proxy_problem(value: str) -> str | None:
    """Why `value` cannot be the download proxy (a URL of a scheme yt-dlp takes, with a host and a valid port), else
    None. The value is never repeated: it may hold a password."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in _PROXY_SCHEMES and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a malformed host, a port that is not a number or out of range
        ok = False
    if ok:
        return None
    return (f"must be a URL such as http://HOST:PORT or socks5://HOST:PORT ({', '.join(_PROXY_SCHEMES)}); the value "
            "is not shown: it may hold a password")  # fmt: skip


def _not_finite(node: object, prefix: str = "") -> list[str]:
    """Every float setting below `node` that is nan or infinite, as `dotted = value: must be a finite number`: TOML
    spells both (`inf`, `nan`), and each passes a one-sided range check (an infinite timeout, an infinite fps cap)."""
    found = []
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            found += _not_finite(value, f"{prefix}{f.name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(f"{prefix}{f.name} = {value!r}: must be a finite number")
    return found


def check_settings(settings: IngestSettings) -> list[str]:
    """The impossible values in `settings`, one message each naming the dotted setting (empty when every value is
    usable): numbers that are not finite, negative or zero sizes, rates and counts, values beyond what the tools
    take (x264's CRF and presets, AAC's sample rates, H.264's largest frame), a minimum above its maximum, and
    distances outside the fingerprint's [0, 1] range."""
    not_finite = _not_finite(settings)
    if not_finite:  # the range rules below compare numbers: nan passes some of them
        return not_finite
    f, n, d, dl = settings.filters, settings.normalise, settings.dedup, settings.download
    rules = [
        (settings.workers >= 1, "workers", settings.workers, "must be >= 1"),
        (settings.workers <= 4096, "workers", settings.workers, "must be <= 4096 (worker processes of one run)"),
        (settings.shard_size >= 0, "shard_size", settings.shard_size, "must be >= 0"),
        (f.min_duration_s >= 0, "filters.min_duration_s", f.min_duration_s, "must be >= 0"),
        (f.max_duration_s > 0, "filters.max_duration_s", f.max_duration_s, "must be > 0"),
        (
            f.min_duration_s <= f.max_duration_s,
            "filters.min_duration_s",
            f.min_duration_s,
            f"must not exceed filters.max_duration_s ({f.max_duration_s})",
        ),
        (f.min_short_side >= 0, "filters.min_short_side", f.min_short_side, "must be >= 0"),
        (0 <= f.min_decoded_fraction <= 1, "filters.min_decoded_fraction", f.min_decoded_fraction, "must be in [0, 1]"),
        (n.max_short_side >= 2, "normalise.max_short_side", n.max_short_side, "must be >= 2"),
        (n.max_short_side <= 8192, "normalise.max_short_side", n.max_short_side,
         "must be <= 8192 (H.264's largest frame side)"),
        (n.max_fps > 0, "normalise.max_fps", n.max_fps, "must be > 0"),
        (n.max_fps <= 1000, "normalise.max_fps", n.max_fps, "must be <= 1000"),
        (0 <= n.crf <= 51, "normalise.crf", n.crf, "must be in [0, 51] (x264)"),
        (n.preset in X264_PRESETS, "normalise.preset", n.preset, f"must be one of {', '.join(X264_PRESETS)} (x264)"),
        (bool(_BITRATE.fullmatch(n.audio_bitrate)), "normalise.audio_bitrate", n.audio_bitrate,
         "must be bits/s or kbit/s as ffmpeg takes them (128k)"),
        (8000 <= n.audio_sample_rate <= 96000, "normalise.audio_sample_rate", n.audio_sample_rate,
         "must be in [8000, 96000] (AAC's sample rates)"),
        (0 <= n.threads_per_job <= 1024, "normalise.threads_per_job", n.threads_per_job, "must be in [0, 1024]"),
        (
            0 <= d.near_duplicate_threshold <= 1,
            "dedup.near_duplicate_threshold",
            d.near_duplicate_threshold,
            "must be in [0, 1] (a normalised Hamming distance)",
        ),
        (d.duration_tolerance_s >= 0, "dedup.duration_tolerance_s", d.duration_tolerance_s, "must be >= 0"),
        (d.duration_tolerance_ratio >= 0, "dedup.duration_tolerance_ratio", d.duration_tolerance_ratio, "must be >= 0"),
        (1 <= dl.attempts <= 20, "download.attempts", dl.attempts, "must be in [1, 20] (the wait doubles each try)"),
        (0 <= dl.backoff_s <= 3600, "download.backoff_s", dl.backoff_s, "must be in [0, 3600] seconds"),
        (0 < dl.socket_timeout_s <= 3600, "download.socket_timeout_s", dl.socket_timeout_s,
         "must be in (0, 3600] seconds"),
        (dl.rate_limit_bytes is None or dl.rate_limit_bytes > 0, "download.rate_limit_bytes", dl.rate_limit_bytes,
         "must be > 0"),
        (dl.max_requests_per_minute is None or dl.max_requests_per_minute > 0, "download.max_requests_per_minute",
         dl.max_requests_per_minute, "must be > 0"),
    ]  # fmt: skip
    found = [f"{name} = {value!r}: {why}" for ok, name, value, why in rules if not ok]
    if dl.proxy is not None and proxy_problem(dl.proxy):
        found.append(f"download.proxy {proxy_problem(dl.proxy)}")
    return found


def read_config_file(path: Path, where: str | None = None) -> dict:
    """The TOML document of the config file `path`. Raises ValueError starting with `where` (default: the path) when
    it cannot be read, is not UTF-8 text (the byte and offset named) or not TOML, or has a table whose name is a
    misspelling of one of `CONFIG_TABLES` (other tools' tables may share the file)."""
    where = where or str(path)
    try:
        document = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ValueError(f"{where}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: cannot read config: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start})") from None  # fmt: skip
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: cannot read config: {' '.join(str(exc).split())}") from None
    for name in sorted(set(document) - set(CONFIG_TABLES)):
        near = difflib.get_close_matches(name, CONFIG_TABLES, n=1, cutoff=0.6)
        if near:  # a misspelling of ours must not be ignored
            raise ValueError(f"{where}: unknown table [{name}]; did you mean [{near[0]}]?")
    return document


def load_settings(config_file: Path | None = None, **overrides: object) -> IngestSettings:
    """Defaults, then the config file's ``[ingest]`` table, then dotted `overrides` such as
    ``{"filters.min_duration_s": 2.0}`` (None values are ignored), then the cookies environment variable.

    Raises ValueError naming the file (or `settings` for overrides alone) and the dotted setting for an unreadable
    file, a misspelt table, an unknown setting, a value of the wrong type, or an impossible value (`check_settings`)."""
    table: dict = {}
    if config_file is not None:
        table = read_config_file(config_file).get("ingest", {})
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = table
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    for env, key in ((COOKIES_ENV, "cookies_file"), (PROXY_ENV, "proxy")):
        if os.environ.get(env):
            if key == "proxy" and proxy_problem(os.environ[env]):
                raise ValueError(f"{env}: {proxy_problem(os.environ[env])}")
            table.setdefault("download", {})[key] = os.environ[env]
    settings = _build(IngestSettings, table, f"{config_file} [ingest]" if config_file else "settings")
    problems = check_settings(settings)
    if problems:
        raise ValueError(f"{config_file or 'settings'}: {'; '.join(problems)}")
    return settings

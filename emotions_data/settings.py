"""Ingest settings: every filter, normalisation and download knob, with its documented default.

Settings come from (lowest to highest precedence) the defaults below, a TOML config file
(``[ingest]`` table), then command-line flags. Secrets never come from argv: the cookies file
and the proxy are read from the ``EMOTIONS_COOKIES_FILE`` / ``EMOTIONS_PROXY`` environment
variables or the config file only.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

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


def _build(cls: type, values: dict, where: str):
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
            kwargs[name] = value
    return cls(**kwargs)


def load_settings(config_file: Path | None = None, **overrides: object) -> IngestSettings:
    """Defaults, then the config file's ``[ingest]`` table, then dotted `overrides` such as
    ``{"filters.min_duration_s": 2.0}`` (None values are ignored), then the cookies environment variable."""
    table: dict = {}
    if config_file is not None:
        try:
            table = tomllib.loads(Path(config_file).read_text()).get("ingest", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{config_file}: cannot read config: {exc}") from exc
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
            table.setdefault("download", {})[key] = os.environ[env]
    settings = _build(IngestSettings, table, str(config_file or "settings"))
    if settings.workers < 1:
        raise ValueError("workers must be >= 1")
    return settings

"""Every ingest setting is checked when read: numbers finite (TOML spells inf and nan) and within what the tools
take, text settings among their values, the proxy a URL; one ValueError line naming the file and dotted setting."""

from __future__ import annotations

import pytest

from emotions_data.settings import COOKIES_ENV, PROXY_ENV, IngestSettings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(COOKIES_ENV, raising=False)
    monkeypatch.delenv(PROXY_ENV, raising=False)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[ingest.download]\nsocket_timeout_s = inf", "download.socket_timeout_s = inf: must be a finite number"),
        ("[ingest.download]\nsocket_timeout_s = 86400", "download.socket_timeout_s = 86400: must be in (0, 3600]"),
        ("[ingest.download]\nbackoff_s = nan", "download.backoff_s = nan: must be a finite number"),
        ("[ingest.download]\nmax_requests_per_minute = inf", "download.max_requests_per_minute = inf"),
        ("[ingest.download]\nattempts = 1000", "download.attempts = 1000: must be in [1, 20]"),
        ("[ingest.normalise]\nmax_fps = inf", "normalise.max_fps = inf: must be a finite number"),
        ("[ingest.normalise]\nmax_fps = -inf", "normalise.max_fps = -inf: must be a finite number"),
        ("[ingest.normalise]\nmax_fps = 5000.0", "normalise.max_fps = 5000.0: must be <= 1000"),
        ("[ingest.normalise]\nmax_short_side = 100000", "normalise.max_short_side = 100000: must be <= 8192"),
        ('[ingest.normalise]\npreset = "fastest"', "normalise.preset = 'fastest': must be one of ultrafast"),
        ('[ingest.normalise]\naudio_bitrate = "lots"', "normalise.audio_bitrate = 'lots'"),
        ("[ingest.normalise]\naudio_sample_rate = 1", "normalise.audio_sample_rate = 1: must be in [8000, 96000]"),
        ("[ingest.normalise]\ncrf = 23.5", "[ingest].normalise.crf: 23.5 is not of type int"),
        ("[ingest.filters]\nmin_duration_s = nan", "filters.min_duration_s = nan: must be a finite number"),
        ("[ingest.filters]\nmax_duration_s = inf", "filters.max_duration_s = inf: must be a finite number"),
        ("[ingest.filters]\nmin_decoded_fraction = nan", "filters.min_decoded_fraction = nan"),
        ("[ingest.dedup]\nnear_duplicate_threshold = nan", "dedup.near_duplicate_threshold = nan"),
        ("[ingest.dedup]\nduration_tolerance_s = inf", "dedup.duration_tolerance_s = inf"),
        ("[ingest]\nworkers = 100000", "workers = 100000: must be <= 4096"),
        ("[ingest]\nworkers = true", "[ingest].workers: True is not of type int"),
        ('[ingest.download]\nproxy = "ftp://p.example:21"', "download.proxy must be a URL such as http://HOST:PORT"),
        ('[ingest.download]\nproxy = "http://[::1"', "download.proxy must be a URL"),
    ],
)
def test_a_setting_out_of_range_is_named(tmp_path, body, expected):
    path = tmp_path / "c.toml"
    path.write_text(body + "\n")
    with pytest.raises(ValueError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(str(path)) and expected in str(caught.value), caught.value


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"normalise.max_fps": float("inf")}, "normalise.max_fps = inf: must be a finite number"),
        ({"download.socket_timeout_s": float("nan")}, "download.socket_timeout_s = nan"),
        ({"dedup.near_duplicate_threshold": float("nan")}, "dedup.near_duplicate_threshold = nan"),
    ],
)
def test_an_override_out_of_range_is_named(overrides, expected):
    with pytest.raises(ValueError, match=r"^settings: ") as caught:
        load_settings(**overrides)
    assert expected in str(caught.value)


def test_a_malformed_proxy_in_the_environment_is_named_without_its_value(monkeypatch):
    monkeypatch.setenv(PROXY_ENV, "http://user:hunter2@[proxy")
    with pytest.raises(ValueError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{PROXY_ENV}: must be a URL") and "hunter2" not in str(caught.value)
    monkeypatch.setenv(PROXY_ENV, "socks5://user:hunter2@proxy.internal:1080")
    assert load_settings().download.proxy.startswith("socks5://")


def test_the_defaults_and_every_preset_pass():
    assert load_settings() == IngestSettings()
    for preset in ("ultrafast", "veryfast", "medium", "slow", "veryslow"):
        assert load_settings(**{"normalise.preset": preset}).normalise.preset == preset


@pytest.mark.parametrize("value", ["relative/scratch", "{file}"])
def test_a_scratch_folder_that_cannot_be_one_is_named(tmp_path, monkeypatch, value):
    from emotions_data.objectstore import node_scratch

    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("EMOTIONS_SCRATCH_DIR", value.format(file=tmp_path / "a-file"))
    with pytest.raises(ValueError, match=r"^EMOTIONS_SCRATCH_DIR=.*must be the absolute path of a folder"):
        node_scratch("s3://bucket/ds")
    monkeypatch.setenv("EMOTIONS_SCRATCH_DIR", str(tmp_path / "new"))
    assert node_scratch("s3://bucket/ds").parent == tmp_path / "new"

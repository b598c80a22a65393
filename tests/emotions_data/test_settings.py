"""Ingest settings (emotions_data.settings): TOML, overrides, secrets from the environment."""

from __future__ import annotations

import re

import pytest

from emotions_data.settings import COOKIES_ENV, PROXY_ENV, IngestSettings, load_settings


@pytest.fixture()
def clean_env(monkeypatch):
    monkeypatch.delenv(COOKIES_ENV, raising=False)
    monkeypatch.delenv(PROXY_ENV, raising=False)


CONFIG = """
[ingest]
workers = 4
shard_size = 3

[ingest.filters]
min_duration_s = 2.5
require_audio = false

[ingest.normalise]
max_short_side = 480
preset = "medium"

[ingest.dedup]
near_duplicate_threshold = 0.2

[ingest.download]
attempts = 5
user_agent = "test-agent"
"""


@pytest.fixture()
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_load_settings_defaults(clean_env):
    settings = load_settings()
    assert settings == IngestSettings()
    assert settings.filters.min_duration_s == 1.0
    assert settings.filters.max_duration_s == 300.0
    assert settings.filters.min_short_side == 240
    assert settings.filters.require_audio is True
    assert settings.normalise.max_short_side == 720
    assert settings.dedup.near_duplicate_threshold == 0.30
    assert settings.download.attempts == 3
    assert settings.download.allow_file_urls is False
    assert settings.download.cookies_file is None and settings.download.proxy is None
    assert settings.workers == 2


def test_load_settings_from_toml(clean_env, config_file):
    settings = load_settings(config_file)
    assert settings.workers == 4
    assert settings.shard_size == 3
    assert settings.filters.min_duration_s == 2.5
    assert settings.filters.require_audio is False
    assert settings.filters.max_duration_s == 300.0  # untouched default
    assert settings.normalise.max_short_side == 480
    assert settings.normalise.preset == "medium"
    assert settings.normalise.crf == 23
    assert settings.dedup.near_duplicate_threshold == 0.2
    assert settings.download.attempts == 5
    assert settings.download.user_agent == "test-agent"


def test_load_settings_without_ingest_table_gives_defaults(clean_env, tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[something_else]\nworkers = 9\n")
    assert load_settings(path) == IngestSettings()


def test_load_settings_overrides_win_over_file(clean_env, config_file):
    settings = load_settings(config_file, **{"filters.min_duration_s": 3.0, "workers": 8, "download.attempts": 1})
    assert settings.filters.min_duration_s == 3.0
    assert settings.workers == 8
    assert settings.download.attempts == 1
    assert settings.filters.require_audio is False  # from the file, not overridden
    assert settings.download.user_agent == "test-agent"


def test_load_settings_ignores_none_overrides(clean_env, config_file):
    settings = load_settings(config_file, **{"filters.min_duration_s": None, "workers": None})
    assert settings.filters.min_duration_s == 2.5
    assert settings.workers == 4
    assert load_settings(None, **{"dedup.near_duplicate_threshold": None}) == IngestSettings()


@pytest.mark.parametrize(
    ("toml", "overrides", "name"),
    [
        ("[ingest]\nbogus = 1\n", {}, "bogus"),
        ("[ingest.filters]\nmin_duraton_s = 1\n", {}, "min_duraton_s"),
        ("[ingest.nosuchtable]\nx = 1\n", {}, "nosuchtable"),
        ("", {"filters.nope": 1}, "nope"),
        ("", {"nosection.value": 1}, "nosection"),
    ],
)
def test_load_settings_unknown_key_is_named(clean_env, tmp_path, toml, overrides, name):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=name):
        load_settings(path, **overrides)


def test_load_settings_unreadable_toml_names_the_file(clean_env, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[ingest\nworkers = ")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_settings(path)


def test_load_settings_rejects_zero_workers(clean_env):
    with pytest.raises(ValueError, match="workers"):
        load_settings(workers=0)


@pytest.mark.parametrize(
    ("toml", "overrides", "named"),
    [
        ("[ingets]\nworkers = 3\n", {}, "did you mean [ingest]"),  # a misspelt table is not ignored
        ("[label-studio]\ntoken = 1\n", {}, "did you mean [label_studio]"),
        ('[ingest]\nworkers = "two"\n', {}, "[ingest].workers"),
        ('[ingest.filters]\nrequire_audio = "no"\n', {}, "filters.require_audio"),
        ("[ingest.download]\nattempts = true\n", {}, "download.attempts"),  # a bool is not a count
        ("[ingest]\nfilters = 3\n", {}, "[ingest].filters"),
        ("", {"filters.min_duration_s": -5, "filters.max_duration_s": 0}, "filters.min_duration_s = -5"),
        ("", {"filters.min_duration_s": 10.0, "filters.max_duration_s": 5.0}, "must not exceed"),
        ("", {"dedup.near_duplicate_threshold": 1.5}, "dedup.near_duplicate_threshold"),
        ("", {"download.attempts": 0}, "download.attempts"),
        ("", {"download.rate_limit_bytes": -1}, "download.rate_limit_bytes"),
        ("", {"normalise.max_short_side": 0}, "normalise.max_short_side"),
    ],
)
def test_load_settings_refuses_wrong_types_and_impossible_values(clean_env, tmp_path, toml, overrides, named):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError) as caught:
        load_settings(path, **overrides)
    message = str(caught.value)
    assert named in message and str(path) in message and "\n" not in message


def test_check_settings_reports_every_impossible_value_at_once():
    from emotions_data.settings import FilterSettings, check_settings

    bad = IngestSettings(filters=FilterSettings(min_duration_s=-5, max_duration_s=0), workers=0)
    problems = check_settings(bad)
    assert [p.split(" = ")[0] for p in problems] == ["workers", "filters.min_duration_s", "filters.max_duration_s"]
    assert check_settings(IngestSettings()) == []


SECRET_COOKIES = "/home/someone/secret-cookies.txt"
SECRET_PROXY = "http://user:hunter2@proxy.internal:3128"


def test_load_settings_secrets_from_environment(monkeypatch, config_file):
    monkeypatch.setenv(COOKIES_ENV, SECRET_COOKIES)
    monkeypatch.setenv(PROXY_ENV, SECRET_PROXY)
    settings = load_settings(config_file)
    assert settings.download.cookies_file == SECRET_COOKIES
    assert settings.download.proxy == SECRET_PROXY
    assert settings.download.attempts == 5  # the rest of the download table is kept


def test_load_settings_environment_wins_over_config_file(monkeypatch, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[ingest.download]\ncookies_file = "/from/file.txt"\nproxy = "http://file-proxy:1"\n')
    monkeypatch.delenv(COOKIES_ENV, raising=False)
    monkeypatch.delenv(PROXY_ENV, raising=False)
    assert load_settings(path).download.cookies_file == "/from/file.txt"
    monkeypatch.setenv(COOKIES_ENV, SECRET_COOKIES)
    monkeypatch.setenv(PROXY_ENV, SECRET_PROXY)
    settings = load_settings(path)
    assert settings.download.cookies_file == SECRET_COOKIES
    assert settings.download.proxy == SECRET_PROXY


def test_settings_repr_does_not_leak_secrets(monkeypatch):
    monkeypatch.setenv(COOKIES_ENV, SECRET_COOKIES)
    monkeypatch.setenv(PROXY_ENV, SECRET_PROXY)
    settings = load_settings()
    assert settings.download.cookies_file == SECRET_COOKIES
    for text in (repr(settings), str(settings), repr(settings.download), f"{settings}"):
        assert "secret-cookies" not in text
        assert "hunter2" not in text
        assert "proxy.internal" not in text
    assert "attempts=3" in repr(settings)  # the non-secret fields are still shown

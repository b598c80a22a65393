"""Deployment settings of the managed server: database URL, WSGI server, public URL (no server started)."""

from __future__ import annotations

import re

import pytest

from annotation.labelstudio.config import (
    CONFIG_ENV,
    DATABASE_URL_ENV,
    ServerConfig,
    ServerError,
    load_config,
    parse_database_url,
)
from annotation.labelstudio.database import DATABASE_FILE, is_first_start, record_database, sqlite_path
from annotation.labelstudio.process import _server_env

LS_ENV = ("DJANGO_DB", "POSTGRE_HOST", "POSTGRE_PORT", "POSTGRE_NAME", "POSTGRE_USER", "POSTGRE_PASSWORD",
          "LABEL_STUDIO_HOST", "CSRF_TRUSTED_ORIGINS", "SESSION_COOKIE_SECURE", DATABASE_URL_ENV,
          CONFIG_ENV)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in LS_ENV:
        monkeypatch.delenv(name, raising=False)


def test_a_database_url_is_parsed_and_its_password_never_shown():
    db = parse_database_url("postgresql://lab%40user:p%3Ass%2Fw@db.lab.example:6543/label%20studio")
    assert (db.user, db.password, db.host, db.port, db.name) == (
        "lab@user",
        "p:ss/w",
        "db.lab.example",
        6543,
        "label studio",
    )
    assert db.label == "postgresql://lab@user@db.lab.example:6543/label studio" and "p:ss/w" not in repr(db)
    assert parse_database_url("postgres://u@h/d").port == 5432
    assert db.libpq_env()["PGPASSWORD"] == "p:ss/w" and db.label_studio_env()["POSTGRE_NAME"] == "label studio"
    for bad, why in (("mysql://u:secret@h/d", "postgresql://"), ("postgresql://u:secret@h/", "must name"),
                     ("postgresql://h/d", "must name"), ("postgresql://u:secret@h:99999/d", "not a URL")):  # fmt: skip
        with pytest.raises(ServerError, match=why) as info:
            parse_database_url(bad)
        assert "secret" not in str(info.value)


def test_the_database_comes_from_the_environment_or_the_config_file_never_an_option(tmp_path, monkeypatch):
    assert load_config(data_dir=tmp_path).database is None
    monkeypatch.setenv("DJANGO_DB", "postgresql")  # Label Studio's own names
    monkeypatch.setenv("POSTGRE_HOST", "10.0.0.5")
    monkeypatch.setenv("POSTGRE_USER", "ls")
    monkeypatch.setenv("POSTGRE_PASSWORD", "pa ss@word")
    monkeypatch.setenv("POSTGRE_NAME", "labels")
    db = load_config(data_dir=tmp_path).database
    assert (db.host, db.port, db.user, db.password, db.name) == ("10.0.0.5", 5432, "ls", "pa ss@word", "labels")
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://other:pw@127.0.0.1:5433/x")  # ours wins
    config = load_config(data_dir=tmp_path)
    assert config.database.label == "postgresql://other@127.0.0.1:5433/x" and "pw" not in repr(config)
    env = _server_env(config, tmp_path / "ls-data", None)
    assert (env["DJANGO_DB"], env["POSTGRE_PORT"], env["POSTGRE_PASSWORD"]) == ("postgresql", "5433", "pw")
    file = tmp_path / "emotions.toml"
    file.write_text('[label_studio]\nwsgi = "uwsgi"\n')
    with pytest.raises(ServerError, match="wsgi must be one of auto, django, gunicorn"):
        load_config(file)
    file.write_text('[label_studio]\npublic_url = "ls.lab.example"\n')
    with pytest.raises(ServerError, match="public_url must be an http"):
        load_config(file)


def test_the_proxy_settings_reach_label_studio(tmp_path, monkeypatch):
    config = ServerConfig(data_dir=tmp_path, public_url="https://ls.lab.example/")
    env = _server_env(config, tmp_path / "ls-data", None)
    assert env["LABEL_STUDIO_HOST"] == "https://ls.lab.example" and env["DJANGO_DB"] == "sqlite"
    assert env["CSRF_TRUSTED_ORIGINS"] == "https://ls.lab.example"
    assert env["SESSION_COOKIE_SECURE"] == env["CSRF_COOKIE_SECURE"] == "1"
    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", "https://ls.lab.example,https://backup.lab.example")
    monkeypatch.setenv("LABEL_STUDIO_HOST", "https://from-env.example")
    assert _server_env(config, tmp_path, None)["CSRF_TRUSTED_ORIGINS"].endswith("backup.lab.example")
    assert load_config(data_dir=tmp_path).public_url == "https://from-env.example"


def test_a_data_folder_keeps_its_database(tmp_path):
    pg = ServerConfig(data_dir=tmp_path, database_url="postgresql://u:pw@127.0.0.1:5432/a")
    assert is_first_start(pg)
    record_database(pg)
    assert "pw" not in (tmp_path / DATABASE_FILE).read_text() and not is_first_start(pg)
    with pytest.raises(ServerError, match=re.escape("not postgresql://u@127.0.0.1:5432/b")):
        is_first_start(ServerConfig(data_dir=tmp_path, database_url="postgresql://u:pw@127.0.0.1:5432/b"))
    with pytest.raises(ServerError, match="would create an empty SQLite database"):
        is_first_start(ServerConfig(data_dir=tmp_path))
    sqlite_folder = tmp_path / "sqlite"
    sqlite_path(sqlite_folder).parent.mkdir(parents=True)
    sqlite_path(sqlite_folder).write_bytes(b"")
    assert not is_first_start(ServerConfig(data_dir=sqlite_folder))
    with pytest.raises(ServerError, match="holds the SQLite database of another server"):
        is_first_start(ServerConfig(data_dir=sqlite_folder, database_url="postgresql://u@h/d"))


def test_the_servers_own_path_of_the_document_root_comes_from_the_environment_or_the_file(tmp_path, monkeypatch):
    from annotation.labelstudio.config import SERVER_ROOT_ENV

    monkeypatch.setenv(SERVER_ROOT_ENV, "/label-studio/files")
    assert load_config(data_dir=tmp_path).server_document_root == "/label-studio/files"
    monkeypatch.delenv(SERVER_ROOT_ENV)
    config_file = tmp_path / "emotions.toml"
    config_file.write_text('[label_studio]\nserver_document_root = "label-studio/files"\n')
    with pytest.raises(ServerError, match=r"server_document_root must be an absolute path"):
        load_config(config_file, data_dir=tmp_path)

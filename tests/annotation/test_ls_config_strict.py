"""The Label Studio settings are read as strictly as the ingest settings: a value of the wrong type, a file that is
not UTF-8 or TOML, a misspelt table, a malformed URL or any bad environment variable is one ServerError line starting
with where the value came from (the file and key, the variable, or the option). No server is started."""

from __future__ import annotations

import pytest

from annotation.labelstudio import config as ls_config
from annotation.labelstudio.config import ServerError, load_config

VARIABLES = ("EMOTIONS_LS_USERNAME", "EMOTIONS_LS_PASSWORD", "EMOTIONS_LS_TOKEN", "EMOTIONS_CONFIG", "EMOTIONS_LS_URL",
             "EMOTIONS_MEDIA_BASE_URL", "EMOTIONS_LS_SERVER_DOCUMENT_ROOT", "EMOTIONS_LS_DATABASE_URL", "DJANGO_DB",
             "POSTGRE_HOST", "POSTGRE_PORT", "POSTGRE_NAME", "POSTGRE_USER", "POSTGRE_PASSWORD",
             "LABEL_STUDIO_HOST")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('port = "8080"', "c.toml [label_studio].port: '8080' is not an integer"),
        ("port = 80.5", "[label_studio].port: 80.5 is not an integer"),
        ("port = true", "[label_studio].port: True is not an integer"),
        ("workers = 1.5", "[label_studio].workers: 1.5 is not an integer"),
        ("host = 3", "[label_studio].host: 3 is not text"),
        ('username = ["a@b"]', "[label_studio].username: ['a@b'] is not text"),
        ("data_dir = 5", "[label_studio].data_dir: 5 is not text"),
        ("token = 12345678", "[label_studio].token: 12345678 is not text"),
        ("port = 70000", "c.toml [label_studio].port: port 70000 is out of range"),
        ("workers = 0", "c.toml [label_studio].workers: workers must be 1-64"),
        ('host = "a b"', "c.toml [label_studio].host: host must be a host name"),
        ('url = "http://[::1"', "c.toml [label_studio].url: the Label Studio URL must be an http:// or https:// URL"),
        ('url = "http://ls.example:99999"', "c.toml [label_studio].url: the Label Studio URL must be"),
        ('media_base_url = "ftp://media.example"', "c.toml [label_studio].media_base_url: the media base URL"),
        ('public_url = "https://[bad"', "c.toml [label_studio].public_url: public_url must be an http(s) URL"),
        ('database_url = "mysql://u@h/d"', "c.toml [label_studio].database_url: database_url must be a postgresql"),
        ('database_url = "postgresql://u@h:port/d"', "c.toml [label_studio].database_url: database_url is not a URL"),
    ],
)
def test_a_bad_value_in_the_file_is_named_by_file_and_key(tmp_path, body, expected):
    path = tmp_path / "c.toml"
    path.write_text(f"[label_studio]\n{body}\n")
    with pytest.raises(ServerError) as caught:
        load_config(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[label_studio]\nusername = "K\xf6nig@lab"\n'.encode("latin-1"), "not UTF-8 text (byte 0xf6 at offset 28)"),
        (b"label_studio = 3\n", "label_studio must be a table"),
        (b"[label_stuido]\nport = 1\n", "unknown table [label_stuido]; did you mean [label_studio]?"),
        (b"[label_studio]\nport = \n", "cannot read config: Invalid value"),
        (b"[label_studio]\nprot = 1\n", "unknown [label_studio] setting(s) prot"),
    ],
)
def test_an_unreadable_file_is_named(tmp_path, content, expected):
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    with pytest.raises(ServerError, match=r"c\.toml") as caught:
        load_config(path)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"EMOTIONS_LS_URL": "http://[::1"}, "EMOTIONS_LS_URL: the Label Studio URL must be an http"),
        ({"EMOTIONS_LS_URL": "http://ls.example:http"}, "EMOTIONS_LS_URL: the Label Studio URL must be"),
        ({"EMOTIONS_LS_URL": "ls.example"}, "EMOTIONS_LS_URL: the Label Studio URL must be"),
        ({"EMOTIONS_LS_URL": "https://u:p@ls.example"}, "EMOTIONS_LS_URL: the Label Studio URL must not carry"),
        ({"EMOTIONS_MEDIA_BASE_URL": "http://[m"}, "EMOTIONS_MEDIA_BASE_URL: the media base URL must be"),
        ({"EMOTIONS_LS_TOKEN": "abc"}, "EMOTIONS_LS_TOKEN: the API token must be"),
        ({"EMOTIONS_LS_USERNAME": "admin"}, "EMOTIONS_LS_USERNAME: the admin username must be an e-mail"),
        ({"EMOTIONS_LS_SERVER_DOCUMENT_ROOT": "files"}, "EMOTIONS_LS_SERVER_DOCUMENT_ROOT: server_document_root"),
        ({"EMOTIONS_LS_DATABASE_URL": "sqlite:///x"}, "EMOTIONS_LS_DATABASE_URL: database_url must be a postgresql"),
        ({"EMOTIONS_LS_DATABASE_URL": "postgresql://u@[h/d"}, "EMOTIONS_LS_DATABASE_URL: database_url is not a URL"),
        ({"DJANGO_DB": "postgresql", "POSTGRE_PORT": "five"}, "DJANGO_DB=postgresql with POSTGRE_*: database_url"),
        ({"LABEL_STUDIO_HOST": "https://[ls"}, "LABEL_STUDIO_HOST: public_url must be an http(s) URL"),
        ({"EMOTIONS_CONFIG": "/nonexistent/emotions.toml"},
         "/nonexistent/emotions.toml (from EMOTIONS_CONFIG): cannot read config: No such file or directory"),
    ],
)  # fmt: skip
def test_a_bad_environment_variable_is_named(tmp_path, monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ServerError) as caught:
        load_config(data_dir=tmp_path)
    assert expected in str(caught.value)


def test_a_bad_option_is_named_and_a_variable_is_not_blamed_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTIONS_LS_URL", "https://ls.example")
    with pytest.raises(ServerError, match=r"^--url: the Label Studio URL must be"):
        load_config(data_dir=tmp_path, url="http://[::1")
    with pytest.raises(ServerError, match=r"^--port: port -1 is out of range"):
        load_config(data_dir=tmp_path, port=-1)


def test_a_good_file_still_reads(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[other_tool]\nx = 1\n[label_studio]\nport = 8081\nworkers = 3\nhost = "0.0.0.0"\n'
                    'url = "https://ls.example/"\n')  # fmt: skip
    config = load_config(path)
    assert (config.port, config.workers, config.host, config.base_url) == (8081, 3, "0.0.0.0", "https://ls.example")
    assert ls_config.validate_config(config) is None


def test_a_postgresql_tools_folder_without_the_tool_is_named(tmp_path, monkeypatch):
    from annotation.labelstudio.database import find_pg_tool

    monkeypatch.setenv("EMOTIONS_PG_BIN", str(tmp_path))
    with pytest.raises(ServerError, match=r"^EMOTIONS_PG_BIN=.*: no pg_dump in that folder"):
        find_pg_tool("pg_dump")

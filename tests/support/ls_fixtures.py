"""Label Studio fixtures: a real server (the `label-studio` package in .venv-ls, see `make ls-server`).

Label Studio's first start migrates its database, which costs about half a minute; a start on a migrated data
folder takes a few seconds. So the session migrates one template folder once (`ls_template`), and every server
the tests run starts on a copy of it:

* `ls_server` (session): one running server on a free 127.0.0.1 port, shared by all tests that ask for it. Its
  `config` holds the URL, the admin e-mail and the API token
  (`annotation.labelstudio.client.api(ls_server.config, ...)`); `config.document_root` is a temporary folder
  served as local files (put storages in sub-folders of it).
  Do not stop it; for stop/restart tests take a private server from `ls_data_dir`.
* `ls_data_dir` (function): a fresh, migrated, stopped data folder of your own, as a `ServerConfig` ready to
  `start()`; stop it yourself (or let the fixture do it at teardown).

tests/conftest.py imports them for every test module:
`from tests.support.ls_fixtures import ls_data_dir, ls_server, ls_template  # noqa: F401`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from annotation.labelstudio.config import CREDENTIALS_FILE, ServerConfig
from annotation.labelstudio.process import LS_DATA, ServerHandle, start, stop

TEST_ADMIN = "tester@localhost"


def clone_data_dir(template: ServerConfig, data_dir: Path) -> ServerConfig:
    """A copy of a stopped, migrated data folder (database, secret key, credentials) at `data_dir`."""
    shutil.copytree(template.data_dir / LS_DATA, data_dir / LS_DATA)
    if (template.data_dir / CREDENTIALS_FILE).exists():
        shutil.copy2(template.data_dir / CREDENTIALS_FILE, data_dir / CREDENTIALS_FILE)
    return dataclasses.replace(template, data_dir=data_dir, port=0)


@pytest.fixture(scope="session")
def ls_template(tmp_path_factory) -> ServerHandle:
    """The handle of Label Studio's first start (migrations, admin user; password and token generated), already
    stopped again: `.config` is the template's config, `.ready_s` the first-start time."""
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("ls-template"), port=0, username=TEST_ADMIN)
    handle = start(config, timeout_s=600)
    stop(handle.config)
    return handle


@pytest.fixture(scope="session")
def ls_server(ls_template, tmp_path_factory) -> Iterator[ServerHandle]:
    data_dir = tmp_path_factory.mktemp("ls-server")
    document_root = tmp_path_factory.mktemp("ls-document-root")
    config = clone_data_dir(ls_template.config, data_dir)
    handle = start(config, document_root)
    try:
        yield handle
    finally:
        stop(handle.config)


@pytest.fixture()
def ls_data_dir(ls_template, tmp_path) -> Iterator[ServerConfig]:
    config = clone_data_dir(ls_template.config, tmp_path / "label-studio")
    try:
        yield config
    finally:
        stop(config)


def login_session(url: str, email: str, password: str) -> tuple[urllib.request.OpenerDirector, CookieJar]:
    """A browser-like session logged in through Label Studio's own login form, as a person in a browser; with its
    cookie jar (the CSRF cookie a form post needs)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), urllib.request.ProxyHandler({}))
    page = opener.open(f"{url}/user/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"email": email, "password": password, "csrfmiddlewaretoken": token}).encode()
    opener.open(urllib.request.Request(f"{url}/user/login/", data=form, headers={"Referer": f"{url}/user/login/"}))
    return opener, jar

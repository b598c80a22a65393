"""The managed server as the README's "Annotators on other machines" recipe runs it: gunicorn on loopback behind a real
nginx (Debian's package) terminating TLS with a self-signed certificate, also on loopback. A person logs in through
the proxy as a browser would (Origin header and all) and a script calls the API through it."""

from __future__ import annotations

import dataclasses
import http.cookiejar
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from annotation.labelstudio.config import ServerConfig, load_config
from annotation.labelstudio.process import (
    BIN_ENV,
    _cmdline,
    _listening,
    exposure_notice,
    free_port,
    start,
    stop,
)
from tests.support.ls_fixtures import TEST_ADMIN

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The README's site configuration, with the test's paths and ports (Debian's nginx.conf supplies the http block).
SITE = """
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {folder}/cert.pem;
        ssl_certificate_key {folder}/key.pem;
        client_max_body_size 100m;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 300s;
            proxy_max_temp_file_size 0;
        }}
    }}
"""

MAIN = """
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{site}
}}
"""


@pytest.fixture()
def tls_proxy(ls_data_dir, tmp_path):
    """(public URL, CA file, server handle): gunicorn behind nginx with TLS, both on loopback."""
    folder = tmp_path / "nginx"
    folder.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    public = f"https://127.0.0.1:{port}"
    config = dataclasses.replace(ls_data_dir, wsgi="gunicorn", public_url=public)
    handle = start(config)
    site = SITE.format(port=port, folder=folder, upstream=handle.config.port)
    (folder / "nginx.conf").write_text(MAIN.format(folder=folder, site=site))
    nginx = subprocess.Popen([NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _listening(nginx.pid):
            assert nginx.poll() is None and time.monotonic() < deadline, nginx.stderr.read()
            time.sleep(0.1)
        yield public, folder / "cert.pem", handle
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        stop(handle.config)


def browser(cafile: Path) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(cafile))
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPCookieProcessor(jar),
        urllib.request.ProxyHandler({}),
    )


def log_in(opener: urllib.request.OpenerDirector, url: str, email: str, password: str) -> str:
    """Post Label Studio's login form as a browser does (Origin and Referer of the page); the response's cookies."""
    page = opener.open(f"{url}/user/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"email": email, "password": password, "csrfmiddlewaretoken": token}).encode()
    request = urllib.request.Request(
        f"{url}/user/login/", data=form, headers={"Origin": url, "Referer": f"{url}/user/login/"}
    )
    with opener.open(request) as answer:
        return "; ".join(answer.headers.get_all("Set-Cookie") or [])


def test_login_and_api_through_nginx_with_tls(tls_proxy):
    public, cafile, handle = tls_proxy
    argv = _cmdline(handle.pid)
    assert any(Path(a).name == "gunicorn" for a in argv), argv
    assert _listening(handle.pid) == {("127.0.0.1", handle.config.port)}, "gunicorn stays on loopback"

    opener = browser(cafile)
    with pytest.raises(urllib.error.HTTPError, match="401"):
        opener.open(f"{public}/api/current-user/whoami")
    log_in(opener, public, TEST_ADMIN, handle.config.password)
    whoami = json.loads(opener.open(f"{public}/api/current-user/whoami").read())
    assert whoami["email"] == TEST_ADMIN, "logged in through the proxy"
    session = next(c for c in opener.handlers if isinstance(c, urllib.request.HTTPCookieProcessor)).cookiejar
    assert {c.name: c.secure for c in session}["sessionid"], "the session cookie is HTTPS-only"

    api = urllib.request.Request(f"{public}/api/projects", headers={"Authorization": f"Token {handle.config.token}"})
    assert "results" in json.loads(browser(cafile).open(api).read())
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"{public}/health", timeout=10)  # an unknown certificate is not trusted blindly


def test_binding_beyond_loopback_is_explicit_and_says_what_it_means(tmp_path, monkeypatch):
    assert exposure_notice(ServerConfig(data_dir=tmp_path)) is None
    exposed = ServerConfig(data_dir=tmp_path, host="0.0.0.0")
    assert exposed.wsgi_server == "gunicorn" and ServerConfig(data_dir=tmp_path).wsgi_server == "django"
    notice = exposure_notice(exposed)
    assert "plain HTTP" in notice and "TLS" in notice and "SSH tunnel" in notice
    monkeypatch.delenv("LABEL_STUDIO_HOST", raising=False)
    assert load_config(data_dir=tmp_path, host="::1").wsgi_server == "django"

    fake = tmp_path / "bin" / "label-studio"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fake: no database' >&2\nexit 3\n")
    fake.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "emotions_cli.server", "start", "--data-dir", str(tmp_path / "ls"), "--port", "0",
         "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=120, env={**os.environ, BIN_ENV: str(fake)},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "warning: Label Studio will listen on 0.0.0.0" in " ".join(proc.stderr.split())
    assert "plain HTTP" in proc.stderr and "label-studio init" in proc.stderr  # gunicorn's path: init first

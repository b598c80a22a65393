"""The managed server as the "Annotators on other machines" recipe of docs/admin/servers.md runs it: gunicorn on
loopback behind a real nginx (Debian's package) terminating TLS with a self-signed certificate, also on loopback.
A person logs in through the proxy as a browser would (Origin header and all) and a script calls the API through it."""

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
    exposure_notice,
    free_port,
    start,
    stop,
)
from annotation.labelstudio.procfs import cmdline as _cmdline
from annotation.labelstudio.procfs import listening as _listening
from tests.support.ls_fixtures import TEST_ADMIN

pytestmark = pytest.mark.server  # nginx in front of Label Studio

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The site configuration of docs/admin/servers.md, with the test's paths and ports (Debian's nginx.conf supplies
# the http block).
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


def make_private_ca(folder: Path) -> Path:
    """An institution's own certificate authority (`ca.pem`) and the server certificate it signs for 127.0.0.1 and
    localhost (`cert.pem`, `key.pem`) in `folder`; returns the CA's certificate, the file a client must trust."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test Lab Root CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "cert.csr")
    (folder / "cert.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    openssl("x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "cert.ext", "-out", "cert.pem")  # fmt: skip
    return folder / "ca.pem"


@pytest.fixture()
def tls_proxy(ls_data_dir, tmp_path):
    """(public URL, CA file, server handle): gunicorn behind nginx with TLS, both on loopback; the certificate is
    signed by a private CA the test makes."""
    folder = tmp_path / "nginx"
    folder.mkdir()
    ca = make_private_ca(folder)
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
        yield public, ca, handle
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


def test_the_workflow_client_through_tls_with_a_private_ca(tls_proxy, corpus, tmp_path):
    """push, pull, status and the admin-site path (credentials) by URL through the TLS proxy, the private CA trusted
    through SSL_CERT_FILE, as a lab whose institution signs its own certificates runs them; without it, one line."""
    from emotions_data.executor import make_executor
    from emotions_data.ingest import ingest
    from emotions_data.settings import load_settings
    from tests.support.commands import EMOTIONS

    public, ca, handle = tls_proxy
    clips = tmp_path / "in"
    clips.mkdir()
    for name in ("landscape.mp4", "portrait.mp4"):
        shutil.copy(corpus / name, clips / name)
    ds = str(tmp_path / "tls-ds")
    ingest([clips], Path(ds), load_settings(None), executor=make_executor("serial", 1))
    roster = tmp_path / "annotators.csv"
    roster.write_text("id,name,email,work_experience,eq_score,education,culture,leadership,role\n"
                      "T1,Person T1,t1@example.org,2,95,BSc,CN,0,annotator\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMOTIONS_", "SSL_CERT_", "REQUESTS_CA"))}
    env |= {"EMOTIONS_LS_URL": public, "EMOTIONS_LS_TOKEN": handle.config.token, "XDG_DATA_HOME": str(tmp_path),
            "EMOTIONS_LS_USERNAME": TEST_ADMIN, "EMOTIONS_LS_PASSWORD": handle.config.password,
            "EMOTIONS_MEDIA_BASE_URL": "https://media.lab.invalid/clips"}  # fmt: skip

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([EMOTIONS, "annotate", *args], capture_output=True, text=True, timeout=600,
                              env={**env, **extra})  # fmt: skip

    untrusted = cli("allocate", ds, "--roster", str(roster), "--groups", "1")
    lines = [ln for ln in untrusted.stderr.splitlines() if ln.strip()]
    assert untrusted.returncode == 1 and len(lines) == 1 and "Traceback" not in untrusted.stderr, untrusted.stderr
    assert public in lines[0] and "not trusted" in lines[0] and "SSL_CERT_FILE" in lines[0], lines[0]

    for step in (("allocate", ds, "--roster", str(roster), "--groups", "1"), ("credentials", ds),
                 ("push", ds, "--stage", "label", "--votes-per-item", "1"), ("simulate", ds, "--stage", "label"),
                 ("pull", ds), ("status", ds, "--json")):  # fmt: skip
        done = cli(*step, SSL_CERT_FILE=str(ca))
        assert done.returncode == 0, (step, done.stderr)
    assert json.loads(done.stdout)["stages"][0]["done"] == 2
    csv_file = next((tmp_path / "emotions" / "annotator-credentials").glob("*/annotator-credentials.csv"))
    assert csv_file.read_text().startswith("annotator_id,login,password\nT1,t1@annotators.invalid,")

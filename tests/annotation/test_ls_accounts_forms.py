"""The admin-site path and the credentials file without a Label Studio: a loopback server plays a Label Studio whose
forms differ from the version the toolkit knows (the real forms are exercised in test_any_deployment_ls.py and
test_vote_integrity_ls.py), and the credentials CSV is merged per server."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from annotation.credentials import write_credentials
from annotation.labelstudio.accounts import AdminSession
from annotation.labelstudio.config import ServerConfig, ServerError

CSRF = '<input type="hidden" name="csrfmiddlewaretoken" value="t0k3n">'
LOGIN = f'<form method="post" action="/user/login/">{CSRF}<input name="email"><input name="password"></form>'
USER = f'<form method="post">{CSRF}<input type="checkbox" name="is_active" checked><input name="_save"></form>'
# a later Django might call the password fields otherwise: the toolkit must not post blindly
PASSWORD = f'<form method="post">{CSRF}<input name="new_password1"><input name="new_password2"></form>'


class _FakeLabelStudio(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, str]] = {}
    posted: ClassVar[list[str]] = []
    bodies: ClassVar[list[tuple[str, str]]] = []
    failing: ClassVar[set[str]] = set()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: str, status: int = 200) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in self.failing:
            return self._send("server error", 500)
        page = self.pages.get(self.path)
        self._send(page, 200) if page is not None else self._send("not found", 404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.posted.append(self.path)
        self.bodies.append((self.path, body))
        where = {"/user/login/": "/", "/admin/authtoken/tokenproxy/add/": "/admin/authtoken/tokenproxy/"}
        for user in ("7", "8"):  # Django admin's answer to a changed password: back to the user's page
            where[f"/admin/users/user/{user}/password/"] = f"/admin/users/user/{user}/change/"
        self.send_response(302)
        self.send_header("Location", where.get(self.path, "/admin/users/user/"))
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture()
def fake() -> Iterator[tuple[str, type[_FakeLabelStudio]]]:
    handler = type("Handler", (_FakeLabelStudio,), {"pages": {}, "posted": [], "bodies": [], "failing": set()})
    handler.pages.update({"/user/login/": LOGIN, "/": "home", "/admin/": "admin", "/admin/users/user/": "users",
                          "/admin/users/user/7/change/": USER, "/admin/users/user/7/password/": PASSWORD})  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _config(url: str) -> ServerConfig:
    return ServerConfig(base_url=url, username="boss@lab.invalid", password="an-admin-password")


def test_a_password_form_without_the_expected_fields_is_named_and_not_submitted(fake):
    url, handler = fake
    session = AdminSession(_config(url))
    with pytest.raises(ServerError) as caught:
        session.set_password(7, "a-new-password-123")
    message = str(caught.value)
    assert "\n" not in message and f"{url}/admin/users/user/7/password/" in message and "'password1'" in message
    assert "/admin/users/user/7/password/" not in handler.posted, "a form of unknown shape is never posted"


def test_a_login_form_without_an_email_field_is_named(fake):
    url, handler = fake
    handler.pages["/user/login/"] = f'<form method="post">{CSRF}<input name="username"><input name="password"></form>'
    with pytest.raises(ServerError, match=r"/user/login/ has no field 'email'"):
        AdminSession(_config(url))
    assert handler.posted == []


def test_a_user_form_without_is_active_is_named(fake):
    url, handler = fake
    handler.pages["/admin/users/user/7/change/"] = f'<form method="post">{CSRF}<input name="email"></form>'
    with pytest.raises(ServerError, match=r"/admin/users/user/7/change/ has no field 'is_active'"):
        AdminSession(_config(url)).deactivate(7)


def test_the_credentials_file_keeps_other_accounts_and_stays_private(tmp_path):
    path = tmp_path / "annotator-credentials.csv"
    write_credentials(path, {"a1@annotators.invalid": ("A1", "pw-1"), "a2@annotators.invalid": ("A2", "pw-2")})
    write_credentials(path, {"a2@annotators.invalid": ("A2", "pw-2b"), "b1@annotators.invalid": ("B1", "pw-3")})
    assert path.read_text().splitlines() == [
        "annotator_id,login,password",
        "A1,a1@annotators.invalid,pw-1",
        "A2,a2@annotators.invalid,pw-2b",
        "B1,b1@annotators.invalid,pw-3",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = tmp_path / "notes.csv"
    other.write_text("name,phone\nx,1\n")
    with pytest.raises(ValueError, match=r"notes.csv: not an annotator credentials file"):
        write_credentials(other, {"a1@annotators.invalid": ("A1", "pw")})
    assert other.read_text() == "name,phone\nx,1\n"


def test_a_password_set_before_a_failure_is_in_the_credentials_file(fake, tmp_path):
    """Two annotators; the first one's password is set, then listing its personal access tokens fails (HTTP 500):
    the command fails, and the password it did set is in the file all the same (else nobody could log in)."""
    import json
    import urllib.parse

    import pyarrow as pa

    from annotation.credentials import issue_credentials, write_credentials
    from emotions_data.layout import DatasetLayout
    from emotions_data.schema import ANNOTATORS_SCHEMA
    from emotions_data.storage import write_table_atomic

    url, handler = fake
    real = ('<form method="post">' + CSRF + '<input name="password1"><input name="password2">'
            '<input name="usable_password"></form>')  # fmt: skip
    token_form = f'<form method="post">{CSRF}<select name="user"><option value="">-</option></select></form>'
    handler.pages.update({
        "/admin/users/user/7/password/": real, "/admin/users/user/8/change/": USER,
        "/admin/users/user/8/password/": real, "/admin/authtoken/tokenproxy/add/": token_form,
        "/admin/authtoken/tokenproxy/": "tokens",
        "/api/organizations/": json.dumps([{"id": 1, "created_at": "2026-01-01T00:00:00.000001Z"}]),
    })  # fmt: skip
    handler.failing.add("/api/token/")
    layout = DatasetLayout(tmp_path / "ds")
    layout.manifests.mkdir(parents=True)
    rows = [{"annotator_id": a, "role": "annotator", "group": "A", "active": True, "ls_user_id": u}
            for a, u in (("A1", 7), ("A2", 8))]  # fmt: skip
    write_table_atomic(layout.annotators, pa.Table.from_pylist(rows, schema=ANNOTATORS_SCHEMA))
    config = ServerConfig(base_url=url, token="a-legacy-token-0123456789", username="boss@lab.invalid",
                          password="an-admin-password")  # fmt: skip
    out = tmp_path / "secrets"
    write_credentials(out / "annotator-credentials.csv", {"zz@annotators.invalid": ("ZZ", "kept")})
    with pytest.raises(ServerError, match=r"personal access tokens of a1@annotators.invalid: HTTP 500"):
        issue_credentials(layout, config, out)
    posted = dict(handler.bodies)["/admin/users/user/7/password/"]
    password = urllib.parse.parse_qs(posted)["password1"][0]
    assert (out / "annotator-credentials.csv").read_text().splitlines() == [
        "annotator_id,login,password",
        f"A1,a1@annotators.invalid,{password}",
        "ZZ,zz@annotators.invalid,kept",
    ], "the password set is recorded, the other server's rows kept, and nothing for A2 (not set)"
    assert "/admin/users/user/8/password/" not in handler.posted

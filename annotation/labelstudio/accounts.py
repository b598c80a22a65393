"""Annotator passwords and account deactivation on any Label Studio, over HTTP.

Label Studio's REST API creates accounts (`POST /api/users/`, see `client.LabelStudio.ensure_user`) but has no call
to set another account's password, deactivate an account or delete its API token: its `/api/users/{id}` serializer
has no password or `is_active` field, and `/api/current-user/reset-token` acts on the caller only. The one way over
the network is the Django admin site every Label Studio serves at `/admin/`, as the organization's superuser (the
admin account that `LABEL_STUDIO_USERNAME`/`LABEL_STUDIO_PASSWORD` make at a server's first start, in Docker as
anywhere): its password form, its user form (`is_active`) and its token pages. So this module logs in with the
admin's e-mail and password (from the environment or the config file, like every secret) and submits those forms,
as the admin would in a browser. It works on the server the toolkit starts, on one started by hand, in Docker or
behind HTTPS alike, and never touches a database directly.

What each change ends at once: a new password ends the old one and the account's browser sessions (Django ties a
session to the password hash) and replaces its legacy API token; deactivation ends logins, sessions, the legacy
token and personal access tokens (Label Studio refuses every kind of authentication for an inactive account). The
personal access tokens an annotator made for themselves are listed by no admin page, so a password reset also logs
in as the account with the new password and revokes each of them as its owner would (`revoke_personal_tokens`):
after a reset (which also reactivates a deactivated account) no token of the old owner works. A deactivation does
the same with a random password nobody is told (`annotation.credentials.revoke_credentials`), so an account given back
by hand brings none back.

Each admin form is checked for the fields the toolkit fills in before it is submitted: another Label Studio version
whose forms differ gets one line naming the page and the missing field, not a change made blindly.
"""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

from annotation.labelstudio.client import _is_loopback, untrusted_certificate
from annotation.labelstudio.client import http as _http
from annotation.labelstudio.config import PASSWORD_ENV, USERNAME_ENV, ServerConfig, ServerError


class _Form(HTMLParser):
    """The fields of the first `<form method="post">` of a page (the admin's log-out form aside), as a browser would
    submit them unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.checkboxes: set[str] = set()
        self._depth = 0  # inside the form while > 0
        self._select: str | None = None
        self._chosen = False  # an option of the current select was marked selected: later ones change nothing
        self._textarea: str | None = None
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self._done:
            return
        if tag == "form" and a.get("method", "").lower() == "post" and "logout" not in a.get("action", ""):
            self._depth = 1
            return
        if not self._depth:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind == "checkbox":
                self.checkboxes.add(name)
                if "checked" in a:
                    self.fields[name] = a.get("value") or "on"
            elif kind == "radio":
                if "checked" in a:
                    self.fields[name] = a.get("value", "")
            elif kind not in ("submit", "button", "image", "file"):
                self.fields.setdefault(name, a.get("value", ""))
        elif tag == "select" and name:
            self._select = name
            self._chosen = False
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.fields):
            # a browser submits the selected option, else the first one
            if not self._chosen:
                self.fields[self._select] = a.get("value", "")
            self._chosen = self._chosen or "selected" in a
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._depth:
            self._depth, self._done = 0, True
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def _form(page: str) -> _Form:
    parser = _Form()
    parser.feed(page)
    return parser


def require_fields(form: _Form, where: str, names: tuple[str, ...]) -> None:
    """ServerError (one line, naming the form's page and the first missing field) unless the form has every field
    in `names`: the admin pages are Django's forms of the Label Studio version the toolkit is tested with (1.23), and
    another version may name them otherwise, where submitting blindly would change nothing or the wrong thing."""
    for name in names:
        if name not in form.fields and name not in form.checkboxes:
            raise ServerError(
                f"the form at {where} has no field {name!r} (another Label Studio version than the toolkit knows?): "
                "change the account on that admin page by hand"
            )


class _Browser:
    """A cookie-holding session on the server, as a browser has: Label Studio's own login form, then pages and
    forms. ServerError (one line) for a page that fails or does not answer."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._jar = http.cookiejar.CookieJar()
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPCookieProcessor(self._jar)]
        if _is_loopback(url):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def _login(self, email: str, password: str) -> None:
        """Log in through Label Studio's login form (a session made by Django admin's login page does not last past
        its redirect)."""
        page, _ = self._get("/user/login/")
        login = _form(page)
        require_fields(login, f"{self.url}/user/login/", ("csrfmiddlewaretoken", "email", "password"))
        fields = login.fields
        fields.update(email=email, password=password)
        self._post("/user/login/", fields)

    def _open(self, path: str, data: bytes | None) -> tuple[str, str]:
        headers = {"Referer": self.url + path}
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return response.read().decode(errors="replace"), response.geturl()
        except urllib.error.HTTPError as exc:
            method = "POST" if data else "GET"
            raise ServerError(f"Label Studio at {self.url}: {method} {path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise untrusted_certificate(self.url, exc) or ServerError(
                f"Label Studio at {self.url}: {path}: no answer ({exc})"
            ) from None

    def _get(self, path: str) -> tuple[str, str]:
        return self._open(path, None)

    def _post(self, path: str, fields: dict[str, str]) -> tuple[str, str]:
        return self._open(path, urllib.parse.urlencode(fields).encode())


class AdminSession(_Browser):
    """A logged-in session of the server's superuser on its admin site. Raises ServerError (one line) when the
    admin's e-mail or password is not configured, the login is refused or the account is not a superuser."""

    def __init__(self, config: ServerConfig, timeout_s: float = 30.0) -> None:
        if not config.username or not config.password:
            raise ServerError(
                f"changing passwords on {config.url} needs its admin's e-mail and password: set {USERNAME_ENV} and "
                f"{PASSWORD_ENV} (or the config file's [label_studio] username and password); Label Studio's API "
                "cannot set another account's password, so the toolkit uses its admin site as that admin"
            )
        super().__init__(config.url, timeout_s)
        self._login(config.username, config.password)
        _, where = self._get("/admin/")
        if urllib.parse.urlsplit(where).path.rstrip("/") != "/admin":
            raise ServerError(
                f"Label Studio at {self.url} refused the admin login of {config.username} on its admin site (/admin/):"
                " wrong e-mail or password, or the account is not the superuser made at the server's first start"
            )

    def _submit(self, path: str, changes: dict[str, str | None], done: str, expected: tuple[str, ...] = ()) -> None:
        """Load the form at `path`, check it has the `expected` fields, apply `changes` (None unticks or removes a
        field), submit it, and expect to be sent on to a page whose path ends with `done` (Django admin's sign of
        success)."""
        page, _ = self._get(path)
        form = _form(page)
        require_fields(form, f"{self.url}{path}", ("csrfmiddlewaretoken", *expected))
        fields = form.fields
        for key, value in changes.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        _, where = self._post(path, fields)
        if not urllib.parse.urlsplit(where).path.endswith(done):
            raise ServerError(f"Label Studio at {self.url}: the admin site did not accept the change at {path}")

    def set_password(self, user_id: int, password: str) -> None:
        """Set the account's password (ending its old password and its browser sessions), activate it and replace
        its legacy API token. Its personal access tokens are `revoke_personal_tokens`'s, with the new password."""
        self._submit(
            f"/admin/users/user/{user_id}/change/", {"is_active": "on", "_save": "Save"}, "/user/", ("is_active",)
        )
        self._submit(
            f"/admin/users/user/{user_id}/password/",
            {"password1": password, "password2": password, "usable_password": "true", "set-password": "1"},
            f"/user/{user_id}/change/",
            ("password1", "password2"),
        )
        self._replace_token(user_id)

    def deactivate(self, user_id: int) -> None:
        """Deactivate the account: no login, no session, no API token of either kind works any more."""
        self._submit(
            f"/admin/users/user/{user_id}/change/", {"is_active": None, "_save": "Save"}, "/user/", ("is_active",)
        )
        self._delete_token(user_id)

    def _delete_token(self, user_id: int) -> None:
        path = f"/admin/authtoken/tokenproxy/{user_id}/delete/"
        try:
            page, where = self._get(path)
        except ServerError:  # no token: HTTP 404
            return
        if urllib.parse.urlsplit(where).path != path:  # no token: the admin sends us on with "does not exist"
            return
        fields = _form(page).fields
        if "csrfmiddlewaretoken" in fields:
            self._post(path, {**fields, "post": "yes"})

    def _replace_token(self, user_id: int) -> None:
        self._delete_token(user_id)
        self._submit(
            "/admin/authtoken/tokenproxy/add/", {"user": str(user_id), "_save": "Save"}, "/tokenproxy/", ("user",)
        )


def revoke_personal_tokens(url: str, email: str, password: str, timeout_s: float = 30.0) -> int:
    """Blacklist every personal access token of the account `email`, logged in with the `password` the admin has
    just set: no admin page or admin API lists another account's personal access tokens (Label Studio removes
    simplejwt's token pages from its admin site), but the account itself lists its own (`GET /api/token/`, each as
    the token without its signature) and `/api/token/blacklist/` takes that form (what Label Studio's Account &
    Settings page does for "revoke"). Afterwards the tokens are refused by `/api/token/refresh/`; an access token
    already exchanged for one lives out its lifetime (simplejwt's default, 5 minutes). Returns how many were
    revoked (0 on a Label Studio without personal access tokens). ServerError (one line) when the login is refused
    or a call fails."""
    import json

    session = _Browser(url, timeout_s)
    session._login(email, password)
    request = urllib.request.Request(url + "/api/token/", headers={"Accept": "application/json"})
    try:
        with session._opener.open(request, timeout=timeout_s) as response:
            listed = json.loads(response.read() or b"[]")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # a Label Studio older than personal access tokens (1.17)
            return 0
        why = "the login with the new password was refused" if exc.code in (401, 403) else f"HTTP {exc.code}"
        raise ServerError(f"Label Studio at {url}: listing the personal access tokens of {email}: {why}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise untrusted_certificate(url, exc) or ServerError(
            f"Label Studio at {url}: /api/token/: no answer or not JSON ({exc})"
        ) from None
    revoked = 0
    for item in listed if isinstance(listed, list) else []:
        token = item.get("token") if isinstance(item, dict) else None
        if not isinstance(token, str):
            continue
        status, _ = _http(url + "/api/token/blacklist/", method="POST", payload={"refresh": token}, timeout=timeout_s)
        if status not in (200, 204, 404):  # 404: blacklisted already
            raise ServerError(f"Label Studio at {url}: revoking a personal access token of {email}: HTTP {status}")
        revoked += status != 404
    return revoked

"""Label Studio's REST API: the HTTP transport and a client with the few calls the workflow needs.

Label Studio is the annotators' tool; the toolkit's vote table is the system of record. We talk to
the server through its REST API directly rather than through `label-studio-sdk`: the SDK 2.x would
add ~45 packages (opencv, nltk, black, Faker, ...) to the core for a dozen calls, and under our
numpy/pydantic pins it resolves to an older 2.0.x than the server's own 2.1.x. The calls below are
checked against the server version the Makefile installs (1.23.2) by the tests.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from typing import Any

from annotation.labelstudio.config import ServerConfig, ServerError
from annotation.labelstudio.interface import annotation_result

PAGE_SIZE = 100

#: Project settings the toolkit owns: every vote is independent (no other annotator's annotation, prediction or
#: history is shown, nothing is pre-filled). `push` sets them and `pull` reports a project where they drifted.
PROJECT_SETTINGS: dict[str, Any] = {
    "show_collab_predictions": False,
    "show_annotation_history": False,
    "reveal_preannotations_interactively": False,
    "show_ground_truth_first": False,
    "show_overlap_first": False,
    "evaluate_predictions_automatically": False,
    "show_instruction": True,
    "show_skip_button": True,
    "enable_empty_annotation": False,
}


# --- HTTP ----------------------------------------------------------------------------------------------------

_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
_OPENER = urllib.request.build_opener()  # elsewhere: the environment's proxy settings (https_proxy, no_proxy)


def _is_loopback(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def untrusted_certificate(url: str, exc: BaseException) -> ServerError | None:
    """The one-line error for a TLS certificate this machine does not trust (an institution's own CA, say), None
    for any other failure. Python's TLS (OpenSSL) trusts the system's CA bundle, or the PEM file named by
    `SSL_CERT_FILE` (and the folder `SSL_CERT_DIR`) instead."""
    import ssl
    from urllib.parse import urlsplit

    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if not isinstance(reason, ssl.SSLCertVerificationError):
        return None
    parts = urlsplit(url)
    why = reason.verify_message or reason.reason or "verification failed"
    return ServerError(
        f"{parts.scheme}://{parts.netloc}: its TLS certificate is not trusted here ({why}): if it is signed by your "
        "institution's own certificate authority, set SSL_CERT_FILE to that CA's certificate (a PEM file; add the "
        "system's bundle to it if other HTTPS sites must still work)"
    )


def http(
    url: str, *, token: str | None = None, method: str = "GET", payload: Any = None, timeout: float = 10.0,
    authorization: str | None = None,
) -> tuple[int, Any]:  # fmt: skip
    """(status, decoded JSON or text) of one request with an optional legacy API token (or a whole
    `authorization` header value, "Bearer ..." say) and JSON `payload`; `timeout` in seconds. Never raises for a
    failed request (status 0 when nothing answered) except for an HTTPS certificate this machine does not trust:
    ServerError saying how to trust it (`untrusted_certificate`), which no retry can mend."""
    headers = {"Accept": "application/json"}
    data = None
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Token {token}"
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with (_LOOPBACK_OPENER if _is_loopback(url) else _OPENER).open(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a malformed URL
        untrusted = untrusted_certificate(url, exc)
        if untrusted is not None:
            raise untrusted from None
        return 0, None
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body.decode(errors="replace")


def api(config: ServerConfig, method: str, path: str, payload: Any = None, *, token: str | None = None) -> Any:
    """Call Label Studio's REST API with the configured token; raises ServerError unless it answers 2xx."""
    if token is not None or config.token_kind != "personal":
        status, body = http(config.url + path, token=token or config.token, method=method, payload=payload)
    else:
        status, body = LabelStudio(config, attempts=1)._request(method, path, payload)
    if not 200 <= status < 300:
        detail = None
        if isinstance(body, dict):
            detail = body.get("detail")
            if body.get("validation_errors"):
                detail = f"{detail}: {json.dumps(body['validation_errors'])[:300]}"
        raise ServerError(f"{method} {path}: HTTP {status or 'no answer'}{f' ({detail})' if detail else ''}")
    return body


class LabelStudio:
    """A client for one server, with either kind of token Label Studio issues: a legacy API token (sent as
    `Token <key>`) or a personal access token, a JWT refresh token that `/api/token/refresh/` exchanges for a
    short-lived access token (sent as `Bearer <access>`, exchanged again when it expires). Transient failures (no
    answer, 5xx, 429) are retried with backoff; then a ServerError says what failed."""

    def __init__(
        self, config: ServerConfig, attempts: int = 4, backoff_s: float = 0.5, timeout_s: float = 30.0
    ) -> None:
        self.config = config
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._access: str | None = None  # the current access token of a personal access token

    def _refresh_access(self) -> str:
        """A fresh access token for the configured personal access token; ServerError when it is refused."""
        status, body = http(
            self.config.url + "/api/token/refresh/", method="POST", payload={"refresh": self.config.token},
            timeout=self.timeout_s,
        )  # fmt: skip
        if status == 200 and isinstance(body, dict) and isinstance(body.get("access"), str):
            self._access = body["access"]
            return self._access
        if status == 0:
            raise ServerError(
                f"Label Studio at {self.config.url}: no answer (is the server running and the URL right?)"
            )
        raise ServerError(
            f"Label Studio at {self.config.url} refused the personal access token (HTTP {status}): it is revoked, "
            "expired or of another server, or personal access tokens are disabled in its organization settings"
        )

    def _request(self, method: str, path: str, payload: Any = None, timeout: float | None = None) -> tuple[int, Any]:
        """One request with the configured token; a personal access token's expired access token is renewed once."""
        url, timeout = self.config.url + path, timeout or self.timeout_s
        if self.config.token_kind != "personal":
            return http(url, token=self.config.token, method=method, payload=payload, timeout=timeout)
        access = self._access or self._refresh_access()
        status, body = http(url, authorization=f"Bearer {access}", method=method, payload=payload, timeout=timeout)
        if status == 401:
            access = self._refresh_access()
            status, body = http(url, authorization=f"Bearer {access}", method=method, payload=payload, timeout=timeout)
        return status, body

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """The decoded answer to `method` on `path` (e.g. "/api/projects") with the JSON `payload`; ServerError
        once the attempts are used up or at the first non-transient failure (4xx other than 429)."""
        for attempt in range(1, self.attempts + 1):
            status, body = self._request(method, path, payload)
            if 200 <= status < 300:
                return body
            transient = status == 0 or status == 429 or status >= 500
            if not transient or attempt == self.attempts:
                if status == 401:
                    said = str(body.get("detail"))[:200] if isinstance(body, dict) and body.get("detail") else ""
                    raise ServerError(
                        f"Label Studio at {self.config.url} refused the {self.config.token_kind} API token "
                        f"(HTTP 401 on {method} {path}{f': {said}' if said else ''}): set the token of an account "
                        "of that server"
                        + (" (legacy tokens may be disabled there: use a personal access token)"
                           if self.config.token_kind == "legacy" else "")
                    )  # fmt: skip
                detail = ""
                if isinstance(body, dict):
                    detail = str(body.get("validation_errors") or body.get("detail") or "")[:300]
                what = "no answer (is the server running and the URL right?)" if status == 0 else f"HTTP {status}"
                raise ServerError(f"Label Studio at {self.config.url}: {method} {path}: {what} {detail}".strip())
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ projects

    def projects(self) -> list[dict[str, Any]]:
        """Every project on the server, page by page."""
        found, page = [], 1
        while True:
            body = self.call("GET", f"/api/projects?page={page}&page_size={PAGE_SIZE}")
            found += body["results"]
            if not body.get("next"):
                return found
            page += 1

    def project(self, project_id: int) -> dict[str, Any] | None:
        """The project, or None when the server has no such project (deleted in Label Studio, say)."""
        status, body = self._request("GET", f"/api/projects/{project_id}")
        if status == 404:
            return None
        if not 200 <= status < 300:
            return self.call("GET", f"/api/projects/{project_id}")
        return body

    def create_project(self, title: str, label_config: str, instructions_html: str, maximum_annotations: int) -> dict:
        """Create a project whose tasks take `maximum_annotations` annotations each; returns it as the server does."""
        project = self.call(
            "POST",
            "/api/projects",
            {"title": title, "label_config": label_config, "expert_instruction": instructions_html,
             "maximum_annotations": maximum_annotations, **PROJECT_SETTINGS},
        )  # fmt: skip
        self.set_maximum_annotations(project["id"], maximum_annotations)
        return project

    def set_maximum_annotations(self, project_id: int, k: int) -> None:
        """Set, then read back: it did not always apply at creation in some Label Studio versions."""
        self.call("PATCH", f"/api/projects/{project_id}", {"maximum_annotations": k})
        got = self.call("GET", f"/api/projects/{project_id}").get("maximum_annotations")
        if got != k:
            raise ServerError(f"project {project_id}: maximum_annotations is {got} after setting {k}")

    def ensure_local_storage(self, project_id: int, path: str) -> None:
        """A Local Files storage over `path`, which lets the browser load task media under it."""
        existing = self.call("GET", f"/api/storages/localfiles?project={project_id}")
        if any(s.get("path") == path for s in existing):
            return
        self.call(
            "POST",
            "/api/storages/localfiles",
            {"project": project_id, "path": path, "title": "media", "use_blob_urls": False},
        )

    # ------------------------------------------------------------ tasks and annotations

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project (without its annotations), page by page."""
        found, page = [], 1
        while True:
            body = self.call("GET", f"/api/tasks?project={project_id}&page={page}&page_size={PAGE_SIZE}")
            found += body["tasks"]
            if not body["tasks"] or len(found) >= body.get("total", 0):
                return found
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> int:
        """Import tasks (each `{"data": {...}}`) into the project; returns how many were created."""
        if not tasks:
            return 0
        return int(self.call("POST", f"/api/projects/{project_id}/import", tasks)["task_count"])

    def _one(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when the server answers 404; ServerError for any other failure."""
        status, body = self._request("GET", path)
        if status == 404:
            return None
        return body if 200 <= status < 300 and isinstance(body, dict) else dict(self.call("GET", path))

    def task(self, task_id: int) -> dict[str, Any] | None:
        """The task with its annotations, or None when the server has no such task."""
        return self._one(f"/api/tasks/{task_id}")

    def annotation(self, annotation_id: int) -> dict[str, Any] | None:
        """The annotation, or None when the server has no such annotation (deleted)."""
        return self._one(f"/api/annotations/{annotation_id}")

    def annotations(self, task_id: int) -> list[dict[str, Any]]:
        """Every annotation of the task."""
        return list(self.call("GET", f"/api/tasks/{task_id}/annotations/"))

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        """Replace a task's data (the expert's refreshed earlier votes, say)."""
        self.call("PATCH", f"/api/tasks/{task_id}", {"data": data})

    def annotate(
        self, task_id: int, label: str, user_id: int, *, unsure: bool = False, lead_time_s: float = 0.0,
        comment: str | None = None,
    ) -> Any:  # fmt: skip
        """Post one annotation on behalf of `user_id`: `completed_by` is client-supplied in Label Studio, which
        records this client's account as the writer (`updated_by`), so such a vote counts only when this client is
        the toolkit's admin (a simulated panel) or the annotator themselves."""
        payload = {
            "result": annotation_result(label, unsure, comment),
            "completed_by": user_id,
            "lead_time": lead_time_s,
        }
        return self.call("POST", f"/api/tasks/{task_id}/annotations/", payload)

    def export_snapshot(self, project_id: int, timeout_s: float = 300.0) -> list[dict[str, Any]]:
        """Every task of the project with all its annotations, through the snapshot export API."""
        export = self.call("POST", f"/api/projects/{project_id}/exports", {"title": "emotions pull"})
        deadline = time.monotonic() + timeout_s
        while export.get("status") not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise ServerError(f"project {project_id}: export {export['id']} not finished after {timeout_s:.0f} s")
            time.sleep(0.2)
            export = self.call("GET", f"/api/projects/{project_id}/exports/{export['id']}")
        if export["status"] == "failed":
            raise ServerError(f"project {project_id}: export {export['id']} failed")
        try:
            body = self.call("GET", f"/api/projects/{project_id}/exports/{export['id']}/download?exportType=JSON")
        finally:
            self.call("DELETE", f"/api/projects/{project_id}/exports/{export['id']}")
        if not isinstance(body, list):
            raise ServerError(f"project {project_id}: export {export['id']} is not a JSON task list")
        return body

    # ------------------------------------------------------------ server and organization

    def whoami(self) -> dict[str, Any]:
        """The account of this client's token."""
        return dict(self.call("GET", "/api/current-user/whoami"))

    def organization(self) -> dict[str, Any]:
        """The server's (first) organization, as `/api/organizations/{id}` answers (its invite token included)."""
        orgs = self.call("GET", "/api/organizations/")
        if not orgs:
            raise ServerError(f"Label Studio at {self.config.url}: no organization")
        return dict(self.call("GET", f"/api/organizations/{orgs[0]['id']}"))

    def server_identity(self) -> str:
        """A stable identity of the server's database: its organization's id and creation time (to the microsecond),
        hashed. A server keeps it across restarts and a changed URL; a fresh server (new database) has another,
        so ids that are local to a server (users, tasks, annotations) are never mixed across servers."""
        org = self.call("GET", "/api/organizations/")
        if not org:
            raise ServerError(f"Label Studio at {self.config.url}: no organization")
        digest = hashlib.sha256(f"{org[0]['id']}|{org[0]['created_at']}".encode()).hexdigest()
        return f"ls-{digest[:16]}"

    def invite_link_enabled(self) -> bool:
        """Whether the organization's invite link (sign-up with its token) can make new accounts."""
        return self.organization().get("token") is not None

    def disable_invite_link(self) -> None:
        """Clear the organization's invite token: with sign-up only by link (the toolkit starts its server so), nobody
        can make an account. Any account can set a new token again (Label Studio Community has no roles), so
        `pull` checks it every time."""
        org = self.organization()
        self.call("PATCH", f"/api/organizations/{org['id']}", {"token": None})

    # ------------------------------------------------------------ users

    def users(self) -> list[dict[str, Any]]:
        """Every account on the server."""
        return list(self.call("GET", "/api/users/"))

    def ensure_user(self, email: str, username: str) -> int:
        """The id of the account with this e-mail (compared case-insensitively), created when there is none."""
        for user in self.users():
            if user.get("email", "").lower() == email.lower():
                return int(user["id"])
        return int(
            self.call("POST", "/api/users/", {"email": email, "username": username, "first_name": username})["id"]
        )

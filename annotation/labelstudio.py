"""The Label Studio adapter: the few REST calls the workflow needs, over the standard library.

Label Studio is the annotators' tool; the toolkit's vote table is the system of record. We talk to
the server through its REST API directly rather than through `label-studio-sdk`: the SDK 2.x would
add ~45 packages (opencv, nltk, black, Faker, ...) to the core for a dozen calls, and under our
numpy/pydantic pins it resolves to an older 2.0.x than the server's own 2.1.x. The calls below are
checked against the server version the Makefile installs (1.23.2) by the tests.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from annotation.server import ServerConfig, ServerError, http
from emotions_data.taxonomy import Taxonomy

EMOTION = "emotion"  # the Choices control holding the label
UNSURE = "unsure"
COMMENT = "comment"
PAGE_SIZE = 100


def labeling_config(taxonomy: Taxonomy, show_previous_votes: bool = False) -> str:
    """The labelling interface: the video with its sound, one required choice (polarity as a hint),
    an "unsure" flag and a comment; the expert's interface also shows the earlier votes."""
    choices = "".join(
        f'<Choice value="{escape(c)}" hint="{escape(taxonomy.polarity.get(c, ""))}"/>' for c in taxonomy.classes
    )
    previous = '<Header value="Earlier votes"/><Text name="previous_votes" value="$previous_votes"/>'
    return (
        "<View>"
        '<Header value="Watch the whole clip with sound, then choose the emotion it conveys"/>'
        '<Video name="video" value="$video"/>'
        f"{previous if show_previous_votes else ''}"
        f'<Choices name="{EMOTION}" toName="video" choice="single-radio" required="true" showInline="true">'
        f"{choices}</Choices>"
        f'<Choices name="{UNSURE}" toName="video" choice="multiple"><Choice value="unsure"/></Choices>'
        f'<TextArea name="{COMMENT}" toName="video" placeholder="Comment (optional)" maxSubmissions="1"/>'
        "</View>"
    )


def instructions(taxonomy: Taxonomy) -> str:
    rows = "".join(
        f"<li><b>{escape(c)}</b>{f' ({escape(taxonomy.polarity[c])})' if c in taxonomy.polarity else ''}</li>"
        for c in taxonomy.classes
    )
    return (
        "<p>Watch each clip to the end <b>with sound</b>. Choose the one emotion the clip conveys to a viewer "
        "(not what a person in it feels). Tick <i>unsure</i> when two classes fit about equally; add a comment "
        f"when something is wrong with the clip.</p><ul>{rows}</ul>"
    )


def annotation_result(label: str, unsure: bool = False) -> list[dict[str, Any]]:
    result = [{"from_name": EMOTION, "to_name": "video", "type": "choices", "value": {"choices": [label]}}]
    if unsure:
        result.append({"from_name": UNSURE, "to_name": "video", "type": "choices", "value": {"choices": ["unsure"]}})
    return result


def parse_result(result: list[dict[str, Any]]) -> tuple[str | None, bool]:
    """(label, unsure) from an annotation's result list."""
    label, unsure = None, False
    for region in result or []:
        choices = (region.get("value") or {}).get("choices") or []
        if region.get("from_name") == EMOTION and choices:
            label = str(choices[0])
        elif region.get("from_name") == UNSURE and choices:
            unsure = True
    return label, unsure


class LabelStudio:
    """A client for one server. Transient failures (no answer, 5xx, 429) are retried with backoff;
    then a ServerError says what failed."""

    def __init__(self, config: ServerConfig, attempts: int = 4, backoff_s: float = 0.5, timeout_s: float = 30.0):
        self.config = config
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        for attempt in range(1, self.attempts + 1):
            status, body = http(
                self.config.url + path, token=self.config.token, method=method, payload=payload, timeout=self.timeout_s
            )
            if 200 <= status < 300:
                return body
            transient = status == 0 or status == 429 or status >= 500
            if not transient or attempt == self.attempts:
                detail = ""
                if isinstance(body, dict):
                    detail = str(body.get("validation_errors") or body.get("detail") or "")[:300]
                what = "no answer (is the server running?)" if status == 0 else f"HTTP {status}"
                raise ServerError(f"Label Studio at {self.config.url}: {method} {path}: {what} {detail}".strip())
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ projects

    def projects(self) -> list[dict[str, Any]]:
        found, page = [], 1
        while True:
            body = self.call("GET", f"/api/projects?page={page}&page_size={PAGE_SIZE}")
            found += body["results"]
            if not body.get("next"):
                return found
            page += 1

    def project(self, project_id: int) -> dict[str, Any] | None:
        status, body = http(f"{self.config.url}/api/projects/{project_id}", token=self.config.token)
        if status == 404:
            return None
        if not 200 <= status < 300:
            return self.call("GET", f"/api/projects/{project_id}")
        return body

    def create_project(self, title: str, label_config: str, instructions_html: str, maximum_annotations: int) -> dict:
        project = self.call(
            "POST",
            "/api/projects",
            {"title": title, "label_config": label_config, "expert_instruction": instructions_html,
             "show_instruction": True, "maximum_annotations": maximum_annotations, "show_skip_button": True},
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
        found, page = [], 1
        while True:
            body = self.call("GET", f"/api/tasks?project={project_id}&page={page}&page_size={PAGE_SIZE}")
            found += body["tasks"]
            if not body["tasks"] or len(found) >= body.get("total", 0):
                return found
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> int:
        if not tasks:
            return 0
        return int(self.call("POST", f"/api/projects/{project_id}/import", tasks)["task_count"])

    def annotate(self, task_id: int, label: str, user_id: int, *, unsure: bool = False, lead_time_s: float = 0.0):
        """Post one annotation on behalf of `user_id` (an admin token may set `completed_by`)."""
        payload = {"result": annotation_result(label, unsure), "completed_by": user_id, "lead_time": lead_time_s}
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

    # ------------------------------------------------------------ users

    def users(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/users/"))

    def ensure_user(self, email: str, username: str) -> int:
        for user in self.users():
            if user.get("email", "").lower() == email.lower():
                return int(user["id"])
        return int(
            self.call("POST", "/api/users/", {"email": email, "username": username, "first_name": username})["id"]
        )

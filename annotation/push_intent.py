"""A push's intent, recorded in the dataset before Label Studio is changed, so that a push killed halfway leaves
nothing unaccounted for there.

Before it creates any project, `push` writes `manifests/ls_push_intent.json`: a push id (random) and the plan of
every project it may create (key -> title, stage, annotator, items). Each project it creates carries
`emotions push <push id> <key>` as its Label Studio description, and the project list (`manifests/ls_projects.json`)
records it right after. A push that ends removes the intent. When one is still there, the push was killed, and the
next push or pull first settles what it left (`settle_interrupted_push`): a project of that push whose key the
list does not hold (killed between creating and recording it) is adopted, recorded as the intent planned it, so its
tasks are imported by the next push of its stage and its votes pulled; a second project for a key already recorded is
deleted when nobody has annotated in it, and reported, never deleted, when someone has.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.labelstudio.client import LabelStudio
from annotation.projects import save_projects
from emotions_data.layout import DatasetLayout
from emotions_data.storage import fsync_dir, write_bytes_atomic

MARK = "emotions push"  # the start of the description of every project a push creates


def intent_path(layout: DatasetLayout) -> Path:
    """`manifests/ls_push_intent.json`: present only while a push runs, or after one was killed."""
    return layout.manifests / "ls_push_intent.json"


def project_mark(push_id: str, key: str) -> str:
    """The description of the project `key` created by the push `push_id`."""
    return f"{MARK} {push_id} {key}"


def begin_push(layout: DatasetLayout, stage: str, plan: dict[str, dict[str, Any]]) -> str:
    """Record (atomically, durably) that a push of `stage` may create the projects of `plan` (key -> the record
    `manifests/ls_projects.json` would keep, without its id); returns the push id to mark them with."""
    push_id = uuid.uuid4().hex
    document = {"push_id": push_id, "stage": str(stage), "projects": plan}
    write_bytes_atomic(intent_path(layout), json.dumps(document, indent=1, sort_keys=True, default=str).encode())
    return push_id


def end_push(layout: DatasetLayout) -> None:
    """The push's projects are all recorded: its intent goes."""
    path = intent_path(layout)
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)


@dataclass
class Settled:
    """What `settle_interrupted_push` found of a killed push in Label Studio."""

    adopted: list[str] = field(default_factory=list)  # project keys now recorded
    deleted: list[int] = field(default_factory=list)  # Label Studio ids of empty duplicates
    kept: list[int] = field(default_factory=list)  # duplicates someone annotated in: left for the lead

    def line(self) -> str | None:
        """One line for the user, or None when the killed push left nothing behind."""
        if not (self.adopted or self.deleted or self.kept):
            return None
        parts = (
            []
            if not self.adopted
            else [f"adopted {len(self.adopted)} project(s) it made but had not recorded ({', '.join(self.adopted)})"]
        )
        if self.deleted:
            parts.append(f"deleted {len(self.deleted)} empty duplicate project(s)")
        if self.kept:
            parts.append(f"left duplicate project(s) {', '.join(map(str, self.kept))} in place: they hold annotations")
        return "an interrupted push was settled: " + "; ".join(parts)


def _read(layout: DatasetLayout) -> dict[str, Any] | None:
    path = intent_path(layout)
    if not path.exists():
        return None
    try:
        intent = json.loads(path.read_text())
        return intent if isinstance(intent.get("push_id"), str) and isinstance(intent.get("projects"), dict) else {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        return {}  # unreadable: it was never whole (writes are atomic), so nothing was created after it


def settle_interrupted_push(layout: DatasetLayout, client: LabelStudio, projects: dict[str, dict]) -> Settled:
    """Adopt or remove what a killed push left in Label Studio (see the module's docstring); `projects` (the list on
    record) gains the adopted ones and is saved. A no-op without an intent. Raises ServerError when the server
    fails (the intent then stays, for the next run)."""
    intent = _read(layout)
    settled = Settled()
    if intent is None:
        return settled
    live = client.projects() if intent else []
    ids = {p["id"] for p in live}
    prefix = f"{MARK} {intent.get('push_id')} "
    for project in sorted(
        (p for p in live if str(p.get("description") or "").startswith(prefix)), key=lambda p: p["id"]
    ):
        key = str(project["description"])[len(prefix) :].strip()
        known = projects.get(key)
        if known and known.get("id") == project["id"]:
            continue
        if (not known or known.get("id") not in ids) and key in intent["projects"]:
            projects[key] = {**intent["projects"][key], "id": project["id"]}
            settled.adopted.append(key)
        elif int(project.get("total_annotations_number") or 0) == 0:
            client.call("DELETE", f"/api/projects/{project['id']}")
            settled.deleted.append(project["id"])
        else:
            settled.kept.append(project["id"])
    if settled.adopted:
        save_projects(layout, projects)
    end_push(layout)
    return settled

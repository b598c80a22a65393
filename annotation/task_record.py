"""What push made in Label Studio (`manifests/ls_tasks.json`; this module owns the format): every task push created,
with its project and its data exactly as push created or last updated it, and the annotations held out for good.

Any Label Studio account can edit the data of its projects' tasks and import new tasks (Label Studio Community has
no roles), so the data a task holds now proves nothing. Pull counts a vote only on a task recorded here whose data
are unchanged, credited to the video and round recorded here, and reports every task whose data differ, every task
push did not make and every recorded task that is gone (`task_findings`). Push never rewrites a task whose data
differ from the record (that would hide the change); it reports it.

The file: `{"format": 1, "tasks": {"<task id>": {"project": key, "project_id": id, "data": {...}}},
"held": {"<annotation id>": {"reason": ..., "detail": ..., "since": pull time}}}`. A dataset pushed before tasks
were recorded has no file: its projects' tasks are vetted by their current data as before, and the next push
records those tasks of theirs that hold one of the project's items (`adopt`), reporting how many.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emotions_data.layout import DatasetLayout
from emotions_data.storage import write_bytes_atomic

FORMAT = 1


@dataclass(frozen=True)
class TaskRecord:
    """One task as push made it: its project's key and id, and its data (`video`, `video_id`, `stage`, `items_of`;
    an expert's also `previous_votes` and `round`)."""

    project: str
    project_id: int
    data: dict[str, Any]

    @property
    def video_id(self) -> str | None:
        return self.data.get("video_id")

    @property
    def round(self) -> int:
        return int(self.data.get("round") or 1)


@dataclass
class TaskBook:
    """The recorded tasks (Label Studio task id -> record) and the annotations held out for good (annotation id ->
    {"reason", "detail", "since"}); `recorded` is False for a dataset pushed before tasks were recorded."""

    tasks: dict[int, TaskRecord] = field(default_factory=dict)
    held: dict[int, dict[str, str]] = field(default_factory=dict)
    recorded: bool = True

    def of_project(self, key: str, project_id: int) -> dict[int, TaskRecord]:
        """The records of project `key` as it is now (`project_id`: a project re-created after a deletion in Label
        Studio has another id, and the tasks of the deleted one are no longer looked for)."""
        return {t: r for t, r in self.tasks.items() if r.project == key and r.project_id == project_id}


def load_task_book(layout: DatasetLayout) -> TaskBook:
    """The dataset's task records; an empty book with `recorded` False when push never recorded any. Raises
    ValueError naming the file when it is unreadable or of another format."""
    path = layout.ls_tasks
    if not path.exists():
        return TaskBook(recorded=False)
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
        tasks = {int(t): TaskRecord(r["project"], int(r["project_id"]), dict(r["data"])) for t, r in
                 doc["tasks"].items()}  # fmt: skip
        held = {int(a): {k: str(v) for k, v in why.items()} for a, why in (doc.get("held") or {}).items()}
        return TaskBook(tasks, held)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: unreadable task record: {exc}") from None


def encode_task_book(book: TaskBook) -> bytes:
    """The book as `manifests/ls_tasks.json` holds it."""
    doc = {"format": FORMAT,
           "tasks": {str(t): {"project": r.project, "project_id": r.project_id, "data": r.data}
                     for t, r in sorted(book.tasks.items())},
           "held": {str(a): why for a, why in sorted(book.held.items())}}  # fmt: skip
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def save_task_book(layout: DatasetLayout, book: TaskBook) -> None:
    """Write the book atomically (`encode_task_book`)."""
    write_bytes_atomic(layout.ls_tasks, encode_task_book(book))


def changed_fields(record: TaskRecord, data: dict[str, Any] | None) -> list[str]:
    """The data fields whose value differs from the record's (added and removed fields too), sorted."""
    data = data or {}
    return sorted(k for k in set(record.data) | set(data) if record.data.get(k) != data.get(k))


def record_imported(
    book: TaskBook, key: str, project_id: int, before: set[int], now: list[dict[str, Any]], sent: list[dict[str, Any]]
) -> list[int]:
    """Record the tasks of project `key` that are new since `before` (task ids) and hold data push sent (`sent`, each
    `{"data": ...}`), each sent task matched once; returns the ids of new tasks that match nothing push sent (made
    by another account meanwhile), which stay unrecorded."""
    waiting = [dict(t["data"]) for t in sent]
    strangers = []
    for task in sorted((t for t in now if int(t["id"]) not in before), key=lambda t: int(t["id"])):
        data = task.get("data") or {}
        if data in waiting:
            waiting.remove(data)
            book.tasks[int(task["id"])] = TaskRecord(key, project_id, dict(data))
        else:
            strangers.append(int(task["id"]))
    return strangers


def adopt(book: TaskBook, key: str, project_id: int, tasks: list[dict[str, Any]], items: set[str]) -> int:
    """Record the tasks of project `key` of a dataset pushed before tasks were recorded: those holding one of the
    project's `items`, at most one per item and round (the first by id); returns how many."""
    seen = {(r.video_id, r.round) for r in book.of_project(key, project_id).values()}
    n = 0
    for task in sorted(tasks, key=lambda t: int(t["id"])):
        record = TaskRecord(key, project_id, dict(task.get("data") or {}))
        fresh = (record.video_id, record.round) not in seen and int(task["id"]) not in book.tasks
        if record.video_id in items and fresh:
            book.tasks[int(task["id"])] = record
            seen.add((record.video_id, record.round))
            n += 1
    return n


@dataclass(frozen=True)
class TaskFinding:
    """One difference between Label Studio and the record: a recorded task whose data changed (`fields`), a task
    push did not make (imported), or a recorded task that is gone (missing). `updated_by` is the account Label
    Studio last recorded on the task (an annotation's save sets it too, so it is a lead, not proof; Label Studio
    Community does not record who edits task data or imports tasks)."""

    kind: str  # changed, imported, missing
    project: str
    task_id: int
    video_id: str | None  # the recorded one (changed, missing), else what the task says
    fields: list[str]
    updated_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def line(self) -> str:
        what = {"changed": f"data changed since push ({', '.join(self.fields)})", "imported": "not made by push",
                "missing": "made by push, gone from Label Studio"}[self.kind]  # fmt: skip
        who = f"; last updated by {self.updated_by}" if self.updated_by else ""
        return f"project {self.project}, task {self.task_id} ({self.video_id}): {what}{who}"


def _updated_by(task: dict[str, Any], name: Callable[[int | None], str | None]) -> str | None:
    """The account Label Studio last recorded on the task (`updated_by`: an id, or a list of `{"user_id": id}`)."""
    value = task.get("updated_by")
    if isinstance(value, list):
        value = value[-1].get("user_id") if value and isinstance(value[-1], dict) else None
    try:
        return name(int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def task_findings(
    book: TaskBook, exports: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]],
    name: Callable[[int | None], str | None],
) -> list[TaskFinding]:  # fmt: skip
    """Every difference between the exported tasks of the projects that answered (`exports`: key -> (plan, tasks))
    and the record; `name` turns a Label Studio user id into the account's name. None for a dataset pushed before
    tasks were recorded."""
    if not book.recorded:
        return []
    found = []
    for key, (plan, tasks) in sorted(exports.items()):
        present = set()
        for task in tasks:
            tid = int(task["id"])
            present.add(tid)
            record = book.tasks.get(tid)
            if record is None or record.project != key:
                vid = (task.get("data") or {}).get("video_id")
                found.append(TaskFinding("imported", key, tid, vid, [], _updated_by(task, name)))
            elif fields := changed_fields(record, task.get("data")):
                found.append(TaskFinding("changed", key, tid, record.video_id, fields, _updated_by(task, name)))
        for tid, record in sorted(book.of_project(key, int(plan["id"])).items()):
            if tid not in present:
                found.append(TaskFinding("missing", key, tid, record.video_id, [], None))
    return found

"""`pull`: every Label Studio project exported and merged into the vote table under the rules of
`annotation.vetting` (Label Studio is untrusted input), with the vote history and the pull's report.

A pull writes its files committed together (`storage.file_group`): `manifests/votes.parquet` (the system of
record), `manifests/vote_history.parquet` (every later change to a vote on record, appended),
`manifests/pull_report.json` (what this pull did not count, and why; deleted, changed or halted projects; tasks
that differ from what push made) and, when it holds annotations out for good, `manifests/ls_tasks.json`. A pull
killed at any point leaves the files of the pull before it or those of this one, never a mix; the history events
of a pull that never committed are found again by the next one, which compares Label Studio with the vote table on
record.

A missing, empty or partial export never deletes a vote: a vote is marked deleted only when Label Studio answers
that its annotation is gone (the annotation answers 404, its task answers without it or is gone) from a project that
answered; a project whose export lacks more than half of its votes on record (and more than `DROP_MIN`), or lacks
one that Label Studio still has, is not pulled this time (status "halted", with a line naming it), its votes stay
as they were.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annotation.annotators import load_annotators
from annotation.labelstudio.client import PROJECT_SETTINGS, LabelStudio
from annotation.labelstudio.interface import instructions, labeling_config
from annotation.projects import load_projects
from annotation.server_record import check_server
from annotation.task_record import TaskBook, TaskFinding, encode_task_book, load_task_book, task_findings
from annotation.vetting import Accounts, Exclusion, Reason, Vetted, vet
from annotation.votes import is_kept, read_vote_table
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.schema import VOTE_HISTORY_SCHEMA, VOTES_SCHEMA, Stage, VoteStatus
from emotions_data.storage import file_group, recover_commits
from emotions_data.taxonomy import Taxonomy

#: A project's export may lack this many of its votes on record before the drop counts as sudden (when it is also
#: more than half of them): fewer are each confirmed deleted with Label Studio, one by one.
DROP_MIN = 2
#: Project settings whose change does not alter what an annotator sees or answers (reported, votes still count).
NOT_SEEN = ("title", "maximum_annotations")


@dataclass
class PullReport:
    """What a pull did: vote counts, the annotations not counted and why, this pull's history events, and the state
    of every project."""

    n_votes: int = 0  # in the table after the pull
    n_new: int = 0
    n_updated: int = 0  # votes on record read again
    n_edited: int = 0  # of those, changed by their annotator (history kept)
    n_deleted: int = 0  # votes whose annotation Label Studio confirmed gone: marked deleted
    n_restored: int = 0  # votes marked deleted whose annotation was read again: counted again
    excluded: list[Exclusion] = field(default_factory=list)
    tasks: list[TaskFinding] = field(default_factory=list)  # tasks that differ from what push made
    changes: list[dict[str, Any]] = field(default_factory=list)  # this pull's vote history events
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> id, status (ok, deleted), drift
    invite_link_was_enabled: bool = False
    path: Path | None = None  # manifests/pull_report.json

    def _of(self, reason: Reason) -> list[str]:
        return [f"{e.detail} ({e.video_id}, task {e.ls_task_id}, annotation {e.ls_annotation_id}, project "
                f"{e.project})" for e in self.excluded if e.reason == reason]  # fmt: skip

    @property
    def skipped(self) -> list[str]:
        return self._of(Reason.CANCELLED)

    @property
    def outside_taxonomy(self) -> list[str]:
        return self._of(Reason.OUTSIDE_TAXONOMY)

    @property
    def unknown_videos(self) -> list[str]:
        return self._of(Reason.UNKNOWN_VIDEO)

    @property
    def unknown_annotators(self) -> list[str]:
        return self._of(Reason.UNKNOWN_ACCOUNT)

    @property
    def deleted_projects(self) -> list[str]:
        return [k for k, p in self.projects.items() if p["status"] == "deleted"]

    @property
    def drifted_projects(self) -> dict[str, list[str]]:
        return {k: p["drift"] for k, p in self.projects.items() if p.get("drift")}

    @property
    def halted_projects(self) -> dict[str, str]:
        """Project key -> why it was not pulled this time (its export cannot be trusted to say what is gone)."""
        return {k: p["detail"] for k, p in self.projects.items() if p["status"] == "halted"}

    @property
    def problems(self) -> int:
        """Everything the report lists: excluded annotations, deleted, drifted or halted projects, tasks that differ
        from what push made, an enabled invite link."""
        return (len(self.excluded) + len(self.deleted_projects) + len(self.drifted_projects)
                + len(self.halted_projects) + len(self.tasks) + int(self.invite_link_was_enabled))  # fmt: skip

    def summary(self) -> dict[str, int]:
        """Reason -> how many annotations were not counted for it."""
        return dict(sorted(Counter(str(e.reason) for e in self.excluded).items()))


def _drift(remote: dict[str, Any], plan: dict[str, Any], taxonomy: Taxonomy) -> list[str]:
    """The settings of a project that differ from what push set (push restores them)."""
    wanted = {"title": plan["title"], "label_config": labeling_config(taxonomy, plan["stage"] == Stage.EXPERT),
              "expert_instruction": instructions(taxonomy),
              **({"maximum_annotations": 1} if plan.get("annotator") else {}), **PROJECT_SETTINGS}  # fmt: skip
    return sorted(k for k, v in wanted.items() if remote.get(k) != v)


def _accounts(annotators: pd.DataFrame, client: LabelStudio) -> Accounts:
    """The dataset's accounts as vetting knows them: Label Studio user id -> (annotator id, role), and the admin."""
    by_user = {int(u): (a, r) for a, r, u in annotators[["annotator_id", "role", "ls_user_id"]].dropna(
        subset=["ls_user_id"]).itertuples(index=False)}  # fmt: skip
    return Accounts(by_user, int(client.whoami()["id"]))


def _export(layout: DatasetLayout, client: LabelStudio, taxonomy: Taxonomy, report: PullReport) -> dict[str, tuple]:
    """Project key -> (its plan on record, its snapshot export) for every project still on the server; each
    project's status (ok or deleted) and drift go to `report.projects`. ServerError when an export fails."""
    exports = {}
    for key, plan in sorted(load_projects(layout).items()):
        remote = client.project(plan["id"])
        if remote is None:
            report.projects[key] = {"id": plan["id"], "status": "deleted", "drift": []}
            continue
        report.projects[key] = {"id": plan["id"], "status": "ok", "drift": _drift(remote, plan, taxonomy)}
        exports[key] = (plan, client.export_snapshot(plan["id"]))
    return exports


def _halt(report: PullReport, exports: dict[str, tuple], key: str, detail: str) -> None:
    """Leave project `key` out of this pull: its export cannot be trusted to say which votes are gone."""
    exports.pop(key)
    report.projects[key] |= {"status": "halted", "detail": f"{detail}: not pulled this time, nothing marked deleted"}


def _still_there(client: LabelStudio, ann_id: int, task_id: int | None) -> bool:
    """Whether Label Studio still has the annotation: it answers for it, or its task answers holding it. False only
    on positive evidence (the annotation answers 404, and its task 404 or without it); ServerError on a failure."""
    if client.annotation(ann_id) is not None:
        return True
    task = client.task(task_id) if task_id is not None else None
    return task is not None and any(int(a["id"]) == ann_id for a in task.get("annotations") or [])


def _confirm_gone(client: LabelStudio, votes: pd.DataFrame, server_id: str, exports: dict[str, tuple],
                  report: PullReport) -> set[int]:  # fmt: skip
    """The annotation ids of kept votes on record (of this server) that the exports lack and Label Studio confirms
    gone. A project whose export lacks more than half of its votes on record (and more than DROP_MIN), or one vote
    that Label Studio still has, is halted (`_halt`) and left out of `exports`."""
    seen = {int(a["id"]) for _, tasks in exports.values() for t in tasks for a in t.get("annotations") or []}
    mine = votes[(votes["server_id"].isna() | (votes["server_id"] == server_id)) & (votes["status"] == VoteStatus.KEPT)
                 & votes["ls_annotation_id"].notna()]  # fmt: skip
    project_of = {int(plan["id"]): key for key, (plan, _) in exports.items()}
    gone: set[int] = set()
    for pid, rows in mine.groupby(mine["ls_project_id"].fillna(-1).astype(int)):
        key = project_of.get(pid)
        if key is None and pid != -1:
            continue  # a project that did not answer: its votes stay as they were
        pairs = zip(rows["ls_annotation_id"], rows["ls_task_id"], strict=True)
        missing = [(int(a), None if pd.isna(t) else int(t)) for a, t in pairs if int(a) not in seen]
        if key is not None and len(missing) > max(DROP_MIN, len(rows) / 2):
            _halt(report, exports, key, f"its export lacks {len(missing)} of its {len(rows)} votes on record")
            continue
        for ann_id, task_id in missing:
            if not _still_there(client, ann_id, task_id):
                gone.add(ann_id)
            elif key is not None:
                _halt(report, exports, key, f"its export lacks annotation {ann_id}, which Label Studio still has")
                gone -= {a for a, _ in missing}
                break
    return gone


def _annotator_drift(report: PullReport) -> dict[str, list[str]]:
    """Project key -> its drifted settings that change what an annotator sees or answers (not NOT_SEEN)."""
    return {k: [f for f in p["drift"] if f not in NOT_SEEN] for k, p in report.projects.items()
            if any(f not in NOT_SEEN for f in p.get("drift") or [])}  # fmt: skip


def _document(report: PullReport, now: datetime, server_id: str, url: str) -> dict[str, Any]:
    """The pull report as `manifests/pull_report.json` holds it."""
    return {
        "pulled_at": now.isoformat(), "server": {"server_id": server_id, "url": url},
        "votes": {"kept": report.n_votes, "new": report.n_new, "read_again": report.n_updated,
                  "edited": report.n_edited, "deleted": report.n_deleted, "restored": report.n_restored,
                  "not_counted": len(report.excluded)},
        "summary": report.summary(), "projects": report.projects,
        "tasks": [t.to_dict() for t in report.tasks],  # tasks that differ from what push made
        "invite_link_was_enabled": report.invite_link_was_enabled,
        "excluded": [e.to_dict() for e in report.excluded],
        "changes": report.changes,  # votes on record edited by their annotator, deleted, superseded
    }  # fmt: skip


def _commit(layout: DatasetLayout, vetted: Vetted, document: dict[str, Any], book: TaskBook) -> None:
    """The vote table, the vote history with this pull's events appended, the pull report and (when this pull held
    annotations out for good) the task record, committed together (all of them, or none when this raises)."""
    with file_group(layout.root) as group:
        if vetted.held:
            book.held |= vetted.held
            group.write_bytes(layout.ls_tasks, encode_task_book(book))
        votes = pa.Table.from_pandas(vetted.votes[VOTES_SCHEMA.names], schema=VOTES_SCHEMA, preserve_index=False)
        group.write_table(layout.votes, votes)
        if vetted.history:
            history = pd.DataFrame(vetted.history, columns=VOTE_HISTORY_SCHEMA.names)
            if layout.vote_history.exists():
                history = pd.concat([pq.read_table(layout.vote_history).to_pandas(), history], ignore_index=True)
            table = pa.Table.from_pandas(history, schema=VOTE_HISTORY_SCHEMA, preserve_index=False)
            group.write_table(layout.vote_history, table)
        group.write_bytes(layout.pull_report, json.dumps(document, indent=1, default=_json_value).encode())


def pull(layout: DatasetLayout, client: LabelStudio, taxonomy: Taxonomy) -> PullReport:
    """Export every project (snapshot export) and merge it into the vote table under the rules of
    `annotation.vetting` (Label Studio is untrusted input); write `manifests/pull_report.json` with every
    annotation not counted and its reason, every deleted or drifted project and an invite link found enabled (which
    is disabled again), and append every change to a vote on record to `manifests/vote_history.parquet`; the three
    files are committed together (see the module's docstring).
    Idempotent: a vote is keyed by its server and Label Studio annotation id. A deleted project is reported and
    its votes stay as last pulled; the other projects are pulled. Tasks are vetted against what push recorded
    (`annotation.task_record`; differences go to `PullReport.tasks`); a vote is marked deleted only when Label
    Studio confirms its annotation gone, and a project whose export lacks votes it still has, or most of its votes,
    is halted (see the module's docstring). Nothing is written unless every export of the existing projects
    succeeded. Raises ValueError for another server than the dataset's, ServerError when the
    server fails."""
    recover_commits(layout.root)  # a pull killed after its commit began is finished before this one reads
    server_id, url = check_server(layout, client)
    annotators = load_annotators(layout)
    accounts = _accounts(annotators, client)
    known_videos = set(read_versioned_table(layout.videos_manifest, ["video_id"])["video_id"].to_pylist())
    book = load_task_book(layout)
    report = PullReport(path=layout.pull_report)
    exports = _export(layout, client, taxonomy, report)
    report.invite_link_was_enabled = client.invite_link_enabled()
    if report.invite_link_was_enabled:
        client.disable_invite_link()
    now = datetime.now(UTC).replace(microsecond=0)
    old = read_vote_table(layout)
    gone = _confirm_gone(client, old, server_id, exports, report)
    report.tasks = task_findings(book, exports, accounts.name)
    vetted = vet(old, exports, annotators, accounts, known_videos, taxonomy, (server_id, url), now, book=book,
                 drifted=_annotator_drift(report), gone=gone)  # fmt: skip
    report.excluded, report.changes = vetted.excluded, vetted.history
    report.n_new, report.n_updated = vetted.n_new, vetted.n_reread
    report.n_edited, report.n_deleted, report.n_restored = vetted.n_edited, vetted.n_deleted, vetted.n_restored
    report.n_votes = int(is_kept(vetted.votes).sum())
    _commit(layout, vetted, _document(report, now, server_id, url), book)
    return report


def _json_value(value: Any) -> Any:
    """numpy scalars as Python numbers, times as ISO text."""
    return value.item() if hasattr(value, "item") else str(value)

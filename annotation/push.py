"""`push`: a stage's plan (`annotation.stage_plan`) carried out on Label Studio: one project per annotator, the
tasks they lack imported and recorded (`annotation.task_record`), the settings the toolkit owns restored (and
reported), and the expert's items refreshed or sent back.

Push touches only tasks whose data are as it recorded them: a task whose data changed, or one it did not make, is
reported (`PushReport.tampered`, `PushReport.foreign`) and left as it is, for the lab to look at; pull does not count
votes on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from annotation.allocation_step import ok_videos
from annotation.labelstudio.client import PROJECT_SETTINGS, LabelStudio
from annotation.labelstudio.interface import instructions, labeling_config
from annotation.media_urls import media_base, media_url
from annotation.projects import load_projects, save_projects
from annotation.server_record import check_server
from annotation.stage_plan import plan_stage
from annotation.task_record import (
    TaskBook,
    TaskRecord,
    adopt,
    changed_fields,
    load_task_book,
    record_imported,
    save_task_book,
)
from annotation.votes import kept_votes, read_vote_table
from emotions_data.layout import DatasetLayout
from emotions_data.schema import Stage
from emotions_data.taxonomy import Taxonomy


@dataclass
class PushReport:
    imported: dict[str, int] = field(default_factory=dict)  # project key -> new tasks
    returned: dict[str, int] = field(default_factory=dict)  # expert project key -> items sent back (a new round)
    refreshed: dict[str, int] = field(default_factory=dict)  # expert project key -> earlier votes refreshed
    repointed: dict[str, int] = field(default_factory=dict)  # project key -> tasks whose media URL moved
    missing_media: dict[str, str] = field(default_factory=dict)  # video_id -> its media file, absent: not pushed
    restored: dict[str, list[str]] = field(default_factory=dict)  # project key -> settings changed in Label Studio
    tampered: dict[str, list[int]] = field(default_factory=dict)  # project key -> tasks whose data changed: untouched
    foreign: dict[str, list[int]] = field(default_factory=dict)  # project key -> tasks push did not make: untouched
    already_voted: dict[str, int] = field(default_factory=dict)  # project key -> items not asked again (voted on)
    adopted: dict[str, int] = field(default_factory=dict)  # project key -> tasks of an older push, now recorded
    invite_link_disabled: bool = False


def _tally(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


@dataclass(frozen=True)
class _Clips:
    """The clips that can be pushed (their media file is there) and where the annotator's browser loads them."""

    layout: DatasetLayout
    videos: pd.DataFrame  # indexed by video_id, with media_path
    base: str  # `media_urls.media_base`

    def url(self, vid: str) -> str:
        return media_url(self.layout, self.videos.loc[vid, "media_path"], self.base)

    def task(self, vid: str, entry: dict[str, Any], earlier: dict[str, str], round_: int) -> dict[str, Any]:
        """The new task of `vid` in the project planned as `entry`; an expert's shows `earlier` votes and its round."""
        data = {
            "video": self.url(vid),
            "video_id": vid,
            "stage": entry["stage"],
            "items_of": entry.get("items_of") or "",
        }
        if entry["stage"] == Stage.EXPERT:
            data |= {"previous_votes": earlier.get(vid, ""), "round": round_}
        return {"data": data}


def _present_clips(layout: DatasetLayout, base: str, report: PushReport) -> _Clips:
    """The ok videos whose media file exists; the others go to `report.missing_media`."""
    videos = ok_videos(layout).set_index("video_id")
    for vid, media_path in videos["media_path"].items():
        if not (layout.root / media_path).is_file():
            report.missing_media[str(vid)] = str(layout.root / media_path)
    return _Clips(layout, videos.drop(index=list(report.missing_media)), base)


def _ensure_project(
    client: LabelStudio, known: dict | None, title: str, config: str, guide: str
) -> tuple[dict[str, Any], list[str]]:
    """The project on record (`known`), made to follow the current title, taxonomy, instructions and the settings
    the toolkit owns, with the settings that differed (sorted); a new one when there is none or it was deleted in
    Label Studio."""
    project = client.project(known["id"]) if known else None
    if project is None:
        return client.create_project(title, config, guide, 1), []
    wanted = {"title": title, "label_config": config, "expert_instruction": guide, **PROJECT_SETTINGS}
    changed = {k: v for k, v in wanted.items() if project.get(k) != v}
    if changed:
        client.call("PATCH", f"/api/projects/{project['id']}", changed)
    if project.get("maximum_annotations") != 1:
        client.set_maximum_annotations(project["id"], 1)
        changed["maximum_annotations"] = 1
    return project, sorted(changed)


def _ours(book: TaskBook, key: str, tasks: list[dict], report: PushReport) -> tuple[list[dict], set[int]]:
    """The project's tasks push made, each with its recorded data (tasks whose data changed too: their item has a
    task), and the ids of those whose data changed; those and the tasks push did not make go to the report."""
    ours, tampered = [], set()
    for t in tasks:
        record = book.tasks.get(int(t["id"]))
        if record is None or record.project != key:
            report.foreign.setdefault(key, []).append(int(t["id"]))
            continue
        if changed_fields(record, t.get("data")):
            tampered.add(int(t["id"]))
            report.tampered.setdefault(key, []).append(int(t["id"]))
        ours.append({**t, "data": dict(record.data)})
    return ours, tampered


def _update(client: LabelStudio, book: TaskBook, task: dict[str, Any], data: dict[str, Any]) -> None:
    """Replace the data of a task push made, and its record."""
    client.update_task_data(task["id"], data)
    old = book.tasks[int(task["id"])]
    book.tasks[int(task["id"])] = TaskRecord(old.project, old.project_id, dict(data))
    task["data"] = dict(data)


def _repoint(client: LabelStudio, book: TaskBook, key: str, tasks: list[dict], clips: _Clips,
             report: PushReport) -> None:  # fmt: skip
    """Point every task (push's own, unchanged) whose clip's URL changed (a moved dataset, or base URL) at where the
    clip is now, so the browser loads it; `tasks` and their records are updated in place."""
    for t in tasks:
        vid = t["data"].get("video_id")
        if vid in clips.videos.index:
            url = clips.url(vid)
            if t["data"].get("video") != url:
                _update(client, book, t, {**t["data"], "video": url})
                _tally(report.repointed, key)


def _latest_rounds(tasks: list[dict]) -> dict[str, dict]:
    """video_id -> its task of the highest round (an item sent back to the expert has one task per round)."""
    latest: dict[str, dict] = {}
    for t in tasks:
        vid = t["data"].get("video_id")
        if vid not in latest or int(t["data"].get("round") or 1) > int(latest[vid]["data"].get("round") or 1):
            latest[vid] = t
    return latest


def _expert_updates(
    client: LabelStudio, book: TaskBook, key: str, entry: dict[str, Any], earlier: dict[str, str],
    latest: dict[str, dict], clips: _Clips, kept: pd.DataFrame, report: PushReport,
) -> list[dict[str, Any]]:  # fmt: skip
    """For each of an expert's items whose earlier votes changed: the text is refreshed in place when the expert
    has not voted on its latest round yet (in the vote table or in Label Studio); else the item goes back as a new
    round, whose task is returned for import."""
    mine = kept[(kept["stage"] == Stage.EXPERT) & (kept["annotator_id"] == entry["annotator"])]
    voted = set(zip(mine["video_id"], mine["round"].astype(int), strict=True))
    new = []
    for vid, task in sorted(latest.items()):
        text = earlier.get(vid)
        if text is None or task["data"].get("previous_votes") == text:
            continue
        round_ = int(task["data"].get("round") or 1)
        if (vid, round_) in voted or int(task.get("total_annotations") or 0) > 0:
            new.append(clips.task(vid, entry, earlier, round_ + 1))
            _tally(report.returned, key)
        else:
            _update(client, book, task, {**task["data"], "previous_votes": text})
            _tally(report.refreshed, key)
    return new


def _parse_stage(stage: Stage | str) -> Stage:
    try:
        return Stage(stage)
    except ValueError:
        raise ValueError(f"unknown stage {stage!r} (choose: {', '.join(Stage)})") from None


def push(
    layout: DatasetLayout,
    stage: Stage | str,
    client: LabelStudio,
    taxonomy: Taxonomy,
    *,
    votes_per_item: int = 3,
    min_agreement: float = 0.5,
    dataset_name: str | None = None,
) -> PushReport:
    """Create or update the stage's per-annotator projects and import the tasks they lack (idempotent); restore the
    settings the toolkit owns on existing projects and disable the organization's invite link. For the expert
    stage, an item whose earlier votes changed (or whose experts disagree) is refreshed in place when the expert has
    not voted on it yet, else sent back as a new round. Media go under the configured media base URL, else through
    Label Studio's local files (a storage over the dataset's `media/` folder, through the dataset's link on the
    toolkit's server: `media_urls.local_files`); a task whose media URL changed (the base URL, or the dataset on a
    server by URL, moved) is pointed at the new one, and a clip whose file is missing is not pushed but
    reported by name (`PushReport.missing_media`). `stage` is a Stage or its value. Raises ValueError for an
    unknown stage, another server than the dataset's, no media source, or media outside it."""
    stage = _parse_stage(stage)
    check_server(layout, client)
    base, storage_path = media_base(layout, client.config)
    plan = plan_stage(layout, stage, dataset_name or layout.root.resolve().name, votes_per_item, min_agreement)
    projects = load_projects(layout)
    report = PushReport()
    if client.invite_link_enabled():
        client.disable_invite_link()
        report.invite_link_disabled = True
    clips = _present_clips(layout, base, report)
    kept = kept_votes(read_vote_table(layout))
    config, guide = labeling_config(taxonomy, stage == Stage.EXPERT), instructions(taxonomy)
    book = load_task_book(layout)
    adopting = not book.recorded and bool(projects)  # tasks of a push from before tasks were recorded
    for key, entry in sorted(plan.items()):
        earlier = entry.pop("earlier", None) or {}
        project, restored = _ensure_project(client, projects.get(key), entry["title"], config, guide)
        if restored:
            report.restored[key] = restored
        projects[key] = {**entry, "id": project["id"]}
        save_projects(layout, projects)
        if storage_path is not None:
            client.ensure_local_storage(project["id"], storage_path)
        tasks = client.tasks(project["id"])
        if adopting:
            report.adopted[key] = adopt(book, key, project["id"], tasks, set(entry["videos"]))
        _push_project(client, book, key, project["id"], entry, earlier, tasks, clips, kept, report)
        save_task_book(layout, book)
    return report


def _push_project(
    client: LabelStudio, book: TaskBook, key: str, project_id: int, entry: dict[str, Any], earlier: dict[str, str],
    tasks: list[dict], clips: _Clips, kept: pd.DataFrame, report: PushReport,
) -> None:  # fmt: skip
    """Import (and record) the tasks project `key` lacks, leaving out items its annotator already has a kept vote
    on in the stage (a project re-created after a deletion); repoint and refresh push's own unchanged tasks."""
    ours, tampered = _ours(book, key, tasks, report)
    untouched = [t for t in ours if int(t["id"]) not in tampered]
    _repoint(client, book, key, untouched, clips, report)
    latest = _latest_rounds(ours)
    mine = kept[(kept["stage"] == entry["stage"]) & (kept["annotator_id"] == entry.get("annotator"))]
    voted = set(mine["video_id"])
    wanted = [v for v in sorted(entry["videos"]) if v not in latest and v in clips.videos.index]
    if voted & set(wanted):
        report.already_voted[key] = len(voted & set(wanted))
    new = [clips.task(v, entry, earlier, 1) for v in wanted if v not in voted]
    if entry["stage"] == Stage.EXPERT:
        fresh = {v: t for v, t in latest.items() if int(t["id"]) not in tampered}
        new += _expert_updates(client, book, key, entry, earlier, fresh, clips, kept, report)
    before = {int(t["id"]) for t in tasks}
    report.imported[key] = client.import_tasks(project_id, new)
    if new:
        strangers = record_imported(book, key, project_id, before, client.tasks(project_id), new)
        if strangers:
            report.foreign.setdefault(key, []).extend(strangers)

"""Campaign progress: per stage, group and annotator, what is done, what remains, how votes were cast, and what to
run next.

Read from the dataset alone (`manifests/ls_projects.json`, `manifests/votes.parquet`, the videos manifest and the
last pull's report), so it needs no server and is as fresh as the last `pull`. A vote is *done* when a counted vote
of that annotator on that item exists in that stage; *remaining* are the project's items without one. The lead time
is Label Studio's (seconds from opening the task to submitting it); one shorter than the clip means the annotator
cannot have watched it to the end, the protocol's first requirement.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from annotation.annotators import load_annotators
from annotation.projects import load_projects
from annotation.server_record import load_server
from annotation.votes import kept_votes, read_vote_table
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.schema import Stage
from emotions_data.storage import recover_commits

#: The protocol's order of stages; a stage is blocked until the one before it is complete.
STAGE_ORDER = (Stage.LABEL, Stage.CROSSCHECK, Stage.RELABEL, Stage.CROSSCHECK2, Stage.EXPERT)


@dataclass(frozen=True)
class AnnotatorProgress:
    """One annotator's project in one stage. Times in seconds."""

    stage: str
    group: str  # the group whose members vote in the project ("" for experts)
    items_of: str  # the group whose items they are ("" when the same, or for experts and relabelling)
    annotator: str
    active: bool  # False: dropped after a consistency evaluation (their remaining items are not waited for)
    assigned: int
    done: int
    remaining: int
    median_lead_s: float | None  # of their votes in the stage; None without one
    shorter_than_clip: int  # votes submitted sooner than the clip lasts
    closed: int = 0  # items whose only answer does not count (skipped, ambiguous...): Label Studio offers them no more
    not_counted: int = 0  # their annotations in the project that the last pull did not count (double votes too)


@dataclass(frozen=True)
class StageProgress:
    stage: str
    assigned: int
    done: int
    remaining: int  # of active annotators
    complete: bool


@dataclass(frozen=True)
class GroupProgress:
    stage: str
    group: str  # the voting group ("" for experts)
    assigned: int
    done: int
    remaining: int  # of active annotators


@dataclass
class CampaignProgress:
    """The whole campaign: `annotators` one row per project, `groups` and `stages` summed, `blocked` one line per
    thing that holds the campaign up, `next_command` what to run now, `pulled_at` when the votes were last pulled."""

    annotators: list[AnnotatorProgress] = field(default_factory=list)
    groups: list[GroupProgress] = field(default_factory=list)
    stages: list[StageProgress] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    next_command: str = ""
    pulled_at: str | None = None
    server: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the data folder of a server the toolkit runs is left out: a local path)."""
        out = asdict(self)
        if out["server"]:
            out["server"] = {k: v for k, v in out["server"].items() if k != "data_dir"}
        return out


def _durations(layout: DatasetLayout) -> dict[str, float]:
    """video_id -> the length of the clip the annotators play (the normalised media's, else the container's)."""
    table = read_versioned_table(layout.videos_manifest)
    column = next((c for c in ("media_duration_s", "duration_s") if c in table.column_names), None)
    if column is None:
        return {}
    return {
        v: float(d)
        for v, d in zip(table["video_id"].to_pylist(), table[column].to_pylist(), strict=True)
        if d is not None and np.isfinite(d)
    }


def campaign_progress(layout: DatasetLayout) -> CampaignProgress:
    """The campaign's progress as of the last pull. Raises ValueError before the first allocation."""
    dataset = str(layout.root)
    recover_commits(layout.root)  # a pull commits the vote table and its report together
    people = load_annotators(layout)
    active = dict(zip(people["annotator_id"], people["active"].astype(bool), strict=True))
    projects = {k: p for k, p in load_projects(layout).items() if p.get("annotator")}
    votes = kept_votes(read_vote_table(layout))
    durations = _durations(layout)
    report_path = layout.pull_report
    report: dict[str, Any] = {}
    if report_path.exists():
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            report = {}
    known = load_server(layout)
    # the server as the status shows it: which one, where; the record's bookkeeping (dataset path, document root) aside
    shown = {k: v for k, v in known.items() if k in ("server_id", "url", "data_dir")} if known else None
    progress = CampaignProgress(pulled_at=report.get("pulled_at"), server=shown)
    excluded = _excluded_by_project(report)
    order = sorted(projects.items(), key=lambda kv: (STAGE_ORDER.index(Stage(kv[1]["stage"])), kv[0]))
    for key, plan in order:
        ann, stage = plan["annotator"], plan["stage"]
        items = set(plan.get("videos") or {})
        mine = votes[(votes["annotator_id"] == ann) & (votes["stage"] == stage)]
        done = len(items & set(mine["video_id"]))
        theirs = [e for e in excluded.get(key, []) if e.get("claimed") == ann]
        closed = {e["video_id"] for e in theirs if e.get("video_id") in items and e.get("reason") != "imported_task"}
        closed -= set(mine["video_id"])  # a copy the annotator imported leaves the item's own task open
        leads = pd.to_numeric(mine["lead_time_s"], errors="coerce").to_numpy(dtype=float)
        clip = np.array([durations.get(v, np.nan) for v in mine["video_id"]], dtype=float)
        fast = int(np.sum(leads < clip))  # NaN on either side compares False
        leads = leads[np.isfinite(leads)]
        group = plan.get("group") or ""
        items_of = plan.get("items_of") or ""
        progress.annotators.append(
            AnnotatorProgress(
                stage=stage, group=group, items_of="" if items_of == group else items_of, annotator=ann,
                active=bool(active.get(ann, False)), assigned=len(items), done=done,
                remaining=len(items) - done - len(closed), shorter_than_clip=fast, closed=len(closed),
                median_lead_s=round(float(np.median(leads)), 1) if len(leads) else None, not_counted=len(theirs),
            )
        )  # fmt: skip
        _not_counted_lines(progress, stage, ann, theirs, closed)
    for stage in STAGE_ORDER:
        rows = [r for r in progress.annotators if r.stage == stage]
        if rows:
            remaining = sum(r.remaining for r in rows if r.active)
            assigned, done = sum(r.assigned for r in rows), sum(r.done for r in rows)
            progress.stages.append(StageProgress(str(stage), assigned, done, remaining, remaining == 0))
            for group in sorted({r.group for r in rows}):
                mine = [r for r in rows if r.group == group]
                progress.groups.append(GroupProgress(
                    str(stage), group, sum(r.assigned for r in mine), sum(r.done for r in mine),
                    sum(r.remaining for r in mine if r.active)))  # fmt: skip
    _blockers_and_next(progress, dataset, layout, people)
    for key, project in sorted((report.get("projects") or {}).items()):  # what the last pull found on the server
        if project.get("status") == "deleted":
            progress.blocked.append(f"project {key} was deleted in Label Studio: its items wait for nobody")
        elif project.get("drift"):
            fields, stage = ", ".join(project["drift"]), key.split("/")[0]
            progress.blocked.append(f"project {key}: settings changed in Label Studio ({fields}); "
                                    f"emotions annotate push {dataset} --stage {stage} restores them")  # fmt: skip
    if report.get("excluded"):
        progress.blocked.append(f"{len(report['excluded'])} annotation(s) not counted at the last pull (see "
                                f"{report_path})")  # fmt: skip
    return progress


def _excluded_by_project(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Project key -> the annotations found there that the last pull did not count (its report's `excluded`)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for e in report.get("excluded") or []:
        if isinstance(e, dict) and e.get("project"):
            found.setdefault(e["project"], []).append(e)
    return found


def _not_counted_lines(progress: CampaignProgress, stage: str, ann: str, theirs: list[dict], closed: set) -> None:
    """The blockers of one annotator's project: items nobody owes any more (Label Studio shows a task that holds
    their annotation, skipped or not counted, no more), and their annotations not counted, by reason."""
    if closed:
        progress.blocked.append(
            f"{stage}: {ann} has {len(closed)} item(s) whose answer does not count ({', '.join(sorted(closed))}): "
            "Label Studio does not offer them again, so nobody owes their vote (see the pull report)"
        )
    if theirs:
        reasons = Counter(str(e.get("reason")) for e in theirs)
        shown = ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
        progress.blocked.append(f"{stage}: {len(theirs)} annotation(s) of {ann} not counted ({shown})")


_AFTER = {  # a complete stage -> the command that moves the campaign on
    Stage.LABEL: "emotions annotate push {d} --stage crosscheck",
    Stage.CROSSCHECK: "emotions annotate consistency {d}",
    Stage.RELABEL: "emotions annotate push {d} --stage crosscheck2",
    Stage.CROSSCHECK2: "emotions labels {d} && emotions annotate push {d} --stage expert",
    Stage.EXPERT: "emotions labels {d}",
}


def _blockers_and_next(progress: CampaignProgress, dataset: str, layout: DatasetLayout, people: pd.DataFrame) -> None:
    if people["ls_user_id"].isna().all():
        progress.blocked.append("no Label Studio accounts: allocation ran with --no-accounts")
    if not progress.stages:
        progress.next_command = f"emotions annotate push {dataset} --stage label"
        return
    for stage in progress.stages:
        waiting = [r for r in progress.annotators if r.stage == stage.stage and r.active and r.remaining]
        if waiting:
            who = ", ".join(f"{r.annotator} ({r.remaining})" for r in waiting)
            progress.blocked.append(f"{stage.stage}: {stage.remaining} vote(s) to cast, by {who}")
        dropped = [r for r in progress.annotators if r.stage == stage.stage and not r.active and r.remaining]
        if dropped:
            who = ", ".join(r.annotator for r in dropped)
            progress.blocked.append(
                f"{stage.stage}: dropped annotator(s) {who} left {sum(r.remaining for r in dropped)} item(s): "
                "their items get fresh votes in the relabel stage"
            )
    last = progress.stages[-1]
    if not last.complete:
        when = f" (votes as of the pull at {progress.pulled_at})" if progress.pulled_at else " (never pulled)"
        progress.next_command = f"emotions annotate pull {dataset}{when}; then emotions annotate status {dataset}"
    elif progress.pulled_at is None:
        progress.next_command = f"emotions annotate pull {dataset}"
    else:
        progress.next_command = _AFTER[Stage(last.stage)].format(d=dataset)
        if last.stage == Stage.CROSSCHECK and not people["active"].all():
            progress.next_command = f"emotions annotate push {dataset} --stage relabel"

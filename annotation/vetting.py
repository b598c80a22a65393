"""Label Studio is untrusted input: which of its annotations become votes, and why the others do not (pure).

Label Studio Community has no roles, so any account can post, edit and delete any annotation, edit any task's data and
import tasks through the API, and an annotation's `completed_by` is whatever the client sent. What the server does
record itself is the account that really wrote an annotation: `updated_by` is set from the request's user on every
create and every save (Label Studio's `tasks.models.Annotation.save` and `tasks.api.AnnotationAPI.update`), whatever
the request body says.
`vet` keeps an annotation as a vote only when every rule of the protocol holds, and reports every other one with its
reason (`Reason`); the rules come from the eMotions protocol (groups, rotating cross-checks, fresh eyes for
relabelling, expert resolution) and from what makes a vote independent:

0. the task is one push made (`annotation.task_record`) and its data are as push made them, in a project whose
   instructions and interface are as push set them; the vote is credited to the video and round push recorded;
   an annotation refused for a changed task or project is held out for good (restoring the data does not let it in);
1. the video is one of the dataset's, the annotation was not skipped, its answer is one choice of the taxonomy (not
   two choices or two regions) and not larger than `MAX_RESULT_BYTES`;
2. the claimed annotator is on the roster, and the writer Label Studio recorded is that account or the toolkit's own
   admin (which posts for simulated panels);
3. the claimed annotator is the project's annotator and the video one of the project's items (projects are per
   annotator and stage; see `annotation.projects`); expert votes only from `role=expert`; a cross-check never by the
   item's first group; cross-checks and relabelling never by anyone who already voted on the item;
4. one vote per (video, annotator, stage, round): the first one cast counts, later separate annotations are reported
   (by then the annotator may have seen other votes), while editing one's own annotation updates the vote and is
   recorded in the history; an expert's vote in a later round supersedes their earlier one;
5. at most the project's votes per video, first come first counted;
6. a vote is marked deleted, and stops counting, only on positive evidence that its annotation is gone (`pull`
   asks Label Studio for the annotation and its task; an empty or partial export proves nothing); a vote marked
   deleted whose annotation is read again counts again (unless another vote took its place); an edit by any other
   account than the vote's annotator (or the admin), or on a changed task, is reported and not applied.

Limits (rules 4 and 5) count only votes that passed every other rule, so an excluded annotation never displaces an
honest one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from annotation.labelstudio.interface import EMOTION, parse_annotation
from annotation.task_record import TaskBook, TaskRecord, changed_fields
from annotation.votes import is_kept, kept_votes
from emotions_data.schema import VOTES_SCHEMA, Stage, VoteStatus
from emotions_data.taxonomy import Taxonomy


class Reason(StrEnum):
    """Why an annotation is not (or no longer) counted as a vote."""

    UNKNOWN_VIDEO = "unknown_video"  # the task's video_id is not in the dataset
    UNKNOWN_ACCOUNT = "unknown_account"  # completed_by is no roster member
    CANCELLED = "cancelled"  # skipped in Label Studio
    OUTSIDE_TAXONOMY = "outside_taxonomy"
    WRITTEN_BY_ANOTHER = "written_by_another"  # Label Studio recorded another writer than the claimed annotator
    NOT_ASSIGNED = "not_assigned"  # not the project's annotator, or not one of the project's items
    NOT_EXPERT = "not_expert"  # an expert-stage vote by someone whose role is not expert
    OWN_ITEMS = "own_items"  # a cross-check by the item's first group
    SEEN_BEFORE = "seen_before"  # a cross-check or relabel vote by someone who already voted on the item
    DUPLICATE = "duplicate"  # a later separate annotation of the same annotator, item, stage and round
    OVER_LIMIT = "over_limit"  # beyond the project's votes per video
    EDIT_BY_ANOTHER = "edit_by_another"  # a vote on record changed by another account: the change is not applied
    CLAIM_CHANGED = "claim_changed"  # a vote on record whose completed_by was changed: the change is not applied
    BAD_EDIT = "bad_edit"  # a vote on record edited into a skip, a label outside the taxonomy or a bad answer
    IMPORTED_TASK = "imported_task"  # on a task push did not make
    TASK_CHANGED = "task_changed"  # on a task whose data differ from what push made
    PROJECT_CHANGED = "project_changed"  # cast while the project's instructions or interface differed from push's
    AMBIGUOUS = "ambiguous"  # two choices or two emotion regions in one answer
    TOO_LARGE = "too_large"  # an answer (result JSON) over MAX_RESULT_BYTES
    RESTORED_TOO_LATE = "restored_too_late"  # a deleted vote reappeared after another took its place


#: The largest answer (the annotation's `result` as JSON, comment included) counted: a comment of a few paragraphs
#: fits; a bigger one is refused and reported (it would otherwise go into every table and backup).
MAX_RESULT_BYTES = 16 * 1024

#: Stages whose votes must come from eyes that have not seen the item (any earlier vote on it).
FRESH_EYES = (Stage.CROSSCHECK, Stage.CROSSCHECK2, Stage.RELABEL)


@dataclass(frozen=True)
class Exclusion:
    """One annotation (or change to one) that does not count, with its reason."""

    reason: Reason
    detail: str
    project: str
    video_id: str | None
    ls_task_id: int | None
    ls_annotation_id: int | None
    claimed: str | None  # the annotator id completed_by names (or the raw user id)
    writer: str | None  # who Label Studio recorded as the writer (annotator id, "admin" or the raw user id)
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to `manifests/pull_report.json`."""
        return {k: (str(v) if isinstance(v, Reason) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Accounts:
    """The roster as Label Studio sees it: user id -> (annotator id, role), plus the toolkit's admin account."""

    by_user: dict[int, tuple[str, str]]
    admin_id: int

    def name(self, user_id: int | None) -> str | None:
        """The annotator id of a Label Studio user id, "admin" for the toolkit's account, else the raw id."""
        if user_id is None:
            return None
        if user_id == self.admin_id:
            return "admin"
        return self.by_user[user_id][0] if user_id in self.by_user else f"user {user_id}"


@dataclass
class Vetted:
    """What `vet` decided: the new vote table, the exclusions and the history events."""

    votes: pd.DataFrame
    excluded: list[Exclusion] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    n_new: int = 0
    n_reread: int = 0
    n_edited: int = 0
    n_deleted: int = 0
    n_restored: int = 0
    held: dict[int, str] = field(default_factory=dict)  # annotation id -> why, newly held out for good


def _int(value: Any) -> int | None:
    if isinstance(value, dict):  # an expanded user
        value = value.get("id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool:
    return False if value is None or pd.isna(value) else bool(value)


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _timestamp(text: str | None) -> datetime | None:
    return pd.Timestamp(text).tz_convert("UTC").floor("s").to_pydatetime() if text else None


@dataclass(frozen=True)
class _Seen:
    """One annotation as exported, with the project it was found in."""

    key: str
    plan: dict[str, Any]
    task: dict[str, Any]
    ann: dict[str, Any]
    record: TaskRecord | None = None  # the task as push made it (None: not recorded)

    @property
    def video_id(self) -> str | None:
        """The video push assigned to the task; what the task says only for a dataset without task records."""
        return self.record.video_id if self.record else (self.task.get("data") or {}).get("video_id")

    @property
    def round(self) -> int:
        return self.record.round if self.record else int((self.task.get("data") or {}).get("round") or 1)

    @property
    def order(self) -> tuple[str, int]:
        return (str(self.ann.get("created_at") or ""), int(self.ann["id"]))


@dataclass(frozen=True)
class _Read:
    """What an annotation says: its label as written and in the taxonomy's spelling, its flags, who it names."""

    label: str | None
    canonical: str | None
    unsure: bool
    comment: str | None
    claimed_id: int | None  # completed_by: whatever the client sent
    writer_id: int | None  # updated_by: the account Label Studio recorded
    problem: tuple[Reason, str] | None  # an answer that cannot be one vote (`answer_problem`)

    @classmethod
    def of(cls, s: _Seen, taxonomy: Taxonomy) -> _Read:
        result = s.ann.get("result") or []
        label, unsure, comment = parse_annotation(result if isinstance(result, list) else [])
        canonical = (taxonomy.lookup(label) or label) if label else None  # a label outside it is excluded later
        return cls(label, canonical, unsure, comment, _int(s.ann.get("completed_by")), _int(s.ann.get("updated_by")),
                   answer_problem(result))  # fmt: skip


def answer_problem(result: Any) -> tuple[Reason, str] | None:
    """(TOO_LARGE or AMBIGUOUS, detail) when an annotation's `result` cannot be one vote: its JSON is over
    MAX_RESULT_BYTES, or it holds more than one emotion region or choice (Label Studio accepts any result the API is
    sent, whatever the interface allows); else None."""
    size = len(json.dumps(result, default=str).encode())
    if size > MAX_RESULT_BYTES:
        return Reason.TOO_LARGE, f"answer of {size} bytes, over the limit of {MAX_RESULT_BYTES}"
    regions = [r for r in (result if isinstance(result, list) else []) if isinstance(r, dict)
               and r.get("from_name") == EMOTION]  # fmt: skip
    choices = [str(c) for r in regions for c in ((r.get("value") or {}).get("choices") or [])]
    if len(regions) > 1 or len(choices) > 1:
        return Reason.AMBIGUOUS, f"{len(choices)} choices in {len(regions)} emotion region(s): {', '.join(choices)}"
    return None


class _Merge:
    """One pull's merge of exported annotations into the vote table: the table as it changes, what is taken (per
    annotator, item, stage and round; per item and stage; who voted on an item), and the result being built."""

    def __init__(self, votes: pd.DataFrame, accounts: Accounts, people: pd.DataFrame, taxonomy: Taxonomy,
                 server: tuple[str, str], now: datetime, book: TaskBook | None = None,
                 drifted: dict[str, list[str]] | None = None) -> None:  # fmt: skip
        self.votes, self.accounts, self.taxonomy, self.now = votes, accounts, taxonomy, now
        self.book, self.drifted = book, drifted or {}
        self.server_id, self.server_url = server
        self.roles = dict(zip(people["annotator_id"], people["role"], strict=True))
        self.result = Vetted(votes=votes)
        self.new_rows: list[dict[str, Any]] = []
        self.taken: set[tuple] = set()  # (video_id, annotator_id, stage, round) of kept votes
        self.per_video: dict[tuple[str, str], int] = {}  # (video_id, stage) -> kept votes
        self.voted_on: dict[str, set[str]] = {}  # video_id -> annotators with any vote on it

    def exclude(self, reason: Reason, detail: str, s: _Seen, label: str | None = None) -> None:
        name = self.accounts.name
        claimed, writer = name(_int(s.ann.get("completed_by"))), name(_int(s.ann.get("updated_by")))
        task_id, ann_id = _int(s.task.get("id")), _int(s.ann.get("id"))
        self.result.excluded.append(
            Exclusion(reason, detail, s.key, s.video_id, task_id, ann_id, claimed, writer, label)
        )

    def event(self, row: pd.Series, name: str, by: str | None, at: datetime | None, new: dict[str, Any]) -> None:
        """A history event (VOTE_HISTORY_SCHEMA) for the vote on record `row`; `new` holds its changed fields."""
        self.result.history.append(
            {"video_id": row["video_id"], "annotator_id": row["annotator_id"], "stage": row["stage"], "event": name,
             "old_label": row["label"], "new_label": new.get("label"), "old_unsure": _flag(row["unsure"]),
             "new_unsure": new.get("unsure"), "old_comment": _text(row["comment"]), "new_comment": new.get("comment"),
             "by": by, "at": at or self.now, "pulled_at": self.now, "ls_annotation_id": _int(row["ls_annotation_id"]),
             "server_id": self.server_id}
        )  # fmt: skip

    def mark_deleted(self, row_of: dict[int, int], seen_ids: set[int], answered: set[int], any_export: bool,
                     gone: set[int] | None) -> None:  # fmt: skip
        """Votes on record whose annotation is gone: deleted, no longer counted (rule 6). With `gone` (the
        annotations Label Studio confirmed deleted) only those; without it, every one missing from a project that
        still answers (a vote without a project id, of an older table, when any project answered). Label Studio
        Community does not record who deletes an annotation: the event's `by` is "unknown"."""
        for ann_id, i in row_of.items():
            row = self.votes.loc[i]
            project = row["ls_project_id"]
            gone_from = int(project) in answered if pd.notna(project) else any_export
            confirmed = gone_from if gone is None else ann_id in gone
            if ann_id not in seen_ids and confirmed and row["status"] == VoteStatus.KEPT:
                self.event(row, "deleted", "unknown", None, {})
                self.votes.loc[i, "status"] = VoteStatus.DELETED
                self.result.n_deleted += 1

    def take_stock(self) -> None:
        """What the kept votes already take (after deletions): rules 3 to 5 count against it."""
        kept = kept_votes(self.votes)
        self.taken = {tuple(r) for r in kept[["video_id", "annotator_id", "stage", "round"]].itertuples(index=False)}
        self.per_video = kept.groupby(["video_id", "stage"]).size().to_dict()
        self.voted_on = self.votes.groupby("video_id")["annotator_id"].agg(set).to_dict()  # deleted ones were seen

    def hold(self, s: _Seen, reason: Reason, detail: str) -> tuple[Reason, str]:
        """Hold the annotation out for good (`TaskBook.held`): restoring the task or project does not let it in."""
        self.result.held[int(s.ann["id"])] = {"reason": str(reason), "detail": detail, "since": self.now.isoformat()}
        return reason, detail

    def task_refusal(self, s: _Seen) -> tuple[Reason, str] | None:
        """Rule 0 for a new annotation: (reason, detail) when it is held out, or its task or project is not as push
        made it; else None."""
        held = self.book.held.get(int(s.ann["id"])) if self.book else None
        if held:
            return Reason(held["reason"]), f"held out since {held['since']}: {held['detail']}"
        if self.book is not None and self.book.recorded:
            data = s.task.get("data") or {}
            if s.record is None or s.record.project != s.key:
                said = data.get("video_id")
                return Reason.IMPORTED_TASK, f"task {s.task.get('id')} (says {said!r}) was not made by push"
            fields = changed_fields(s.record, data)
            if fields:
                return self.hold(s, Reason.TASK_CHANGED, f"task {s.task.get('id')} of {s.record.video_id}: data "
                                 f"changed since push ({', '.join(fields)})")  # fmt: skip
        if self.drifted.get(s.key):
            return self.hold(s, Reason.PROJECT_CHANGED, f"cast while project {s.key}'s "
                             f"{', '.join(self.drifted[s.key])} differed from push's")  # fmt: skip
        return None

    def restore(self, s: _Seen, i: int, read: _Read) -> bool:
        """A vote marked deleted whose annotation is read again counts again (history event "restored"), unless its
        annotator has another vote on the item now or the item has its votes (reported); True when restored."""
        row = self.votes.loc[i]
        vid, stage, ann = row["video_id"], Stage(row["stage"]), row["annotator_id"]
        limit = (s.plan.get("videos") or {}).get(vid)
        if (vid, ann, stage, s.round) in self.taken or (limit and self.per_video.get((vid, stage), 0) >= int(limit)):
            self.exclude(Reason.RESTORED_TOO_LATE, f"{ann}'s deleted vote on {vid} reappeared after another took its "
                         "place: stays deleted", s, read.label)  # fmt: skip
            return False
        self.event(row, "restored", "unknown", _timestamp(s.ann.get("updated_at")), {"label": row["label"]})
        self.votes.loc[i, "status"] = VoteStatus.KEPT
        self.taken.add((vid, ann, stage, s.round))
        self.per_video[(vid, stage)] = self.per_video.get((vid, stage), 0) + 1
        self.result.n_restored += 1
        return True

    def reread(self, s: _Seen, i: int, read: _Read) -> None:
        """A vote on record read again: an edit by its own annotator (or the admin) into a taxonomy label is applied
        and recorded in the history; any other change is reported and not applied (rule 6)."""
        row = self.votes.loc[i]
        self.result.n_reread += 1
        claimed = self.accounts.name(read.claimed_id)
        if claimed != row["annotator_id"]:
            self.exclude(Reason.CLAIM_CHANGED, f"vote of {row['annotator_id']} now claims {claimed}: kept as "
                         f"{row['annotator_id']}'s", s, read.label)  # fmt: skip
            return
        new = {"label": read.canonical, "unsure": read.unsure, "comment": read.comment}
        if (row["label"], _flag(row["unsure"]), _text(row["comment"])) == (read.canonical, read.unsure, read.comment):
            return
        writer = self.accounts.name(read.writer_id)
        if writer not in (row["annotator_id"], "admin"):
            self.exclude(Reason.EDIT_BY_ANOTHER, f"{row['annotator_id']}'s vote {row['label']!r} changed to "
                         f"{read.label!r} by {writer}: not applied", s, read.label)  # fmt: skip
        elif self.book is not None and self.book.recorded and s.record is not None and changed_fields(
                s.record, s.task.get("data")):  # fmt: skip
            self.exclude(Reason.TASK_CHANGED, f"{row['annotator_id']}'s vote edited after task "
                         f"{s.task.get('id')}'s data changed: not applied", s, read.label)  # fmt: skip
        elif s.ann.get("was_cancelled") or read.canonical not in self.taxonomy.classes or read.problem:
            into = "a skip" if s.ann.get("was_cancelled") else (read.problem[1] if read.problem else repr(read.label))
            self.exclude(
                Reason.BAD_EDIT, f"{row['annotator_id']}'s vote edited into {into}: not applied", s, read.label
            )
        else:
            at = _timestamp(s.ann.get("updated_at"))
            self.event(row, "edited", writer, at, new)
            self.votes.loc[i, ["label", "unsure", "comment", "updated_at"]] = [read.canonical, read.unsure,
                                                                                read.comment, at]  # fmt: skip
            self.result.n_edited += 1

    def claim_refusal(self, s: _Seen, read: _Read, known_videos: set[str]) -> tuple[Reason, str] | None:
        """Rules 1 and 2 for a new annotation: (reason, detail) when it cannot be a vote, else None."""
        vid = s.video_id
        if vid not in known_videos:
            return Reason.UNKNOWN_VIDEO, f"task for unknown video {vid!r}"
        who = self.accounts.by_user.get(read.claimed_id) if read.claimed_id is not None else None
        if who is None:
            return Reason.UNKNOWN_ACCOUNT, f"completed_by user {read.claimed_id} is not on the roster"
        ann = who[0]
        if s.ann.get("was_cancelled"):
            return Reason.CANCELLED, f"skipped by {ann}"
        if read.problem:
            return read.problem[0], f"{read.problem[1]} by {ann}"
        if read.canonical not in self.taxonomy.classes:
            return Reason.OUTSIDE_TAXONOMY, f"{read.label!r} by {ann} is not a {self.taxonomy.name} class"
        writer = self.accounts.name(read.writer_id)
        if writer not in (ann, "admin"):
            return Reason.WRITTEN_BY_ANOTHER, f"claims {ann} but Label Studio recorded {writer} as its writer"
        return None

    def plan_refusal(self, s: _Seen, ann: str) -> tuple[Reason, str] | None:
        """Rule 3 and the first half of rule 4 for `ann`'s new annotation: (reason, detail), else None."""
        vid, stage = s.video_id, Stage(s.plan["stage"])
        if ann != s.plan.get("annotator"):
            return Reason.NOT_ASSIGNED, f"{ann} voted in {s.plan.get('annotator')}'s project"
        if vid not in (s.plan.get("videos") or {}):
            return Reason.NOT_ASSIGNED, f"{vid} is not one of the items of project {s.key}"
        if stage == Stage.EXPERT and self.roles.get(ann) != "expert":
            return Reason.NOT_EXPERT, f"{ann} (role {self.roles.get(ann)}) is not an expert"
        if stage in (Stage.CROSSCHECK, Stage.CROSSCHECK2) and s.plan.get("group") == s.plan.get("items_of"):
            return Reason.OWN_ITEMS, f"group {s.plan.get('group')} cross-checking its own items"
        first = (vid, ann, stage, s.round) not in self.taken
        if stage in FRESH_EYES and ann in self.voted_on.get(vid, set()) and first:
            return Reason.SEEN_BEFORE, f"{ann} already voted on {vid} before this {stage} vote"
        if not first:
            return Reason.DUPLICATE, f"{ann} already has a {stage} vote on {vid}: only the first one counts"
        return None

    def supersede(self, s: _Seen, ann: str, canonical: str | None) -> None:
        """An expert's vote in a later round supersedes their kept decisions of earlier rounds on the item (rule 4)."""
        votes, vid, stage = self.votes, s.video_id, Stage(s.plan["stage"])
        earlier = votes.index[(votes["video_id"] == vid) & (votes["annotator_id"] == ann) & (votes["stage"] == stage)
                              & is_kept(votes) & (votes["round"] < s.round)]  # fmt: skip
        for i in earlier:
            self.event(votes.loc[i], "superseded", ann, _timestamp(s.ann.get("created_at")), {"label": canonical})
            votes.loc[i, "status"] = VoteStatus.SUPERSEDED
            self.per_video[(vid, stage)] = self.per_video.get((vid, stage), 1) - 1

    def count(self, s: _Seen, ann: str, read: _Read) -> None:
        """`ann`'s new annotation becomes a kept vote, unless the item has its project's votes already (rule 5)."""
        vid, stage = s.video_id, Stage(s.plan["stage"])
        limit = (s.plan.get("videos") or {})[vid]
        if self.per_video.get((vid, stage), 0) >= int(limit):
            self.exclude(Reason.OVER_LIMIT, f"{vid} already has its {limit} {stage} vote(s)", s, read.label)
            return
        self.taken.add((vid, ann, stage, s.round))
        self.per_video[(vid, stage)] = self.per_video.get((vid, stage), 0) + 1
        self.voted_on.setdefault(vid, set()).add(ann)
        self.new_rows.append(
            {"video_id": vid, "annotator_id": ann, "stage": str(stage), "group": s.plan.get("group"),
             "label": read.canonical, "unsure": read.unsure, "comment": read.comment,
             "lead_time_s": s.ann.get("lead_time"), "created_at": _timestamp(s.ann.get("created_at")),
             "ls_task_id": _int(s.task.get("id")), "ls_annotation_id": int(s.ann["id"]),
             "updated_at": _timestamp(s.ann.get("updated_at")), "status": str(VoteStatus.KEPT), "round": s.round,
             "ls_project_id": int(s.plan["id"]), "ls_written_by": read.writer_id, "server_id": self.server_id,
             "server_url": self.server_url}
        )  # fmt: skip

    def finish(self) -> Vetted:
        """The result, its vote table holding the new votes, sorted by stage, video, server and annotation id."""
        votes = self.votes
        self.result.n_new = len(self.new_rows)
        if self.new_rows:
            fresh = pd.DataFrame(self.new_rows, columns=VOTES_SCHEMA.names)
            votes = pd.concat([votes, fresh], ignore_index=True) if len(votes) else fresh
        order = ["stage", "video_id", "server_id", "ls_annotation_id"]
        self.result.votes = votes.sort_values(order, kind="stable").reset_index(drop=True)
        return self.result


def _adopt(old: pd.DataFrame, server_id: str, server_url: str) -> tuple[pd.DataFrame, pd.Series]:
    """A copy of the vote table with a 1.0 table's defaults filled in, and which of its votes are of this server
    (a table without server ids is adopted by the server it is pulled from)."""
    votes = old.copy().reset_index(drop=True)
    votes["status"] = votes["status"].fillna(VoteStatus.KEPT)
    votes["round"] = votes["round"].fillna(1)
    mine = votes["server_id"].isna() | (votes["server_id"] == server_id)
    votes.loc[mine, "server_id"] = server_id
    votes.loc[mine & votes["server_url"].isna(), "server_url"] = server_url
    return votes, mine


def vet(
    old: pd.DataFrame,
    exports: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]],
    people: pd.DataFrame,
    accounts: Accounts,
    known_videos: set[str],
    taxonomy: Taxonomy,
    server: tuple[str, str],
    now: datetime,
    *,
    book: TaskBook | None = None,
    drifted: dict[str, list[str]] | None = None,
    gone: set[int] | None = None,
) -> Vetted:
    """Merge the exported annotations into the vote table `old` (VOTES_SCHEMA columns) under the rules above.

    `exports` maps each project key that answered to (its plan from `ls_projects.json`, its exported tasks with their
    annotations); a vote of a project missing from `exports` (deleted in Label Studio, say) stays as it was.
    `people` is `manifests/annotators.parquet`; `server` is (server_id, url) of the server pulled from: votes of
    other servers are left alone. `now` stamps history events. Annotations are taken in the order they were
    created (then by id), so the first one cast is the one that counts. `book` holds the tasks push made (rule 0;
    without it, task data are trusted), `drifted` project key -> the annotator-facing settings that differ from
    push's, `gone` the annotation ids Label Studio confirmed deleted (without it, every annotation missing from a
    project that answered is taken as deleted)."""
    votes, mine = _adopt(old, *server)
    merge = _Merge(votes, accounts, people, taxonomy, server, now, book, drifted)
    records = book.tasks if book is not None else {}
    row_of = {int(a): i for i, a in votes.loc[mine, "ls_annotation_id"].dropna().items()}
    seen = sorted(
        (_Seen(key, plan, task, ann, records.get(int(task["id"]))) for key, (plan, tasks) in exports.items()
         for task in tasks for ann in task.get("annotations") or []),
        key=lambda s: s.order,
    )  # fmt: skip
    answered = {int(plan["id"]) for plan, _ in exports.values()}
    merge.mark_deleted(row_of, {int(s.ann["id"]) for s in seen}, answered, len(exports) > 0, gone)
    merge.take_stock()
    for s in seen:
        read = _Read.of(s, taxonomy)
        if int(s.ann["id"]) in row_of:
            i = row_of[int(s.ann["id"])]
            if merge.votes.loc[i, "status"] != VoteStatus.DELETED or merge.restore(s, i, read):
                merge.reread(s, i, read)
            continue
        refused = merge.task_refusal(s) or merge.claim_refusal(s, read, known_videos)
        if refused is None:
            ann = accounts.by_user[read.claimed_id][0]
            refused = merge.plan_refusal(s, ann)
        if refused is not None:
            merge.exclude(*refused, s, read.label)
            continue
        if Stage(s.plan["stage"]) == Stage.EXPERT:
            merge.supersede(s, ann, read.canonical)
        merge.count(s, ann, read)
    return merge.finish()

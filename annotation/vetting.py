"""Label Studio is untrusted input: which of its annotations become votes, and why the others do not (pure).

Label Studio Community has no roles, so any account can post, edit and delete any annotation through the API, and an
annotation's `completed_by` is whatever the client sent. What the server does record itself is the account that
really wrote an annotation: `updated_by` is set from the request's user on every create and every save (Label
Studio's `tasks.models.Annotation.save` and `tasks.api.AnnotationAPI.update`), whatever the request body says.
`vet` keeps an annotation as a vote only when every rule of the protocol holds, and reports every other one with its
reason (`Reason`); the rules come from the eMotions protocol (groups, rotating cross-checks, fresh eyes for
relabelling, expert resolution) and from what makes a vote independent:

1. the video is one of the dataset's, the annotation was not skipped, its label is in the taxonomy;
2. the claimed annotator is on the roster, and the writer Label Studio recorded is that account or the toolkit's own
   admin (which posts for simulated panels);
3. the claimed annotator is the project's annotator and the video one of the project's items (projects are per
   annotator and stage; see `annotation.projects`); expert votes only from `role=expert`; a cross-check never by the
   item's first group; cross-checks and relabelling never by anyone who already voted on the item;
4. one vote per (video, annotator, stage, round): the first one cast counts, later separate annotations are reported
   (by then the annotator may have seen other votes), while editing one's own annotation updates the vote and is
   recorded in the history; an expert's vote in a later round supersedes their earlier one;
5. at most the project's votes per video, first come first counted;
6. a vote whose annotation disappeared from a project that still exists is marked deleted and stops counting; an
   edit by any other account than the vote's annotator (or the admin) is reported and not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from annotation.labelstudio.interface import parse_annotation
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
    BAD_EDIT = "bad_edit"  # a vote on record edited into a skip or a label outside the taxonomy: not applied


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

    @property
    def video_id(self) -> str | None:
        return (self.task.get("data") or {}).get("video_id")

    @property
    def round(self) -> int:
        return int((self.task.get("data") or {}).get("round") or 1)

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

    @classmethod
    def of(cls, s: _Seen, taxonomy: Taxonomy) -> _Read:
        label, unsure, comment = parse_annotation(s.ann.get("result") or [])
        canonical = (taxonomy.lookup(label) or label) if label else None  # a label outside it is excluded later
        return cls(label, canonical, unsure, comment, _int(s.ann.get("completed_by")), _int(s.ann.get("updated_by")))


class _Merge:
    """One pull's merge of exported annotations into the vote table: the table as it changes, what is taken (per
    annotator, item, stage and round; per item and stage; who voted on an item), and the result being built."""

    def __init__(self, votes: pd.DataFrame, accounts: Accounts, people: pd.DataFrame, taxonomy: Taxonomy,
                 server: tuple[str, str], now: datetime) -> None:  # fmt: skip
        self.votes, self.accounts, self.taxonomy, self.now = votes, accounts, taxonomy, now
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

    def mark_deleted(self, row_of: dict[int, int], seen_ids: set[int], answered: set[int], any_export: bool) -> None:
        """Votes on record whose annotation is gone from a project that still answers: deleted, no longer counted
        (rule 6). A vote without a project id (an older table) is gone when any project answered."""
        for ann_id, i in row_of.items():
            row = self.votes.loc[i]
            project = row["ls_project_id"]
            gone_from = int(project) in answered if pd.notna(project) else any_export
            if ann_id not in seen_ids and gone_from and row["status"] == VoteStatus.KEPT:
                self.event(row, "deleted", "server", None, {})
                self.votes.loc[i, "status"] = VoteStatus.DELETED
                self.result.n_deleted += 1

    def take_stock(self) -> None:
        """What the kept votes already take (after deletions): rules 3 to 5 count against it."""
        kept = kept_votes(self.votes)
        self.taken = {tuple(r) for r in kept[["video_id", "annotator_id", "stage", "round"]].itertuples(index=False)}
        self.per_video = kept.groupby(["video_id", "stage"]).size().to_dict()
        self.voted_on = self.votes.groupby("video_id")["annotator_id"].agg(set).to_dict()  # deleted ones were seen

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
        elif s.ann.get("was_cancelled") or read.canonical not in self.taxonomy.classes:
            into = "a skip" if s.ann.get("was_cancelled") else repr(read.label)
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
) -> Vetted:
    """Merge the exported annotations into the vote table `old` (VOTES_SCHEMA columns) under the rules above.

    `exports` maps each project key that answered to (its plan from `ls_projects.json`, its exported tasks with their
    annotations); a vote of a project missing from `exports` (deleted in Label Studio, say) stays as it was.
    `people` is `manifests/annotators.parquet`; `server` is (server_id, url) of the server pulled from: votes of
    other servers are left alone. `now` stamps history events. Annotations are taken in the order they were
    created (then by id), so the first one cast is the one that counts."""
    votes, mine = _adopt(old, *server)
    merge = _Merge(votes, accounts, people, taxonomy, server, now)
    row_of = {int(a): i for i, a in votes.loc[mine, "ls_annotation_id"].dropna().items()}
    seen = sorted(
        (_Seen(key, plan, task, ann) for key, (plan, tasks) in exports.items() for task in tasks
         for ann in task.get("annotations") or []),
        key=lambda s: s.order,
    )  # fmt: skip
    answered = {int(plan["id"]) for plan, _ in exports.values()}
    merge.mark_deleted(row_of, {int(s.ann["id"]) for s in seen}, answered, len(exports) > 0)
    merge.take_stock()
    for s in seen:
        read = _Read.of(s, taxonomy)
        if int(s.ann["id"]) in row_of:
            merge.reread(s, row_of[int(s.ann["id"])], read)
            continue
        refused = merge.claim_refusal(s, read, known_videos)
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

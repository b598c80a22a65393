"""Which annotator gets which items in each stage of the eMotions protocol: the plan `annotation.push` carries out.

Stages: `label` (each group labels its own share), `crosscheck` (each group's share re-labelled by the next group:
A->B, B->C, C->A), `relabel` (after personnel adjustments: the items that carried votes of dropped annotators get as
many new votes from annotators who have not seen them), `crosscheck2` (the paper's second cross-check round after the
adjustments: each group's share re-labelled by a group that has not seen it, by the updated groups), `expert` (items
without a clear majority, with weak agreement, where experts disagree, or whose earlier votes changed since the
expert saw them, shown with the earlier votes; the expert's decision is final).

Within a group, each item goes to `votes_per_item` annotators, balanced by load; cross-checks and relabelling go
only to annotators who have not seen the item. A plan only ever extends the projects already pushed: an item once
given to an annotator stays theirs, and items added later move nobody's share.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from annotation.agreement import item_agreement
from annotation.allocation import crosscheck_group
from annotation.allocation_step import load_assignments
from annotation.annotators import load_annotators
from annotation.plurality import TIE, unique_plurality
from annotation.projects import load_projects, project_title
from annotation.votes import count_matrix, counted_votes, crowd_votes, dropped_votes, is_kept, read_vote_table
from emotions_data.layout import DatasetLayout
from emotions_data.schema import Stage
from emotions_data.storage import recover_commits
from emotions_data.suspects import expert_requests_path

CROWD_STAGES = (Stage.LABEL, Stage.CROSSCHECK, Stage.CROSSCHECK2)  # each group's share, labelled by a group


def _summaries(votes: pd.DataFrame) -> dict[str, str]:
    """video_id -> its crowd votes as text ("Fear: 2, Tension: 1"), most votes first."""
    crowd = crowd_votes(votes)
    result = {}
    for vid, labels in crowd.groupby("video_id")["label"]:
        counts = labels.value_counts()
        result[str(vid)] = ", ".join(f"{lab}: {n}" for lab, n in sorted(counts.items(), key=lambda t: (-t[1], t[0])))
    return result


def expert_candidates(votes: pd.DataFrame, min_agreement: float) -> dict[str, str]:
    """video_id -> earlier votes as text, for items with no unique majority or agreement under the bar."""
    crowd = crowd_votes(votes)
    counts = count_matrix(crowd)
    matrix = counts.to_numpy()
    agree = item_agreement(matrix)
    tied = unique_plurality(matrix) == TIE
    weak = tied | (np.nan_to_num(agree, nan=0.0) < min_agreement)
    summaries = _summaries(crowd)
    return {str(vid): summaries[str(vid)] for vid in counts.index[weak]}


def experts_disagree(votes: pd.DataFrame) -> set[str]:
    """Items whose counted expert votes (the latest of each expert) do not all agree."""
    expert = votes[votes["stage"] == Stage.EXPERT]
    labels = expert.groupby("video_id")["label"].nunique()
    return set(labels.index[labels > 1])


def _hash_order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda v: hashlib.sha256(v.encode()).hexdigest())


def _allot(
    ids: list[str], pool: list[str], k: dict[str, int], planned: dict[str, set[str]], seen: dict[str, set[str]]
) -> dict[str, list[str]]:
    """annotator -> new items: each item not yet planned gets `k[item]` annotators of `pool` who have not seen it,
    the least loaded first (ties by id), so shares stay balanced and adding items later moves nothing."""
    load = Counter(a for who in planned.values() for a in who if a in pool)
    result: dict[str, list[str]] = {}
    for vid in _hash_order(ids):
        need = k[vid] - len(planned.get(vid, set()))
        if need <= 0:
            continue
        fresh = sorted((a for a in pool if a not in seen.get(vid, set()) and a not in planned.get(vid, set())),
                       key=lambda a: (load[a], a))  # fmt: skip
        for a in fresh[:need]:
            result.setdefault(a, []).append(vid)
            load[a] += 1
    return result


@dataclass
class _Draft:
    """A stage's plan while it is extended: project key -> plan entry, and who is given or has seen each item."""

    stage: Stage
    dataset: str  # the dataset's name, in project titles
    entries: dict[str, dict[str, Any]]
    planned: dict[str, set[str]]  # video_id -> annotators given it in this stage
    seen: dict[str, set[str]]  # video_id -> annotators with a vote on it, or given it in another stage

    def add(self, key: str, annotator: str, detail: str, items_of: str | None, group: str | None,
            videos: dict[str, int]) -> None:  # fmt: skip
        """Give `annotator` the `videos` (video_id -> votes wanted on it) in project `key`, planned anew if new."""
        entry = self.entries.setdefault(key, {
            "title": project_title(annotator, self.stage, detail, self.dataset), "stage": str(self.stage),
            "items_of": items_of, "group": group, "annotator": annotator, "videos": {},
        })  # fmt: skip
        entry["videos"].update(videos)

    def allot(self, ids: list[str], pool: list[str], k: dict[str, int], fresh_eyes: bool) -> dict[str, list[str]]:
        """annotator of `pool` -> the items of `ids` newly given to them (`_allot`); with `fresh_eyes` only to
        annotators who have not seen the item."""
        return _allot(ids, pool, k, self.planned, self.seen if fresh_eyes else {})


def _seen(votes: pd.DataFrame, projects: dict[str, dict], stage: Stage) -> dict[str, set[str]]:
    """video_id -> anyone with a vote on it (any stage, any status), or given it in another stage's project."""
    seen: dict[str, set[str]] = {}
    for vid, ann in votes[["video_id", "annotator_id"]].itertuples(index=False):
        seen.setdefault(vid, set()).add(ann)
    for p in projects.values():
        if p["stage"] != stage and p.get("annotator"):
            for vid in p.get("videos") or {}:
                seen.setdefault(vid, set()).add(p["annotator"])
    return seen


def _planned(existing: dict[str, dict], votes: pd.DataFrame, stage: Stage) -> dict[str, set[str]]:
    """video_id -> the annotators already given it in this stage's projects, or (outside the expert stage) with a
    kept vote of this stage on it (cast in a legacy group project, say): both fill its places."""
    planned: dict[str, set[str]] = {}
    for p in existing.values():
        for vid in p.get("videos") or {}:
            planned.setdefault(vid, set()).add(p["annotator"])
    if stage != Stage.EXPERT:
        cast = votes[(votes["stage"] == stage) & is_kept(votes)]
        for vid, ann in cast[["video_id", "annotator_id"]].itertuples(index=False):
            planned.setdefault(vid, set()).add(ann)
    return planned


def _labelling_group(stage: Stage, index: int, groups: list[str]) -> str:
    """The group that labels the share of `groups[index]` in a crowd stage: the group itself in `label`, the next one
    in `crosscheck`, and in `crosscheck2` one that has seen neither the labels nor the first cross-check (the one
    after the next; with fewer than three groups there is none, and the next one does)."""
    group = groups[index]
    if stage == Stage.LABEL:
        return group
    if stage == Stage.CROSSCHECK or len(groups) < 3:
        return crosscheck_group(group, groups)
    return groups[(index + 2) % len(groups)]


def _plan_group_shares(draft: _Draft, assignments: pd.DataFrame, crowd: pd.DataFrame, votes_per_item: int) -> None:
    """Label, cross-check and second cross-check: each group's share goes to `votes_per_item` annotators (at most
    the whole group) of the group that labels it; cross-checks only to annotators who have not seen the item."""
    groups = sorted(assignments["group"].unique())
    for i, group in enumerate(groups):
        ids = sorted(assignments.loc[assignments["group"] == group, "video_id"])
        by = _labelling_group(draft.stage, i, groups)
        pool = sorted(crowd.loc[crowd["group"] == by, "annotator_id"])
        k = {v: min(votes_per_item, len(pool)) for v in ids}
        detail = f"group {by}" + ("" if draft.stage == Stage.LABEL else f" (items of {group})")
        for ann, vids in draft.allot(ids, pool, k, fresh_eyes=draft.stage != Stage.LABEL).items():
            draft.add(f"{draft.stage}/{group}/{ann}", ann, detail, group, by, {v: k[v] for v in vids})


def _plan_relabel(draft: _Draft, missing: pd.Series, crowd: pd.DataFrame) -> None:
    """Relabel: each item gets as many new votes as dropped annotators' votes it lost (`missing`, video_id -> count),
    from any active annotator who has not seen it, in a project of the annotator's own group."""
    pool = sorted(crowd["annotator_id"])
    group_of = dict(zip(crowd["annotator_id"], crowd["group"], strict=True))
    k = {str(v): int(n) for v, n in missing.items()}
    for ann, vids in draft.allot(list(k), pool, k, fresh_eyes=True).items():
        g = group_of[ann]
        draft.add(f"{draft.stage}/{g}/{ann}", ann, f"group {g}", None, g, {v: k[v] for v in vids})


def _expert_queue(
    layout: DatasetLayout, counted: pd.DataFrame, min_agreement: float, planned: dict[str, set[str]]
) -> tuple[dict[str, str], set[str]]:
    """(video_id -> its counted crowd votes as text, for every item the experts get, sorted; the items whose experts
    disagree). The experts get the items without a unique majority or under `min_agreement`, those the labels step
    queued (`needs_expert.parquet`), those whose experts disagree, and those already planned (their earlier votes
    may have changed since)."""
    earlier = expert_candidates(counted, min_agreement) if len(counted) else {}
    needs = pq.read_table(layout.needs_expert).to_pandas() if layout.needs_expert.exists() else pd.DataFrame()
    for row in needs.itertuples() if len(needs) else []:
        earlier.setdefault(row.video_id, row.votes or "")
    disputed = experts_disagree(counted) if len(counted) else set()
    summaries = _summaries(counted) if len(counted) else {}
    requests = _expert_requests(layout)
    items = set(earlier) | disputed | set(planned) | set(requests)
    shown = {vid: summaries.get(vid) or earlier.get(vid, "") for vid in sorted(items)}
    for vid, note in requests.items():  # the note changes the text: an item the expert decided goes back, a round on
        shown[vid] = f"{shown[vid]}; {note}" if shown[vid] else note
    return shown, disputed


def _expert_requests(layout: DatasetLayout) -> dict[str, str]:
    """video_id -> the note of a request to the expert (`emotions validate --to-expert`: the model disputes the
    label), from `expert_requests.parquet`; empty when there is none."""
    path = expert_requests_path(layout)
    if not path.is_file():
        return {}
    frame = pq.read_table(path).to_pandas()
    return {str(v): str(n or r) for v, r, n in zip(frame["video_id"], frame["reason"], frame["votes"], strict=True)}


def _plan_expert(draft: _Draft, layout: DatasetLayout, experts: list[str], counted: pd.DataFrame,
                 min_agreement: float) -> None:  # fmt: skip
    """Expert: every expert gets every queued item (`_expert_queue`), shown with its earlier votes and, where the
    experts disagree, the other experts' decisions (the plan's `earlier`: video_id -> that text)."""
    queue, disputed = _expert_queue(layout, counted, min_agreement, draft.planned)
    expert_votes = counted[counted["stage"] == Stage.EXPERT]
    for ann in experts:
        others = expert_votes[expert_votes["annotator_id"] != ann]
        shown = {}
        for vid, text in queue.items():
            theirs = others[others["video_id"] == vid]
            if vid in disputed and len(theirs):
                pairs = sorted(zip(theirs["annotator_id"], theirs["label"], strict=True))
                text += "; experts: " + ", ".join(f"{a}: {lab}" for a, lab in pairs)
            shown[vid] = text
        key = f"{draft.stage}/{ann}"
        draft.add(key, ann, "", None, None, dict.fromkeys(queue, len(experts)))
        draft.entries[key]["earlier"] = shown


def plan_stage(
    layout: DatasetLayout, stage: Stage, name: str, votes_per_item: int, min_agreement: float
) -> dict[str, dict[str, Any]]:
    """Project key -> its plan (title, stage, items_of, group, annotator, videos {id: votes per video}, and for the
    expert stage `earlier`: video_id -> the earlier votes shown) for `stage`, extending the projects already pushed
    in the dataset `layout` (named `name` in titles). Raises ValueError before the first allocation, or when
    `votes_per_item` is under 1 or `min_agreement` is negative or not finite (above 1 it sends every item)."""
    if isinstance(votes_per_item, bool) or not isinstance(votes_per_item, numbers.Integral) or votes_per_item < 1:
        raise ValueError(f"votes_per_item must be an integer >= 1, not {votes_per_item!r}")
    if not 0 <= min_agreement < math.inf:  # also refuses nan, under which nothing would be sent
        raise ValueError(f"min_agreement must be a finite share >= 0, not {min_agreement!r}")
    recover_commits(layout.root)  # the vote table and the expert queue are committed with their companion files
    people = load_annotators(layout)
    active = people[people["active"]]
    crowd = active[active["role"] == "annotator"]
    votes = read_vote_table(layout)
    projects = load_projects(layout)
    # A project without an annotator is a group project of a dataset pushed before projects were per annotator: its
    # votes are still pulled, and the stage's items are planned anew in per-annotator projects.
    existing = {k: p for k, p in projects.items() if p["stage"] == stage and p.get("annotator")}
    entries = {k: {**p, "videos": dict(p.get("videos") or {})} for k, p in existing.items()}
    draft = _Draft(stage, name, entries, _planned(existing, votes, stage), _seen(votes, projects, stage))
    if stage in CROWD_STAGES:
        _plan_group_shares(draft, load_assignments(layout), crowd, votes_per_item)
    elif stage == Stage.RELABEL:
        _plan_relabel(draft, dropped_votes(layout), crowd)
    else:
        experts = sorted(active.loc[active["role"] == "expert", "annotator_id"])
        _plan_expert(draft, layout, experts, counted_votes(layout, votes), min_agreement)
    return draft.entries

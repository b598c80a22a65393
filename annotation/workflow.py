"""The multi-stage annotation workflow of the eMotions protocol, run against Label Studio.

State lives in the dataset folder: `manifests/annotators.parquet` (groups, pseudonymous ids),
`manifests/assignments.parquet` (which group labels which video), `manifests/ls_projects.json`
(the Label Studio project of each stage and group) and `manifests/votes.parquet`, the system of
record. Label Studio holds only what annotators need to work.

Stages: `label` (each group labels its own share), `crosscheck` (each group's share re-labelled by
the next group: A->B, B->C, C->A), `relabel` (after personnel adjustments: the items that carried
votes of dropped annotators get as many new votes from annotators who have not seen them, e.g. the
third group), `expert` (items without
a clear majority or with weak agreement, shown with their earlier votes; the expert's decision is
final).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annotation.agreement import item_agreement
from annotation.allocation import allocate_annotators, assign_videos, balance_table, crosscheck_group
from annotation.labelstudio.client import LabelStudio
from annotation.labelstudio.config import ServerConfig
from annotation.labelstudio.interface import instructions, labeling_config, parse_result
from annotation.labelstudio.process import set_passwords
from annotation.plurality import TIE, unique_plurality
from annotation.roster import read_roster
from annotation.votes import write_votes
from emotions_data.layout import DatasetLayout
from emotions_data.schema import ANNOTATORS_SCHEMA, ASSIGNMENTS_SCHEMA, VOTES_SCHEMA, Stage
from emotions_data.storage import write_bytes_atomic, write_table_atomic
from emotions_data.taxonomy import Taxonomy

ACCOUNT_DOMAIN = "annotators.invalid"  # Label Studio logins are pseudonymous: e-mails stay in the roster


def account_email(annotator_id: str) -> str:
    """The Label Studio login of an annotator: lower case, because its login form lower-cases e-mails."""
    return f"{annotator_id.lower()}@{ACCOUNT_DOMAIN}"


# ---------------------------------------------------------------- state files


def _projects_path(layout: DatasetLayout) -> Path:
    return layout.manifests / "ls_projects.json"


def load_projects(layout: DatasetLayout) -> dict[str, dict]:
    """Project key ("label/A", "expert", ...) -> its Label Studio project id, title, stage and `items_of` group;
    empty before the first push."""
    path = _projects_path(layout)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_projects(layout: DatasetLayout, projects: dict[str, dict]) -> None:
    write_bytes_atomic(_projects_path(layout), json.dumps(projects, indent=2, sort_keys=True).encode())


def load_annotators(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/annotators.parquet` as a frame; ValueError before the first allocation."""
    path = layout.annotators
    if not path.exists():
        raise ValueError(f"{path}: no allocation yet (run 'emotions annotate allocate')")
    return pq.read_table(path).to_pandas()


def load_assignments(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/assignments.parquet` (video_id, group) as a frame; empty before the first allocation."""
    path = layout.assignments
    return pq.read_table(path).to_pandas() if path.exists() else pd.DataFrame(columns=["video_id", "group"])


def _ok_videos(layout: DatasetLayout) -> pd.DataFrame:
    frame = pq.read_table(layout.videos_manifest).to_pandas()
    return frame[frame["status"] == "ok"]


# ---------------------------------------------------------------- allocate


@dataclass(frozen=True)
class AllocationReport:
    groups: dict[str, list[str]]
    experts: list[str]
    balance: pd.DataFrame
    imbalance: float
    random_imbalance: float
    videos_per_group: dict[str, int]


def allocate(
    layout: DatasetLayout, roster_path: Path, n_groups: int = 3, seed: int = 0, client: LabelStudio | None = None
) -> AllocationReport:
    """Groups balanced on the roster's attributes, video shares, and (with a client) the accounts."""
    roster = read_roster(roster_path)
    people = roster.frame
    crowd = people[people["role"] == "annotator"]
    allocation = allocate_annotators(crowd, n_groups, seed)
    previous = load_annotators(layout) if (layout.annotators).exists() else None
    user_ids = dict(zip(previous["annotator_id"], previous["ls_user_id"], strict=True)) if previous is not None else {}
    if client is not None:
        user_ids = {a: client.ensure_user(account_email(a), a) for a in people["id"]}
    rows = [
        {
            "annotator_id": a, "role": role, "group": allocation.annotator_group.get(a), "active": True,
            "ls_user_id": user_ids.get(a),
        }
        for a, role in zip(people["id"], people["role"], strict=True)
    ]  # fmt: skip
    write_table_atomic(layout.annotators, pa.Table.from_pylist(rows, schema=ANNOTATORS_SCHEMA))
    existing = load_assignments(layout)
    shares = assign_videos(
        list(_ok_videos(layout)["video_id"]),
        n_groups,
        seed,
        dict(zip(existing["video_id"], existing["group"], strict=True)),
    )
    table = pa.Table.from_pylist(
        [{"video_id": v, "group": g} for v, g in sorted(shares.items())], schema=ASSIGNMENTS_SCHEMA
    )
    write_table_atomic(layout.assignments, table)
    groups: dict[str, list[str]] = {}
    for ann, group in sorted(allocation.annotator_group.items()):
        groups.setdefault(group, []).append(ann)
    return AllocationReport(
        groups=groups,
        experts=list(people.loc[people["role"] == "expert", "id"]),
        balance=balance_table(crowd, allocation.annotator_group),
        imbalance=allocation.imbalance,
        random_imbalance=allocation.random_imbalance,
        videos_per_group=dict(Counter(shares.values())),
    )


def counted_votes(layout: DatasetLayout, votes: pd.DataFrame) -> pd.DataFrame:
    """The votes that count: those of annotators not dropped after a consistency evaluation."""
    path = layout.annotators
    if not path.exists():
        return votes
    people = pq.read_table(path).to_pandas()
    dropped = set(people.loc[~people["active"], "annotator_id"])
    return votes[~votes["annotator_id"].isin(dropped)]


def read_counted_votes(layout: DatasetLayout, taxonomy: Taxonomy | None = None) -> pd.DataFrame | None:
    """The dataset's counted votes (labels mapped to the taxonomy), or None without a vote table."""
    from annotation.votes import read_votes

    return counted_votes(layout, read_votes(layout.votes, taxonomy)) if layout.votes.exists() else None


def dropped_votes(layout: DatasetLayout) -> pd.Series:
    """video_id -> how many label-stage votes of dropped annotators it lost (items that need relabelling)."""
    if not layout.votes.exists():
        return pd.Series(dtype=int)
    votes = pq.read_table(layout.votes).to_pandas()
    counted = counted_votes(layout, votes)
    lost = votes[(votes["stage"] == Stage.LABEL) & ~votes.index.isin(counted.index)]
    return lost.groupby("video_id").size()


def issue_credentials(layout: DatasetLayout, server_config: ServerConfig, data_dir: Path) -> Path:
    """One-time passwords for every active account, set in Label Studio and written to a 0600 CSV in the
    server's data folder (a secret, like the admin's credentials): the lead hands each person theirs."""
    import secrets

    people = load_annotators(layout)
    people = people[people["active"]]
    logins = {account_email(a): secrets.token_urlsafe(12) for a in people["annotator_id"]}
    set_passwords(server_config, logins)
    path = data_dir / "annotator-credentials.csv"
    text = "annotator_id,login,password\n" + "".join(
        f"{a},{account_email(a)},{logins[account_email(a)]}\n" for a in people["annotator_id"]
    )
    write_bytes_atomic(path, text.encode(), mode=0o600)
    return path


def set_active(layout: DatasetLayout, annotator_id: str, active: bool, group: str | None = None) -> None:
    """Drop (active=False) or move (group=...) an annotator after a consistency evaluation."""
    annotators = load_annotators(layout)
    if annotator_id not in set(annotators["annotator_id"]):
        raise ValueError(f"unknown annotator {annotator_id!r}")
    mask = annotators["annotator_id"] == annotator_id
    annotators.loc[mask, "active"] = active
    if group is not None:
        if group not in set(annotators["group"].dropna()):
            raise ValueError(f"unknown group {group!r}")
        annotators.loc[mask, "group"] = group
    table = pa.Table.from_pandas(annotators[ANNOTATORS_SCHEMA.names], schema=ANNOTATORS_SCHEMA, preserve_index=False)
    write_table_atomic(layout.annotators, table)


# ---------------------------------------------------------------- push


def _media_url(layout: DatasetLayout, media_path: str, document_root: Path) -> str:
    absolute = (layout.root / media_path).resolve()
    try:
        relative = absolute.relative_to(document_root.resolve())
    except ValueError:
        raise ValueError(
            f"{absolute} is not under the server's document root {document_root}: start the server with "
            "--document-root at (or above) the dataset folder"
        ) from None
    return f"/data/local-files/?d={relative.as_posix()}"


def expert_candidates(votes: pd.DataFrame, min_agreement: float) -> dict[str, str]:
    """video_id -> earlier votes as text, for items with no unique majority or agreement under the bar."""
    crowd = votes[votes["stage"] != Stage.EXPERT]
    counts = crowd.groupby(["video_id", "label"]).size().unstack(fill_value=0)
    matrix = counts.to_numpy()
    agree = item_agreement(matrix)
    tied = unique_plurality(matrix) == TIE
    weak = tied | (np.nan_to_num(agree, nan=0.0) < min_agreement)
    result = {}
    for vid, row in zip(counts.index[weak], matrix[weak], strict=True):
        parts = [f"{lab}: {n}" for lab, n in sorted(zip(counts.columns, row, strict=True), key=lambda t: -t[1]) if n]
        result[str(vid)] = ", ".join(parts)
    return result


@dataclass
class PushReport:
    imported: dict[str, int] = field(default_factory=dict)  # project key -> new tasks


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
    """Create or update the stage's projects and import the tasks they lack (idempotent). `stage` is a Stage or
    its value. Raises ValueError for an unknown stage, a server without a document root or media outside it."""
    try:
        stage = Stage(stage)
    except ValueError:
        raise ValueError(f"unknown stage {stage!r} (choose: {', '.join(Stage)})") from None
    document_root = client.config.document_root
    if document_root is None:
        raise ValueError("the Label Studio server has no document root: start it with --document-root")
    name = dataset_name or layout.root.resolve().name
    videos = _ok_videos(layout).set_index("video_id")
    assignments = load_assignments(layout)
    groups = sorted(assignments["group"].unique())
    # key -> (title, items_of, video ids, earlier votes shown to the expert, annotations per task)
    plan: dict[str, tuple[str, str | None, list[str], dict[str, str], int]] = {}
    if stage in (Stage.LABEL, Stage.CROSSCHECK):
        for group in groups:
            ids = sorted(assignments.loc[assignments["group"] == group, "video_id"])
            by = group if stage == Stage.LABEL else crosscheck_group(group, groups)
            title = f"{name} · {stage} · group {by}" + ("" if stage == Stage.LABEL else f" (items of {group})")
            plan[f"{stage}/{group}"] = (title, group, ids, {}, votes_per_item)
    elif stage == Stage.RELABEL:
        missing = dropped_votes(layout)
        for group in groups:
            ids = sorted(set(missing.index) & set(assignments.loc[assignments["group"] == group, "video_id"]))
            k = int(missing.loc[ids].max()) if ids else 1
            plan[f"{stage}/{group}"] = (f"{name} · {stage} (items of {group})", group, ids, {}, k)
    else:
        votes = pq.read_table(layout.votes).to_pandas() if layout.votes.exists() else pd.DataFrame()
        needs = pq.read_table(layout.needs_expert).to_pandas() if layout.needs_expert.exists() else pd.DataFrame()
        votes = counted_votes(layout, votes) if len(votes) else votes
        previous = expert_candidates(votes, min_agreement) if len(votes) else {}
        for row in needs.itertuples() if len(needs) else []:
            previous.setdefault(row.video_id, row.votes or "")
        plan[Stage.EXPERT] = (f"{name} · {Stage.EXPERT}", None, sorted(previous), previous, 1)

    projects = load_projects(layout)
    report = PushReport()
    media_dir = str((layout.root / "media").resolve())
    for key, (title, items_of, ids, previous_votes, k) in plan.items():
        known = projects.get(key)
        project = client.project(known["id"]) if known else None
        config, guide = labeling_config(taxonomy, stage == Stage.EXPERT), instructions(taxonomy)
        if project is None:
            project = client.create_project(title, config, guide, k)
        else:  # an existing project follows the current taxonomy, instructions and vote count
            changed = {
                key: value
                for key, value in (("title", title), ("label_config", config), ("expert_instruction", guide))
                if project.get(key) != value
            }
            if changed:
                client.call("PATCH", f"/api/projects/{project['id']}", changed)
            if project.get("maximum_annotations") != k:
                client.set_maximum_annotations(project["id"], k)
        projects[key] = {"id": project["id"], "title": title, "stage": stage, "items_of": items_of}
        _save_projects(layout, projects)
        client.ensure_local_storage(project["id"], media_dir)
        present = {t["data"].get("video_id") for t in client.tasks(project["id"])}
        tasks = [
            {
                "data": {
                    "video": _media_url(layout, videos.loc[v, "media_path"], Path(document_root)), "video_id": v,
                    "stage": stage, "items_of": items_of or "",
                    **({"previous_votes": previous_votes.get(v, "")} if stage == Stage.EXPERT else {}),
                }
            }
            for v in ids
            if v not in present and v in videos.index
        ]  # fmt: skip
        report.imported[key] = client.import_tasks(project["id"], tasks)
    return report


# ---------------------------------------------------------------- pull


@dataclass
class PullReport:
    n_votes: int = 0  # in the table after the pull
    n_new: int = 0
    n_updated: int = 0
    skipped: list[str] = field(default_factory=list)  # "video_id by annotator (task N)" of cancelled annotations
    outside_taxonomy: list[str] = field(default_factory=list)
    unknown_videos: list[str] = field(default_factory=list)
    unknown_annotators: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return len(self.skipped) + len(self.outside_taxonomy) + len(self.unknown_videos) + len(self.unknown_annotators)


def _timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(microsecond=0) if text else None


def pull(layout: DatasetLayout, client: LabelStudio, taxonomy: Taxonomy) -> PullReport:
    """Export every project (snapshot export) into the vote table. Idempotent: a vote is keyed by its
    Label Studio annotation id, so re-pulling replaces rather than duplicates. Nothing is written
    unless every export succeeded."""
    annotators = load_annotators(layout)
    by_user = {int(u): (a, g) for a, g, u in annotators[["annotator_id", "group", "ls_user_id"]].dropna(
        subset=["ls_user_id"]).itertuples(index=False)}  # fmt: skip
    known_videos = set(pq.read_table(layout.videos_manifest, columns=["video_id"])["video_id"].to_pylist())
    report = PullReport()
    pulled: list[dict] = []
    for key, project in sorted(load_projects(layout).items()):
        for task in client.export_snapshot(project["id"]):
            vid = (task.get("data") or {}).get("video_id")
            for ann in task.get("annotations", []):
                who = by_user.get(int(ann.get("completed_by") or -1))
                where = f"{vid} (task {task['id']}, annotation {ann['id']}, project {key})"
                if vid not in known_videos:
                    report.unknown_videos.append(where)
                    continue
                if who is None:
                    report.unknown_annotators.append(f"user {ann.get('completed_by')} on {where}")
                    continue
                if ann.get("was_cancelled"):
                    report.skipped.append(f"{where} by {who[0]}")
                    continue
                label, unsure = parse_result(ann.get("result") or [])
                canonical = taxonomy.aliases.get(label, label) if label else None
                if canonical not in taxonomy.classes:
                    report.outside_taxonomy.append(f"{label!r} on {where} by {who[0]}")
                    continue
                pulled.append(
                    {
                        "video_id": vid, "annotator_id": who[0], "stage": project["stage"], "group": who[1],
                        "label": canonical, "unsure": unsure, "lead_time_s": ann.get("lead_time"),
                        "created_at": _timestamp(ann.get("created_at")), "ls_task_id": int(task["id"]),
                        "ls_annotation_id": int(ann["id"]),
                    }
                )  # fmt: skip
    old = pq.read_table(layout.votes).to_pandas() if layout.votes.exists() else pd.DataFrame(columns=VOTES_SCHEMA.names)
    new = pd.DataFrame(pulled, columns=VOTES_SCHEMA.names)
    old_ids = set(old["ls_annotation_id"].dropna().astype(int))
    report.n_new = int((~new["ls_annotation_id"].isin(old_ids)).sum())
    merged = pd.concat([old[~old["ls_annotation_id"].isin(set(new["ls_annotation_id"]))], new], ignore_index=True)
    report.n_updated = len(new) - report.n_new
    merged = merged.sort_values(["stage", "video_id", "ls_annotation_id"], kind="stable").reset_index(drop=True)
    write_votes(layout.votes, merged)
    report.n_votes = len(merged)
    return report

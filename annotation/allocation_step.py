"""The allocation step (I/O): the roster's annotators split into balanced groups (`annotation.allocation`), written
to `manifests/annotators.parquet` with their Label Studio accounts, and the dataset's videos shared out among the
groups (`manifests/assignments.parquet`: which group labels which video)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annotation.allocation import allocate_annotators, assign_videos, balance_table, features, group_names, imbalance
from annotation.annotators import account_email, load_annotators
from annotation.labelstudio.client import LabelStudio
from annotation.roster import read_roster
from annotation.server_record import check_server
from emotions_data.dataset_lock import writes_dataset
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.schema import ANNOTATORS_SCHEMA, ASSIGNMENTS_SCHEMA
from emotions_data.storage import write_table_atomic


def load_assignments(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/assignments.parquet` (video_id, group) as a frame; empty before the first allocation."""
    path = layout.assignments
    return pq.read_table(path).to_pandas() if path.exists() else pd.DataFrame(columns=["video_id", "group"])


def ok_videos(layout: DatasetLayout) -> pd.DataFrame:
    """The videos manifest's rows with status ok: the clips there are to share out and label."""
    frame = read_versioned_table(layout.videos_manifest).to_pandas()
    return frame[frame["status"] == "ok"]


@dataclass(frozen=True)
class AllocationReport:
    """What `allocate` did: the groups, the experts, and how balanced the groups are on the roster's attributes;
    on a dataset allocated before, who kept their group (and who stays dropped) and who was placed anew."""

    groups: dict[str, list[str]]
    experts: list[str]
    balance: pd.DataFrame
    imbalance: float
    random_imbalance: float
    videos_per_group: dict[str, int]
    kept: list[str] = field(default_factory=list)  # annotators whose group and status on record were kept
    dropped: list[str] = field(default_factory=list)  # of those, the ones dropped: they stay dropped
    placed: list[str] = field(default_factory=list)  # roster members new to an earlier allocation


def _kept_groups(layout: DatasetLayout, previous: pd.DataFrame, crowd: pd.DataFrame, n_groups: int) -> dict[str, str]:
    """annotator -> group for a dataset allocated before: the groups on record, and each annotator new to them put
    in the smallest group (ties by name), in roster order. ValueError naming the file when `n_groups` is not the
    number of groups on record (a change would move videos already shared out, or leave a group without any)."""
    on_record = sorted(set(previous["group"].dropna()))
    if len(on_record) != n_groups:
        raise ValueError(
            f"{layout.annotators}: the dataset's annotators are in {len(on_record)} group(s) "
            f"({', '.join(on_record)}); --groups {n_groups} would move videos already shared out or leave a group "
            f"without videos: give --groups {len(on_record)}"
        )
    mapping = {a: g for a, g in zip(previous["annotator_id"], previous["group"], strict=True) if isinstance(g, str)}
    sizes = Counter(mapping[a] for a in crowd["id"] if a in mapping)
    for ann in crowd["id"]:
        if ann not in mapping:
            mapping[ann] = min(on_record, key=lambda g: (sizes[g], g))
            sizes[mapping[ann]] += 1
    return {a: mapping[a] for a in crowd["id"]}


def _rows(people: pd.DataFrame, groups: dict[str, str], previous: pd.DataFrame | None, user_ids: dict) -> list[dict]:
    """The rows of `manifests/annotators.parquet`: the roster's people (a dropped one stays dropped), then anyone on
    record who has left the roster, unchanged (their votes still name them)."""
    active = dict(zip(previous["annotator_id"], previous["active"], strict=True)) if previous is not None else {}
    rows = [
        {"annotator_id": a, "role": role, "group": groups.get(a), "active": bool(active.get(a, True)),
         "ls_user_id": None if pd.isna(user_ids.get(a)) else int(user_ids[a])}
        for a, role in zip(people["id"], people["role"], strict=True)
    ]  # fmt: skip
    if previous is not None:
        gone = previous[~previous["annotator_id"].isin(set(people["id"]))]
        rows += [{**r, "ls_user_id": None if pd.isna(r["ls_user_id"]) else int(r["ls_user_id"])}
                 for r in gone[ANNOTATORS_SCHEMA.names].to_dict("records")]  # fmt: skip
    return rows


@writes_dataset("annotate allocate")
def allocate(
    layout: DatasetLayout, roster_path: Path, n_groups: int = 3, seed: int = 0, client: LabelStudio | None = None
) -> AllocationReport:
    """Groups balanced on the roster's attributes, video shares, and (with a client) the accounts. Safe to run
    again: on a dataset allocated before, every annotator keeps their group and status (a dropped one stays
    dropped; `annotate move` brings one back), roster members new to it go to the smallest groups, videos keep
    their group, and the accounts are found again, not made twice. Raises ValueError for a bad roster, or a
    number of groups other than the one on record (naming the file)."""
    roster = read_roster(roster_path)
    people = roster.frame
    crowd = people[people["role"] == "annotator"]
    allocation = allocate_annotators(crowd, n_groups, seed)
    previous = load_annotators(layout) if layout.annotators.exists() else None
    groups_of = allocation.annotator_group
    if previous is not None and previous["group"].notna().any():
        groups_of = _kept_groups(layout, previous, crowd, n_groups)
    user_ids = dict(zip(previous["annotator_id"], previous["ls_user_id"], strict=True)) if previous is not None else {}
    if client is not None:
        check_server(layout, client)
        user_ids = {a: client.ensure_user(account_email(a), a) for a in people["id"]}
    rows = _rows(people, groups_of, previous, user_ids)
    write_table_atomic(layout.annotators, pa.Table.from_pylist(rows, schema=ANNOTATORS_SCHEMA))
    existing = load_assignments(layout)
    shares = assign_videos(
        list(ok_videos(layout)["video_id"]),
        n_groups,
        seed,
        dict(zip(existing["video_id"], existing["group"], strict=True)),
    )
    table = pa.Table.from_pylist(
        [{"video_id": v, "group": g} for v, g in sorted(shares.items())], schema=ASSIGNMENTS_SCHEMA
    )
    write_table_atomic(layout.assignments, table)
    groups: dict[str, list[str]] = {}
    for ann, group in sorted(groups_of.items()):
        groups.setdefault(group, []).append(ann)
    names = group_names(n_groups)
    kept = groups_of is not allocation.annotator_group  # an allocation on record was kept
    before = set(previous["annotator_id"]) if kept else set()
    return AllocationReport(
        groups=groups,
        experts=list(people.loc[people["role"] == "expert", "id"]),
        balance=balance_table(crowd, groups_of),
        imbalance=imbalance(features(crowd), np.array([names.index(groups_of[a]) for a in crowd["id"]]), n_groups)
        if kept
        else allocation.imbalance,
        random_imbalance=allocation.random_imbalance,
        videos_per_group=dict(Counter(shares.values())),
        kept=sorted(a for a in crowd["id"] if a in before),
        dropped=sorted(r["annotator_id"] for r in rows if not r["active"]),
        placed=sorted(a for a in crowd["id"] if kept and a not in before),
    )

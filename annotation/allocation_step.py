"""The allocation step (I/O): the roster's annotators split into balanced groups (`annotation.allocation`), written
to `manifests/annotators.parquet` with their Label Studio accounts, and the dataset's videos shared out among the
groups (`manifests/assignments.parquet`: which group labels which video)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annotation.allocation import allocate_annotators, assign_videos, balance_table
from annotation.annotators import account_email, load_annotators
from annotation.labelstudio.client import LabelStudio
from annotation.roster import read_roster
from annotation.server_record import check_server
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
    """What `allocate` did: the groups, the experts, and how balanced the groups are on the roster's attributes."""

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
        check_server(layout, client)
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

"""The dataset's annotators (`manifests/annotators.parquet`, ANNOTATORS_SCHEMA): each roster member's group, role,
whether their votes count, and their Label Studio account. Label Studio logins are pseudonymous: e-mails stay in
the roster (`annotation.roster`)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.dataset_lock import writes_dataset
from emotions_data.layout import DatasetLayout
from emotions_data.schema import ANNOTATORS_SCHEMA
from emotions_data.storage import write_table_atomic

ACCOUNT_DOMAIN = "annotators.invalid"  # Label Studio logins are pseudonymous: e-mails stay in the roster


def account_email(annotator_id: str) -> str:
    """The Label Studio login of an annotator: lower case, because its login form lower-cases e-mails."""
    return f"{annotator_id.lower()}@{ACCOUNT_DOMAIN}"


def load_annotators(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/annotators.parquet` as a frame; ValueError before the first allocation."""
    path = layout.annotators
    if not path.exists():
        raise ValueError(f"{path}: no allocation yet (run 'emotions annotate allocate')")
    return pq.read_table(path).to_pandas()


def save_annotators(layout: DatasetLayout, people: pd.DataFrame) -> None:
    """Write `people` (every ANNOTATORS_SCHEMA column) as `manifests/annotators.parquet`, atomically."""
    table = pa.Table.from_pandas(people[ANNOTATORS_SCHEMA.names], schema=ANNOTATORS_SCHEMA, preserve_index=False)
    write_table_atomic(layout.annotators, table)


def account_ids(layout: DatasetLayout, annotators: list[str]) -> dict[str, int]:
    """annotator id -> Label Studio user id; ValueError for one allocated without an account."""
    people = load_annotators(layout).set_index("annotator_id")
    missing = [a for a in annotators if pd.isna(people.loc[a, "ls_user_id"])]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no Label Studio account (allocated with --no-accounts)")
    return {a: int(people.loc[a, "ls_user_id"]) for a in annotators}


@writes_dataset("annotate move")
def set_active(layout: DatasetLayout, annotator_id: str, active: bool, group: str | None = None) -> None:
    """Drop (active=False) or move (group=...) an annotator after a consistency evaluation. Votes already cast keep
    the group of the project they were cast in; a move applies to the projects pushed after it."""
    annotators = load_annotators(layout)
    if annotator_id not in set(annotators["annotator_id"]):
        raise ValueError(f"unknown annotator {annotator_id!r}")
    mask = annotators["annotator_id"] == annotator_id
    annotators.loc[mask, "active"] = active
    if group is not None:
        if group not in set(annotators["group"].dropna()):
            raise ValueError(f"unknown group {group!r}")
        annotators.loc[mask, "group"] = group
    save_annotators(layout, annotators)

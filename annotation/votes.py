"""Reading and writing the long vote table (`manifests/votes.parquet`, or any CSV/Parquet file with
`video_id`, `annotator_id`, `label`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from emotions_data.schema import VOTES_SCHEMA
from emotions_data.storage import write_table_atomic
from emotions_data.taxonomy import Taxonomy

REQUIRED = ("video_id", "annotator_id", "label")


def read_votes(path: Path, taxonomy: Taxonomy | None = None, stage: str | None = None) -> pd.DataFrame:
    """The votes in `path`, optionally of one stage, labels mapped to the taxonomy's spelling.
    Raises ValueError naming the file (and the first bad row) when the table is unusable."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype={"video_id": str, "annotator_id": str, "label": str})
        else:
            frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable vote table: {' '.join(str(exc).split())}") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if stage is not None:
        if "stage" not in frame.columns:
            raise ValueError(f"{path}: --stage given but the table has no 'stage' column")
        frame = frame[frame["stage"] == stage]
    empty = frame[list(REQUIRED)].isna().any(axis=1)
    if empty.any():
        row = int(empty.to_numpy().argmax())
        raise ValueError(f"{path}: row {row + 2 if path.suffix.lower() == '.csv' else row}: empty {REQUIRED}")
    frame = frame.astype({c: str for c in REQUIRED})
    if taxonomy is not None:
        bad = sorted({lab for lab in frame["label"].unique() if taxonomy.aliases.get(lab, lab) not in taxonomy.classes})
        if bad:
            raise ValueError(f"{path}: label(s) outside the {taxonomy.name} taxonomy: {', '.join(bad)}")
        frame["label"] = frame["label"].map(lambda lab: taxonomy.aliases.get(lab, lab))
    return frame.reset_index(drop=True)


def write_votes(path: Path, votes: pd.DataFrame) -> None:
    """Write the vote table atomically with VOTES_SCHEMA (every column of it must be present)."""
    table = pa.Table.from_pandas(votes[VOTES_SCHEMA.names], schema=VOTES_SCHEMA, preserve_index=False)
    write_table_atomic(path, table)

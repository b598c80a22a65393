"""Reading and writing the long vote table (`manifests/votes.parquet`, or any CSV/Parquet file with
`video_id`, `annotator_id`, `label`).

A table from outside is cleaned the same way as the toolkit's own: blanks around ids and labels are stripped (a
spreadsheet that saved `Fear ` must not make a seventh class), votes that no longer count (`status` deleted or
superseded) are left out, and one annotator voting twice on one item in one stage is refused, naming them (by then
they may have seen other votes, and a second vote can "decide" a tie that belongs to the expert)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from emotions_data.schema import VOTES_SCHEMA, VoteStatus
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
    for column in REQUIRED:
        frame[column] = frame[column].str.strip()
    blank = (frame[list(REQUIRED)] == "").any(axis=1)
    if blank.any():
        row = int(blank.to_numpy().argmax())
        raise ValueError(f"{path}: row {row + 2 if path.suffix.lower() == '.csv' else row}: blank {REQUIRED}")
    if "status" in frame.columns:  # deleted annotations and superseded expert decisions stay on record only
        frame = frame[frame["status"].isna() | (frame["status"] == VoteStatus.KEPT)]
    _refuse_double_votes(path, frame)
    if taxonomy is not None:
        bad = sorted({lab for lab in frame["label"].unique() if taxonomy.aliases.get(lab, lab) not in taxonomy.classes})
        if bad:
            raise ValueError(f"{path}: label(s) outside the {taxonomy.name} taxonomy: {', '.join(bad)}")
        frame["label"] = frame["label"].map(lambda lab: taxonomy.aliases.get(lab, lab))
    return frame.reset_index(drop=True)


def _refuse_double_votes(path: Path, frame: pd.DataFrame) -> None:
    """ValueError naming the annotators who voted more than once on one item (in one stage and expert round, when the
    table says)."""
    key = ["video_id", "annotator_id"] + [c for c in ("stage", "round") if c in frame.columns]
    repeated = frame.duplicated(subset=key, keep=False)  # hashing: far cheaper than grouping a million votes
    if not repeated.any():
        return
    counts = frame[repeated].groupby(key, dropna=False).size()
    twice = counts[counts > 1]
    if len(twice):
        shown = [f"{' / '.join(str(p) for p in k)} ({n} votes)" for k, n in twice.head(5).items()]
        more = f" and {len(twice) - 5} more" if len(twice) > 5 else ""
        raise ValueError(
            f"{path}: {len(twice)} time(s) an annotator voted more than once on one item ({' / '.join(key)}): "
            f"{'; '.join(shown)}{more}; keep one vote each (the toolkit's pull counts the first one cast)"
        )


def write_votes(path: Path, votes: pd.DataFrame) -> None:
    """Write the vote table atomically with VOTES_SCHEMA (every column of it must be present)."""
    table = pa.Table.from_pandas(votes[VOTES_SCHEMA.names], schema=VOTES_SCHEMA, preserve_index=False)
    write_table_atomic(path, table)

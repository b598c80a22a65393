"""Reading and writing the long vote table (`manifests/votes.parquet`, or any CSV/Parquet file with
`video_id`, `annotator_id`, `label`).

A table from outside is cleaned the same way as the toolkit's own: blanks around ids and labels are stripped (a
spreadsheet that saved `Fear ` must not make a seventh class), votes that no longer count (`status` deleted or
superseded) are left out, and one annotator voting twice on one item in one stage is refused, naming them (by then
they may have seen other votes, and a second vote can "decide" a tie that belongs to the expert).

The dataset's own table is read whole by `read_vote_table` (deleted and superseded votes too, for the pull and the
push plan); `counted_votes` is the rule of which votes count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.layout import DatasetLayout
from emotions_data.schema import VOTES_SCHEMA, Stage, VoteStatus
from emotions_data.storage import write_table_atomic
from emotions_data.taxonomy import Taxonomy

REQUIRED = ("video_id", "annotator_id", "label")
ITEM, ANNOTATOR, LABEL = REQUIRED


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


def read_vote_table(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/votes.parquet` with every VOTES_SCHEMA column (a 1.0 table's missing ones empty; its votes count
    as kept); an empty table before the first pull."""
    if not layout.votes.exists():
        return pd.DataFrame({name: pd.Series(dtype=object) for name in VOTES_SCHEMA.names})
    frame = pq.read_table(layout.votes).to_pandas()
    for name in VOTES_SCHEMA.names:
        if name not in frame.columns:
            frame[name] = None
    frame["status"] = frame["status"].fillna(VoteStatus.KEPT)
    frame["round"] = frame["round"].fillna(1)
    return frame[VOTES_SCHEMA.names]


def counted_votes(layout: DatasetLayout, votes: pd.DataFrame) -> pd.DataFrame:
    """The votes that count: kept ones (not deleted in Label Studio, not an expert's superseded decision) of
    annotators not dropped after a consistency evaluation."""
    if "status" in votes.columns:
        votes = votes[votes["status"].isna() | (votes["status"] == VoteStatus.KEPT)]
    path = layout.annotators
    if not path.exists():
        return votes
    people = pq.read_table(path).to_pandas()
    dropped = set(people.loc[~people["active"], "annotator_id"])
    return votes[~votes["annotator_id"].isin(dropped)]


def read_counted_votes(layout: DatasetLayout, taxonomy: Taxonomy | None = None) -> pd.DataFrame | None:
    """The dataset's counted votes (labels mapped to the taxonomy), or None without a vote table."""
    return counted_votes(layout, read_votes(layout.votes, taxonomy)) if layout.votes.exists() else None


def dropped_votes(layout: DatasetLayout) -> pd.Series:
    """video_id -> how many label-stage votes of dropped annotators it lost (items that need relabelling)."""
    if not layout.votes.exists():
        return pd.Series(dtype=int)
    votes = read_vote_table(layout)
    kept = votes[votes["status"] == VoteStatus.KEPT]
    counted = counted_votes(layout, kept)
    lost = kept[(kept["stage"] == Stage.LABEL) & ~kept.index.isin(counted.index)]
    return lost.groupby("video_id").size()


def vote_history_path(layout: DatasetLayout) -> Path:
    """`manifests/vote_history.parquet` (VOTE_HISTORY_SCHEMA): every change to a vote on record."""
    return layout.vote_history


# ---------------------------------------------------------------- the item x label count matrix


@dataclass(frozen=True)
class EncodedVotes:
    """Votes as integer codes: one entry per vote."""

    item: np.ndarray  # (V,) index into items
    annotator: np.ndarray  # (V,) index into annotators
    label: np.ndarray  # (V,) index into labels
    items: list[str]
    annotators: list[str]
    labels: list[str]

    @property
    def counts(self) -> np.ndarray:
        """N: (items, labels) vote counts."""
        n_labels = len(self.labels)
        flat = np.bincount(self.item * n_labels + self.label, minlength=len(self.items) * n_labels)
        return flat.reshape(len(self.items), n_labels).astype(np.int64)


def _as_text(column: pd.Series) -> pd.Series:
    """The column as strings (ids typed as numbers in a spreadsheet become their text); string columns as they are."""
    return column if pd.api.types.is_string_dtype(column) else column.astype(str)


def encode(votes: pd.DataFrame, labels: list[str] | None = None) -> EncodedVotes:
    """Integer-code a long table with `video_id`, `annotator_id`, `label` columns. `labels` fixes
    the category order (e.g. a taxonomy); otherwise the sorted distinct labels are used."""
    missing = {ITEM, ANNOTATOR, LABEL} - set(votes.columns)
    if missing:
        raise ValueError(f"vote table lacks column(s): {', '.join(sorted(missing))}")
    frame = votes[[ITEM, ANNOTATOR, LABEL]].dropna()
    label_codes, label_names = pd.factorize(_as_text(frame[LABEL]))
    label_names = [str(name) for name in label_names]
    if labels is None:
        labels = sorted(label_names)
    unknown = sorted(set(label_names) - set(labels))
    if unknown:
        raise ValueError(f"label(s) outside the taxonomy: {', '.join(unknown)}")
    item_codes, items = pd.factorize(_as_text(frame[ITEM]), sort=True)
    annotator_codes, annotators = pd.factorize(_as_text(frame[ANNOTATOR]), sort=True)
    label_index = {name: i for i, name in enumerate(labels)}
    to_label = np.array([label_index[name] for name in label_names], dtype=np.int64)
    return EncodedVotes(
        item=item_codes.astype(np.int64),
        annotator=annotator_codes.astype(np.int64),
        label=to_label[label_codes] if len(label_codes) else np.empty(0, np.int64),
        items=[str(i) for i in items.tolist()],
        annotators=[str(a) for a in annotators.tolist()],
        labels=list(labels),
    )

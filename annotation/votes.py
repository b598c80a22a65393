"""Reading and writing the long vote table (`manifests/votes.parquet`, or any CSV/Parquet file with
`video_id`, `annotator_id`, `label`).

A table from outside is cleaned the same way as the toolkit's own: blanks around ids and labels are stripped (a
spreadsheet that saved `Fear ` must not make a seventh class), votes that no longer count (`status` deleted or
superseded) are left out, and one annotator voting twice on one item in one stage is refused, naming them (by then
they may have seen other votes, and a second vote can "decide" a tie that belongs to the expert).

The dataset's own table is read whole by `read_vote_table` (deleted and superseded votes too, for the pull and the
push plan), through the same reader and its checks. This module owns the rule of which votes count (`is_kept`,
`kept_votes`, `counted_votes`), the label spelling (`canonical_labels`) and the item x label count matrix (`encode`,
`count_matrix`)."""

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


def _load(path: Path) -> pd.DataFrame:
    """The table in `path` (CSV by its suffix, else Parquet), ids and labels of a CSV as text."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={ITEM: str, ANNOTATOR: str, LABEL: str})
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable vote table: {' '.join(str(exc).split())}") from exc


def _first_bad_row(path: Path, bad: pd.Series, what: str) -> None:
    """ValueError naming the first row flagged in `bad` (a CSV row by its line number) and `what` is wrong there."""
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ValueError(f"{path}: row {row + 2 if path.suffix.lower() == '.csv' else row}: {what} {REQUIRED}")


def read_votes(
    path: Path, taxonomy: Taxonomy | None = None, stage: str | None = None, *, every_status: bool = False
) -> pd.DataFrame:
    """The votes in `path`, optionally of one stage, labels mapped to the taxonomy's spelling (`canonical_labels`).
    Only kept votes (`is_kept`) unless `every_status`: deleted and superseded ones stay on record, and the pull and
    the push plan read them too. Raises ValueError naming the file (and the first bad row) when the table is
    unusable: unreadable, a required column missing, an empty or blank id or label, an annotator with two kept votes
    on one item in one stage (and expert round), a label outside `taxonomy`."""
    path = Path(path)
    frame = _load(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if stage is not None:
        if "stage" not in frame.columns:
            raise ValueError(f"{path}: --stage given but the table has no 'stage' column")
        frame = frame[frame["stage"] == stage]
    _first_bad_row(path, frame[list(REQUIRED)].isna().any(axis=1), "empty")
    frame = frame.astype({c: str for c in REQUIRED})
    for column in REQUIRED:
        frame[column] = frame[column].str.strip()
    _first_bad_row(path, (frame[list(REQUIRED)] == "").any(axis=1), "blank")
    kept = is_kept(frame)
    _refuse_double_votes(path, frame[kept])
    if not every_status:
        frame = frame[kept]
    if taxonomy is not None:
        frame["label"] = canonical_labels(frame["label"], taxonomy, str(path))
    return frame.reset_index(drop=True)


def canonical_labels(labels: pd.Series, taxonomy: Taxonomy, where: str) -> pd.Series:
    """`labels` in the taxonomy's spelling (`Taxonomy.lookup`: an alias becomes its class). Raises ValueError
    naming `where` and every label outside the taxonomy."""
    spelling = {label: taxonomy.lookup(label) for label in labels.unique()}
    bad = sorted(label for label, name in spelling.items() if name is None)
    if bad:
        raise ValueError(f"{where}: label(s) outside the {taxonomy.name} taxonomy: {', '.join(bad)}")
    return labels.map(spelling)


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
    """`manifests/votes.parquet` whole (`read_votes` with `every_status`, so with its checks) with every VOTES_SCHEMA
    column (a 1.0 table's missing ones empty; its votes count as kept); an empty table before the first pull."""
    if not layout.votes.exists():
        return pd.DataFrame({name: pd.Series(dtype=object) for name in VOTES_SCHEMA.names})
    frame = read_votes(layout.votes, every_status=True)
    for name in VOTES_SCHEMA.names:
        if name not in frame.columns:
            frame[name] = None
    frame["status"] = frame["status"].fillna(VoteStatus.KEPT)
    frame["round"] = frame["round"].fillna(1)
    return frame[VOTES_SCHEMA.names]


# ---------------------------------------------------------------- which votes count


def is_kept(votes: pd.DataFrame) -> pd.Series:
    """Per vote: is it kept, i.e. not deleted in Label Studio and not an expert's superseded decision (a table without
    `status`, or a vote without one, is from before statuses existed: kept)."""
    if "status" not in votes.columns:
        return pd.Series(True, index=votes.index)
    return votes["status"].isna() | (votes["status"] == VoteStatus.KEPT)


def kept_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The kept votes (`is_kept`), dropped annotators' included (the consistency evaluation is about them)."""
    return votes[is_kept(votes)]


def crowd_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The votes of every stage but the expert's: the crowd, whose agreement is measured (an expert's vote decides
    an item rather than votes on it). A table without `stage` is all crowd."""
    return votes[votes["stage"] != Stage.EXPERT] if "stage" in votes.columns else votes


def dropped_annotators(layout: DatasetLayout) -> set[str]:
    """The annotators dropped after a consistency evaluation (inactive in the roster); none without a roster."""
    if not layout.annotators.exists():
        return set()
    people = pq.read_table(layout.annotators, columns=["annotator_id", "active"]).to_pandas()
    return set(people.loc[~people["active"], "annotator_id"])


def counted_votes(layout: DatasetLayout, votes: pd.DataFrame) -> pd.DataFrame:
    """The votes that count: kept ones (`is_kept`) of annotators not dropped after a consistency evaluation
    (`dropped_annotators`)."""
    kept = kept_votes(votes)
    return kept[~kept["annotator_id"].isin(dropped_annotators(layout))]


def read_counted_votes(layout: DatasetLayout, taxonomy: Taxonomy | None = None) -> pd.DataFrame | None:
    """The dataset's counted votes (labels mapped to the taxonomy), or None without a vote table."""
    return counted_votes(layout, read_votes(layout.votes, taxonomy)) if layout.votes.exists() else None


def dropped_votes(layout: DatasetLayout) -> pd.Series:
    """video_id -> how many label-stage votes of dropped annotators it lost (items that need relabelling)."""
    if not layout.votes.exists():
        return pd.Series(dtype=int)
    kept = kept_votes(read_vote_table(layout))
    dropped = kept["annotator_id"].isin(dropped_annotators(layout))
    return kept[(kept["stage"] == Stage.LABEL) & dropped].groupby("video_id").size()


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


def encode(votes: pd.DataFrame, labels: list[str] | None = None, *, annotators: bool = True) -> EncodedVotes:
    """Integer-code a long table with `video_id`, `annotator_id`, `label` columns. `labels` fixes
    the category order (e.g. a taxonomy); otherwise the sorted distinct labels are used. Without `annotators` the
    table needs no `annotator_id` (every vote gets annotator code 0, and `annotators` is empty). Raises ValueError
    for a missing column or a label outside `labels`."""
    columns = [ITEM, ANNOTATOR, LABEL] if annotators else [ITEM, LABEL]
    missing = set(columns) - set(votes.columns)
    if missing:
        raise ValueError(f"vote table lacks column(s): {', '.join(sorted(missing))}")
    frame = votes[columns].dropna()
    label_codes, label_names = pd.factorize(_as_text(frame[LABEL]))
    label_names = [str(name) for name in label_names]
    if labels is None:
        labels = sorted(label_names)
    unknown = sorted(set(label_names) - set(labels))
    if unknown:
        raise ValueError(f"label(s) outside the taxonomy: {', '.join(unknown)}")
    item_codes, items = pd.factorize(_as_text(frame[ITEM]), sort=True)
    annotator_codes, names = (
        pd.factorize(_as_text(frame[ANNOTATOR]), sort=True) if annotators else (np.zeros(len(frame)), pd.Index([]))
    )
    label_index = {name: i for i, name in enumerate(labels)}
    to_label = np.array([label_index[name] for name in label_names], dtype=np.int64)
    return EncodedVotes(
        item=item_codes.astype(np.int64),
        annotator=annotator_codes.astype(np.int64),
        label=to_label[label_codes] if len(label_codes) else np.empty(0, np.int64),
        items=[str(i) for i in items.tolist()],
        annotators=[str(a) for a in names.tolist()],
        labels=list(labels),
    )


def count_matrix(votes: pd.DataFrame, labels: list[str] | None = None) -> pd.DataFrame:
    """The item x label count matrix of a long vote table as a frame: index `video_id` (sorted), columns the labels
    (`labels`' order, else the sorted distinct labels), int64 vote counts; `annotator_id` is not needed. ValueError
    as for `encode`."""
    enc = encode(votes, labels, annotators=False)
    return pd.DataFrame(enc.counts, index=pd.Index(enc.items, name=ITEM), columns=pd.Index(enc.labels, name=LABEL))

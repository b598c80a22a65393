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

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from emotions_data.layout import DatasetLayout
from emotions_data.schema import VOTES_SCHEMA, Stage, VoteStatus
from emotions_data.storage import recover_commits
from emotions_data.taxonomy import Taxonomy

REQUIRED = ("video_id", "annotator_id", "label")
ITEM, ANNOTATOR, LABEL = REQUIRED


def load_table(path: Path) -> pd.DataFrame:
    """The table in `path` (CSV or JSON records by its suffix, else Parquet), ids and labels of a CSV or JSON as
    text; its index is each row's number as the user counts it (`_user_rows`). A folder is refused in one line
    (Parquet would read every file under it as one dataset), pointing at a dataset's own vote table when it is one."""
    text = {ITEM: str, ANNOTATOR: str, LABEL: str}
    if path.is_dir():
        own = path / "manifests" / "votes.parquet"
        hint = f": the dataset's vote table is {own}" if own.is_file() else ""
        raise ValueError(f"{path}: is a folder, not a vote table (Parquet, CSV or JSON){hint}")
    try:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=text)
        elif suffix in (".json", ".jsonl"):
            frame = pd.read_json(path, orient="records", lines=suffix == ".jsonl", dtype=text)
        else:
            frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable vote table: {' '.join(str(exc).split())}") from exc
    frame.index = _user_rows(path, len(frame))
    return frame


def _user_rows(path: Path, n: int) -> pd.RangeIndex:
    """Row numbers as a user counts them: a CSV's line numbers (its header is line 1), else 1 for the first row."""
    first = 2 if path.suffix.lower() == ".csv" else 1
    return pd.RangeIndex(first, first + n)


def _first_bad_cell(path: Path, bad: pd.DataFrame, what: str) -> None:
    """ValueError naming the first row flagged in `bad` (cells of the REQUIRED columns; rows numbered as in
    `_user_rows`), its first flagged column and `what` is wrong there, e.g. `votes.csv: row 4: empty label`."""
    flagged = bad.any(axis=1)
    if flagged.any():
        row = flagged.idxmax()
        column = next(c for c in bad.columns if bad.at[row, c])
        raise ValueError(f"{path}: row {row}: {what} {column}")


#: Columns with which a flattened Label Studio export (or a sheet made from one) marks a skipped or cancelled
#: annotation: it is no vote.
CANCELLED_COLUMNS = ("was_cancelled", "skipped")
_TRUE_TEXT = {"true", "1", "yes", "t", "y"}


def _cancelled(frame: pd.DataFrame) -> pd.Series:
    """Per row: is it a skipped or cancelled annotation (a true value in a `CANCELLED_COLUMNS` column)."""
    out = pd.Series(False, index=frame.index)
    for column in CANCELLED_COLUMNS:
        if column in frame.columns:
            values = frame[column]
            out |= values.map(lambda v: str(v).strip().lower() in _TRUE_TEXT if pd.notna(v) else False).astype(bool)
    return out


def read_votes(
    path: Path,
    taxonomy: Taxonomy | None = None,
    stage: str | None = None,
    *,
    every_status: bool = False,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """The votes in `path` (CSV, JSON records or Parquet), optionally of one stage, labels mapped to the taxonomy's
    spelling (`canonical_labels`) or, without a taxonomy, spellings that differ only by Unicode form or case made one
    (`unify_labels`). Only kept votes (`is_kept`) unless `every_status`: deleted and superseded ones stay on record,
    and the pull and the push plan read them too. Skipped or cancelled annotations (`CANCELLED_COLUMNS`) are left
    out. What the reader changed (cancelled rows left out, labels made one) is appended to `notes` as one line
    each. Raises ValueError naming the file when the table is unusable: unreadable, a required column missing, an
    empty or blank id or label (naming the row as the user counts it and the column), an annotator with two kept
    votes on one item in one stage (and expert round), a label outside `taxonomy`."""
    path = Path(path)
    return clean_votes(load_table(path), path, taxonomy, stage, every_status=every_status, notes=notes)


def clean_votes(
    frame: pd.DataFrame,
    path: Path,
    taxonomy: Taxonomy | None = None,
    stage: str | None = None,
    *,
    every_status: bool = False,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """`read_votes`' checks and cleaning of a table already loaded from `path` (its index numbering the rows as the
    user counts them, which error messages name)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    cancelled = _cancelled(frame)
    if cancelled.any():
        frame = frame[~cancelled]
        if notes is not None:
            notes.append(f"{path}: {int(cancelled.sum())} skipped or cancelled annotation(s) left out (no votes)")
    if stage is not None:
        if "stage" not in frame.columns:
            raise ValueError(f"{path}: --stage given but the table has no 'stage' column")
        frame = frame[frame["stage"] == stage]
    _first_bad_cell(path, frame[list(REQUIRED)].isna(), "empty")
    frame = frame.astype({c: str for c in REQUIRED})
    for column in REQUIRED:
        frame[column] = frame[column].str.strip()
    _first_bad_cell(path, frame[list(REQUIRED)] == "", "blank")
    kept = is_kept(frame)
    refuse_double_votes(path, frame[kept])
    if not every_status:
        frame = frame[kept]
    if taxonomy is not None:
        frame["label"] = canonical_labels(frame["label"], taxonomy, str(path))
    elif not every_status:
        frame["label"] = unify_labels(frame["label"], str(path), notes)
    return frame.reset_index(drop=True)


def canonical_labels(labels: pd.Series, taxonomy: Taxonomy, where: str) -> pd.Series:
    """`labels` in the taxonomy's spelling (`Taxonomy.lookup`: an alias becomes its class, a label is compared after
    Unicode NFKC normalisation). Raises ValueError naming `where` and every label outside the taxonomy."""
    spelling = {label: taxonomy.lookup(label) for label in labels.unique()}
    bad = sorted(label for label, name in spelling.items() if name is None)
    if bad:
        raise ValueError(f"{where}: label(s) outside the {taxonomy.name} taxonomy: {', '.join(bad)}")
    return labels.map(spelling)


def label_key(label: str) -> str:
    """What two spellings of one label share: its Unicode NFKC form (fullwidth `ＦＥＡＲ` is `FEAR`; Unicode
    Standard Annex #15), case-folded."""
    return unicodedata.normalize("NFKC", label).casefold()


def unify_labels(labels: pd.Series, where: str, notes: list[str] | None = None) -> pd.Series:
    """`labels` (no taxonomy to check them against) with spellings that differ only by Unicode form or case
    (`label_key`) made one class, named by the NFKC form of its most voted spelling (ties: the first in code-point
    order). Each class made of several spellings is named in `notes` with its spellings, as one line."""
    counts = labels.value_counts()
    classes: dict[str, list[str]] = {}
    for spelling in sorted(counts.index, key=lambda s: (-int(counts[s]), s)):
        classes.setdefault(label_key(spelling), []).append(spelling)
    mapping: dict[str, str] = {}
    for spellings in classes.values():
        name = unicodedata.normalize("NFKC", spellings[0])
        mapping |= dict.fromkeys(spellings, name)
        if len(spellings) > 1 and notes is not None:
            shown = ", ".join(f"{s!r} ({int(counts[s])})" for s in spellings)
            notes.append(f"{where}: labels that differ only by form or case counted as one class {name!r}: {shown}")
    if all(k == v for k, v in mapping.items()):
        return labels
    return labels.map(mapping)


def refuse_double_votes(path: Path, frame: pd.DataFrame) -> None:
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


def read_vote_table(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/votes.parquet` whole (`read_votes` with `every_status`, so with its checks) with every VOTES_SCHEMA
    column (a 1.0 table's missing ones empty; its votes count as kept); an empty table before the first pull. A pull
    killed while it committed the table with its history and report is finished first, so the three always agree."""
    recover_commits(layout.root)
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
    recover_commits(layout.root)  # a pull killed mid-commit is finished before its table is read
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

"""Votes from outside the toolkit's pull: a Label Studio export handed over as a file (its JSON export, or the
flattened JSON-MIN and CSV exports) or any vote table (CSV, JSON records, Parquet). They are checked as the pull
checks what it reads from Label Studio before anything is written:

- Only annotations are votes: a task's `predictions` (a model's) and `drafts` (unsubmitted) are not, and skipped or
  cancelled annotations (`was_cancelled`) are left out with a count; an annotation with no emotion, or with more
  than one, is left out with a count too.
- Every vote is on a video of the dataset (its videos manifest, status ok): votes on others, and tasks that name no
  video, are refused naming them, or with `leave_out_unknown` left out (never counted) with a warning.
- Every annotator is on the dataset's roster (`manifests/annotators.parquet`): a Label Studio user id is its
  account there, a toolkit login (`<id>@annotators.invalid`) its id; anyone else is refused, or with
  `pseudonymise` given a keyed pseudonym (`outside_pseudonym`) before anything is written, so names and e-mail
  addresses never reach a label file, an agreement report, a card or a release.

`import_votes` then adds the checked votes to the dataset's vote table, which the labels step, the card's
statistics and the release's `votes` column all read."""

from __future__ import annotations

import hashlib
import hmac
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annotation.annotators import ACCOUNT_DOMAIN
from annotation.labelstudio.interface import EMOTION, parse_annotation
from annotation.votes import ANNOTATOR, ITEM, LABEL, clean_votes, load_table, read_vote_table, refuse_double_votes
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.release import pseudonym_key
from emotions_data.schema import VOTES_SCHEMA, Stage, VoteStatus
from emotions_data.storage import file_group, recover_commits
from emotions_data.taxonomy import Taxonomy

#: The `server_id` of imported votes: `import:` and the file's name (a pull leaves votes of other servers alone, and
#: importing a file of the same name again replaces them).
IMPORT_PREFIX = "import:"
#: The columns of a flattened Label Studio export (JSON-MIN, CSV) that name the annotator and the annotation.
LS_FLAT = ("annotator", "annotation_id")
_SHOWN = 8


@dataclass
class OutsideVotes:
    """Votes read from outside. `votes` has `video_id`, `annotator_id`, `label`, `stage` and, from a Label Studio
    export, `unsure`, `comment`, `lead_time_s`, `created_at`, `ls_task_id`, `ls_annotation_id`, `round`,
    `group`. `left_out` counts what was not taken, by reason; `unknown_tasks` are Label Studio task ids whose data
    names no video; `notes` are one line each for the user."""

    source: Path
    votes: pd.DataFrame
    left_out: dict[str, int] = field(default_factory=dict)
    unknown_tasks: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pseudonymised: int = 0


def _shown(names: list[Any]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(str(n) for n in names[:_SHOWN]) + more


# ---------------------------------------------------------------- reading


def _json_document(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file ({' '.join(str(exc).split())})") from None


def is_label_studio_export(document: Any) -> bool:
    """Is `document` (parsed JSON) Label Studio's JSON export: a list of tasks, each with `data` and
    `annotations`."""
    return (
        isinstance(document, list)
        and bool(document)
        and all(isinstance(t, dict) and "annotations" in t and "data" in t for t in document)
    )


def _annotator(completed_by: Any) -> str | None:
    """The annotator an export names: `#<user id>` for a bare Label Studio user id, else the e-mail of an expanded
    user (its `#<id>` without one); None when it names nobody."""
    if isinstance(completed_by, dict):
        email = str(completed_by.get("email") or "").strip()
        return email or (f"#{completed_by['id']}" if completed_by.get("id") is not None else None)
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return f"#{completed_by}"
    text = str(completed_by).strip() if completed_by is not None else ""
    return text or None


def _emotions(result: Any) -> int:
    """How many emotions an annotation's result chose (one region of the emotion control with one choice is a
    vote; two are ambiguous)."""
    regions = [r for r in result or [] if isinstance(r, dict) and r.get("from_name") == EMOTION]
    return sum(len((r.get("value") or {}).get("choices") or []) for r in regions)


def _task_votes(task: dict, where: str, out: OutsideVotes, rows: list[dict]) -> None:
    """The votes of one exported task into `rows`; what is not taken is counted in `out`."""
    data = task.get("data") or {}
    video = str(data.get("video_id") or "").strip()
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError(f"{where}: 'annotations' is not a list")
    for name in ("predictions", "drafts"):
        if task.get(name):
            out.left_out[f"{name} (not votes)"] = out.left_out.get(f"{name} (not votes)", 0) + len(task[name])
    for ann in annotations:
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: an annotation is not a JSON object")
        reason = None
        if ann.get("was_cancelled") or ann.get("skipped"):
            reason = "skipped or cancelled"
        elif _emotions(ann.get("result")) > 1:
            reason = "more than one emotion chosen"
        label, unsure, comment = parse_annotation(ann.get("result") or [])
        if reason is None and label is None:
            reason = "no emotion chosen"
        if reason:
            out.left_out[reason] = out.left_out.get(reason, 0) + 1
            continue
        if not video:
            out.unknown_tasks.append(task.get("id"))
            continue
        annotator = _annotator(ann.get("completed_by"))
        if annotator is None:
            raise ValueError(f"{where}, annotation {ann.get('id')}: 'completed_by' names no annotator")
        rows.append({ITEM: video, ANNOTATOR: annotator, LABEL: label,
                     "stage": str(data.get("stage") or Stage.LABEL), "group": data.get("items_of") or None,
                     "round": int(data.get("round") or 1), "unsure": bool(unsure), "comment": comment,
                     "lead_time_s": ann.get("lead_time"), "created_at": ann.get("created_at"),
                     "ls_task_id": task.get("id"), "ls_annotation_id": ann.get("id")})  # fmt: skip


def read_label_studio_export(path: Path, document: list[dict]) -> OutsideVotes:
    """The votes of Label Studio's JSON export `document` (read from `path`): one per submitted annotation, with the
    task's `data.video_id`, `data.stage` (default label), the annotator (`_annotator`) and the label as chosen.
    Predictions, drafts, skipped or cancelled annotations and annotations with no or several emotions are counted in
    `left_out`. Raises ValueError naming the file and the task (by its position and id) that is malformed."""
    out = OutsideVotes(path, pd.DataFrame())
    rows: list[dict] = []
    for n, task in enumerate(document, start=1):
        _task_votes(task, f"{path}: task {n} (id {task.get('id')})", out, rows)
    columns = [ITEM, ANNOTATOR, LABEL, "stage", "group", "round", "unsure", "comment", "lead_time_s", "created_at",
               "ls_task_id", "ls_annotation_id"]  # fmt: skip
    out.votes = pd.DataFrame(rows, columns=columns)
    out.votes.index = pd.RangeIndex(1, len(rows) + 1)
    return out


def _from_flat_export(frame: pd.DataFrame, path: Path, out: OutsideVotes) -> pd.DataFrame:
    """A flattened Label Studio export (JSON-MIN or CSV: the task's data, `annotator`, `annotation_id` and one column
    per control, the emotion's named `emotion`) as a vote table; rows of tasks nobody annotated are left out."""
    if EMOTION not in frame.columns:
        raise ValueError(f"{path}: a flattened Label Studio export without an {EMOTION!r} column")
    unannotated = frame["annotation_id"].isna()
    if unannotated.any():
        out.left_out["tasks without an annotation"] = int(unannotated.sum())
    frame = frame[~unannotated].drop(columns=[c for c in (ANNOTATOR, LABEL) if c in frame.columns])
    several = frame[EMOTION].map(lambda v: isinstance(v, list | dict) or str(v).lstrip()[:1] in ("{", "["))
    if several.any():  # JSON-MIN writes a list of choices, the CSV export its JSON text
        out.left_out["more than one emotion chosen"] = int(several.sum())
        frame = frame[~several]
    frame = frame.rename(columns={"annotator": ANNOTATOR, EMOTION: LABEL, "id": "ls_task_id", "items_of": "group",
                                  "annotation_id": "ls_annotation_id", "lead_time": "lead_time_s"})  # fmt: skip
    # a bare Label Studio user id, as `_annotator` writes it (a CSV reads it as a number)
    frame[ANNOTATOR] = frame[ANNOTATOR].map(lambda a: f"#{int(a)}" if isinstance(a, numbers.Real) and a == a else a)
    return frame


def read_outside_votes(
    path: Path, taxonomy: Taxonomy | None = None, stage: str | None = None, *, notes: list[str] | None = None
) -> OutsideVotes:
    """The votes of a file from outside: Label Studio's JSON export (`read_label_studio_export`), its flattened
    JSON-MIN or CSV export (recognised by its `annotator` and `annotation_id` columns), or any vote table
    `votes.read_votes` reads; then `votes.clean_votes`' checks and cleaning (blanks, cancelled rows, double votes,
    labels against `taxonomy` after NFKC). Only `stage`'s votes when given. Raises ValueError, one line naming the
    file (and row and column, or task), as those do."""
    path = Path(path)
    notes = [] if notes is None else notes
    out = OutsideVotes(path, pd.DataFrame(), notes=notes)
    document = _json_document(path) if path.suffix.lower() == ".json" else None
    if is_label_studio_export(document):
        read = read_label_studio_export(path, document)
        out.left_out, out.unknown_tasks, frame = read.left_out, read.unknown_tasks, read.votes
    else:
        frame = load_table(path)
        if all(c in frame.columns for c in LS_FLAT):
            frame = _from_flat_export(frame, path, out)
    out.votes = clean_votes(frame, path, taxonomy, stage, notes=notes)
    for reason, n in out.left_out.items():
        notes.append(f"{path}: {n} {reason} left out")
    return out


# ---------------------------------------------------------------- checking against the dataset


def outside_pseudonym(annotator: str, key: bytes) -> str:
    """A keyed pseudonym of an annotator from outside the roster (``ext-`` + the first 20 hex digits of
    HMAC-SHA256(key, the id as written, trimmed and lower-cased), RFC 2104): the same person gets the same pseudonym
    in every import with the dataset's key, and it cannot be reversed by trying known names without the key."""
    return "ext-" + hmac.new(key, annotator.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def _roster_ids(layout: DatasetLayout, annotators: pd.Series) -> pd.Series:
    """Per vote: its annotator's roster id, or None when the roster does not have them (`#<n>` is Label Studio user
    n's account, `<id>@annotators.invalid` the toolkit's login of `<id>`)."""
    if not layout.annotators.exists():
        return pd.Series(None, index=annotators.index, dtype=object)
    people = pq.read_table(layout.annotators, columns=["annotator_id", "ls_user_id"]).to_pandas()
    by_lower = {str(a).lower(): str(a) for a in people["annotator_id"]}
    by_account = {f"#{int(u)}": str(a) for a, u in zip(people["annotator_id"], people["ls_user_id"], strict=True)
                  if pd.notna(u)}  # fmt: skip
    suffix = "@" + ACCOUNT_DOMAIN

    def resolve(raw: str) -> str | None:
        if raw in by_account:
            return by_account[raw]
        login = raw.lower()
        return by_lower.get(login[: -len(suffix)] if login.endswith(suffix) else login)

    return annotators.map(resolve)


def _known_videos(layout: DatasetLayout, outside: OutsideVotes, require_videos: bool) -> set[str] | None:
    """The dataset's ok videos; None (with a note) when it has no videos manifest and `require_videos` is false."""
    if layout.videos_manifest.exists():
        videos = read_versioned_table(layout.videos_manifest).to_pandas()
        return set(videos.loc[videos["status"] == "ok", "video_id"].astype(str))
    if require_videos:
        raise ValueError(f"{outside.source}: the dataset has no videos manifest ({layout.videos_manifest}) to check "
                         "the votes' videos against; run 'emotions ingest' first")  # fmt: skip
    outside.notes.append(f"{outside.source}: the dataset has no videos manifest: the votes' videos are not checked")
    return None


def check_against_dataset(
    layout: DatasetLayout,
    outside: OutsideVotes,
    *,
    leave_out_unknown: bool = False,
    pseudonymise: bool = False,
    require_videos: bool = True,
) -> OutsideVotes:
    """`outside` with every vote on a video of the dataset (status ok in its videos manifest) by an annotator on
    its roster (`_roster_ids`, the ids replaced by roster ids). Raises ValueError naming the file and what is wrong:
    no videos manifest (unless not `require_videos`: the videos are not checked then, with a note); votes on videos
    the dataset does not have or tasks that name no video (named; unless `leave_out_unknown`, which leaves them out
    with a note); annotators not on the roster (counted, unless `pseudonymise`, which replaces each by
    `outside_pseudonym` with the dataset's pseudonym key, `release.pseudonym_key`). Nothing is written but that
    key, when the dataset has none yet."""
    path, votes, notes = outside.source, outside.votes, outside.notes
    known = _known_videos(layout, outside, require_videos)
    unknown = [] if known is None else sorted(set(votes[ITEM]) - known)
    tasks = sorted({str(t) for t in outside.unknown_tasks})
    if (unknown or tasks) and not leave_out_unknown:
        what = [f"{len(unknown)} video(s) the dataset does not have: {_shown(unknown)}"] if unknown else []
        what += [f"{len(tasks)} Label Studio task(s) naming no video: {_shown(tasks)}"] if tasks else []
        raise ValueError(f"{path}: votes on {'; '.join(what)}; pass --leave-out-unknown-videos to leave them out")
    if unknown or tasks:
        n = int(votes[ITEM].isin(unknown).sum()) + len(outside.unknown_tasks)
        notes.append(f"{path}: warning: {n} vote(s) on videos the dataset does not have left out, never counted: "
                     f"{_shown(unknown + [f'task {t}' for t in tasks])}")  # fmt: skip
        votes = votes[~votes[ITEM].isin(unknown)]
    roster = _roster_ids(layout, votes[ANNOTATOR])
    strangers = sorted(set(votes.loc[roster.isna(), ANNOTATOR]))
    if strangers and not pseudonymise:
        raise ValueError(f"{path}: {len(strangers)} annotator id(s) not on the dataset's roster (e.g. "
                         f"{strangers[0]!r}); add them to the roster, or pass --pseudonymise to give each a keyed "
                         "pseudonym")  # fmt: skip
    if strangers:
        key = pseudonym_key(layout)
        roster = roster.fillna(votes[ANNOTATOR].map(lambda a: outside_pseudonym(a, key)))
        notes.append(f"{path}: {len(strangers)} annotator(s) not on the roster given keyed pseudonyms (ext-...)")
    votes = votes.assign(**{ANNOTATOR: roster.astype(str)})
    refuse_double_votes(path, votes)  # two spellings of one person become one id
    return OutsideVotes(path, votes.reset_index(drop=True), outside.left_out, [], notes, len(strangers))


# ---------------------------------------------------------------- importing


def _as_vote_rows(outside: OutsideVotes) -> pd.DataFrame:
    """The checked votes as VOTES_SCHEMA rows, marked as imported from their file."""
    rows = outside.votes.copy()
    for name in VOTES_SCHEMA.names:
        if name not in rows.columns:
            rows[name] = None
    rows["stage"] = rows["stage"].fillna(Stage.LABEL)
    rows["status"], rows["round"] = VoteStatus.KEPT, rows["round"].fillna(1)
    rows["server_id"], rows["server_url"] = IMPORT_PREFIX + outside.source.name, outside.source.resolve().as_uri()
    for name in ("created_at", "updated_at"):
        rows[name] = pd.to_datetime(rows[name], utc=True, errors="coerce").dt.floor("s")
    return rows[VOTES_SCHEMA.names]


def import_votes(
    layout: DatasetLayout,
    path: Path,
    taxonomy: Taxonomy,
    *,
    leave_out_unknown: bool = False,
    pseudonymise: bool = False,
) -> OutsideVotes:
    """Read `path` (`read_outside_votes`, labels checked against `taxonomy`), check it against the dataset
    (`check_against_dataset`) and add its votes to `manifests/votes.parquet`, replacing the votes an earlier
    import of a file with the same name added. Returns the checked votes with what was left out and the notes.
    Raises ValueError as those do, and naming the annotator and item when a vote repeats one already on record;
    nothing is written then (the vote table is replaced atomically)."""
    recover_commits(layout.root)
    outside = check_against_dataset(
        layout, read_outside_votes(path, taxonomy), leave_out_unknown=leave_out_unknown, pseudonymise=pseudonymise
    )
    fresh = _as_vote_rows(outside)
    old = read_vote_table(layout)
    old = old[old["server_id"] != fresh["server_id"].iloc[0]] if len(fresh) else old
    merged = pd.concat([old, fresh], ignore_index=True) if len(old) else fresh
    refuse_double_votes(Path(path), merged[merged["status"] == VoteStatus.KEPT])
    table = pa.Table.from_pandas(merged, schema=VOTES_SCHEMA, preserve_index=False)
    with file_group(layout.root) as group:
        group.write_table(layout.votes, table)
    return outside

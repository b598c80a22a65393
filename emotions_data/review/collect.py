"""What the review page shows, read from the dataset's manifests (no HTML here): counts by status and reason, the
near-duplicate pairs, the disputed items with their votes, the suspect labels and the plots' data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from emotions_data.dedup import bits_per_pixel
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.suspects import out_of_fold_path, suspects_path

_DISTANCE = re.compile(r"distance ([0-9.]+)")


@dataclass
class Pair:
    """A near-duplicate the ingest rejected (`copy`) and the item it kept (`kept`), with the distance and why."""

    copy: str
    kept: str
    distance: float | None
    detail: str
    why: str = ""


@dataclass
class ReviewData:
    """Everything the page shows, as tables: `videos` (the manifest), `counts` (status, reason, n), `pairs`,
    `disputed` (video_id, label, decided_by, agreement, votes text; lowest agreement first), `suspects` (the
    suspects table, or None before `emotions validate`), `votes` (counted votes with lead times and clip length),
    `agreement` (the labels step's report or None), `confusion` (a recorded baseline's confusion.png or None),
    `out_of_fold` (every labelled item's out-of-fold prediction from `emotions validate`, or None)."""

    videos: pd.DataFrame
    counts: pd.DataFrame
    pairs: list[Pair] = field(default_factory=list)
    disputed: pd.DataFrame | None = None
    suspects: pd.DataFrame | None = None
    votes: pd.DataFrame | None = None
    agreement: dict | None = None
    confusion: Path | None = None
    out_of_fold: pd.DataFrame | None = None


def status_counts(videos: pd.DataFrame) -> pd.DataFrame:
    """(status, reason, n) rows, ok first, then by status and reason; reason "" for ok items."""
    frame = videos.assign(reason=videos["reason"].fillna("") if "reason" in videos else "")
    counts = frame.groupby(["status", "reason"]).size().reset_index(name="n")
    return counts.sort_values(["status", "reason"], key=lambda s: s.map(lambda v: (v != "ok", v))).reset_index(
        drop=True
    )


def near_duplicate_pairs(videos: pd.DataFrame) -> list[Pair]:
    """The rejected near-duplicates with the kept item they copy (from `dup_of` and the reason's detail)."""
    if "dup_of" not in videos.columns:
        return []
    rows = videos[(videos["reason"] == "near_duplicate") & videos["dup_of"].notna()]
    pairs = []
    for row in rows.itertuples():
        detail = str(getattr(row, "reason_detail", "") or "")
        found = _DISTANCE.search(detail)
        distance = float(found.group(1)) if found else None
        pairs.append(
            Pair(str(row.video_id), str(row.dup_of), distance, detail, why_kept(videos, row.dup_of, row.video_id))
        )
    return pairs


def _quality(row: pd.Series) -> list[tuple[str, float]]:
    """The ingest's preference for the copy to keep (`dedup.Candidate.preference`), as (what, value) pairs from
    the manifest: higher is better for each."""
    width, height = row.get("width"), row.get("height")
    pixels = float(width * height) if pd.notna(width) and pd.notna(height) else 0.0
    rate = bits_per_pixel(row.get("bit_rate"), row.get("size_bytes"), row.get("duration_s"), int(pixels) or 1,
                          row.get("fps"))  # fmt: skip
    return [("a larger original picture", pixels), ("more bits per pixel (less re-compressed)", round(rate, 4)),
            ("sound", float(bool(row.get("has_audio")))),
            ("a longer picture", round(float(row.get("video_duration_s") or row.get("duration_s") or 0), 1)),
            ("an earlier input", -float(row.get("input_index") or 0))]  # fmt: skip


def why_kept(videos: pd.DataFrame, kept: str, copy: str) -> str:
    """Why the ingest kept `kept` rather than `copy`: the first of its preferences on which they differ."""
    rows = videos.set_index("video_id")
    if kept not in rows.index or copy not in rows.index:
        return "the kept item is not in the manifest"
    for (what, a), (_, b) in zip(_quality(rows.loc[kept]), _quality(rows.loc[copy]), strict=True):
        if a != b:
            return f"kept {kept}: it has {what}" if a > b else f"kept {kept} (its copy has {what}; an older rule)"
    return f"kept {kept}: the two are alike in size, quality, sound and length"


def votes_by_item(votes: pd.DataFrame) -> dict[str, str]:
    """video_id -> `annotator (stage): label` for each counted vote, in stage order."""
    ordered = votes.sort_values(["video_id", "stage", "annotator_id"])
    return {str(v): "; ".join(f"{a} ({s}): {lab}" for a, s, lab in zip(g["annotator_id"], g["stage"], g["label"],
                                                                       strict=True))
            for v, g in ordered.groupby("video_id")}  # fmt: skip


def disputed_items(layout: DatasetLayout, votes: pd.DataFrame | None, limit: int) -> pd.DataFrame | None:
    """The `limit` labelled items with the lowest per-item agreement under 1 (the votes were not unanimous), and the
    items waiting for the expert; None without labels."""
    if not layout.labels.is_file():
        return None
    labels = pq.read_table(layout.labels).to_pandas()
    if "agreement" not in labels.columns:
        labels["agreement"] = float("nan")
    shown = labels[labels["agreement"] < 1].sort_values(["agreement", "video_id"]).head(limit)
    if layout.needs_expert.is_file():
        waiting = pq.read_table(layout.needs_expert).to_pandas()
        extra = pd.DataFrame({"video_id": waiting["video_id"], "label": "(waiting for the expert)",
                              "decided_by": waiting["reason"], "agreement": float("nan")})  # fmt: skip
        shown = pd.concat([shown, extra[~extra["video_id"].isin(shown["video_id"])]], ignore_index=True)
    text = votes_by_item(votes) if votes is not None and len(votes) else {}
    shown = shown.assign(votes=shown["video_id"].map(text).fillna(""))
    return shown[["video_id", "label", "decided_by", "agreement", "votes"]].reset_index(drop=True)


def _latest_confusion(layout: DatasetLayout) -> Path | None:
    """The confusion matrix of the newest release that recorded a baseline (`record-baseline`)."""

    def version_key(path: Path) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else -1 for p in path.name.split("."))

    releases = sorted(layout.releases.glob("*/baseline/*/confusion.png"), key=lambda p: version_key(p.parents[2]))
    return releases[-1] if releases else None


def collect(layout: DatasetLayout, votes: pd.DataFrame | None, *, disputed_limit: int = 24) -> ReviewData:
    """Read what the page shows. `votes`: the counted votes (annotation's `read_counted_votes`), or None. Raises
    ValueError naming the manifest when the dataset has none."""
    if not layout.videos_manifest.is_file():
        raise ValueError(f"{layout.videos_manifest}: no manifest (run 'emotions ingest' first)")
    videos = read_versioned_table(layout.videos_manifest).to_pandas()
    if "reason" not in videos.columns:
        videos["reason"] = None
    agreement = None
    if layout.agreement_report.is_file():
        try:
            agreement = json.loads(layout.agreement_report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            agreement = None
    if votes is not None and len(votes):
        durations = videos.set_index("video_id")["media_duration_s"] if "media_duration_s" in videos else None
        votes = votes.assign(clip_s=votes["video_id"].map(durations) if durations is not None else float("nan"))
    suspects = pq.read_table(suspects_path(layout)).to_pandas() if suspects_path(layout).is_file() else None
    oof = pq.read_table(out_of_fold_path(layout)).to_pandas() if out_of_fold_path(layout).is_file() else None
    return ReviewData(
        videos=videos, counts=status_counts(videos), pairs=near_duplicate_pairs(videos),
        disputed=disputed_items(layout, votes, disputed_limit), suspects=suspects, votes=votes,
        agreement=agreement if isinstance(agreement, dict) else None, confusion=_latest_confusion(layout),
        out_of_fold=oof,
    )  # fmt: skip


def media_source(layout: DatasetLayout, videos: pd.DataFrame, video_id: str) -> Path | None:
    """The file a thumbnail of `video_id` is taken from: its normalised media, else (a rejected item, never
    normalised) its original as downloaded; None when neither is on disk."""
    media = layout.media_file(video_id)
    if media.is_file():
        return media
    row = videos[videos["video_id"] == video_id]
    if len(row) and "original_path" in row and pd.notna(row["original_path"].iloc[0]):
        original = layout.root / str(row["original_path"].iloc[0])
        if original.is_file():
            return original
    return None


def confusion_cells(predictions: pd.DataFrame, per_cell: int) -> dict[tuple[str, str], tuple[int, list[str]]]:
    """(final label, predicted) -> (items, the first `per_cell` video ids) over the out-of-fold predictions."""
    cells = {}
    for (label, predicted), group in predictions.sort_values("video_id").groupby(["label", "predicted"]):
        cells[(str(label), str(predicted))] = (len(group), list(group["video_id"].astype(str).head(per_cell)))
    return cells

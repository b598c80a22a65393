"""`emotions split`: the dataset's ok, labelled videos -> `manifests/splits.parquet`, behind the leakage gate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.dedup import Candidate, near_duplicate_pairs
from emotions_data.layout import DatasetLayout
from emotions_data.schema import SPLITS_SCHEMA, Variant
from emotions_data.settings import DedupSettings
from emotions_data.storage import write_bytes_atomic, write_table_atomic
from emotions_data.stratified_split import VARIANT_RULES, SplitResult, SplitSettings, find_leaks, make_splits


class LeakageError(RuntimeError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"leakage gate failed ({len(problems)} problem(s)): " + "; ".join(problems[:5]))
        self.problems = problems


def split_items(layout: DatasetLayout) -> pd.DataFrame:
    """One row per ok video with its final label (None when unlabelled) and its grouping keys."""
    if not layout.videos_manifest.exists():
        raise ValueError(f"{layout.videos_manifest}: no manifest (run 'emotions ingest' first)")
    if not layout.labels.exists():
        raise ValueError(f"{layout.labels}: no final labels (run 'emotions labels' first)")
    videos = pq.read_table(layout.videos_manifest).to_pandas()
    videos = videos[videos["status"] == "ok"]
    labels = pq.read_table(layout.labels, columns=["video_id", "label"]).to_pandas()
    cols = [c for c in ("video_id", "uploader", "sha256", "dup_of", "media_duration_s", "fingerprint", "media_width",
                        "media_height", "input_index") if c in videos.columns]  # fmt: skip
    return videos[cols].merge(labels, on="video_id", how="left").reset_index(drop=True)


def with_near_duplicate_edges(items: pd.DataFrame, settings: DedupSettings | None = None) -> pd.DataFrame:
    """`items` (positional index) with the near-duplicate pairs among them in `attrs["near_dup_edges"]`:
    ingest dropped the copies it found, but a changed threshold or an imported dataset can still hold some."""
    items = items.reset_index(drop=True)
    items.attrs["near_dup_edges"] = _near_duplicate_edges(items, settings or DedupSettings())
    return items


def _near_duplicate_edges(items: pd.DataFrame, settings: DedupSettings) -> np.ndarray:
    if "fingerprint" not in items.columns:
        return np.empty((0, 2), int)
    rows = items[items["fingerprint"].notna() & items["media_duration_s"].notna()]
    candidates = [
        Candidate(r.video_id, int(getattr(r, "input_index", 0) or 0), float(r.media_duration_s), 0, r.fingerprint)
        for r in rows.itertuples()
    ]
    pairs = near_duplicate_pairs(candidates, settings)
    positions = rows.index.to_numpy()
    return np.array([(positions[i], positions[j]) for i, j, _ in pairs], dtype=int).reshape(-1, 2)


@dataclass(frozen=True)
class SplitOutcome:
    result: SplitResult
    n_unlabelled: int


def split_dataset(layout: DatasetLayout, settings: SplitSettings) -> SplitOutcome:
    """Split the labelled videos, check them with the leakage gate, then write splits.parquet."""
    items = split_items(layout)
    labelled = with_near_duplicate_edges(items[items["label"].notna()])
    if labelled.empty:
        raise ValueError(f"{layout.labels}: none of the ok videos has a final label")
    result = make_splits(labelled, settings)
    problems = find_leaks(labelled, result.splits)
    if problems:
        raise LeakageError(problems)
    kept = _kept_variants(layout)
    frame = pd.concat([kept, result.splits], ignore_index=True) if len(kept) else result.splits
    write_table_atomic(layout.splits, pa.Table.from_pandas(frame, schema=SPLITS_SCHEMA, preserve_index=False))
    record = {
        **asdict(settings),
        "rules": VARIANT_RULES,
        "groups": "uploader, sha256, dup_of, near-duplicate fingerprints",
    }
    write_bytes_atomic(layout.splits.with_suffix(".json"), json.dumps(record, indent=2).encode())
    return SplitOutcome(result, len(items) - len(labelled))


def _kept_variants(layout: DatasetLayout) -> pd.DataFrame:
    """Variants `split` does not make (an imported dataset's `official` split) survive a re-split."""
    if not layout.splits.exists():
        return pd.DataFrame(columns=SPLITS_SCHEMA.names)
    frame = pq.read_table(layout.splits).to_pandas()
    return frame[~frame["variant"].isin(list(Variant))]


def check_splits(layout: DatasetLayout) -> list[str]:
    """The leakage gate over the written splits (what `release` runs before writing anything)."""
    splits = pq.read_table(layout.splits).to_pandas()
    return find_leaks(with_near_duplicate_edges(split_items(layout)), splits)

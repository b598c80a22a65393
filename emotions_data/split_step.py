"""`emotions split`: the dataset's ok, labelled videos -> `manifests/splits.parquet`, behind the leakage gate.

`splits.parquet` and `splits.json` are committed together (`storage.file_group`). The Parquet file's schema metadata
records a digest of the final labels it was made from, so a release can tell splits that no longer match the labels
(`check_splits`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.dataset_lock import writes_dataset
from emotions_data.dedup import fingerprint_pairs
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.schema import SPLITS_SCHEMA, Variant
from emotions_data.settings import DedupSettings
from emotions_data.storage import file_group, recover_commits
from emotions_data.stratified_split import VARIANT_RULES, SplitResult, SplitSettings, find_leaks, make_splits

#: Schema metadata key of `splits.parquet`: the sha256 of the (video_id, label) pairs the splits were made from.
LABELS_DIGEST_KEY = b"emotions.labels_sha256"


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
    videos = read_versioned_table(layout.videos_manifest).to_pandas()  # refuses a newer schema
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
    i, j, _ = fingerprint_pairs(rows["fingerprint"].tolist(), rows["media_duration_s"].to_numpy(float), settings)
    positions = rows.index.to_numpy()
    return np.stack([positions[i], positions[j]], axis=1).astype(int).reshape(-1, 2)


def labels_digest(labelled: pd.DataFrame) -> str:
    """The sha256 of the `video_id` and `label` pairs of `labelled` (order-free): what the splits were made from."""
    pairs = sorted(zip(labelled["video_id"].astype(str), labelled["label"].astype(str), strict=True))
    return hashlib.sha256("".join(f"{vid}\t{label}\n" for vid, label in pairs).encode()).hexdigest()


def splits_table(frame: pd.DataFrame, labelled: pd.DataFrame) -> pa.Table:
    """`frame` (video_id, variant, split) as `splits.parquet`'s table, recording the digest of the labels."""
    table = pa.Table.from_pandas(frame, schema=SPLITS_SCHEMA, preserve_index=False)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), LABELS_DIGEST_KEY: labels_digest(labelled)})


@dataclass(frozen=True)
class SplitOutcome:
    result: SplitResult
    n_unlabelled: int


@writes_dataset("split")
def split_dataset(layout: DatasetLayout, settings: SplitSettings) -> SplitOutcome:
    """Split the labelled videos, check them with the leakage gate, then write splits.parquet and splits.json
    together. Raises ValueError (missing manifests, no labelled video) or LeakageError; nothing is written then."""
    recover_commits(layout.root)
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
    record = {
        **asdict(settings),
        "rules": VARIANT_RULES,
        "groups": "uploader, sha256, dup_of, near-duplicate fingerprints",
    }
    # One group: a release must never read the assignments of one run with the settings (seed) of another.
    with file_group(layout.root) as group:
        group.write_table(layout.splits, splits_table(frame, labelled))
        group.write_bytes(layout.splits.with_suffix(".json"), json.dumps(record, indent=2).encode())
    return SplitOutcome(result, len(items) - len(labelled))


def _kept_variants(layout: DatasetLayout) -> pd.DataFrame:
    """Variants `split` does not make (an imported dataset's `official` split) survive a re-split."""
    if not layout.splits.exists():
        return pd.DataFrame(columns=SPLITS_SCHEMA.names)
    frame = pq.read_table(layout.splits).to_pandas()
    return frame[~frame["variant"].isin(list(Variant))]


def stale_splits(layout: DatasetLayout, items: pd.DataFrame) -> str | None:
    """Why the written splits no longer fit the final labels (one line, saying to re-run `emotions split`), or None.

    Stale: the labels differ from those the splits were made from (a label changed, added or removed since; known
    from the digest `split` records, absent from splits written otherwise), or a labelled ok video is in no split of
    the `full` variant (which holds every one). `items` is `split_items(layout)`."""
    table = pq.read_table(layout.splits)
    labelled = items[items["label"].notna()]
    recorded = (table.schema.metadata or {}).get(LABELS_DIGEST_KEY)
    if recorded is not None and recorded.decode() != labels_digest(labelled):
        return (
            f"{layout.splits}: made from other final labels than {layout.labels} holds now (labels were changed, "
            "added or removed since); re-run 'emotions split'"
        )
    splits = table.select(["video_id", "variant"]).to_pandas()
    full = set(splits.loc[splits["variant"] == Variant.FULL, "video_id"])
    missing = sorted(set(labelled["video_id"]) - full) if full else []
    if missing:
        return (
            f"{layout.splits}: {len(missing)} labelled video(s) in no split (e.g. {missing[0]}), labelled after the "
            "split; re-run 'emotions split'"
        )
    return None


def check_splits(layout: DatasetLayout) -> list[str]:
    """The leakage gate over the written splits (what `release` runs before writing anything): one line per problem.

    Raises ValueError when there are no splits, or when they are stale (`stale_splits`)."""
    recover_commits(layout.root)
    if not layout.splits.exists():
        raise ValueError(f"{layout.splits}: no splits (run 'emotions split' first)")
    items = split_items(layout)
    stale = stale_splits(layout, items)
    if stale:
        raise ValueError(stale)
    splits = pq.read_table(layout.splits).to_pandas()
    return find_leaks(with_near_duplicate_edges(items), splits)

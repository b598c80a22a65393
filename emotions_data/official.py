"""`emotions import-official`: an already-labelled dataset into our manifests.

Two layouts:
* the eMotions authors' release: class folders of videos, `classInd.txt` ("1 Excitation" or
  "0 Excitation"), `trainlist01.txt` / `testlist01.txt` (and optionally a val list) with
  `ClassName/video_id[.ext] [index]` lines, and/or the ActivityNet-style JSON
  (`{"labels": [...], "database": {id: {"subset": ..., "annotations": {"label": ...}}}}`);
  raw spellings such as `Sad` map through the taxonomy's aliases;
* a plain folder per class (VideoEmotion-8, Ekman-6 style) with a taxonomy file.

The videos go through the normal ingest (probe, filters, duplicates, normalisation); the labels
become `labels.parquet` (decided_by `official`); the published split (of the videos ingest kept) becomes
the `official` variant in `splits.parquet`, which `emotions split` keeps beside its own variants. The
JSON's `validation` subset is read as the test split: the authors' code evaluates on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from emotions_data.ingest import IngestReport, ingest
from emotions_data.layout import DatasetLayout
from emotions_data.schema import LABELS_SCHEMA, SPLITS_SCHEMA
from emotions_data.settings import IngestSettings
from emotions_data.sources import VIDEO_EXTENSIONS, InputItem, make_video_id
from emotions_data.storage import write_table_atomic
from emotions_data.taxonomy import Taxonomy

OFFICIAL = "official"
_LIST_SPLIT = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_JSON_SPLIT = {
    "training": "train",
    "train": "train",
    "validation": "test",
    "val": "val",
    "testing": "test",
    "test": "test",
}


@dataclass(frozen=True)
class OfficialLayout:
    videos: dict[str, Path]  # video_id -> file
    labels: dict[str, str]  # video_id -> class (canonical)
    splits: dict[str, str]  # video_id -> train/val/test (empty when the layout has none)


def _canonical(raw: str, taxonomy: Taxonomy, where: str) -> str:
    try:
        return taxonomy.canonical(raw.strip())
    except ValueError:
        raise ValueError(f"{where}: class {raw.strip()!r} is not in the {taxonomy.name} taxonomy") from None


def read_class_index(path: Path, taxonomy: Taxonomy) -> list[str]:
    """Classes in index order; 0- and 1-based indices both accepted."""
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            index, _, name = line.strip().partition(" ")
            if not index.isdigit() or not name:
                raise ValueError(f"{path}: line {n}: expected 'INDEX ClassName', got {line.strip()!r}")
            entries.append((int(index), _canonical(name, taxonomy, f"{path}: line {n}")))
    entries.sort()
    return [name for _, name in entries]


def _stem(entry: str) -> str:
    name = entry.rsplit("/", 1)[-1]
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in VIDEO_EXTENSIONS else name


def discover(root: Path, taxonomy: Taxonomy) -> OfficialLayout:
    """Find the videos, their classes and the published split under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    if (root / "classInd.txt").exists():
        read_class_index(root / "classInd.txt", taxonomy)  # validates the class names
    videos: dict[str, Path] = {}
    labels: dict[str, str] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not files:
            continue
        label = _canonical(folder.name, taxonomy, str(folder))
        for path in files:
            vid = make_video_id(str(path), path.stem)
            if vid in videos:
                raise ValueError(f"{path}: video id {vid!r} also used by {videos[vid]}")
            videos[vid], labels[vid] = path, label
    if not videos:
        raise ValueError(f"{root}: no class folders with videos found")

    splits: dict[str, str] = {}
    for path in sorted(root.glob("*list*.txt")):
        kind = re.match(r"(train|val|validation|test)list", path.name)
        if not kind:
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            entry = line.strip().split(" ")[0] if line.strip() else ""
            if not entry:
                continue
            vid = make_video_id(entry, _stem(entry))
            if vid not in videos:
                raise ValueError(f"{path}: line {n}: {entry!r} names no video under {root}")
            if "/" in entry and _canonical(entry.split("/")[0], taxonomy, f"{path}: line {n}") != labels[vid]:
                raise ValueError(f"{path}: line {n}: {entry!r} disagrees with the folder's class {labels[vid]}")
            splits[vid] = _LIST_SPLIT[kind.group(1)]
    for path in sorted(root.glob("*.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "database" not in data:
            continue
        for raw_id, entry in data["database"].items():
            vid = make_video_id(raw_id, raw_id)
            if vid not in videos:
                continue  # the JSON may list videos the download lacks; ingest only knows files
            label = (entry.get("annotations") or {}).get("label")
            if label is not None and _canonical(str(label), taxonomy, f"{path}: {raw_id}") != labels[vid]:
                raise ValueError(f"{path}: {raw_id}: label {label!r} disagrees with the folder's class {labels[vid]}")
            splits.setdefault(vid, _JSON_SPLIT.get(str(entry.get("subset", "")).lower(), "train"))
    return OfficialLayout(videos, labels, splits)


def labels_at_risk(layout: DatasetLayout, new_rows: list[dict]) -> pd.DataFrame:
    """The dataset's existing final labels that writing `new_rows` (LABELS_SCHEMA rows) would change or drop:
    every row whose (video_id, label, decided_by) is not among the new rows. Empty when there is no labels file
    or when the new rows keep every existing decision (a re-run of the same import)."""
    if not layout.labels.exists():
        return pd.DataFrame(columns=["video_id", "label", "decided_by"])
    old = pd.read_parquet(layout.labels, columns=["video_id", "label", "decided_by"])
    new = {(r["video_id"], r["label"], r["decided_by"]) for r in new_rows}
    keep = [(v, lab, by) in new for v, lab, by in zip(old["video_id"], old["label"], old["decided_by"], strict=True)]
    return old[~pd.Series(keep, index=old.index, dtype=bool)]


def import_official(
    root: Path,
    out: Path,
    taxonomy: Taxonomy,
    settings: IngestSettings | None = None,
    *,
    replace_labels: bool = False,
    **ingest_args: object,
) -> tuple[IngestReport, OfficialLayout]:
    """Ingest the official layout under `root` into the dataset folder `out`, with labels and split.

    The published labels replace `labels.parquet` and the published split becomes the `official` variant of
    `splits.parquet`; the other variants are kept, unless labels they were built from were replaced.

    Raises ValueError, before anything is fetched or written, when `out` already holds final labels that the
    import would change or drop (decided by the annotation workflow, or another import) unless `replace_labels`
    is set; the message names the file and what would be lost."""
    found = discover(root, taxonomy)
    layout = DatasetLayout(out)
    rows = [
        {"video_id": vid, "label": lab, "polarity": taxonomy.polarity.get(lab), "confidence": 1.0, "n_votes": 0,
         "decided_by": OFFICIAL}
        for vid, lab in sorted(found.labels.items())
    ]  # fmt: skip
    at_risk = labels_at_risk(layout, rows)
    if len(at_risk) and not replace_labels:
        kinds = ", ".join(f"{n} {by}" for by, n in at_risk["decided_by"].value_counts().sort_index().items())
        raise ValueError(
            f"{layout.labels}: the import would replace or drop {len(at_risk)} existing final label(s) ({kinds}); "
            "nothing was changed: import into another --out, or pass --replace-labels to replace them"
        )
    items = [
        InputItem(vid, str(path.resolve()), "file", platform="local", extra={"official_label": found.labels[vid]})
        for vid, path in sorted(found.videos.items())
    ]
    report = ingest(items, out, settings, **ingest_args)  # type: ignore[arg-type]
    write_table_atomic(layout.labels, pa.Table.from_pylist(rows, schema=LABELS_SCHEMA))
    kept = set(
        pd.read_parquet(layout.videos_manifest, columns=["video_id", "status"]).query("status == 'ok'")["video_id"]
    )
    published = {vid: split for vid, split in found.splits.items() if vid in kept}  # ingest may reject some
    if published:
        frame = pd.DataFrame({"video_id": list(published), "variant": OFFICIAL, "split": list(published.values())})
        if layout.splits.exists() and at_risk.empty:  # our variants stay beside the published one
            ours = pd.read_parquet(layout.splits)
            frame = pd.concat([ours[ours["variant"] != OFFICIAL][SPLITS_SCHEMA.names], frame], ignore_index=True)
        write_table_atomic(layout.splits, pa.Table.from_pandas(frame, schema=SPLITS_SCHEMA, preserve_index=False))
    return report, found

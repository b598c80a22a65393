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
import pyarrow.parquet as pq

from emotions_data.ingest import IngestReport, ingest
from emotions_data.layout import DatasetLayout
from emotions_data.schema import LABELS_SCHEMA, SPLITS_SCHEMA
from emotions_data.settings import IngestSettings
from emotions_data.sources import VIDEO_EXTENSIONS, InputItem, make_video_id
from emotions_data.split_step import LABELS_DIGEST_KEY, labels_digest
from emotions_data.storage import file_group, recover_commits
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


def read_text(path: Path) -> str:
    """A layout file as text: UTF-8, with or without a byte-order mark (editors on Windows add one). Raises
    ValueError naming the file when it cannot be read or is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start]
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte {byte:#04x}); save it as UTF-8") from None


def read_json(path: Path) -> object:
    """A layout's JSON file (UTF-8, byte-order mark allowed). Raises ValueError naming the file, e.g. when it is
    truncated."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON, perhaps truncated ({exc})") from None


def read_class_index(path: Path, taxonomy: Taxonomy) -> list[str]:
    """Classes in index order; 0- and 1-based indices both accepted. Raises ValueError naming the file and line:
    not UTF-8, a line that is not 'INDEX ClassName', a class outside `taxonomy`, an index or class given twice."""
    entries: dict[int, tuple[str, int]] = {}
    lines: dict[str, int] = {}
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            index, _, name = line.strip().partition(" ")
            if not index.isdigit() or not name.strip():
                raise ValueError(f"{path}: line {n}: expected 'INDEX ClassName', got {line.strip()!r}")
            name = _canonical(name, taxonomy, f"{path}: line {n}")
            if int(index) in entries:
                raise ValueError(f"{path}: line {n}: index {index} already given on line {entries[int(index)][1]}")
            if name in lines:
                raise ValueError(f"{path}: line {n}: class {name} already given on line {lines[name]}")
            entries[int(index)], lines[name] = (name, n), n
    return [entries[i][0] for i in sorted(entries)]


def _list_entry(line: str) -> str:
    """The video of a list line `Class/video_id[.ext] [index]` (the index, when present, is the last field)."""
    fields = line.split()
    if len(fields) > 1 and fields[-1].isdigit():
        fields = fields[:-1]
    return " ".join(fields)


def _stem(entry: str) -> str:
    name = entry.rsplit("/", 1)[-1]
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in VIDEO_EXTENSIONS else name


_LIST_NAME = re.compile(r"(train|val|validation|test)list(\d*)\.txt", re.IGNORECASE)


def list_files(root: Path, fold: int | None = None) -> list[Path]:
    """The split list files of one fold under `root`. UCF101-style layouts ship several folds
    (`trainlist01.txt` .. `testlist03.txt`), each a complete split of the same videos: merging them would put
    every video in train. A name without a number counts as fold 1; without `fold`, fold 1 is read. Raises
    ValueError naming the folds there are when `fold` is not among them."""
    found: dict[int, list[Path]] = {}
    for path in sorted(Path(root).glob("*list*.txt")):
        match = _LIST_NAME.fullmatch(path.name)
        if match:
            found.setdefault(int(match.group(2) or 1), []).append(path)
    if not found:
        return []
    chosen = 1 if fold is None else fold
    if chosen not in found:
        there = ", ".join(f"{n:02d}" for n in sorted(found))
        raise ValueError(f"{root}: no split lists of fold {chosen:02d} (folds there: {there}); choose one with --fold")
    return found[chosen]


def discover(root: Path, taxonomy: Taxonomy, fold: int | None = None) -> OfficialLayout:
    """Find the videos, their classes and the published split under `root`.

    Text files are read as UTF-8 (a byte-order mark is fine). Raises ValueError naming the file (and line or video
    id): unreadable, not UTF-8 or not JSON; a class outside `taxonomy`; a list entry naming no video or another
    class than its folder; a video put in two different splits (by two lists, or a list and the JSON); an
    ActivityNet-style JSON whose `database` or entries are not objects, or whose subset is unknown. A JSON entry
    without a subset puts its video in no split. Of several folds of split lists, only `fold` (default 1) is
    read (`list_files`)."""
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
    where: dict[str, str] = {}  # video_id -> the file (and line) that put it in its split
    for path in list_files(root, fold):
        kind = _LIST_NAME.fullmatch(path.name)
        assert kind is not None  # list_files only returns list names
        for n, line in enumerate(read_text(path).splitlines(), start=1):
            entry = _list_entry(line)
            if not entry:
                continue
            vid = make_video_id(entry, _stem(entry))
            if vid not in videos:
                raise ValueError(f"{path}: line {n}: {entry!r} names no video under {root}")
            if "/" in entry and _canonical(entry.split("/")[0], taxonomy, f"{path}: line {n}") != labels[vid]:
                raise ValueError(f"{path}: line {n}: {entry!r} disagrees with the folder's class {labels[vid]}")
            split = _LIST_SPLIT[kind.group(1).lower()]
            if vid in splits and splits[vid] != split:
                raise ValueError(f"{path}: line {n}: {entry!r} is also in the {splits[vid]} split ({where[vid]})")
            splits[vid], where[vid] = split, f"{path.name}: line {n}"
    for path in sorted(root.glob("*.json")):
        data = read_json(path)
        if not isinstance(data, dict) or "database" not in data:
            continue
        database = data["database"]
        if not isinstance(database, dict):
            raise ValueError(
                f"{path}: 'database' must be a JSON object of video id -> entry, not a {type(database).__name__}"
            )
        for raw_id, entry in database.items():
            vid = make_video_id(raw_id, raw_id)
            if vid not in videos:
                continue  # the JSON may list videos the download lacks; ingest only knows files
            split = _json_entry(path, raw_id, entry, taxonomy, labels[vid])
            if split is None:
                continue
            if vid in splits and splits[vid] != split:
                raise ValueError(f"{path}: {raw_id}: in the {split} split here but in {splits[vid]} ({where[vid]})")
            splits.setdefault(vid, split)
            where.setdefault(vid, path.name)
    return OfficialLayout(videos, labels, splits)


def _json_entry(path: Path, raw_id: str, entry: object, taxonomy: Taxonomy, label: str) -> str | None:
    """The split of one ActivityNet-style entry (None without a subset), after checking its shape and its label
    against the folder's class `label`."""
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {raw_id}: an entry must be a JSON object, not a {type(entry).__name__}")
    annotations = entry.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ValueError(f"{path}: {raw_id}: 'annotations' must be a JSON object, not {annotations!r}")
    found = annotations.get("label")
    if found is not None and _canonical(str(found), taxonomy, f"{path}: {raw_id}") != label:
        raise ValueError(f"{path}: {raw_id}: label {found!r} disagrees with the folder's class {label}")
    subset = entry.get("subset")
    if subset is None:
        return None
    if str(subset).lower() not in _JSON_SPLIT:
        raise ValueError(f"{path}: {raw_id}: unknown subset {subset!r} (expected training, validation or testing)")
    return _JSON_SPLIT[str(subset).lower()]


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


def _ok_digest(layout: DatasetLayout, ok: set[str]) -> str:
    """`labels_digest` of the dataset's final labels of the `ok` videos, as `emotions split` records it."""
    labels = pd.read_parquet(layout.labels, columns=["video_id", "label"])
    return labels_digest(labels[labels["video_id"].isin(ok)])


def import_official(
    root: Path,
    out: Path,
    taxonomy: Taxonomy,
    settings: IngestSettings | None = None,
    *,
    replace_labels: bool = False,
    fold: int | None = None,
    **ingest_args: object,
) -> tuple[IngestReport, OfficialLayout]:
    """Ingest the official layout under `root` into the dataset folder `out`, with labels and split (of `fold`,
    default 1, when the layout ships several).

    The published labels replace `labels.parquet` and the published split becomes the `official` variant of
    `splits.parquet`; the other variants are kept, unless labels they were built from were replaced (then they and
    `splits.json`, the record of how they were made, go). Labels and splits are committed together.

    Raises ValueError, before anything is fetched or written, when `out` already holds final labels that the
    import would change or drop (decided by the annotation workflow, or another import) unless `replace_labels`
    is set; the message names the file and what would be lost."""
    found = discover(root, taxonomy, fold)
    layout = DatasetLayout(out)
    recover_commits(layout.root)
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
    kept = set(
        pd.read_parquet(layout.videos_manifest, columns=["video_id", "status"]).query("status == 'ok'")["video_id"]
    )
    published = {vid: split for vid, split in found.splits.items() if vid in kept}  # ingest may reject some
    frame = pd.DataFrame({"video_id": list(published), "variant": OFFICIAL, "split": list(published.values())})
    digest: str | None = labels_digest(
        pd.DataFrame([r for r in rows if r["video_id"] in kept], columns=["video_id", "label"])
    )
    if layout.splits.exists() and at_risk.empty:  # our variants stay beside the published one
        written = pq.read_table(layout.splits)
        ours = written.to_pandas()
        ours = ours[ours["variant"] != OFFICIAL][SPLITS_SCHEMA.names]
        frame = pd.concat([ours, frame], ignore_index=True)
        recorded = (written.schema.metadata or {}).get(LABELS_DIGEST_KEY)
        if recorded is None and len(ours):
            digest = None  # made from labels nobody recorded: the import cannot vouch for them either
        elif recorded is not None and (not layout.labels.exists() or recorded.decode() != _ok_digest(layout, kept)):
            digest = recorded.decode()  # they were stale already: the import must not make them look fresh
    # Labels and splits change together: a release never pairs the new labels with splits made from the old ones.
    with file_group(layout.root) as group:
        group.write_table(layout.labels, pa.Table.from_pylist(rows, schema=LABELS_SCHEMA))
        if len(frame):
            table = pa.Table.from_pandas(frame, schema=SPLITS_SCHEMA, preserve_index=False)
            if digest is not None:
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), LABELS_DIGEST_KEY: digest})
            group.write_table(layout.splits, table)
        elif layout.splits.exists() and not at_risk.empty:  # no published split; ours were made from old labels
            group.remove(layout.splits)
        if not at_risk.empty:  # the record of how our (dropped) variants were made
            group.remove(layout.splits.with_suffix(".json"))
    return report, found

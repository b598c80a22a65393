"""The eMotions authors' release layout, in both directions: the one owner of its file names and subset names.

The layout: class folders of videos, `classInd.txt` ("1 Excitation" or "0 Excitation"), `trainlist01.txt` /
`testlist01.txt` (and optionally a val list) with `ClassName/video_id[.ext] [index]` lines (UCF101-style), and/or
the ActivityNet-style JSON (`{"labels": [...], "database": {id: {"subset": ..., "annotations": {"label": ...}}}}`);
raw spellings such as `Sad` map through the taxonomy's aliases.

`discover` reads the authors' download (videos included) for `emotions import-official`; `OfficialFormat` writes
a release variant in this layout (lists and JSON, no media) and reads such a folder back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from emotions_data.layout import ReleaseLayout
from emotions_data.schema import Split
from emotions_data.sources import VIDEO_EXTENSIONS, make_video_id
from emotions_data.taxonomy import Taxonomy

#: The JSON's subset names (ActivityNet-style): the name each split is written as, and read back as.
SUBSET = {Split.TRAIN: "training", Split.VAL: "validation", Split.TEST: "testing"}
#: The authors' own JSON has `training` and `validation` only, and their code evaluates on `validation`: in a
#: file without a `testing` subset, `validation` is read as the test split.
AUTHORS_TEST_SUBSET = SUBSET[Split.VAL]
_READ_SUBSET = {**{str(s): str(s) for s in Split}, "val": "val", **{name: str(s) for s, name in SUBSET.items()}}
_LIST_SPLIT = {"train": "train", "val": "val", "validation": "val", "test": "test"}
CLASS_INDEX = "classInd.txt"
JSON_NAME = "emotions.json"


def list_name(split: str, fold: int = 1) -> str:
    """The UCF101-style list file of `split` (`trainlist01.txt`)."""
    return f"{split}list{fold:02d}.txt"


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
    if (root / CLASS_INDEX).exists():
        read_class_index(root / CLASS_INDEX, taxonomy)  # validates the class names
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
    return OfficialLayout(videos, labels, published_splits(root, taxonomy, labels, fold, videos_known=True))


def published_splits(
    root: Path, taxonomy: Taxonomy, labels: dict[str, str], fold: int | None = None, *, videos_known: bool
) -> dict[str, str]:
    """video_id -> split from the list files (fold `fold`) and ActivityNet-style JSON files under `root`.

    With `videos_known`, `labels` holds every video (from the class folders): a list entry naming another video
    is refused, a JSON entry naming one is skipped (the JSON may list videos the download lacks). Without it,
    the entries define the videos and their classes are added to `labels` (a folder of lists and JSON only, as a
    release's `official/<variant>/`). Raises ValueError as `discover` does."""
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
            named = _canonical(entry.split("/")[0], taxonomy, f"{path}: line {n}") if "/" in entry else None
            if vid not in labels:
                if videos_known or named is None:
                    raise ValueError(f"{path}: line {n}: {entry!r} names no video under {root}")
                labels[vid] = named
            if named is not None and named != labels[vid]:
                raise ValueError(f"{path}: line {n}: {entry!r} disagrees with the folder's class {labels[vid]}")
            split = _LIST_SPLIT[kind.group(1).lower()]
            if vid in splits and splits[vid] != split:
                raise ValueError(f"{path}: line {n}: {entry!r} is also in the {splits[vid]} split ({where[vid]})")
            splits[vid], where[vid] = split, f"{path.name}: line {n}"
    for path in sorted(root.glob("*.json")):
        for vid, raw_id, split in _json_splits(path, taxonomy, labels, videos_known):
            if vid in splits and splits[vid] != split:
                raise ValueError(f"{path}: {raw_id}: in the {split} split here but in {splits[vid]} ({where[vid]})")
            splits.setdefault(vid, split)
            where.setdefault(vid, path.name)
    return splits


def _json_splits(
    path: Path, taxonomy: Taxonomy, labels: dict[str, str], videos_known: bool
) -> list[tuple[str, str, str]]:
    """(video_id, raw id, split) of every entry with a subset in one ActivityNet-style JSON file (none when the
    file holds no `database`)."""
    data = read_json(path)
    if not isinstance(data, dict) or "database" not in data:
        return []
    database = data["database"]
    if not isinstance(database, dict):
        raise ValueError(
            f"{path}: 'database' must be a JSON object of video id -> entry, not a {type(database).__name__}"
        )
    testing = SUBSET[Split.TEST]
    authors = not any(isinstance(e, dict) and str(e.get("subset")).lower() == testing for e in database.values())
    found = []
    for raw_id, entry in database.items():
        vid = make_video_id(raw_id, raw_id)
        if vid not in labels:
            if videos_known:
                continue  # the JSON may list videos the download lacks; ingest only knows files
            raw = ((entry.get("annotations") or {}) if isinstance(entry, dict) else {}) or {}
            if isinstance(raw, dict) and raw.get("label") is not None:
                labels[vid] = _canonical(str(raw["label"]), taxonomy, f"{path}: {raw_id}")
        split = _json_entry(path, raw_id, entry, taxonomy, labels.get(vid), authors)
        if split is not None:
            found.append((vid, raw_id, split))
    return found


def _json_entry(
    path: Path, raw_id: str, entry: object, taxonomy: Taxonomy, label: str | None, authors: bool
) -> str | None:
    """The split of one ActivityNet-style entry (None without a subset), after checking its shape and its label
    against the folder's class `label`. `authors`: the file has no `testing` subset, so `validation` is test."""
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
    name = str(subset).lower()
    if name not in _READ_SUBSET:
        raise ValueError(f"{path}: {raw_id}: unknown subset {subset!r} (expected training, validation or testing)")
    return str(Split.TEST) if authors and name == AUTHORS_TEST_SUBSET else _READ_SUBSET[name]


@dataclass(frozen=True)
class OfficialFormat:
    """The authors' layout of one release variant in `official/<variant>/`: `classInd.txt`, one list per split
    and the ActivityNet-style `emotions.json`, so their code reads our releases (no media)."""

    name: str = "official"

    def write(self, release: ReleaseLayout, variant: str, rows: pd.DataFrame, taxonomy: Taxonomy) -> list[Path]:
        """Write the variant's `rows` (video_id, label, split). Returns the files written."""
        folder = release.official(variant)
        folder.mkdir(parents=True)
        written = [folder / CLASS_INDEX, *(folder / list_name(split) for split in Split), folder / JSON_NAME]
        written[0].write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(taxonomy.classes)))
        for split, path in zip(Split, written[1:-1], strict=True):
            part = rows[rows["split"] == split].sort_values("video_id")
            path.write_text("".join(f"{lab}/{vid}\n" for lab, vid in zip(part["label"], part["video_id"], strict=True)))
        database = {
            vid: {"subset": SUBSET[Split(split)], "annotations": {"label": lab}}
            for vid, split, lab in sorted(zip(rows["video_id"], rows["split"], rows["label"], strict=True))
        }
        written[-1].write_text(json.dumps({"labels": list(taxonomy.classes), "database": database}, indent=1))
        return written

    def read(self, release: ReleaseLayout, variant: str, taxonomy: Taxonomy) -> pd.DataFrame:
        """The variant's rows as written: video_id, label, split, sorted by video_id. Raises ValueError as
        `discover` does."""
        folder = release.official(variant)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder (no variant {variant!r} in the authors' layout)")
        labels: dict[str, str] = {}
        splits = published_splits(folder, taxonomy, labels, videos_known=False)
        rows = [{"video_id": v, "label": labels[v], "split": s} for v, s in sorted(splits.items())]
        return pd.DataFrame(rows, columns=["video_id", "label", "split"])

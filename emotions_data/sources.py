"""Turn the user's SOURCE arguments into input rows with stable, filesystem-safe video ids.

A SOURCE is a text file of URLs (one per line, ``#`` comments allowed), a CSV or Parquet table
with a ``url`` column (optional ``video_id``, ``platform``, ``uploader``; other columns are carried
through), a local folder of videos (searched recursively) or a single local video file.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".flv", ".3gp", ".ts", ".mpg", ".mpeg", ".wmv"}
)
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# host name labels of each platform, its mobile and share hosts included (v.m.chenzhongtech.com serves Kuaishou)
_PLATFORMS = {"douyin": "douyin", "iesdouyin": "douyin", "kuaishou": "kuaishou", "gifshow": "kuaishou",
              "chenzhongtech": "kuaishou", "tiktok": "tiktok"}  # fmt: skip


class SourceError(ValueError):
    """A SOURCE argument or one of its rows is unusable; the message names the file and row."""


@dataclass(frozen=True)
class InputItem:
    video_id: str
    source: str  # a URL, or an absolute local path
    source_kind: str  # "url" or "file"
    platform: str | None = None
    uploader: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def is_safe_id(value: str) -> bool:
    return bool(_SAFE_ID.fullmatch(value)) and ".." not in value


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def slugify(text: str, max_len: int = 60) -> str:
    """ASCII letters, digits, '.', '_' and '-' only; never empty, never starting with a dot."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")
    slug = re.sub(r"\.{2,}", ".", slug)[:max_len].strip("._-")
    return slug or "video"


def make_video_id(source: str, given: str | None = None) -> str:
    """A given id is kept when already safe; anything else becomes a slug plus a hash of the
    original text, so distinct untrusted ids never collide after sanitising."""
    if given is not None and given != "":
        return given if is_safe_id(given) else f"{slugify(given)}-{_short_hash(given)}"
    name = Path(unquote(_url_path(source))).stem if "://" in source else Path(source).stem
    return f"{slugify(name)}-{_short_hash(source)}"


def _url_path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:  # malformed ("Invalid IPv6 URL"): still an input, whose fetch records the problem
        return url.rpartition("/")[2]


def platform_of(url: str) -> str | None:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed URL: its fetch fails and says why
        return None
    for key, name in _PLATFORMS.items():
        if key in host.split("."):
            return name
    return host or None


def _clean(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


_KNOWN_COLUMNS = ("url", "video_id", "platform", "uploader")


def _check_columns(columns: list[str], where: str) -> None:
    """Raises SourceError naming a column the table holds twice (which of the two would be read is a guess)."""
    twice = sorted({str(c) for c in columns if columns.count(c) > 1})
    if twice:
        raise SourceError(f"{where}: column(s) {', '.join(map(repr, twice))} appear more than once; keep one of each")


def _csv_header(path: Path) -> list[str]:
    """The CSV's column names as written (pandas renames a repeated one `url.1`)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _read_parquet(path: Path) -> pd.DataFrame:
    """The Parquet table at `path`; SourceError when a column is given twice (pyarrow's own error says only "Multiple
    matches for FieldRef"), else pyarrow's error as it is."""
    try:
        return pd.read_parquet(path)
    except pa.ArrowException as exc:
        try:
            names = pq.read_schema(path).names
        except pa.ArrowException:
            raise exc from None
        _check_columns(names, str(path))
        raise


def _items_from_table(frame: pd.DataFrame, where: str) -> list[InputItem]:
    _check_columns(list(frame.columns), where)
    if "url" not in frame.columns:
        raise SourceError(f"{where}: no 'url' column (columns: {', '.join(map(str, frame.columns))})")
    extra_cols = [c for c in frame.columns if c not in _KNOWN_COLUMNS]
    items = []
    for row_no, row in enumerate(frame.to_dict("records"), start=2 if where.endswith(".csv") else 0):
        for column in _KNOWN_COLUMNS:  # a Parquet column may hold lists, structs or bytes: never a URL or an id
            value = row.get(column)
            if isinstance(value, dict | bytes) or (hasattr(value, "__len__") and not isinstance(value, str)):
                kind = {dict: "struct", bytes: "bytes"}.get(type(value), "list")
                raise SourceError(f"{where}: row {row_no}: column {column!r} holds a {kind} "
                                  f"({' '.join(str(value).split())[:60]}), not text")  # fmt: skip
        url = _clean(row["url"])
        if url is None:
            raise SourceError(f"{where}: row {row_no}: empty url")
        items.append(
            InputItem(
                video_id=make_video_id(url, _clean(row.get("video_id"))),
                source=url,
                source_kind="url",
                platform=_clean(row.get("platform")) or platform_of(url),
                uploader=_clean(row.get("uploader")),
                extra={c: row[c] for c in extra_cols},
            )
        )
    return items


def _absolute(path: Path) -> str:
    """The path an item is known by: resolved when it can be (ids stay as they were), else as found (a dangling
    or looping link names itself, not a target that is not there)."""
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError):
        return str(path.absolute())


def escaped_path(path: str | Path) -> str:
    """`path` as text with the bytes of a name that is not UTF-8 written as `\\xNN` (os.fsencode's bytes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _not_utf8(path: Path) -> str | None:
    """Why `path` cannot be an input's name (ids, manifests and releases are UTF-8 text), else None."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return f"{escaped_path(path)}: the file name is not UTF-8 text; rename it to ingest it"
    return None


def _items_from_folder(folder: Path, refused: list[str] | None = None) -> list[InputItem]:
    """Every non-folder entry with a video extension, found recursively (links to folders are not followed). An
    entry that is not a readable file (a FIFO, a dangling link) is still an input: its fetch records why it failed.
    One whose path is not UTF-8 is left out with a line in `refused` (raises SourceError naming it without a list)."""

    def refuse(exc: OSError) -> None:  # a subfolder we cannot list would silently hide its videos
        raise SourceError(f"{exc.filename or folder}: cannot list the folder: {exc.strerror or exc}")

    paths = [
        Path(top) / name
        for top, _, names in os.walk(folder, onerror=refuse)
        for name in names
        if Path(name).suffix.lower() in VIDEO_EXTENSIONS
    ]
    bad = [problem for path in sorted(paths, key=os.fsencode) if (problem := _not_utf8(path))]
    if bad and refused is None:
        raise SourceError(bad[0])
    if refused is not None:
        refused += bad
    paths = [path for path in paths if _not_utf8(path) is None]
    if not paths:
        looked = ", ".join(sorted(VIDEO_EXTENSIONS))
        found = f"; {len(bad)} refused, the first {bad[0]}" if bad else ""
        raise SourceError(f"{escaped_path(folder)}: no videos in this folder (looked for {looked}){found}")
    items = []
    for path in sorted(paths):
        source = _absolute(path)
        items.append(InputItem(make_video_id(source), source, "file", platform="local"))
    return items


def _items_from_text(path: Path) -> list[InputItem]:
    items = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():  # editors on Windows write a BOM
        url = line.strip()
        if url and not url.startswith("#"):
            items.append(InputItem(make_video_id(url), url, "url", platform=platform_of(url)))
    return items


def _not_a_file(path: Path) -> str | None:
    """Why the SOURCE argument `path` is neither a folder nor a file we can read, else None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "dangling symbolic link" if path.is_symlink() else "no such file or folder"
    except OSError as exc:  # a link loop, a name too long, a folder on the way we may not enter
        return exc.strerror or str(exc)
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    return "not a regular file or a folder (a FIFO, socket or device)"  # reading a FIFO would wait forever


def read_source(arg: str | Path, refused: list[str] | None = None) -> list[InputItem]:
    """Input items of one SOURCE argument, in file order. A folder's files whose names are not UTF-8 are left out,
    each with a line in `refused` (without `refused`, the first is a SourceError).

    Raises `SourceError` naming the file (and row) when it does not exist, cannot be read, is not a table of
    URLs, has no rows, its name is not UTF-8, or (a folder) holds no videos."""
    path = Path(arg)
    problem = _not_a_file(path)
    if problem:
        raise SourceError(f"{escaped_path(path)}: {problem}")
    problem = _not_utf8(path)
    if problem:
        raise SourceError(problem)
    if path.is_dir():
        return _items_from_folder(path, refused)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        source = _absolute(path)
        return [InputItem(make_video_id(source), source, "file", platform="local")]
    try:
        if suffix == ".csv":
            _check_columns(_csv_header(path), str(path))
            items = _items_from_table(pd.read_csv(path, dtype=str, keep_default_na=False), str(path))
        elif suffix == ".parquet":
            items = _items_from_table(_read_parquet(path), str(path))
        else:
            items = _items_from_text(path)
    except SourceError:
        raise
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError, pa.ArrowException) as exc:
        # pandas and pyarrow raise many kinds for a file that is not what its name says (ArrowInvalid,
        # ArrowNotImplementedError, EmptyDataError, ...): all mean this SOURCE is unreadable
        raise SourceError(f"{path}: unreadable source: {' '.join(str(exc).split())}") from None
    if not items:
        what = "rows" if suffix in (".csv", ".parquet") else "URLs"
        raise SourceError(f"{path}: no {what} (a SOURCE must name at least one video)")
    return items


def read_sources(args: list[str | Path], refused: list[str] | None = None) -> list[InputItem]:
    """Items of all SOURCE arguments; the same source twice is kept once, the same id for two
    different sources is an error. Files left out of folders are listed in `refused` (`read_source`)."""
    seen_source: dict[str, InputItem] = {}
    seen_id: dict[str, str] = {}
    items = []
    for arg in args:
        for item in read_source(arg, refused):
            if item.source in seen_source:
                continue
            if item.video_id in seen_id:
                raise SourceError(
                    f"{arg}: video_id {item.video_id!r} is used for both {seen_id[item.video_id]} and {item.source}"
                )
            seen_source[item.source] = item
            seen_id[item.video_id] = item.source
            items.append(item)
    return items

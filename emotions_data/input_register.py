"""The dataset's input register (`.work/inputs.parquet`): every input any run was given, with its `video_id` and
its `input_index` (the order in which inputs were first registered, which decides which copy of a duplicate is
kept). It is kept across runs and is the only record of them, so it is never remade: an unreadable one is refused.

The register's metadata also records the SOURCE files registered in full (`source_digest`), so a re-run given the
same unchanged file does not parse it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emotions_data.layout import DatasetLayout
from emotions_data.location import LocalLocation
from emotions_data.schema import INPUTS_SCHEMA
from emotions_data.sources import VIDEO_EXTENSIONS, InputItem, SourceError
from emotions_data.storage import write_table_atomic


def register_inputs(
    layout: DatasetLayout, items: Sequence[InputItem], digests: Sequence[str] | None = None
) -> pd.DataFrame:
    """Add new items to the dataset's input register (kept across runs) and return all of it. `digests`: the
    `source_digest`s of the SOURCE files the items were read from, recorded in the register's metadata with it
    (see `registered_digests`)."""
    existing_table = pq.read_table(layout.inputs) if layout.inputs.exists() else None
    existing = existing_table.to_pandas() if existing_table is not None else None
    known = registered_digests(layout, existing_table.schema if existing_table is not None else None)
    new_digests = sorted(set(digests or ()) - known)
    known_source: dict[str, str] = {}
    known_id: dict[str, str] = {}
    next_index = 0
    if existing is not None and len(existing):
        known_source = dict(zip(existing["source"], existing["video_id"], strict=True))
        known_id = dict(zip(existing["video_id"], existing["source"], strict=True))
        next_index = int(existing["input_index"].max()) + 1
    new_rows = []
    for item in items:
        if item.source in known_source:
            continue
        if item.video_id in known_id:
            raise SourceError(
                f"video_id {item.video_id!r} of {item.source} is already used in this dataset "
                f"by {known_id[item.video_id]}"
            )
        known_id[item.video_id] = item.source
        new_rows.append(
            {
                "video_id": item.video_id,
                "source": item.source,
                "source_kind": item.source_kind,
                "input_index": next_index,
                "platform": item.platform,
                "uploader": item.uploader,
                **item.extra,
            }
        )
        next_index += 1
    if not new_rows and existing is not None:
        if new_digests:  # nothing new, but these files are now known to be registered
            write_table_atomic(layout.inputs, _with_digests(existing_table, known | set(new_digests)))
        return existing
    added = pd.DataFrame(new_rows, columns=None if new_rows else INPUTS_SCHEMA.names)  # no rows: still the columns
    frame = added if existing is None else pd.concat([existing, added])
    frame = frame.reset_index(drop=True)
    base = pa.Table.from_pandas(frame[INPUTS_SCHEMA.names], schema=INPUTS_SCHEMA, preserve_index=False)
    extras = [c for c in frame.columns if c not in INPUTS_SCHEMA.names]
    table = base
    for col in extras:
        table = table.append_column(col, pa.array(frame[col].astype(object).where(frame[col].notna(), None)))
    write_table_atomic(layout.inputs, _with_digests(table, known | set(new_digests)))
    return frame


#: Register metadata key: the `source_digest`s of SOURCE files whose every item is in the register.
_SOURCES_KEY = b"emotions.registered_sources"
# Part of every digest: change it when the same file may give other items (the id rules, the file formats).
_SOURCE_RULES = b"sources 1"


def source_digest(arg: str | Path) -> str | None:
    """SHA-256 of a SOURCE file's kind and bytes, for a URL list or a table of URLs (whose items depend on nothing
    else: `sources.read_source`); None for a folder, a video file or a file that cannot be read (those are always
    read again)."""
    path = Path(arg)
    suffix = path.suffix.lower()
    kind = suffix if suffix in (".csv", ".parquet") else ".txt"
    if suffix in VIDEO_EXTENSIONS:
        return None
    digest = hashlib.sha256(_SOURCE_RULES + b"\0" + kind.encode() + b"\0")
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def registered_digests(layout: DatasetLayout, schema: pa.Schema | None = None) -> set[str]:
    """The `source_digest`s recorded in the register: SOURCE files all of whose items it holds. Kept in the
    register's own metadata, so deleting or replacing the register forgets them too."""
    if schema is None:
        try:
            schema = pq.read_schema(layout.inputs)
        except (OSError, pa.ArrowException):
            return set()
    raw = (schema.metadata or {}).get(_SOURCES_KEY)
    try:
        return set(json.loads(raw)) if raw else set()
    except ValueError:
        return set()


def _with_digests(table: pa.Table, digests: set[str]) -> pa.Table:
    metadata = {**(table.schema.metadata or {}), _SOURCES_KEY: json.dumps(sorted(digests)).encode()}
    return table.replace_schema_metadata(metadata)


def check_input_register(location: LocalLocation) -> None:
    """Refuse an input register (`.work/inputs.parquet`) that is not readable Parquet, naming it: unlike the
    manifest it cannot be remade, since it is the only record of the inputs earlier runs registered."""
    path = location.layout.inputs
    if not path.exists():
        return
    try:
        pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise ValueError(
            f"{location.shown(path)}: the dataset's input register is not readable Parquet ({reason}); restore it "
            "from a copy (deleting it forgets every input earlier runs registered)"
        ) from None


def read_inputs(layout: DatasetLayout) -> pa.Table:
    """The input register's own columns, in `input_index` order (the order it is written in)."""
    table = pq.read_table(layout.inputs, columns=INPUTS_SCHEMA.names)
    return table.take(pc.sort_indices(table["input_index"])).combine_chunks()

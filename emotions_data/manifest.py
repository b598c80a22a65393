"""The one reader of the dataset's versioned manifests (`manifests/videos.parquet`): every step that reads the videos
manifest (ingest on an existing dataset, split, release) goes through :func:`read_versioned_table`, so none reads a
file of a newer schema as if it were this one, or overwrites it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.schema import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, SCHEMA_VERSION_KEY


class ManifestVersionError(ValueError):
    """A manifest written under a schema version this toolkit does not read (a newer one, or an unknown one)."""


def _version_key(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def check_schema_version(path: Path | str, schema: pa.Schema) -> None:
    """Refuse a manifest whose schema version (Parquet metadata key `emotions.schema_version`) this toolkit does
    not read: a newer one, or one not in `READABLE_SCHEMA_VERSIONS`. Older readable versions and a file without the
    key (written before versioning, or by hand) are accepted.

    Raises `ManifestVersionError` naming `path` and both versions."""
    raw = (schema.metadata or {}).get(SCHEMA_VERSION_KEY)
    if raw is None:
        return
    version = raw.decode(errors="replace")
    if version in READABLE_SCHEMA_VERSIONS:  # this version or an older one this toolkit still reads
        return
    found, ours = _version_key(version), _version_key(SCHEMA_VERSION)
    if found is not None and ours is not None and found > ours:
        raise ManifestVersionError(
            f"{path}: manifest schema version {version}, this emotions reads {SCHEMA_VERSION}: "
            "written by a newer emotions; upgrade (pip install -U emotions)"
        )
    raise ManifestVersionError(
        f"{path}: unknown manifest schema version {version!r}, this emotions reads {SCHEMA_VERSION}"
    )


def read_versioned_table(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a manifest (e.g. `manifests/videos.parquet`) after checking its schema version: the one reader for
    every step that reads the videos manifest, so none reads a newer file as if it were this version.

    Raises `ManifestVersionError` for a newer or unknown version, `ValueError` naming the file when it is not
    Parquet, `OSError` when it cannot be read."""
    try:
        schema = pq.read_schema(path)
        check_schema_version(path, schema)
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}: not a readable Parquet manifest: {exc}") from None

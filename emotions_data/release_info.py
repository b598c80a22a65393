"""`release.json`, the metadata of a release (docs/reference/release-format.md): one typed record that reads and
writes it.

Modelled on Hugging Face datasets' `DatasetInfo` (`from_directory` / `write_to_directory`). The release writes it,
and the card, the baseline and the command line read it; none of them parses the JSON itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotions_data.layout import ReleaseLayout
from emotions_data.storage import write_bytes_atomic

RELEASE_INFO_NAME = "release.json"
_OPTIONAL_TEXT = ("pretty_name", "description", "citation")  # not written by `write_release`; a curator may add them


@dataclass
class ReleaseInfo:
    """What `release.json` holds. Key order and indentation of the written file follow the field order (the
    optional `pretty_name`, `description` and `citation` are written only when set), so a release's file stays
    byte-identical for the same input."""

    name: str
    version: str  # X.Y.Z
    created_at: str = ""  # ISO 8601, UTC, seconds
    toolkit_version: str = ""
    schema_version: str = ""
    license: str = "other"  # Hugging Face licence id; "other" = eMotions' academic-use terms
    taxonomy: dict[str, Any] = field(default_factory=dict)  # {name, classes, polarity}
    variants: dict[str, dict[str, int]] = field(default_factory=dict)  # variant -> split -> rows
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> split -> relative Parquet path
    ingest: dict[str, Any] = field(default_factory=dict)  # manifests/ingest_summary.json
    split_settings: dict[str, Any] = field(default_factory=dict)  # manifests/splits.json
    annotation: dict[str, Any] = field(default_factory=dict)  # n_annotators, groups, votes_per_item, stages, ...
    pretty_name: str = ""
    description: str = ""
    citation: str = ""

    @property
    def classes(self) -> list[str]:
        """The taxonomy's classes in index order (empty when release.json does not name them)."""
        return list(self.taxonomy.get("classes") or [])

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in file order."""
        data: dict[str, Any] = {
            "name": self.name, "version": self.version, "created_at": self.created_at,
            "toolkit_version": self.toolkit_version, "schema_version": self.schema_version, "license": self.license,
            "taxonomy": self.taxonomy, "variants": self.variants, "files": self.files, "ingest": self.ingest,
            "split_settings": self.split_settings, "annotation": self.annotation,
        }  # fmt: skip
        data.update({key: getattr(self, key) for key in _OPTIONAL_TEXT if getattr(self, key)})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, name: str = "", version: str = "") -> ReleaseInfo:
        """A record from the JSON object; `name` and `version` stand in for missing keys. Missing sections are
        empty; `files` may be nested ({variant: {split: path}}) or a flat list of `data/<variant>/<split>.parquet`
        paths (other paths are ignored). Raises ValueError naming the first key of the wrong type."""
        for key in ("taxonomy", "variants", "ingest", "split_settings", "annotation"):
            if not isinstance(data.get(key) or {}, dict):
                raise ValueError(f"{key!r} must be a JSON object, not {type(data[key]).__name__}")
        if not isinstance(data.get("files") or [], dict | list):
            raise ValueError(f"'files' must be a JSON object or list, not {type(data['files']).__name__}")
        return cls(
            name=str(data.get("name", name)),
            version=str(data.get("version", version)),
            created_at=str(data.get("created_at", "")),
            toolkit_version=str(data.get("toolkit_version", "")),
            schema_version=str(data.get("schema_version", "")),
            license=str(data.get("license") or "other"),
            taxonomy=dict(data.get("taxonomy") or {}),
            variants=dict(data.get("variants") or {}),
            files=_nested_files(data.get("files") or {}),
            ingest=dict(data.get("ingest") or {}),
            split_settings=dict(data.get("split_settings") or {}),
            annotation=dict(data.get("annotation") or {}),
            **{key: str(data.get(key, "")) for key in _OPTIONAL_TEXT},
        )

    @classmethod
    def from_directory(cls, release_dir: Path) -> ReleaseInfo:
        """Read `<release_dir>/release.json`. A missing `name` or `version` is taken from where the folder sits
        (`DATASET/releases/<version>/`: the dataset folder's name and the folder's name). Raises ValueError, one
        line naming the file: missing (not a release folder), unreadable, not JSON (e.g. truncated), not a JSON
        object, or a section of the wrong type."""
        release_dir = Path(release_dir)
        path = release_dir / RELEASE_INFO_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file ({release_dir} is not a release folder)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot be read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON, perhaps truncated ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object but a JSON {type(data).__name__}")
        here = release_dir.resolve()
        try:
            return cls.from_dict(data, name=here.parent.parent.name, version=here.name)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def write_to_directory(self, release_dir: Path) -> Path:
        """Write `<release_dir>/release.json` (2-space indent, ASCII, no trailing newline), atomically. Returns
        its path."""
        path = Path(release_dir) / RELEASE_INFO_NAME
        write_bytes_atomic(path, json.dumps(self.to_dict(), indent=2).encode())
        return path


def _nested_files(listed: dict[str, Any] | list[Any]) -> dict[str, dict[str, str]]:
    """variant -> split -> path, read back from each path (`data/<variant>/<split>.parquet`), whichever form
    release.json lists them in."""
    paths: list[str] = []
    if isinstance(listed, dict):
        for value in listed.values():
            paths += [str(p) for p in value.values()] if isinstance(value, dict) else [str(value)]
    else:
        paths = [str(p) for p in listed]
    files: dict[str, dict[str, str]] = {}
    for rel in paths:
        found = ReleaseLayout.data_path_parts(rel)
        if found is not None:
            files.setdefault(found[0], {})[found[1]] = Path(rel).as_posix()
    return files

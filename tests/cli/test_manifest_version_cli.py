"""A videos manifest of a newer schema version is refused, before anything changes, by every step that reads it
(ingest on an existing dataset, split, release), in one line naming the file and both versions; a manifest without a
version (written before versioning, or by hand) is read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emotions_data.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY
from tests.support.commands import run_cli
from tests.support.manifests import released_dataset


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _stamp(path: Path, version: str) -> bytes:
    table = pq.read_table(path)
    metadata = {**(table.schema.metadata or {}), SCHEMA_VERSION_KEY: version.encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path.read_bytes()


@pytest.mark.parametrize("version", ["2.0", "1.7"])
def test_a_manifest_of_a_newer_schema_is_refused_by_ingest_split_and_release(corpus, tmp_path, version):
    layout, _ = released_dataset(tmp_path / "ds")
    manifest = layout.videos_manifest
    before = _stamp(manifest, version)
    expected = (
        f"error: {manifest}: manifest schema version {version}, this emotions reads {SCHEMA_VERSION}: written by a "
        "newer emotions; upgrade (pip install -U emotions)"
    )
    commands = [
        ["ingest", str(corpus / "landscape.mp4"), "--out", str(layout.root)],
        ["split", str(layout.root)],
        ["release", str(layout.root), "--version", "0.1.0"],
    ]
    for args in commands:
        assert one_line_error(run_cli(*args)) == expected, args
    assert manifest.read_bytes() == before, "nothing rewrote the newer manifest"
    assert not (layout.root / ".work").exists() and not (layout.root / "releases").exists()


def test_an_unknown_version_is_refused_too(corpus, tmp_path):
    layout, _ = released_dataset(tmp_path / "ds")
    _stamp(layout.videos_manifest, "draft")
    line = one_line_error(run_cli("split", str(layout.root)))
    assert line == (
        f"error: {layout.videos_manifest}: unknown manifest schema version 'draft', "
        f"this emotions reads {SCHEMA_VERSION}"
    )


def test_an_unversioned_manifest_and_the_current_version_are_read(tmp_path):
    layout, _ = released_dataset(tmp_path / "ds")
    table = pq.read_table(layout.videos_manifest)
    assert SCHEMA_VERSION_KEY not in (table.schema.metadata or {})  # written by pandas, as by hand
    proc = run_cli("split", str(layout.root))
    assert proc.returncode == 0, proc.stderr
    _stamp(layout.videos_manifest, SCHEMA_VERSION)
    proc = run_cli("release", str(layout.root), "--version", "0.1.0")
    assert proc.returncode == 0, proc.stderr

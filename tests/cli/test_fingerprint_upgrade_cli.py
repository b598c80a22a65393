"""A dataset whose fingerprints an older version wrote (``p1``) is upgraded by the next `emotions ingest` without a
transcode: its normalised media are kept as they are (same file, same inode and modification time), every clip gets
a current fingerprint (made from its normalised file, or from its original where a near-duplicate's media was
removed), and the duplicate decisions stay the same; on disk and in object storage."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data import fingerprint as fp
from emotions_data.layout import DatasetLayout
from emotions_data.location import open_location
from emotions_data.normalise import older_recipes, recipe_id
from emotions_data.objectstore import ObjectStore
from emotions_data.schema import NORMALISE_STAGE_SCHEMA
from emotions_data.settings import load_settings
from emotions_data.storage import StageLog
from tests.support.commands import run_cli
from tests.support.objectstore import moto_env

CLIPS = ["landscape.mp4", "source.mp4", "reupload.mp4", "lookalike_a.mp4", "lookalike_b.mp4"]


def as_p1(fingerprint: str) -> str:
    """The ``p1`` fingerprint the previous version wrote for the same picture: 16 frames of 35 bits, each in 8
    bytes (the picture bits are the same in both versions)."""
    words = fp.decode_many([fingerprint]).picture[0] << np.uint64(40 - fp.BITS_PER_FRAME)
    return "p1:" + "".join(int(w).to_bytes(5, "big").hex().ljust(16, "0") for w in words)


def test_older_fingerprints_are_made_again_from_the_kept_media(corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in CLIPS:
        shutil.copy(corpus / name, folder / name)
    layout = DatasetLayout(tmp_path / "ds")
    run_cli("ingest", str(folder), "--out", str(layout.root), "--workers", "1", check=True)

    # The dataset as the previous version left it: p1 fingerprints, made under that version's recipe.
    normalise = load_settings(None).normalise
    assert recipe_id(normalise, "p1") in older_recipes(normalise)
    manifest = pq.read_table(layout.videos_manifest)
    old = manifest.to_pandas().set_index("video_id")
    made_in_pass, p1_manifest = as_older_version(StageLog(layout.normalise_log, NORMALISE_STAGE_SCHEMA), manifest)
    pq.write_table(p1_manifest, layout.videos_manifest)
    assert (old.reason == "near_duplicate").sum() == 1 and (old.status == "ok").sum() == len(CLIPS) - 1
    media = {p.name: p.stat() for p in layout.media.iterdir()}
    assert len(media) == len(CLIPS) - 1  # the near-duplicate's media were removed

    proc = run_cli("ingest", str(folder), "--out", str(layout.root), "--workers", "1")
    assert proc.returncode == 0, proc.stderr

    for name, before in media.items():
        after = (layout.media / name).stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert sorted(p.name for p in layout.media.iterdir()) == sorted(media)
    new = pq.read_table(layout.videos_manifest).to_pandas().set_index("video_id")
    for col in ("status", "reason", "dup_of", "media_path", "media_sha256"):
        assert new[col].equals(old[col]), col
    assert all(f.startswith("p2:") for f in new.fingerprint), "every clip has a current fingerprint"
    for vid, fingerprint in new.fingerprint.items():
        # made again from the decoded media (or the original) rather than in the pass: the encoding's loss only
        assert fp.distance(fingerprint, made_in_pass[vid]) < 0.1, vid
    rows = {r["video_id"]: r for r in StageLog(layout.normalise_log, NORMALISE_STAGE_SCHEMA).load_table().to_pylist()}
    assert {r["recipe"] for r in rows.values()} == {recipe_id(normalise)}
    summary = json.loads(layout.ingest_summary.read_text())
    assert summary["n_processed"]["normalise"] == len(CLIPS)

    proc = run_cli("ingest", str(folder), "--out", str(layout.root), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(layout.ingest_summary.read_text())["n_processed"]["normalise"] == 0, "upgraded once"


@pytest.fixture()
def s3(monkeypatch, tmp_path):
    """A bucket `data` on a moto S3 server on loopback; every process is pointed at it."""
    with moto_env(monkeypatch, tmp_path / "scratch"):
        yield ObjectStore("s3://data/ds")


def as_older_version(log: StageLog, manifest: pa.Table) -> tuple[dict[str, str], pa.Table]:
    """Turn an ingested dataset into what the previous version left: its normalise stage log rewritten with ``p1``
    fingerprints and that version's recipe (returns the fingerprints the pass made), its manifest with ``p1``
    fingerprints (returned, to be written back)."""
    normalise = load_settings(None).normalise
    rows = log.load_table().to_pylist()
    assert {r["recipe"] for r in rows} == {recipe_id(normalise)} and len(rows) == len(CLIPS)
    log.commit([{**r, "recipe": recipe_id(normalise, "p1"), "fingerprint": as_p1(r["fingerprint"])} for r in rows])
    log.compact()
    fingerprints = [None if f is None else as_p1(f) for f in manifest.column("fingerprint").to_pylist()]
    at = manifest.schema.names.index("fingerprint")
    return {r["video_id"]: r["fingerprint"] for r in rows}, manifest.set_column(
        at, "fingerprint", pa.array(fingerprints, pa.string())
    )


@pytest.mark.server  # an S3 server (moto) on loopback
def test_older_fingerprints_in_object_storage_are_made_again_without_touching_the_media(s3, corpus, tmp_path):
    """In object storage the normalised files are not on the worker: the fingerprint is made from the original."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in CLIPS:
        shutil.copy(corpus / name, folder / name)
    run_cli("ingest", str(folder), "--out", "s3://data/ds", "--workers", "1", check=True)
    location = open_location("s3://data/ds")
    log = location.stage_log(location.layout.normalise_log, NORMALISE_STAGE_SCHEMA)
    old_manifest = s3.read_table("manifests/videos.parquet")
    made_in_pass, p1_manifest = as_older_version(log, old_manifest)
    sink = pa.BufferOutputStream()
    pq.write_table(p1_manifest, sink)
    s3.put_bytes("manifests/videos.parquet", sink.getvalue().to_pybytes())
    media = {rel: s3.fs.info(s3.key(rel)) for rel in s3.list("media")}
    assert len(media) == len(CLIPS) - 1

    proc = run_cli("ingest", str(folder), "--out", "s3://data/ds", "--workers", "1")
    assert proc.returncode == 0, proc.stderr

    for rel, before in media.items():
        after = s3.fs.info(s3.key(rel))
        assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"]), rel
    assert sorted(s3.list("media")) == sorted(media)
    old, new = (t.to_pandas().set_index("video_id") for t in (old_manifest, s3.read_table("manifests/videos.parquet")))
    for col in ("status", "reason", "dup_of", "media_path", "media_sha256"):
        assert new[col].equals(old[col]), col
    assert all(f.startswith("p2:") for f in new.fingerprint)
    for vid, fingerprint in new.fingerprint.items():
        assert fp.distance(fingerprint, made_in_pass[vid]) < 0.1, vid
    assert json.loads(s3.read_bytes("manifests/ingest_summary.json"))["n_processed"]["normalise"] == len(CLIPS)

"""`emotions ingest --out s3://bucket/prefix` against a real S3-compatible server on loopback (moto's server mode),
as a user runs it: the same manifest as on local disk, every object whole, one run at a time, and a driver killed
mid-run resumed by the next run without downloading finished items again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data.ingest import read_manifest
from emotions_data.objectstore import ObjectLock, ObjectStore
from emotions_data.storage import TMP_MARK
from tests.support.commands import EMOTIONS, _wait_for, run_cli
from tests.support.corpus import url_table
from tests.support.objectstore import (
    assert_every_object_whole,
    listings,
    moto_env,
    object_requests,
    stored_manifest,
)

pytestmark = [pytest.mark.slow, pytest.mark.server]
ARGS = ["--workers", "2", "--max-duration", "6"]
# three ok (one a near-duplicate's keeper), one exact duplicate, one near-duplicate whose media are deleted
NAMES = ["landscape.mp4", "portrait.mp4", "copy.mp4", "source.mp4", "reupload.mp4"]
LEASE_S = 3.0


SECRET = "Kq7-secret-of-this-module-Zr4"  # moto without auth takes any secret key: this one is never printed


@pytest.fixture()
def moto(monkeypatch, tmp_path):
    """A moto S3 server on loopback with a bucket `data`; the AWS_* variables point every process at it. At the
    end, no object in the store holds the secret key."""
    with moto_env(monkeypatch, tmp_path / "scratch", SECRET, EMOTIONS_LOCK_LEASE_S=str(LEASE_S)) as s3:
        yield s3


@pytest.fixture()
def s3(moto):
    return ObjectStore("s3://data/ds")


def ingest(table: Path, out: str, *more: str) -> subprocess.CompletedProcess:
    proc = run_cli("ingest", str(table), "--out", out, *ARGS, *more)
    assert SECRET not in proc.stdout + proc.stderr
    return proc


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["processed_at"]).sort_values("video_id").reset_index(drop=True)


def test_a_dataset_in_object_storage_gets_the_same_manifest_as_on_disk(moto, s3, server, tmp_path):
    table = url_table(server, tmp_path / "urls.csv", NAMES)
    local = ingest(table, str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    hits = {name: server.hits(name) for name in NAMES}

    proc = ingest(table, "s3://data/ds")
    assert proc.returncode == 0, proc.stderr
    frame = stored_manifest(s3)
    expected = comparable(read_manifest(tmp_path / "local" / "manifests" / "videos.parquet"))
    pd.testing.assert_frame_equal(comparable(frame), expected)
    assert set(frame["status"]) == {"ok", "rejected"} and (frame["reason"] == "near_duplicate").sum() == 1
    assert_every_object_whole(s3, frame, tmp_path)
    summary = json.loads(s3.read_bytes("manifests/ingest_summary.json"))
    assert summary["status_counts"] == frame["status"].value_counts().to_dict()

    downloads = {name: server.hits(name) - hits[name] for name in NAMES}
    moto.taken()
    again = ingest(table, "s3://data/ds")  # everything is committed: nothing is fetched or made again
    assert again.returncode == 0, again.stderr
    assert {name: server.hits(name) - hits[name] for name in NAMES} == downloads
    pd.testing.assert_frame_equal(comparable(stored_manifest(s3)), expected)
    # Which finished items still have their media is one listing of media/ (and one more at the end, for the
    # media no row names), not one request per item.
    log = moto.taken()
    assert object_requests(log, "data", "ds/media") == [], object_requests(log, "data", "ds/media")
    assert len(listings(log, "data", "ds/media")) == 2, listings(log, "data", "ds/media")


def _hold(server, name: str) -> threading.Event:
    """Make GETs of `name` wait until the returned event is set (a download that is still running)."""
    release = threading.Event()
    handler = server.handler
    plain = handler.do_GET

    def do_get(self) -> None:
        if self.path.split("?", 1)[0] == "/" + name:
            release.wait(120)
        plain(self)

    handler.do_GET = do_get
    return release


def test_a_killed_driver_leaves_only_whole_objects_and_the_next_run_resumes(s3, server, tmp_path):
    table = url_table(server, tmp_path / "urls.csv", NAMES)
    config = tmp_path / "one-per-shard.toml"
    config.write_text("[ingest]\nshard_size = 1\n")
    reference = ingest(table, str(tmp_path / "local"))
    assert reference.returncode == 0, reference.stderr
    expected = comparable(read_manifest(tmp_path / "local" / "manifests" / "videos.parquet"))

    release = _hold(server, "reupload.mp4")  # its download hangs: the run cannot finish before it is killed
    argv = [EMOTIONS, "ingest", str(table), "--out", "s3://data/ds", *ARGS, "--config", str(config)]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(s3.list(".work/fetch")) >= 2, 300)  # two items fetched and committed
        second = ingest(table, "s3://data/ds")  # a second run while the first holds the lock
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert second.returncode != 0 and len(lines) == 1, second.stderr
        assert "another run holds s3://data/ds/.work/ingest.lock" in lines[0] and "lease until" in lines[0]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
        proc.wait()
        release.set()

    keys = s3.list("")
    assert not s3.exists("manifests/videos.parquet"), "the killed run never got to its manifest"
    assert not [k for k in keys if TMP_MARK in k], keys
    fetched = pq.read_table(pa.BufferReader(s3.read_bytes(s3.list(".work/fetch")[0]))).to_pylist()  # a whole shard
    assert fetched and fetched[0]["status"] == "ok"
    for rel in (k for k in keys if k.startswith(("media/", "originals/"))):  # every object there is a whole file
        assert s3.get_file(rel, tmp_path / "check" / rel)
        probe = subprocess.run(["ffprobe", "-v", "error", str(tmp_path / "check" / rel)], capture_output=True)
        assert probe.returncode == 0, (rel, probe.stderr)
    hits = {name: server.hits(name) for name in NAMES}
    committed = {Path(r["original_path"]).stem for shard in s3.list(".work/fetch")
                 for r in pq.read_table(pa.BufferReader(s3.read_bytes(shard))).to_pylist()}  # fmt: skip

    lock = json.loads(s3.read_bytes(".work/ingest.lock"))  # the killed run's lock stays until its lease ends
    _wait_for(lambda: time.time() > lock["expires_at"], 60)
    done = ingest(table, "s3://data/ds")
    assert done.returncode == 0, done.stderr
    frame = stored_manifest(s3)
    pd.testing.assert_frame_equal(comparable(frame), expected)
    assert_every_object_whole(s3, frame, tmp_path / "after")
    by_id = dict(zip(frame["video_id"], frame["source"], strict=True))
    for vid in committed:  # what was committed before the kill was not downloaded again
        name = Path(by_id[vid]).name
        assert server.hits(name) == hits[name], name


def test_a_live_lock_is_refused_and_an_expired_one_taken_over(s3, server, tmp_path):
    table = url_table(server, tmp_path / "urls.csv", ["landscape.mp4"])
    live = ObjectLock(s3, "a run on another host", lease_s=600)
    live.acquire()
    proc = ingest(table, "s3://data/ds")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "another run holds" in lines[0], proc.stderr
    assert not s3.exists("manifests/videos.parquet")
    with pytest.raises(RuntimeError, match="another run holds"):
        ObjectLock(s3, "the same host", lease_s=600).acquire()

    stale = json.loads(s3.read_bytes(".work/ingest.lock"))
    s3.put_bytes(".work/ingest.lock", json.dumps({**stale, "expires_at": time.time() - 1}).encode())  # killed
    proc = ingest(table, "s3://data/ds")
    assert proc.returncode == 0, proc.stderr
    assert stored_manifest(s3)["status"].tolist() == ["ok"]
    assert not live.renew()  # the holder's next renewal finds its lock taken over, and it commits nothing more
    with pytest.raises(RuntimeError, match=r"lost s3://data/ds/\.work/ingest\.lock to another run"):
        live.check()
    live.release()


@pytest.mark.parametrize(
    "argv",
    [
        ["split", "s3://data/ds"],
        ["labels", "s3://data/ds"],
        ["release", "s3://data/ds", "--version", "1.0.0"],
        ["annotate", "push", "s3://data/ds"],
        ["demo", "--out", "s3://data/ds"],
        ["import-official", "/nonexistent", "--out", "s3://data/ds"],
    ],
)
def test_commands_that_need_a_folder_refuse_object_storage_with_one_line(argv):
    proc = run_cli(*argv)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "s3://data/ds" in lines[0] and "copy it to a folder first" in lines[0]

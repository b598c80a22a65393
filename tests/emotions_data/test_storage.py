"""Stage logs, atomic writes, temporaries and run locks (emotions_data.storage)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data import storage
from emotions_data.storage import TMP_MARK, StageLog, exclusive_lock, sweep_temporaries, write_table_atomic

LOG_SCHEMA = pa.schema([("video_id", pa.string()), ("status", pa.string()), ("n", pa.int64())])


def _rows(*triples):
    return [{"video_id": v, "status": s, "n": n} for v, s, n in triples]


def _records(log):
    return [(r["video_id"], r["status"], r["n"]) for r in log.load().to_dict("records")]


def test_stage_log_empty(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    assert log.shards() == []
    frame = log.load()
    assert list(frame.columns) == ["video_id", "status", "n"] and len(frame) == 0


def test_stage_log_shards_are_in_commit_order(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    paths = [log.commit(_rows((f"v{i}", "ok", i))) for i in range(5)]
    assert log.shards() == paths
    assert [r[0] for r in _records(log)] == [f"v{i}" for i in range(5)]


def test_stage_log_newest_row_per_key_wins(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("b", "failed", 1)))
    log.commit(_rows(("c", "ok", 1), ("a", "ok", 2)))
    log.commit(_rows(("b", "ok", 3)))
    records = _records(log)
    assert len(records) == 3
    assert {r[0]: r[1:] for r in records} == {"a": ("ok", 2), "b": ("ok", 3), "c": ("ok", 1)}


def test_stage_log_newest_row_within_one_shard_wins(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("a", "ok", 2)))
    assert _records(log) == [("a", "ok", 2)]


def test_stage_log_keeps_first_commit_order(tmp_path):
    # StageLog.load_table documents "the newest committed row for every key, in first-commit order".
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("b", "failed", 1)))
    log.commit(_rows(("c", "ok", 1), ("a", "ok", 2)))
    log.commit(_rows(("b", "ok", 3)))
    assert _records(log) == [("a", "ok", 2), ("b", "ok", 3), ("c", "ok", 1)]


def test_stage_log_commit_accepts_arrow_table(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(pa.Table.from_pylist(_rows(("x", "ok", 5)), schema=LOG_SCHEMA))
    assert _records(log) == [("x", "ok", 5)]


def test_stage_log_compact_keeps_the_answer_and_leaves_one_shard(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "failed", 1), ("b", "failed", 1)))
    log.commit(_rows(("c", "ok", 1), ("a", "ok", 2)))
    log.commit(_rows(("b", "ok", 3), ("d", "ok", 4)))
    before = log.load()
    log.compact()
    assert len(log.shards()) == 1
    pd.testing.assert_frame_equal(log.load(), before)
    assert len(list((tmp_path / "log").iterdir())) == 1  # no temporaries or old shards left
    # A later commit still wins over the compacted shard.
    log.commit(_rows(("a", "ok", 9)))
    assert {r[0]: r[2] for r in _records(log)} == {"a": 9, "b": 3, "c": 1, "d": 4}


def test_stage_log_compact_single_shard_is_a_no_op(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    path = log.commit(_rows(("a", "ok", 1)))
    log.compact()
    assert log.shards() == [path]
    StageLog(tmp_path / "empty", LOG_SCHEMA).compact()  # no folder at all: nothing to do
    assert not (tmp_path / "empty").exists()


def test_stage_log_ignores_temporaries(tmp_path):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    log.commit(_rows(("a", "ok", 1)))
    stray = pa.Table.from_pylist(_rows(("a", "tmp", 99), ("zz", "tmp", 99)), schema=LOG_SCHEMA)
    for name in (f"{TMP_MARK}abcdef-99999999999999999999-x.parquet", f"{TMP_MARK}0.parquet"):
        pq.write_table(stray, tmp_path / "log" / name)
    assert len(log.shards()) == 1
    assert _records(log) == [("a", "ok", 1)]


def test_stage_log_a_retried_shard_adds_no_rows(tmp_path):
    # A shard job re-run after its worker died (Ray retries it) commits the same items again, with the
    # sequence its batch was given: still one row per item.
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    sequence = log.next_sequence()
    log.commit(_rows(("a", "ok", 1), ("b", "ok", 1)), sequence)
    log.commit(_rows(("c", "ok", 1)), sequence)
    log.commit(_rows(("a", "ok", 1), ("b", "ok", 1)), sequence)
    assert sorted(_records(log)) == [("a", "ok", 1), ("b", "ok", 1), ("c", "ok", 1)]


def test_stage_log_orders_by_the_drivers_sequence_not_the_committers_clock(tmp_path, monkeypatch):
    log = StageLog(tmp_path / "log", LOG_SCHEMA)
    first = log.next_sequence()
    log.commit(_rows(("a", "failed", 1)), first)
    second = log.next_sequence()
    assert second > first
    monkeypatch.setattr(storage.time, "time_ns", lambda: 1)  # a worker (or this host) whose clock is far behind
    log.commit(_rows(("a", "ok", 2)), second)
    assert log.next_sequence() == second + 1
    log.compact()
    assert _records(log) == [("a", "ok", 2)]
    log.commit(_rows(("a", "ok", 3)))
    assert _records(log) == [("a", "ok", 3)]


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_write_table_atomic_leaves_no_temporaries(tmp_path):
    path = tmp_path / "deep" / "folder" / "table.parquet"
    table = pa.table({"x": [1, 2, 3]})
    write_table_atomic(path, table)
    write_table_atomic(path, pa.table({"x": [4]}))  # overwrite in place
    assert pq.read_table(path).column("x").to_pylist() == [4]
    assert _listing(tmp_path / "deep" / "folder") == ["table.parquet"]


def test_write_table_atomic_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "table.parquet"
    write_table_atomic(path, pa.table({"x": [1]}))

    def broken_write(table, where):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_table_atomic(path, pa.table({"x": [2]}))
    monkeypatch.undo()
    assert pq.read_table(path).column("x").to_pylist() == [1]
    assert _listing(tmp_path) == ["table.parquet"]


def test_sweep_temporaries_removes_only_marked_files(tmp_path):
    keep = ["a.parquet", "sub/keep.tmp", "sub/x.tmp-y", "sub/deep/media.mp4", f"sub/{TMP_MARK}dir/inner.mp4"]
    marked = [f"{TMP_MARK}123-a.parquet", f"sub/{TMP_MARK}456-b.mp4", f"sub/deep/{TMP_MARK}x"]
    for name in keep + marked:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert sweep_temporaries(tmp_path) == len(marked)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(keep)
    assert sweep_temporaries(tmp_path) == 0
    assert sweep_temporaries(tmp_path / "missing") == 0


def test_exclusive_lock_conflicts_within_one_process(tmp_path):
    lock = tmp_path / "locks" / "run.lock"
    with exclusive_lock(lock, "ingest"):
        with pytest.raises(RuntimeError, match="ingest") as info:
            with exclusive_lock(lock, "ingest"):
                pass
        assert str(lock) in str(info.value)
    with exclusive_lock(lock, "ingest"):  # released again afterwards
        pass


_HOLD_LOCK = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""

_TRY_LOCK = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def test_exclusive_lock_conflicts_with_another_process(tmp_path):
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match="another run holds"):
            with exclusive_lock(lock, "ingest"):
                pass
    finally:
        holder.communicate("", timeout=10)
    with exclusive_lock(lock, "ingest"):  # the holder is gone
        pass


def test_exclusive_lock_is_seen_by_another_process(tmp_path):
    lock = tmp_path / "run.lock"

    def probe():
        return subprocess.run(
            [sys.executable, "-c", _TRY_LOCK, str(lock)], capture_output=True, text=True, timeout=10
        ).stdout.strip()

    with exclusive_lock(lock, "ingest"):
        assert probe() == "busy"
    assert probe() == "free"


def test_exclusive_lock_is_released_on_error(tmp_path):
    lock = tmp_path / "run.lock"
    with pytest.raises(KeyError):
        with exclusive_lock(lock, "ingest"):
            raise KeyError("boom")
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise BlockingIOError if still held
        fcntl.flock(handle, fcntl.LOCK_UN)


def test_atomic_path_commits_on_success_and_removes_the_temporary_on_error(tmp_path):
    final = tmp_path / "deep" / "out.bin"
    with storage.atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(TMP_MARK) and tmp.name.endswith("out.bin")
        tmp.write_bytes(b"first")
    assert final.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="interrupted"):
        with storage.atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert final.read_bytes() == b"first"
    assert _listing(final.parent) == ["out.bin"]


def test_atomic_path_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = storage.os.fsync, storage.os.replace

    def fsync(fd):
        events.append(("fsync", storage.os.path.isdir(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", None))
        real_replace(src, dst)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    monkeypatch.setattr(storage.os, "replace", replace)
    storage.write_bytes_atomic(tmp_path / "x.json", b"{}")
    assert events == [("fsync", False), ("replace", None), ("fsync", True)]

"""Crash-safe files: atomic writes and append-only stage logs of committed shards.

Everything the toolkit writes goes to a temporary name in the destination folder and is then
renamed into place, so a reader (or a restarted run) sees either the old file or the new one,
never a partial one. Temporaries carry the `TMP_MARK` so a restart can sweep them.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # workers import this module; keep pandas (a slow import) out of them
    import pandas as pd

TMP_MARK = ".tmp-"


def temp_path_for(final: Path) -> Path:
    """A unique temporary sibling of `final`, keeping its suffix (ffmpeg picks formats by suffix)."""
    return final.with_name(f"{TMP_MARK}{uuid.uuid4().hex[:12]}-{final.name}")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp: Path, final: Path) -> None:
    """Rename the finished, closed temporary file `tmp` onto `final`, durably.

    The file's data is flushed to disk before the rename and the folder's entry after it, so a power cut
    leaves either the old `final` or the complete new one. Raises `OSError` when `tmp` cannot be read or renamed.
    """
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary sibling of `final` to write to (its folder is created); committed onto `final` with
    :func:`commit_file` when the block ends normally, removed when it raises (the old `final` is then untouched).

    For writers that want a path of their own (torch.save, pyarrow, a stream of chunks); whatever they opened on it
    must be closed inside the block.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        commit_file(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably (see :func:`atomic_path`).

    The file is created with `mode` before anything is written, so a secret is never readable by others.
    """
    with atomic_path(path) as tmp:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
            handle.write(data)


def write_table_atomic(path: Path, table: pa.Table) -> None:
    """Replace `path` with `table` as Parquet, atomically and durably (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def sweep_temporaries(folder: Path) -> int:
    """Delete temporaries left by an interrupted run under `folder`; returns how many."""
    count = 0
    if folder.exists():
        for path in folder.rglob(f"{TMP_MARK}*"):
            if path.is_file():
                path.unlink(missing_ok=True)
                count += 1
    return count


@contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock for the duration of a run; a second run fails at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{what}: another run holds {path}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StageLog:
    """The committed results of one pipeline stage: a folder of Parquet shards, each written
    atomically and named `SEQUENCE-RANDOM.parquet`, so that lexical order is the order in which
    their sequence numbers were handed out. The newest row per key wins, which is how a retried
    item replaces its earlier failure without rewriting old shards."""

    def __init__(self, folder: Path, schema: pa.Schema, key: str = "video_id") -> None:
        self.folder = folder
        self.schema = schema
        self.key = key

    def next_sequence(self) -> int:
        """A sequence number that sorts after every committed shard. The driver takes one per batch
        of jobs and the jobs name their shards with it, so on a cluster the order never depends on
        the clocks of the workers' hosts (nor on this one's stepping back)."""
        shards = self.shards()
        last = shards[-1].name.split("-", 1)[0] if shards else ""
        return max(time.time_ns(), int(last) + 1 if last.isdigit() else 0)

    def commit(self, rows: list[dict[str, object]] | pa.Table, sequence: int | None = None) -> Path:
        """Write `rows` as one shard, atomically; `sequence` defaults to `next_sequence()`."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=self.schema)
        number = self.next_sequence() if sequence is None else sequence
        path = self.folder / f"{number:020d}-{uuid.uuid4().hex[:8]}.parquet"
        write_table_atomic(path, table)
        return path

    def shards(self) -> list[Path]:
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.glob("*.parquet") if not p.name.startswith(TMP_MARK))

    def load_table(self) -> pa.Table:
        """The newest committed row for every key, in first-commit order."""
        shards = self.shards()
        if not shards:
            return self.schema.empty_table()
        table = pa.concat_tables(pq.read_table(p, schema=self.schema) for p in shards)
        last = {key: i for i, key in enumerate(table[self.key].to_pylist())}
        return table.take(list(last.values()))  # a dict keeps first-insertion order

    def load(self) -> pd.DataFrame:  # pyarrow imports pandas only when asked
        return self.load_table().to_pandas()

    def compact(self) -> None:
        """Fold all shards into one. A crash in between leaves the compacted shard newest, so
        loading still gives the same answer."""
        shards = self.shards()
        if len(shards) <= 1:
            return
        self.commit(self.load_table())
        for path in shards:
            path.unlink(missing_ok=True)

"""Crash-safe files: atomic writes and append-only stage logs of committed shards.

Everything the toolkit writes goes to a temporary name in the destination folder and is then
renamed into place, so a reader (or a restarted run) sees either the old file or the new one,
never a partial one. Temporaries carry the `TMP_MARK` so a restart can sweep them.

Files that must change together (a command's several outputs) are committed as a group (`file_group`): every new
file is staged first, then a journal naming the renames is made durable, the renames are done and the journal is
removed. A process killed in between leaves the journal, and the next group commit or `recover_commits` (which
readers of those files call first) rolls it forward, so readers see all the old files or all the new ones.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:  # workers import this module; keep pandas (a slow import) out of them
    import pandas as pd

TMP_MARK = ".tmp-"


def temp_path_for(final: Path) -> Path:
    """A unique temporary sibling of `final`, keeping its suffix (ffmpeg picks formats by suffix)."""
    return final.with_name(f"{TMP_MARK}{uuid.uuid4().hex[:12]}-{final.name}")


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries durable (a rename or a new file in it survives a power cut), as POSIX asks."""
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
    fsync_dir(final.parent)


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
    for top, _, names in os.walk(folder):  # not Path.rglob: os.walk lists a folder of a million files in a second
        for name in names:
            if name.startswith(TMP_MARK) and (path := Path(top) / name).is_file():
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


class ShardStore(Protocol):
    """Where a stage log's shards live when they are not local files (`emotions_data.objectstore.ObjectStore`):
    keys relative to the dataset, each put whole in one request."""

    def list(self, folder: str) -> list[str]: ...
    def read_table(self, rel: str, schema: pa.Schema | None = None) -> pa.Table: ...
    def put_file(self, local: Path, rel: str) -> None: ...
    def delete(self, rels: list[str]) -> None: ...


class StageLog:
    """The committed results of one pipeline stage: a folder of Parquet shards, each written
    atomically and named `SEQUENCE-RANDOM.parquet`, so that lexical order is the order in which
    their sequence numbers were handed out. The newest row per key wins, which is how a retried
    item replaces its earlier failure without rewriting old shards.

    With a `store` the shards are objects under `store_folder` (a key relative to the dataset) rather than files in
    `folder`: each is written to a temporary file in `folder` (node-local) and put whole in one request, so the same
    names, order and newest-row rule hold; `shards()` then gives paths in `folder` named as the objects are."""

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        key: str = "video_id",
        store: ShardStore | None = None,
        store_folder: str = "",
    ) -> None:
        self.folder = folder
        self.schema = schema
        self.key = key
        self.store = store
        self.store_folder = store_folder

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
        if self.store is None:
            write_table_atomic(path, table)
            return path
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
        try:
            pq.write_table(table, tmp)
            self.store.put_file(tmp, f"{self.store_folder}/{path.name}")  # one put: visible whole or not at all
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def shards(self) -> list[Path]:
        if self.store is not None:
            names = (rel.rsplit("/", 1)[-1] for rel in self.store.list(self.store_folder))
            return sorted(self.folder / n for n in names if n.endswith(".parquet") and not n.startswith(TMP_MARK))
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.glob("*.parquet") if not p.name.startswith(TMP_MARK))

    def count_batch(self, sequence: int) -> int:
        """How many shards of the batch numbered `sequence` are committed (one listing): each job of a batch commits
        one, and a job re-run after its worker died may commit another."""
        return sum(p.name.startswith(f"{sequence:020d}-") for p in self.shards())

    def _read(self, shard: Path) -> pa.Table:
        if self.store is not None:
            return self.store.read_table(f"{self.store_folder}/{shard.name}", schema=self.schema)
        return pq.read_table(shard, schema=self.schema)

    def load_table(self) -> pa.Table:
        """The newest committed row for every key, in first-commit order."""
        shards = self.shards()
        if not shards:
            return self.schema.empty_table()
        table = pa.concat_tables(self._read(p) for p in shards)
        keys = table[self.key]
        if pc.count_distinct(keys, mode="all").as_py() == table.num_rows:  # a compacted log: nothing repeats
            return table
        # Arrow's hash aggregation instead of a dict over every key: per key the first and the last position.
        positions = pa.table({"key": keys, "at": pa.array(np.arange(table.num_rows, dtype=np.int64))})
        spans = positions.group_by("key", use_threads=False).aggregate([("at", "min"), ("at", "max")])
        order = pc.sort_indices(spans["at_min"])
        return table.take(pc.take(spans["at_max"], order))

    def load(self) -> pd.DataFrame:  # pyarrow imports pandas only when asked
        return self.load_table().to_pandas()

    def compact(self) -> None:
        """Fold all shards into one. A crash in between leaves the compacted shard newest, so
        loading still gives the same answer."""
        shards = self.shards()
        if len(shards) <= 1:
            return
        self.commit(self.load_table())
        if self.store is not None:
            self.store.delete([f"{self.store_folder}/{p.name}" for p in shards])
            return
        for path in shards:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- files committed together

COMMITS_DIR = ".commits"  # under a group's root: the commit lock, the journals and each group's staging folder
_JOURNAL = ".journal"  # `<group id>.journal`: the renames of a group whose commit has begun
_OWNER = ".owner"  # locked by the process that stages a group, for as long as it lives


@contextmanager
def _commit_lock(root: Path) -> Iterator[Path]:
    """Hold `root`'s commit lock (waited for: it is held only while a group is created or committed, not while its
    files are computed); yields the commits folder."""
    folder = root / COMMITS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_path(path: Path) -> None:
    """Flush a staged file, or a staged folder with everything in it, to disk."""
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.rglob("*")):
            if child.is_file() and not child.is_symlink():
                with open(child, "rb") as handle:
                    os.fsync(handle.fileno())
        for folder in [*sorted(p for p in path.rglob("*") if p.is_dir() and not p.is_symlink()), path]:
            fsync_dir(folder)
    else:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _roll_forward(root: Path, journal: Path) -> None:
    """Finish the commit `journal` describes. Every step can be repeated: a staged path that is gone was moved
    already, so a commit killed again while rolling forward is finished by the next call."""
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        staging = root / COMMITS_DIR / str(plan["group"])
        moves = [(root / src, root / dst, bool(replace)) for src, dst, replace in plan["moves"]]
        removes = [root / rel for rel in plan["removes"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{journal}: an interrupted commit cannot be finished, its journal is unreadable ({exc}); delete the "
            "journal to keep the files as they are"
        ) from None
    parents = set()
    for src, dst, replace in moves:
        parents.add(dst.parent)
        if not os.path.lexists(src):
            continue  # moved before the interruption
        if os.path.lexists(dst):
            if not replace:
                continue  # written by someone who bypassed the lock: theirs stays, ours goes with the staging folder
            if dst.is_dir() and not dst.is_symlink():  # a rename cannot replace a folder: the old one leaves first
                os.rename(dst, staging / f"old-{uuid.uuid4().hex}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    for path in removes:
        parents.add(path.parent)
        if path.is_dir() and not path.is_symlink():
            os.rename(path, staging / f"old-{uuid.uuid4().hex}")
        else:
            path.unlink(missing_ok=True)
    for folder in parents:
        if folder.is_dir():
            fsync_dir(folder)
    journal.unlink()
    fsync_dir(journal.parent)
    shutil.rmtree(staging, ignore_errors=True)


def _recover(root: Path, folder: Path) -> int:
    """Under the commit lock: roll every leftover journal forward."""
    journals = sorted(folder.glob(f"*{_JOURNAL}"))
    for journal in journals:
        _roll_forward(root, journal)
    return len(journals)


def _sweep_staging(folder: Path) -> None:
    """Under the commit lock: delete the staging folders of groups whose process died before their journal was
    written (nothing of theirs was committed). A live group holds the lock on its `.owner` file."""
    for staging in folder.iterdir():
        if not staging.is_dir() or (folder / f"{staging.name}{_JOURNAL}").exists():
            continue
        try:
            fd = os.open(staging / _OWNER, os.O_RDWR)
        except FileNotFoundError:
            shutil.rmtree(staging, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
        shutil.rmtree(staging, ignore_errors=True)


def recover_commits(root: Path) -> int:
    """Finish the group commits that a killed process left under `root` (see :func:`file_group`); returns how many.

    Every reader of files that are written as a group calls this first, so it never sees some of a group's files
    new and others old. Cheap when there is nothing to do. Raises `OSError` when a file cannot be moved and
    ValueError when a journal is unreadable."""
    folder = Path(root) / COMMITS_DIR
    if not folder.is_dir() or not any(folder.glob(f"*{_JOURNAL}")):
        return 0
    with _commit_lock(Path(root)) as locked:
        return _recover(Path(root), locked)


class FileGroup:
    """New contents for files and folders under `root` that become visible together, or not at all.

    Stage each new file or folder at the path :meth:`path` hands out (or with :meth:`write_bytes` /
    :meth:`write_table`), name files to delete with :meth:`remove`, then :meth:`commit`. Use it through
    :func:`file_group`. Staging happens in `root/.commits/<id>/`, on the same filesystem as the files, so the
    commit is a series of renames; the journal that lists them is written (and flushed) before the first one.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.id = uuid.uuid4().hex
        self._moves: list[tuple[Path, Path, bool]] = []
        self._removes: list[Path] = []
        self._journaled = False
        self._closed = False
        # Created under the lock, so no sweep can take a staging folder whose owner has not locked it yet.
        with _commit_lock(self.root) as folder:
            _recover(self.root, folder)
            _sweep_staging(folder)
            self.staging = folder / self.id
            self.staging.mkdir()
            self._owner = os.open(self.staging / _OWNER, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._owner, fcntl.LOCK_EX)

    def _relative(self, path: Path) -> str:
        """`path` relative to the root, as the journal records it (so the root folder may move)."""
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))).as_posix()

    def _claim(self, final: Path) -> None:
        if self._journaled or self._closed:
            raise RuntimeError(f"file group {self.id}: already committed or discarded")
        taken = [dst for _, dst, _ in self._moves] + self._removes
        if any(os.path.abspath(final) == os.path.abspath(other) for other in taken):
            raise ValueError(f"{final}: named twice in one file group")
        rel = self._relative(final)
        if rel == "." or rel.split("/")[0] in ("..", COMMITS_DIR):
            raise ValueError(f"{final}: not inside {self.root}, so it cannot be committed with its files")

    def path(self, final: Path, *, replace: bool = True) -> Path:
        """A staging path (nothing there yet) for the new `final`: a file, or a folder to fill. With
        `replace=False` the commit refuses (FileExistsError, nothing changed) when `final` exists by then.
        Raises ValueError when `final` lies outside the root or on another filesystem."""
        final = Path(final)
        self._claim(final)
        existing = final.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if os.stat(existing).st_dev != os.stat(self.staging).st_dev:
            raise ValueError(f"{final}: on another filesystem than {self.root}, so it cannot be renamed into place")
        staged = self.staging / f"{len(self._moves)}-{final.name}"
        self._moves.append((staged, final, replace))
        return staged

    def write_bytes(self, final: Path, data: bytes) -> None:
        """Stage `data` as the new content of the file `final`."""
        self.path(final).write_bytes(data)

    def write_table(self, final: Path, table: pa.Table) -> None:
        """Stage `table` as the new Parquet file `final`."""
        pq.write_table(table, self.path(final))

    def remove(self, final: Path) -> None:
        """Delete `final` (a file, or a folder) with the commit; nothing happens when it does not exist then."""
        final = Path(final)
        self._claim(final)
        self._removes.append(final)

    def commit(self) -> None:
        """Make every staged change visible: flush the staged files, write and flush the journal, rename, remove
        the journal. Raises FileNotFoundError when a handed-out path was never written and FileExistsError when a
        `replace=False` file exists; nothing is changed then. A process killed after the journal is written is
        finished by the next group commit under the root or by :func:`recover_commits`."""
        if self._journaled or self._closed:
            raise RuntimeError(f"file group {self.id}: already committed or discarded")
        for staged, final, _ in self._moves:
            if not os.path.lexists(staged):
                raise FileNotFoundError(errno.ENOENT, f"nothing was staged for {final}", str(staged))
            _fsync_path(staged)
        fsync_dir(self.staging)
        plan = {
            "group": self.id,
            "moves": [[self._relative(src), self._relative(dst), replace] for src, dst, replace in self._moves],
            "removes": [self._relative(path) for path in self._removes],
        }
        with _commit_lock(self.root) as folder:
            _recover(self.root, folder)  # a group killed after its journal since this one began
            for _, final, replace in self._moves:
                if not replace and os.path.lexists(final):
                    raise FileExistsError(errno.EEXIST, "exists", str(final))
            draft = self.staging / "journal.json"
            with open(draft, "w", encoding="utf-8") as handle:
                json.dump(plan, handle)
                handle.flush()
                os.fsync(handle.fileno())
            journal = folder / f"{self.id}{_JOURNAL}"
            os.replace(draft, journal)  # the commit point: from here on the group is rolled forward, never back
            self._journaled = True
            fsync_dir(folder)
            _roll_forward(self.root, journal)
        self._close()

    def discard(self) -> None:
        """Drop everything staged (nothing changes); a no-op after :meth:`commit`. A group whose journal was written
        but whose renames failed is left for :func:`recover_commits` to finish."""
        if self._closed:
            return
        if not self._journaled:
            shutil.rmtree(self.staging, ignore_errors=True)
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._owner)


@contextmanager
def file_group(root: Path) -> Iterator[FileGroup]:
    """A :class:`FileGroup` under `root`, committed when the block ends normally and discarded when it raises (the
    old files are then untouched). Raises what :meth:`FileGroup.commit` raises."""
    group = FileGroup(root)
    try:
        yield group
        group.commit()
    finally:
        group.discard()

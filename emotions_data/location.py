"""Where an ingest run keeps a dataset: a local (or shared POSIX) folder, or a prefix in object storage.

The pipeline always makes its files in a local folder, `location.root`, laid out as `layout.DatasetLayout` says. For
a local dataset that folder is the dataset itself and every method here is what `emotions_data.storage` does on
disk. For `s3://bucket/prefix` it is a node-local working folder (`objectstore.node_scratch`): finished files are
uploaded in one put each and the local copies dropped, and the driver reads the stage shards, the input register
and the old manifest from the store. The ingest driver and the workers call only these methods for dataset I/O, so
the two kinds of location keep the same guarantees (see `emotions_data.objectstore`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from emotions_data.dataset_lock import dataset_lock
from emotions_data.layout import DatasetLayout, local_dataset_dir
from emotions_data.objectstore import ObjectLock, ObjectStore, clear_folder, is_object_url, node_scratch
from emotions_data.storage import (
    StageLog,
    exclusive_lock,
    sweep_temporaries,
    write_bytes_atomic,
    write_table_atomic,
)

#: The stage-row columns that name a file of the dataset (relative to its root): what a worker uploads.
FILE_COLUMNS = ("original_path", "info_json_path", "media_path")


class LocalLocation:
    """A dataset folder on this machine's filesystem (local, or shared such as NFS at the same path everywhere)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self.layout = DatasetLayout(root)

    @contextlib.contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """One run at a time (file locks: the dataset's, and ingest's own); a second run fails at once with
        RuntimeError. ValueError, before anything is written, for a folder that is not a dataset but holds files in
        `media/` or `originals/`: a run ends by deleting the media no manifest row names, which there would be the
        user's own files (an empty folder, a new one or one holding other things, such as the URL list, is fine)."""
        self._check_not_foreign()
        self.layout.work.mkdir(parents=True, exist_ok=True)
        # the dataset's lock keeps the other writing commands out; ingest's own, its runs (it refuses at once)
        with dataset_lock(self.root, what, wait_s=0), exclusive_lock(self.layout.lock, what):
            yield

    def _check_not_foreign(self) -> None:
        layout = self.layout
        if layout.work.is_dir() or layout.videos_manifest.exists():
            return
        for folder in (layout.media, layout.originals):
            try:
                with os.scandir(folder) as entries:
                    first = next((e.name for e in entries), None)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if first is not None:
                raise ValueError(
                    f"{layout.root}: not an emotions dataset (no .work/ or manifests/videos.parquet) but its "
                    f"{folder.name}/ holds files ({first!r} ...), which ingest would delete as media no row names: "
                    "choose a new or empty folder"
                )

    def check_lock(self) -> None:
        """Raise RuntimeError when this run no longer holds the dataset (a file lock is held until released)."""

    def sweep(self) -> int:
        """Under the lock: delete the temporaries an interrupted run left; returns how many."""
        layout = self.layout
        return sum(sweep_temporaries(p) for p in (layout.media, layout.originals, layout.work, layout.manifests))

    def shown(self, path: Path) -> str:
        """How a message names the dataset's `path`: the path itself here, the object's URL in object storage."""
        return str(path)

    def pull(self, path: Path) -> None:
        """Make the dataset's current `path` readable locally (nothing to do: it is local)."""

    def push(self, path: Path) -> None:
        """Publish the local file `path`, already written atomically (nothing more to do here)."""

    def files_under(self, folder: Path) -> set[str]:
        """The files under the dataset's `folder`, recursively, as paths relative to the dataset root: one listing,
        so that a resumed run asks once which of its finished items' files are there, not once per item."""
        if not folder.is_dir():
            return set()
        base = Path(self.layout.relative(folder))  # resolved once, not per file
        found: set[str] = set()
        for parent, _, names in os.walk(folder):
            under = (base / Path(parent).relative_to(folder)).as_posix()
            found.update(f"{under}/{name}" for name in names)  # strings, not a Path per file: a million cost 1 s
        return found

    def write_table(self, path: Path, table: pa.Table) -> None:
        write_table_atomic(path, table)

    def write_bytes(self, path: Path, data: bytes) -> None:
        write_bytes_atomic(path, data)

    def stage_log(self, folder: Path, schema: pa.Schema) -> StageLog:
        return StageLog(folder, schema)

    def remove_unlisted_media(self, keep: set[str]) -> None:
        """Delete media no manifest row names, and the temporaries jobs that died left in media/."""
        media = self.layout.media
        if media.exists():
            base = self.layout.relative(media)  # resolved once, not per file
            with os.scandir(media) as entries:  # as glob("*.mp4"): hidden names left out
                names = [e.name for e in entries if e.name.endswith(".mp4") and not e.name.startswith(".")]
            for name in names:
                if f"{base}/{name}" not in keep:
                    (media / name).unlink(missing_ok=True)
            sweep_temporaries(media)

    def localise(self, item: dict) -> dict:
        """A job's item with its input file on this machine (it is: the folder is shared)."""
        return item

    def publish(self, row: dict) -> None:
        """Make the files a stage row names visible to every host (they are, once written)."""

    def discard_local(self, item: dict) -> None:
        """Drop a job's local copy of its input (there is none: the folder is the dataset)."""


class ObjectLocation(LocalLocation):
    """A dataset under `s3://bucket/prefix`; files are made under this host's working folder and put whole."""

    def __init__(self, url: str) -> None:
        self.store = ObjectStore(url)
        super().__init__(node_scratch(self.store.url))
        self.url = self.store.url
        self._lock: ObjectLock | None = None

    def _rel(self, path: Path) -> str:
        return self.layout.relative(path)

    @contextlib.contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """One run at a time (an `ObjectLock` on `.work/ingest.lock` in the store); a second run fails at once."""
        self.store.check_bucket()
        lock = ObjectLock(self.store, what)
        lock.acquire()
        self._lock = lock
        try:
            yield
        finally:
            self._lock = None
            # Still under the lock: the driver's copies (input register, manifest) and anything an interrupted job
            # left here are dropped; everything the run finished is in the store.
            clear_folder(self.root)
            lock.release()

    def check_lock(self) -> None:
        if self._lock is not None:
            self._lock.check()

    def sweep(self) -> int:
        """Under the lock: this host's working folder is emptied (a killed run's downloads and transcodes). The
        store holds no temporaries: each object is put whole."""
        clear_folder(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        return 0

    def shown(self, path: Path) -> str:
        return self.store.url_of(self._rel(path))

    def pull(self, path: Path) -> None:
        """Download the dataset's `path` into the working folder, or remove a stale local copy when absent."""
        if not self.store.get_file(self._rel(path), path):
            path.unlink(missing_ok=True)

    def push(self, path: Path) -> None:
        self.store.put_file(path, self._rel(path))

    def files_under(self, folder: Path) -> set[str]:
        """The objects under `folder` in the store: one paginated listing (1,000 keys a request), not a HEAD
        request per file."""
        return set(self.store.list(self._rel(folder)))

    def write_table(self, path: Path, table: pa.Table) -> None:
        self.check_lock()
        write_table_atomic(path, table)
        self.push(path)

    def write_bytes(self, path: Path, data: bytes) -> None:
        self.check_lock()
        write_bytes_atomic(path, data)
        self.push(path)

    def stage_log(self, folder: Path, schema: pa.Schema) -> StageLog:
        return StageLog(folder, schema, store=self.store, store_folder=self._rel(folder))

    def remove_unlisted_media(self, keep: set[str]) -> None:
        """Delete media objects no manifest row names: near-duplicates, and those put by a job whose shard never
        committed (a killed run's)."""
        self.store.delete([rel for rel in self.store.list(self._rel(self.layout.media)) if rel not in keep])

    def localise(self, item: dict) -> dict:
        """Download the stored original a normalise job reads (`original_path`) into this host's working folder."""
        rel = item.get("original_path")
        if not rel:
            return item
        local = self.root / rel
        if not self.store.get_file(rel, local):
            raise FileNotFoundError(f"{self.store.url_of(rel)}: the downloaded original is missing from the store")
        return {**item, "path": str(local)}

    def publish(self, row: dict) -> None:
        """Upload the files `row` names (original, platform info, media), each in one put, then drop the local
        copies; the row's shard is committed after this, so it never names a missing object."""
        for column in FILE_COLUMNS:
            rel = row.get(column)
            if rel and (self.root / rel).is_file():
                self.store.put_file(self.root / rel, rel)
        for column in FILE_COLUMNS:
            rel = row.get(column)
            if rel:
                (self.root / rel).unlink(missing_ok=True)

    def discard_local(self, item: dict) -> None:
        """Drop the downloaded copy of a normalise job's original once the job is done with it."""
        rel = item.get("original_path")
        if rel:
            (self.root / rel).unlink(missing_ok=True)


def open_location(location: str | os.PathLike[str]) -> LocalLocation:
    """The dataset location named by a folder, a `file://` URL or an `s3://bucket/prefix` URL. Raises ValueError
    for other URL schemes (see `layout.local_dataset_dir`)."""
    if is_object_url(location):
        return ObjectLocation(os.fspath(location))
    try:
        folder = local_dataset_dir(location)
    except ValueError as exc:
        url = str(exc).split(": ", 1)[0]
        raise ValueError(
            f"{url}: not supported as a dataset location; give a folder, or s3://BUCKET/PREFIX for object storage "
            "(AWS S3 or an S3-compatible server)"
        ) from None
    return LocalLocation(folder.absolute())  # other hosts have other working folders

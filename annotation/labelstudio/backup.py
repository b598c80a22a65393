"""Backups of the managed Label Studio server's state, kept next to the dataset, and their restore.

A backup is a folder `DATASET/backups/label-studio/<UTC time>/` (mode 0700: it holds the database, and with it the
password hashes and API tokens):

    database.sqlite3 | database.pgdump   SQLite's online backup of the database, or `pg_dump --format=custom`
    label-studio.env                     Label Studio's secret key file (`ls-data/.env`): browser sessions survive
    credentials.json                     the secrets generated at the first start (mode 0600), when there were any
    backup.json                          what it is: kind, database (no password), time, size and SHA-256 of the dump

It is made under a temporary name and renamed when complete, so a folder with that name is always whole. Both
kinds are consistent snapshots taken while the server runs (SQLite's backup API, pg_dump's snapshot), so votes cast
during the backup are either in it or not, never half.

A restore needs the server stopped (it replaces the database under it) and refuses a database that holds data
unless told to replace it. SQLite: the dump is checked (`PRAGMA integrity_check`) and renamed over the database, the
replaced one kept beside it. PostgreSQL: `pg_restore --single-transaction` into the database, emptied first when it
is replaced, so a failed restore changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotation.labelstudio.config import CREDENTIALS_FILE, ServerConfig, ServerError, read_json_file
from annotation.labelstudio.database import (
    LS_DATA,
    describe,
    record_database,
    run_pg_tool,
    sqlite_path,
    table_count,
)
from annotation.labelstudio.process import running_pid
from emotions_data.storage import fsync_dir

BACKUPS = Path("backups") / "label-studio"  # under the dataset folder
META_FILE = "backup.json"
SECRET_KEY_FILE = ".env"  # Label Studio's, in ls-data


@dataclass(frozen=True)
class Backup:
    """One backup folder and what its `backup.json` says."""

    path: Path
    kind: str  # "sqlite" or "postgresql"
    database: str  # where it was taken from, without password
    created_at: str
    size: int  # bytes of the dump
    sha256: str

    @property
    def dump(self) -> Path:
        return self.path / ("database.sqlite3" if self.kind == "sqlite" else "database.pgdump")


def backups_dir(dataset_root: Path) -> Path:
    """Where the dataset's server backups live."""
    return Path(dataset_root) / BACKUPS


def list_backups(dataset_root: Path) -> list[Backup]:
    """The dataset's complete backups, oldest first."""
    found = []
    folder = backups_dir(dataset_root)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_dir() and not path.name.startswith("."):
            found.append(read_backup(path))
    return found


def read_backup(path: Path) -> Backup:
    """The backup in folder `path`; ServerError when it is not a complete backup."""
    meta = read_json_file(Path(path) / META_FILE)
    try:
        return Backup(Path(path), meta["kind"], meta["database"], meta["created_at"], int(meta["size"]), meta["sha256"])
    except (TypeError, KeyError, ValueError):
        raise ServerError(f"{path}: not a Label Studio backup (no readable {META_FILE})") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def backup(config: ServerConfig, dataset_root: Path) -> Backup:
    """Back up the server of `config.data_dir` (running or not) into the dataset's backups folder; returns the
    backup. Raises ServerError when there is no database yet, a dump fails, or the disk is full (then nothing is
    left but a removed temporary folder)."""
    data_dir = config.data_dir.expanduser().absolute()
    db = config.database
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = backups_dir(dataset_root) / stamp
    partial = target.with_name(f".{stamp}.partial")
    if db is None and not sqlite_path(data_dir).exists():
        raise ServerError(f"no Label Studio database in {data_dir} yet: nothing to back up")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir(mode=0o700)
    try:
        if db is None:
            source = sqlite_path(data_dir)
            dump = partial / "database.sqlite3"
            src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(dump)
            try:
                src.backup(dst)  # an online, consistent copy even while the server writes
            finally:
                src.close()
                dst.close()
        else:
            dump = partial / "database.pgdump"
            run_pg_tool(db, "pg_dump", ["--format=custom", "--no-owner", "--file", str(dump)])
        os.chmod(dump, 0o600)
        for source, name in ((data_dir / LS_DATA / SECRET_KEY_FILE, "label-studio.env"),
                             (data_dir / CREDENTIALS_FILE, CREDENTIALS_FILE)):  # fmt: skip
            if source.exists():
                shutil.copy2(source, partial / name)
                os.chmod(partial / name, 0o600)
        meta = {"kind": "sqlite" if db is None else "postgresql", "database": describe(config),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "size": dump.stat().st_size,
                "sha256": _sha256(dump)}  # fmt: skip
        (partial / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        for path in partial.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        os.rename(partial, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return read_backup(target)


@dataclass(frozen=True)
class RestoreReport:
    backup: Backup
    database: str  # where it went
    replaced: Path | str | None  # the SQLite file kept aside, or the PostgreSQL database that was emptied


def restore(config: ServerConfig, source: Backup, *, replace: bool = False) -> RestoreReport:
    """Bring `source` back as the database of `config.data_dir`'s server, which must be stopped. A database that
    already holds data is replaced only with `replace` (SQLite: kept beside it as `.replaced-<time>`). The secret
    key and generated credentials come back where the data folder has none. Raises ServerError (nothing changed)
    when the server runs, the database holds data without `replace`, the backup is of the other kind or damaged."""
    data_dir = config.data_dir.expanduser().absolute()
    pid = running_pid(config)
    if pid is not None:
        raise ServerError(
            f"Label Studio runs for {data_dir} (pid {pid}): a restore would replace the database under it; stop it "
            "first (emotions annotate server stop)"
        )
    db = config.database
    kind = "sqlite" if db is None else "postgresql"
    if source.kind != kind:
        raise ServerError(f"{source.path} is a {source.kind} backup, but the server uses {describe(config)}")
    if not source.dump.is_file() or source.dump.stat().st_size != source.size or _sha256(source.dump) != source.sha256:
        raise ServerError(f"{source.dump}: damaged (its size or SHA-256 differs from {META_FILE})")
    replaced: Path | str | None = None
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if db is None:
        target = sqlite_path(data_dir)
        if target.exists() and not replace:
            raise ServerError(f"{target} holds a database already: pass --replace to replace it (it is kept beside)")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(source.dump, temporary)
        os.chmod(temporary, 0o600)
        check = sqlite3.connect(temporary)
        try:
            verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            verdict = str(exc)
        finally:
            check.close()
        if verdict != "ok":
            temporary.unlink()
            raise ServerError(f"{source.dump}: the SQLite database fails its integrity check ({verdict})")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        if target.exists():
            replaced = target.with_name(f"{target.name}.replaced-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
            os.link(target, replaced)
        for stale in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            stale.unlink(missing_ok=True)  # a replaced database's journal must not be replayed into the restored one
        os.replace(temporary, target)
        fsync_dir(target.parent)
    else:
        if table_count(db) and not replace:
            raise ServerError(f"{db.label} holds a database already: pass --replace to replace it")
        args = ["--single-transaction", "--no-owner", "--exit-on-error", "--dbname", db.name, str(source.dump)]
        if replace:
            args[:0] = ["--clean", "--if-exists"]
            replaced = db.label
        run_pg_tool(db, "pg_restore", args)
        record_database(config)
    for name, target_path in (("label-studio.env", data_dir / LS_DATA / SECRET_KEY_FILE),
                              (CREDENTIALS_FILE, data_dir / CREDENTIALS_FILE)):  # fmt: skip
        if (source.path / name).exists() and not target_path.exists():
            target_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(source.path / name, target_path)
            os.chmod(target_path, 0o600)
    return RestoreReport(source, describe(config), replaced)


def backup_summary(item: Backup) -> dict[str, Any]:
    """A backup as JSON-ready values."""
    return {"path": str(item.path), "kind": item.kind, "database": item.database, "created_at": item.created_at,
            "size": item.size, "sha256": item.sha256}  # fmt: skip

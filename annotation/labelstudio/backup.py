"""Backups of the managed Label Studio server's state, kept next to the dataset, and their restore.

A backup is a folder `DATASET/backups/label-studio/<sequence>-<UTC time>/` (mode 0700: it holds the database, and
with it the password hashes and API tokens):

    database.sqlite3 | database.pgdump   SQLite's online backup of the database, or `pg_dump --format=custom`
    label-studio.env                     Label Studio's secret key file (`ls-data/.env`): browser sessions survive
    credentials.json                     the secrets generated at the first start (mode 0600), when there were any
    backup.json                          what it is: sequence, kind, database (no password), data folder, time, size
                                         and SHA-256 of the dump, and its census (rows per table, read back from the
                                         dump itself) with whether the admin's API token is in it

Backups are ordered by their sequence number (one more than the highest before, handed out under a lock), never by
the clock: a clock that stepped back does not make an older backup the newest. A backup is made under a temporary
name (`.NAME.partial`, mode 0700) and renamed when complete, so a folder with its final name is always whole; a
partial one that a killed backup left (it holds secrets too) is removed by the next backup or restore. Both kinds
are consistent snapshots taken while the server runs (SQLite's backup API, pg_dump's snapshot), so votes cast during
the backup are either in it or not, never half. A backup is refused unless it holds all a restore needs: the
database, the secret key, and an admin API token that the database knows.

A restore needs the server stopped (it replaces the database under it) and refuses a database that holds data
unless told to replace it. SQLite: the dump is checked (`PRAGMA integrity_check`) and renamed over the database, the
replaced one kept beside it. PostgreSQL: `pg_restore --single-transaction` into the database, emptied first when it
is replaced, so a failed restore changes nothing. Either way the restored database is read back and its census
compared with the backup's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotation.labelstudio.config import (
    CREDENTIALS_FILE,
    ServerConfig,
    ServerError,
    read_json_file,
    with_stored_credentials,
)
from annotation.labelstudio.database import (
    DATABASE_FILE,
    LS_DATA,
    Census,
    describe,
    pg_census,
    pg_dump_census,
    record_database,
    run_pg_tool,
    sqlite_census,
    sqlite_path,
    table_count,
)
from annotation.labelstudio.process import running_pid
from emotions_data.storage import exclusive_lock, fsync_dir

BACKUPS = Path("backups") / "label-studio"  # under the dataset folder
META_FILE = "backup.json"
SECRET_KEY_FILE = ".env"  # Label Studio's, in ls-data
LOCK_FILE = ".label-studio.lock"  # beside the backups folder, held by a backup or restore
PARTIAL_SUFFIX = ".partial"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC: the default clock of `backup` and `restore` (tests pass one of their own)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Backup:
    """One backup folder and what its `backup.json` says. `sequence` orders backups (0: one made before backups
    were numbered, older than every numbered one)."""

    path: Path
    kind: str  # "sqlite" or "postgresql"
    database: str  # where it was taken from, without password
    created_at: str
    size: int  # bytes of the dump
    sha256: str
    sequence: int = 0
    data_dir: str | None = None  # the server's data folder it was taken from
    census: dict[str, int] | None = None  # rows per table, read back from the dump
    admin_token: bool | None = None  # whether the dump holds the admin's API token (None: not known)

    @property
    def dump(self) -> Path:
        return self.path / ("database.sqlite3" if self.kind == "sqlite" else "database.pgdump")


def backups_dir(dataset_root: Path) -> Path:
    """Where the dataset's server backups live."""
    return Path(dataset_root) / BACKUPS


def list_backups(dataset_root: Path) -> list[Backup]:
    """The dataset's complete backups, oldest first: by recorded sequence, then (for backups made before they
    were numbered) by name."""
    folder = backups_dir(dataset_root)
    paths = folder.iterdir() if folder.is_dir() else []
    found = [read_backup(p) for p in paths if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda b: (b.sequence, b.path.name))


def read_backup(path: Path) -> Backup:
    """The backup in folder `path`; ServerError when it is not a complete backup."""
    meta = read_json_file(Path(path) / META_FILE)
    try:
        sequence = int(meta.get("sequence", 0))
        census = meta.get("census")
        return Backup(Path(path), meta["kind"], meta["database"], meta["created_at"], int(meta["size"]),
                      meta["sha256"], sequence, meta.get("data_dir"),
                      {str(k): int(v) for k, v in census.items()} if isinstance(census, dict) else None,
                      meta.get("admin_token"))  # fmt: skip
    except (TypeError, KeyError, ValueError, AttributeError):
        raise ServerError(f"{path}: not a Label Studio backup (no readable {META_FILE})") from None


def sweep_partials(dataset_root: Path) -> list[Path]:
    """Remove what killed backups left (`.NAME.partial` folders: whole databases with password hashes and tokens);
    returns them. Call it holding the backups lock, so a running backup's own folder is never taken."""
    folder = backups_dir(dataset_root)
    swept = []
    for path in folder.glob(f".*{PARTIAL_SUFFIX}") if folder.is_dir() else []:
        shutil.rmtree(path, ignore_errors=True)
        swept.append(path)
    return swept


def _backups_lock(dataset_root: Path):
    folder = backups_dir(dataset_root)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return exclusive_lock(folder.parent / LOCK_FILE, f"Label Studio backups of {dataset_root}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_complete(config: ServerConfig, data_dir: Path) -> None:
    """ServerError unless `data_dir` is the data folder of `config`'s database and holds the secret key, and an
    admin API token is known: what a restore needs besides the dump."""
    db = config.database
    if db is None and not sqlite_path(data_dir).exists():
        raise ServerError(f"no Label Studio database in {data_dir} yet: nothing to back up")
    if db is not None:
        recorded = (read_json_file(data_dir / DATABASE_FILE) or {}).get("database")
        if recorded != db.label:
            raise ServerError(
                f"{data_dir} is not the data folder of the server on {db.label} (its {DATABASE_FILE} names "
                f"{recorded or 'no database'}): its secret key and admin credentials would be missing from the "
                "backup; give the server's data folder (--data-dir)"
            )
    if not (data_dir / LS_DATA / SECRET_KEY_FILE).exists():
        raise ServerError(f"{data_dir / LS_DATA / SECRET_KEY_FILE}: no secret key: not a started server's data folder")
    if config.token is None:
        raise ServerError(f"no admin API token known for {data_dir} (no {CREDENTIALS_FILE}, none configured)")


def _dump(config: ServerConfig, data_dir: Path, partial: Path) -> tuple[Path, Census]:
    """The database's consistent copy in `partial`, and its census read back from the copy."""
    db = config.database
    if db is None:
        dump = partial / "database.sqlite3"
        os.close(os.open(dump, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        src, dst = sqlite3.connect(f"file:{sqlite_path(data_dir)}?mode=ro", uri=True), sqlite3.connect(dump)
        try:
            src.backup(dst)  # an online, consistent copy even while the server writes
        finally:
            src.close()
            dst.close()
        return dump, sqlite_census(dump)
    dump = partial / "database.pgdump"
    os.close(os.open(dump, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    run_pg_tool(db, "pg_dump", ["--format=custom", "--no-owner", "--file", str(dump)])
    return dump, pg_dump_census(db, dump)


def backup(config: ServerConfig, dataset_root: Path, *, clock: Clock = utc_now) -> Backup:
    """Back up the server of `config.data_dir` (running or not) into the dataset's backups folder; returns the
    backup, numbered one after the newest. `clock` gives the time recorded (it never orders backups). Raises
    ServerError when there is no database yet, the data folder lacks the secret key or is another database's, the
    dump does not hold the admin's API token, a dump fails, or the disk is full (then nothing is left but a removed
    temporary folder); RuntimeError when another backup or restore of the dataset runs."""
    data_dir = config.data_dir.expanduser().absolute()
    config = with_stored_credentials(dataclasses.replace(config, data_dir=data_dir))
    _check_complete(config, data_dir)
    with _backups_lock(dataset_root):
        sweep_partials(dataset_root)
        sequence = max((b.sequence for b in list_backups(dataset_root)), default=0) + 1
        now = clock().astimezone(UTC)
        name = f"{sequence:06d}-{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
        target = backups_dir(dataset_root) / name
        partial = target.with_name(f".{name}{PARTIAL_SUFFIX}")
        partial.mkdir(mode=0o700)
        try:
            dump, census = _dump(config, data_dir, partial)
            admin_token = census.holds_token(config.token)
            if admin_token is False:
                raise ServerError(
                    f"the database of {data_dir} does not hold the admin API token this command uses: a restore "
                    "of it could not be used; check the data folder and the configured token"
                )
            for source, copy in ((data_dir / LS_DATA / SECRET_KEY_FILE, "label-studio.env"),
                                 (data_dir / CREDENTIALS_FILE, CREDENTIALS_FILE)):  # fmt: skip
                if source.exists():
                    shutil.copy2(source, partial / copy)
                    os.chmod(partial / copy, 0o600)
            meta = {"sequence": sequence, "kind": "sqlite" if config.database is None else "postgresql",
                    "database": describe(config), "data_dir": str(data_dir),
                    "created_at": now.isoformat(timespec="seconds"), "size": dump.stat().st_size,
                    "sha256": _sha256(dump), "census": census.rows, "admin_token": admin_token}  # fmt: skip
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
    census: dict[str, int]  # rows per table, read back from the restored database
    admin_token: bool | None  # whether the restored database holds the admin's API token (None: none known)
    swept: tuple[Path, ...] = ()  # partial backups removed


def _kept_name(target: Path, clock: Clock) -> Path:
    """A name beside `target` for the database a restore replaces, never one already taken (a restore re-run at
    once keeps both)."""
    stamp = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    candidate, n = target.with_name(f"{target.name}.replaced-{stamp}"), 1
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.name}.replaced-{stamp}-{n}")
    return candidate


def _restore_sqlite(source: Backup, target: Path, replace: bool, clock: Clock) -> tuple[Path | None, Census]:
    if target.exists() and not replace:
        raise ServerError(f"{target} holds a database already: pass --replace to replace it (it is kept beside)")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(f".{target.name}.restoring")
    temporary.unlink(missing_ok=True)  # a killed restore's
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    shutil.copyfile(source.dump, temporary)
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
    replaced = None
    if target.exists():
        replaced = _kept_name(target, clock)
        os.link(target, replaced)
    for stale in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        stale.unlink(missing_ok=True)  # a replaced database's journal must not be replayed into the restored one
    os.replace(temporary, target)
    fsync_dir(target.parent)
    return replaced, sqlite_census(target)


def _restore_postgres(config: ServerConfig, source: Backup, replace: bool) -> tuple[str | None, Census]:
    db = config.database
    assert db is not None
    if table_count(db) and not replace:
        raise ServerError(f"{db.label} holds a database already: pass --replace to replace it")
    args = ["--single-transaction", "--no-owner", "--exit-on-error", "--dbname", db.name, str(source.dump)]
    if replace:
        args[:0] = ["--clean", "--if-exists"]
    run_pg_tool(db, "pg_restore", args)
    record_database(config)
    return (db.label if replace else None), pg_census(db)


def restore(config: ServerConfig, source: Backup, *, replace: bool = False, clock: Clock = utc_now) -> RestoreReport:
    """Bring `source` back as the database of `config.data_dir`'s server, which must be stopped. A database that
    already holds data is replaced only with `replace` (SQLite: kept beside it as `.replaced-<time>`, `clock`'s).
    The secret key and generated credentials come back where the data folder has none. The restored database is
    read back: its census must equal the backup's. Raises ServerError (nothing changed) when the server runs, the
    database holds data without `replace`, the backup is of the other kind or damaged; ServerError after the
    restore when the database read back differs from the backup."""
    data_dir = config.data_dir.expanduser().absolute()
    pid = running_pid(config)
    if pid is not None:
        raise ServerError(
            f"Label Studio runs for {data_dir} (pid {pid}): a restore would replace the database under it; stop it "
            "first (emotions annotate server stop)"
        )
    kind = "sqlite" if config.database is None else "postgresql"
    if source.kind != kind:
        raise ServerError(f"{source.path} is a {source.kind} backup, but the server uses {describe(config)}")
    if not source.dump.is_file() or source.dump.stat().st_size != source.size or _sha256(source.dump) != source.sha256:
        raise ServerError(f"{source.dump}: damaged (its size or SHA-256 differs from {META_FILE})")
    dataset_root = source.path.parent.parent.parent
    swept: list[Path] = []
    if source.path.parent == backups_dir(dataset_root):
        with _backups_lock(dataset_root):
            swept = sweep_partials(dataset_root)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if config.database is None:
        replaced, census = _restore_sqlite(source, sqlite_path(data_dir), replace, clock)
    else:
        replaced, census = _restore_postgres(config, source, replace)
    for name, target_path in (("label-studio.env", data_dir / LS_DATA / SECRET_KEY_FILE),
                              (CREDENTIALS_FILE, data_dir / CREDENTIALS_FILE)):  # fmt: skip
        if (source.path / name).exists() and not target_path.exists():
            target_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(source.path / name, target_path)
            os.chmod(target_path, 0o600)
    if source.census is not None and census.rows != source.census:
        differ = ", ".join(f"{t} {source.census.get(t)} -> {census.rows.get(t)}" for t in sorted(set(census.rows)
                           | set(source.census)) if census.rows.get(t) != source.census.get(t))  # fmt: skip
        raise ServerError(f"{describe(config)}: the restored database differs from {source.path.name} ({differ})")
    admin_token = census.holds_token(with_stored_credentials(dataclasses.replace(config, data_dir=data_dir)).token)
    return RestoreReport(source, describe(config), replaced, census.rows, admin_token, tuple(swept))


def backup_summary(item: Backup) -> dict[str, Any]:
    """A backup as JSON-ready values."""
    return {"path": str(item.path), "sequence": item.sequence, "kind": item.kind, "database": item.database,
            "data_dir": item.data_dir, "created_at": item.created_at, "size": item.size, "sha256": item.sha256,
            "census": item.census, "admin_token": item.admin_token}  # fmt: skip

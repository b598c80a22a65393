"""The database behind the managed Label Studio server: SQLite in its data folder, or PostgreSQL.

A data folder belongs to one database for good. `DATA_DIR/database.json` (no secret: the database's URL without its
password) records a PostgreSQL database once the first start has migrated it, so a later start with another database,
or none configured, is refused instead of silently creating a fresh one; for SQLite the database file itself is the
record. The PostgreSQL client tools (pg_dump, pg_restore, psql) get the password through `PGPASSWORD` in their
environment, never through argv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from annotation.labelstudio.config import (
    DATABASE_URL_ENV,
    PostgresDatabase,
    ServerConfig,
    ServerError,
    read_json_file,
    write_json_file,
)

DATABASE_FILE = "database.json"  # in the data folder
LS_DATA = "ls-data"  # Label Studio's own data folder inside the data folder
SQLITE_FILE = "label_studio.sqlite3"  # inside LS_DATA
PG_BIN_ENV = "EMOTIONS_PG_BIN"  # a folder with pg_dump, pg_restore, psql (else Debian's newest, else PATH)


def sqlite_path(data_dir: Path) -> Path:
    """Where Label Studio keeps its SQLite database for `data_dir`."""
    return data_dir / LS_DATA / SQLITE_FILE


def describe(config: ServerConfig) -> str:
    """The server's database in words, without any password."""
    db = config.database
    return db.label if db else f"SQLite {sqlite_path(config.data_dir.expanduser().absolute())}"


def is_first_start(config: ServerConfig) -> bool:
    """Whether the next start of `config.data_dir` creates and migrates its database (True) or uses the one it was
    started on before. Raises ServerError, before anything is created, when the configured database is not the data
    folder's: another PostgreSQL database, PostgreSQL for a SQLite folder, or none configured for a PostgreSQL one."""
    data_dir = config.data_dir.expanduser().absolute()
    record = read_json_file(data_dir / DATABASE_FILE) or {}
    recorded = record.get("database") if record.get("kind") == "postgresql" else None
    db = config.database
    if db is None:
        if recorded:
            raise ServerError(
                f"{data_dir} is the data folder of the server on {recorded}: set {DATABASE_URL_ENV} or the config "
                "file's [label_studio] database_url to it (a start without one would create an empty SQLite database)"
            )
        return not sqlite_path(data_dir).exists()
    if recorded is None:
        if sqlite_path(data_dir).exists():
            raise ServerError(
                f"{data_dir} holds the SQLite database of another server; a server on {db.label} needs a data "
                "folder of its own (--data-dir)"
            )
        return True
    if recorded != db.label:
        raise ServerError(f"{data_dir} is the data folder of the server on {recorded}, not {db.label}: use another one")
    return False


def record_database(config: ServerConfig) -> None:
    """Record the data folder's PostgreSQL database once it is migrated (nothing to record for SQLite)."""
    db = config.database
    if db is not None:
        path = config.data_dir.expanduser().absolute() / DATABASE_FILE
        write_json_file(path, {"kind": "postgresql", "database": db.label})


def find_pg_tool(name: str) -> Path:
    """`name` (pg_dump, pg_restore, psql, ...) from $EMOTIONS_PG_BIN, else Debian's newest
    /usr/lib/postgresql/N/bin, else PATH. Raises ServerError naming the package to install."""
    folders = [Path(os.environ[PG_BIN_ENV])] if os.environ.get(PG_BIN_ENV) else []
    if folders and not (folders[0] / name).is_file():  # set, it is what the user means: never fall back silently
        raise ServerError(f"{PG_BIN_ENV}={os.environ[PG_BIN_ENV]!r}: no {name} in that folder")
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    folders += reversed(versions)
    for folder in folders:
        if (folder / name).is_file() and os.access(folder / name, os.X_OK):
            return folder / name
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise ServerError(f"{name} not found: install Debian's postgresql-client (make system-deps), or set {PG_BIN_ENV}")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", name)) or (0,)


def run_pg_tool(
    db: PostgresDatabase, name: str, args: list[str], *, timeout_s: float = 3600.0
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL client tool against `db` (connection and password through `PG*` variables only). Raises
    ServerError with the tool's last error line when it fails or runs past `timeout_s` seconds."""
    tool = find_pg_tool(name)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.update(db.libpq_env(), PGCONNECT_TIMEOUT="10")
    try:
        proc = subprocess.run(
            [str(tool), *args], env=env, capture_output=True, text=True, timeout=timeout_s, start_new_session=True
        )
    except subprocess.TimeoutExpired:
        raise ServerError(f"{name} on {db.label} did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        raise ServerError(f"{name} on {db.label} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return proc


def table_count(db: PostgresDatabase) -> int:
    """How many tables the database's public schema has (0: an empty database, ready for a first start or a
    restore)."""
    query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    out = run_pg_tool(db, "psql", ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query], timeout_s=60).stdout
    return int(out.strip() or 0)

"""The database behind the managed Label Studio server: SQLite in its data folder, or PostgreSQL.

A data folder belongs to one database for good. `DATA_DIR/database.json` (no secret: the database's URL without its
password) records a PostgreSQL database once the first start has migrated it, so a later start with another database,
or none configured, is refused instead of silently creating a fresh one; for SQLite the database file itself is the
record. The PostgreSQL client tools (pg_dump, pg_restore, psql) get the password through `PGPASSWORD` in their
environment, never through argv.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
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
        lines = [ln for ln in lines if "ERROR" in ln or "error" in ln] or lines  # not psql's "^" under the query
        raise ServerError(f"{name} on {db.label} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return proc


def table_count(db: PostgresDatabase) -> int:
    """How many tables the database's public schema has (0: an empty database, ready for a first start or a
    restore)."""
    query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    out = run_pg_tool(db, "psql", ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query], timeout_s=60).stdout
    return int(out.strip() or 0)


# --- reading a database back: what a backup holds and what a restore brought back ---------------------------------

# Label Studio's tables (`db_table` of its models) whose row counts identify a database's content.
CENSUS_TABLES = ("organization", "htx_user", "authtoken_token", "project", "task", "task_completion")
_TOKEN_TABLE = "authtoken_token"  # legacy API tokens: `key` is the token itself


@dataclass(frozen=True)
class Census:
    """What a database holds: rows per table of CENSUS_TABLES, and the SHA-256 of every legacy API token (so the
    admin's token can be looked for without the tokens leaving this process)."""

    rows: dict[str, int]
    token_hashes: frozenset[str]

    def holds_token(self, token: str | None) -> bool | None:
        """Whether `token` is one of the database's legacy API tokens; None when no token is known."""
        return None if token is None else _token_hash(token) in self.token_hashes


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sqlite_census(path: Path) -> Census:
    """The census of the SQLite database file `path`, opened read-only. Raises ServerError when it is not a Label
    Studio database."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in CENSUS_TABLES}
        hashes = frozenset(_token_hash(k) for (k,) in con.execute(f"SELECT key FROM {_TOKEN_TABLE}"))
    except sqlite3.DatabaseError as exc:
        raise ServerError(f"{path}: not a readable Label Studio database ({exc})") from None
    finally:
        con.close()
    return Census(rows, hashes)


def pg_census(db: PostgresDatabase) -> Census:
    """The census of the PostgreSQL database `db`, through psql (the tokens' hashes are computed by the server,
    so no token crosses a command line). Raises ServerError when a table is missing."""
    counts = " UNION ALL ".join(f"SELECT '{t}', count(*)::text FROM {t}" for t in CENSUS_TABLES)
    query = f"{counts} UNION ALL SELECT 'token', encode(sha256(key::bytea), 'hex') FROM {_TOKEN_TABLE}"
    out = run_pg_tool(db, "psql", ["-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query], timeout_s=300)
    rows: dict[str, int] = {}
    hashes = set()
    for line in out.stdout.splitlines():
        name, _, value = line.partition("\t")
        if name == "token":
            hashes.add(value)
        elif name in CENSUS_TABLES:
            rows[name] = int(value)
    return Census(rows, frozenset(hashes))


def pg_dump_census(db: PostgresDatabase, dump: Path) -> Census:
    """The census of a `pg_dump --format=custom` file, read back with `pg_restore --data-only` to stdout (no
    database is touched). Raises ServerError when the dump is unreadable or lacks one of the tables."""
    args = ["--data-only", "--file=-"] + [f"--table={t}" for t in CENSUS_TABLES] + [str(dump)]
    out = run_pg_tool(db, "pg_restore", args).stdout
    rows: dict[str, int] = {}
    hashes = set()
    table, key_column = None, None
    for line in out.splitlines():
        if table is None:
            match = re.match(r"COPY (?:\w+\.)?\"?(\w+)\"? \((.*)\) FROM stdin;$", line)
            if match and match.group(1) in CENSUS_TABLES:
                table = match.group(1)
                rows[table] = 0
                columns = [c.strip().strip('"') for c in match.group(2).split(",")]
                key_column = columns.index("key") if table == _TOKEN_TABLE and "key" in columns else None
        elif line == "\\.":
            table = None
        else:
            rows[table] += 1
            if key_column is not None:
                hashes.add(_token_hash(line.split("\t")[key_column]))
    missing = [t for t in CENSUS_TABLES if t not in rows]
    if missing:
        raise ServerError(f"{dump}: the dump holds no table {', '.join(missing)}: not a Label Studio database")
    return Census(rows, frozenset(hashes))

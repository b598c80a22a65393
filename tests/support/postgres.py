"""A real PostgreSQL cluster for tests: Debian's `postgresql` package (installed by `make system-deps`), its own
cluster made with `initdb` in a temporary folder and run with `pg_ctl` on a free loopback port, with password
authentication (scram-sha-256) like a lab's server.

PostgreSQL refuses to run as root ("root execution of the PostgreSQL server is not permitted"), and CI runs the
tests as root: then the cluster's folder belongs to, and its server runs as, the unprivileged `nobody` (subprocess's
`user=`), in a folder under /tmp that `nobody` can reach (pytest's own temporary folders are private to root). Run
as another user, it runs as that user. Durability settings are off (fsync): the cluster lives for one test module.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from annotation.labelstudio.database import find_pg_tool
from annotation.labelstudio.process import free_port
from tests.support.sockets import socket_folder

SUPERUSER = "emotions"


@dataclass(frozen=True)
class PostgresCluster:
    folder: Path
    port: int
    password: str = field(repr=False)

    def url(self, database: str) -> str:
        """The database's URL with the superuser and its password (a secret: give it through the environment)."""
        return f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": SUPERUSER,
                "PGPASSWORD": self.password, "PGDATABASE": "postgres"}  # fmt: skip

    def sql(self, statement: str) -> str:
        """Run one SQL statement on the `postgres` database as the superuser; its unaligned output."""
        proc = subprocess.run(
            [str(find_pg_tool("psql")), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
            env=self.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE "{name}" WITH (FORCE)')


def _as_user() -> dict[str, object]:
    """subprocess arguments that run PostgreSQL's server programs as someone other than root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running cluster on 127.0.0.1 (a free port), its superuser `emotions` with a random password; stopped and
    deleted afterwards."""
    initdb, pg_ctl = find_pg_tool("initdb"), find_pg_tool("pg_ctl")
    folder = socket_folder("pg")  # the server's Unix socket is made here (-k)
    run_as = _as_user()
    if run_as:
        os.chown(folder, run_as["user"], run_as["group"])  # type: ignore[arg-type]
    password = secrets.token_urlsafe(16)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])  # type: ignore[arg-type]
    pwfile.chmod(0o600)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(folder)}

    def run(argv: list[str]) -> None:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, cwd=folder, **run_as)  # type: ignore[call-overload]
        assert proc.returncode == 0, f"{argv[0]}: {proc.stdout}{proc.stderr}"

    port = free_port()
    data = folder / "data"
    run([str(initdb), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
         "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])  # fmt: skip
    pwfile.unlink()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off"
    run([str(pg_ctl), "-D", str(data), "-l", str(folder / "postgres.log"), "-w", "-t", "120", "-o", options, "start"])
    try:
        yield PostgresCluster(folder, port, password)
    finally:
        subprocess.run([str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"], env=env, capture_output=True,
                       timeout=120, cwd=folder, **run_as)  # type: ignore[call-overload]  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)

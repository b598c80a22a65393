"""Folders for the Unix sockets the suite's servers make (Ray's raylet and plasma store, PostgreSQL's), short by
construction.

Linux keeps a Unix socket's path in `sockaddr_un.sun_path`, 108 bytes with the terminating NUL (unix(7)), so a path
may not exceed 107 bytes. pytest's temp folders (`/tmp/pytest-of-USER/pytest-N/NAME0`) grow with the user name, the
run counter and the test's name, and Ray adds a session folder whose name embeds a timestamp and a process id: put
under them, a socket's length depends on the machine's history. These folders sit directly under a short root
instead, whatever pytest's counter and the process ids are."""

from __future__ import annotations

import tempfile
from pathlib import Path

UNIX_SOCKET_PATH_MAX = 107  # bytes: sun_path is 108 on Linux, one of them the terminating NUL (unix(7))
SHORT_ROOT_MAX = 20  # a temp root longer than this is not used for sockets; /tmp is
# The longest socket path Ray makes under its temp folder: a session folder named by the date to the microsecond and
# the process id (at most 4194304, the kernel's largest pid_max), then the plasma store's socket, numbered from the
# second node of a session on one host (`_make_inc_temp` in ray/_private/node.py).
RAY_LONGEST_TAIL = "/session_2026-12-31_23-59-59_999999_4194304/sockets/plasma_store.99"
POSTGRES_LONGEST_TAIL = "/.s.PGSQL.65535"  # the socket of a cluster started with `-k FOLDER -p PORT`
LONGEST_TAIL = max(RAY_LONGEST_TAIL, POSTGRES_LONGEST_TAIL, key=len)


def short_root() -> Path:
    """The temp root when it is short (a new machine's /tmp, or a TMPDIR like /t07), else /tmp."""
    root = Path(tempfile.gettempdir())
    return root if len(str(root).encode()) <= SHORT_ROOT_MAX else Path("/tmp")


def socket_folder(prefix: str) -> Path:
    """A new, empty folder under `short_root()` for a server's sockets; raises AssertionError if even the longest
    socket path the suite makes under it would not fit."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=short_root()))
    longest = str(folder) + LONGEST_TAIL
    assert len(longest.encode()) <= UNIX_SOCKET_PATH_MAX, f"socket path too long: {longest}"
    return folder

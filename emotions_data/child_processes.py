"""No process of a command outlives it: worker processes end with the process that started them.

A worker (a process pool's, a DataLoader's) calls `end_with_parent` as it starts. On Linux it asks the kernel to
send it SIGTERM when its parent ends, however the parent ends, SIGKILL included (`prctl(PR_SET_PDEATHSIG)`, see
prctl(2)); it then checks that the parent has not already gone in the meantime. Its SIGTERM handler kills the
worker's own children (an ffmpeg it is waiting for) and ends the worker at once, so a job in flight is not finished
for nobody; a job's partial files are temporaries, swept by the next run. multiprocessing's resource tracker needs
nothing: it ends by itself once every process holding its pipe (the command and its workers) has ended. Elsewhere
than Linux the parent's own SIGTERM handling (the CLI) ends the workers it knows.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def children(pid: int | None = None) -> list[int]:
    """The pids of the direct children of `pid` (default: this process), from /proc; empty where /proc has no
    `children` lists (not Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid or os.getpid()}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return found


def _end_worker(signum: int, frame: object) -> None:
    """SIGTERM in a worker: kill its children (they would run on for nobody), then end at once."""
    for pid in children():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(128 + signum)


def end_with_parent(parent_pid: int) -> None:
    """Make this worker end when its parent `parent_pid` ends (see the module's docstring); SIGTERM ends it and its
    children at once. Call it first thing in the worker, with the pid of the process that started it."""
    signal.signal(signal.SIGTERM, _end_worker)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent ended before the kernel was asked
        _end_worker(signal.SIGTERM, None)


def loader_worker_start(parent_pid: int, worker_id: int) -> None:
    """A DataLoader's `worker_init_fn` (bound to the parent's pid with functools.partial): `end_with_parent`."""
    end_with_parent(parent_pid)

"""One writing command at a time per dataset: an advisory lock (`fcntl.flock`) on `DATASET/.emotions.lock`.

Every command that writes a dataset holds this lock for as long as it runs; commands that only read do not take it
(every file they read is replaced atomically, so they see one whole version). A second writer waits a little for
the first to end, then refuses with one line naming the holder (its pid and command line, found in the kernel's
table of locks, `/proc/locks`, so the lock file itself stays empty: nothing in it can go stale). The kernel drops
the lock when its holder exits, however it ends, so a killed command never leaves the dataset locked.

The lock is re-entrant within a process: a step that takes it inside a command that already holds it (the demo
runs several steps) goes on at once.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from emotions_data.faults import local_fault

LOCK_FILE = ".emotions.lock"
#: How long a second writer waits for the first one before it refuses, in seconds; `EMOTIONS_LOCK_WAIT_S` overrides.
DEFAULT_WAIT_S = 5.0
_POLL_S = 0.1

_held: dict[str, tuple[int, int]] = {}  # resolved dataset root -> (file descriptor, depth), this process's locks
_guard = threading.Lock()
P = ParamSpec("P")
R = TypeVar("R")


class DatasetBusy(RuntimeError):
    """Another command holds the dataset's lock."""


def lock_wait_s() -> float:
    """The wait before a second writer refuses: `EMOTIONS_LOCK_WAIT_S` (seconds, finite, >= 0) or `DEFAULT_WAIT_S`.
    Raises ValueError naming the variable for anything else."""
    text = os.environ.get("EMOTIONS_LOCK_WAIT_S")
    if text is None or not text.strip():
        return DEFAULT_WAIT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise ValueError(f"EMOTIONS_LOCK_WAIT_S={text!r}: not a number of seconds (a finite number >= 0)")
    return value


def _holder(fd: int) -> str:
    """Who holds the lock on the open file `fd`: 'pid N (command line)', from /proc/locks; 'another process' where
    the kernel's table cannot be read (not Linux) or names nobody (the holder just ended)."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return "another process"
    for line in table.splitlines():
        parts = line.split()
        if "FLOCK" in parts and key in parts:
            pid = parts[parts.index(key) - 1]
            try:
                argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                argv = []
            if len(argv) > 1 and os.path.basename(argv[0]).startswith("python") and not argv[1].startswith("-"):
                argv = argv[1:]  # a script run by its interpreter (the `emotions` console script): named by the script
            command = " ".join([os.path.basename(argv[0]), *argv[1:]]) if argv else ""
            command = " ".join(command.split())  # one line, whatever the arguments hold
            command = command if len(command) <= 200 else command[:199] + "…"
            return f"pid {pid} ({command})" if command else f"pid {pid}"
    return "another process"


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        # A read-only or full dataset is the machine's fault: said the way every other write of the dataset says it.
        fault = local_fault(exc, path.parent)
        reason = f"{fault.reason}: {fault.advice}" if fault is not None else (exc.strerror or str(exc))
        raise ValueError(f"{path}: cannot lock the dataset for writing: {reason}") from None


def _acquire(path: Path, what: str, wait_s: float) -> int:
    fd = _open(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _holder(fd)
                os.close(fd)
                waited = f" (waited {wait_s:g} s)" if wait_s else ""
                raise DatasetBusy(
                    f"{what}: another run holds {path}: {holder} is writing this dataset{waited}; run this again "
                    "when it has ended"
                ) from None
            time.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise


@contextmanager
def dataset_lock(root: Path, what: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold `root`'s dataset lock while the block runs (`what` names the command in messages). Waits up to `wait_s`
    seconds (default `lock_wait_s()`; 0: refuse at once) for another holder to end, then raises DatasetBusy (a
    RuntimeError) naming the lock file and the holder's pid and command. Raises ValueError naming the lock file when it
    cannot be made (a read-only mount, say). A folder that does not exist yet is not locked (there is nothing in it
    to protect). Re-entrant within a process."""
    key = os.path.realpath(root)
    with _guard:
        reentered = key in _held
        if reentered:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
    if not reentered:
        if not os.path.isdir(key):  # nothing to protect yet: the command makes the folder, or fails its own way
            yield
            return
        fd = _acquire(Path(root) / LOCK_FILE, what, lock_wait_s() if wait_s is None else wait_s)
        with _guard:
            _held[key] = (fd, 1)
    try:
        yield
    finally:
        _release(key)


def _release(key: str) -> None:
    with _guard:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def writes_dataset(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a step whose first argument is the dataset (a `DatasetLayout`, or its folder) so that it runs under
    the dataset's lock (`dataset_lock`, `what` naming the command); raises what `dataset_lock` raises."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def locked(*args: P.args, **kwargs: P.kwargs) -> R:
            dataset = args[0]
            with dataset_lock(getattr(dataset, "root", dataset), what):
                return fn(*args, **kwargs)

        return locked

    return decorate

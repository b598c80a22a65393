"""Faults of this machine, told apart from faults of an item.

A full disk or quota, a read-only or unwritable dataset folder, no file handles left: none of these is the fault of
the item at hand, and every other item would hit it too. They become `LocalFault`, which stops the run with one line
naming the folder and the reason; committed work is kept and the items at hand stay retryable (they get no failure
row). Tools report them in different forms (an `OSError` with an errno, yt-dlp's `DownloadError` wrapping one, or only
text, as ffmpeg prints), so :func:`local_fault` and :func:`local_fault_in_text` read all of them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: errno -> (what it means, what the user does about it). These say that this machine cannot hold the run's
#: files, whichever item is at hand: no item can cause them, so they stop the run instead of failing items.
_MACHINE_ERRNOS = {
    errno.ENOSPC: ("no space left on device", "free some space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or raise the quota"),
    errno.EROFS: ("read-only file system", "make it writable"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n)"),
    errno.ENFILE: ("too many open files in the system", "close other programs' files"),
}
#: These are the machine's only on our own files: a source file may be unreadable too, which is its item's fault.
_ACCESS_ERRNOS = {
    errno.EACCES: ("permission denied", "make it writable"),
    errno.EPERM: ("operation not permitted", "make it writable"),
    errno.EIO: ("input/output error", "check the disk"),
}
#: How tools that only print (ffmpeg, yt-dlp's post-processors) name the machine's errors.
_MACHINE_TEXT = {os.strerror(code): code for code in _MACHINE_ERRNOS}
#: The programs the pipeline runs: one missing is the machine's fault, not the item's.
TOOLS = ("ffmpeg", "ffprobe")


class LocalFault(RuntimeError):
    """This machine cannot store the run's work: a full disk or quota, a read-only or unwritable folder, no file
    handles left. The run stops; committed work is kept and the items at hand stay retryable.

    Carries plain strings only, so it crosses process boundaries (process pool, Ray) intact."""

    def __init__(self, folder: str, reason: str, advice: str = "fix it") -> None:
        super().__init__(folder, reason, advice)
        self.folder, self.reason, self.advice = folder, reason, advice

    def __str__(self) -> str:
        return f"{self.folder}: {self.reason}; finished work is kept: {self.advice} and run the same command again"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: causes, contexts and yt-dlp's `exc_info`, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        node = todo.pop(0)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        exc_info = getattr(node, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
            todo.append(exc_info[1])
        todo += [node.__cause__, node.__context__]


def _inside(path: str | os.PathLike[str], folders: Sequence[Path]) -> bool:
    target = Path(os.path.abspath(path))
    return any(target.is_relative_to(os.path.abspath(folder)) for folder in folders)


def _fault(code: int, name: str, filename: object, folder: Path) -> LocalFault:
    reason, advice = {**_MACHINE_ERRNOS, **_ACCESS_ERRNOS}[code]
    where = Path(os.fsdecode(filename)).parent if isinstance(filename, str | bytes) and filename else folder
    return LocalFault(str(where), f"{reason} ({name})", advice)


def local_fault(exc: BaseException, folder: Path, ours: Sequence[Path] | None = None) -> LocalFault | None:
    """The `LocalFault` that `exc` (or anything it wraps) is, else None.

    `folder` is named when the error names no file. `ours`: the folders this code writes to; a permission error
    on a file elsewhere (a source) is not the machine's. None: every file involved is ours."""
    for node in _chain(exc):
        code = getattr(node, "errno", None)
        if not isinstance(node, OSError) or not isinstance(code, int):
            continue
        if isinstance(node, FileNotFoundError) and node.filename in TOOLS:  # subprocess found no such program
            return LocalFault(str(node.filename), "not installed (not found on PATH)", f"install {node.filename}")
        filename = node.filename
        if code in _MACHINE_ERRNOS:
            return _fault(code, errno.errorcode[code], filename, folder)
        if code in _ACCESS_ERRNOS and (ours is None or (filename and _inside(os.fsdecode(filename), ours))):
            return _fault(code, errno.errorcode[code], filename, folder)
    for node in _chain(exc):  # errors that kept only their text, e.g. "unable to write data: ... No space left"
        fault = local_fault_in_text(str(node), folder)
        if fault is not None:
            return fault
    return None


def local_fault_in_text(text: str, folder: Path, ours: Sequence[Path] = ()) -> LocalFault | None:
    """The `LocalFault` a tool's error output reports (ffmpeg prints "No space left on device"), else None.

    A permission error counts only on a line that names one of `ours` (ffmpeg prints "PATH: Permission denied")."""
    for message, code in _MACHINE_TEXT.items():
        if message.lower() in text.lower():
            return _fault(code, errno.errorcode[code], None, folder)
    for line in text.splitlines():
        for code in _ACCESS_ERRNOS:
            if os.strerror(code) in line and any(os.fspath(path) in line for path in ours):
                return _fault(code, errno.errorcode[code], None, folder)
    return None


def as_local_fault(exc: OSError, folder: Path) -> LocalFault:
    """An error on the toolkit's own files as a `LocalFault`, whatever its errno: a folder of ours that cannot be
    written is never an item's fault."""
    fault = local_fault(exc, folder)
    if fault is not None:
        return fault
    where = Path(os.fsdecode(exc.filename)).parent if exc.filename else folder
    name = errno.errorcode.get(exc.errno or 0, "error")
    return LocalFault(str(where), f"{(exc.strerror or str(exc)).lower()} ({name})")


@contextmanager
def writing_to(folder: Path) -> Iterator[None]:
    """Name `folder` in the `LocalFault` a failed write there becomes (pyarrow's errors name no file)."""
    try:
        yield
    except OSError as exc:
        raise as_local_fault(exc, folder) from None

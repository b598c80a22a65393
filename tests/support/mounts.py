"""Real filesystem faults for the tests, made by the kernel rather than mocked: a small tmpfs that fills up, a
read-only bind mount, and errors injected into a real `emotions` process's system calls on one path with strace
(root ignores file permissions, so "permission denied" cannot be made with chmod).

Mounting needs root (CI runs the suite as root); where it is not permitted the tests that mount are skipped, saying
why. strace is a test dependency (`make setup` installs it, as for tests/support/crash.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.commands import EMOTIONS


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {proc.stderr.strip()}")


def _umount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=True)  # still busy (a straggling child): detach it


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: 300k, 50m) mounted on `folder` (created) for the block's duration."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        _umount(folder)


def resize(disk: Path, size: str | int) -> None:
    """Give the tmpfs on `disk` a new size (bytes, or mount's syntax): "free space" without touching its files."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def used_bytes(disk: Path) -> int:
    info = os.statvfs(disk)
    return (info.f_blocks - info.f_bfree) * info.f_frsize


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` (created) bind-mounted onto itself read-only for the block's duration: writes there fail with
    EROFS, as on a read-only filesystem, even for root."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(folder), str(folder))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        _umount(folder)


def run_with_error(path: Path, syscalls: str, error: str, *args: str) -> subprocess.CompletedProcess:
    """Run `emotions ARGS` with every call of `syscalls` (comma-separated) on `path` failing with `error` (an errno
    name), in the command and all its children (workers, yt-dlp, ffmpeg). strace matches a path argument or a file
    descriptor open on `path`; for a rename, only its first path."""
    if shutil.which("strace") is None:
        raise RuntimeError("strace is missing: `make setup` installs it (Debian package strace)")
    return subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "signal=none", "-P", str(path), "-e", f"trace={syscalls}",
         "-e", f"inject={syscalls}:error={error}", EMOTIONS, *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip

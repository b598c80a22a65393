"""The `emotions` command as a user runs it (a real process), and waiting for a run to reach a point."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

EMOTIONS = str(Path(sys.executable).with_name("emotions"))


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([EMOTIONS, *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the run never reached the kill point")
        time.sleep(0.05)


def _shards(folder: Path) -> int:
    return len(list(folder.glob("*.parquet"))) if folder.exists() else 0


def interruptible() -> None:
    """`preexec_fn` for a command a test stops with SIGINT: Ctrl-C as a terminal delivers it. A shell starts a
    background job with SIGINT ignored, and Python keeps an ignored SIGINT ignored, so a suite started with `&`
    would otherwise hand its commands a Ctrl-C they never hear."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

"""Kill a real `emotions` process at each of its commit points, from outside, with strace's fault injection.

A commit point is a rename (every atomic write in the toolkit ends in one). `renames(args)` runs the command once
under strace and counts them (with --seccomp-bpf only renames stop the process, so counting is cheap);
`killed_at(args, n)` runs it again and has the kernel deliver SIGKILL to the process (and, with `-f`, any child) as
it enters its n-th rename, before that rename happens. Fault injection does not fire under --seccomp-bpf, so that
run traces every syscall. No hook in the product.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.support.commands import EMOTIONS

RENAMES = "rename,renameat,renameat2"


def _strace(*extra: str) -> list[str]:
    if shutil.which("strace") is None:
        raise RuntimeError("strace is missing: `make setup` installs it (Debian package strace)")
    return ["strace", "-f", "-qq", "-e", "signal=none", "-o", "/dev/null", *extra]


def renames(args: list[str], timeout: float = 600) -> int:
    """How many renames `emotions ARGS` makes in a full run (it must succeed)."""
    proc = subprocess.run(
        ["strace", "--seccomp-bpf", "-f", "-qq", "-e", "signal=none", "-c", "-e", f"trace={RENAMES}", EMOTIONS, *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"emotions {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return sum(
        int(m.group(1))
        for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?rename", proc.stderr, re.M)
    )


def killed_at(args: list[str], n: int, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `emotions ARGS`, SIGKILLed as it enters its n-th rename (1-based); returns the finished process."""
    return subprocess.run(
        [*_strace("-e", f"trace={RENAMES}", "-e", f"inject={RENAMES}:signal=KILL:when={n}"), EMOTIONS, *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip

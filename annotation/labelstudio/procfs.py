"""What Linux's /proc says about a process (state, start time, command line, threads, process group, listening
sockets), and ending a process group. The server's lifecycle (`annotation.labelstudio.process`) signals a process
only after these show it is the very one it started."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[19])


def cmdline(pid: int) -> list[str]:
    """The process's argv (empty when there is no such process, or it is a kernel thread)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def thread_states(pid: int) -> list[str]:
    """The state letter of each thread of `pid` (empty when there is no such process)."""
    states = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        states.append(raw[raw.rindex(")") + 2])
    return states


def alive(pid: int) -> bool:
    """True while any thread of `pid` runs, and, for our own child, until it has been reaped. (A multi-threaded
    server's main thread can be a zombie while its other threads still run.)"""
    if any(state not in "ZX" for state in thread_states(pid)):
        return True
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == 0
    except ChildProcessError:  # not our child: gone once no thread runs
        return False


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from every /proc/<pid>/stat."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP (address, port) pairs the process listens on, from its file descriptors and /proc/net/tcp*."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                addr_hex, port_hex = cols[1].split(":")
                raw = bytes.fromhex(addr_hex)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order 32-bit words
                found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def terminate(pid: int, grace_s: float) -> None:
    """SIGTERM to the process group `pid` leads, SIGKILL to whatever of it remains after `grace_s`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid) or group_members(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5.0
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

"""A command stopped by SIGTERM (as a service manager sends it, to the main process only) ends in one line saying
what was kept and how to resume, exit 143; killed with SIGKILL, it takes its workers with it. Either way no process
it started outlives it: its pool workers, their ffmpeg and multiprocessing's resource tracker all end.

Each command runs in a session of its own, so every process it started, however deep, carries the session's id."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.baseline_release import tiny_release
from tests.support.commands import EMOTIONS
from tests.support.corpus import url_table


def session(sid: int) -> dict[int, str]:
    """pid -> command line of every live process in the session `sid` (zombies, already ended, left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return found


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def workers_of(proc: subprocess.Popen) -> list[str]:
    return [cmd for pid, cmd in session(proc.pid).items() if pid != proc.pid and "spawn_main" in cmd]


@contextmanager
def hanging(server, name: str) -> Iterator[None]:
    """The loopback server's answer for `name` hangs until the block ends: a download in flight."""
    release, plain = threading.Event(), server.handler.do_GET

    def do_get(self) -> None:
        if self.path.split("?", 1)[0] == f"/{name}":
            release.wait(120)
        plain(self)

    server.handler.do_GET = do_get
    try:
        yield
    finally:
        release.set()
        server.handler.do_GET = plain


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([EMOTIONS, *args], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def ends_alone(proc: subprocess.Popen, how: signal.Signals) -> tuple[str, str]:
    """Send `how` to the command's main process only; wait for it, then for every process of its session."""
    os.kill(proc.pid, how)
    out, err = proc.communicate(timeout=120)
    wait_until(lambda: not session(proc.pid), 15, f"processes outlived the command: {session(proc.pid)}")
    return out, err


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_ingest_stopped_mid_run_takes_its_workers_with_it(server, tmp_path, how):
    table = url_table(server, tmp_path / "urls.csv", ["landscape.mp4", "portrait.mp4"])
    config = tmp_path / "one-per-shard.toml"
    config.write_text("[ingest]\nshard_size = 1\n")
    out_dir = tmp_path / "ds"
    with hanging(server, "portrait.mp4"):
        proc = start("ingest", str(table), "--out", str(out_dir), "--workers", "2", "--config", str(config))
        wait_until(lambda: any((out_dir / ".work" / "fetch").glob("*.parquet")), 300, "no download was committed")
        assert len(workers_of(proc)) == 2
        _, err = ends_alone(proc, how)
    if how == signal.SIGTERM:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert proc.returncode == 143 and len(lines) == 1, err
        assert lines[0].startswith("error: interrupted: finished work is kept; the same command resumes")
        assert "SIGTERM" in lines[0]
    else:
        assert proc.returncode == -signal.SIGKILL
    done = subprocess.run([EMOTIONS, "ingest", str(table), "--out", str(out_dir), "--config", str(config)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr  # the lock went with the command: the same command resumes


def test_cache_stopped_by_sigterm_says_what_was_kept_and_leaves_no_process(tmp_path):
    release = tiny_release(tmp_path, per_class=3, duration_s=4.0)
    proc = start("cache", str(release), "--workers", "2")
    wait_until(lambda: len(workers_of(proc)) == 2 or proc.poll() is not None, 120, "the pool never started")
    _, err = ends_alone(proc, signal.SIGTERM)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 143 and len(lines) == 1, err
    assert lines[0].startswith("error: stopped by SIGTERM: what was committed before is kept, whole")
    assert lines[0].endswith(f"run the same command again: emotions cache {release} --workers 2")

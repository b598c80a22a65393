"""The dataset's lock: one writing command at a time, a second one named to the user with the holder's pid."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from emotions_data.dataset_lock import LOCK_FILE, DatasetBusy, dataset_lock

HOLD = """import sys, time
from emotions_data.dataset_lock import dataset_lock
with dataset_lock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(root, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_gets_the_lock_once_it_ends(tmp_path):
    proc = _holder(tmp_path, 30)
    try:
        with pytest.raises(DatasetBusy) as refused, dataset_lock(tmp_path, "split", wait_s=0.3):
            pass
        message = str(refused.value)
        assert message.startswith(f"split: another run holds {tmp_path / LOCK_FILE}: pid {proc.pid} (python")
        assert "\n" not in message and "waited 0.3 s" in message
    finally:
        proc.kill()
        proc.wait()
    with dataset_lock(tmp_path, "split", wait_s=0):  # the kernel let go of a killed holder's lock
        assert (tmp_path / LOCK_FILE).read_bytes() == b"", "nothing is written into the lock file"


def test_a_second_writer_waits_for_a_short_holder_and_the_lock_is_reentrant(tmp_path):
    proc = _holder(tmp_path, 0.5)
    started = time.monotonic()
    with dataset_lock(tmp_path, "labels", wait_s=20), dataset_lock(tmp_path, "labels", wait_s=0):
        assert time.monotonic() - started < 10
        seen = []
        other = threading.Thread(target=lambda: seen.append(_try(tmp_path)))
        other.start()
        other.join()
        assert seen == [True], "another thread of the same process is inside the same command"
    proc.wait()


def _try(root) -> bool:
    with dataset_lock(root, "labels", wait_s=0):
        return True


def test_the_wait_comes_from_the_environment_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTIONS_LOCK_WAIT_S", "inf")
    with pytest.raises(ValueError, match="EMOTIONS_LOCK_WAIT_S='inf'"), dataset_lock(tmp_path, "split"):
        pass

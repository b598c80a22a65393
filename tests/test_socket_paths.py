"""The Unix sockets the suite's servers make fit in `sun_path` whatever the machine's temp root, pytest's run counter
and the process ids are (tests/support/sockets.py)."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import tempfile
from pathlib import Path

from tests.support import sockets


def test_the_longest_socket_path_the_suite_makes_fits_and_binds(monkeypatch, tmp_path):
    # a temp root as long as a well-used machine's pytest folder is not used for sockets
    long_root = tmp_path / ("x" * 60)
    long_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_root))
    folder = sockets.socket_folder("ray")
    try:
        assert not str(folder).startswith(str(long_root))
        longest = str(folder) + sockets.LONGEST_TAIL
        assert len(longest.encode()) <= sockets.UNIX_SOCKET_PATH_MAX
        Path(longest).parent.mkdir(parents=True)
        with socket.socket(socket.AF_UNIX) as s:  # the kernel agrees: a socket at the longest path binds
            s.bind(longest)
    finally:
        shutil.rmtree(folder)


def test_the_ray_tail_is_the_longest_ray_can_name():
    # Read, not imported: Ray takes its settings from the environment when first imported, which the Ray fixtures
    # set up themselves.
    package = Path(importlib.util.find_spec("ray").submodule_search_locations[0])
    node = (package / "_private" / "node.py").read_text()
    assert 'f"session_{date_str}_{os.getpid()}"' in node and '"%Y-%m-%d_%H-%M-%S_%f"' in node
    assert 'default_prefix="plasma_store"' in node and 'default_prefix="raylet"' in node
    session = sockets.RAY_LONGEST_TAIL.split("/")[1]
    assert session.rsplit("_", 1)[1] == str(2**22)  # PID_MAX_LIMIT on 64-bit Linux
    assert int(Path("/proc/sys/kernel/pid_max").read_text()) <= 2**22
    assert sockets.LONGEST_TAIL == sockets.RAY_LONGEST_TAIL

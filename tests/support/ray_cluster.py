"""Fixtures for the Ray tests: a real local Ray instance (2 CPUs, no dashboard) per module, the corpus as URLs
on a loopback server, and the local process pool's manifest of the same inputs to compare with.

tests/conftest.py imports the fixtures for every module; they are module-scoped: each module that asks gets its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emotions_data.executor import make_executor
from emotions_data.ingest import ingest, read_manifest
from emotions_data.layout import DatasetLayout
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA
from emotions_data.storage import TMP_MARK, StageLog
from tests.support.corpus import CORPUS, settings, url_table
from tests.support.sockets import socket_folder


@contextlib.contextmanager
def one_ray_at_a_time() -> Iterator[None]:
    """Held while a module's Ray instance or cluster runs. `make test` runs modules on two pytest-xdist workers, and
    two Ray instances started at once by separate processes on one machine have refused each other's drivers
    (authentication errors): a Ray module on the other worker waits here for this one to finish."""
    with open(Path(tempfile.gettempdir()) / "emotions-tests-ray.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# One token for the whole session: Ray reads RAY_AUTH_TOKEN once, when it is first imported, and keeps it, so a
# second module's instance started with a fresh token would refuse this process's own driver.
RAY_TOKEN = secrets.token_hex(32)


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A local Ray instance for the module, started in this process; yields its address for other drivers."""
    with one_ray_at_a_time():
        saved_env = dict(os.environ)
        # No usage reports; Ray's default token authentication with a token of our own rather than one it would
        # write to ~/.ray (the CLI's driver below inherits it). Set before Ray is imported: it reads them then.
        os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_TOKEN=RAY_TOKEN)
        import ray

        temp = socket_folder("ray")  # Ray's Unix sockets live under its temp folder
        info = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
                        logging_level=logging.WARNING)  # fmt: skip
        try:
            yield info.address_info["address"]
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
            os.environ.clear()
            os.environ.update(saved_env)  # ray.init sets RAY_* variables for its children


@pytest.fixture(scope="module")
def urls(corpus, tmp_path_factory):
    """The corpus as URLs on one loopback server for the whole module, so every run sees the same sources."""
    from emotions_data.loopback import serve

    root = tmp_path_factory.mktemp("ray_urls")
    with serve(corpus) as server:
        yield url_table(server, root / "urls.csv", CORPUS)


@pytest.fixture(scope="module")
def reference_ds(urls, tmp_path_factory) -> Path:
    """A dataset ingested by the local process pool from the same inputs."""
    ds = tmp_path_factory.mktemp("ray_reference") / "ds"
    ingest([urls], ds, settings(), executor=make_executor("local", 2))
    return ds


@pytest.fixture(scope="module")
def reference(reference_ds):
    """The manifest of the local process pool on the same inputs."""
    return comparable(reference_ds)


def comparable(ds: Path) -> pd.DataFrame:
    """The manifest without its timestamps, in a fixed order; checks one row per input on the way."""
    frame = read_manifest(ds / "manifests" / "videos.parquet")
    assert len(frame) == len(CORPUS) and frame["video_id"].is_unique
    assert not list(ds.rglob(f"{TMP_MARK}*"))
    return frame.drop(columns=["processed_at"]).sort_values("video_id").reset_index(drop=True)


def assert_logs_hold_each_item_once(ds: Path) -> None:
    layout = DatasetLayout(ds)
    for folder, schema in ((layout.fetch_log, PROBE_STAGE_SCHEMA), (layout.normalise_log, NORMALISE_STAGE_SCHEMA)):
        ids = StageLog(folder, schema).load_table()["video_id"].to_pylist()
        assert len(ids) == len(set(ids)), folder


class TwoNodeCluster:
    """A head and a worker node, each started by its own `ray start` process (its own raylet, object store and
    CPUs) on this machine: what `ray start --head` on one host and `ray start --address` on another make.

    Each `ray start` runs in a session of its own, so a node is its process group (raylet, GCS, agents) and the worker
    processes its raylet started: killing them all at once is what losing the machine does."""

    def __init__(
        self,
        root: Path,
        cpus_per_node: int = 1,
        env: Mapping[str, str] | None = None,
        head_env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        """`env`: more variables for both nodes and for `self.env` (what a driver runs with); `head_env`,
        `worker_env`: one node's own. A node's Ray workers run in the environment of its `ray start`, as on a real
        cluster where each host (or pod) has its own."""
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Token authentication, as a cluster on a network should run; a failed node is noticed within ~2 s rather
        # than Ray's default ~15 s (the health-check settings are read by the head's GCS).
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN,
                    "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
                    **(env or {})}  # fmt: skip
        common = [f"--num-cpus={cpus_per_node}", "--object-store-memory=200000000", "--disable-usage-stats"]
        self.head = self._start(["--head", f"--port={self.port}", "--include-dashboard=false",
                                 f"--temp-dir={root}", *common], head_env)  # fmt: skip
        self.worker = self._start([f"--address={self.address}", *common], worker_env)
        self._wait_for_nodes(2)

    def _start(self, args: list[str], env: Mapping[str, str] | None = None) -> int:
        """Runs `ray start ARGS` in a new session; returns that session's id (the node's process group)."""
        proc = subprocess.Popen([self.ray, "start", *args], env={**self.env, **(env or {})}, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        return proc.pid

    def _wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = subprocess.run([self.ray, "status", f"--address={self.address}"], env=self.env,
                                    capture_output=True, text=True, timeout=60)  # fmt: skip
            if status.stdout.count("node_") >= n:
                return
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.5)

    @staticmethod
    def _processes() -> dict[int, tuple[int, int, bytes]]:
        """pid -> (parent pid, process group, command line) of every process on this machine."""
        table = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    table[int(entry.name)] = (int(fields[1]), int(fields[2]), (entry / "cmdline").read_bytes())
                except (OSError, IndexError, ValueError):
                    continue  # gone meanwhile
        return table

    def node_pids(self, node: int) -> dict[int, bytes]:
        """The node's processes: its process group (raylet, agents) and their children (Ray puts each worker
        process in a group of its own, under the raylet)."""
        table = self._processes()
        group = {pid for pid, (_, pgid, _) in table.items() if pgid == node}
        return {pid: cmd for pid, (ppid, pgid, cmd) in table.items() if pid in group or ppid in group}

    def busy_jobs(self, node: int) -> int:
        """How many of the node's Ray workers are running a shard job now (Ray titles them `ray::run_shard`)."""
        return sum(cmd.startswith(b"ray::run_shard") for cmd in self.node_pids(node).values())

    def kill_worker_node(self) -> None:
        """SIGKILLs every process of the worker node at once, as a lost machine would go."""
        for pid in self.node_pids(self.worker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for node in (self.worker, self.head):
            for pid in self.node_pids(node):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _free_port() -> int:
    """A free TCP port outside Ray's worker port range (10002-19999): the kernel's ephemeral range is above it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def two_nodes(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[TwoNodeCluster]:
    """A `TwoNodeCluster(root, **options)` while Ray is this module's, stopped on exit."""
    root = socket_folder("ray")  # Ray's Unix sockets live under the head node's temp folder
    with one_ray_at_a_time():
        cluster = TwoNodeCluster(root, **options)
        try:
            yield cluster
        finally:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory):
    with two_nodes(tmp_path_factory) as cluster:
        yield cluster

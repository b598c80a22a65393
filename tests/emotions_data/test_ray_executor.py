"""Ingest on Ray: a real local Ray instance (2 CPUs, no dashboard), the real tools, workers killed mid-run, and
the manifest compared with the local process pool's on the same inputs. The driver killed mid-run, through the
`emotions` command, is in tests/cli/test_ray_cli.py."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.executor import ExecutorError, RayExecutor
from emotions_data.ingest import ingest
from tests.support.commands import _shards
from tests.support.corpus import CORPUS, settings
from tests.support.ray_cluster import assert_logs_hold_each_item_once, comparable
from tests.support.releases import label_and_release

pytestmark = [pytest.mark.slow, pytest.mark.server]


def running_shard_pids() -> list[int]:
    """Ray workers of this process's instance busy with a shard job (Ray titles them `ray::run_shard`)."""
    parents: dict[int, int] = {}
    titles: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                titles[int(entry.name)] = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid, title in titles.items() if title.startswith(b"ray::run_shard") and ours(pid)]


class WorkerKiller:
    """A progress callback that SIGKILLs one busy Ray worker (or all of them) once `stage` has reported progress."""

    def __init__(self, stage: str, every_busy: bool = False) -> None:
        self.stage = stage
        self.every_busy = every_busy  # sure to hit a job midway, even if one has just finished but not retitled
        self.killed: list[int] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.killed and stage == self.stage and 0 < done < total:
            deadline = time.monotonic() + 10
            while not (pids := running_shard_pids()):
                assert time.monotonic() < deadline, "no busy Ray worker to kill"
                time.sleep(0.02)
            self.killed = pids if self.every_busy else pids[:1]
            for pid in self.killed:
                os.kill(pid, signal.SIGKILL)


def _stages_import_pandas(_: object) -> bool:
    import emotions_data.stages  # noqa: F401  (all that a shard job imports)

    return "pandas" in sys.modules


def test_map_unordered_gives_every_result_on_a_started_instance(ray_address):
    import ray

    with RayExecutor(2) as executor:
        assert executor.workers == 2
        assert sorted(executor.map_unordered(math.factorial, list(range(12)))) == sorted(map(math.factorial, range(12)))
        assert list(executor.map_unordered(math.factorial, [])) == []
        with pytest.raises(ValueError, match="factorial"):  # a job's own error comes back as itself
            list(executor.map_unordered(math.factorial, [3, -1]))
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
        assert not any(executor.map_unordered(_stages_import_pandas, [0, 1])), "workers stay free of pandas"
    assert ray.is_initialized(), "an instance the executor did not start is left running"


def test_killed_worker_is_retried_and_the_manifest_equals_the_local_one(ray_address, urls, reference, tmp_path):
    killer = WorkerKiller("normalise")
    with RayExecutor(2) as executor:
        ingest([urls], tmp_path / "ds", settings(), executor=executor, progress=killer)
    assert killer.killed
    pd.testing.assert_frame_equal(comparable(tmp_path / "ds"), reference)
    assert_logs_hold_each_item_once(tmp_path / "ds")


def test_without_retries_a_killed_worker_stops_the_run_and_a_rerun_resumes(ray_address, urls, reference, tmp_path):
    killer = WorkerKiller("fetch", every_busy=True)
    with RayExecutor(2, max_retries=0) as executor, pytest.raises(ExecutorError, match="WorkerCrashedError"):
        ingest([urls], tmp_path / "ds", settings(), executor=executor, progress=killer)
    assert not (tmp_path / "ds" / "manifests" / "videos.parquet").exists()
    assert 0 < _shards(tmp_path / "ds" / ".work" / "fetch")
    with RayExecutor(2) as executor:
        report = ingest([urls], tmp_path / "ds", settings(), executor=executor)
    assert 0 < report.n_processed["fetch"] < len(CORPUS), "only the lost and the unstarted shards run again"
    pd.testing.assert_frame_equal(comparable(tmp_path / "ds"), reference)
    assert_logs_hold_each_item_once(tmp_path / "ds")


def test_the_core_never_imports_ray():
    code = "import sys, emotions_cli.main, emotions_data.ingest, emotions_data.executor, emotions_data.stages; " \
           "assert 'ray' not in sys.modules, 'ray was imported'"  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_the_baseline_cache_builds_on_ray_as_it_does_locally(ray_address, reference_ds, tmp_path):
    pytest.importorskip("torch")
    from baselines.cache import CacheSettings, build_release_cache
    from emotions_data.executor import SerialExecutor

    release = label_and_release(reference_ds, "0.0.1")
    local = build_release_cache(release, CacheSettings(), SerialExecutor(), cache_dir=tmp_path / "local")
    with RayExecutor(2) as executor:
        on_ray = build_release_cache(release, CacheSettings(), executor, cache_dir=tmp_path / "ray")
    assert on_ray.built == local.built > 0 and not on_ray.failed and not local.failed
    files = sorted(p.name for p in (tmp_path / "local").glob("*.clip"))
    assert files == sorted(p.name for p in (tmp_path / "ray").glob("*.clip"))
    for name in files:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name

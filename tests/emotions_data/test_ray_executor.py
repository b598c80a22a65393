"""Ingest on Ray: a real local Ray instance (2 CPUs, no dashboard), the real tools, workers and a driver
killed mid-run, and the manifest compared with the local process pool's on the same inputs."""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import CORPUS
from releases import label_and_release
from test_cli import EMOTIONS, _shards, _wait_for, run_cli
from test_ingest_e2e import settings, url_table

from emotions_data.executor import ExecutorError, RayExecutor, make_executor
from emotions_data.ingest import ingest, read_manifest
from emotions_data.layout import DatasetLayout
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA
from emotions_data.storage import TMP_MARK, StageLog

pytestmark = pytest.mark.slow
CLI_ARGS = ["--workers", "2", "--max-duration", "6"]  # the same settings as `settings()`


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A local Ray instance for the module, started in this process; yields its address for other drivers."""
    saved_env = dict(os.environ)
    # No usage reports; Ray's default token authentication with a token of our own rather than one it would
    # write to ~/.ray (the CLI's driver below inherits it). Set before Ray is imported: it reads them then.
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_TOKEN=secrets.token_hex(32))
    import ray

    # Ray's Unix sockets live under its temp folder and their paths may not exceed 107 bytes.
    base = tmp_path_factory.getbasetemp()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir=base if len(str(base)) < 40 else None))
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


def test_cli_on_a_cluster_survives_a_killed_driver(ray_address, urls, reference, tmp_path):
    ds = tmp_path / "ds"
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    argv = [EMOTIONS, "ingest", str(urls), *CLI_ARGS, "--executor", "ray", "--out", str(ds)]
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _shards(ds / ".work" / "fetch") >= 2, 120)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver; the cluster and its workers stay
    proc.wait()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(comparable(ds), reference)
    assert_logs_hold_each_item_once(ds)


@pytest.mark.parametrize(
    ("out", "more", "expected"),
    [(None, ["--ray-address", "127.0.0.1:9"], "127.0.0.1:9"), ("s3://bucket/ds", [], "s3:// is not supported")],
)
def test_an_unreachable_cluster_or_an_object_store_is_a_one_line_error(tmp_path, corpus, out, more, expected):
    out = out or str(tmp_path / "ds")
    proc = run_cli("ingest", str(corpus / "landscape.mp4"), "--out", out, "--executor", "ray", *more)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1 and expected in lines[0], proc.stderr


def test_the_core_never_imports_ray():
    code = "import sys, emotions_data.cli, emotions_data.ingest, emotions_data.executor, emotions_data.stages; " \
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

"""A real multi-node Ray cluster on one machine: a head and a worker node started by separate `ray start` processes,
each with one CPU of its own. `emotions ingest` and `emotions cache` on it spread their jobs over both nodes, and a
worker node lost mid-ingest (its raylet and every worker process killed at once) loses nothing: the run finishes on
the head, with the local process pool's manifest."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest

from tests.support.commands import EMOTIONS, _shards, _wait_for
from tests.support.ray_cluster import assert_logs_hold_each_item_once, comparable
from tests.support.releases import label_and_release

pytestmark = [pytest.mark.slow, pytest.mark.server]
CLI_ARGS = ["--workers", "2", "--max-duration", "6"]  # the same settings as `settings()`


def nodes_used(stderr: str) -> int:
    found = re.search(r"^ray: \d+ jobs? on (\d+) nodes? \(", stderr, re.MULTILINE)
    assert found, stderr[-3000:]
    return int(found[1])


def test_the_baseline_cache_spreads_over_both_nodes_as_a_local_build(two_node_cluster, reference, reference_ds):
    pytest.importorskip("torch")
    cluster = two_node_cluster
    release = label_and_release(reference_ds, "0.0.1")
    local = subprocess.run([EMOTIONS, "cache", str(release), "--executor", "serial"], env=cluster.env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    cache = reference_ds / "cache" / "baseline"
    built_locally = {p.relative_to(cache): p.read_bytes() for p in cache.rglob("*.clip")}
    assert built_locally
    shutil.rmtree(cache)
    on_ray = subprocess.run([EMOTIONS, "cache", str(release), "--executor", "ray", "--ray-address", cluster.address],
                            env=cluster.env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert nodes_used(on_ray.stderr) == 2
    assert {p.relative_to(cache): p.read_bytes() for p in cache.rglob("*.clip")} == built_locally


# Last in the module: it takes the worker node down.
def test_ingest_spreads_over_both_nodes_and_a_lost_worker_node_loses_nothing(two_node_cluster, urls, reference,
                                                                             tmp_path):  # fmt: skip
    cluster, ds = two_node_cluster, tmp_path / "ds"
    # One item per job: once the first shard is committed, many jobs are left to keep the worker node busy, so the
    # kill lands mid-run however loaded the machine is (with a few large jobs the worker may have finished its last).
    config = tmp_path / "one-per-shard.toml"
    config.write_text("[ingest]\nshard_size = 1\n")
    argv = [EMOTIONS, "ingest", str(urls), *CLI_ARGS, "--config", str(config), "--executor", "ray",
            "--ray-address", cluster.address, "--out", str(ds)]  # fmt: skip
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(argv, env=cluster.env, stdout=subprocess.DEVNULL, stderr=err)

    def running(condition: bool) -> bool:
        assert proc.poll() is None, (
            f"the run ended (exit {proc.returncode}) before the kill point: " + (log.read_text()[-3000:])
        )
        return condition

    # Both nodes busy at once shows the jobs spread; a shard committed first shows the kill lands mid-run.
    _wait_for(lambda: running(bool(cluster.busy_jobs(cluster.worker) and cluster.busy_jobs(cluster.head))), 180)
    _wait_for(lambda: running(_shards(ds / ".work" / "fetch") >= 1 and bool(cluster.busy_jobs(cluster.worker))), 180)
    cluster.kill_worker_node()
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    pd.testing.assert_frame_equal(comparable(ds), reference)
    assert_logs_hold_each_item_once(ds)

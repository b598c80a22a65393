"""`emotions ingest --out s3://...` on a real two-node Ray cluster whose nodes share no disk: each node (its own
`ray start`) has its own working folder and its own S3 settings in its environment, as hosts or pods of a cloud
cluster do, and the dataset lives only in an S3-compatible server on loopback (moto's server mode). The run spreads
over both nodes and gets the local process pool's manifest; a worker node lost mid-run loses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from emotions_data.objectstore import ObjectStore, node_scratch
from tests.cli.test_ray_multinode_cli import CLI_ARGS, nodes_used
from tests.support.commands import EMOTIONS, _wait_for
from tests.support.corpus import url_table
from tests.support.objectstore import assert_every_object_whole, moto_s3, stored_manifest
from tests.support.ray_cluster import _free_port, two_nodes

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def moto():
    with moto_s3("data") as s3, pytest.MonkeyPatch.context() as patch:
        for name, value in s3.env.items():  # this process reads the store too
            patch.setenv(name, value)
        yield s3


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> dict[str, Path]:
    """Each machine's own working folder: the driver's, the head node's and the worker node's."""
    root = tmp_path_factory.mktemp("scratch")
    return {name: root / name for name in ("driver", "head", "worker")}


@pytest.fixture(scope="module")
def cluster(moto, scratch, tmp_path_factory):
    """Both nodes get the store's settings in the environment of their `ray start` (where a cloud cluster's hosts
    have theirs: the instance role, the pod's env); the driver does not hand its own to the workers."""
    with two_nodes(tmp_path_factory, env=moto.env, head_env={"EMOTIONS_SCRATCH_DIR": str(scratch["head"])},
                   worker_env={"EMOTIONS_SCRATCH_DIR": str(scratch["worker"])}) as cluster:  # fmt: skip
        yield cluster


def start_ingest(cluster, urls: Path, out: str, scratch: Path, log: Path) -> subprocess.Popen:
    argv = [EMOTIONS, "ingest", str(urls), *CLI_ARGS, "--executor", "ray", "--ray-address", cluster.address,
            "--out", out]  # fmt: skip
    with log.open("w") as err:
        return subprocess.Popen(argv, env={**cluster.env, "EMOTIONS_SCRATCH_DIR": str(scratch)},
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip


def assert_same_dataset(store: ObjectStore, reference: pd.DataFrame, tmp_path: Path) -> None:
    """The local pool's manifest, every media object whole with the bytes its row names, each item once in the
    stage logs."""
    frame = stored_manifest(store)
    pd.testing.assert_frame_equal(frame.drop(columns=["processed_at"]).sort_values("video_id").reset_index(drop=True),
                                  reference)  # fmt: skip
    assert_every_object_whole(store, frame, tmp_path)
    for stage in ("fetch", "normalise"):
        ids = [v for shard in store.list(f".work/{stage}")
               for v in pq.read_table(pa.BufferReader(store.read_bytes(shard)))["video_id"].to_pylist()]  # fmt: skip
        assert ids and len(ids) == len(set(ids)), stage


def test_ingest_to_object_storage_spreads_over_nodes_that_share_no_disk(cluster, moto, scratch, urls, reference,
                                                                        tmp_path):  # fmt: skip
    url = "s3://data/spread"
    log = tmp_path / "stderr.txt"
    proc = start_ingest(cluster, urls, url, scratch["driver"], log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert nodes_used(log.read_text()) == 2
    assert_same_dataset(ObjectStore(url), reference, tmp_path)
    # Each node worked in its own folder, from its own environment, and kept nothing there: the dataset is only in
    # the store. The driver empties its own folder at the end of the run.
    for machine in ("driver", "head", "worker"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("EMOTIONS_SCRATCH_DIR", str(scratch[machine]))
            folder = node_scratch(url)
        if machine == "driver":
            assert not folder.exists(), list(folder.rglob("*"))
            continue
        assert folder.is_dir(), machine
        kept = [p for p in folder.rglob("*") if p.is_file() and p.parts[len(folder.parts)] in ("media", "originals")]
        assert kept == [], (machine, kept)


@pytest.fixture()
def other_store(tmp_path):
    """A second S3-compatible server in a process of its own (moto keeps one set of buckets per process), with a
    bucket `data` too: the store a driver configured differently from the cluster's nodes would write to."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for(lambda: _answers(endpoint), 60)
        requests.put(f"{endpoint}/data", timeout=30).raise_for_status()
        yield endpoint
    finally:
        server.kill()
        server.wait()


def _answers(endpoint: str) -> bool:
    try:
        return requests.get(endpoint, timeout=5).status_code < 500
    except requests.ConnectionError:
        return False


def test_nodes_storing_elsewhere_than_the_driver_stop_the_run_with_one_line(cluster, moto, scratch, server,
                                                                            other_store, tmp_path):  # fmt: skip
    """The nodes keep their own S3 settings; a driver whose AWS_ENDPOINT_URL names another server would otherwise end
    with every item unprocessed and exit 0."""
    table = url_table(server, tmp_path / "urls.csv", ["landscape.mp4", "portrait.mp4"])
    argv = [EMOTIONS, "ingest", str(table), *CLI_ARGS, "--executor", "ray", "--ray-address", cluster.address,
            "--out", "s3://data/elsewhere"]  # fmt: skip
    env = {**cluster.env, "AWS_ENDPOINT_URL": other_store, "EMOTIONS_SCRATCH_DIR": str(scratch["driver"])}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: s3://data/elsewhere: 2 of 2 finished jobs committed results this driver "
                               "cannot see"), lines  # fmt: skip
    assert ObjectStore("s3://data/elsewhere").list(".work/resolve") != [], "the nodes' store got the jobs' shards"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", other_store)
        assert not ObjectStore("s3://data/elsewhere").exists("manifests/videos.parquet")


# Last in the module: it takes the worker node down.
def test_a_worker_node_lost_mid_run_loses_nothing_in_object_storage(cluster, moto, scratch, urls, reference,
                                                                    tmp_path):  # fmt: skip
    url = "s3://data/lost"
    store = ObjectStore(url)
    log = tmp_path / "stderr.txt"
    proc = start_ingest(cluster, urls, url, scratch["driver"], log)
    # Both nodes busy at once shows the jobs spread; a shard committed first shows the kill lands mid-run.
    _wait_for(lambda: cluster.busy_jobs(cluster.worker) and cluster.busy_jobs(cluster.head), 180)
    _wait_for(lambda: cluster.busy_jobs(cluster.worker) and len(store.list(".work/fetch")) >= 1, 180)
    cluster.kill_worker_node()
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert_same_dataset(store, reference, tmp_path)

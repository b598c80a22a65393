"""Ingest on Ray through the `emotions` command: a driver killed mid-run on a running cluster resumes to the local
process pool's manifest; an unreachable cluster, an unsupported location or a missing ray extra is a one-line error."""

from __future__ import annotations

import os
import signal
import subprocess

import pandas as pd
import pytest

from tests.support.commands import EMOTIONS, _shards, _wait_for, run_cli
from tests.support.ray_cluster import assert_logs_hold_each_item_once, comparable

pytestmark = [pytest.mark.slow, pytest.mark.server]
CLI_ARGS = ["--workers", "2", "--max-duration", "6"]  # the same settings as `settings()`


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
    [
        (None, ["--ray-address", "127.0.0.1:9"], "127.0.0.1:9"),
        ("gs://bucket/ds", [], "gs://bucket/ds: not supported as a dataset location"),
    ],
)
def test_an_unreachable_cluster_or_an_unsupported_location_is_a_one_line_error(tmp_path, corpus, out, more, expected):
    out = out or str(tmp_path / "ds")
    proc = run_cli("ingest", str(corpus / "landscape.mp4"), "--out", out, "--executor", "ray", *more)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1 and expected in lines[0], proc.stderr


def test_without_the_ray_extra_the_error_names_the_extra(corpus, tmp_path):
    blocker = tmp_path / "no-ray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")  # as if it were not installed
    proc = subprocess.run(
        [EMOTIONS, "ingest", str(corpus / "landscape.mp4"), "--out", str(tmp_path / "ds"), "--executor", "ray"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(blocker)},
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        "error: --executor ray needs the ray extra: pip install 'emotions[ray]'"
    ], proc.stderr
    assert not (tmp_path / "ds").exists()

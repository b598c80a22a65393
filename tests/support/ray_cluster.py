"""Fixtures for the Ray tests: a real local Ray instance (2 CPUs, no dashboard) per module, the corpus as URLs
on a loopback server, and the local process pool's manifest of the same inputs to compare with.

tests/conftest.py imports the fixtures for every module; they are module-scoped: each module that asks gets its own.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from emotions_data.executor import make_executor
from emotions_data.ingest import ingest, read_manifest
from emotions_data.layout import DatasetLayout
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA
from emotions_data.storage import TMP_MARK, StageLog
from tests.support.corpus import CORPUS, settings, url_table

# One token for the whole session: Ray reads RAY_AUTH_TOKEN once, when it is first imported, and keeps it, so a
# second module's instance started with a fresh token would refuse this process's own driver.
RAY_TOKEN = secrets.token_hex(32)


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A local Ray instance for the module, started in this process; yields its address for other drivers."""
    saved_env = dict(os.environ)
    # No usage reports; Ray's default token authentication with a token of our own rather than one it would
    # write to ~/.ray (the CLI's driver below inherits it). Set before Ray is imported: it reads them then.
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_TOKEN=RAY_TOKEN)
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

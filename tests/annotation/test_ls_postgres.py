"""The managed Label Studio server on a real PostgreSQL (Debian's package, a cluster of the module's own on a loopback
port): the whole annotation workflow on it, then backup, stop, wipe and restore through the command line.

One cluster and one server for the module (Label Studio's first start migrates the database); the tests run in
order on the same dataset."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from annotation.allocation_step import allocate
from annotation.annotators import set_active
from annotation.labels import final_labels
from annotation.labelstudio.client import LabelStudio
from annotation.labelstudio.config import DATABASE_URL_ENV, ServerConfig, ServerError
from annotation.labelstudio.database import DATABASE_FILE, is_first_start, sqlite_path, table_count
from annotation.labelstudio.process import PID_FILE, connect, start, status, stop
from annotation.pull import pull
from annotation.push import push
from annotation.server_record import load_server
from annotation.simulate import simulate
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from emotions_data.taxonomy import EMOTIONS6
from tests.annotation.test_workflow_ls import ROSTER
from tests.support.ls_fixtures import TEST_ADMIN
from tests.support.postgres import postgres_cluster

pytestmark = pytest.mark.server  # a PostgreSQL cluster of its own

CLIPS = ["landscape.mp4", "portrait.mp4", "source.mp4"]
DATABASE = "labelstudio"


@pytest.fixture(scope="module")
def pg_cluster():
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pg_server(pg_cluster, tmp_path_factory):
    url = pg_cluster.create_database(DATABASE)
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("pg-ls"), port=0, username=TEST_ADMIN, database_url=url,
                          document_root=tmp_path_factory.mktemp("pg-docroot"))  # fmt: skip
    handle = start(config, timeout_s=600)
    try:
        yield handle
    finally:
        stop(handle.config)


@pytest.fixture(scope="module")
def pg_dataset(pg_server, corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pg-in")
    for name in CLIPS:
        shutil.copy(corpus / name, folder / name)
    root = pg_server.config.document_root / "dataset"
    ingest([folder], root, load_settings(None), executor=make_executor("serial", 1))
    roster = tmp_path_factory.mktemp("pg-roster") / "annotators.csv"
    roster.write_text(ROSTER)
    client = LabelStudio(pg_server.config)
    allocate(DatasetLayout(root), roster, n_groups=3, seed=0, client=client)
    return DatasetLayout(root), client


def emotions(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = str(Path(sys.executable).with_name("emotions"))
    return subprocess.run([command, *args], capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def test_the_whole_workflow_runs_on_postgresql(pg_cluster, pg_server, pg_dataset):
    layout, client = pg_dataset
    db = pg_server.config.database
    assert table_count(db) > 50, "Label Studio's tables are in PostgreSQL"
    assert not sqlite_path(pg_server.config.data_dir).exists(), "and no SQLite database was made on the side"
    recorded = json.loads((pg_server.config.data_dir / DATABASE_FILE).read_text())
    assert recorded == {
        "kind": "postgresql",
        "database": f"postgresql://emotions@127.0.0.1:{pg_cluster.port}/labelstudio",
    }
    for path in (pg_server.config.data_dir / "server.log", pg_server.config.data_dir / PID_FILE):
        assert pg_cluster.password not in path.read_text(), f"the database password leaked into {path.name}"
    assert pg_cluster.password not in Path(f"/proc/{pg_server.pid}/cmdline").read_text()

    push(layout, "label", client, EMOTIONS6, votes_per_item=2)
    assert simulate(layout, "label", client, EMOTIONS6, votes_per_item=2, seed=1).posted == 6
    assert pull(layout, client, EMOTIONS6).n_new == 6
    assert load_server(layout)["server_id"] == client.server_identity()
    push(layout, "crosscheck", client, EMOTIONS6, votes_per_item=2)
    simulate(layout, "crosscheck", client, EMOTIONS6, votes_per_item=2, seed=1)
    pull(layout, client, EMOTIONS6)
    votes = pd.read_parquet(layout.votes)
    result = final_labels(votes, EMOTIONS6)
    result.needs_expert.to_pandas().to_parquet(layout.needs_expert)
    push(layout, "expert", client, EMOTIONS6, min_agreement=1.01)  # every item to the expert
    simulate(layout, "expert", client, EMOTIONS6, seed=1)
    assert pull(layout, client, EMOTIONS6).n_votes == 6 + 6 + 3
    labels = emotions("labels", str(layout.root), env={})
    assert labels.returncode == 0, labels.stderr
    final = final_labels(pd.read_parquet(layout.votes), EMOTIONS6).labels.to_pandas()
    assert len(final) == 3 and set(final["decided_by"]) == {"expert"}


def annotations_on(client: LabelStudio) -> set[tuple]:
    """Every annotation on the server: (id, task, annotator, chosen label)."""
    found = set()
    for project in client.projects():
        for task in client.export_snapshot(project["id"]):
            for ann in task.get("annotations", []):
                chosen = tuple(c for r in ann.get("result", []) for c in r.get("value", {}).get("choices", []))
                found.add((ann["id"], task["id"], ann.get("completed_by"), chosen))
    return found


def test_backup_stop_wipe_restore_brings_every_vote_back(pg_cluster, pg_server, pg_dataset):
    layout, client = pg_dataset
    config = pg_server.config
    env = {DATABASE_URL_ENV: config.database_url}  # the database and its password through the environment only
    data_dir, docroot = str(config.data_dir), str(config.document_root)
    identity = client.server_identity()
    pulled = pd.read_parquet(layout.votes)
    # votes cast after the last pull: only the server has them when it is lost
    set_active(layout, "A1", False)
    push(layout, "relabel", client, EMOTIONS6)
    unpulled = simulate(layout, "relabel", client, EMOTIONS6, seed=2).posted
    assert unpulled > 0
    before = annotations_on(client)

    made = emotions("annotate", "backup", str(layout.root), "--data-dir", data_dir, "--json", env=env)
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)
    assert backup["kind"] == "postgresql" and pg_cluster.password not in made.stdout + made.stderr
    folder = Path(backup["path"])
    assert folder.parent == layout.root / "backups" / "label-studio" and (folder / "database.pgdump").stat().st_size
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert pg_cluster.password not in (folder / "backup.json").read_text()

    refused = emotions("annotate", "restore", str(layout.root), "--data-dir", data_dir, env=env)
    lines = [ln for ln in refused.stderr.splitlines() if ln.startswith("error")]
    assert refused.returncode == 1 and len(lines) == 1 and "stop it first" in lines[0], refused.stderr

    assert emotions("annotate", "server", "stop", "--data-dir", data_dir, env=env).returncode == 0
    refused = emotions("annotate", "restore", str(layout.root), "--data-dir", data_dir, env=env)
    assert refused.returncode == 1 and "holds a database already: pass --replace" in refused.stderr

    # the server is lost: its database and its whole data folder (credentials, secret key) with it
    pg_cluster.drop_database(DATABASE)
    pg_cluster.create_database(DATABASE)
    shutil.rmtree(config.data_dir)
    with pytest.raises(ServerError):
        pull(layout, client, EMOTIONS6)
    restored = emotions("annotate", "restore", str(layout.root), "--data-dir", data_dir, env=env)
    assert restored.returncode == 0, restored.stderr
    started = emotions("annotate", "server", "start", "--data-dir", data_dir, "--port", "0", "--document-root",
                       docroot, env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr

    back = LabelStudio(connect(ServerConfig(data_dir=config.data_dir, database_url=config.database_url)))
    assert back.server_identity() == identity, "the same server (organization) came back"
    assert annotations_on(back) == before, "every annotation, pulled or not, came back"
    report = pull(layout, back, EMOTIONS6)
    assert report.n_new == unpulled and report.problems == 0
    again = pd.read_parquet(layout.votes)
    key = ["server_id", "ls_annotation_id", "annotator_id", "label", "stage"]
    earlier = again[again["ls_annotation_id"].isin(pulled["ls_annotation_id"])]
    assert (
        earlier[key].sort_values(key).reset_index(drop=True).equals(pulled[key].sort_values(key).reset_index(drop=True))
    )
    assert len(again) == len(pulled) + unpulled
    with pytest.raises(ServerError, match="set EMOTIONS_LS_DATABASE_URL"):  # a start without the database is refused
        is_first_start(ServerConfig(data_dir=config.data_dir))  # before it would create an empty SQLite one
    assert status(ServerConfig(data_dir=config.data_dir)).healthy

    # a restore over a database that holds data: only with --replace, in one transaction, the backup's state after
    project = back.projects()[0]["id"]
    back.call("DELETE", f"/api/projects/{project}")
    assert emotions("annotate", "server", "stop", "--data-dir", data_dir, env=env).returncode == 0
    replaced = emotions("annotate", "restore", str(layout.root), "--data-dir", data_dir, "--replace", env=env)
    assert replaced.returncode == 0 and "replaced: postgresql://emotions@" in replaced.stdout, replaced.stderr
    started = emotions("annotate", "server", "start", "--data-dir", data_dir, "--port", "0", "--document-root",
                       docroot, env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr
    after = LabelStudio(connect(ServerConfig(data_dir=config.data_dir, database_url=config.database_url)))
    assert annotations_on(after) == before and after.server_identity() == identity


def test_without_data_dir_the_backup_holds_all_a_restore_needs_and_the_hint_restarts_the_server(
    pg_cluster, pg_server, pg_dataset, tmp_path
):
    layout, _ = pg_dataset
    config = pg_server.config
    env = {DATABASE_URL_ENV: config.database_url}
    # a data folder that is not the server's would give a dump without the secret key and credentials: refused
    refused = emotions("annotate", "backup", str(layout.root), "--data-dir", str(tmp_path / "elsewhere"), env=env)
    assert refused.returncode == 1 and "is not the data folder of the server on" in refused.stderr, refused.stderr

    made = emotions("annotate", "backup", str(layout.root), "--json", env=env)  # the dataset's recorded server
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)
    folder = Path(backup["path"])
    assert backup["data_dir"] == str(config.data_dir) and backup["admin_token"] is True
    assert backup["census"]["task_completion"] > 0 and backup["census"]["organization"] == 1
    assert (folder / "label-studio.env").stat().st_size and (folder / "credentials.json").stat().st_size
    identity = LabelStudio(connect(ServerConfig(data_dir=config.data_dir, database_url=config.database_url)))
    identity = identity.server_identity()
    stop(ServerConfig(data_dir=config.data_dir))

    # the hint names the data folder, the recorded port and the document root
    pulled = emotions("annotate", "pull", str(layout.root), env=env)
    assert pulled.returncode == 1, pulled.stderr
    hint = pulled.stderr.split("start it with '")[1].split("'")[0]
    port = urlsplit(load_server(layout)["url"]).port
    assert f"--port {port}" in hint and f"--document-root {config.document_root}" in hint, hint

    pg_cluster.drop_database(DATABASE)  # the server is lost, with its data folder
    pg_cluster.create_database(DATABASE)
    shutil.rmtree(config.data_dir)
    restored = emotions("annotate", "restore", str(layout.root), env=env)
    assert restored.returncode == 0, restored.stderr
    assert f"restored {folder.name}" in restored.stdout and "holds the admin's API token" in restored.stdout
    assert f"{backup['census']['task_completion']} annotation(s), as in the backup" in restored.stdout
    started = emotions(*shlex.split(hint)[1:], env=env)
    assert started.returncode == 0, started.stderr
    back = LabelStudio(connect(ServerConfig(data_dir=config.data_dir, database_url=config.database_url)))
    assert back.server_identity() == identity and back.config.port == port

"""`emotions annotate backup | restore` on the managed server's SQLite database: a real Label Studio (a private copy of
the session's migrated template), backed up while it runs, wiped and restored."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from annotation.labelstudio.backup import backup, list_backups
from annotation.labelstudio.client import LabelStudio, api
from annotation.labelstudio.database import sqlite_path
from annotation.labelstudio.interface import annotation_result
from annotation.labelstudio.process import start, stop
from annotation.server_record import check_server
from emotions_data.layout import DatasetLayout

CONFIG = (
    '<View><Video name="video" value="$video"/>'
    '<Choices name="emotion" toName="video"><Choice value="Fear"/><Choice value="Neutral"/></Choices></View>'
)


def annotate(*args: str) -> subprocess.CompletedProcess:
    command = str(Path(sys.executable).with_name("emotions"))
    return subprocess.run([command, "annotate", *args], capture_output=True, text=True, timeout=300, env=os.environ)


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("restoring")]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def test_backup_while_running_then_wipe_and_restore_brings_every_vote_back(ls_data_dir, tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    data_dir = str(ls_data_dir.data_dir)
    server = start(ls_data_dir)
    project = api(server.config, "POST", "/api/projects", {"title": "kept", "label_config": CONFIG})
    api(server.config, "POST", f"/api/projects/{project['id']}/import", [{"video": f"/v/{i}.mp4"} for i in range(5)])
    tasks = api(server.config, "GET", f"/api/tasks?project={project['id']}")["tasks"]
    for task, label in zip(tasks, ["Fear", "Neutral", "Fear", "Fear", "Neutral"], strict=True):
        api(server.config, "POST", f"/api/tasks/{task['id']}/annotations/", {"result": annotation_result(label)})

    def votes(config) -> list[tuple]:
        found = api(config, "GET", f"/api/tasks?project={project['id']}&fields=all")["tasks"]
        return sorted(
            (t["id"], a["id"], a["result"][0]["value"]["choices"][0]) for t in found for a in t["annotations"]
        )

    before = votes(server.config)
    assert len(before) == 5

    made = annotate("backup", str(dataset), "--data-dir", data_dir, "--json")  # while the server runs
    assert made.returncode == 0, made.stderr
    folder = Path(json.loads(made.stdout)["path"])
    assert [b.path for b in list_backups(dataset)] == [folder]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "database.sqlite3").stat().st_mode) == 0o600
    assert server.config.token not in (folder / "backup.json").read_text()
    assert not list(folder.parent.glob(".*")), "no partial backup left behind"

    assert "stop it first" in error_line(annotate("restore", str(dataset), "--data-dir", data_dir))
    stop(ls_data_dir)
    assert "pass --replace" in error_line(annotate("restore", str(dataset), "--data-dir", data_dir))

    shutil.rmtree(ls_data_dir.data_dir)  # the server's whole data folder is lost
    restored = annotate("restore", str(dataset), "--data-dir", data_dir)
    assert restored.returncode == 0 and f"restored {folder.name}" in restored.stdout, restored.stderr
    again = start(ls_data_dir)
    assert votes(again.config) == before

    # a second restore over the live data replaces it only when told, and keeps the replaced database beside it
    api(again.config, "DELETE", f"/api/projects/{project['id']}")
    stop(ls_data_dir)
    replaced = annotate("restore", str(dataset), "--data-dir", data_dir, "--replace")
    assert replaced.returncode == 0 and "replaced:" in replaced.stdout, replaced.stderr
    assert len(list(sqlite_path(ls_data_dir.data_dir).parent.glob("label_studio.sqlite3.replaced-*"))) == 1
    assert votes(start(ls_data_dir).config) == before
    stop(ls_data_dir)


def test_a_damaged_or_missing_backup_is_refused_and_changes_nothing(ls_data_dir, tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    data_dir = str(ls_data_dir.data_dir)
    assert "no Label Studio backup" in error_line(annotate("restore", str(dataset), "--data-dir", data_dir))
    assert annotate("backup", str(dataset), "--data-dir", data_dir).returncode == 0  # a stopped server backs up too
    backup = list_backups(dataset)[-1]
    with open(backup.dump, "r+b") as handle:
        handle.seek(200)
        handle.write(b"\xff" * 16)
    database = sqlite_path(ls_data_dir.data_dir)
    kept = database.read_bytes()
    line = error_line(annotate("restore", str(dataset), "--data-dir", data_dir, "--replace"))
    assert "damaged" in line and str(backup.dump) in line
    assert database.read_bytes() == kept
    assert "no such dataset folder" in error_line(annotate("backup", str(tmp_path / "nowhere"), "--data-dir", data_dir))
    empty = annotate("backup", str(dataset), "--data-dir", str(tmp_path / "no-server"))
    assert "nothing to back up" in error_line(empty) and len(list_backups(dataset)) == 1


def test_without_data_dir_the_recorded_server_is_backed_up_and_the_newest_by_sequence_restored(ls_data_dir, tmp_path):
    dataset = DatasetLayout(tmp_path / "dataset")
    dataset.manifests.mkdir(parents=True)
    server = start(ls_data_dir)
    check_server(dataset, LabelStudio(server.config))  # the dataset records its server, as every command does
    project = api(server.config, "POST", "/api/projects", {"title": "seq", "label_config": CONFIG})
    api(server.config, "POST", f"/api/projects/{project['id']}/import", [{"video": f"/v/{i}.mp4"} for i in range(2)])
    tasks = api(server.config, "GET", f"/api/tasks?project={project['id']}")["tasks"]
    api(server.config, "POST", f"/api/tasks/{tasks[0]['id']}/annotations/", {"result": annotation_result("Fear")})

    first = annotate("backup", str(dataset.root), "--json")  # no --data-dir: the dataset's recorded server
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["data_dir"] == str(ls_data_dir.data_dir) and made["sequence"] == 1
    assert made["census"]["task_completion"] == 1 and made["admin_token"] is True
    # the clock steps back an hour before the next backup: it is still the newest, by its sequence
    api(server.config, "POST", f"/api/tasks/{tasks[1]['id']}/annotations/", {"result": annotation_result("Neutral")})
    earlier = datetime.fromisoformat(made["created_at"]).replace(tzinfo=UTC).timestamp() - 3600
    second = backup(ls_data_dir, dataset.root, clock=lambda: datetime.fromtimestamp(earlier, UTC))
    assert second.sequence == 2 and second.created_at < made["created_at"]
    assert [b.sequence for b in list_backups(dataset.root)] == [1, 2]
    stop(ls_data_dir)

    # a killed backup's partial copy holds the database: the next restore removes it
    partial = dataset.root / "backups" / "label-studio" / ".000003-20991231T000000.000000Z.partial"
    partial.mkdir(mode=0o700)
    (partial / "database.sqlite3").write_bytes(b"secret")
    restored = annotate("restore", str(dataset.root), "--replace")
    assert restored.returncode == 0, restored.stderr
    assert f"restored {second.path.name}" in restored.stdout and "2 annotation(s), as in the backup" in restored.stdout
    assert "holds the admin's API token" in restored.stdout and str(ls_data_dir.data_dir) in restored.stderr
    assert not partial.exists() and f"removed {partial}" in restored.stderr
    again = annotate("restore", str(dataset.root), "--replace")  # at once: the kept copy gets a name of its own
    assert again.returncode == 0, again.stderr
    kept = list(sqlite_path(ls_data_dir.data_dir).parent.glob("label_studio.sqlite3.replaced-*"))
    assert len(kept) == 2

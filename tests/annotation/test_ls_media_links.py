"""A moved or copied dataset keeps playing in the annotator's browser with no push in between: the toolkit's server
serves a folder of dataset links (`annotation.labelstudio.media_links`) that a server start and every workflow
command re-point. Everything runs through the CLI against a real server, and the clip is fetched as an annotator
would, with their own session."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from annotation.labelstudio.client import LabelStudio, http
from annotation.labelstudio.config import ServerConfig
from annotation.labelstudio.media_links import link_name, point_link
from annotation.labelstudio.process import connect
from annotation.projects import load_projects
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from tests.support.commands import EMOTIONS
from tests.support.ls_fixtures import login_session

CLIPS = ["landscape.mp4", "portrait.mp4"]
ROSTER = (
    "id,name,email,work_experience,eq_score,education,culture,leadership,role\n"
    "M1,Person M1,pM1@example.org,2,95,BSc,CN,0,annotator\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTIONS_")}
    return subprocess.run([EMOTIONS, "annotate", *args], capture_output=True, text=True, timeout=600, env=env)


def _fetch(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, bytes]:
    try:
        with opener.open(url) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _tasks(config: ServerConfig, layout: DatasetLayout, annotator: str) -> list[dict]:
    client = LabelStudio(config)
    project = next(p for k, p in load_projects(layout).items() if p.get("annotator") == annotator)
    return client.tasks(project["id"])


def test_a_moved_then_copied_dataset_plays_with_no_push_and_a_missing_clip_is_named(ls_data_dir, corpus, tmp_path):
    data_dir = str(ls_data_dir.data_dir)
    old, new = tmp_path / "old-place", tmp_path / "new-place"
    new.mkdir()
    clips = tmp_path / "in"
    clips.mkdir()
    for name in CLIPS:
        shutil.copy(corpus / name, clips / name)
    ingest([clips], old / "campaign", load_settings(None), executor=make_executor("serial", 1))
    roster = tmp_path / "annotators.csv"
    roster.write_text(ROSTER)
    ds = str(old / "campaign")

    started = _cli("server", "start", "--data-dir", data_dir, "--port", "0", "--document-root", str(old))
    assert started.returncode == 0, started.stderr
    try:
        for step in (("allocate", ds, "--roster", str(roster), "--groups", "1", "--data-dir", data_dir),
                     ("credentials", ds), ("push", ds, "--stage", "label", "--votes-per-item", "1")):  # fmt: skip
            done = _cli(*step)
            assert done.returncode == 0, done.stderr
    finally:
        assert _cli("server", "stop", "--data-dir", data_dir).returncode == 0
    with (ls_data_dir.data_dir / "annotator-credentials.csv").open() as handle:
        person = next(csv.DictReader(handle))
    layout_before = DatasetLayout(old / "campaign")
    name = link_name(layout_before, create=False)
    assert name and name.startswith("campaign-")

    # moved to another folder under another name while the server was down; started again from the new place
    moved = new / "campaign-2026"
    shutil.move(old / "campaign", moved)
    layout = DatasetLayout(moved)
    started = _cli("server", "start", "--data-dir", data_dir, "--port", "0", "--document-root", str(new))
    assert started.returncode == 0, started.stderr
    assert f"the datasets under {new}" in started.stderr and "(1 linked)" in started.stderr, started.stderr
    try:
        config = connect(ls_data_dir)
        assert os.readlink(config.media_links / name / "media") == str(layout.media.resolve()), (
            "the start re-pointed the link"
        )
        tasks = _tasks(config, layout, person["annotator_id"])
        prefix = f"/data/local-files/?d={name}/media/"
        assert len(tasks) == len(CLIPS) and all(t["data"]["video"].startswith(prefix) for t in tasks)
        opener, _ = login_session(config.url, person["login"], person["password"])
        for task in tasks:
            clip = layout.media / urllib.parse.unquote(task["data"]["video"].split("/media/", 1)[1])
            assert _fetch(opener, config.url + task["data"]["video"]) == (200, clip.read_bytes())
        assert http(config.url + tasks[0]["data"]["video"])[0] == 401, "only a logged-in account gets the clip"

        # a clip whose file went missing: the push names the file, and the server answers 404 for it
        gone = layout.media / urllib.parse.unquote(tasks[0]["data"]["video"].split("/media/", 1)[1])
        gone.unlink()
        pushed = _cli("push", str(moved), "--stage", "label", "--votes-per-item", "1")
        assert pushed.returncode == 1 and f"missing media file, not pushed: {gone}" in pushed.stdout, pushed.stdout
        assert "now load" not in pushed.stdout, "nothing was re-pointed: the task URLs never changed"
        assert _fetch(opener, config.url + tasks[0]["data"]["video"])[0] == 404

        # copied, and the original removed: the copy's first command (a pull) re-points the link at the copy
        copy = new / "campaign-copy"
        shutil.copytree(moved, copy)
        shutil.rmtree(moved)
        pulled = _cli("pull", str(copy))
        assert pulled.returncode == 0, pulled.stderr
        assert os.readlink(config.media_links / name / "media") == str((copy / "media").resolve())
        kept = tasks[1]["data"]["video"]
        assert _fetch(opener, config.url + kept) == (200, (copy / "media" / kept.split("/media/", 1)[1]).read_bytes())
    finally:
        assert _cli("server", "stop", "--data-dir", data_dir).returncode == 0


def test_a_link_is_made_only_for_a_dataset_under_the_document_root(tmp_path):
    root, links = tmp_path / "served", tmp_path / "links"
    inside, outside = DatasetLayout(root / "a"), DatasetLayout(tmp_path / "elsewhere" / "b")
    for layout in (inside, outside):
        layout.manifests.mkdir(parents=True)
    assert point_link(links, outside, root) is None and not links.exists()
    assert not (outside.manifests / "ls_media.json").exists(), "nothing is recorded for a dataset not served"
    name = point_link(links, inside, root)
    assert os.readlink(links / name / "media") == str(inside.media.resolve()), "only media/ is linked"
    assert point_link(links, inside, root) == name == link_name(inside), "the name stays the dataset's"
    assert sorted(p.name for p in links.iterdir()) == [name]
    assert sorted(p.name for p in (links / name).iterdir()) == ["media"], "no temporary link is left behind"


def test_a_damaged_link_record_is_named(tmp_path):
    layout = DatasetLayout(tmp_path / "ds")
    layout.manifests.mkdir(parents=True)
    (layout.manifests / "ls_media.json").write_text('{"link": "../../etc"}')
    with pytest.raises(ValueError, match=r"ls_media.json: 'link' must be a folder name"):
        point_link(tmp_path / "links", layout, tmp_path)


def test_a_server_elsewhere_gets_the_storage_at_its_own_path_of_the_files(tmp_path):
    from annotation.media_urls import local_files as _local_files

    layout = DatasetLayout(tmp_path / "files" / "lab" / "ds")
    layout.manifests.mkdir(parents=True)
    same = ServerConfig(base_url="https://ls.lab.example", document_root=tmp_path / "files")
    assert _local_files(layout, same) == ("lab/ds", str(tmp_path / "files" / "lab" / "ds" / "media"))
    docker = ServerConfig(base_url="https://ls.lab.example", document_root=tmp_path / "files",
                          server_document_root="/label-studio/files/")  # fmt: skip
    assert _local_files(layout, docker) == ("lab/ds", "/label-studio/files/lab/ds/media")
    with pytest.raises(ValueError, match=r"is not under the server's document root"):
        _local_files(DatasetLayout(tmp_path / "elsewhere"), docker)
    with pytest.raises(ValueError, match=r"no media source"):
        _local_files(layout, ServerConfig(base_url="https://ls.lab.example"))


def test_a_server_folder_inside_the_dataset_links_back_to_no_folder_holding_it(tmp_path):
    """The demo keeps its server's data folder inside the dataset: a tool that follows links (`shutil.copytree`,
    `zip -r`) must not walk into the dataset again through it."""
    layout = DatasetLayout(tmp_path / "ds")
    layout.manifests.mkdir(parents=True)
    (layout.media / "a.mp4").parent.mkdir()
    (layout.media / "a.mp4").write_bytes(b"clip")
    links = layout.root / ".label-studio" / "local-files"
    name = point_link(links, layout, layout.root)
    copy = shutil.copytree(layout.root, tmp_path / "copy")  # follows links: would never end with a link to ds/
    assert (copy / ".label-studio" / "local-files" / name / "media" / "a.mp4").read_bytes() == b"clip"

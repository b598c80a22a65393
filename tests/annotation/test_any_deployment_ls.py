"""The workflow against a Label Studio the toolkit did not start: a plain `label-studio start` on another loopback
port, its admin made by `LABEL_STUDIO_USERNAME`/`LABEL_STUDIO_PASSWORD` at its first start (as a Docker deployment
does), reached by URL with a personal access token taken from its API as its admin would in the browser. Every
command runs through the CLI with its secrets in the environment only; then the failures a lab meets: a wrong
token, a dead URL, a server of another dataset, a missing media file."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotation.labelstudio.client import LabelStudio, http
from annotation.labelstudio.config import ServerConfig
from annotation.labelstudio.process import find_executable, free_port
from annotation.server_record import load_server
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from tests.support.ls_fixtures import login_session

pytestmark = pytest.mark.server  # a Label Studio of its own, reached only by URL

CLIPS = ["landscape.mp4", "portrait.mp4", "source.mp4", "rotated.mp4"]
ROSTER = "id,name,email,work_experience,eq_score,education,culture,leadership,role\n" + "\n".join(
    f"{i},Person {i},p{i}@example.org,{y},{s},{e},{c},{lead},{role}"
    for i, y, s, e, c, lead, role in [
        ("B1", 2, 95, "BSc", "CN", 0, "annotator"), ("B2", 9, 110, "MSc", "US", 1, "annotator"),
        ("B3", 4, 101, "PhD", "CN", 0, "annotator"), ("B4", 6, 99, "BSc", "US", 1, "annotator"),
        ("EX", 20, 125, "PhD", "CN", 1, "expert"),
    ]
)  # fmt: skip
ADMIN, ADMIN_PASSWORD = "boss@lab.invalid", "a-long-admin-password-1"


def _personal_access_token(url: str) -> str:
    """What the admin does on the Account & Settings page: create a personal access token (a JWT refresh token)."""
    opener, jar = login_session(url, ADMIN, ADMIN_PASSWORD)
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    request = urllib.request.Request(f"{url}/api/token/", data=b"{}", method="POST", headers={
        "Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": f"{url}/"})  # fmt: skip
    return json.loads(opener.open(request).read())["token"]


@dataclass
class Plain:
    url: str
    token: str
    document_root: Path
    home: Path


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Iterator[Plain]:
    """`label-studio start` by hand on a free loopback port, local files served from a document root that it sees
    at another path than the toolkit does, as a Docker container sees a bind mount (`-v HOST:/label-studio/files`):
    the server's `LOCAL_FILES_DOCUMENT_ROOT` is `server-view`, a link to the toolkit's `files`, and the toolkit is
    told so by `server_document_root` (see `_cli`). A storage registered at the toolkit's own path would be refused
    by the server (not under its document root), so every push here goes through the server's path."""
    base = tmp_path_factory.mktemp("plain-ls")
    root = base / "files"
    root.mkdir()
    (base / "server-view").symlink_to(root, target_is_directory=True)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(base), "LABEL_STUDIO_BASE_DATA_DIR": str(base / "data"),
        "LABEL_STUDIO_USERNAME": ADMIN, "LABEL_STUDIO_PASSWORD": ADMIN_PASSWORD,
        "LOCAL_FILES_SERVING_ENABLED": "true", "LOCAL_FILES_DOCUMENT_ROOT": str(base / "server-view"),
        "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
    }  # fmt: skip
    log = open(base / "server.log", "wb")
    argv = [str(find_executable()), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while http(f"{url}/health", timeout=2.0)[0] != 200:
            assert proc.poll() is None, (base / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "label-studio did not come up"
            time.sleep(0.5)
        yield Plain(url, _personal_access_token(url), root, base / "home")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _cli(plain: Plain, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    """`emotions annotate ...` with the server's secrets in the environment only (`env` overrides; None unsets)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("EMOTIONS_")}
    full |= {"XDG_DATA_HOME": str(plain.home), "EMOTIONS_LS_URL": plain.url, "EMOTIONS_LS_TOKEN": plain.token,
             "EMOTIONS_LS_USERNAME": ADMIN, "EMOTIONS_LS_PASSWORD": ADMIN_PASSWORD}  # fmt: skip
    config = plain.home / "emotions.toml"
    config.parent.mkdir(exist_ok=True)
    server_view = plain.document_root.parent / "server-view"
    config.write_text(
        f'[label_studio]\ndocument_root = "{plain.document_root}"\nserver_document_root = "{server_view}"\n'
    )
    full["EMOTIONS_CONFIG"] = str(config)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    emotions = str(Path(sys.executable).with_name("emotions"))
    return subprocess.run([emotions, "annotate", *args], capture_output=True, text=True, timeout=300, env=full)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def dataset(plain, corpus, tmp_path_factory) -> DatasetLayout:
    root = plain.document_root / "lab-ds"
    folder = tmp_path_factory.mktemp("plain-in")
    for name in CLIPS:
        shutil.copy(corpus / name, folder / name)
    ingest([folder], root, load_settings(None), executor=make_executor("serial", 1))
    return DatasetLayout(root)


def test_the_whole_workflow_by_url_with_a_personal_access_token(plain, dataset, tmp_path):
    ds = str(dataset.root)
    assert plain.token.startswith("eyJ") and ServerConfig(token=plain.token).token_kind == "personal"
    roster = tmp_path / "annotators.csv"
    roster.write_text(ROSTER)
    allocated = _cli(plain, "allocate", ds, "--roster", str(roster), "--groups", "2")
    assert allocated.returncode == 0, allocated.stderr
    assert load_server(dataset)["url"] == plain.url and "data_dir" not in load_server(dataset)
    # from here on the dataset remembers its server: no URL anywhere, the token alone from the environment
    issued = _cli(plain, "credentials", ds, EMOTIONS_LS_URL=None)
    assert issued.returncode == 0, issued.stderr
    # kept per server (the identity the dataset records), readable by the lead only
    server_id = load_server(dataset)["server_id"]
    path = plain.home / "emotions" / "annotator-credentials" / server_id / "annotator-credentials.csv"
    assert str(path) in issued.stdout.replace("\n", "") and stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = list(csv.DictReader(path.open()))
    assert {r["annotator_id"] for r in rows} == {"B1", "B2", "B3", "B4", "EX"}
    opener, _ = login_session(plain.url, rows[0]["login"], rows[0]["password"])
    assert json.loads(opener.open(f"{plain.url}/api/current-user/whoami").read())["email"] == rows[0]["login"]
    assert not any(r["password"] in issued.stdout + issued.stderr for r in rows), "passwords only go to the file"
    pushed = _cli(plain, "push", ds, "--stage", "label", "--votes-per-item", "2", EMOTIONS_LS_URL=None)
    assert pushed.returncode == 0 and "new task(s)" in pushed.stdout, pushed.stderr
    simulated = _cli(plain, "simulate", ds, "--stage", "label", EMOTIONS_LS_URL=None)
    assert simulated.returncode == 0 and "posted 8 annotation(s)" in simulated.stdout, simulated.stderr
    pulled = _cli(plain, "pull", ds, EMOTIONS_LS_URL=None)
    assert pulled.returncode == 0 and "votes: 8 (8 new" in pulled.stdout, pulled.stderr
    status = _cli(plain, "status", ds, "--json")
    assert status.returncode == 0, status.stderr
    progress = json.loads(status.stdout)
    assert progress["stages"] == [{"stage": "label", "assigned": 8, "done": 8, "remaining": 0, "complete": True}]
    assert progress["next_command"] == f"emotions annotate push {ds} --stage crosscheck"
    assert all(r["median_lead_s"] is not None for r in progress["annotators"])
    assert progress["server"] == {"server_id": load_server(dataset)["server_id"], "url": plain.url}
    # the clip plays for an annotator: the task's media URL answers through the server, with their session
    client = LabelStudio(ServerConfig(base_url=plain.url, token=plain.token))
    project = next(p for p in client.projects() if "label" in p["title"])
    video = client.tasks(project["id"])[0]["data"]["video"]
    assert opener.open(plain.url + video).status == 200
    # registered at the server's own path of the files (its bind mount), never the toolkit's
    storages = client.call("GET", f"/api/storages/localfiles?project={project['id']}")
    assert [s["path"] for s in storages] == [str(plain.document_root.parent / "server-view" / "lab-ds" / "media")]


def _own_tokens(url: str, email: str, password: str) -> tuple[str, str]:
    """(a personal access token, the legacy token) an annotator makes for themselves on the Account & Settings page."""
    opener, jar = login_session(url, email, password)
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    request = urllib.request.Request(f"{url}/api/token/", data=b"{}", method="POST", headers={
        "Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": f"{url}/"})  # fmt: skip
    personal = json.loads(opener.open(request).read())["token"]
    return personal, json.loads(opener.open(f"{url}/api/current-user/token").read())["token"]


def test_a_password_reset_revokes_the_annotators_own_personal_access_token_and_legacy_token(plain, dataset):
    ds = str(dataset.root)
    path = plain.home / "emotions" / "annotator-credentials" / load_server(dataset)["server_id"]
    rows = {r["annotator_id"]: r for r in csv.DictReader((path / "annotator-credentials.csv").open())}
    b2 = rows["B2"]
    # legacy tokens are off in a fresh organization: on for this test, so that B2's legacy token would work
    admin = LabelStudio(ServerConfig(base_url=plain.url, token=plain.token))
    admin.call("POST", "/api/jwt/settings", {"api_tokens_enabled": True, "legacy_api_tokens_enabled": True})
    try:
        personal, legacy = _own_tokens(plain.url, b2["login"], b2["password"])
        assert http(f"{plain.url}/api/token/refresh/", method="POST", payload={"refresh": personal})[0] == 200
        assert http(f"{plain.url}/api/current-user/whoami", token=legacy)[0] == 200
        reset = _cli(plain, "credentials", ds, "--annotator", "B2", EMOTIONS_LS_URL=None)
        assert reset.returncode == 0, reset.stderr
        assert http(f"{plain.url}/api/token/refresh/", method="POST", payload={"refresh": personal})[0] == 401
        assert http(f"{plain.url}/api/current-user/whoami", token=legacy)[0] == 401
    finally:
        admin.call("POST", "/api/jwt/settings", {"api_tokens_enabled": True, "legacy_api_tokens_enabled": False})
    after = {r["annotator_id"]: r for r in csv.DictReader((path / "annotator-credentials.csv").open())}
    assert after["B2"]["password"] != b2["password"], "B2's password was reset"
    assert {a: r for a, r in after.items() if a != "B2"} == {a: r for a, r in rows.items() if a != "B2"}, (
        "the other annotators' passwords stay in the file"
    )
    # the new password works, and B2 can make a fresh personal access token of their own
    fresh, _ = _own_tokens(plain.url, b2["login"], after["B2"]["password"])
    assert http(f"{plain.url}/api/token/refresh/", method="POST", payload={"refresh": fresh})[0] == 200


def test_revoking_an_account_revokes_its_personal_access_token_for_good(plain, dataset):
    import pyarrow.parquet as pq

    from annotation.labelstudio.accounts import AdminSession

    ds = str(dataset.root)
    path = plain.home / "emotions" / "annotator-credentials" / load_server(dataset)["server_id"]
    b3 = next(r for r in csv.DictReader((path / "annotator-credentials.csv").open()) if r["annotator_id"] == "B3")
    people = pq.read_table(dataset.annotators).to_pandas().set_index("annotator_id")
    personal, _ = _own_tokens(plain.url, b3["login"], b3["password"])
    revoked = _cli(plain, "revoke", ds, "B3", EMOTIONS_LS_URL=None)
    assert revoked.returncode == 0, revoked.stderr
    assert http(f"{plain.url}/api/token/refresh/", method="POST", payload={"refresh": personal})[0] == 401
    # someone gives the account back by hand in Label Studio's admin site: the old token stays revoked
    admin = AdminSession(ServerConfig(base_url=plain.url, username=ADMIN, password=ADMIN_PASSWORD))
    admin.set_password(int(people.loc["B3", "ls_user_id"]), "given-back-by-hand-1")
    opener, _ = login_session(plain.url, b3["login"], "given-back-by-hand-1")
    assert json.loads(opener.open(f"{plain.url}/api/current-user/whoami").read())["email"] == b3["login"]
    assert http(f"{plain.url}/api/token/refresh/", method="POST", payload={"refresh": personal})[0] == 401


def test_a_wrong_token_a_dead_url_and_another_server_each_give_one_line(plain, dataset, ls_server):
    ds = str(dataset.root)
    bad_pat = plain.token[:-6] + ("AAAAAA" if not plain.token.endswith("AAAAAA") else "BBBBBB")
    assert "refused the personal access token" in _one_line(_cli(plain, "pull", ds, EMOTIONS_LS_TOKEN=bad_pat))
    # legacy tokens are off in a fresh Label Studio's organization: the message says what to use instead
    line = _one_line(_cli(plain, "pull", ds, EMOTIONS_LS_TOKEN="0123456789abcdef0123"))
    assert "refused the legacy API token" in line and "personal access token" in line
    dead = f"http://127.0.0.1:{free_port()}"
    assert "no answer" in _one_line(_cli(plain, "pull", ds, "--url", dead))
    # the toolkit's own server (its token from its data folder) holds another database than the dataset's
    other = ("push", ds, "--stage", "label", "--data-dir", str(ls_server.config.data_dir))
    line = _one_line(_cli(plain, *other, EMOTIONS_LS_TOKEN=None))
    assert "another server" in line and "migrate-server" in line
    line = _one_line(_cli(plain, "pull", ds, EMOTIONS_LS_TOKEN=None, EMOTIONS_LS_URL=None))
    assert "no API token" in line and "EMOTIONS_LS_TOKEN" in line


def test_a_missing_media_file_is_named_and_the_rest_is_pushed(plain, dataset):
    ds = str(dataset.root)
    media = sorted(dataset.media.glob("*.mp4"))[0]
    hidden = media.with_suffix(".away")
    media.rename(hidden)
    try:
        pushed = _cli(plain, "push", ds, "--stage", "label", "--votes-per-item", "2", EMOTIONS_LS_URL=None)
    finally:
        hidden.rename(media)
    assert pushed.returncode == 1 and f"missing media file, not pushed: {media}" in pushed.stdout, pushed.stdout


def test_media_from_a_base_url_and_tasks_repointed_when_it_moves(plain, dataset):
    from emotions_data.loopback import LoopbackServer

    ds = str(dataset.root)
    files = LoopbackServer(dataset.root).start()  # any static file server that serves the dataset folder
    try:
        base = f"{files.base_url}/media"
        pushed = _cli(plain, "push", ds, "--stage", "label", EMOTIONS_LS_URL=None, EMOTIONS_MEDIA_BASE_URL=base)
        assert pushed.returncode == 0 and "task(s) now load their clip" in pushed.stdout, pushed.stderr
        client = LabelStudio(ServerConfig(base_url=plain.url, token=plain.token))
        videos = [t["data"]["video"] for p in client.projects() for t in client.tasks(p["id"])]
        assert videos and all(v.startswith(base + "/") for v in videos)
        assert urllib.request.build_opener(urllib.request.ProxyHandler({})).open(videos[0]).status == 200
        back = _cli(plain, "push", ds, "--stage", "label", EMOTIONS_LS_URL=None)  # local files again
        assert back.returncode == 0 and "task(s) now load their clip" in back.stdout, back.stderr
        again = _cli(plain, "push", ds, "--stage", "label", EMOTIONS_LS_URL=None)
        assert again.returncode == 0 and "now load" not in again.stdout, "nothing moved: nothing re-pointed"
    finally:
        files.stop()


def test_the_toolkits_server_starts_on_loopback_whatever_url_the_environment_names(ls_data_dir):
    import dataclasses

    from annotation.labelstudio.process import start, stop

    elsewhere = dataclasses.replace(ls_data_dir, base_url="https://labelstudio.lab.example")
    handle = start(elsewhere)
    try:
        assert handle.config.base_url is None and handle.url.startswith("http://127.0.0.1:")
        assert LabelStudio(handle.config).whoami()["email"]
    finally:
        stop(handle.config)

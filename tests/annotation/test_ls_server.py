"""The Label Studio server as the toolkit runs it: a real `label-studio` process, no mocks."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotation.labelstudio.client import api, http
from annotation.labelstudio.config import (
    CONFIG_ENV,
    CREDENTIALS_FILE,
    PASSWORD_ENV,
    TOKEN_ENV,
    USERNAME_ENV,
    ServerConfig,
    ServerError,
    load_config,
)
from annotation.labelstudio.media_links import point_link
from annotation.labelstudio.process import (
    BIN_ENV,
    PID_FILE,
    start,
    status,
    stop,
)
from annotation.labelstudio.procfs import group_members as _group_members
from annotation.labelstudio.procfs import listening as _listening
from annotation.labelstudio.procfs import proc_stat as _proc_stat
from emotions_data.layout import DatasetLayout
from tests.support.commands import interruptible
from tests.support.ls_fixtures import TEST_ADMIN, clone_data_dir

VIDEO_CONFIG = (
    '<View><Video name="video" value="$video"/>'
    '<Choices name="emotion" toName="video"><Choice value="Fear"/><Choice value="Neutral"/></Choices></View>'
)


# The fixtures live in tests/support/ls_fixtures.py for every test module to share; tests/conftest.py imports them.


def server_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emotions_cli.server", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def gone(pid: int) -> bool:
    """No thread of `pid` runs. A server stopped by a CLI subprocess stays our zombie child: reap it here."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    states = []
    for task in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            states.append(task.read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            pass
    return all(state in "ZX" for state in states)


def all_cmdlines() -> list[bytes]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes())
            except OSError:
                pass
    return found


# --- the shared server -----------------------------------------------------------------------------------------


def test_status_reports_healthy(ls_server, ls_template):
    print(
        f"\nLabel Studio {ls_server.version}: first start {ls_template.ready_s:.1f} s, start {ls_server.ready_s:.1f} s"
    )
    # a later command knows only the data folder: the generated token comes from credentials.json
    st = status(ServerConfig(data_dir=ls_server.config.data_dir))
    assert (st.running, st.healthy, st.token_ok) == (True, True, True)
    assert (st.pid, st.url, st.user, st.version) == (ls_server.pid, ls_server.url, TEST_ADMIN, "1.23.2")

    proc = server_cli("status", "--data-dir", str(ls_server.config.data_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["healthy"] is True


def test_server_listens_on_loopback_only(ls_server):
    assert _listening(ls_server.pid) == {("127.0.0.1", ls_server.config.port)}


def test_token_authenticates_and_a_wrong_token_is_refused(ls_server):
    projects = api(ls_server.config, "GET", "/api/projects")
    assert "results" in projects
    assert http(ls_server.url + "/api/projects", token="not-the-token-0123456789")[0] == 401
    assert http(ls_server.url + "/api/projects")[0] == 401
    with pytest.raises(ServerError, match="HTTP 401"):
        api(ls_server.config, "GET", "/api/projects", token="not-the-token-0123456789")


def test_local_files_under_the_document_root_are_served_through_a_storage(ls_server):
    # a dataset under the document root is served through its link in the server's own local-files root
    layout = DatasetLayout(ls_server.config.document_root / "loose")
    layout.manifests.mkdir(parents=True, exist_ok=True)
    layout.media.mkdir(exist_ok=True)
    (layout.media / "clip.txt").write_text("hello")
    name = point_link(ls_server.config.media_links, layout, ls_server.config.document_root)
    url = ls_server.url + f"/data/local-files/?d={name}/media/clip.txt"
    assert http(url, token=ls_server.config.token)[0] == 404  # no storage grants it yet
    project = api(ls_server.config, "POST", "/api/projects", {"title": "local files", "label_config": VIDEO_CONFIG})
    storage = {"project": project["id"], "path": str(ls_server.config.media_links / name / "media"),
               "title": "media", "use_blob_urls": True}  # fmt: skip
    api(ls_server.config, "POST", "/api/storages/localfiles", storage)
    assert http(url, token=ls_server.config.token) == (200, "hello")
    assert http(url)[0] == 401
    # the dataset's real folder is outside what Label Studio serves: no storage can be made over it
    with pytest.raises(ServerError, match="HTTP 400"):
        api(ls_server.config, "POST", "/api/storages/localfiles", {**storage, "path": str(layout.media)})


def test_secrets_stay_out_of_argv_logs_and_pid_file(ls_server, ls_template):
    token, password = ls_server.config.token, ls_server.config.password
    http(ls_server.url + "/api/projects", token=token[::-1])  # a refused request is logged too
    data_dir = ls_server.config.data_dir
    for secret in (token, password):
        assert all(secret.encode() not in argv for argv in all_cmdlines())
        assert secret not in (data_dir / "server.log").read_text()
        assert secret not in (data_dir / PID_FILE).read_text()
        assert secret not in repr(ls_server)
    assert stat.S_IMODE((data_dir / CREDENTIALS_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((ls_template.config.data_dir / CREDENTIALS_FILE).stat().st_mode) == 0o600
    assert "LABEL_STUDIO_USER_TOKEN" not in " ".join(a.decode(errors="replace") for a in all_cmdlines())


def test_a_second_start_on_the_same_data_dir_is_refused(ls_server):
    with pytest.raises(ServerError, match=r"already runs for .* \(pid \d+"):
        start(dataclasses.replace(ls_server.config, port=0))
    proc = server_cli("start", "--data-dir", str(ls_server.config.data_dir), "--port", "0")
    assert f"pid {ls_server.pid}" in one_line_error(proc)
    assert status(ls_server.config).healthy


# --- private servers ---------------------------------------------------------------------------------------------


def test_stop_stops_exactly_that_process_and_a_restart_is_fast_and_keeps_data(ls_data_dir, ls_server):
    first = start(ls_data_dir)
    project = api(
        first.config, "POST", "/api/projects", {"title": "kept across restarts", "label_config": VIDEO_CONFIG}
    )
    api(first.config, "POST", f"/api/projects/{project['id']}/import", [{"video": "/data/local-files/?d=m/a.mp4"}])

    t0 = time.monotonic()
    assert stop(ls_data_dir) == first.pid
    stop_s = time.monotonic() - t0
    assert gone(first.pid)
    assert not (ls_data_dir.data_dir / PID_FILE).exists()
    st = status(ls_data_dir)
    assert (st.running, st.healthy, st.detail) == (False, False, "not running")
    assert status(ls_server.config).healthy and not gone(ls_server.pid)  # the other server is untouched
    proc = server_cli("status", "--data-dir", str(ls_data_dir.data_dir))
    assert proc.returncode == 1 and proc.stdout.startswith("not running")

    second = start(ls_data_dir)
    print(f"\nstop {stop_s:.1f} s, restart {second.ready_s:.1f} s")
    assert second.ready_s < 30
    kept = api(second.config, "GET", f"/api/projects/{project['id']}")
    assert (kept["title"], kept["task_number"]) == ("kept across restarts", 1)
    assert (
        server_cli("stop", "--data-dir", str(ls_data_dir.data_dir)).stdout.strip()
        == f"stopped Label Studio (pid {second.pid})"
    )
    assert gone(second.pid)
    assert server_cli("stop", "--data-dir", str(ls_data_dir.data_dir)).stdout.strip() == "not running"


def test_a_token_other_than_the_first_one_is_refused_and_the_server_stopped(ls_data_dir):
    other = dataclasses.replace(ls_data_dir, token="another-token-0123456789")
    with pytest.raises(ServerError, match="refused the API token") as info:
        start(other)
    pid = int(re.search(r"\(pid (\d+)\)", str(info.value)).group(1))
    assert gone(pid)
    assert not (ls_data_dir.data_dir / PID_FILE).exists()
    assert "another-token-0123456789" not in str(info.value)


def test_a_migrated_data_dir_without_known_secrets_is_refused_before_spawning(ls_template, tmp_path):
    config = clone_data_dir(ls_template.config, tmp_path / "ls")
    (config.data_dir / CREDENTIALS_FILE).unlink()
    with pytest.raises(ServerError, match="no API token known"):
        start(ServerConfig(data_dir=config.data_dir, port=0))


# --- processes that are not Label Studio -------------------------------------------------------------------------


def write_pid_file(data_dir: Path, pid: int, ticks: int | None, executable: str = "x") -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "proc_start_ticks": ticks, "port": 9, "url": "http://127.0.0.1:9", "executable": executable}
    (data_dir / PID_FILE).write_text(json.dumps(record))


def test_stop_never_signals_a_process_it_did_not_start(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ticks = _proc_stat(stranger.pid)[1]
        for recorded_ticks in (ticks, ticks + 1):  # right start time but not label-studio; a recycled pid
            write_pid_file(tmp_path / "ls", stranger.pid, recorded_ticks)
            assert status(ServerConfig(data_dir=tmp_path / "ls")).detail.startswith("not running (stale pid file")
            assert stop(ServerConfig(data_dir=tmp_path / "ls")) is None
            assert stranger.poll() is None
            assert not (tmp_path / "ls" / PID_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_kills_a_process_group_that_ignores_sigterm(tmp_path):
    fake = fake_label_studio(tmp_path, "trap '' TERM; sleep 300 & wait")  # the shell and its child ignore SIGTERM
    server = subprocess.Popen([str(fake), "start", "--port", "9"], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(_group_members(server.pid)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    write_pid_file(tmp_path / "ls", server.pid, _proc_stat(server.pid)[1], executable=str(fake))
    group = _group_members(server.pid)
    t0 = time.monotonic()
    assert stop(ServerConfig(data_dir=tmp_path / "ls"), grace_s=1) == server.pid
    assert 1 <= time.monotonic() - t0 < 5  # SIGTERM was ignored for the grace period, then SIGKILL
    assert all(gone(pid) for pid in group)
    server.wait(timeout=5)  # stop() reaped it already (it is our child): this only settles the Popen object


def fake_label_studio(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "label-studio"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_a_server_that_exits_at_start_reports_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv(BIN_ENV, str(fake_label_studio(tmp_path, 'echo "fake: database is locked" >&2; exit 3')))
    with pytest.raises(ServerError, match=r"did not start: it exited with code 3; log .*fake: database is locked"):
        start(ServerConfig(data_dir=tmp_path / "ls", port=0))
    assert not (tmp_path / "ls" / PID_FILE).exists()


def test_a_server_that_never_gets_healthy_is_killed_after_the_timeout(tmp_path, monkeypatch):
    body = f'echo $$ > {tmp_path}/pid; echo "fake: still migrating"; exec sleep 300'
    monkeypatch.setenv(BIN_ENV, str(fake_label_studio(tmp_path, body)))
    with pytest.raises(ServerError, match=r"not healthy on .* after 2 s; log .*fake: still migrating"):
        start(ServerConfig(data_dir=tmp_path / "ls", port=0), timeout_s=2)
    assert gone(int((tmp_path / "pid").read_text()))
    assert not (tmp_path / "ls" / PID_FILE).exists()


def test_ctrl_c_while_starting_leaves_nothing_running(tmp_path):
    fake = fake_label_studio(tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 300")
    cli = subprocess.Popen(
        [sys.executable, "-m", "emotions_cli.server", "start", "--data-dir", str(tmp_path / "ls"), "--port", "0"],
        env={**os.environ, BIN_ENV: str(fake)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() or not (tmp_path / "ls" / PID_FILE).exists():
        assert time.monotonic() < deadline and cli.poll() is None
        time.sleep(0.05)
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=30) != 0
    assert gone(int((tmp_path / "pid").read_text()))
    assert not (tmp_path / "ls" / PID_FILE).exists()


def test_a_port_in_use_is_refused_before_spawning(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            start(ServerConfig(data_dir=tmp_path / "ls", port=port))
    assert not (tmp_path / "ls" / PID_FILE).exists()


def test_a_missing_executable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(BIN_ENV, str(tmp_path / "nowhere" / "label-studio"))
    proc = server_cli("start", "--data-dir", str(tmp_path / "ls"), "--port", "0")
    assert "make ls-server" in one_line_error(proc)


# --- configuration -------------------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_or_the_config_file_and_never_show(tmp_path, monkeypatch):
    for name in (USERNAME_ENV, PASSWORD_ENV, TOKEN_ENV, CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    config_file = tmp_path / "emotions.toml"
    config_file.write_text(
        '[label_studio]\nusername = "ann@lab.example"\npassword = "file-password"\ntoken = "file-token-123456"\n'
        f'port = 8123\ndata_dir = "{tmp_path / "ls"}"\n'
    )
    monkeypatch.setenv(CONFIG_ENV, str(config_file))
    config = load_config()
    assert (config.username, config.password, config.token, config.port) == (
        "ann@lab.example",
        "file-password",
        "file-token-123456",
        8123,
    )
    assert config.data_dir == tmp_path / "ls"
    monkeypatch.setenv(TOKEN_ENV, "env-token-abcdef")
    config = load_config(port=0)
    assert (config.token, config.port) == ("env-token-abcdef", 0)
    for secret in ("ann@lab.example", "file-password", "env-token-abcdef"):
        assert secret not in repr(config)

    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(ServerError, match="8-40 characters"):
        load_config()
    config_file.write_text('[label_studio]\ntoken_file = "x"\n')
    with pytest.raises(ServerError, match=r"unknown .* token_file"):
        load_config()

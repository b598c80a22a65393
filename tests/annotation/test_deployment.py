"""Which server a command reaches, without any server: settings, token kinds, and never a database by accident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from annotation.deployment import resolve_server
from annotation.labelstudio.config import ServerConfig, ServerError, load_config
from emotions_data.layout import DatasetLayout

PAT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJlLXBhcnQ"


def test_the_url_and_both_token_kinds_come_from_the_environment_or_the_config_file(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("EMOTIONS_")]:
        monkeypatch.delenv(key)
    config_file = tmp_path / "emotions.toml"
    config_file.write_text('[label_studio]\nurl = "https://ls.lab.example/studio/"\ntoken = "0123456789abcdef"\n'
                           'media_base_url = "https://media.lab.example/ds/media"\n')  # fmt: skip
    config = load_config(config_file)
    assert config.url == "https://ls.lab.example/studio" and config.token_kind == "legacy"
    assert config.media_base_url == "https://media.lab.example/ds/media"
    monkeypatch.setenv("EMOTIONS_LS_TOKEN", PAT)
    monkeypatch.setenv("EMOTIONS_LS_URL", "http://10.0.0.5:8080")
    config = load_config(config_file)
    assert config.url == "http://10.0.0.5:8080" and config.token_kind == "personal"
    assert PAT not in repr(config), "secrets stay out of the repr"
    assert ServerConfig().token_kind == "none"
    for bad in ("ftp://host", "labelstudio.lab.example", "http://host/?token=x"):
        with pytest.raises(ServerError, match="http:// or https:// URL"):
            load_config(None, url=bad)
    with pytest.raises(ServerError, match="must not carry a user name or password"):
        load_config(None, url="https://admin:secret@ls.lab.example")
    monkeypatch.setenv("EMOTIONS_LS_TOKEN", "short")
    with pytest.raises(ServerError, match=r"legacy token .* or a personal access token"):
        load_config(None)


def test_a_dataset_remembers_its_server_and_no_command_creates_a_database(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("EMOTIONS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    layout = DatasetLayout(tmp_path / "ds")
    layout.manifests.mkdir(parents=True)
    with pytest.raises(ServerError, match="no Label Studio known for this dataset"):
        resolve_server(layout)
    (layout.manifests / "ls_server.json").write_text(json.dumps({"server_id": "ls-1", "url": "https://ls.example"}))
    with pytest.raises(ServerError, match=r"no API token for the Label Studio at https://ls\.example"):
        resolve_server(layout)
    monkeypatch.setenv("EMOTIONS_LS_TOKEN", PAT)
    assert resolve_server(layout).url == "https://ls.example"
    managed = {"server_id": "ls-1", "url": "http://127.0.0.1:8080", "data_dir": str(tmp_path / "managed")}
    (layout.manifests / "ls_server.json").write_text(json.dumps(managed))
    with pytest.raises(ServerError, match="is not running: start it with 'emotions annotate server start --data-dir"):
        resolve_server(layout)
    # the command a lead types first, as docs/lead/annotation.md shows it: one line, no data folder made, nothing
    # migrated
    (layout.manifests / "ls_server.json").unlink()
    emotions = str(Path(sys.executable).with_name("emotions"))
    proc = subprocess.run([emotions, "annotate", "credentials", str(layout.root)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "EMOTIONS_LS_TOKEN": ""})  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "no Label Studio known" in lines[0], proc.stderr
    assert not (tmp_path / "xdg").exists() and not (layout.manifests / "ls_server.json").exists()

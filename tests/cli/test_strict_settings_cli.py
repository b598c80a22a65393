"""Settings, options and inputs checked when read, through the real `emotions` command, one case per kind (the
variants of each kind are tested at library level and in-process): one error line naming the file, key, variable
or option, exit 1, nothing written; a read-only dataset or a full disk names the folder; a folder's file whose name
is not UTF-8 is left out, named, and the rest is ingested."""

from __future__ import annotations

import os
import subprocess

import pandas as pd

from tests.support.commands import EMOTIONS, run_cli
from tests.support.manifests import released_dataset
from tests.support.mounts import read_only, resize, small_disk, used_bytes


def one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_an_infinite_setting_in_the_config_file_is_refused(tmp_path):
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/never-fetched.mp4\n")
    (tmp_path / "c.toml").write_text("[ingest.normalise]\nmax_fps = inf\n")
    proc = run_cli("ingest", str(tmp_path / "urls.txt"), "--out", str(tmp_path / "ds"), "--config",
                   str(tmp_path / "c.toml"))  # fmt: skip
    assert "c.toml: normalise.max_fps = inf: must be a finite number" in one_error_line(proc)
    assert not (tmp_path / "ds").exists()


def test_an_option_beyond_its_cap_is_refused_with_the_reason(tmp_path):
    (tmp_path / "v.csv").write_text("video_id,annotator_id,label\nv1,a1,Fear\nv1,a2,Fear\n")
    line = one_error_line(run_cli("agreement", str(tmp_path / "v.csv"), "--bootstrap", "200000000"))
    assert "--bootstrap must be <= 100000 (got 200000000): more resamples do not narrow the interval" in line


def test_label_studio_settings_name_the_file_or_the_variable(tmp_path):
    (tmp_path / "latin1.toml").write_bytes('[label_studio]\nusername = "König@lab"\n'.encode("latin-1"))
    line = one_error_line(run_cli("annotate", "server", "status", "--config", str(tmp_path / "latin1.toml")))
    assert "latin1.toml: cannot read config: not UTF-8 text" in line
    env = {**os.environ, "EMOTIONS_LS_URL": "http://[::1", "XDG_DATA_HOME": str(tmp_path)}
    proc = subprocess.run([EMOTIONS, "annotate", "server", "status"], capture_output=True, text=True, env=env)
    assert "EMOTIONS_LS_URL: the Label Studio URL must be an http:// or https:// URL" in one_error_line(proc)


def test_release_versions_and_the_pseudonym_key_are_checked(tmp_path):
    layout, _ = released_dataset(tmp_path / "ds")
    line = one_error_line(run_cli("release", str(layout.root), "--version", "01.0.0"))
    assert "version '01.0.0' must be a semantic version X.Y.Z" in line
    env = {**os.environ, "EMOTIONS_RELEASE_KEY": "k"}
    proc = subprocess.run([EMOTIONS, "release", str(layout.root), "--version", "1.0.0"], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert "EMOTIONS_RELEASE_KEY: the pseudonym key is 1 byte(s); it needs at least 16 bytes" in one_error_line(proc)
    assert not (layout.root / "releases" / "1.0.0").exists()


def test_a_url_table_with_the_url_column_twice_is_named(tmp_path):
    (tmp_path / "dup.csv").write_text("url,url\nhttp://a.example/x.mp4,http://b.example/y.mp4\n")
    line = one_error_line(run_cli("ingest", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "ds")))
    assert "dup.csv: column(s) 'url' appear more than once" in line


def test_labels_on_a_read_only_dataset_and_a_release_on_a_full_disk_name_the_folder(tmp_path):
    with small_disk(tmp_path / "disk", "20m") as disk:
        layout, votes = released_dataset(disk / "ds")
        votes.to_parquet(layout.votes)
        with read_only(layout.root):
            line = one_error_line(run_cli("labels", str(layout.root)))
        assert str(layout.root) in line and "read-only file system" in line
        resize(disk, used_bytes(disk) + 16 * 1024)
        line = one_error_line(run_cli("release", str(layout.root), "--version", "1.0.0"))
        assert str(layout.root) in line and "no space left on device" in line
        assert not (layout.root / "releases" / "1.0.0").exists()


def test_a_file_name_that_is_not_utf8_is_left_out_and_the_rest_ingested(corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "portrait.mp4").write_bytes((corpus / "portrait.mp4").read_bytes())
    with open(os.fsencode(folder) + b"/caf\xe9.mp4", "wb") as handle:
        handle.write((corpus / "landscape.mp4").read_bytes())
    proc = run_cli("ingest", str(folder), "--out", str(tmp_path / "ds"), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert f"refused: {folder}/caf\\xe9.mp4: the file name is not UTF-8 text" in proc.stderr
    assert list(pd.read_parquet(tmp_path / "ds" / "manifests" / "videos.parquet")["status"]) == ["ok"]

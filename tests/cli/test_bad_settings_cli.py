"""Impossible or misspelt settings end the command in one line naming the setting, before anything is written."""

from __future__ import annotations

import pytest

from tests.support.commands import run_cli


@pytest.mark.parametrize(
    ("options", "config", "named"),
    [
        (["--min-duration", "-5", "--max-duration", "0"], None, "filters.min_duration_s = -5.0: must be >= 0"),
        (["--near-dup-threshold", "1.5"], None, "dedup.near_duplicate_threshold"),
        (["--attempts", "0"], None, "download.attempts"),
        ([], "[ingets]\nworkers = 3\n", "did you mean [ingest]"),
        ([], '[ingest]\nworkers = "two"\n', "[ingest].workers"),
    ],
)
def test_ingest_refuses_impossible_settings_in_one_line(tmp_path, options, config, named):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/never-fetched.mp4\n")
    args = ["ingest", str(urls), "--out", str(tmp_path / "ds"), *options]
    if config is not None:
        (tmp_path / "c.toml").write_text(config)
        args += ["--config", str(tmp_path / "c.toml")]
    proc = run_cli(*args)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], proc.stderr
    assert not (tmp_path / "ds").exists()

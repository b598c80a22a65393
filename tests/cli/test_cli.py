"""The `emotions` command line as a user runs it: real processes, real exit codes, SIGKILL and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from emotions_data.ingest import read_manifest
from emotions_data.probe import probe_file, sha256_file
from emotions_data.storage import TMP_MARK
from tests.support.commands import EMOTIONS, _shards, _wait_for, run_cli
from tests.support.corpus import CORPUS, url_table


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def test_probe_prints_facts_and_fails_cleanly_on_garbage(corpus):
    proc = run_cli("probe", "--json", str(corpus / "rotated.mp4"), check=True)
    facts = json.loads(proc.stdout)
    assert (facts["width"], facts["height"], facts["has_audio"]) == (240, 320, True)
    proc = run_cli("probe", str(corpus / "garbage.mp4"))
    assert "garbage.mp4" in one_line_error(proc)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("link,video_id\nhttp://x/a.mp4,a\n", "no 'url' column"),
        ("url,video_id\nhttp://127.0.0.1:9/a.mp4,same\nhttp://127.0.0.1:9/b.mp4,same\n", "'same' is used for both"),
        ("url,video_id\nhttp://127.0.0.1:9/a.mp4,a\n,b\n", "row 3: empty url"),
    ],
)
def test_bad_sources_give_one_line_errors_naming_the_file(tmp_path, content, expected):
    source = tmp_path / "urls.csv"
    if content is not None:
        source.write_text(content)
    proc = run_cli("ingest", str(source), "--out", str(tmp_path / "ds"))
    line = one_line_error(proc)
    assert expected in line and "urls.csv" in line
    assert not (tmp_path / "ds" / "manifests").exists()


def test_bad_config_is_a_one_line_error(tmp_path, corpus):
    config = tmp_path / "emotions.toml"
    config.write_text("[ingest.filters]\nmin_duraton_s = 3\n")
    line = one_line_error(run_cli("ingest", str(corpus / "landscape.mp4"), "--out", str(tmp_path / "ds"),
                                  "--config", str(config)))  # fmt: skip
    assert "min_duraton_s" in line


def _comparable(path: Path) -> pd.DataFrame:
    frame = read_manifest(path).drop(columns=["processed_at"])
    return frame.sort_values("video_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def resume_setup(corpus, tmp_path_factory):
    from emotions_data.loopback import serve

    root = tmp_path_factory.mktemp("resume")
    with serve(corpus) as server:
        table = url_table(server, root / "urls.csv", CORPUS)
        args = [str(table), "--workers", "2", "--max-duration", "6"]
        run_cli("ingest", *args, "--out", str(root / "reference"), check=True)
        yield root, args


@pytest.mark.parametrize("kill_point", ["startup", "mid-fetch", "mid-normalise"])
def test_sigkill_at_any_moment_then_resume_gives_the_same_manifest(resume_setup, kill_point):
    root, args = resume_setup
    ds = root / kill_point
    proc = subprocess.Popen([EMOTIONS, "ingest", *args, "--out", str(ds)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    if kill_point == "startup":
        time.sleep(0.8)
    elif kill_point == "mid-fetch":
        _wait_for(lambda: _shards(ds / ".work" / "fetch") >= 2, 120)
    else:
        _wait_for(lambda: _shards(ds / ".work" / "normalise") >= 1, 120)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-write
    proc.wait()
    assert not (ds / "manifests" / "videos.parquet").exists()

    run_cli("ingest", *args, "--out", str(ds), check=True)
    got, want = _comparable(ds / "manifests" / "videos.parquet"), _comparable(root / "reference" / "manifests" /
                                                                            "videos.parquet")  # fmt: skip
    assert len(got) == len(CORPUS) and got["video_id"].is_unique
    pd.testing.assert_frame_equal(got.drop(columns=["attempts"]), want.drop(columns=["attempts"]))
    assert not list(ds.rglob(f"{TMP_MARK}*"))
    for row in got[got["status"] == "ok"].itertuples():
        media = ds / row.media_path
        assert sha256_file(media) == row.media_sha256
        assert probe_file(media).video_codec == "h264"
    table = pq.read_table(ds / "manifests" / "videos.parquet")
    assert table.num_rows == len(CORPUS)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`emotions demo` once for the module: its folder's parent (the demo is `demo`, linked as `demo-dataset`, the
    name the documentation uses) and the finished process."""
    tmp_path = tmp_path_factory.mktemp("demo-run")
    proc = run_cli("demo", "--out", str(tmp_path / "demo"), check=True)
    (tmp_path / "demo-dataset").symlink_to(tmp_path / "demo")
    return tmp_path, proc


def test_demo_builds_a_dataset_whose_outcomes_match_the_corpus_design(demo_run):
    tmp_path, proc = demo_run
    assert "ok" in proc.stdout and "near_duplicate" in proc.stdout
    frame = read_manifest(tmp_path / "demo" / "manifests" / "videos.parquet")
    outcome = frame["reason"].where(frame["status"] != "ok", "ok")
    assert (outcome == frame["expected"]).all(), frame.loc[outcome != frame["expected"], ["video_id", "reason"]]
    good = frame[frame["status"] == "ok"]
    assert len(good) == 48 and good["true_label"].value_counts().eq(8).all()
    assert (good["extractor"] == "Generic").all()
    # The annotation workflow ran on a real Label Studio: every stage has votes, and the final labels
    # (majority, or the expert where the crowd did not agree) recover the classes the clips encode.
    assert "Krippendorff" in proc.stdout and "final labels" in proc.stdout
    votes = pd.read_parquet(tmp_path / "demo" / "manifests" / "votes.parquet")
    assert set(votes["stage"]) >= {"label", "crosscheck"} and votes["ls_annotation_id"].is_unique
    assert (votes[votes["stage"] == "label"].groupby("video_id").size() == 3).all()
    labels = pd.read_parquet(tmp_path / "demo" / "manifests" / "labels.parquet").merge(good, on="video_id")
    assert len(labels) >= 45 and (labels["label"] == labels["true_label"]).mean() >= 0.9
    people = pd.read_parquet(tmp_path / "demo" / "manifests" / "annotators.parquet")
    assert (~people["active"]).sum() >= 1, "the consistency evaluation dropped the weak annotator"
    assert "@example.org" not in (tmp_path / "demo" / "manifests" / "annotators.parquet").read_bytes().decode("latin-1")
    # Split and released: every variant's every split holds every class, and the checksums hold.
    from emotions_data.release import verify_release

    release = tmp_path / "demo" / "releases" / "0.1.0"
    assert verify_release(release) == []
    for variant in ("full", "balanced", "test_oriented"):
        for split in ("train", "val", "test"):
            part = pd.read_parquet(release / "data" / variant / f"{split}.parquet")
            assert part["label"].nunique() == 6, (variant, split)
    # The tiny baseline learned the corpus (each class is a colour, a motion and a sound) on 2 CPU cores, chose
    # its epoch on val and was evaluated once on test, which the card of the next release version records.
    import torch

    run_dir = tmp_path / "demo" / "runs" / "0.1.0" / "full-tiny"
    history = torch.load(run_dir / "last.pt", weights_only=False)["history"]
    assert history[-1]["train_accuracy"] >= 0.9, [h["train_accuracy"] for h in history]
    assert "(WAR)" in proc.stdout and "per-class accuracy" in proc.stdout
    metrics = json.loads((run_dir / "eval-full-test" / "metrics.json").read_text())
    assert metrics["run"]["split"] == "test" and metrics["accuracy"] > 0.5  # chance is 1/6
    assert "## Baseline validation" not in (release / "README.md").read_text(), "0.1.0 stays as it was written"
    assert "## Baseline validation" in (release.parent / "0.1.1" / "README.md").read_text()
    assert verify_release(release.parent / "0.1.1") == []
    # Running it again is idempotent: nothing is fetched, posted or counted twice.
    before = pq.read_table(tmp_path / "demo" / "manifests" / "videos.parquet")
    run_cli("demo", "--out", str(tmp_path / "demo"), check=True)
    assert pq.read_table(tmp_path / "demo" / "manifests" / "videos.parquet").equals(before)
    assert len(pd.read_parquet(tmp_path / "demo" / "manifests" / "votes.parquet")) == len(votes)


def test_the_tutorial_and_the_researchers_guide_run_as_written_on_the_demo(demo_run):
    from tests.support.doc_blocks import run_blocks

    for page in ("getting-started.md", "researcher/loading.md"):
        assert run_blocks(page, demo_run[0]), page


def _commands(group, path=()):
    """(path, click command) of every `emotions` command, groups' subcommands included."""
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_help_shows_every_default_and_every_help_text_whole():
    """Help texts are Rich markup: a bracketed "[default: X]" written into one vanished unescaped. Every option
    with a default shows it, and every help text appears whole."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from emotions_cli.main import app

    runner = CliRunner()
    checked = 0
    commands = list(_commands(get_command(app)))
    assert len(commands) > 20 and ("train",) in [p for p, _ in commands]
    for path, command in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "1000", "TERMINAL_WIDTH": "1000"})
        assert result.exit_code == 0, (path, result.output)
        rows = {}
        for line in result.output.splitlines():
            cells = line.strip("│ ").split()
            if cells and cells[0] == "*":
                cells = cells[1:]
            if cells and cells[0].startswith("-"):
                rows[cells[0]] = " ".join(cells)
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            checked += 1
            row = rows[param.opts[0]]
            plain_flag = param.is_flag and not param.secondary_opts
            help_text = " ".join((param.help or "").replace("\\[", "[").split())
            assert help_text in row, (path, param.opts[0], row)
            if (param.default is not None and not plain_flag) or "[default:" in help_text:
                assert "[default: " in row, (path, param.opts[0], row)
    assert checked > 100

"""`annotate push` and `pull` against a real Label Studio, as a hostile environment runs them: a push killed
(SIGKILL, from outside) at each of its commit points leaves no project unaccounted for once it is run again, and two
pushes or two pulls at once create no extra project and record no history event twice."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.support.commands import EMOTIONS, run_cli
from tests.support.crash import killed_at, renames

ROSTER = "id,name,email,work_experience,eq_score,education,culture,leadership\n" + "".join(
    f"L{i},P{i},l{i}@example.org,{i},{100 + i},BSc,CN,0\n" for i in range(1, 3)
)


@pytest.fixture(scope="module")
def allocated(ls_server, corpus, tmp_path_factory) -> Path:
    """A dataset of three clips allocated to one group of two annotators with accounts, never pushed; its media
    served under a base URL (so that copies of the folder can be pushed too)."""
    from annotation.allocation_step import allocate
    from annotation.labelstudio.client import LabelStudio
    from emotions_data.executor import make_executor
    from emotions_data.ingest import ingest
    from emotions_data.layout import DatasetLayout
    from emotions_data.settings import load_settings

    folder = tmp_path_factory.mktemp("lifecycle")
    (folder / "in").mkdir()
    for name in ("landscape.mp4", "portrait.mp4", "rotated.mp4"):
        shutil.copy(corpus / name, folder / "in" / name)
    base = folder / "base"
    ingest([folder / "in"], base, load_settings(None), executor=make_executor("serial", 1))
    (folder / "roster.csv").write_text(ROSTER)
    allocate(DatasetLayout(base), folder / "roster.csv", n_groups=1, seed=0, client=LabelStudio(ls_server.config))
    return base


@pytest.fixture()
def media_url(monkeypatch) -> None:
    monkeypatch.setenv("EMOTIONS_MEDIA_BASE_URL", "https://media.lab.invalid/clips")


def _on_server(ls_server, ds: Path) -> dict[int, str]:
    """Label Studio id -> title of every project of the dataset `ds` (titles start with its folder's name)."""
    from annotation.labelstudio.client import LabelStudio

    return {p["id"]: p["title"] for p in LabelStudio(ls_server.config).projects() if p["title"].startswith(ds.name)}


def _recorded(ds: Path) -> dict[str, int]:
    import json

    return {key: p["id"] for key, p in json.loads((ds / "manifests" / "ls_projects.json").read_text()).items()}


def _push(ls_server, ds: Path) -> list[str]:
    return ["annotate", "push", str(ds), "--stage", "label", "--votes-per-item", "2",
            "--data-dir", str(ls_server.config.data_dir)]  # fmt: skip


def test_push_killed_at_each_commit_point_leaves_no_project_unaccounted_for(ls_server, allocated, media_url, tmp_path):
    reference = shutil.copytree(allocated, tmp_path / "reference")
    count = renames(_push(ls_server, reference))
    assert count >= 3, "the intent, then each project recorded: more than one commit point"
    settled = []
    for n in range(1, count + 1):
        ds = shutil.copytree(allocated, tmp_path / f"killed{n}")
        assert killed_at(_push(ls_server, ds), n).returncode != 0
        again = run_cli(*_push(ls_server, ds))
        assert again.returncode == 0, again.stderr
        settled += [line for line in again.stdout.splitlines() if line.startswith("an interrupted push was settled")]
        on_server, recorded = _on_server(ls_server, ds), _recorded(ds)
        assert sorted(on_server) == sorted(recorded.values()) and len(recorded) == 2, (n, on_server, recorded)
        assert not (ds / "manifests" / "ls_push_intent.json").exists()
    assert any("adopted 1 project(s) it made but had not recorded (label/A/L" in line for line in settled), settled


def test_two_pushes_then_two_pulls_at_once_make_one_set_of_projects_and_one_history(
    ls_server, allocated, media_url, tmp_path, monkeypatch
):
    from annotation.labelstudio.client import LabelStudio
    from annotation.labelstudio.interface import annotation_result
    from annotation.simulate import simulate
    from annotation.votes import read_vote_table
    from emotions_data.layout import DatasetLayout
    from emotions_data.taxonomy import EMOTIONS6

    ds = shutil.copytree(allocated, tmp_path / "twice")
    monkeypatch.setenv("EMOTIONS_LOCK_WAIT_S", "0")  # the second push refuses at once
    both = [proc.stderr for proc in _at_once(_push(ls_server, ds))]
    monkeypatch.delenv("EMOTIONS_LOCK_WAIT_S")  # the second pull waits for the first
    assert sorted(_on_server(ls_server, ds)) == sorted(_recorded(ds).values()) and len(_recorded(ds)) == 2, both
    admin, layout = LabelStudio(ls_server.config), DatasetLayout(ds)
    simulate(layout, "label", admin, EMOTIONS6, seed=1)
    pull = ["annotate", "pull", str(ds), "--data-dir", str(ls_server.config.data_dir)]
    run_cli(*pull, check=True)
    vote = read_vote_table(layout).iloc[0]
    other = next(c for c in EMOTIONS6.classes if c != vote["label"])
    admin.call("PATCH", f"/api/annotations/{int(vote['ls_annotation_id'])}", {"result": annotation_result(other)})
    _at_once(pull)
    events = pd.read_parquet(ds / "manifests" / "vote_history.parquet")["event"].tolist()
    assert events == ["edited"], "the edit is recorded once, not by each pull"


def _at_once(args: list[str]) -> list[subprocess.CompletedProcess]:
    """Run `emotions ARGS` twice at the same time: each ends well, or refuses in one line naming the other run."""
    procs = [subprocess.Popen([EMOTIONS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in procs]
    done = [subprocess.CompletedProcess(p.args, p.returncode, *out) for p, out in zip(procs, outputs, strict=True)]
    for i, proc in enumerate(done):
        if proc.returncode != 0:
            # A copied dataset is told once, in a `note:` line, that it shares the original's server; the refusal
            # itself is the one error line.
            lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("note: ")]
            assert len(lines) == 1 and "another run holds" in lines[0], proc.stderr
            assert f"pid {procs[1 - i].pid} (emotions annotate" in lines[0], lines[0]
    assert any(proc.returncode == 0 for proc in done), [proc.stderr for proc in done]
    return done

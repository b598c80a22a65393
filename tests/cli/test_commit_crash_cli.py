"""`split`, `labels` and `release` killed (SIGKILL, from outside) at each of their commit points: afterwards the
dataset holds exactly the old outputs or exactly the new ones, never a mix, and the same command then runs again.

The old state comes from a first run with other settings; the new one from the same command run to its end on a copy.
Any command that reads the dataset finishes a commit interrupted after its journal (`split --check` here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data.release import verify_release
from emotions_data.schema import ANNOTATORS_SCHEMA
from emotions_data.storage import COMMITS_DIR
from tests.support.commands import run_cli
from tests.support.crash import killed_at, renames
from tests.support.manifests import released_dataset
from tests.support.votes import simulated

SPLIT_FILES = ("manifests/splits.parquet", "manifests/splits.json")
LABEL_FILES = ("manifests/labels.parquet", "manifests/needs_expert.parquet", "manifests/agreement.json")


def snapshot(root: Path, names: tuple[str, ...]) -> dict[str, bytes | None]:
    return {name: (root / name).read_bytes() if (root / name).exists() else None for name in names}


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` except the commit machinery's own."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and COMMITS_DIR not in p.relative_to(folder).parts
    }


def settle(ds: Path) -> None:
    """What a user does next: any command that reads the dataset (it finishes an interrupted commit first)."""
    run_cli("split", str(ds), "--check")


def kill_at_every_commit_point(tmp_path: Path, base: Path, args, check, settle=settle) -> set[str]:
    """Copy `base`, kill `emotions ARGS(copy)` at its n-th rename for every n, `settle(copy)` and `check(copy)` the
    result; returns the states seen ("old", "new")."""
    reference = shutil.copytree(base, tmp_path / "reference")
    count = renames(args(reference))
    assert count >= 3, "a journal and at least two files: there is more than one commit point"
    seen = set()
    for n in range(1, count + 1):
        ds = shutil.copytree(base, tmp_path / f"killed-{n}")
        proc = killed_at(args(ds), n)
        assert proc.returncode != 0, f"rename {n} of {count}: the command was not killed"
        settle(ds)
        seen.add(check(ds, reference))
    return seen


def test_split_killed_at_each_commit_point_leaves_one_seeds_splits_and_settings(tmp_path):
    base = tmp_path / "base"
    released_dataset(base)
    run_cli("split", str(base), "--seed", "1", check=True)
    old = snapshot(base, SPLIT_FILES)

    def args(ds: Path) -> list[str]:
        return ["split", str(ds), "--seed", "2"]

    def check(ds: Path, reference: Path) -> str:
        new = snapshot(reference, SPLIT_FILES)
        assert all(old[name] != new[name] for name in SPLIT_FILES), "both files differ between the two seeds"
        state = snapshot(ds, SPLIT_FILES)
        assert state in (old, new), "splits.parquet of one seed with splits.json of another"
        run_cli(*args(ds), check=True)
        assert snapshot(ds, SPLIT_FILES) == new
        assert [p.name for p in (ds / COMMITS_DIR).iterdir()] == ["lock"], "no staging or journal is left"
        return "old" if state == old else "new"

    assert kill_at_every_commit_point(tmp_path, base, args, check) == {"old", "new"}


@pytest.mark.parametrize("new_votes", ["other votes", "expert votes only"])
def test_labels_killed_at_each_commit_point_never_decides_and_queues_an_item_at_once(tmp_path, new_votes):
    base = tmp_path / "base"
    (base / "manifests").mkdir(parents=True)
    roster = [{"annotator_id": f"ann{a}", "role": "annotator", "group": "A", "active": True} for a in range(5)]
    pq.write_table(pa.Table.from_pylist(roster, schema=ANNOTATORS_SCHEMA), base / "manifests" / "annotators.parquet")
    first, _ = simulated(1, items=60)
    first["stage"] = "label"
    first.to_parquet(tmp_path / "first.parquet")
    second, _ = simulated(2, items=60)
    second["stage"] = "label" if new_votes == "other votes" else "expert"  # expert votes only: no agreement report
    second.to_parquet(tmp_path / "second.parquet")
    run_cli("labels", str(base), "--votes", str(tmp_path / "first.parquet"), check=True)
    old = snapshot(base, LABEL_FILES)
    assert len(pd.read_parquet(base / LABEL_FILES[1])), "the old state has items waiting for the expert"

    def args(ds: Path) -> list[str]:
        return ["labels", str(ds), "--votes", str(tmp_path / "second.parquet")]

    def check(ds: Path, reference: Path) -> str:
        new = snapshot(reference, LABEL_FILES)
        assert all(old[name] != new[name] for name in LABEL_FILES)
        state = snapshot(ds, LABEL_FILES)
        assert state in (old, new), "labels, the expert's queue and the agreement report of different runs"
        decided = set(pd.read_parquet(ds / LABEL_FILES[0])["video_id"])
        assert not decided & set(pd.read_parquet(ds / LABEL_FILES[1])["video_id"])
        run_cli(*args(ds), check=True)
        assert snapshot(ds, LABEL_FILES) == new
        return "old" if state == old else "new"

    assert kill_at_every_commit_point(tmp_path, base, args, check) == {"old", "new"}


def test_release_killed_at_each_commit_point_has_its_card_copy_only_with_it(tmp_path):
    base = tmp_path / "base"
    released_dataset(base)
    run_cli("release", str(base), "--version", "0.1.0", "--name", "ds", check=True)  # the old state: one release
    old = tree(base)

    def args(ds: Path) -> list[str]:
        return ["release", str(ds), "--version", "0.2.0", "--name", "ds"]

    def check(ds: Path, reference: Path) -> str:
        release, copy = ds / "releases" / "0.2.0", ds / "data_cards" / "ds-0.2.0"
        if not release.exists():
            assert tree(ds) == old, "no release: nothing else changed either (no card copy without it)"
            run_cli(*args(ds), check=True)
            state = "old"
        else:
            state = "new"
            again = run_cli(*args(ds))
            assert again.returncode == 1 and "never overwritten" in again.stderr
        assert verify_release(release) == [] and copy.is_dir()
        card = {rel: data for rel, data in tree(release).items() if rel in tree(copy)}
        assert tree(copy) == card and set(card) >= {"README.md", "croissant.json"}
        assert set(tree(reference / "data_cards" / "ds-0.2.0")) == set(tree(copy))
        ledger = "manifests/release-ledger/0.2.0.json"  # the new release's record outside it, written with it
        assert ledger in tree(ds) and ledger not in old
        new_paths = ("releases/0.2.0/", "data_cards/ds-0.2.0/", ledger)
        assert {k: v for k, v in tree(ds).items() if not k.startswith(new_paths)} == {k: v for k, v in old.items()}, (
            "the earlier release and the manifests are untouched"
        )
        return state

    assert kill_at_every_commit_point(tmp_path, base, args, check) == {"old", "new"}


PULL_FILES = ("manifests/votes.parquet", "manifests/vote_history.parquet", "manifests/pull_report.json")


def pulled(root: Path) -> dict[str, str]:
    """The three files a pull commits, as text without the pull's own clock (`pulled_at`, and the `at` it gives a
    deletion), so two pulls of the same Label Studio state compare equal."""
    history = pd.read_parquet(root / PULL_FILES[1]).drop(columns=["at", "pulled_at"])
    report = json.loads((root / PULL_FILES[2]).read_text())
    report.pop("pulled_at")
    for change in report["changes"]:
        change.pop("at"), change.pop("pulled_at")
    return {
        "votes": pd.read_parquet(root / PULL_FILES[0]).to_json(orient="records", date_format="iso"),
        "history": history.to_json(orient="records", date_format="iso"),
        "report": json.dumps(report, sort_keys=True),
    }


def test_pull_killed_at_each_commit_point_leaves_the_votes_history_and_report_of_one_pull(ls_server, corpus, tmp_path):
    from annotation.allocation_step import allocate
    from annotation.labelstudio.client import LabelStudio
    from annotation.labelstudio.interface import annotation_result
    from annotation.pull import pull
    from annotation.push import push
    from annotation.simulate import simulate
    from annotation.votes import read_vote_table
    from emotions_data.executor import make_executor
    from emotions_data.ingest import ingest
    from emotions_data.layout import DatasetLayout
    from emotions_data.settings import load_settings
    from emotions_data.taxonomy import EMOTIONS6

    base = ls_server.config.document_root / "crash-pull-ds"
    (tmp_path / "in").mkdir()
    for name in ("landscape.mp4", "portrait.mp4", "rotated.mp4"):
        shutil.copy(corpus / name, tmp_path / "in" / name)
    ingest([tmp_path / "in"], base, load_settings(None), executor=make_executor("serial", 1))
    (tmp_path / "roster.csv").write_text(
        "id,name,email,work_experience,eq_score,education,culture,leadership\n"
        + "".join(f"C{i},P{i},p{i}@example.org,{i},{100 + i},BSc,CN,0\n" for i in range(1, 4))
    )
    layout, admin = DatasetLayout(base), LabelStudio(ls_server.config)
    allocate(layout, tmp_path / "roster.csv", n_groups=1, seed=0, client=admin)
    push(layout, "label", admin, EMOTIONS6, votes_per_item=2)
    simulate(layout, "label", admin, EMOTIONS6, seed=1)
    pull(layout, admin, EMOTIONS6)
    votes = read_vote_table(layout)

    def relabel(row: pd.Series) -> None:  # the admin's edit is applied and recorded in the history
        other = next(c for c in EMOTIONS6.classes if c != row["label"])
        admin.call("PATCH", f"/api/annotations/{int(row['ls_annotation_id'])}", {"result": annotation_result(other)})

    relabel(votes.iloc[0])
    pull(layout, admin, EMOTIONS6)  # the old state: votes, a history of one edit, a report
    old = pulled(base)
    relabel(votes.iloc[1])  # what the killed pull has to record: one more edit and a deletion
    admin.call("DELETE", f"/api/annotations/{int(votes.iloc[2]['ls_annotation_id'])}")

    def args(ds: Path) -> list[str]:
        return ["annotate", "pull", str(ds), "--data-dir", str(ls_server.config.data_dir)]

    run_cli(*args(shutil.copytree(base, tmp_path / "warm-up")), check=True)  # compiles what the CLI imports

    def check(ds: Path, reference: Path) -> str:
        new = pulled(reference)
        assert all(old[name] != new[name] for name in old), "the pull changes all three files"
        state = pulled(ds)
        assert state in (old, new), "votes, vote history and pull report of different pulls"
        run_cli(*args(ds), check=True)
        after = pulled(ds)
        assert after["votes"] == new["votes"] and after["history"] == new["history"], (
            "a later pull records the events the killed one did not commit, and none twice"
        )
        events = pd.read_parquet(ds / PULL_FILES[1])["event"].tolist()
        assert events == ["edited", "deleted", "edited"] or sorted(events) == ["deleted", "edited", "edited"]
        return "old" if state == old else "new"

    def status(ds: Path) -> None:  # what a user runs next: a command that reads the votes
        run_cli("annotate", "status", str(ds))

    assert kill_at_every_commit_point(tmp_path, base, args, check, settle=status) == {"old", "new"}

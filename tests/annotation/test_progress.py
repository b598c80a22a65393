"""Campaign progress from a dataset's manifests alone (no server)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from annotation.progress import campaign_progress
from emotions_data.layout import DatasetLayout
from emotions_data.schema import ANNOTATORS_SCHEMA


def _dataset(root, votes: list[tuple], active_b2: bool = True) -> DatasetLayout:
    layout = DatasetLayout(root)
    layout.manifests.mkdir(parents=True)
    pd.DataFrame({"video_id": ["v1", "v2", "v3"], "status": "ok", "media_duration_s": [10.0, 20.0, 5.0]}).to_parquet(
        layout.videos_manifest
    )
    people = [
        ("B1", "annotator", "A", True, 2),
        ("B2", "annotator", "A", active_b2, 3),
        ("EX", "expert", None, True, 4),
    ]
    rows = [dict(zip(["annotator_id", "role", "group", "active", "ls_user_id"], p, strict=True)) for p in people]
    pa.parquet.write_table(pa.Table.from_pylist(rows, schema=ANNOTATORS_SCHEMA), layout.annotators)
    projects = {
        f"label/A/{a}": {"id": i, "title": "t", "stage": "label", "items_of": "A", "group": "A", "annotator": a,
                         "videos": {"v1": 2, "v2": 2, "v3": 2}}
        for i, a in enumerate(["B1", "B2"], start=1)
    }  # fmt: skip
    (layout.manifests / "ls_projects.json").write_text(json.dumps(projects))
    frame = pd.DataFrame(votes, columns=["annotator_id", "video_id", "lead_time_s"])
    frame["stage"], frame["label"], frame["status"] = "label", "Fear", "kept"
    frame.to_parquet(layout.votes)
    report = {"pulled_at": "2026-01-02T03:04:05+00:00", "excluded": [{"reason": "cancelled"}],
              "projects": {"label/A/B1": {"status": "ok", "drift": ["maximum_annotations"]}}}  # fmt: skip
    (layout.manifests / "pull_report.json").write_text(json.dumps(report))
    return layout


def test_done_remaining_lead_times_blockers_and_next(tmp_path):
    layout = _dataset(tmp_path / "ds", [("B1", "v1", 12.0), ("B1", "v2", 3.0), ("B1", "v3", 6.0), ("B2", "v1", 2.0)])
    progress = campaign_progress(layout)
    rows = {r.annotator: r for r in progress.annotators}
    assert (rows["B1"].done, rows["B1"].remaining, rows["B1"].median_lead_s) == (3, 0, 6.0)
    assert rows["B1"].shorter_than_clip == 1 and rows["B2"].shorter_than_clip == 1  # 3 s of a 20 s clip; 2 of 10
    assert (rows["B2"].done, rows["B2"].remaining) == (1, 2)
    (stage,) = progress.stages
    assert (stage.assigned, stage.done, stage.remaining, stage.complete) == (6, 4, 2, False)
    assert [(g.group, g.assigned, g.done, g.remaining) for g in progress.groups] == [("A", 6, 4, 2)]
    assert progress.blocked == [
        "label: 2 vote(s) to cast, by B2 (2)",
        "project label/A/B1: settings changed in Label Studio (maximum_annotations); "
        f"emotions annotate push {layout.root} --stage label restores them",
        f"1 annotation(s) not counted at the last pull (see {layout.manifests / 'pull_report.json'})",
    ]
    assert progress.next_command.startswith(f"emotions annotate pull {layout.root}")
    assert "2026-01-02T03:04:05" in progress.next_command


def test_a_complete_stage_names_the_next_one_and_dropped_annotators_do_not_block(tmp_path):
    layout = _dataset(tmp_path / "ds", [("B1", v, 30.0) for v in ("v1", "v2", "v3")], active_b2=False)
    progress = campaign_progress(layout)
    assert (
        progress.stages[0].complete
        and progress.next_command == f"emotions annotate push {layout.root} --stage crosscheck"
    )
    assert progress.blocked and "dropped annotator(s) B2" in progress.blocked[0]
    assert json.loads(json.dumps(progress.to_dict()))["stages"][0]["remaining"] == 0


def test_before_allocation_it_says_so(tmp_path):
    (tmp_path / "ds" / "manifests").mkdir(parents=True)
    with pytest.raises(ValueError, match="no allocation yet"):
        campaign_progress(DatasetLayout(tmp_path / "ds"))


def test_items_whose_answer_does_not_count_are_owed_by_nobody_and_votes_not_counted_are_shown(tmp_path):
    layout = _dataset(tmp_path / "ds", [("B1", "v1", 12.0)])
    excluded = [
        {"reason": "cancelled", "project": "label/A/B1", "claimed": "B1", "video_id": "v2"},
        {"reason": "imported_task", "project": "label/A/B1", "claimed": "B1", "video_id": "v3"},  # v3 still open
        {"reason": "duplicate", "project": "label/A/B1", "claimed": "B1", "video_id": "v1"},
    ]
    (layout.manifests / "pull_report.json").write_text(json.dumps({"excluded": excluded}))
    row = next(r for r in campaign_progress(layout).annotators if r.annotator == "B1")
    assert (row.done, row.closed, row.remaining, row.not_counted) == (1, 1, 1, 3)
    blocked = campaign_progress(layout).blocked
    assert "label: B1 has 1 item(s) whose answer does not count (v2)" in blocked[0]
    assert blocked[1] == "label: 3 annotation(s) of B1 not counted (cancelled: 1, duplicate: 1, imported_task: 1)"

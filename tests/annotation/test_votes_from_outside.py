"""Vote tables from outside (a spreadsheet's CSV, another tool's export) are cleaned as the toolkit's own are: blanks
stripped, votes that no longer count left out, double votes refused naming them, undefined statistics explained."""

from __future__ import annotations

import pandas as pd
import pytest

from annotation.agreement import agreement_report
from annotation.votes import read_votes
from emotions_data.taxonomy import EMOTIONS6
from tests.support.commands import run_cli


def test_blanks_around_ids_and_labels_are_stripped(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_text("video_id,annotator_id,label\n v1,a1,Fear \nv1 , a2,Fear\nv2,a1, Tension\nv2,a2,Tension\n")
    votes = read_votes(path, EMOTIONS6)
    assert sorted(votes["label"].unique()) == ["Fear", "Tension"], "'Fear ' is no seventh class"
    assert sorted(votes["video_id"].unique()) == ["v1", "v2"] and sorted(votes["annotator_id"].unique()) == ["a1", "a2"]
    report = agreement_report(votes, list(EMOTIONS6.classes), n_bootstrap=0)
    assert report.n_items == 2 and report.n_annotators == 2 and report.krippendorff_alpha == pytest.approx(1.0)


def test_one_annotator_voting_twice_on_one_item_is_refused_naming_them(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("video_id,annotator_id,stage,label\nv1,a1,label,Fear\nv1,a2,label,Tension\nv1,a1,label,Fear\n"
                    "v1,a1,crosscheck,Fear\n")  # fmt: skip
    with pytest.raises(ValueError, match=r"twice.csv: 1 time\(s\).*v1 / a1 / label \(2 votes\)"):
        read_votes(path)
    proc = run_cli("agreement", str(path))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "v1 / a1 / label" in lines[0], proc.stderr


def test_deleted_and_superseded_votes_are_left_out(tmp_path):
    path = tmp_path / "votes.parquet"
    pd.DataFrame({"video_id": ["v1", "v1", "v1", "v1"], "annotator_id": ["a1", "a2", "a2", "EX"],
                  "stage": ["label", "label", "label", "expert"], "label": ["Fear", "Tension", "Fear", "Fear"],
                  "status": ["kept", "deleted", "kept", "superseded"]}).to_parquet(path)  # fmt: skip
    votes = read_votes(path)
    assert list(votes["label"]) == ["Fear", "Fear"] and "EX" not in set(votes["annotator_id"])


def test_undefined_statistics_say_why_and_nothing_agreed_is_disputed():
    same = pd.DataFrame({"video_id": ["v1", "v1", "v2", "v2"], "annotator_id": ["a", "b", "a", "b"],
                         "label": ["Fear"] * 4})  # fmt: skip
    report = agreement_report(same, list(EMOTIONS6.classes), n_bootstrap=0)
    assert report.krippendorff_alpha != report.krippendorff_alpha  # NaN
    assert "no variation" in report.undefined["krippendorff_alpha"] and "Fear" in report.undefined["krippendorff_alpha"]
    assert report.fleiss_kappa_absent_reason and "one category" in report.undefined["fleiss_kappa"]
    assert report.most_disputed == [], "items everyone agreed on are not 'most disputed'"
    # a pair whose labels never vary is left out of the mean Cohen's kappa, and the report says which
    mixed = pd.DataFrame({"video_id": ["v1", "v1", "v2", "v2", "v1", "v2"],
                          "annotator_id": ["a", "b", "a", "b", "c", "c"],
                          "label": ["Fear", "Fear", "Fear", "Fear", "Tension", "Fear"]})  # fmt: skip
    report = agreement_report(mixed, list(EMOTIONS6.classes), n_bootstrap=0)
    assert report.cohen_kappa_pairs == 2 and "1 of 3 pair(s) left out (a-b)" in report.undefined["cohen_kappa_mean"]


def test_a_version_1_vote_table_is_still_read_and_counts(tmp_path):
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotation.vetting import Accounts, vet
    from annotation.votes import counted_votes, read_vote_table
    from emotions_data.layout import DatasetLayout
    from emotions_data.schema import VOTES_SCHEMA

    layout = DatasetLayout(tmp_path)
    layout.manifests.mkdir(parents=True)
    v1 = pa.table({"video_id": ["v1", "v1"], "annotator_id": ["a1", "a2"], "stage": ["label", "label"],
                   "group": ["A", "A"], "label": ["Fear", "Tension"], "unsure": [False, False],
                   "lead_time_s": [3.0, 4.0], "created_at": pa.array([None, None], pa.timestamp("s", tz="UTC")),
                   "ls_task_id": [1, 1], "ls_annotation_id": [7, 8]})  # fmt: skip
    pq.write_table(v1, layout.votes)
    votes = read_vote_table(layout)
    assert list(votes.columns) == VOTES_SCHEMA.names and set(votes["status"]) == {"kept"}
    assert len(counted_votes(layout, votes)) == 2 and len(read_votes(layout.votes)) == 2
    people = pd.DataFrame({"annotator_id": ["a1", "a2"], "role": ["annotator"] * 2, "group": ["A", "A"],
                           "active": [True, True], "ls_user_id": [11, 12]})  # fmt: skip
    adopted = vet(votes, {}, people, Accounts({}, 1), {"v1"}, EMOTIONS6, ("ls-x", "http://x"), datetime.now(UTC))
    assert set(adopted.votes["server_id"]) == {"ls-x"} and adopted.n_deleted == 0, "no project answered: nothing gone"


def test_a_dataset_with_group_projects_is_planned_per_annotator_without_second_votes(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotation.stage_plan import plan_stage as _plan
    from emotions_data.layout import DatasetLayout
    from emotions_data.schema import ANNOTATORS_SCHEMA, ASSIGNMENTS_SCHEMA, Stage

    layout = DatasetLayout(tmp_path)
    layout.manifests.mkdir(parents=True)
    pq.write_table(pa.table({"video_id": ["v1", "v2"], "status": ["ok", "ok"], "media_path": ["m/1", "m/2"]}),
                   layout.videos_manifest)  # fmt: skip
    pq.write_table(pa.Table.from_pylist([{"video_id": "v1", "group": "A"}, {"video_id": "v2", "group": "A"}],
                                        schema=ASSIGNMENTS_SCHEMA), layout.assignments)  # fmt: skip
    people = [{"annotator_id": a, "role": "annotator", "group": "A", "active": True, "ls_user_id": i}
              for i, a in enumerate(["A1", "A2"], start=2)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(people, schema=ANNOTATORS_SCHEMA), layout.annotators)
    (layout.manifests / "ls_projects.json").write_text(json.dumps(
        {"label/A": {"id": 1, "stage": "label", "items_of": "A", "title": "ds · label · group A"}}))  # fmt: skip
    pd.DataFrame({"video_id": ["v1"], "annotator_id": ["A1"], "stage": ["label"], "group": ["A"], "label": ["Fear"],
                  "ls_annotation_id": [5]}).to_parquet(layout.votes)  # fmt: skip
    plan = _plan(layout, Stage.LABEL, "ds", 2, 0.5)
    assert plan["label/A/A1"]["videos"] == {"v2": 2}, "A1 voted on v1 in the group project already"
    assert plan["label/A/A2"]["videos"] == {"v1": 2, "v2": 2}


def test_a_folder_given_as_a_vote_table_is_refused_in_one_line_naming_the_dataset_table(tmp_path):
    from annotation.votes import load_table

    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "votes.parquet").write_bytes(b"")
    (tmp_path / "manifests" / "agreement.json").write_text("{}")
    with pytest.raises(ValueError, match=r"is a folder, not a vote table .*manifests/votes\.parquet$"):
        load_table(tmp_path)
    with pytest.raises(ValueError, match=r"manifests: is a folder, not a vote table \(Parquet, CSV or JSON\)$"):
        load_table(tmp_path / "manifests")

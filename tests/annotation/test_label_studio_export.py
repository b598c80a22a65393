"""Votes from outside checked like votes from Label Studio: its JSON export read directly (annotations only), its
flattened exports, unknown videos and tasks, annotators not on the roster, errors naming row and column, labels
compared after NFKC."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotation.labels_step import decide_labels
from annotation.outside_votes import check_against_dataset, import_votes, read_outside_votes
from annotation.votes import read_counted_votes, read_votes
from emotions_data.layout import DatasetLayout
from emotions_data.release import write_release
from emotions_data.schema import ANNOTATORS_SCHEMA, VOTES_SCHEMA
from emotions_data.taxonomy import EMOTIONS6
from tests.support.ls_export import outside_export
from tests.support.manifests import released_dataset

VIDEOS = ["v1", "v2", "v3"]
LABELS = ["Fear", "Tension", "Fear"]


@pytest.fixture
def dataset(tmp_path, monkeypatch) -> DatasetLayout:
    """Three ok videos and a failed one; ann0 is Label Studio user 2, ann1 user 3; an export of them beside it."""
    monkeypatch.delenv("EMOTIONS_RELEASE_KEY", raising=False)
    layout = DatasetLayout(tmp_path / "ds")
    layout.manifests.mkdir(parents=True)
    pd.DataFrame({"video_id": [*VIDEOS, "v4"], "status": ["ok", "ok", "ok", "failed"]}).to_parquet(
        layout.videos_manifest
    )
    people = [{"annotator_id": f"ann{k}", "role": "annotator", "group": "A", "active": True, "ls_user_id": k + 2}
              for k in range(2)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(people, schema=ANNOTATORS_SCHEMA), layout.annotators)
    (tmp_path / "export.json").write_text(json.dumps(outside_export(VIDEOS, LABELS)))
    return layout


def test_the_export_gives_annotations_only_and_counts_what_it_leaves_out(dataset):
    export = dataset.root.parent / "export.json"
    read = read_outside_votes(export, EMOTIONS6)
    votes = read.votes
    assert len(votes) == 10, "three per video and one on a video the dataset does not have"
    assert read.left_out == {"skipped or cancelled": 1, "predictions (not votes)": 2, "drafts (not votes)": 1,
                             "more than one emotion chosen": 1}  # fmt: skip
    assert read.unknown_tasks == [5], "the task naming no video"
    assert "Sadness" not in set(votes["label"]), "the cancelled vote, the prediction and the draft are not votes"
    assert set(votes["annotator_id"]) == {"#2", "ann1@annotators.invalid", "jane.doe@example.org"}
    assert any("1 skipped or cancelled left out" in n for n in read.notes), read.notes
    assert votes.loc[0, ["ls_task_id", "ls_annotation_id", "stage"]].tolist() == [1, 100, "label"]


def test_votes_on_unknown_videos_are_refused_naming_them_or_left_out(dataset):
    read = read_outside_votes(dataset.root.parent / "export.json", EMOTIONS6)
    with pytest.raises(ValueError, match=r"1 video\(s\) the dataset does not have: v-not-here; 1 Label Studio task"):
        check_against_dataset(dataset, read, pseudonymise=True)
    checked = check_against_dataset(dataset, read, leave_out_unknown=True, pseudonymise=True)
    assert set(checked.votes["video_id"]) == set(VIDEOS) and len(checked.votes) == 9
    assert any("warning: 2 vote(s)" in n and "v-not-here" in n and "task 5" in n for n in checked.notes)


def test_annotators_not_on_the_roster_are_refused_or_get_keyed_pseudonyms(dataset):
    read = read_outside_votes(dataset.root.parent / "export.json", EMOTIONS6)
    with pytest.raises(ValueError, match=r"1 annotator id\(s\) not on the dataset's roster.*--pseudonymise"):
        check_against_dataset(dataset, read, leave_out_unknown=True)
    first = check_against_dataset(dataset, read, leave_out_unknown=True, pseudonymise=True)
    ids = set(first.votes["annotator_id"])
    assert {"ann0", "ann1"} < ids and len(ids) == 3 and first.pseudonymised == 1
    (stranger,) = ids - {"ann0", "ann1"}
    assert stranger.startswith("ext-") and "jane" not in stranger
    again = check_against_dataset(dataset, read, leave_out_unknown=True, pseudonymise=True)
    assert set(again.votes["annotator_id"]) == ids, "the dataset's key gives the same pseudonym every time"


def test_import_adds_the_votes_the_labels_step_and_the_card_read(dataset):
    export = dataset.root.parent / "export.json"
    import_votes(dataset, export, EMOTIONS6, leave_out_unknown=True, pseudonymise=True)
    import_votes(dataset, export, EMOTIONS6, leave_out_unknown=True, pseudonymise=True)  # replaces, no double votes
    table = pq.read_table(dataset.votes)
    assert table.schema.names == VOTES_SCHEMA.names
    assert table.num_rows == 9
    votes = table.to_pandas()
    assert set(votes["server_id"]) == {"import:export.json"} and votes["ls_annotation_id"].notna().all()
    outcome = decide_labels(dataset, EMOTIONS6, n_bootstrap=0)
    assert dict(zip(outcome.labels["video_id"].to_pylist(), outcome.labels["label"].to_pylist(), strict=True)) == dict(
        zip(VIDEOS, LABELS, strict=True)
    )
    report = json.loads(dataset.agreement_report.read_text())
    assert set(report["per_annotator"]) == set(votes["annotator_id"]), "the card's statistics: the same table"
    assert "@" not in dataset.agreement_report.read_text()


def test_flattened_exports_lose_cancelled_and_unannotated_rows(dataset, tmp_path):
    rows = [{**{"video": "x", "video_id": v, "stage": "label"}, "id": i, "emotion": lab, "annotator": 2,
             "annotation_id": 10 + i, "created_at": "2025-03-04T10:11:12Z", "lead_time": 3.0}
            for i, (v, lab) in enumerate(zip(VIDEOS, LABELS, strict=True))]  # fmt: skip
    rows.append({"video": "x", "video_id": "v1", "stage": "label", "id": 9, "annotator": None, "annotation_id": None})
    rows.append({**rows[0], "annotator": 3, "annotation_id": 30, "emotion": {"choices": ["Fear", "Tension"]}})
    (tmp_path / "min.json").write_text(json.dumps(rows))
    read = read_outside_votes(tmp_path / "min.json", EMOTIONS6)
    assert len(read.votes) == 3 and set(read.votes["annotator_id"]) == {"#2"}
    assert read.left_out == {"tasks without an annotation": 1, "more than one emotion chosen": 1}
    assert set(check_against_dataset(dataset, read).votes["annotator_id"]) == {"ann0"}
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("video_id,annotator_id,label,was_cancelled\nv1,ann0,Fear,false\nv1,ann1,,true\nv2,ann0,Fear,\n")
    notes: list[str] = []
    assert len(read_votes(sheet, EMOTIONS6, notes=notes)) == 2, "a cancelled row is no vote, even without a label"
    assert notes == [f"{sheet}: 1 skipped or cancelled annotation(s) left out (no votes)"]


def test_an_empty_cell_is_named_by_the_row_the_user_counts_and_its_column(tmp_path):
    sheet = tmp_path / "votes.csv"
    sheet.write_text("video_id,annotator_id,stage,label\nv1,a1,label,Fear\nv1,a2,crosscheck,\nv2,a1,label,\n")
    with pytest.raises(ValueError, match=r"votes.csv: row 3: empty label$"):
        read_votes(sheet)
    with pytest.raises(ValueError, match=r"votes.csv: row 4: empty label$"):
        read_votes(sheet, stage="label")  # the rows of other stages still count in the numbering
    table = tmp_path / "votes.parquet"
    pd.DataFrame({"video_id": ["v1", "v2"], "annotator_id": ["a1", None], "label": ["Fear", "Fear"]}).to_parquet(table)
    with pytest.raises(ValueError, match=r"votes.parquet: row 2: empty annotator_id$"):
        read_votes(table)


def test_labels_that_differ_only_by_form_or_case_are_one_class_with_a_warning(tmp_path):
    sheet = tmp_path / "votes.csv"
    sheet.write_text(
        "video_id,annotator_id,label\nv1,a,FEAR\nv1,b,ＦＥＡＲ\nv2,a,FEAR\nv2,b,fear\nv3,a,Joy\nv3,b,Joy\n"
    )
    notes: list[str] = []
    votes = read_votes(sheet, notes=notes)
    assert sorted(votes["label"].unique()) == ["FEAR", "Joy"]
    assert notes == [f"{sheet}: labels that differ only by form or case counted as one class 'FEAR': 'FEAR' (2), "
                     "'fear' (1), 'ＦＥＡＲ' (1)"]  # fmt: skip
    fullwidth = tmp_path / "wide.csv"
    fullwidth.write_text("video_id,annotator_id,label\nv1,a,Ｆｅａｒ\nv1,b,Ｓａｄ\n")
    assert list(read_votes(fullwidth, EMOTIONS6)["label"]) == ["Fear", "Sadness"], "NFKC before the taxonomy"


def test_a_release_refuses_labels_of_another_table_or_of_votes_changed_since(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOTIONS_RELEASE_KEY", raising=False)
    layout, votes = released_dataset(tmp_path / "ds")
    sheet = tmp_path / "sheet.csv"
    votes.to_csv(sheet, index=False)
    with pytest.raises(ValueError, match=r"3 annotator id\(s\) not on the dataset's roster"):
        decide_labels(layout, EMOTIONS6, votes=sheet, n_bootstrap=0)
    decide_labels(layout, EMOTIONS6, votes=sheet, n_bootstrap=0, pseudonymise=True)
    with pytest.raises(ValueError, match=r"decided from .*sheet.csv, not the dataset's vote table.*votes import"):
        write_release(layout, "0.1.0", votes=read_counted_votes(layout, EMOTIONS6))
    import_votes(layout, sheet, EMOTIONS6, pseudonymise=True)
    decide_labels(layout, EMOTIONS6, n_bootstrap=0)
    late = tmp_path / "late.csv"
    late.write_text(f"video_id,annotator_id,label\n{votes['video_id'][0]},late@example.org,{votes['label'][0]}\n")
    import_votes(layout, late, EMOTIONS6, pseudonymise=True)
    with pytest.raises(ValueError, match=r"decided from other votes than the dataset's vote table counts now"):
        write_release(layout, "0.1.0", votes=read_counted_votes(layout, EMOTIONS6))
    decide_labels(layout, EMOTIONS6, n_bootstrap=0)
    assert write_release(layout, "0.1.0", votes=read_counted_votes(layout, EMOTIONS6)).exists()

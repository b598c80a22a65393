"""Vetting against what push made (pure): task records, held annotations, ambiguous and oversized answers,
deletions only on confirmation and votes that come back. The same rules through the real Label Studio are in
test_vote_integrity_ls.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from annotation.labelstudio.interface import EMOTION, annotation_result
from annotation.task_record import TaskBook, TaskRecord, record_imported, task_findings
from annotation.vetting import MAX_RESULT_BYTES, Accounts, Reason, vet
from emotions_data.schema import VOTES_SCHEMA
from emotions_data.taxonomy import EMOTIONS6

PEOPLE = pd.DataFrame({"annotator_id": ["A1", "A2", "A3"], "role": ["annotator"] * 3, "group": ["A", "A", "A"],
                       "active": [True] * 3, "ls_user_id": [11, 12, 13]})  # fmt: skip
ACCOUNTS = Accounts({11: ("A1", "annotator"), 12: ("A2", "annotator"), 13: ("A3", "annotator")}, admin_id=1)
NOW = datetime(2026, 1, 2, tzinfo=UTC)
EMPTY = pd.DataFrame({n: pd.Series(dtype=object) for n in VOTES_SCHEMA.names})


def _ann(i: int, user: int, result: list | None = None) -> dict:
    at = f"2026-01-01T00:00:{i:02d}Z"
    return {"id": i, "completed_by": user, "updated_by": user, "result": result or annotation_result("Fear"),
            "created_at": at, "updated_at": at}  # fmt: skip


def _data(vid: str, **changes) -> dict:
    return {"video": f"/data/{vid}.mp4", "video_id": vid, "stage": "label", "items_of": "A", **changes}


def _plan(pid: int, annotator: str, videos: dict[str, int]) -> dict:
    return {"id": pid, "stage": "label", "annotator": annotator, "group": "A", "items_of": "A", "videos": videos}


def _vet(exports: dict, book: TaskBook | None, old: pd.DataFrame = EMPTY, **kw):
    return vet(old, exports, PEOPLE, ACCOUNTS, {"v1", "v2"}, EMOTIONS6, ("ls-x", "http://x"), NOW, book=book, **kw)


def _book(*tasks: tuple[int, str, int, str]) -> TaskBook:
    return TaskBook({tid: TaskRecord(key, pid, _data(vid)) for tid, key, pid, vid in tasks})


def test_an_imported_copy_of_a_task_counts_nothing_and_displaces_no_honest_vote():
    book = _book((1, "p1", 1, "v1"), (2, "p2", 2, "v1"), (3, "p3", 3, "v1"))
    copies = [{"id": 10 + i, "data": _data("v1"), "annotations": [_ann(i, 11)]} for i in range(3)]  # cast first
    exports = {
        "p1": (_plan(1, "A1", {"v1": 2}), [{"id": 1, "data": _data("v1"), "annotations": [_ann(20, 11)]}, *copies]),
        "p2": (_plan(2, "A2", {"v1": 2}), [{"id": 2, "data": _data("v1"), "annotations": [_ann(21, 12)]}]),
    }
    result = _vet(exports, book)
    assert sorted(result.votes["annotator_id"]) == ["A1", "A2"], "the honest votes fill the item's two places"
    assert {e.ls_annotation_id: e.reason for e in result.excluded} == {0: Reason.IMPORTED_TASK,
                                                                       1: Reason.IMPORTED_TASK,
                                                                       2: Reason.IMPORTED_TASK}  # fmt: skip
    findings = task_findings(book, exports, ACCOUNTS.name)
    assert [(f.kind, f.task_id) for f in findings] == [("imported", 10), ("imported", 11), ("imported", 12)]


def test_a_task_whose_data_changed_counts_nothing_and_the_annotation_is_held_for_good():
    book = _book((1, "p1", 1, "v1"), (2, "p1", 1, "v2"))
    tasks = [{"id": 1, "data": _data("v2"), "updated_by": [{"user_id": 11}], "annotations": [_ann(1, 11)]},
             {"id": 2, "data": _data("v2", round=2), "annotations": [_ann(2, 11)]}]  # fmt: skip
    exports = {"p1": (_plan(1, "A1", {"v1": 1, "v2": 1}), tasks)}
    result = _vet(exports, book)
    assert len(result.votes) == 0
    assert {e.ls_annotation_id: e.reason for e in result.excluded} == {1: Reason.TASK_CHANGED,
                                                                       2: Reason.TASK_CHANGED}  # fmt: skip
    assert "video_id" in result.excluded[0].detail and set(result.held) == {1, 2}
    [changed, *_] = task_findings(book, exports, ACCOUNTS.name)
    assert (changed.kind, changed.video_id, changed.fields, changed.updated_by) == ("changed", "v1", ["video",
                                                                                    "video_id"], "A1")  # fmt: skip
    book.held |= result.held  # the task's data are put back: the annotation stays out
    tasks[0]["data"], tasks[1]["data"] = _data("v1"), _data("v2")
    again = _vet(exports, book)
    assert len(again.votes) == 0 and {e.reason for e in again.excluded} == {Reason.TASK_CHANGED}
    assert "held out since" in again.excluded[0].detail


def test_a_vote_is_credited_to_the_video_push_recorded():
    book = _book((1, "p1", 1, "v1"))
    exports = {"p1": (_plan(1, "A1", {"v1": 1}), [{"id": 1, "data": _data("v1"), "annotations": [_ann(1, 11)]}])}
    assert list(_vet(exports, book).votes["video_id"]) == ["v1"]


def test_a_changed_project_holds_new_annotations_out():
    book = _book((1, "p1", 1, "v1"))
    exports = {"p1": (_plan(1, "A1", {"v1": 1}), [{"id": 1, "data": _data("v1"), "annotations": [_ann(1, 11)]}])}
    result = _vet(exports, book, drifted={"p1": ["expert_instruction"]})
    [e] = result.excluded
    assert e.reason == Reason.PROJECT_CHANGED and "expert_instruction" in e.detail and 1 in result.held


def test_two_choices_two_regions_and_an_oversized_answer_are_refused():
    two_choices = [
        {"from_name": EMOTION, "to_name": "video", "type": "choices", "value": {"choices": ["Fear", "Sadness"]}}
    ]
    two_regions = annotation_result("Fear") + annotation_result("Sadness")
    huge = annotation_result("Fear", comment="x" * (MAX_RESULT_BYTES + 1))
    book = _book((1, "p1", 1, "v1"), (2, "p1", 1, "v2"), (3, "p2", 2, "v1"))
    exports = {
        "p1": (_plan(1, "A1", {"v1": 2, "v2": 2}), [
            {"id": 1, "data": _data("v1"), "annotations": [_ann(1, 11, two_choices)]},
            {"id": 2, "data": _data("v2"), "annotations": [_ann(2, 11, two_regions)]}]),
        "p2": (_plan(2, "A2", {"v1": 2}), [{"id": 3, "data": _data("v1"), "annotations": [_ann(3, 12, huge)]}]),
    }  # fmt: skip
    result = _vet(exports, book)
    assert len(result.votes) == 0
    reasons = {e.ls_annotation_id: e.reason for e in result.excluded}
    assert reasons == {1: Reason.AMBIGUOUS, 2: Reason.AMBIGUOUS, 3: Reason.TOO_LARGE}


def test_a_missing_annotation_is_deleted_only_when_confirmed_and_comes_back_when_it_reappears():
    book = _book((1, "p1", 1, "v1"), (2, "p1", 1, "v2"))
    full = [{"id": 1, "data": _data("v1"), "annotations": [_ann(1, 11)]},
            {"id": 2, "data": _data("v2"), "annotations": [_ann(2, 11)]}]  # fmt: skip
    plan = _plan(1, "A1", {"v1": 1, "v2": 1})
    first = _vet({"p1": (plan, full)}, book).votes
    empty = _vet({"p1": (plan, [])}, book, first, gone=set())
    assert empty.n_deleted == 0 and set(empty.votes["status"]) == {"kept"}, "an empty export proves nothing"
    deleted = _vet({"p1": (plan, full[1:])}, book, first, gone={1})
    assert deleted.n_deleted == 1 and deleted.history[0]["by"] == "unknown"
    back = _vet({"p1": (plan, full)}, book, deleted.votes, gone=set())
    assert back.n_restored == 1 and set(back.votes["status"]) == {"kept"}
    assert [h["event"] for h in back.history] == ["restored"]


def test_push_records_only_the_tasks_it_sent():
    book = TaskBook()
    now = [{"id": 5, "data": _data("v0")}, {"id": 6, "data": _data("v1")}, {"id": 7, "data": _data("v2", x=1)}]
    strangers = record_imported(book, "p1", 1, {5}, now, [{"data": _data("v1")}, {"data": _data("v2")}])
    assert set(book.tasks) == {6} and strangers == [7]

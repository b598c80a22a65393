"""Label Studio exports shaped as Label Studio 1.x writes them (Export > JSON: the list of tasks with their
annotations, predictions and drafts; JSON-MIN: one flat record per annotation), for the tests of votes from
outside."""

from __future__ import annotations

from typing import Any

STAMP = "2025-03-04T10:11:12.345678Z"


def region(label: str, *more: str) -> dict[str, Any]:
    """The emotion control's result region choosing `label` (and `more`, an ambiguous answer)."""
    return {"value": {"choices": [label, *more]}, "id": "r" + label[:4], "from_name": "emotion", "to_name": "video",
            "type": "choices", "origin": "manual"}  # fmt: skip


def annotation(ann_id: int, user: int | dict, label: str | None, *, cancelled: bool = False, more=()) -> dict:
    """One annotation as the export lists it; `user` a bare user id or the expanded user (`completed_by` with
    `annotations__completed_by` not `only_id`)."""
    result = [] if label is None else [region(label, *more)]
    return {
        "id": ann_id, "completed_by": user, "result": result, "was_cancelled": cancelled, "ground_truth": False,
        "created_at": STAMP, "updated_at": STAMP, "draft_created_at": None, "lead_time": 4.2, "prediction": {},
        "result_count": len(result), "unique_id": f"u-{ann_id}", "import_id": None, "last_action": None,
        "bulk_created": False, "task": 0, "project": 7, "updated_by": user if isinstance(user, int) else user["id"],
        "parent_prediction": None, "parent_annotation": None, "last_created_by": None,
    }  # fmt: skip


def task(task_id: int, data: dict, annotations: list[dict], predictions=(), drafts=()) -> dict:
    """One exported task; `predictions` and `drafts` are (id, label) pairs."""
    for ann in annotations:
        ann["task"] = task_id
    return {
        "id": task_id, "data": data, "annotations": annotations,
        "predictions": [{"id": i, "model_version": "m1", "score": 0.9, "result": [region(lab)], "task": task_id}
                        for i, lab in predictions],
        "drafts": [{"id": i, "user": "someone@example.org", "result": [region(lab)], "lead_time": 1.0,
                    "created_at": STAMP, "updated_at": STAMP} for i, lab in drafts],
        "meta": {}, "created_at": STAMP, "updated_at": STAMP, "inner_id": task_id,
        "total_annotations": sum(not a["was_cancelled"] for a in annotations),
        "cancelled_annotations": sum(a["was_cancelled"] for a in annotations),
        "total_predictions": len(predictions), "comment_count": 0, "unresolved_comment_count": 0,
        "last_comment_updated_at": None, "project": 7, "updated_by": None, "file_upload": None, "comment_authors": [],
    }  # fmt: skip


def video_data(video_id: str, stage: str = "label") -> dict:
    """A task's data as the toolkit's push writes it."""
    return {"video": f"http://127.0.0.1:9/media/{video_id}.mp4", "video_id": video_id, "stage": stage,
            "items_of": "A"}  # fmt: skip


def outside_export(videos: list[str], labels: list[str], unknown_video: str = "v-not-here") -> list[dict]:
    """An export with, per video in `videos`, the vote of Label Studio user 2 (bare id), of the toolkit's login
    `ann1@annotators.invalid` (expanded) and of someone not on any roster (`Jane Doe`, expanded with her e-mail),
    all for the video's label in `labels`; plus on the first video a cancelled annotation, a prediction and a draft
    (other labels), a task of a video the dataset does not have, a task naming no video, an ambiguous answer and a
    task with only a prediction."""
    jane = {"id": 9, "email": "jane.doe@example.org", "first_name": "Jane", "last_name": "Doe"}
    ann1 = {"id": 3, "email": "ann1@annotators.invalid", "first_name": "", "last_name": ""}
    other = {"Fear": "Sadness"}
    tasks, ann_id = [], 100
    for n, (vid, lab) in enumerate(zip(videos, labels, strict=True)):
        anns = [annotation(ann_id, 2, lab), annotation(ann_id + 1, ann1, lab), annotation(ann_id + 2, jane, lab)]
        extra: dict[str, Any] = {}
        if n == 0:
            anns.append(annotation(ann_id + 3, 4, other.get(lab, "Fear"), cancelled=True))
            extra = {"predictions": [(1, other.get(lab, "Fear"))], "drafts": [(2, other.get(lab, "Fear"))]}
        tasks.append(task(n + 1, video_data(vid), anns, **extra))
        ann_id += 10
    start = len(tasks) + 1
    tasks.append(task(start, video_data(unknown_video), [annotation(1, 2, "Fear")]))
    tasks.append(task(start + 1, {"image": "http://127.0.0.1:9/x.jpg"}, [annotation(2, 2, "Fear")]))
    tasks.append(task(start + 2, video_data(videos[0]), [annotation(3, 5, "Fear", more=("Tension",))]))
    tasks.append(task(start + 3, video_data(videos[1]), [], predictions=[(3, "Fear")]))
    return tasks

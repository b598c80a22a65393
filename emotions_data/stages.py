"""The work of the two expensive pipeline stages, as it runs inside a worker process.

`run_shard` is the one function every executor backend runs. It processes a shard's items and
commits their rows in one atomic write, so a worker lost midway leaves its items pending, never
half-recorded. Kept free of pandas: a spawned worker imports only what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from emotions_data.download import DOWNLOADER, DownloadFailure, download
from emotions_data.layout import DatasetLayout
from emotions_data.normalise import NormaliseError, normalise, recipe_id
from emotions_data.probe import ProbeError, probe_file, sha256_file
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA, Reason, Status, empty_row
from emotions_data.settings import IngestSettings
from emotions_data.storage import StageLog

FETCH = "fetch"
NORMALISE = "normalise"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class ShardJob:
    """A batch of items for one stage; picklable, so any executor backend can run it."""

    stage: str
    dataset_dir: str
    items: tuple[dict, ...]
    settings: IngestSettings
    sequence: int | None = None  # the stage log's commit order, handed out by the driver (`StageLog.next_sequence`)


def _fetch_item(layout: DatasetLayout, item: dict, settings: IngestSettings) -> dict:
    row = empty_row(PROBE_STAGE_SCHEMA)
    row.update(video_id=item["video_id"], processed_at=_now(), attempts=(item.get("attempts") or 0) + 1)

    def outcome(status: Status, reason: Reason | None = None, detail: str | None = None, retry=False) -> dict:
        row.update(status=str(status), reason=reason and str(reason), reason_detail=detail, retryable=retry)
        return row

    if item["source_kind"] == "url":
        for stale in layout.originals_of(item["video_id"]):
            stale.unlink()
        try:
            got = download(
                item["source"],
                layout.originals / item["video_id"],
                layout.downloads / item["video_id"],
                settings.download,
                layout.rate_locks,
            )
        except DownloadFailure as exc:
            row["attempts"] = (item.get("attempts") or 0) + exc.attempts
            return outcome(Status.FAILED, Reason.DOWNLOAD_ERROR, str(exc), exc.retryable)
        path = got.path
        row["attempts"] = (item.get("attempts") or 0) + got.attempts
        row.update(
            original_path=layout.relative(path),
            downloader=DOWNLOADER,
            downloader_version=got.downloader_version,
            extractor=got.extractor,
        )
    else:
        path = Path(item["source"])
        if not path.is_file():
            return outcome(Status.FAILED, Reason.SOURCE_MISSING, f"{path}: no such file", retry=True)
    try:
        facts = probe_file(path)
    except ProbeError as exc:
        row.update(size_bytes=path.stat().st_size, sha256=sha256_file(path))
        return outcome(Status.REJECTED, Reason.CORRUPT, f"unreadable: {exc}")
    row.update({k: v for k, v in facts.as_dict().items() if k in row})
    row["sha256"] = sha256_file(path)
    return outcome(Status.OK)


def _normalise_item(layout: DatasetLayout, item: dict, settings: IngestSettings) -> dict:
    row = empty_row(NORMALISE_STAGE_SCHEMA)
    row.update(
        video_id=item["video_id"],
        sha256=item["sha256"],
        recipe=recipe_id(settings.normalise),
        processed_at=_now(),
        attempts=(item.get("attempts") or 0) + 1,
    )
    target = layout.media_file(item["video_id"])
    try:
        media = normalise(Path(item["path"]), target, item["source"], settings.normalise, settings.filters)
    except NormaliseError as exc:
        status, reason = (Status.REJECTED, Reason.CORRUPT) if exc.corrupt else (Status.FAILED, Reason.NORMALISE_ERROR)
        row.update(status=str(status), reason=str(reason), reason_detail=str(exc), retryable=not exc.corrupt)
        return row
    row.update(
        status=str(Status.OK),
        retryable=False,
        media_path=layout.relative(target),
        media_sha256=media.sha256,
        media_duration_s=media.duration_s,
        media_width=media.width,
        media_height=media.height,
        media_fps=media.fps,
        fingerprint=media.fingerprint,
    )
    return row


_STAGES = {
    FETCH: (_fetch_item, lambda layout: StageLog(layout.fetch_log, PROBE_STAGE_SCHEMA)),
    NORMALISE: (_normalise_item, lambda layout: StageLog(layout.normalise_log, NORMALISE_STAGE_SCHEMA)),
}


def run_shard(job: ShardJob) -> list[dict]:
    """Process every item of a shard, then commit the shard's rows in one atomic write."""
    layout = DatasetLayout(Path(job.dataset_dir))
    process_item, stage_log = _STAGES[job.stage]
    rows = [process_item(layout, item, job.settings) for item in job.items]
    stage_log(layout).commit(rows, job.sequence)
    return rows

"""The work of the two expensive pipeline stages, as it runs inside a worker process.

`run_shard` is the one function every executor backend runs. It processes a shard's items and
commits their rows in one atomic write, so a worker lost midway leaves its items pending, never
half-recorded. Kept free of pandas: a spawned worker imports only what it needs.

Whatever an item raises becomes that item's failure row; only a fault of this machine (`LocalFault`:
a full disk, an unwritable folder) stops the shard, and the items it had not finished get no row, so the
next run does them. Only plain values leave a worker: rows, or an exception of ours holding messages.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from emotions_data.download import DOWNLOADER, DownloadFailure, download, resolve, throttle
from emotions_data.faults import LocalFault, as_local_fault, local_fault
from emotions_data.layout import DatasetLayout
from emotions_data.location import LocalLocation, open_location
from emotions_data.normalise import NormaliseError, fingerprint_file, normalise, recipe_id, tone_map_filter
from emotions_data.platforms import platform_facts, write_info_json
from emotions_data.probe import ProbeError, probe_file, sha256_file
from emotions_data.schema import (
    NORMALISE_STAGE_SCHEMA,
    PROBE_STAGE_SCHEMA,
    RESOLVE_STAGE_SCHEMA,
    Reason,
    Status,
    empty_row,
)
from emotions_data.settings import IngestSettings
from emotions_data.storage import StageLog

RESOLVE = "resolve"
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


_FILE_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}  # fmt: skip


def source_problem(path: Path) -> str | None:
    """Why the local source file `path` cannot be read, in a few words, else None. Never blocks: a FIFO is
    recognised before anything opens it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "dangling symbolic link" if path.is_symlink() else "no such file"
    except OSError as exc:  # a symlink loop, a name too long
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file ({_FILE_KINDS.get(stat.S_IFMT(info.st_mode), 'a special file')})"
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _resolve_item(layout: DatasetLayout, item: dict, settings: IngestSettings) -> dict:
    """Which platform video a URL item names (no download): a share link is followed, once."""
    row = empty_row(RESOLVE_STAGE_SCHEMA)
    row.update(video_id=item["video_id"], processed_at=_now(), attempts=(item.get("attempts") or 0) + 1)
    workdir = layout.downloads / item["video_id"]

    def before_request() -> None:
        if settings.download.max_requests_per_minute:
            throttle(item["source"], layout.rate_locks, settings.download.max_requests_per_minute)

    tries = max(1, settings.download.attempts)
    for attempt in range(1, tries + 1):  # transient failures are retried with backoff, as downloads are
        row["attempts"] = (item.get("attempts") or 0) + attempt
        try:
            found = resolve(item["source"], workdir, settings.download, before_request)
        except DownloadFailure as exc:
            if exc.retryable and attempt < tries:
                time.sleep(settings.download.backoff_s * 2 ** (attempt - 1))
                continue
            row.update(status=str(Status.FAILED), reason=exc.reason, reason_detail=str(exc), retryable=exc.retryable)
            return row
        finally:
            with contextlib.suppress(OSError):
                workdir.rmdir()
        break
    row.update(status=str(Status.OK), retryable=False)
    if found is not None:
        row.update(resolved_platform=found.platform, platform_video_id=found.platform_video_id,
                   resolved_url=found.url, extractor=found.extractor)  # fmt: skip
    return row


def _resolve_failed(item: dict, settings: IngestSettings, detail: str) -> dict:
    row = empty_row(RESOLVE_STAGE_SCHEMA)
    row.update(video_id=item["video_id"], status=str(Status.FAILED), reason=str(Reason.DOWNLOAD_ERROR),
               reason_detail=detail, retryable=False, processed_at=_now(),
               attempts=(item.get("attempts") or 0) + 1)  # fmt: skip
    return row


def _fetch_item(layout: DatasetLayout, item: dict, settings: IngestSettings) -> dict:
    row = empty_row(PROBE_STAGE_SCHEMA)
    row.update(video_id=item["video_id"], processed_at=_now(), attempts=(item.get("attempts") or 0) + 1)

    def outcome(status: Status, reason: Reason | None = None, detail: str | None = None, retry=False) -> dict:
        row.update(status=str(status), reason=reason and str(reason), reason_detail=detail, retryable=retry)
        return row

    if item["source_kind"] == "url":
        try:
            for stale in layout.originals_of(item["video_id"]):
                stale.unlink()
        except OSError as exc:
            raise as_local_fault(exc, layout.originals) from None
        try:
            got = download(
                item.get("fetch_url") or item["source"],  # a share link's target, found by the resolve stage
                layout.originals / item["video_id"],
                layout.downloads / item["video_id"],
                settings.download,
                layout.rate_locks,
            )
        except DownloadFailure as exc:
            row["attempts"] = (item.get("attempts") or 0) + exc.attempts
            row["download_warnings"] = list(exc.warnings) or None
            return outcome(Status.FAILED, Reason(exc.reason), str(exc), exc.retryable)
        path = got.path
        row["attempts"] = (item.get("attempts") or 0) + got.attempts
        row.update(
            original_path=layout.relative(path),
            downloader=DOWNLOADER,
            downloader_version=got.downloader_version,
            extractor=got.extractor,
            download_warnings=list(got.warnings) or None,
        )
        if got.info is not None:
            row.update(platform_facts(got.info, got.extractor))
            info_path = layout.info_json(item["video_id"])
            try:
                write_info_json(info_path, got.info)
            except OSError as exc:
                raise as_local_fault(exc, layout.platform_info) from None
            row["info_json_path"] = layout.relative(info_path)
    else:
        path = Path(item["source"])
        problem = source_problem(path)
        if problem:  # retried on the next run: the user may fix the file, and a local retry costs little
            return outcome(Status.FAILED, Reason.SOURCE_MISSING, f"{path}: {problem}", retry=True)
    try:
        try:
            facts = probe_file(path)
        except ProbeError as exc:
            row.update(size_bytes=path.stat().st_size, sha256=sha256_file(path))
            return outcome(Status.REJECTED, Reason.CORRUPT, f"unreadable: {exc}")
        row.update({k: v for k, v in facts.as_dict().items() if k in row})
        row["sha256"] = sha256_file(path)
    except OSError as exc:
        if item["source_kind"] == "url":  # our own copy in originals/
            raise as_local_fault(exc, layout.originals) from None
        fault = local_fault(exc, path.parent, ours=[layout.root])
        if fault is not None:
            raise fault from None
        return outcome(Status.FAILED, Reason.SOURCE_MISSING, f"{path}: cannot read: {exc.strerror or exc}", retry=True)
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
    kept = item.get("kept_media")
    fingerprint = _fingerprint_again(layout, item, kept) if kept else None
    if fingerprint is not None:
        row.update(status=str(Status.OK), retryable=False, **kept, fingerprint=fingerprint)
        return row
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
        media_fps_reason=media.fps_reason,
    )
    return row


def _fingerprint_again(layout: DatasetLayout, item: dict, kept: dict) -> str | None:
    """A new fingerprint for media made with the same settings under an older fingerprint version: from the
    normalised file when it is there unchanged (its sha256 as recorded), else from the original (a near-duplicate's
    media is removed); None when neither can be decoded, so the item is normalised again."""
    media = layout.root / kept["media_path"]
    source = item["source"]
    try:
        if media.is_file() and sha256_file(media) == kept["media_sha256"]:
            return fingerprint_file(media, kept["media_duration_s"] or source.duration_s, source.has_audio)
        original = Path(item["path"])
        if original.is_file():
            tone_map = tone_map_filter(source.transfer, source.primaries)
            return fingerprint_file(original, source.duration_s, source.has_audio, tone_map, source.audio_track)
    except (NormaliseError, OSError):
        return None  # the transcode below then makes both again
    return None


def _fetch_failed(item: dict, settings: IngestSettings, detail: str) -> dict:
    row = empty_row(PROBE_STAGE_SCHEMA)
    reason = Reason.DOWNLOAD_ERROR if item["source_kind"] == "url" else Reason.SOURCE_MISSING
    row.update(video_id=item["video_id"], status=str(Status.FAILED), reason=str(reason), reason_detail=detail,
               retryable=False, processed_at=_now(), attempts=(item.get("attempts") or 0) + 1)  # fmt: skip
    return row


def _normalise_failed(item: dict, settings: IngestSettings, detail: str) -> dict:
    row = empty_row(NORMALISE_STAGE_SCHEMA)
    row.update(video_id=item["video_id"], sha256=item["sha256"], recipe=recipe_id(settings.normalise),
               status=str(Status.FAILED), reason=str(Reason.NORMALISE_ERROR), reason_detail=detail, retryable=False,
               processed_at=_now(), attempts=(item.get("attempts") or 0) + 1)  # fmt: skip
    return row


ProcessItem = Callable[[DatasetLayout, dict, IngestSettings], dict]
FailedRow = Callable[[dict, IngestSettings, str], dict]

_STAGES: dict[str, tuple[ProcessItem, FailedRow, Callable[[LocalLocation], StageLog]]] = {
    RESOLVE: (_resolve_item, _resolve_failed, lambda at: at.stage_log(at.layout.resolve_log, RESOLVE_STAGE_SCHEMA)),
    FETCH: (_fetch_item, _fetch_failed, lambda at: at.stage_log(at.layout.fetch_log, PROBE_STAGE_SCHEMA)),
    NORMALISE: (
        _normalise_item,
        _normalise_failed,
        lambda at: at.stage_log(at.layout.normalise_log, NORMALISE_STAGE_SCHEMA),
    ),
}


def _process(
    process_item: ProcessItem, failed: FailedRow, layout: DatasetLayout, item: dict, settings: IngestSettings
) -> dict:
    """One item's row, whatever it raises: the stages record the failures they expect themselves; anything
    else is this item's permanent failure with the error's one-line text (`--retry-permanent` retries it),
    except a fault of this machine, which is raised as `LocalFault`."""
    try:
        return process_item(layout, item, settings)
    except LocalFault:
        raise
    except Exception as exc:
        fault = local_fault(exc, layout.root, ours=[layout.root])
        if fault is not None:
            raise fault from None
        return failed(item, settings, f"unexpected error: {_one_line(exc)}")


def _store_step(location: LocalLocation, step: Callable[[dict], object], value: dict):
    """A step that moves files to or from the dataset's store: its failures are this run's storage fault (as a full
    disk is), never the item's."""
    try:
        return step(value)
    except LocalFault:
        raise
    except OSError as exc:
        raise LocalFault(location.url, f"cannot move files to or from the dataset: {_one_line(exc)}") from None


def run_shard(job: ShardJob) -> list[dict]:
    """Process every item of a shard, then commit the shard's rows in one atomic write.

    Raises `LocalFault` (plain strings, so it crosses to the driver intact) when this machine cannot store the
    work: the rows finished before it are committed if the disk still takes them, the others are left to the
    next run."""
    location = open_location(job.dataset_dir)
    layout = location.layout
    process_item, failed, stage_log = _STAGES[job.stage]
    log = stage_log(location)
    rows: list[dict] = []
    try:
        for item in job.items:
            # A dataset in object storage: the input comes down to this host, the row's files go up before the
            # shard that names them is committed.
            local = _store_step(location, location.localise, item)
            row = _process(process_item, failed, layout, local, job.settings)
            _store_step(location, location.publish, row)
            location.discard_local(item)
            rows.append(row)
    except LocalFault:
        if rows:
            with contextlib.suppress(OSError):  # the same fault may refuse this too; the items are then redone
                log.commit(rows, job.sequence)
        raise
    try:
        log.commit(rows, job.sequence)
    except OSError as exc:
        raise as_local_fault(exc, log.folder) from None
    return rows

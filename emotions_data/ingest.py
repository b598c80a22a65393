"""The ingest pipeline: sources -> resolve (which platform video) -> fetch and probe -> filters -> exact duplicates
-> normalise and fingerprint -> near-duplicates -> `manifests/videos.parquet`.

The two expensive stages (fetch/probe, normalise) run as shard jobs on an `Executor`; each job
commits its rows to a `StageLog` when it finishes. Filters and duplicate decisions are cheap pure
functions recomputed on every run from the committed facts, so a run killed at any moment and
started again, or re-run with new filter settings, converges on the same manifest.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data import dedup, fingerprint
from emotions_data.executor import Executor, make_executor
from emotions_data.faults import LocalFault, as_local_fault, local_fault
from emotions_data.filters import check_filters
from emotions_data.layout import DatasetLayout
from emotions_data.location import LocalLocation, ObjectLocation, open_location
from emotions_data.manifest import check_schema_version, read_versioned_table
from emotions_data.normalise import SourceVideo, older_recipes, recipe_id
from emotions_data.platforms import platform_of_extractor, uploader_group
from emotions_data.schema import (
    INPUTS_SCHEMA,
    NORMALISE_STAGE_SCHEMA,
    PROBE_STAGE_SCHEMA,
    RESOLVE_STAGE_SCHEMA,
    VIDEOS_SCHEMA,
    Reason,
    Status,
    empty_row,
)
from emotions_data.settings import IngestSettings
from emotions_data.sources import InputItem, SourceError, read_sources
from emotions_data.stages import FETCH, NORMALISE, RESOLVE, ShardJob, run_shard
from emotions_data.storage import StageLog, write_table_atomic

ProgressFn = Callable[[str, int, int], None]  # (stage, items done, items in stage)


@dataclass
class IngestReport:
    n_inputs: int
    n_processed: dict[str, int]  # per stage, this run
    elapsed_s: float
    status_counts: dict[str, int]
    reason_counts: dict[str, dict[str, int]]  # status -> reason -> count, for the non-ok rows
    media_seconds: float  # total duration of ok media
    swept_temporaries: int = 0
    settings: dict | None = None  # the ingest settings of the run, secrets left out

    @property
    def throughput(self) -> float:
        """Input items per second of this run (fetch stage)."""
        return self.n_processed.get(FETCH, 0) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "throughput_items_per_s": round(self.throughput, 3)}, indent=2)


def register_inputs(layout: DatasetLayout, items: Sequence[InputItem]) -> pd.DataFrame:
    """Add new items to the dataset's input register (kept across runs) and return all of it."""
    existing = pq.read_table(layout.inputs).to_pandas() if layout.inputs.exists() else None
    known_source: dict[str, str] = {}
    known_id: dict[str, str] = {}
    next_index = 0
    if existing is not None and len(existing):
        known_source = dict(zip(existing["source"], existing["video_id"], strict=True))
        known_id = dict(zip(existing["video_id"], existing["source"], strict=True))
        next_index = int(existing["input_index"].max()) + 1
    new_rows = []
    for item in items:
        if item.source in known_source:
            continue
        if item.video_id in known_id:
            raise SourceError(
                f"video_id {item.video_id!r} of {item.source} is already used in this dataset "
                f"by {known_id[item.video_id]}"
            )
        known_id[item.video_id] = item.source
        new_rows.append(
            {
                "video_id": item.video_id,
                "source": item.source,
                "source_kind": item.source_kind,
                "input_index": next_index,
                "platform": item.platform,
                "uploader": item.uploader,
                **item.extra,
            }
        )
        next_index += 1
    if not new_rows and existing is not None:
        return existing
    added = pd.DataFrame(new_rows, columns=None if new_rows else INPUTS_SCHEMA.names)  # no rows: still the columns
    frame = added if existing is None else pd.concat([existing, added])
    frame = frame.reset_index(drop=True)
    base = pa.Table.from_pandas(frame[INPUTS_SCHEMA.names], schema=INPUTS_SCHEMA, preserve_index=False)
    extras = [c for c in frame.columns if c not in INPUTS_SCHEMA.names]
    table = base
    for col in extras:
        table = table.append_column(col, pa.array(frame[col].astype(object).where(frame[col].notna(), None)))
    write_table_atomic(layout.inputs, table)
    return frame


def _shard_size(settings: IngestSettings, n_items: int, workers: int | None = None) -> int:
    """`workers`: how many jobs the executor runs at once (a Ray cluster's CPUs), else `settings.workers`."""
    if settings.shard_size > 0:
        return settings.shard_size
    return max(1, min(16, math.ceil(n_items / ((workers or settings.workers) * 4))))


def _run_stage(
    stage: str,
    items: list[dict],
    location: LocalLocation,
    settings: IngestSettings,
    executor: Executor,
    progress: ProgressFn | None,
    log: StageLog,
) -> int:
    workers = getattr(executor, "workers", None) if items else None  # asking a Ray executor connects to Ray
    size = _shard_size(settings, len(items), workers)
    sequence = log.next_sequence()  # one for the whole batch: items are unique within it
    jobs = [
        ShardJob(stage, location.url, tuple(items[i : i + size]), settings, sequence)
        for i in range(0, len(items), size)
    ]
    done = finished = 0
    if progress:
        progress(stage, 0, len(items))
    for rows in executor.map_unordered(run_shard, jobs):
        done, finished = done + len(rows), finished + 1
        if progress:
            progress(stage, done, len(items))
    _check_batch_visible(location, log, sequence, finished)
    return done


def _check_batch_visible(location: LocalLocation, log: StageLog, sequence: int, finished: int) -> None:
    """Raise `LocalFault` when fewer shards of the batch are visible here than jobs reported committing one: on a
    cluster the workers then store somewhere other than the driver (a node with its own AWS_ENDPOINT_URL or
    credentials, or a different filesystem mounted at the dataset's path), and the run would end with its items
    silently unprocessed."""
    visible = log.count_batch(sequence) if finished else 0
    if visible < finished:
        raise LocalFault(
            location.url,
            f"{finished - visible} of {finished} finished jobs committed results this driver cannot see: the workers "
            "store to another place than the driver",
            "give every node the same storage settings as the driver (AWS_ENDPOINT_URL and credentials for object "
            "storage, the same mount for a folder)",
        )


def _needs_fetch(row: dict | None, retry_permanent: bool) -> bool:
    if row is None:
        return True
    return row["status"] == Status.FAILED and (row["retryable"] or retry_permanent)


def _probe_source_path(layout: DatasetLayout, inp: dict, fetched: dict) -> str:
    return str(layout.root / fetched["original_path"]) if fetched.get("original_path") else inp["source"]


def _candidates_for_media(
    inputs: list[dict], fetched: dict[str, dict], settings: IngestSettings
) -> tuple[dict[str, tuple[Reason, str]], dict[str, str], list[dict]]:
    """Filter rejections, exact duplicates, and the items that should get media."""
    rejections: dict[str, tuple[Reason, str]] = {}
    passing = []
    for inp in inputs:
        row = fetched.get(inp["video_id"])
        if row is None or row["status"] != Status.OK:
            continue
        rejection = check_filters(row, settings.filters)
        if rejection:
            rejections[inp["video_id"]] = rejection
        else:
            passing.append(inp)
    exact = dedup.exact_duplicates(
        [(i["video_id"], i["input_index"], fetched[i["video_id"]]["sha256"]) for i in passing]
    )
    return rejections, exact, [i for i in passing if i["video_id"] not in exact]


def _needs_media(present: set[str], row: dict | None, sha: str, recipe: str, retry_permanent: bool) -> bool:
    """`present`: the dataset's media files (`location.files_under`), listed once per pass."""
    if row is None or row["sha256"] != sha or row["recipe"] != recipe:
        return True
    if row["status"] == Status.OK:
        return row["media_path"] not in present
    return row["status"] == Status.FAILED and (row["retryable"] or retry_permanent)


def ingest(
    sources: Sequence[str | Path] | Sequence[InputItem],
    dataset_dir: Path,
    settings: IngestSettings | None = None,
    *,
    executor: Executor | None = None,
    progress: ProgressFn | None = None,
    retry_permanent: bool = False,
) -> IngestReport:
    """Ingest `sources` (SOURCE arguments or ready InputItems) into `dataset_dir`. Resumable.

    Raises `SourceError` (a SOURCE or one of its rows is unusable), `ManifestVersionError` (the dataset's manifest
    was written by a newer emotions), `LocalFault` (this machine cannot store the work: full disk, read-only or
    unwritable folder; committed work is kept and unfinished items are done by the next run), ValueError
    (`dataset_dir` is not a folder), RuntimeError (another run holds the dataset), `ExecutorError`."""
    settings = settings or IngestSettings()
    if executor is None:
        with make_executor("local", settings.workers) as own:
            return ingest(sources, dataset_dir, settings, executor=own, progress=progress,
                          retry_permanent=retry_permanent)  # fmt: skip
    location = open_location(dataset_dir)  # a folder, or s3://bucket/prefix
    layout = location.layout
    items = [s for s in sources if isinstance(s, InputItem)]
    if len(items) != len(sources):
        items = read_sources(list(sources))  # type: ignore[arg-type]
    if not isinstance(location, ObjectLocation):  # an object store has no folders to be files instead
        if layout.root.exists() and not layout.root.is_dir():
            raise ValueError(f"{layout.root}: not a folder (the dataset folder is created, or an existing one reused)")
        _check_existing_manifest(layout)
    try:
        return _ingest_locked(location, items, settings, executor, progress, retry_permanent)
    except OSError as exc:
        # The driver only writes the dataset's own files: a fault there is the machine's, not an item's.
        fault = local_fault(exc, layout.root)
        if fault is None:
            raise
        raise fault from None


def _check_existing_manifest(layout: DatasetLayout) -> None:
    """Refuse, before anything changes, a dataset whose manifest a newer emotions wrote (this run would rewrite
    it as an older version). An unreadable manifest is left to be rewritten: it is made from `.work/` each run."""
    try:
        schema = pq.read_schema(layout.videos_manifest)
    except (OSError, pa.ArrowInvalid):
        return
    check_schema_version(layout.videos_manifest, schema)


def _ingest_locked(
    location: LocalLocation,
    items: list[InputItem],
    settings: IngestSettings,
    executor: Executor,
    progress: ProgressFn | None,
    retry_permanent: bool,
) -> IngestReport:
    started = time.perf_counter()
    layout = location.layout
    with location.lock(location.url):
        swept = location.sweep()
        location.pull(layout.videos_manifest)
        _check_existing_manifest(layout)
        location.pull(layout.inputs)
        with _writing(layout.work):
            register_inputs(layout, items)
        location.push(layout.inputs)
        inputs = pq.read_table(layout.inputs, columns=INPUTS_SCHEMA.names).to_pylist()
        by_id = {i["video_id"]: i for i in inputs}
        processed = {RESOLVE: 0, FETCH: 0, NORMALISE: 0}

        resolve_log = location.stage_log(layout.resolve_log, RESOLVE_STAGE_SCHEMA)
        resolved = {r["video_id"]: r for r in resolve_log.load_table().to_pylist()}
        todo = [
            {**i, "attempts": (resolved.get(i["video_id"]) or {}).get("attempts")}
            for i in inputs
            if i["source_kind"] == "url" and _needs_fetch(resolved.get(i["video_id"]), retry_permanent)
        ]
        processed[RESOLVE] = _run_stage(RESOLVE, todo, location, settings, executor, progress, resolve_log)
        resolved = {r["video_id"]: r for r in resolve_log.load_table().to_pylist()}
        same_video = platform_duplicates(inputs, resolved)

        fetch_log = location.stage_log(layout.fetch_log, PROBE_STAGE_SCHEMA)
        fetched = {r["video_id"]: r for r in fetch_log.load_table().to_pylist()}
        todo = [
            {**i, "attempts": (fetched.get(i["video_id"]) or {}).get("attempts"),
             "fetch_url": (resolved.get(i["video_id"]) or {}).get("resolved_url")}
            for i in inputs
            if i["video_id"] not in same_video
            and (resolved.get(i["video_id"]) or {}).get("status", Status.OK) == Status.OK
            and _needs_fetch(fetched.get(i["video_id"]), retry_permanent)
        ]  # fmt: skip
        processed[FETCH] = _run_stage(FETCH, todo, location, settings, executor, progress, fetch_log)
        fetched = {r["video_id"]: r for r in fetch_log.load_table().to_pylist()}

        rejections, exact, wanted = _candidates_for_media(
            [i for i in inputs if i["video_id"] not in same_video], fetched, settings
        )
        media_log = location.stage_log(layout.normalise_log, NORMALISE_STAGE_SCHEMA)
        recipe = recipe_id(settings.normalise)
        older = older_recipes(settings.normalise)
        wanted_ids = {i["video_id"] for i in wanted}
        # Duplicates' media files are removed, so a later run that makes one of them a cluster's
        # keeper has to normalise it again: hence a second pass when the first changed the clusters.
        for _ in range(2):
            made = {r["video_id"]: r for r in media_log.load_table().to_pylist()}
            near = _near_duplicates(made, wanted_ids, fetched, by_id, recipe, settings)
            present = location.files_under(layout.media)
            todo = [
                _media_job(layout, inp, fetched[inp["video_id"]], made.get(inp["video_id"]), older)
                for inp in wanted
                if inp["video_id"] not in near
                and _needs_media(
                    present, made.get(inp["video_id"]), fetched[inp["video_id"]]["sha256"], recipe, retry_permanent
                )
            ]
            if not todo:
                break
            processed[NORMALISE] += _run_stage(NORMALISE, todo, location, settings, executor, progress, media_log)
        made = {r["video_id"]: r for r in media_log.load_table().to_pylist()}
        near = _near_duplicates(made, wanted_ids, fetched, by_id, recipe, settings)
        table = compose_manifest(layout, inputs, fetched, rejections, exact, made, near, recipe, resolved, same_video)
        with _writing(layout.manifests):
            location.write_table(layout.videos_manifest, table)
        with _writing(layout.media):
            _remove_unlisted_media(location, table)  # after the manifest: it never names a deleted file
        for log in (resolve_log, fetch_log, media_log):
            with _writing(log.folder):
                log.compact()

        report = summarise(table, processed, time.perf_counter() - started, swept)
        report.settings = public_settings(settings)
        with _writing(layout.manifests):
            location.write_bytes(layout.ingest_summary, report.to_json().encode())
        return report


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Name `folder` in the `LocalFault` a failed write there becomes (pyarrow's errors name no file)."""
    try:
        yield
    except OSError as exc:
        raise as_local_fault(exc, folder) from None


def _media_job(layout: DatasetLayout, inp: dict, facts: dict, previous: dict | None, older: set[str]) -> dict:
    """A normalise job; `kept_media`: the media fields of `previous` when its media were made from the same original
    with the same settings under an older fingerprint version (`older`, `older_recipes`): they are kept and only
    fingerprinted again."""
    source = SourceVideo(
        width=facts["width"], height=facts["height"], fps=facts["fps"],
        duration_s=facts["video_duration_s"] or facts["duration_s"], has_audio=bool(facts["has_audio"]),
        vfr=bool(facts["vfr"]), transfer=facts.get("color_transfer"), primaries=facts.get("color_primaries"),
    )  # fmt: skip
    return {
        "video_id": inp["video_id"], "sha256": facts["sha256"], "path": _probe_source_path(layout, inp, facts),
        "original_path": facts.get("original_path"), "source": source, "attempts": (previous or {}).get("attempts"),
        "kept_media": {k: v for k, v in previous.items() if k.startswith("media_")}
        if previous and previous["status"] == Status.OK and previous["sha256"] == facts["sha256"]
        and previous["recipe"] in older else None,
    }  # fmt: skip


def _near_duplicates(
    made: dict[str, dict],
    wanted_ids: set[str],
    fetched: dict[str, dict],
    by_id: dict[str, dict],
    recipe: str,
    settings: IngestSettings,
) -> dict[str, str]:
    def candidate(vid: str, row: dict) -> dedup.Candidate:
        facts = fetched[vid]
        pixels = (facts.get("width") or 0) * (facts.get("height") or 0)
        length = facts.get("video_duration_s") or facts.get("duration_s")
        return dedup.Candidate(
            vid,
            by_id[vid]["input_index"],
            row["media_duration_s"],
            (row["media_width"] or 0) * (row["media_height"] or 0),
            row["fingerprint"],
            source_pixels=pixels,
            bits_per_pixel=dedup.bits_per_pixel(
                facts.get("bit_rate"), facts.get("size_bytes"), length, pixels, facts.get("fps")
            ),
            has_audio=bool(facts.get("has_audio")),
            source_duration_s=float(length or 0.0),
        )

    candidates = [
        candidate(vid, row)
        for vid, row in made.items()
        if vid in wanted_ids
        and row["status"] == Status.OK
        and row["recipe"] == recipe
        and row["sha256"] == fetched[vid]["sha256"]
    ]
    return dedup.near_duplicates(candidates, settings.dedup)


def platform_duplicates(inputs: list[dict], resolved: dict[str, dict]) -> dict[str, str]:
    """{video_id: the item it repeats} for inputs that name the same platform video (same platform and platform
    video id, whatever URL shape reached it) as an earlier input: the earliest input is the item, the others are
    never downloaded."""
    first: dict[tuple[str, str], str] = {}
    repeats: dict[str, str] = {}
    for inp in sorted(inputs, key=lambda i: i["input_index"]):
        row = resolved.get(inp["video_id"])
        if not row or row["status"] != Status.OK or not row["platform_video_id"]:
            continue
        key = (row["resolved_platform"], row["platform_video_id"])
        if key in first:
            repeats[inp["video_id"]] = first[key]
        else:
            first[key] = inp["video_id"]
    return repeats


def compose_manifest(
    layout: DatasetLayout,
    inputs: list[dict],
    fetched: dict[str, dict],
    rejections: dict[str, tuple[Reason, str]],
    exact: dict[str, str],
    made: dict[str, dict],
    near: dict[str, str],
    recipe: str,
    resolved: dict[str, dict] | None = None,
    same_video: dict[str, str] | None = None,
) -> pa.Table:
    """Exactly one row per registered input, with the outcome of every stage folded in. An input without an
    `uploader` of its own gets its platform account (`platforms.uploader_group`)."""
    rows = []
    resolved, same_video = resolved or {}, same_video or {}
    media_cols = [f.name for f in NORMALISE_STAGE_SCHEMA if f.name.startswith("media_")] + ["fingerprint"]
    for inp in sorted(inputs, key=lambda i: i["input_index"]):
        vid = inp["video_id"]
        row = empty_row(VIDEOS_SCHEMA)
        row.update({k: inp[k] for k in INPUTS_SCHEMA.names})
        found = resolved.get(vid)
        if found is not None and found["status"] == Status.OK and found["platform_video_id"]:
            row.update(platform_video_id=found["platform_video_id"], webpage_url=found["resolved_url"])
        fetched_ok = (fetched.get(vid) or {}).get("status") == Status.OK  # e.g. before resolving existed
        if found is not None and found["status"] != Status.OK and not fetched_ok:
            row.update({k: found[k] for k in ("status", "reason", "reason_detail", "retryable", "attempts",
                                              "processed_at")})  # fmt: skip
            rows.append(row)
            continue
        if vid in same_video:
            keeper = same_video[vid]
            _set_outcome(row, Status.REJECTED, Reason.DUPLICATE,
                         f"same {found['resolved_platform']} video ({found['platform_video_id']}) as {keeper}",
                         dup_of=keeper, processed_at=found["processed_at"], attempts=found["attempts"])  # fmt: skip
            rows.append(row)
            continue
        facts = fetched.get(vid)
        if facts is None:
            _set_outcome(row, Status.FAILED, Reason.NOT_PROCESSED, "not processed yet (interrupted run)",
                         retryable=True, attempts=0)  # fmt: skip
            rows.append(row)
            continue
        row.update({k: v for k, v in facts.items() if k in row and k != "video_id" and not (v is None and row[k])})
        if row["uploader"] is None:
            # the platform as its extractor names it: a mobile host and the canonical one are one platform
            platform = platform_of_extractor(facts.get("extractor")) or row["platform"]
            row["uploader"] = uploader_group(platform, facts.get("uploader_id"), facts.get("uploader_handle"))
        if facts["status"] != Status.OK:
            rows.append(row)
            continue
        media = made.get(vid)
        if vid in rejections:
            _set_outcome(row, Status.REJECTED, *rejections[vid])
        elif vid in exact:
            _set_outcome(row, Status.REJECTED, Reason.DUPLICATE, f"same content (sha256) as {exact[vid]}",
                         dup_of=exact[vid])  # fmt: skip
        elif media is None or media["sha256"] != facts["sha256"] or media["recipe"] != recipe:
            _set_outcome(
                row, Status.FAILED, Reason.NOT_PROCESSED, "not normalised yet (interrupted run)", retryable=True
            )
        elif media["status"] != Status.OK:
            row.update({k: media[k] for k in ("status", "reason", "reason_detail", "retryable", "attempts",
                                              "processed_at")})  # fmt: skip
        elif vid in near:
            detail = fingerprint.describe_distance(media["fingerprint"], made[near[vid]]["fingerprint"])
            _set_outcome(row, Status.REJECTED, Reason.NEAR_DUPLICATE, f"near-duplicate of {near[vid]} ({detail})",
                         dup_of=near[vid], fingerprint=media["fingerprint"])  # fmt: skip
        else:
            row.update({k: media[k] for k in media_cols})
            row["processed_at"] = media["processed_at"]
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)
    return _append_extra_columns(layout, table)


def _set_outcome(
    row: dict, status: Status, reason: Reason | str, detail: str, retryable: bool = False, **more: object
) -> None:
    row.update(status=str(status), reason=str(reason), reason_detail=detail, retryable=retryable, **more)


def _append_extra_columns(layout: DatasetLayout, table: pa.Table) -> pa.Table:
    """The user's own source columns, after ours, in the manifest's row order."""
    inputs = pq.read_table(layout.inputs)
    extras = [c for c in inputs.column_names if c not in INPUTS_SCHEMA.names]
    if not extras:
        return table
    position = {vid: i for i, vid in enumerate(inputs["video_id"].to_pylist())}
    order = pa.array([position[v] for v in table["video_id"].to_pylist()])
    for col in extras:
        name = f"input_{col}" if col in table.column_names else col
        table = table.append_column(name, inputs[col].take(order))
    return table


def _remove_unlisted_media(location: LocalLocation, table: pa.Table) -> None:
    """Media of rows that are not ok (e.g. near-duplicates) are deleted: one copy per clip. So are temporaries: every
    job of the run has ended by now, so one left in media/ (a transcode, its sound) is a job's that died mid-way."""
    location.remove_unlisted_media({p for p in table["media_path"].to_pylist() if p})


def public_settings(settings: IngestSettings) -> dict:
    """The settings as a plain dict, without the secrets (cookies file, proxy)."""
    values = asdict(settings)
    for secret in ("cookies_file", "proxy"):
        values["download"].pop(secret, None)
    return values


def summarise(table: pa.Table, processed: dict[str, int], elapsed_s: float, swept: int) -> IngestReport:
    status = table["status"].to_pylist()
    reasons: dict[str, Counter] = {}
    for st, reason in zip(status, table["reason"].to_pylist(), strict=True):
        if reason:
            reasons.setdefault(st, Counter())[reason] += 1
    durations = [d for s, d in zip(status, table["media_duration_s"].to_pylist(), strict=True) if s == "ok" and d]
    return IngestReport(
        n_inputs=table.num_rows,
        n_processed=processed,
        elapsed_s=round(elapsed_s, 3),
        status_counts=dict(sorted(Counter(status).items())),
        reason_counts={st: dict(sorted(c.items())) for st, c in sorted(reasons.items())},
        media_seconds=round(sum(durations), 3),
        swept_temporaries=swept,
    )


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a videos manifest (see `emotions_data.manifest.read_versioned_table`: a newer or unknown schema version is
    refused with `ManifestVersionError`, a file without a version is read)."""
    return read_versioned_table(path).to_pandas()

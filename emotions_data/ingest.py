"""The ingest pipeline: sources -> resolve (which platform video) -> fetch and probe -> filters -> exact duplicates
-> normalise and fingerprint -> near-duplicates -> `manifests/videos.parquet`.

The two expensive stages (fetch/probe, normalise) run as shard jobs on an `Executor`; each job
commits its rows to a `StageLog` when it finishes. Filters and duplicate decisions are cheap pure
functions recomputed on every run from the committed facts, so a run killed at any moment and
started again, or re-run with new filter settings, converges on the same manifest.

This module is the driver: it takes the dataset's lock and runs the steps in order. The steps live beside it:
`input_register` (the inputs of every run), `stage_join` (stage logs joined to the register), `run_plan` (what each
stage has left to do), `stages` (a shard job's work, in a worker), `screening` (same platform video, filters, exact
duplicates), `near_stage` (near-duplicates and their kept result), `manifest_rows` (the manifest) and `summary` (the
run's report).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emotions_data.executor import Executor, make_executor
from emotions_data.faults import LocalFault, local_fault, writing_to
from emotions_data.input_register import (
    check_input_register,
    read_inputs,
    register_inputs,
    registered_digests,
    source_digest,
)
from emotions_data.layout import DatasetLayout
from emotions_data.location import LocalLocation, ObjectLocation, open_location
from emotions_data.manifest import check_schema_version, read_versioned_table
from emotions_data.manifest_rows import compose_manifest
from emotions_data.near_stage import near_duplicates_of
from emotions_data.normalise import older_recipes, recipe_id
from emotions_data.run_plan import media_job, needs_fetch, needs_media
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA, RESOLVE_STAGE_SCHEMA, Status
from emotions_data.screening import candidates_for_media, platform_duplicates_table
from emotions_data.settings import IngestSettings
from emotions_data.sources import InputItem, read_sources
from emotions_data.stage_join import aligned, among, equals, numpy_of, rows_where
from emotions_data.stages import FETCH, NORMALISE, RESOLVE, ShardJob, run_shard
from emotions_data.storage import StageLog
from emotions_data.summary import IngestReport, public_settings, summarise

ProgressFn = Callable[[str, int, int], None]  # (stage, items done, items in stage)


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
    """Run `items` through `stage` as shard jobs on `executor`, committing to `log`; returns how many were done.
    Raises `LocalFault` when the jobs' commits are not visible to this driver (`_check_batch_visible`)."""
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


def ingest(
    sources: Sequence[str | Path] | Sequence[InputItem],
    dataset_dir: Path,
    settings: IngestSettings | None = None,
    *,
    executor: Executor | None = None,
    progress: ProgressFn | None = None,
    retry_permanent: bool = False,
) -> IngestReport:
    """Ingest `sources` (SOURCE arguments or ready InputItems) into `dataset_dir`. Resumable. A folder's file whose
    name is not UTF-8 is left out, and listed in the report's `refused_inputs`.

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
    items: list[InputItem] | None = [s for s in sources if isinstance(s, InputItem)]
    digests = None
    refused: list[str] = []  # folder entries whose names are not UTF-8: left out, reported
    if len(items) != len(sources):
        # A SOURCE file registered in full before (same bytes) gives no new item: it is not parsed again. Checked
        # again under the lock with the register as stored (this host's copy may be stale in an object store);
        # anything else is read here, so a bad SOURCE fails before the dataset is touched.
        digests = [source_digest(s) for s in sources]  # type: ignore[arg-type]
        if all(digests) and set(digests) <= registered_digests(layout):  # type: ignore[arg-type]
            items = None
        else:
            items = read_sources(list(sources), refused)  # type: ignore[arg-type]
            digests = [d for d in digests if d]  # type: ignore[misc]
    if not isinstance(location, ObjectLocation):  # an object store has no folders to be files instead
        if layout.root.exists() and not layout.root.is_dir():
            raise ValueError(f"{layout.root}: not a folder (the dataset folder is created, or an existing one reused)")
        _check_existing_manifest(layout)
    try:
        return _ingest_locked(
            location, items, settings, executor, progress, retry_permanent, sources=sources, digests=digests,
            refused=refused,
        )  # fmt: skip
    except OSError as exc:
        # The driver only writes the dataset's own files: a fault there is the machine's, not an item's.
        fault = local_fault(exc, layout.root)
        if fault is None:
            raise
        raise fault from None


def _check_existing_manifest(layout: DatasetLayout, shown: str | None = None) -> None:
    """Refuse, before anything changes, a dataset whose manifest a newer emotions wrote (this run would rewrite
    it as an older version). An unreadable manifest is left to be rewritten: it is made from `.work/` each run.
    `shown` names the manifest in the message (its URL when the local file is a copy of an object)."""
    try:
        schema = pq.read_schema(layout.videos_manifest)
    except (OSError, pa.ArrowInvalid):
        return
    check_schema_version(shown or layout.videos_manifest, schema)


@dataclass
class _Run:
    """What every step of one run under the lock shares: where, how, and the items each stage did so far."""

    location: LocalLocation
    settings: IngestSettings
    executor: Executor
    progress: ProgressFn | None
    retry_permanent: bool
    processed: dict[str, int] = field(default_factory=lambda: {RESOLVE: 0, FETCH: 0, NORMALISE: 0})

    def stage(self, stage: str, items: list[dict], log: StageLog) -> int:
        """Run `items` through `stage`, committing to `log`; returns how many were done."""
        done = _run_stage(stage, items, self.location, self.settings, self.executor, self.progress, log)
        self.processed[stage] += done
        return done


def _ingest_locked(
    location: LocalLocation,
    items: list[InputItem] | None,
    settings: IngestSettings,
    executor: Executor,
    progress: ProgressFn | None,
    retry_permanent: bool,
    sources: Sequence[str | Path] = (),
    digests: list[str] | None = None,
    refused: list[str] | None = None,
) -> IngestReport:
    """The run under the dataset's lock. `items` None: every SOURCE (`sources`, whose `digests` were found in the
    register) is registered already, so the register is not rewritten; when the register no longer says so the
    sources are read here. `refused`: the folder entries left out when the sources were read (the report lists
    them)."""
    started = time.perf_counter()
    layout = location.layout
    run = _Run(location, settings, executor, progress, retry_permanent)
    with location.lock(location.url):
        swept = location.sweep()
        refused = [] if refused is None else refused
        inputs = _register(location, items, sources, digests, refused)
        resolve_log = location.stage_log(layout.resolve_log, RESOLVE_STAGE_SCHEMA)
        resolved = _resolve(run, inputs, resolve_log)
        same_video = platform_duplicates_table(inputs, resolved)
        repeat = among(inputs["video_id"], same_video)
        fetch_log = location.stage_log(layout.fetch_log, PROBE_STAGE_SCHEMA)
        fetched = _fetch(run, inputs, resolved, repeat, fetch_log)
        rejections, exact, wanted = candidates_for_media(inputs, fetched, repeat, settings)
        media_log = location.stage_log(layout.normalise_log, NORMALISE_STAGE_SCHEMA)
        made, near = _make_media(run, inputs, fetched, wanted, media_log)
        recipe = recipe_id(settings.normalise)
        table = compose_manifest(layout, inputs, resolved, fetched, made, recipe, rejections, exact, near, same_video)
        _write_outcome(location, table, (resolve_log, fetch_log, media_log))
        report = summarise(table, run.processed, time.perf_counter() - started, swept)
        report.settings = public_settings(settings)
        report.refused_inputs = list(dict.fromkeys(refused))
        with writing_to(layout.manifests):
            location.write_bytes(layout.ingest_summary, report.to_json().encode())
        return report


def _register(
    location: LocalLocation,
    items: list[InputItem] | None,
    sources: Sequence[str | Path],
    digests: list[str] | None,
    refused: list[str],
) -> pa.Table:
    """Check the dataset's manifest and input register as stored, register the run's new items and return the
    register (`input_register.read_inputs`)."""
    layout = location.layout
    location.pull(layout.videos_manifest)
    _check_existing_manifest(layout, location.shown(layout.videos_manifest))
    location.pull(layout.inputs)
    check_input_register(location)
    if items is None and not (digests and set(digests) <= registered_digests(layout)):
        items = read_sources(list(sources), refused)
    if items is not None:
        with writing_to(layout.work):
            register_inputs(layout, items, digests)
        location.push(layout.inputs)
    return read_inputs(layout)


def _resolve(run: _Run, inputs: pa.Table, log: StageLog) -> pa.Table:
    """Resolve the URL inputs not resolved yet (or worth another try); their resolve rows, `aligned` with
    `inputs`."""
    ids = inputs["video_id"]
    resolved = aligned(log.load_table(), ids)
    pick = equals(inputs["source_kind"], "url") & needs_fetch(resolved, run.retry_permanent)
    if run.stage(RESOLVE, rows_where(inputs, pick, attempts=resolved["attempts"]), log):
        resolved = aligned(log.load_table(), ids)
    return resolved


def _fetch(run: _Run, inputs: pa.Table, resolved: pa.Table, repeat: np.ndarray, log: StageLog) -> pa.Table:
    """Fetch and probe the inputs not fetched yet (or worth another try), except those whose resolving failed and
    the `repeat`s of another input's platform video; their fetch rows, `aligned` with `inputs`."""
    ids = inputs["video_id"]
    fetched = aligned(log.load_table(), ids)
    resolve_ok = numpy_of(pc.fill_null(pc.equal(resolved["status"], str(Status.OK)), True))
    pick = ~repeat & resolve_ok & needs_fetch(fetched, run.retry_permanent)
    todo = rows_where(inputs, pick, attempts=fetched["attempts"], fetch_url=resolved["resolved_url"])
    if run.stage(FETCH, todo, log):
        fetched = aligned(log.load_table(), ids)
    return fetched


def _make_media(
    run: _Run, inputs: pa.Table, fetched: pa.Table, wanted: np.ndarray, log: StageLog
) -> tuple[pa.Table, dict[str, str]]:
    """Normalise and fingerprint the `wanted` rows that are no near-duplicate and lack current media; returns their
    normalise rows (`aligned` with `inputs`) and the near-duplicates among them ({duplicate id: kept id})."""
    layout, settings = run.location.layout, run.settings
    ids = inputs["video_id"]
    recipe = recipe_id(settings.normalise)
    older = older_recipes(settings.normalise)
    made = aligned(log.load_table(), ids)
    memo: dict[str, dict[str, str]] = {}
    # Duplicates' media files are removed, so a later run that makes one of them a cluster's
    # keeper has to normalise it again: hence a second pass when the first changed the clusters.
    for _ in range(2):
        near = near_duplicates_of(run.location, inputs, fetched, made, wanted, recipe, settings, memo)
        pick = wanted & ~among(ids, near) & needs_media(run.location, made, fetched, recipe, run.retry_permanent)
        if not pick.any():
            break
        previous = rows_where(made, pick, keep_nulls=True)
        todo = [
            media_job(layout, inp, facts, before, older)
            for inp, facts, before in zip(rows_where(inputs, pick), rows_where(fetched, pick), previous, strict=True)
        ]
        run.stage(NORMALISE, todo, log)
        made = aligned(log.load_table(), ids)
    return made, near_duplicates_of(run.location, inputs, fetched, made, wanted, recipe, settings, memo)


def _write_outcome(location: LocalLocation, table: pa.Table, logs: Sequence[StageLog]) -> None:
    """Write the manifest, then delete the media it does not name (so it never names a deleted file) and compact
    the stage logs."""
    layout = location.layout
    with writing_to(layout.manifests):
        location.write_table(layout.videos_manifest, table)
    with writing_to(layout.media):
        _remove_unlisted_media(location, table)
    for log in logs:
        with writing_to(log.folder):
            log.compact()


def _remove_unlisted_media(location: LocalLocation, table: pa.Table) -> None:
    """Media of rows that are not ok (e.g. near-duplicates) are deleted: one copy per clip. So are temporaries: every
    job of the run has ended by now, so one left in media/ (a transcode, its sound) is a job's that died mid-way."""
    location.remove_unlisted_media(set(table["media_path"].drop_null().to_pylist()))


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a videos manifest (see `emotions_data.manifest.read_versioned_table`: a newer or unknown schema version is
    refused with `ManifestVersionError`, a file without a version is read)."""
    return read_versioned_table(path).to_pandas()

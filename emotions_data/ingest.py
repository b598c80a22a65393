"""The ingest pipeline: sources -> resolve (which platform video) -> fetch and probe -> filters -> exact duplicates
-> normalise and fingerprint -> near-duplicates -> `manifests/videos.parquet`.

The two expensive stages (fetch/probe, normalise) run as shard jobs on an `Executor`; each job
commits its rows to a `StageLog` when it finishes. Filters and duplicate decisions are cheap pure
functions recomputed on every run from the committed facts, so a run killed at any moment and
started again, or re-run with new filter settings, converges on the same manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
from emotions_data.sources import VIDEO_EXTENSIONS, InputItem, SourceError, read_sources
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


def register_inputs(
    layout: DatasetLayout, items: Sequence[InputItem], digests: Sequence[str] | None = None
) -> pd.DataFrame:
    """Add new items to the dataset's input register (kept across runs) and return all of it. `digests`: the
    `source_digest`s of the SOURCE files the items were read from, recorded in the register's metadata with it
    (see `registered_digests`)."""
    existing_table = pq.read_table(layout.inputs) if layout.inputs.exists() else None
    existing = existing_table.to_pandas() if existing_table is not None else None
    known = registered_digests(layout, existing_table.schema if existing_table is not None else None)
    new_digests = sorted(set(digests or ()) - known)
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
        if new_digests:  # nothing new, but these files are now known to be registered
            write_table_atomic(layout.inputs, _with_digests(existing_table, known | set(new_digests)))
        return existing
    added = pd.DataFrame(new_rows, columns=None if new_rows else INPUTS_SCHEMA.names)  # no rows: still the columns
    frame = added if existing is None else pd.concat([existing, added])
    frame = frame.reset_index(drop=True)
    base = pa.Table.from_pandas(frame[INPUTS_SCHEMA.names], schema=INPUTS_SCHEMA, preserve_index=False)
    extras = [c for c in frame.columns if c not in INPUTS_SCHEMA.names]
    table = base
    for col in extras:
        table = table.append_column(col, pa.array(frame[col].astype(object).where(frame[col].notna(), None)))
    write_table_atomic(layout.inputs, _with_digests(table, known | set(new_digests)))
    return frame


#: Register metadata key: the `source_digest`s of SOURCE files whose every item is in the register.
_SOURCES_KEY = b"emotions.registered_sources"
# Part of every digest: change it when the same file may give other items (the id rules, the file formats).
_SOURCE_RULES = b"sources 1"
_DIGESTIBLE = (".txt", ".csv", ".parquet")


def source_digest(arg: str | Path) -> str | None:
    """SHA-256 of a SOURCE file's kind and bytes, for a URL list or a table of URLs (whose items depend on nothing
    else: `sources.read_source`); None for a folder, a video file or a file that cannot be read (those are always
    read again)."""
    path = Path(arg)
    suffix = path.suffix.lower()
    kind = suffix if suffix in (".csv", ".parquet") else ".txt"
    if suffix in VIDEO_EXTENSIONS:
        return None
    digest = hashlib.sha256(_SOURCE_RULES + b"\0" + kind.encode() + b"\0")
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def registered_digests(layout: DatasetLayout, schema: pa.Schema | None = None) -> set[str]:
    """The `source_digest`s recorded in the register: SOURCE files all of whose items it holds. Kept in the
    register's own metadata, so deleting or replacing the register forgets them too."""
    if schema is None:
        try:
            schema = pq.read_schema(layout.inputs)
        except (OSError, pa.ArrowException):
            return set()
    raw = (schema.metadata or {}).get(_SOURCES_KEY)
    try:
        return set(json.loads(raw)) if raw else set()
    except ValueError:
        return set()


def _with_digests(table: pa.Table, digests: set[str]) -> pa.Table:
    metadata = {**(table.schema.metadata or {}), _SOURCES_KEY: json.dumps(sorted(digests)).encode()}
    return table.replace_schema_metadata(metadata)


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
    items: list[InputItem] | None = [s for s in sources if isinstance(s, InputItem)]
    digests = None
    if len(items) != len(sources):
        # A SOURCE file registered in full before (same bytes) gives no new item: it is not parsed again. Checked
        # again under the lock with the register as stored (this host's copy may be stale in an object store);
        # anything else is read here, so a bad SOURCE fails before the dataset is touched.
        digests = [source_digest(s) for s in sources]  # type: ignore[arg-type]
        if all(digests) and set(digests) <= registered_digests(layout):  # type: ignore[arg-type]
            items = None
        else:
            items = read_sources(list(sources))  # type: ignore[arg-type]
            digests = [d for d in digests if d]  # type: ignore[misc]
    if not isinstance(location, ObjectLocation):  # an object store has no folders to be files instead
        if layout.root.exists() and not layout.root.is_dir():
            raise ValueError(f"{layout.root}: not a folder (the dataset folder is created, or an existing one reused)")
        _check_existing_manifest(layout)
    try:
        return _ingest_locked(
            location, items, settings, executor, progress, retry_permanent, sources=sources, digests=digests
        )
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


def _check_input_register(location: LocalLocation) -> None:
    """Refuse an input register (`.work/inputs.parquet`) that is not readable Parquet, naming it: unlike the
    manifest it cannot be remade, since it is the only record of the inputs earlier runs registered."""
    path = location.layout.inputs
    if not path.exists():
        return
    try:
        pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise ValueError(
            f"{location.shown(path)}: the dataset's input register is not readable Parquet ({reason}); restore it "
            "from a copy (deleting it forgets every input earlier runs registered)"
        ) from None


def _ingest_locked(
    location: LocalLocation,
    items: list[InputItem] | None,
    settings: IngestSettings,
    executor: Executor,
    progress: ProgressFn | None,
    retry_permanent: bool,
    sources: Sequence[str | Path] = (),
    digests: list[str] | None = None,
) -> IngestReport:
    """The run under the dataset's lock. `items` None: every SOURCE (`sources`, whose `digests` were found in the
    register) is registered already, so the register is not rewritten; when the register no longer says so the
    sources are read here."""
    started = time.perf_counter()
    layout = location.layout
    with location.lock(location.url):
        swept = location.sweep()
        location.pull(layout.videos_manifest)
        _check_existing_manifest(layout, location.shown(layout.videos_manifest))
        location.pull(layout.inputs)
        _check_input_register(location)
        if items is None and not (digests and set(digests) <= registered_digests(layout)):
            items = read_sources(list(sources))
        if items is not None:
            with _writing(layout.work):
                register_inputs(layout, items, digests)
            location.push(layout.inputs)
        inputs = _read_inputs(layout)
        ids = inputs["video_id"]
        processed = {RESOLVE: 0, FETCH: 0, NORMALISE: 0}

        resolve_log = location.stage_log(layout.resolve_log, RESOLVE_STAGE_SCHEMA)
        resolved = _aligned(resolve_log.load_table(), ids)
        pick = _is(inputs["source_kind"], "url") & _needs_fetch(resolved, retry_permanent)
        todo = _rows(inputs, pick, attempts=resolved["attempts"])
        processed[RESOLVE] = _run_stage(RESOLVE, todo, location, settings, executor, progress, resolve_log)
        if processed[RESOLVE]:
            resolved = _aligned(resolve_log.load_table(), ids)
        same_video = platform_duplicates_table(inputs, resolved)
        repeat = _in(ids, same_video)

        fetch_log = location.stage_log(layout.fetch_log, PROBE_STAGE_SCHEMA)
        fetched = _aligned(fetch_log.load_table(), ids)
        resolve_ok = pc.fill_null(pc.equal(resolved["status"], str(Status.OK)), True).to_numpy(zero_copy_only=False)
        pick = ~repeat & resolve_ok & _needs_fetch(fetched, retry_permanent)
        todo = _rows(inputs, pick, attempts=fetched["attempts"], fetch_url=resolved["resolved_url"])
        processed[FETCH] = _run_stage(FETCH, todo, location, settings, executor, progress, fetch_log)
        if processed[FETCH]:
            fetched = _aligned(fetch_log.load_table(), ids)

        rejections, exact, wanted = _candidates_for_media(inputs, fetched, repeat, settings)
        media_log = location.stage_log(layout.normalise_log, NORMALISE_STAGE_SCHEMA)
        recipe = recipe_id(settings.normalise)
        older = older_recipes(settings.normalise)
        made = _aligned(media_log.load_table(), ids)
        memo: dict[str, dict[str, str]] = {}
        # Duplicates' media files are removed, so a later run that makes one of them a cluster's
        # keeper has to normalise it again: hence a second pass when the first changed the clusters.
        for _ in range(2):
            near = _near_duplicates(location, inputs, fetched, made, wanted, recipe, settings, memo)
            pick = wanted & ~_in(ids, near) & _needs_media(location, made, fetched, recipe, retry_permanent)
            if not pick.any():
                break
            todo = [
                _media_job(layout, inp, facts, previous, older)
                for inp, facts, previous in zip(
                    _rows(inputs, pick), _rows(fetched, pick), _rows(made, pick, keep_nulls=True), strict=True
                )
            ]
            processed[NORMALISE] += _run_stage(NORMALISE, todo, location, settings, executor, progress, media_log)
            made = _aligned(media_log.load_table(), ids)
        near = _near_duplicates(location, inputs, fetched, made, wanted, recipe, settings, memo)
        table = compose_manifest(layout, inputs, resolved, fetched, made, recipe, rejections, exact, near, same_video)
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


def _read_inputs(layout: DatasetLayout) -> pa.Table:
    """The input register's own columns, in `input_index` order (the order it is written in)."""
    table = pq.read_table(layout.inputs, columns=INPUTS_SCHEMA.names)
    return table.take(pc.sort_indices(table["input_index"])).combine_chunks()


def _aligned(table: pa.Table, ids: pa.ChunkedArray) -> pa.Table:
    """`table`'s row (a stage log's newest, one per key) for each of `ids`, in their order; all nulls where it has
    none. Arrow's hash lookup, so a million rows cost no Python objects."""
    at = pc.index_in(ids, value_set=table["video_id"].combine_chunks())
    return table.take(at).combine_chunks()


def _np(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)


def _is(values: pa.ChunkedArray, value: str) -> np.ndarray:
    """values == value, null counting as unequal, as a numpy bool mask."""
    return _np(pc.fill_null(pc.equal(values, value), False))


def _truthy(values: pa.ChunkedArray) -> np.ndarray:
    return _np(pc.fill_null(values, False))


def _present(table: pa.Table) -> np.ndarray:
    """Rows of an `_aligned` table that the stage log has."""
    return _np(pc.is_valid(table["video_id"]))


def _differ(a: pa.ChunkedArray, b: pa.ChunkedArray | str) -> np.ndarray:
    """a != b as Python compares values, None included (None != None is False, None != "x" is True)."""
    if isinstance(b, str):
        return ~_is(a, b)
    both = _np(pc.and_(pc.is_valid(a), pc.is_valid(b)))
    return np.where(both, _np(pc.fill_null(pc.not_equal(a, b), False)), _np(pc.is_valid(a)) != _np(pc.is_valid(b)))


def _in(ids: pa.ChunkedArray, keys: dict[str, str] | set[str]) -> np.ndarray:
    if not keys:
        return np.zeros(len(ids), bool)
    return _np(pc.is_in(ids, value_set=pa.array(list(keys), pa.string())))


def _rows(table: pa.Table, mask: np.ndarray, keep_nulls: bool = False, **more: pa.ChunkedArray) -> list:
    """The masked rows as dicts (`more`: extra columns, aligned with `table`); with `keep_nulls` a row the stage log
    does not have is None. Only for the few rows that need Python: the items of a stage's jobs."""
    if not mask.any():
        return []
    where = pa.array(np.flatnonzero(mask))
    rows = table.take(where).to_pylist()
    extra = {name: col.take(where).to_pylist() for name, col in more.items()}
    for k, row in enumerate(rows):
        row.update({name: values[k] for name, values in extra.items()})
    if keep_nulls:
        return [row if row["video_id"] is not None else None for row in rows]
    return rows


def _needs_fetch(log: pa.Table, retry_permanent: bool) -> np.ndarray:
    """Rows with no committed result, or a failed one worth another try."""
    failed = _is(log["status"], str(Status.FAILED))
    return ~_present(log) | (failed & (_truthy(log["retryable"]) | retry_permanent))


def _probe_source_path(layout: DatasetLayout, inp: dict, fetched: dict) -> str:
    return str(layout.root / fetched["original_path"]) if fetched.get("original_path") else inp["source"]


def _surely_passes(fetched: pa.Table, settings: IngestSettings) -> np.ndarray:
    """Rows that no rule of `filters.check_filters` rejects, column-wise: each condition is the negation of one of
    its rules (nulls and NaN count as failing, so a row in doubt is left to `check_filters` itself)."""
    rules = settings.filters

    def number(values: pa.ChunkedArray) -> pa.ChunkedArray:  # present and not NaN
        return pc.fill_null(pc.invert(pc.is_nan(values)), False)

    video_s = fetched["video_duration_s"]
    duration = pc.if_else(number(video_s), video_s, fetched["duration_s"])
    width, height = fetched["width"], fetched["height"]
    sure = _truthy(fetched["has_video"]) & _np(number(duration))
    if rules.require_audio:
        sure &= _truthy(fetched["has_audio"])
    sure &= _truthy(pc.greater_equal(duration, rules.min_duration_s))
    sure &= _truthy(pc.less_equal(duration, rules.max_duration_s))
    sure &= _truthy(pc.not_equal(width, 0)) & _truthy(pc.not_equal(height, 0))
    sure &= _truthy(pc.greater_equal(pc.min_element_wise(width, height), rules.min_short_side))
    return sure


_FILTER_COLUMNS = ("has_video", "has_audio", "video_duration_s", "duration_s", "width", "height")


def _candidates_for_media(
    inputs: pa.Table, fetched: pa.Table, repeat: np.ndarray, settings: IngestSettings
) -> tuple[dict[str, tuple[Reason, str]], dict[str, str], np.ndarray]:
    """Filter rejections, exact duplicates (the earliest input with a sha256 is kept), and the mask of the rows that
    should get media."""
    ok = ~repeat & _is(fetched["status"], str(Status.OK))
    where = np.flatnonzero(ok & ~_surely_passes(fetched, settings))  # the others pass `check_filters` for sure
    facts = fetched.select(list(_FILTER_COLUMNS)).take(pa.array(where)).to_pydict()
    ids = _np(inputs["video_id"])
    rejections: dict[str, tuple[Reason, str]] = {}
    passing = ok.copy()
    for k, values in enumerate(zip(*facts.values(), strict=True)):
        rejection = check_filters(dict(zip(_FILTER_COLUMNS, values, strict=True)), settings.filters)
        if rejection:
            rejections[ids[where[k]]] = rejection
            passing[where[k]] = False
    # inputs are in input_index order, so the first row with a sha256 is the earliest input
    keep = np.flatnonzero(passing)
    keepers = dedup.exact_keepers(fetched["sha256"].take(pa.array(keep)))
    copies = keepers != np.arange(len(keep))
    exact = {ids[keep[k]]: ids[keep[keepers[k]]] for k in np.flatnonzero(copies)}
    wanted = passing.copy()
    wanted[keep[copies]] = False
    return rejections, exact, wanted


def _needs_media(
    location: LocalLocation, made: pa.Table, fetched: pa.Table, recipe: str, retry_permanent: bool
) -> np.ndarray:
    """Rows whose media is missing, of another original or recipe, failed worth another try, or whose ok file is
    gone (`location.files_under`: one listing of the media, not a question per file)."""
    stale = ~_present(made) | _differ(made["sha256"], fetched["sha256"]) | _differ(made["recipe"], recipe)
    ok = ~stale & _is(made["status"], str(Status.OK))
    retry = ~stale & _is(made["status"], str(Status.FAILED)) & (_truthy(made["retryable"]) | retry_permanent)
    result = stale | retry
    if ok.any():
        present = pa.array(list(location.files_under(location.layout.media)), pa.string())
        result |= ok & ~_truthy(pc.is_in(made["media_path"], value_set=present))
    return result


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


#: Parquet metadata key of the cached near-duplicate result: the digest of the search's input it answers.
_NEAR_DIGEST_KEY = b"emotions.near_duplicates_input"
_CANDIDATE_FACTS = ("width", "height", "video_duration_s", "duration_s", "bit_rate", "size_bytes", "fps", "has_audio")
_CANDIDATE_MEDIA = ("media_duration_s", "media_width", "media_height", "fingerprint")


def _near_duplicates(
    location: LocalLocation,
    inputs: pa.Table,
    fetched: pa.Table,
    made: pa.Table,
    wanted: np.ndarray,
    recipe: str,
    settings: IngestSettings,
    memo: dict[str, dict[str, str]],
) -> dict[str, str]:
    """{near-duplicate id: kept id} among the wanted rows with ok media of this recipe and original.

    The search (`dedup.near_duplicates`) is the costly part of a run that has nothing else to do, so its result is
    kept in `.work/` with the SHA-256 of everything it was computed from: the facts candidates are built from, of
    every row in order with a flag saying which rows are candidates, the dedup settings and the search's own
    constants (`dedup.search_identity`). A run whose digest matches reuses it; any change (a new clip, a new
    fingerprint, another threshold) searches again."""
    usable = (
        wanted
        & _is(made["status"], str(Status.OK))
        & _is(made["recipe"], recipe)
        & ~_differ(made["sha256"], fetched["sha256"])
    )
    # The digest covers every row with a flag, so the common case (most rows usable) copies nothing.
    facts = pa.table(
        {
            "candidate": pa.array(usable),
            "video_id": inputs["video_id"],
            "input_index": inputs["input_index"],
            **{name: made[name] for name in _CANDIDATE_MEDIA},
            **{name: fetched[name] for name in _CANDIDATE_FACTS},
        }
    )
    context = f"{dedup.search_identity()} {json.dumps(asdict(settings.dedup), sort_keys=True)}"
    digest = _table_digest(facts, context)
    if digest in memo:
        return memo[digest]
    near = _cached_near_duplicates(location, digest)
    if near is None:
        rows = facts.filter(pa.array(usable)).to_pylist()
        near = dedup.near_duplicates([_candidate(row) for row in rows], settings.dedup)
        cache = pa.table({"video_id": list(near), "dup_of": list(near.values())}, schema=_NEAR_SCHEMA)
        with _writing(location.layout.work):
            location.write_table(
                location.layout.near_duplicates, cache.replace_schema_metadata({_NEAR_DIGEST_KEY: digest})
            )
    memo[digest] = near
    return near


_NEAR_SCHEMA = pa.schema([pa.field("video_id", pa.string()), pa.field("dup_of", pa.string())])


def _candidate(row: dict) -> dedup.Candidate:
    pixels = (row["width"] or 0) * (row["height"] or 0)
    length = row["video_duration_s"] or row["duration_s"]
    return dedup.Candidate(
        row["video_id"],
        row["input_index"],
        row["media_duration_s"],
        (row["media_width"] or 0) * (row["media_height"] or 0),
        row["fingerprint"],
        source_pixels=pixels,
        bits_per_pixel=dedup.bits_per_pixel(row["bit_rate"], row["size_bytes"], length, pixels, row["fps"]),
        has_audio=bool(row["has_audio"]),
        source_duration_s=float(length or 0.0),
    )


def _cached_near_duplicates(location: LocalLocation, digest: str) -> dict[str, str] | None:
    """The kept result when it answers `digest`; None when there is none, it answers another input, or it cannot be
    read (it is then searched again and rewritten)."""
    try:
        location.pull(location.layout.near_duplicates)
        table = pq.read_table(location.layout.near_duplicates)
    except (OSError, pa.ArrowException):
        return None
    answers = (table.schema.metadata or {}).get(_NEAR_DIGEST_KEY)
    if answers != digest.encode() or table.schema.names != _NEAR_SCHEMA.names:
        return None
    return dict(zip(table["video_id"].to_pylist(), table["dup_of"].to_pylist(), strict=True))


def _table_digest(table: pa.Table, context: str) -> str:
    """SHA-256 of `context` and of every column's type, lengths and Arrow buffers (each length-prefixed), read in
    place: two tables with the same digest hold the same values in the same order (the same values laid out in
    other chunks only give another digest)."""
    digest = hashlib.sha256(context.encode() + b"\0")
    for name, column in zip(table.column_names, table.columns, strict=True):
        digest.update(f"{name}:{column.type}:{column.num_chunks}\0".encode())
        for chunk in column.chunks:
            digest.update(f"{len(chunk)}:{chunk.offset}\0".encode())
            for buffer in chunk.buffers():
                if buffer is None:
                    digest.update(b"-\0")
                else:
                    digest.update(f"{buffer.size}\0".encode())
                    digest.update(memoryview(buffer))
    return digest.hexdigest()


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


def platform_duplicates_table(inputs: pa.Table, resolved: pa.Table) -> dict[str, str]:
    """`platform_duplicates` of an input register (in `input_index` order) and its `_aligned` resolve rows, looking
    only at the rows a platform video id was found for."""
    named = _is(resolved["status"], str(Status.OK)) & _np(
        pc.fill_null(pc.not_equal(resolved["platform_video_id"], ""), False)
    )
    if not named.any():
        return {}
    where = pa.array(np.flatnonzero(named))
    rows = inputs.select(["video_id", "input_index"]).take(where).to_pylist()
    found = resolved.select(["video_id", "status", "resolved_platform", "platform_video_id"]).take(where).to_pylist()
    return platform_duplicates(rows, {r["video_id"]: r for r in found})


def compose_manifest(
    layout: DatasetLayout,
    inputs: pa.Table,
    resolved: pa.Table,
    fetched: pa.Table,
    made: pa.Table,
    recipe: str,
    rejections: dict[str, tuple[Reason, str]],
    exact: dict[str, str],
    near: dict[str, str],
    same_video: dict[str, str],
) -> pa.Table:
    """Exactly one row per registered input, in `input_index` order, with the outcome of every stage folded in
    (`inputs` in that order; `resolved`, `fetched`, `made`: the stage logs' rows `_aligned` with it). An input
    without an `uploader` of its own gets its platform account (`platforms.uploader_group`).

    The common row, an item whose every stage went well, is assembled column-wise; every other row (a failure, a
    filter, a duplicate, work still pending) goes through `manifest_row`, the rule for one row, which also defines
    the common row's columns."""
    ids = inputs["video_id"]
    common = (
        _is(fetched["status"], str(Status.OK))
        & ~_in(ids, same_video)
        & ~_in(ids, rejections.keys() | exact.keys() | near.keys())
        & _present(made)
        & ~_differ(made["sha256"], fetched["sha256"])
        & _is(made["recipe"], recipe)
        & _is(made["status"], str(Status.OK))
    )
    table = _common_rows(inputs, resolved, fetched, made)  # right for the common rows, replaced for the others
    others = np.flatnonzero(~common)
    if len(others):
        where = pa.array(others)
        near_rows = [v for v in ids.take(where).to_pylist() if v in near]
        wanted = set(near_rows) | {near[v] for v in near_rows}
        pick = _in(ids, wanted) & _present(made)
        prints = {r["video_id"]: r["fingerprint"] for r in _rows(made.select(["video_id", "fingerprint"]), pick)}
        details = fingerprint.describe_distances([prints[v] for v in near_rows], [prints[near[v]] for v in near_rows])
        near_details = dict(zip(near_rows, details, strict=True))
        rows = [
            manifest_row(inp, found, facts, media, rejections, exact, near, near_details, recipe, same_video)
            for inp, found, facts, media in zip(
                _rows(inputs, ~common),
                _rows(resolved, ~common, keep_nulls=True),
                _rows(fetched, ~common, keep_nulls=True),
                _rows(made, ~common, keep_nulls=True),
                strict=True,
            )
        ]
        order = np.arange(table.num_rows)
        order[others] = table.num_rows + np.arange(len(others))
        table = pa.concat_tables([table, pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)]).take(pa.array(order))
    return _append_extra_columns(layout, table.combine_chunks())


def _common_rows(inputs: pa.Table, resolved: pa.Table, fetched: pa.Table, made: pa.Table) -> pa.Table:
    """`manifest_row`'s last case, column-wise, for every row: the input's columns, the fetch's facts (a fact it
    lacks keeps what the resolve stage found), the media's columns and time."""
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name in VIDEOS_SCHEMA.names:
        if name in INPUTS_SCHEMA.names:
            columns[name] = inputs[name]
        elif name in _MEDIA_COLUMNS or name == "processed_at":
            columns[name] = made[name]
        elif name in fetched.column_names:
            columns[name] = fetched[name]
        else:
            columns[name] = pa.nulls(inputs.num_rows, VIDEOS_SCHEMA.field(name).type)
    named = pc.fill_null(_truthy_text(resolved["platform_video_id"]), False)
    named = pc.and_(pc.fill_null(pc.equal(resolved["status"], str(Status.OK)), False), named)
    for name, source in (("platform_video_id", "platform_video_id"), ("webpage_url", "resolved_url")):
        truthy = pc.and_(named, _truthy_text(resolved[source]))
        columns[name] = pc.coalesce(fetched[name], pc.if_else(truthy, resolved[source], _NULL_TEXT))
    columns["uploader"] = pc.coalesce(inputs["uploader"], _uploader_groups(inputs, fetched))
    chunked = {n: c if isinstance(c, pa.ChunkedArray) else pa.chunked_array([c]) for n, c in columns.items()}
    return pa.Table.from_arrays([chunked[n] for n in VIDEOS_SCHEMA.names], schema=VIDEOS_SCHEMA)


_NULL_TEXT = pa.scalar(None, pa.string())


def _truthy_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Whether each string is truthy in Python (neither null nor empty)."""
    return pc.fill_null(pc.not_equal(values, ""), False)


def _uploader_groups(inputs: pa.Table, fetched: pa.Table) -> pa.ChunkedArray:
    """`platforms.uploader_group(platform_of_extractor(extractor) or platform, uploader_id, uploader_handle)` for
    every row, column-wise: the extractor's platform is looked up once per distinct extractor."""
    extractors = pc.dictionary_encode(fetched["extractor"].combine_chunks())
    names = pa.array([platform_of_extractor(e) for e in extractors.dictionary.to_pylist()], pa.string())
    by_extractor = names.take(extractors.indices)
    platform = pc.if_else(_truthy_text(by_extractor), by_extractor, inputs["platform"])
    uid, handle = fetched["uploader_id"], fetched["uploader_handle"]
    account = pc.if_else(_truthy_text(uid), uid, pc.if_else(_truthy_text(handle), handle, _NULL_TEXT))
    grouped = pc.binary_join_element_wise(platform, account, ":")
    return pc.if_else(_truthy_text(platform), grouped, account)


_MEDIA_COLUMNS = [f.name for f in NORMALISE_STAGE_SCHEMA if f.name.startswith("media_")] + ["fingerprint"]


def manifest_row(
    inp: dict,
    found: dict | None,
    facts: dict | None,
    media: dict | None,
    rejections: dict[str, tuple[Reason, str]],
    exact: dict[str, str],
    near: dict[str, str],
    near_details: dict[str, str],
    recipe: str,
    same_video: dict[str, str],
) -> dict:
    """One input's manifest row from its register row and its stage rows (`found`: resolve, `facts`: fetch and
    probe, `media`: normalise; None where the stage has none). `near_details`: for each near-duplicate, its
    fingerprint's distance from its kept item's (`fingerprint.describe_distance`)."""
    vid = inp["video_id"]
    row = empty_row(VIDEOS_SCHEMA)
    row.update({k: inp[k] for k in INPUTS_SCHEMA.names})
    if found is not None and found["status"] == Status.OK and found["platform_video_id"]:
        row.update(platform_video_id=found["platform_video_id"], webpage_url=found["resolved_url"])
    fetched_ok = (facts or {}).get("status") == Status.OK  # e.g. before resolving existed
    if found is not None and found["status"] != Status.OK and not fetched_ok:
        row.update({k: found[k] for k in ("status", "reason", "reason_detail", "retryable", "attempts",
                                          "processed_at")})  # fmt: skip
        return row
    if vid in same_video:
        keeper = same_video[vid]
        _set_outcome(row, Status.REJECTED, Reason.DUPLICATE,
                     f"same {found['resolved_platform']} video ({found['platform_video_id']}) as {keeper}",
                     dup_of=keeper, processed_at=found["processed_at"], attempts=found["attempts"])  # fmt: skip
        return row
    if facts is None:
        _set_outcome(row, Status.FAILED, Reason.NOT_PROCESSED, "not processed yet (interrupted run)",
                     retryable=True, attempts=0)  # fmt: skip
        return row
    row.update({k: v for k, v in facts.items() if k in row and k != "video_id" and not (v is None and row[k])})
    if row["uploader"] is None:
        # the platform as its extractor names it: a mobile host and the canonical one are one platform
        platform = platform_of_extractor(facts.get("extractor")) or row["platform"]
        row["uploader"] = uploader_group(platform, facts.get("uploader_id"), facts.get("uploader_handle"))
    if facts["status"] != Status.OK:
        return row
    if vid in rejections:
        _set_outcome(row, Status.REJECTED, *rejections[vid])
    elif vid in exact:
        _set_outcome(row, Status.REJECTED, Reason.DUPLICATE, f"same content (sha256) as {exact[vid]}",
                     dup_of=exact[vid])  # fmt: skip
    elif media is None or media["sha256"] != facts["sha256"] or media["recipe"] != recipe:
        _set_outcome(row, Status.FAILED, Reason.NOT_PROCESSED, "not normalised yet (interrupted run)", retryable=True)
    elif media["status"] != Status.OK:
        row.update({k: media[k] for k in ("status", "reason", "reason_detail", "retryable", "attempts",
                                          "processed_at")})  # fmt: skip
    elif vid in near:
        detail = near_details[vid]
        _set_outcome(row, Status.REJECTED, Reason.NEAR_DUPLICATE, f"near-duplicate of {near[vid]} ({detail})",
                     dup_of=near[vid], fingerprint=media["fingerprint"])  # fmt: skip
    else:
        row.update({k: media[k] for k in _MEDIA_COLUMNS})
        row["processed_at"] = media["processed_at"]
    return row


def _set_outcome(
    row: dict, status: Status, reason: Reason | str, detail: str, retryable: bool = False, **more: object
) -> None:
    row.update(status=str(status), reason=str(reason), reason_detail=detail, retryable=retryable, **more)


def _append_extra_columns(layout: DatasetLayout, table: pa.Table) -> pa.Table:
    """The user's own source columns, after ours, in the manifest's row order."""
    extras = [c for c in pq.read_schema(layout.inputs).names if c not in INPUTS_SCHEMA.names]
    if not extras:
        return table
    inputs = pq.read_table(layout.inputs)
    order = pc.index_in(table["video_id"], value_set=inputs["video_id"].combine_chunks())
    for col in extras:
        name = f"input_{col}" if col in table.column_names else col
        table = table.append_column(name, inputs[col].take(order))
    return table


def _remove_unlisted_media(location: LocalLocation, table: pa.Table) -> None:
    """Media of rows that are not ok (e.g. near-duplicates) are deleted: one copy per clip. So are temporaries: every
    job of the run has ended by now, so one left in media/ (a transcode, its sound) is a job's that died mid-way."""
    location.remove_unlisted_media(set(table["media_path"].drop_null().to_pylist()))


def public_settings(settings: IngestSettings) -> dict:
    """The settings as a plain dict, without the secrets (cookies file, proxy)."""
    values = asdict(settings)
    for secret in ("cookies_file", "proxy"):
        values["download"].pop(secret, None)
    return values


def summarise(table: pa.Table, processed: dict[str, int], elapsed_s: float, swept: int) -> IngestReport:
    status = table["status"]
    counts = {row["values"]: row["counts"] for row in pc.value_counts(status).to_pylist()}
    reasons: dict[str, dict[str, int]] = {}
    with_reason = table.select(["status", "reason"]).filter(pc.fill_null(pc.not_equal(table["reason"], ""), False))
    for row in with_reason.group_by(["status", "reason"], use_threads=False).aggregate([([], "count_all")]).to_pylist():
        reasons.setdefault(row["status"], {})[row["reason"]] = row["count_all"]
    ok = pc.and_(pc.equal(status, "ok"), pc.fill_null(pc.not_equal(table["media_duration_s"], 0.0), False))
    durations = table["media_duration_s"].filter(ok).to_pylist()  # summed in row order, as before
    return IngestReport(
        n_inputs=table.num_rows,
        n_processed=processed,
        elapsed_s=round(elapsed_s, 3),
        status_counts=dict(sorted(counts.items())),
        reason_counts={st: dict(sorted(c.items())) for st, c in sorted(reasons.items())},
        media_seconds=round(sum(durations), 3),
        swept_temporaries=swept,
    )


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a videos manifest (see `emotions_data.manifest.read_versioned_table`: a newer or unknown schema version is
    refused with `ManifestVersionError`, a file without a version is read)."""
    return read_versioned_table(path).to_pandas()

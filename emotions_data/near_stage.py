"""The near-duplicate stage of a run: the search (`dedup.near_duplicates`) among the items with media, and its
result kept in `.work/near_duplicates.parquet` for the next run.

A re-run with nothing else to do would spend most of its time in the search, so the kept result carries the SHA-256
of everything the search reads (`near_duplicates_of`), and is reused only while that digest matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data import dedup
from emotions_data.faults import writing_to
from emotions_data.location import LocalLocation
from emotions_data.schema import Status
from emotions_data.settings import IngestSettings
from emotions_data.stage_join import differ, equals

#: Parquet metadata key of the cached near-duplicate result: the digest of the search's input it answers.
_NEAR_DIGEST_KEY = b"emotions.near_duplicates_input"
_CANDIDATE_FACTS = ("width", "height", "video_duration_s", "duration_s", "bit_rate", "size_bytes", "fps", "has_audio")
_CANDIDATE_MEDIA = ("media_duration_s", "media_width", "media_height", "fingerprint")


def near_duplicates_of(
    location: LocalLocation,
    inputs: pa.Table,
    fetched: pa.Table,
    made: pa.Table,
    wanted: np.ndarray,
    recipe: str,
    settings: IngestSettings,
    memo: dict[str, dict[str, str]],
) -> dict[str, str]:
    """{near-duplicate id: kept id} among the wanted rows with ok media of this recipe and original (`inputs`,
    `fetched`, `made`: the register and the fetch and normalise rows `aligned` with it; `wanted`: a mask over them).
    `memo`: this run's answers by digest, so asking again with nothing changed costs only the digest.

    The search (`dedup.near_duplicates`) is the costly part of a run that has nothing else to do, so its result is
    kept in `.work/` with the SHA-256 of everything it was computed from: the facts candidates are built from, of
    every row in order with a flag saying which rows are candidates, the dedup settings and the search's own
    constants (`dedup.search_identity`). A run whose digest matches reuses it; any change (a new clip, a new
    fingerprint, another threshold) searches again."""
    usable = (
        wanted
        & equals(made["status"], str(Status.OK))
        & equals(made["recipe"], recipe)
        & ~differ(made["sha256"], fetched["sha256"])
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
        with writing_to(location.layout.work):
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

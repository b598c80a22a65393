"""A re-run's shortcuts give the manifest the full path gives: the column-wise manifest rows, the kept near-duplicate
result, the SOURCE files not parsed again, media found by one listing."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data import dedup, screening, sources
from emotions_data import fingerprint as fp
from emotions_data import ingest as ingest_module
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.input_register import register_inputs, registered_digests
from emotions_data.layout import DatasetLayout
from emotions_data.manifest_rows import compose_manifest, manifest_row
from emotions_data.normalise import recipe_id
from emotions_data.schema import (
    INPUTS_SCHEMA,
    NORMALISE_STAGE_SCHEMA,
    PROBE_STAGE_SCHEMA,
    RESOLVE_STAGE_SCHEMA,
    VIDEOS_SCHEMA,
    empty_row,
)
from emotions_data.settings import DedupSettings, IngestSettings
from emotions_data.storage import StageLog

SETTINGS = IngestSettings()
RECIPE = recipe_id(SETTINGS.normalise)
WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def _fingerprints(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 2**fp.BITS_PER_FRAME, (n, fp.N_FRAMES), dtype=np.uint64)
    sound = rng.integers(0, 2**fp.BITS_PER_SEGMENT, (n, fp.N_SEGMENTS), dtype=np.uint64)
    decoded = fp.Decoded(
        picture, np.ones((n, fp.N_FRAMES), bool), sound, np.ones((n, fp.N_SEGMENTS), bool), np.full(n, 2, np.int8)
    )
    return fp.encode_many(decoded)


def _facts(vid: str, sha: str, duration: float, **more: object) -> dict:
    row = empty_row(PROBE_STAGE_SCHEMA)
    row.update(video_id=vid, status="ok", retryable=False, attempts=1, processed_at=WHEN, sha256=sha,
               size_bytes=1_000_000, duration_s=duration, video_duration_s=duration, has_video=True, width=1280,
               height=720, fps=30.0, has_audio=True, bit_rate=2_000_000, extractor="generic")  # fmt: skip
    row.update(more)
    return row


def _media(vid: str, sha: str, fingerprint: str, duration: float, **more: object) -> dict:
    row = empty_row(NORMALISE_STAGE_SCHEMA)
    row.update(video_id=vid, sha256=sha, recipe=RECIPE, status="ok", retryable=False, attempts=1, processed_at=WHEN,
               media_path=f"media/{vid}.mp4", media_sha256=sha, media_duration_s=duration, media_width=1280,
               media_height=720, media_fps=30.0, fingerprint=fingerprint)  # fmt: skip
    row.update(more)
    return row


def finished_dataset(folder: Path, n: int = 40, copies: int = 4) -> tuple[Path, Path]:
    """A dataset whose `n` URL inputs are all resolved, fetched and normalised (the last `copies` share the first
    ones' fingerprints: near-duplicates), with empty media files; returns (SOURCE, dataset folder)."""
    source = folder / "urls.txt"
    source.write_text("".join(f"http://127.0.0.1:9/clip-{k}.mp4\n" for k in range(n)))
    layout = DatasetLayout(folder / "ds")
    items = sources.read_sources([source])
    add_items(layout, items, _fingerprints(n, 1), copies)
    return source, layout.root


def add_items(layout: DatasetLayout, items: list, prints: list[str], copies: int = 0) -> None:
    """Register `items` and commit finished stage rows for them (the last `copies` repeat the first fingerprints)."""
    layout.media.mkdir(parents=True, exist_ok=True)
    register_inputs(layout, items)
    ids = [item.video_id for item in items]
    prints = prints[: len(ids) - copies] + prints[:copies]
    durations = [5.0 + k % 7 for k in range(len(ids) - copies)]
    durations += durations[:copies]
    resolve = [{**empty_row(RESOLVE_STAGE_SCHEMA), "video_id": v, "status": "ok", "retryable": False,
                "attempts": 1, "processed_at": WHEN} for v in ids]  # fmt: skip
    StageLog(layout.resolve_log, RESOLVE_STAGE_SCHEMA).commit(resolve)
    facts = [_facts(v, hashlib.sha256(v.encode()).hexdigest(), d) for v, d in zip(ids, durations, strict=True)]
    StageLog(layout.fetch_log, PROBE_STAGE_SCHEMA).commit(facts)
    media = [_media(f["video_id"], f["sha256"], p, f["duration_s"]) for f, p in zip(facts, prints, strict=True)]
    StageLog(layout.normalise_log, NORMALISE_STAGE_SCHEMA).commit(media)
    for v in ids:
        (layout.media / f"{v}.mp4").touch()


def run(source: Path, ds: Path, settings: IngestSettings = SETTINGS) -> pa.Table:
    ingest([source], ds, settings, executor=make_executor("serial", 1))
    return pq.read_table(ds / "manifests" / "videos.parquet")


@pytest.fixture
def searches(monkeypatch):
    """Counts the near-duplicate searches that run."""
    calls = []
    real = dedup.near_duplicates

    def counted(candidates, settings):
        calls.append(len(candidates))
        return real(candidates, settings)

    monkeypatch.setattr(dedup, "near_duplicates", counted)
    return calls


def test_nothing_changed_reuses_the_search_and_gives_the_same_manifest(tmp_path, searches):
    source, ds = finished_dataset(tmp_path)
    first = run(source, ds)
    assert searches == [40]  # one search for the whole first run: its second pass reuses it
    assert first["reason"].to_pylist().count("near_duplicate") == 4
    again = run(source, ds)
    assert searches == [40]
    assert again.equals(first)
    (ds / ".work" / "near_duplicates.parquet").unlink()  # the full path
    assert run(source, ds).equals(first) and searches == [40, 40]


def test_a_changed_threshold_searches_again(tmp_path, searches):
    source, ds = finished_dataset(tmp_path)
    run(source, ds)
    strict = replace(SETTINGS, dedup=DedupSettings(near_duplicate_threshold=0.0001))
    looser = run(source, ds, strict)
    assert len(searches) == 2
    (ds / ".work" / "near_duplicates.parquet").unlink()
    assert run(source, ds, strict).equals(looser)
    back = run(source, ds)
    assert back["reason"].to_pylist().count("near_duplicate") == 4 and len(searches) == 4


def test_a_new_input_or_a_new_fingerprint_searches_again(tmp_path, searches):
    source, ds = finished_dataset(tmp_path)
    layout = DatasetLayout(ds)
    run(source, ds)
    # a new item, a copy of clip-0, registered with its stage rows already committed
    with source.open("a") as handle:
        handle.write("http://127.0.0.1:9/late.mp4\n")
    late = sources.read_sources([source])[-1:]
    add_items(layout, late, [_fingerprints(40, 1)[0]])
    with_late = run(source, ds)
    assert len(searches) == 2 and with_late.num_rows == 41
    assert with_late.to_pylist()[-1]["reason"] == "near_duplicate"
    # clip-7's media gets another fingerprint: a copy of clip-8's
    media = StageLog(layout.normalise_log, NORMALISE_STAGE_SCHEMA)
    row = next(r for r in media.load_table().to_pylist() if r["video_id"].startswith("clip-7"))
    other = next(r for r in media.load_table().to_pylist() if r["video_id"].startswith("clip-8"))
    media.commit([{**row, "fingerprint": other["fingerprint"], "media_duration_s": other["media_duration_s"]}])
    changed = run(source, ds)
    assert len(searches) == 3
    (ds / ".work" / "near_duplicates.parquet").unlink()
    assert run(source, ds).equals(changed)


@pytest.mark.parametrize("damage", ["garbage", "other digest", "other columns"])
def test_an_unreadable_or_foreign_kept_result_is_searched_again(tmp_path, searches, damage):
    source, ds = finished_dataset(tmp_path)
    first = run(source, ds)
    kept = ds / ".work" / "near_duplicates.parquet"
    table = pq.read_table(kept)
    if damage == "garbage":
        kept.write_bytes(b"not parquet")
    elif damage == "other digest":  # the answer to another input: here, nobody a duplicate
        pq.write_table(table.slice(0, 0).replace_schema_metadata({b"emotions.near_duplicates_input": b"0" * 64}), kept)
    else:
        pq.write_table(table.rename_columns(["a", "b"]), kept)
    assert run(source, ds).equals(first)
    assert len(searches) == 2


def test_a_registered_source_file_is_not_parsed_again(tmp_path, monkeypatch):
    source, ds = finished_dataset(tmp_path)
    first = run(source, ds)
    assert ingest_module.source_digest(source) in registered_digests(DatasetLayout(ds))
    reads = []
    real = ingest_module.read_sources
    monkeypatch.setattr(ingest_module, "read_sources", lambda args, *rest: reads.append(args) or real(args, *rest))
    assert run(source, ds).equals(first) and reads == []
    # the same file changed: read, and its new URL registered (its fetch fails: nothing listens on port 9)
    with source.open("a") as handle:
        handle.write("http://127.0.0.1:9/new.mp4\n")
    settings = replace(SETTINGS, download=replace(SETTINGS.download, attempts=1))
    grown = run(source, ds, settings)
    assert len(reads) == 1 and grown.num_rows == 41
    assert run(source, ds, settings).num_rows == 41 and len(reads) == 1
    # a register without the record (an older version's, or rewritten) reads the file again
    inputs = pq.read_table(ds / ".work" / "inputs.parquet")
    pq.write_table(inputs.replace_schema_metadata(None), ds / ".work" / "inputs.parquet")
    assert run(source, ds, settings).num_rows == 41 and len(reads) == 2


def test_a_source_file_with_a_bad_row_is_refused_every_time(tmp_path):
    source, ds = finished_dataset(tmp_path)
    run(source, ds)
    bad = tmp_path / "bad.csv"
    bad.write_text("url,x\nhttp://127.0.0.1:9/a.mp4,1\n,2\n")
    for _ in range(2):
        with pytest.raises(sources.SourceError, match="empty url"):
            ingest([bad], ds, SETTINGS, executor=make_executor("serial", 1))
    assert ingest_module.source_digest(bad) not in registered_digests(DatasetLayout(ds))


def test_a_deleted_media_file_is_noticed_by_the_listing(tmp_path, monkeypatch):
    source, ds = finished_dataset(tmp_path)
    run(source, ds)
    gone = next((ds / "media").glob("clip-3-*.mp4"))
    gone.unlink()
    jobs = []

    def record(stage: str, items: list, *rest: object) -> int:
        if items:
            jobs.append((stage, items))
        return 0

    monkeypatch.setattr(ingest_module, "_run_stage", record)
    run(source, ds)
    assert [(stage, [i["video_id"] for i in items]) for stage, items in jobs] == [("normalise", [gone.stem])] * 2


def _aligned_tables(n: int, seed: int) -> tuple:
    """Register rows and stage rows of every kind a manifest row can come from, aligned, plus the decisions."""
    rng = np.random.default_rng(seed)
    prints = _fingerprints(n, seed)
    inputs, resolved, fetched, made = [], [], [], []
    rejections, exact, near, same_video = {}, {}, {}, {}
    for k in range(n):
        vid = f"v{k:04d}"
        inputs.append({"video_id": vid, "source": f"http://h/{k}", "source_kind": "url", "input_index": k,
                       "platform": rng.choice(["douyin", "local", None]),
                       "uploader": rng.choice([None, "alice", ""])})  # fmt: skip
        r = rng.integers(0, 5)
        found = None
        if r > 0:
            found = {**empty_row(RESOLVE_STAGE_SCHEMA), "video_id": vid, "status": "failed" if r == 1 else "ok",
                     "attempts": 1, "processed_at": WHEN, "reason": "download_error" if r == 1 else None,
                     "resolved_platform": "douyin" if r >= 3 else None, "platform_video_id": {3: "p1", 4: ""}.get(r),
                     "resolved_url": rng.choice(["http://c", "", None])}  # fmt: skip
        f = rng.integers(0, 6)
        sha = f"sha{k % 50}"
        facts = None
        if f > 0:
            facts = _facts(vid, sha, float(rng.choice([0.5, 6.0, 9.0])), status="failed" if f == 1 else "ok",
                           uploader_id=rng.choice([None, "42"]), uploader_handle=rng.choice([None, "h"]),
                           extractor=rng.choice([None, "generic", "Douyin"]),
                           webpage_url=rng.choice([None, "http://w"]),
                           platform_video_id=rng.choice([None, "q"]))  # fmt: skip
        m = rng.integers(0, 6)
        media = None
        if m > 0:
            media = _media(vid, sha if m != 2 else "other", prints[k], 6.0, recipe=RECIPE if m != 3 else "old",
                           status="failed" if m == 4 else "ok",
                           media_path=f"media/{vid}.mp4" if m != 4 else None)  # fmt: skip
        d = rng.integers(0, 8)
        if d == 1:
            rejections[vid] = ("too_short", "picture 0.50 s < minimum 1 s")
        elif d == 2 and k:
            exact[vid] = f"v{k - 1:04d}"
        elif d == 3 and k and r == 3:  # a repeat is one whose platform video was found
            same_video[vid] = f"v{k - 1:04d}"
        resolved.append(found)
        fetched.append(facts)
        made.append(media)
    keepers = [k for k in range(n) if made[k] and made[k]["status"] == "ok"][:10]
    for k in range(n):
        if k not in keepers and rng.random() < 0.15 and made[k] is not None:
            near[inputs[k]["video_id"]] = inputs[int(rng.choice(keepers))]["video_id"]
    return inputs, resolved, fetched, made, rejections, exact, near, same_video


def _table(rows: list[dict | None], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([row or empty_row(schema) for row in rows], schema=schema)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_wise_rows_equal_the_row_rule(tmp_path, seed):
    inputs, resolved, fetched, made, rejections, exact, near, same_video = _aligned_tables(300, seed)
    layout = DatasetLayout(tmp_path)
    (tmp_path / ".work").mkdir()
    pq.write_table(pa.Table.from_pylist(inputs, schema=INPUTS_SCHEMA), layout.inputs)
    fast = compose_manifest(
        layout,
        pa.Table.from_pylist(inputs, schema=INPUTS_SCHEMA),
        _table(resolved, RESOLVE_STAGE_SCHEMA),
        _table(fetched, PROBE_STAGE_SCHEMA),
        _table(made, NORMALISE_STAGE_SCHEMA),
        RECIPE, rejections, exact, near, same_video,
    )  # fmt: skip
    prints = {m["video_id"]: m["fingerprint"] for m in made if m}
    details = {vid: fp.describe_distance(prints[vid], prints[keeper]) for vid, keeper in near.items()}
    reference = [
        manifest_row(inp, found, facts, media, rejections, exact, near, details, RECIPE, same_video)
        for inp, found, facts, media in zip(inputs, resolved, fetched, made, strict=True)
    ]
    expected = pa.Table.from_pylist(reference, schema=VIDEOS_SCHEMA)
    assert fast.num_rows == 300
    assert fast.to_pylist() == expected.to_pylist()
    statuses = set(fast["status"].to_pylist())
    assert {"ok", "failed", "rejected"} <= statuses  # the cases are all there
    assert os.path.exists(layout.inputs)


@pytest.mark.parametrize("require_audio", [True, False])
def test_rows_passed_column_wise_pass_every_filter(require_audio):
    from emotions_data.filters import check_filters
    from emotions_data.settings import FilterSettings

    rules = FilterSettings(require_audio=require_audio)
    choices = {
        "has_video": [True, False, None],
        "has_audio": [True, False, None],
        "video_duration_s": [None, float("nan"), 0.0, 0.5, 1.0, 6.0, 300.0, 301.0],
        "duration_s": [None, float("nan"), 0.5, 1.0, 6.0, 400.0],
        "width": [None, 0, 200, 240, 1280],
        "height": [None, 0, 239, 240, 720],
    }
    rng = np.random.default_rng(3)
    rows = [{k: v[rng.integers(len(v))] for k, v in choices.items()} for _ in range(3000)]
    table = pa.Table.from_pylist([{**empty_row(PROBE_STAGE_SCHEMA), **r} for r in rows], schema=PROBE_STAGE_SCHEMA)
    sure = screening._surely_passes(table, replace(SETTINGS, filters=rules))
    verdicts = [check_filters(r, rules) for r in rows]
    assert all(v is None for v, s in zip(verdicts, sure, strict=True) if s)
    assert sure.sum() == sum(v is None for v in verdicts) > 0  # and it is exact: none left to the row rule

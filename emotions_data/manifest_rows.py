"""The videos manifest's rows: exactly one per registered input, with the outcome of every stage folded in.

The rule for one row is `manifest_row`. `compose_manifest` applies it to the rows that need it (a failure, a filter,
a duplicate, work still pending) and assembles the common row, an item whose every stage went well, column-wise
(`_common_rows`), so a re-run over a million inputs builds few Python objects. The two agree row for row
(`test_column_wise_rows_equal_the_row_rule` in tests/emotions_data/test_ingest_rerun.py compares them on every
kind of row).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emotions_data import fingerprint
from emotions_data.layout import DatasetLayout
from emotions_data.platforms import platform_of_extractor, uploader_group
from emotions_data.schema import INPUTS_SCHEMA, NORMALISE_STAGE_SCHEMA, VIDEOS_SCHEMA, Reason, Status, empty_row
from emotions_data.stage_join import among, differ, equals, present, rows_where


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
    (`inputs` in that order; `resolved`, `fetched`, `made`: the stage logs' rows `aligned` with it). An input
    without an `uploader` of its own gets its platform account (`platforms.uploader_group`).

    The common row, an item whose every stage went well, is assembled column-wise; every other row (a failure, a
    filter, a duplicate, work still pending) goes through `manifest_row`, the rule for one row, which also defines
    the common row's columns."""
    ids = inputs["video_id"]
    common = (
        equals(fetched["status"], str(Status.OK))
        & ~among(ids, same_video)
        & ~among(ids, rejections.keys() | exact.keys() | near.keys())
        & present(made)
        & ~differ(made["sha256"], fetched["sha256"])
        & equals(made["recipe"], recipe)
        & equals(made["status"], str(Status.OK))
    )
    table = _common_rows(inputs, resolved, fetched, made)  # right for the common rows, replaced for the others
    others = np.flatnonzero(~common)
    if len(others):
        where = pa.array(others)
        near_rows = [v for v in ids.take(where).to_pylist() if v in near]
        wanted = set(near_rows) | {near[v] for v in near_rows}
        pick = among(ids, wanted) & present(made)
        prints = {r["video_id"]: r["fingerprint"] for r in rows_where(made.select(["video_id", "fingerprint"]), pick)}
        details = fingerprint.describe_distances([prints[v] for v in near_rows], [prints[near[v]] for v in near_rows])
        near_details = dict(zip(near_rows, details, strict=True))
        rows = [
            manifest_row(inp, found, facts, media, rejections, exact, near, near_details, recipe, same_video)
            for inp, found, facts, media in zip(
                rows_where(inputs, ~common),
                rows_where(resolved, ~common, keep_nulls=True),
                rows_where(fetched, ~common, keep_nulls=True),
                rows_where(made, ~common, keep_nulls=True),
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
        found = pc.and_(named, _truthy_text(resolved[source]))
        columns[name] = pc.coalesce(fetched[name], pc.if_else(found, resolved[source], _NULL_TEXT))
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

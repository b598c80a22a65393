"""Which items go on to the next stage, decided afresh on every run from the committed facts (cheap, pure
functions, so new filter settings or a new input give the same manifest a fresh dataset would):

* same platform video: inputs that name one platform video by different URLs are fetched once
  (`platform_duplicates`);
* filters and exact duplicates: of the fetched items, which are rejected by a filter, which repeat an earlier
  input's bytes, and which should get media (`candidates_for_media`).

Near-duplicates need the media's fingerprints, so they are decided after the media stage (`near_stage`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from emotions_data import dedup
from emotions_data.filters import check_filters
from emotions_data.schema import Reason, Status
from emotions_data.settings import IngestSettings
from emotions_data.stage_join import equals, numpy_of, truthy


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
    """`platform_duplicates` of an input register (in `input_index` order) and its `aligned` resolve rows, looking
    only at the rows a platform video id was found for."""
    named = equals(resolved["status"], str(Status.OK)) & numpy_of(
        pc.fill_null(pc.not_equal(resolved["platform_video_id"], ""), False)
    )
    if not named.any():
        return {}
    where = pa.array(np.flatnonzero(named))
    rows = inputs.select(["video_id", "input_index"]).take(where).to_pylist()
    found = resolved.select(["video_id", "status", "resolved_platform", "platform_video_id"]).take(where).to_pylist()
    return platform_duplicates(rows, {r["video_id"]: r for r in found})


def _surely_passes(fetched: pa.Table, settings: IngestSettings) -> np.ndarray:
    """Rows that no rule of `filters.check_filters` rejects, column-wise: each condition is the negation of one of
    its rules (nulls and NaN count as failing, so a row in doubt is left to `check_filters` itself)."""
    rules = settings.filters

    def number(values: pa.ChunkedArray) -> pa.ChunkedArray:  # present and not NaN
        return pc.fill_null(pc.invert(pc.is_nan(values)), False)

    video_s = fetched["video_duration_s"]
    duration = pc.if_else(number(video_s), video_s, fetched["duration_s"])
    width, height = fetched["width"], fetched["height"]
    sure = truthy(fetched["has_video"]) & numpy_of(number(duration))
    if rules.require_audio:
        sure &= truthy(fetched["has_audio"])
    sure &= truthy(pc.greater_equal(duration, rules.min_duration_s))
    sure &= truthy(pc.less_equal(duration, rules.max_duration_s))
    sure &= truthy(pc.not_equal(width, 0)) & truthy(pc.not_equal(height, 0))
    sure &= truthy(pc.greater_equal(pc.min_element_wise(width, height), rules.min_short_side))
    return sure


_FILTER_COLUMNS = ("has_video", "has_audio", "video_duration_s", "duration_s", "width", "height")


def candidates_for_media(
    inputs: pa.Table, fetched: pa.Table, repeat: np.ndarray, settings: IngestSettings
) -> tuple[dict[str, tuple[Reason, str]], dict[str, str], np.ndarray]:
    """Filter rejections, exact duplicates (the earliest input with a sha256 is kept), and the mask of the rows that
    should get media."""
    ok = ~repeat & equals(fetched["status"], str(Status.OK))
    where = np.flatnonzero(ok & ~_surely_passes(fetched, settings))  # the others pass `check_filters` for sure
    facts = fetched.select(list(_FILTER_COLUMNS)).take(pa.array(where)).to_pydict()
    ids = numpy_of(inputs["video_id"])
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

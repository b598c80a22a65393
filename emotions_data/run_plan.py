"""What each stage of a run has left to do, from the stage logs `aligned` with the input register: the items to
fetch again, the media to make again, and a normalise job's description."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from emotions_data.layout import DatasetLayout
from emotions_data.location import LocalLocation
from emotions_data.normalise import SourceVideo
from emotions_data.schema import Status
from emotions_data.stage_join import differ, equals, present, truthy


def needs_fetch(log: pa.Table, retry_permanent: bool) -> np.ndarray:
    """Rows with no committed result, or a failed one worth another try."""
    failed = equals(log["status"], str(Status.FAILED))
    return ~present(log) | (failed & (truthy(log["retryable"]) | retry_permanent))


def _probe_source_path(layout: DatasetLayout, inp: dict, fetched: dict) -> str:
    return str(layout.root / fetched["original_path"]) if fetched.get("original_path") else inp["source"]


def needs_media(
    location: LocalLocation, made: pa.Table, fetched: pa.Table, recipe: str, retry_permanent: bool
) -> np.ndarray:
    """Rows whose media is missing, of another original or recipe, failed worth another try, or whose ok file is
    gone (`location.files_under`: one listing of the media, not a question per file)."""
    stale = ~present(made) | differ(made["sha256"], fetched["sha256"]) | differ(made["recipe"], recipe)
    ok = ~stale & equals(made["status"], str(Status.OK))
    retry = ~stale & equals(made["status"], str(Status.FAILED)) & (truthy(made["retryable"]) | retry_permanent)
    result = stale | retry
    if ok.any():
        listed = pa.array(list(location.files_under(location.layout.media)), pa.string())
        result |= ok & ~truthy(pc.is_in(made["media_path"], value_set=listed))
    return result


def media_job(layout: DatasetLayout, inp: dict, facts: dict, previous: dict | None, older: set[str]) -> dict:
    """A normalise job; `kept_media`: the media fields of `previous` when its media were made from the same original
    with the same settings under an older fingerprint version (`older`, `older_recipes`): they are kept and only
    fingerprinted again."""
    source = SourceVideo(
        width=facts["width"], height=facts["height"], fps=facts["fps"],
        duration_s=facts["video_duration_s"] or facts["duration_s"], has_audio=bool(facts["has_audio"]),
        vfr=bool(facts["vfr"]), transfer=facts.get("color_transfer"), primaries=facts.get("color_primaries"),
        audio_track=facts.get("audio_track") or 0,
    )  # fmt: skip
    return {
        "video_id": inp["video_id"], "sha256": facts["sha256"], "path": _probe_source_path(layout, inp, facts),
        "original_path": facts.get("original_path"), "source": source, "attempts": (previous or {}).get("attempts"),
        "kept_media": {k: v for k, v in previous.items() if k.startswith("media_")}
        if previous and previous["status"] == Status.OK and previous["sha256"] == facts["sha256"]
        and previous["recipe"] in older else None,
    }  # fmt: skip

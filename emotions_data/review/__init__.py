"""`emotions review DATASET`: a static HTML report a lead opens instead of reading tables.

One folder (`index.html`, `thumbs/`, `clips/`, `plots/`), relative links only, no script: it opens from disk and any
static server serves it. It shows the counts by status and reason with a thumbnail strip per reason, the
near-duplicate pairs side by side (thumbnails at the same times, the distance, which copy was kept), the disputed
items with their votes and a player, the suspect labels of `emotions validate`, the annotators' agreement, lead time
against clip length and consistency over stages, and a recorded baseline's confusion matrix. Thumbnails are taken
with ffmpeg from the normalised media (a rejected item, never normalised, from its original when it is on disk).
The folder is built beside the target and swapped in whole.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from emotions_data.card.plots import agreement_per_annotator_png
from emotions_data.layout import DatasetLayout
from emotions_data.review.collect import ReviewData, collect, confusion_cells, media_source
from emotions_data.review.media import consistency_png, lead_time_png, place_clip, thumbnail
from emotions_data.review.page import Assets, render_page, strip_ids, suspect_ids

__all__ = ["ReviewOutcome", "write_review"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
PER_CELL = 2  # example clips per cell of the out-of-fold confusion matrix


@dataclass
class ReviewOutcome:
    """Where the page is and what it counted: `counts` (status, reason, n), near-duplicate pairs, disputed items
    and suspects shown, thumbnails made and those ffmpeg could not make."""

    index: Path
    counts: pd.DataFrame
    n_pairs: int
    n_disputed: int
    n_suspects: int
    n_thumbnails: int
    n_missing: int


def _name(video_id: str) -> str:
    return _SAFE.sub("_", video_id)


def _duration(videos: pd.DataFrame, video_id: str) -> float:
    row = videos[videos["video_id"] == video_id]
    for column in ("media_duration_s", "duration_s"):
        if len(row) and column in row and pd.notna(row[column].iloc[0]):
            return float(row[column].iloc[0])
    return 0.0


class _Thumbs:
    """Makes thumbnails under `root/thumbs/`, once per (video, time)."""

    def __init__(self, layout: DatasetLayout, data: ReviewData, root: Path) -> None:
        self.layout, self.data, self.root = layout, data, root
        self.assets = Assets()
        self.made = self.missing = 0

    def take(self, video_id: str, times: list[float]) -> None:
        src = media_source(self.layout, self.data.videos, video_id)
        shots = self.assets.thumbs.setdefault(video_id, [])
        for at in times:
            if any(abs(t - at) < 1e-6 for t, _ in shots):
                continue
            rel = f"thumbs/{_name(video_id)}-{round(at * 1000)}.jpg"
            ok = src is not None and thumbnail(src, at, self.root / rel)
            self.made += ok
            self.missing += not ok
            shots.append((at, rel if ok else None))


def _make_assets(layout: DatasetLayout, data: ReviewData, root: Path, strip: dict[str, list[str]]) -> _Thumbs:
    """Thumbnails (strip items at mid-clip; each near-duplicate pair at the same three times, within the shorter
    of the two), clips of the disputed items, and the plots."""
    thumbs = _Thumbs(layout, data, root)
    examples = [] if data.out_of_fold is None else [v for _, ids in confusion_cells(data.out_of_fold, PER_CELL).values()
                                                     for v in ids]  # fmt: skip
    for video_id in [v for ids in strip.values() for v in ids] + suspect_ids(data.suspects) + examples:
        thumbs.take(video_id, [_duration(data.videos, video_id) / 2])
    for pair in data.pairs:
        span = min(_duration(data.videos, pair.copy), _duration(data.videos, pair.kept)) or 1.0
        times = [round(span * f, 2) for f in (0.2, 0.5, 0.8)]
        for video_id in (pair.copy, pair.kept):
            thumbs.assets.thumbs[video_id] = []  # the pair's own times, the same on both sides
            thumbs.take(video_id, times)
    for video_id in [] if data.disputed is None else data.disputed["video_id"]:
        media = layout.media_file(str(video_id))
        if media.is_file():
            rel = f"clips/{_name(str(video_id))}.mp4"
            place_clip(media, root / rel)
            thumbs.assets.clips[str(video_id)] = rel
    plots = {
        "agreement_per_annotator": agreement_per_annotator_png(data.agreement)
        if data.agreement and data.agreement.get("per_annotator") else None,
        "lead_time": lead_time_png(data.votes) if data.votes is not None and len(data.votes) else None,
        "consistency": consistency_png(data.votes) if data.votes is not None and len(data.votes) else None,
    }  # fmt: skip
    for key, png in plots.items():
        if png:
            (root / "plots").mkdir(exist_ok=True)
            (root / "plots" / f"{key}.png").write_bytes(png)
            thumbs.assets.plots[key] = f"plots/{key}.png"
    return thumbs


def write_review(
    layout: DatasetLayout, out: Path | None = None, votes: pd.DataFrame | None = None, *, per_reason: int = 8,
    disputed_limit: int = 24, classes: list[str] | None = None,
) -> ReviewOutcome:  # fmt: skip
    """Write the review folder `out` (default `DATASET/review/`), replacing an earlier one whole. `votes`: the
    counted votes, or None; `classes`: the taxonomy's, the order of the confusion matrix (default: sorted). Raises
    ValueError naming the manifest when the dataset has none; OSError when the folder cannot be written."""
    out = Path(out) if out is not None else layout.root / "review"
    data = collect(layout, votes, disputed_limit=disputed_limit)
    strip = strip_ids(data, per_reason)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        thumbs = _make_assets(layout, data, staging, strip)
        confusion = None
        if data.confusion is not None:
            shutil.copyfile(data.confusion, staging / "confusion.png")
            confusion = "confusion.png"
        created = datetime.now(UTC).isoformat(timespec="seconds")
        name = layout.root.resolve().name
        if classes is None and data.out_of_fold is not None:
            classes = sorted(set(data.out_of_fold["label"]) | set(data.out_of_fold["predicted"]))
        page = render_page(name, data, thumbs.assets, strip, confusion, created, classes, PER_CELL)
        (staging / "index.html").write_text(page, encoding="utf-8")
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReviewOutcome(out / "index.html", data.counts, len(data.pairs),
                         0 if data.disputed is None else len(data.disputed),
                         0 if data.suspects is None else len(data.suspects), thumbs.made, thumbs.missing)  # fmt: skip


def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` by `staging` (renames: a reader sees the old folder or the new one, never a half-written)."""
    staging.chmod(0o755)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}")
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)

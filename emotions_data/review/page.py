"""The review page's HTML (pure: a view of `ReviewData` plus the relative paths of the files already made)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from emotions_data.review.collect import ReviewData, confusion_cells

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f3f3f3; text-align: left; } td.n { text-align: right; }
.strip { display: flex; flex-wrap: wrap; gap: 6px; margin: 0.3em 0 1em; }
figure { margin: 0; font-size: 11px; text-align: center; } figure img { display: block; }
.none { width: 160px; height: 90px; background: #eee; display: flex; align-items: center; justify-content: center; }
.pair { display: flex; gap: 2em; margin: 0.8em 0; padding: 0.5em; border: 1px solid #ddd; }
.side h3 { margin: 0 0 0.3em; font-size: 14px; } video { max-width: 240px; max-height: 240px; }
.muted { color: #777; }
"""


@dataclass
class Assets:
    """Relative paths of the files made for the page: thumbnails (video_id -> [(seconds, path or None)]), clips
    (video_id -> path) and plots (name -> path)."""

    thumbs: dict[str, list[tuple[float, str | None]]] = field(default_factory=dict)
    clips: dict[str, str] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)


def _figure(video_id: str, path: str | None, caption: str = "") -> str:
    text = escape(caption or video_id)
    if path is None:
        return f'<figure><div class="none">no picture</div><figcaption>{text}</figcaption></figure>'
    return (f'<figure><img src="{escape(path)}" alt="{escape(video_id)}" width="160">'
            f"<figcaption>{text}</figcaption></figure>")  # fmt: skip


def _number(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def _table(header: list[str], rows: list[list[str]], attrs: list[str] | None = None) -> str:
    """An HTML table; cells are already HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(f"<tr{(' ' + attrs[i]) if attrs else ''}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for i, row in enumerate(rows))  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def counts_section(data: ReviewData, assets: Assets, strip: dict[str, list[str]]) -> str:
    """Counts by status and reason (each row carries `data-status`, `data-reason`), then a thumbnail strip per
    reason (`strip`: reason -> the video ids shown)."""
    rows, attrs = [], []
    for row in data.counts.itertuples():
        rows.append([escape(row.status), escape(row.reason or "-"), f'<span class="n">{int(row.n)}</span>'])
        attrs.append(f'class="count" data-status="{escape(row.status)}" data-reason="{escape(row.reason)}"')
    parts = ["<h2 id=\"counts\">Items by status and reason</h2>",
             f'<p>{len(data.videos)} items in the manifest.</p>',
             _table(["status", "reason", "items"], rows, attrs)]  # fmt: skip
    for reason, ids in strip.items():
        total = int(data.counts.loc[data.counts["reason"] == reason, "n"].sum())
        title = reason or "ok"
        parts.append(f'<h3>{escape(title)} <span class="muted">({len(ids)} of {total} shown)</span></h3>')
        figures = "".join(_figure(v, (assets.thumbs.get(v) or [(0.0, None)])[0][1]) for v in ids)
        parts.append(f'<div class="strip" data-reason="{escape(reason)}">{figures}</div>')
    return "\n".join(parts)


def pairs_section(data: ReviewData, assets: Assets) -> str:
    """Each near-duplicate pair side by side: thumbnails of both at the same times, the distance, which was kept."""
    parts = ['<h2 id="near-duplicates">Near-duplicate pairs</h2>']
    if not data.pairs:
        return parts[0] + "<p>None: the ingest rejected no near-duplicate.</p>"
    for pair in data.pairs:
        sides = []
        for role, video_id in (("rejected copy", pair.copy), ("kept", pair.kept)):
            figures = "".join(_figure(video_id, path, f"{at:.1f} s") for at, path in assets.thumbs.get(video_id, []))
            sides.append(f'<div class="side"><h3>{role}: {escape(video_id)}</h3><div class="strip">{figures}</div>'
                         "</div>")  # fmt: skip
        distance = "n/a" if pair.distance is None else f"{pair.distance:.3f}"
        kept = escape(pair.why)
        text = f"<p>distance {distance}<br>{escape(pair.detail)}<br>{kept}</p>"
        parts.append(f'<div class="pair" data-copy="{escape(pair.copy)}" data-kept="{escape(pair.kept)}">'
                     + "".join(sides) + text + "</div>")  # fmt: skip
    return "\n".join(parts)


def _player(video_id: str, assets: Assets) -> str:
    clip = assets.clips.get(video_id)
    if clip is None:
        return '<span class="muted">no media</span>'
    return f'<video controls preload="metadata" src="{escape(clip)}" data-video="{escape(video_id)}"></video>'


def disputed_section(data: ReviewData, assets: Assets) -> str:
    """The disputed items (lowest agreement first) with their votes and a player."""
    head = '<h2 id="disputed">Disputed items</h2>'
    if data.disputed is None or not len(data.disputed):
        return head + "<p>None: every label was decided unanimously (or there are no labels yet).</p>"
    rows = [[escape(r.video_id), escape(str(r.label)), escape(str(r.decided_by)), _number(r.agreement),
             escape(r.votes), _player(r.video_id, assets)] for r in data.disputed.itertuples()]  # fmt: skip
    return head + _table(["video", "final label", "decided by", "agreement", "votes", "clip"], rows)


def suspects_section(data: ReviewData, assets: Assets) -> str:
    """The suspect labels `emotions validate` found, in rank order, with a thumbnail."""
    head = '<h2 id="suspects">Suspect labels (the model disputes the label)</h2>'
    if data.suspects is None:
        return head + "<p>Not computed: run <code>emotions validate DATASET</code>.</p>"
    if not len(data.suspects):
        return head + "<p>None: the out-of-fold model disputes no label.</p>"
    rows = []
    for r in data.suspects.itertuples():
        thumb = _figure(r.video_id, (assets.thumbs.get(r.video_id) or [(0.0, None)])[0][1])
        rows.append([str(r.rank), escape(r.video_id), escape(r.label), escape(r.suggested), _number(r.margin),
                     escape(str(r.votes or "")), _number(r.agreement), escape(str(r.decided_by)), thumb])  # fmt: skip
    return head + _table(["rank", "video", "label", "model suggests", "margin", "votes", "agreement", "decided by",
                          "picture"], rows)  # fmt: skip


def out_of_fold_confusion(cells: dict[tuple[str, str], tuple[int, list[str]]], classes: list[str],
                          assets: Assets) -> str:  # fmt: skip
    """The out-of-fold confusion matrix of `emotions validate` (rows: final label, columns: the model's class), each
    cell with its count and thumbnails of example clips."""
    labels = [c for c in classes if any(c == key[0] for key in cells)]
    predicted_classes = [c for c in classes if any(c == key[1] for key in cells)]
    rows = []
    for label in labels:
        row = [f"<b>{escape(label)}</b>"]
        for predicted in predicted_classes:
            n, ids = cells.get((label, predicted), (0, []))
            thumbs = "".join(_figure(v, (assets.thumbs.get(v) or [(0.0, None)])[0][1]) for v in ids)
            row.append(f'<span class="n">{n}</span><div class="strip">{thumbs}</div>' if n else "0")
        rows.append(row)
    intro = ("<p>Out-of-fold predictions of <code>emotions validate</code> (each item scored by the model of the "
             "fold that held it out): rows are the final labels, columns the model's class.</p>")  # fmt: skip
    return intro + _table(["final label \\ model", *predicted_classes], rows)


def plots_section(assets: Assets, confusion: str | None, data_cells: dict | None = None,
                  classes: list[str] | None = None) -> str:  # fmt: skip
    """The annotators' plots, the out-of-fold confusion matrix with example clips per cell (`data_cells`, from
    `collect.confusion_cells`) and a recorded baseline's confusion matrix, where there is data for them."""
    classes = classes or []
    titles = {"agreement_per_annotator": "Agreement per annotator", "lead_time": "Lead time against clip length",
              "consistency": "Consistency over stages"}  # fmt: skip
    parts = ['<h2 id="annotators">Annotators</h2>']
    shown = [f'<figure><img src="{escape(assets.plots[k])}" alt="{escape(t)}"><figcaption>{escape(t)}</figcaption>'
             "</figure>" for k, t in titles.items() if k in assets.plots]  # fmt: skip
    parts.append('<div class="strip">' + "".join(shown) + "</div>" if shown else "<p>No votes yet.</p>")
    parts.append('<h2 id="baseline">Baseline confusion matrix</h2>')
    parts.append(out_of_fold_confusion(data_cells, classes, assets) if data_cells else
                 "<p>No out-of-fold predictions: run <code>emotions validate DATASET</code>.</p>")  # fmt: skip
    if confusion:
        parts.append("<p>Test split of the newest release that recorded a baseline:</p>"
                     f'<img src="{escape(confusion)}" alt="confusion matrix of the recorded baseline">')  # fmt: skip
    else:
        parts.append("<p>No baseline recorded in a release (<code>emotions release record-baseline</code>).</p>")
    return "\n".join(parts)


def render_page(name: str, data: ReviewData, assets: Assets, strip: dict[str, list[str]], confusion: str | None,
                created: str, classes: list[str] | None = None, per_cell: int = 2) -> str:  # fmt: skip
    """The whole page, self-contained HTML5 (inline style, no script, relative links only)."""
    cells = confusion_cells(data.out_of_fold, per_cell) if data.out_of_fold is not None else None
    body = [counts_section(data, assets, strip), pairs_section(data, assets), disputed_section(data, assets),
            suspects_section(data, assets), plots_section(assets, confusion, cells, classes)]  # fmt: skip
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Review of {escape(name)}</title><style>{STYLE}</style></head><body>"
            f"<h1>Review of {escape(name)}</h1><p class=\"muted\">Written {escape(created)} by "
            "<code>emotions review</code>.</p>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip


def strip_ids(data: ReviewData, per_reason: int) -> dict[str, list[str]]:
    """reason -> the first `per_reason` video ids of that reason ("" = the ok items), in manifest order."""
    frame = data.videos.assign(reason=data.videos["reason"].fillna(""))
    return {str(reason): list(group["video_id"].astype(str).head(per_reason))
            for reason, group in frame.groupby("reason", sort=True)}  # fmt: skip


def suspect_ids(suspects: pd.DataFrame | None) -> list[str]:
    return [] if suspects is None else list(suspects["video_id"].astype(str))

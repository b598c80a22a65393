"""The card's plots as PNG bytes (pure: no files, no pyplot state), one function per plot; `confusion_png` is
shared with the baseline's evaluation."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from emotions_data.card.metadata import CardMetadata

PLOT_NAMES = ("class_distribution", "duration_histogram", "agreement_per_class", "agreement_per_annotator", "confusion")


def figure_png(fig: Figure) -> bytes:
    """`fig` as PNG bytes (100 dpi, tight)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure without pyplot (Agg backend), `figsize` in inches."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a Figure without pyplot: no global state, thread-safe

    return Figure(figsize=figsize)


def confusion_png(
    counts: list[list[int]] | np.ndarray, classes: list[str], *, xlabel: str = "predicted", ylabel: str = "true"
) -> bytes:
    """A confusion matrix (rows: `ylabel`, columns: `xlabel`, both in `classes` order) as a PNG: cells coloured by
    share of their row, labelled with counts."""
    matrix = np.array(counts, dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = new_figure((5.5, 4.5))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, int(count), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, label="share of row")
    return figure_png(fig)


def _class_distribution(class_counts: dict[str, dict[str, dict[str, int]]], classes: list[str]) -> bytes:
    """One bar chart per variant: videos per class, a bar per split."""
    n = len(class_counts)
    fig = new_figure((5 * n, 3.5))
    axes = fig.subplots(1, n, squeeze=False)[0]
    x = np.arange(len(classes))
    for ax, (variant, per) in zip(axes, class_counts.items(), strict=True):
        width = 0.8 / max(1, len(per))
        for i, (split, counts) in enumerate(per.items()):
            ax.bar(x + i * width, [counts.get(c, 0) for c in classes], width, label=split)
        ax.set_xticks(x + 0.4 - width / 2, classes, rotation=45, ha="right")
        ax.set_title(variant)
        ax.legend()
    axes[0].set_ylabel("videos")
    return figure_png(fig)


def _duration_histogram(duration_hist: dict[str, list[float]]) -> bytes:
    fig = new_figure((6, 3.5))
    ax = fig.subplots()
    edges, counts = duration_hist["edges"], duration_hist["counts"]
    ax.stairs(counts, edges, fill=True)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("videos")
    ax.set_title("Duration (full variant)")
    return figure_png(fig)


def _agreement_per_class(agreement: dict[str, Any]) -> bytes:
    """Per-class alpha with its confidence interval as error bars, and the overall alpha as a line."""
    fig = new_figure((6, 3.5))
    ax = fig.subplots()
    names = list(agreement["per_class"])
    values = np.array([agreement["per_class"][c]["alpha"] or np.nan for c in names], dtype=float)
    cis = [agreement["per_class"][c].get("alpha_ci") for c in names]
    low = np.array([v - ci[0] if ci else 0.0 for v, ci in zip(values, cis, strict=True)])
    high = np.array([ci[1] - v if ci else 0.0 for v, ci in zip(values, cis, strict=True)])
    ax.bar(names, values, yerr=np.clip(np.nan_to_num(np.vstack([low, high])), 0, None), capsize=4)
    if agreement.get("krippendorff_alpha") is not None:
        ax.axhline(agreement["krippendorff_alpha"], color="k", linestyle="--", label="overall alpha")
        ax.legend()
    ax.set_ylabel("Krippendorff's alpha")
    ax.tick_params(axis="x", rotation=45)
    return figure_png(fig)


def agreement_per_annotator_png(agreement: dict[str, Any]) -> bytes:
    """Per annotator: share of agreeing vote pairs and share of votes matching the majority."""
    per_annotator = agreement["per_annotator"]
    fig = new_figure((max(5, 0.6 * len(per_annotator)), 3.5))
    ax = fig.subplots()
    ids = list(per_annotator)
    x = np.arange(len(ids))
    for i, key in enumerate(("agreement", "majority_agreement")):
        values = [per_annotator[k].get(key) for k in ids]
        ax.bar(x + i * 0.4, [np.nan if v is None else v for v in values], 0.4, label=key.replace("_", " "))
    ax.set_xticks(x + 0.2, ids, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share")
    ax.legend()
    return figure_png(fig)


def render_plots(meta: CardMetadata) -> dict[str, bytes]:
    """PNG bytes per plot name (in `PLOT_NAMES` order); plots without data (e.g. agreement without votes) are
    left out."""
    classes = list(meta.taxonomy.get("classes") or [])
    out: dict[str, bytes] = {}
    if meta.class_counts and classes:
        out["class_distribution"] = _class_distribution(meta.class_counts, classes)
    if meta.duration_hist:
        out["duration_histogram"] = _duration_histogram(meta.duration_hist)
    a = meta.agreement
    if a and a.get("per_class"):
        out["agreement_per_class"] = _agreement_per_class(a)
    if a and a.get("per_annotator"):
        out["agreement_per_annotator"] = agreement_per_annotator_png(a)
    if meta.confusion and classes:
        out["confusion"] = confusion_png(meta.confusion, classes, xlabel="final label", ylabel="annotator vote")
    return out

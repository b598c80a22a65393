"""What changed between two releases of one dataset: items added and removed, labels changed, split moves, class
counts per split, and agreement and baseline metrics side by side with bootstrap confidence intervals.

Both releases are read from their written folders only (`data/<variant>/<split>.parquet`, `release.json`,
`baseline/<variant>/metrics.json`); the reasons an item left are looked up in the dataset's video manifest when the
older release still sits in its dataset. `render_changes_section` prints the card's "Changes since A" section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emotions_data.card.text import fmt, fmt_ci, markdown_table
from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.release_info import ReleaseInfo
from emotions_data.schema import Split, Variant

#: Bootstrap resamples and confidence level of every interval the comparison prints.
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
CHANGES_BEGIN = "<!-- changes-since: written by `emotions release create --since` -->"
CHANGES_END = "<!-- /changes-since -->"
_ITEM_COLUMNS = ["video_id", "label", "split", "decided_by", "agreement"]


@dataclass
class ReleaseDiff:
    """The comparison of release `old` with release `new` over one variant. Frames: `added` and `removed`
    (video_id, label, split, reason), `relabelled` (video_id, old, new, decided_by), `moved` (video_id, old_split,
    new_split); `counts` (label x `<version> <split>` counts); `metrics`: one dict per metric with `name` and per
    release (`old`, `new`) `{value, ci, n}` or None where the release has no such figure."""

    old: str
    new: str
    variant: str
    added: pd.DataFrame
    removed: pd.DataFrame
    relabelled: pd.DataFrame
    moved: pd.DataFrame
    counts: pd.DataFrame
    metrics: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bootstrap_ci(
    values: np.ndarray, statistic: Any = np.mean, *, n: int = N_BOOTSTRAP, level: float = CONFIDENCE, seed: int = 0
) -> list[float] | None:
    """Percentile bootstrap interval (Efron and Tibshirani, An Introduction to the Bootstrap, 1993, ch. 13) of
    `statistic` over the rows of `values` ((n_items,) or (n_items, k)), resampling items with replacement `n`
    times. None when there are fewer than two items."""
    values = np.asarray(values)
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    # One resample at a time: n x n_items indices at once would be hundreds of MB for a full-size release.
    stats = np.array([statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(n)], dtype=float)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))]


def _war(pairs: np.ndarray) -> float:
    return float(np.mean(pairs[:, 0] == pairs[:, 1]))


def _uar_over(n_classes: int) -> Any:
    def uar(pairs: np.ndarray) -> float:
        support = np.bincount(pairs[:, 0], minlength=n_classes)
        correct = np.bincount(pairs[pairs[:, 0] == pairs[:, 1], 0], minlength=n_classes)
        return float((correct / np.maximum(support, 1)).mean())  # an absent class counts 0, as `uar` does

    return uar


def confusion_pairs(matrix: list[list[int]]) -> np.ndarray:
    """(n_items, 2) true and predicted class ids that make up a confusion matrix (rows: true class): the per-item
    outcomes a bootstrap over items resamples."""
    cm = np.asarray(matrix, dtype=int)
    rows, cols = np.nonzero(cm)
    counts = cm[rows, cols]
    return np.column_stack([np.repeat(rows, counts), np.repeat(cols, counts)]).astype(int)


def release_items(release_dir: Path, variant: str) -> pd.DataFrame:
    """One row per item of `variant` in the release: video_id, label, split, decided_by, agreement. Raises
    ValueError naming the release when it has no such variant."""
    info = ReleaseInfo.from_directory(release_dir)
    if variant not in info.files:
        raise ValueError(f"{release_dir}: release {info.version} has no variant {variant!r} "
                         f"(it has {', '.join(info.files) or 'none'})")  # fmt: skip
    parts = []
    for split, rel in info.files[variant].items():
        table = pd.read_parquet(Path(release_dir) / rel)
        parts.append(table.assign(split=split))
    items = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_ITEM_COLUMNS)
    for column in _ITEM_COLUMNS:
        if column not in items.columns:
            items[column] = None
    return items[_ITEM_COLUMNS]


def _manifest_reasons(release_dir: Path) -> dict[str, str]:
    """video_id -> why the dataset's video manifest no longer offers it (status, reason and detail); empty when the
    release is not in its dataset."""
    manifest = DatasetLayout.of_release(Path(release_dir).resolve()).videos_manifest
    if not manifest.is_file():
        return {}
    videos = pd.read_parquet(manifest)
    reasons = {}
    for row in videos.itertuples():
        if row.status == "ok":
            reasons[row.video_id] = "no longer labelled or not in this variant"
        else:
            detail = getattr(row, "reason_detail", None)
            text = f"{row.status}: {getattr(row, 'reason', None) or 'no reason recorded'}"
            reasons[row.video_id] = text + (f" ({detail})" if isinstance(detail, str) and detail else "")
    return reasons


def class_counts(items: dict[str, pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """Label x `<version> <split>` item counts (every class of the taxonomy, zeros included)."""
    columns = {}
    for version, frame in items.items():
        for split in Split:
            counts = frame[frame["split"] == split]["label"].value_counts()
            columns[f"{version} {split}"] = [int(counts.get(c, 0)) for c in classes]
    return pd.DataFrame(columns, index=classes)


def _figure(values: np.ndarray, statistic: Any = np.mean) -> dict[str, Any] | None:
    if not len(values):
        return None
    return {"value": float(statistic(values)), "ci": bootstrap_ci(values, statistic), "n": len(values)}


def _baseline_figures(release_dir: Path, variant: str, n_classes: int) -> dict[str, dict[str, Any]]:
    """WAR and UAR of the recorded baseline of `variant` with intervals from its confusion matrix; empty without."""
    path = ReleaseLayout(Path(release_dir)).baseline / variant / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text(encoding="utf-8"))
    pairs = confusion_pairs(metrics.get("confusion_matrix") or [[0]])
    if not len(pairs):
        return {}
    return {"baseline test WAR": _figure(pairs, _war), "baseline test UAR": _figure(pairs, _uar_over(n_classes))}


def release_metrics(release_dir: Path, items: pd.DataFrame, variant: str, n_classes: int) -> dict[str, Any]:
    """name -> {value, ci, n}: mean per-item agreement, share of expert-decided items, and the recorded baseline's
    WAR and UAR, each with a percentile bootstrap interval over items (`bootstrap_ci`)."""
    agreement = pd.to_numeric(items["agreement"], errors="coerce").dropna().to_numpy(dtype=float)
    expert = (items["decided_by"].astype(str) == "expert").to_numpy(dtype=float)
    return {
        "mean per-item agreement": _figure(agreement),
        "share decided by the expert": _figure(expert),
        **_baseline_figures(release_dir, variant, n_classes),
    }


def diff_releases(old_dir: Path, new_dir: Path, variant: str | None = None) -> ReleaseDiff:
    """Compare the release in `old_dir` with the one in `new_dir` over `variant` (default: `full` when both have
    it, else the first variant of the new release). Raises ValueError naming the folder when a release cannot be
    read or lacks the variant."""
    old_info, new_info = ReleaseInfo.from_directory(old_dir), ReleaseInfo.from_directory(new_dir)
    if variant is None:
        variant = Variant.FULL if Variant.FULL in new_info.files and Variant.FULL in old_info.files else None
        variant = variant or next(iter(new_info.files), "")
    old, new = release_items(old_dir, variant), release_items(new_dir, variant)
    both = old.merge(new, on="video_id", suffixes=("_old", "_new"))
    added = new[~new["video_id"].isin(old["video_id"])][["video_id", "label", "split"]]
    added = added.assign(reason="labelled and offered since " + old_info.version)
    removed = old[~old["video_id"].isin(new["video_id"])][["video_id", "label", "split"]]
    reasons = _manifest_reasons(old_dir)
    removed = removed.assign(reason=[reasons.get(v, "not in the dataset's manifest") for v in removed["video_id"]])
    changed = both[both["label_old"] != both["label_new"]]
    relabelled = pd.DataFrame({"video_id": changed["video_id"], "old": changed["label_old"],
                               "new": changed["label_new"], "decided_by": changed["decided_by_new"]})  # fmt: skip
    moving = both[both["split_old"] != both["split_new"]]
    moved = pd.DataFrame({"video_id": moving["video_id"], "old_split": moving["split_old"],
                          "new_split": moving["split_new"]})  # fmt: skip
    classes = new_info.classes or sorted(set(old["label"]) | set(new["label"]))
    old_metrics = release_metrics(old_dir, old, variant, len(classes))
    new_metrics = release_metrics(new_dir, new, variant, len(classes))
    metrics = [{"name": name, "old": old_metrics.get(name), "new": new_metrics.get(name)}
               for name in dict.fromkeys([*old_metrics, *new_metrics])]  # fmt: skip
    notes = [f"baseline intervals resample the items of the recorded test confusion matrix ({N_BOOTSTRAP} draws)"]
    if not any(name.startswith("baseline") for name in [*old_metrics, *new_metrics]):
        notes = ["no baseline recorded in either release (`emotions release record-baseline`): no WAR or UAR"]
    return ReleaseDiff(
        old=old_info.version, new=new_info.version, variant=variant,
        added=_sorted(added), removed=_sorted(removed), relabelled=_sorted(relabelled), moved=_sorted(moved),
        counts=class_counts({old_info.version: old, new_info.version: new}, classes), metrics=metrics, notes=notes,
    )  # fmt: skip


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("video_id").reset_index(drop=True)


def _figure_text(figure: dict[str, Any] | None) -> list[str]:
    if figure is None:
        return ["n/a", "n/a", "0"]
    return [fmt(figure["value"]), fmt_ci(figure["ci"]), str(figure["n"])]


def render_diff(diff: ReleaseDiff, *, heading: str = "##") -> list[str]:
    """The comparison as Markdown lines: a summary line, the metrics side by side, class counts per split, then
    tables of added, removed, relabelled and moved items."""
    lines = [f"Variant `{diff.variant}`: {len(diff.added)} added, {len(diff.removed)} removed, "
             f"{len(diff.relabelled)} relabelled, {len(diff.moved)} moved to another split.", ""]  # fmt: skip
    level = int(CONFIDENCE * 100)
    header = ["metric", f"{diff.old}", f"{diff.old} {level}% CI", f"{diff.old} n",
              f"{diff.new}", f"{diff.new} {level}% CI", f"{diff.new} n"]  # fmt: skip
    rows = [[m["name"], *_figure_text(m["old"]), *_figure_text(m["new"])] for m in diff.metrics]
    lines += [f"{heading}# Metrics", "", *markdown_table(header, rows), "", *(f"Note: {n}." for n in diff.notes)]
    counts = diff.counts
    lines += ["", f"{heading}# Class counts per split", ""]
    lines += markdown_table(["class", *counts.columns], [[c, *counts.loc[c]] for c in counts.index])
    for title, frame in (("Added", diff.added), ("Removed", diff.removed), ("Relabelled", diff.relabelled),
                         ("Moved", diff.moved)):  # fmt: skip
        lines += ["", f"{heading}# {title} ({len(frame)})", ""]
        if len(frame):
            lines += markdown_table(list(frame.columns), frame.astype(str).to_numpy().tolist())
        else:
            lines.append("None.")
    return lines


def render_changes_section(diff: ReleaseDiff) -> str:
    """The card's "Changes since A" section, Markdown between `CHANGES_BEGIN` and `CHANGES_END`."""
    lines = [CHANGES_BEGIN, f"## Changes since {diff.old}", "",
             f"Compared with release {diff.old} by `emotions release diff`; intervals are {int(CONFIDENCE * 100)}% "
             f"percentile bootstrap intervals over items ({N_BOOTSTRAP} resamples).", ""]  # fmt: skip
    lines += render_diff(diff, heading="##")
    return "\n".join([*lines, CHANGES_END]) + "\n"


def with_changes_section(readme: str, section: str) -> str:
    """`readme` with its "Changes since" section replaced, or inserted before the licence section (or at the end)."""
    if CHANGES_BEGIN in readme and CHANGES_END in readme:
        head, _, rest = readme.partition(CHANGES_BEGIN)
        return head + section.rstrip("\n") + rest.partition(CHANGES_END)[2]
    anchor = "## Distribution and licence"
    if anchor in readme:
        head, _, tail = readme.partition(anchor)
        return head + section + "\n" + anchor + tail
    return readme.rstrip("\n") + "\n\n" + section


def changes_section_of(readme: str) -> str | None:
    """The "Changes since" section a card already holds (markers included), or None."""
    if CHANGES_BEGIN not in readme or CHANGES_END not in readme:
        return None
    return CHANGES_BEGIN + readme.partition(CHANGES_BEGIN)[2].partition(CHANGES_END)[0] + CHANGES_END + "\n"


def with_changes_since(card: Any, since: Path) -> Any:
    """The card step `card` (`emotions_data.release.CardWriter`) followed by the "Changes since" section comparing
    the release being written with the earlier release in `since`, in the staged README before it is copied and
    checksummed. Raises ValueError as `diff_releases` does (nothing is written then)."""

    def write(release_dir: Path, votes: pd.DataFrame | None) -> list[Path]:
        written = card(release_dir, votes) or []
        readme = ReleaseLayout(Path(release_dir)).readme
        section = render_changes_section(diff_releases(since, release_dir))
        readme.write_text(with_changes_section(readme.read_text(encoding="utf-8"), section), encoding="utf-8")
        return written

    return write


def resolve_release(text: Path, beside: Path | None = None) -> Path:
    """A release folder from `text`: a folder holding release.json, or a version X.Y.Z of the dataset of the
    release folder `beside`. Raises ValueError naming what was given when it is neither."""
    path = Path(text)
    if (path / "release.json").is_file():
        return path
    if beside is not None and not path.exists():
        sibling = DatasetLayout.of_release(Path(beside).resolve()).release(str(text)).root
        if (sibling / "release.json").is_file():
            return sibling
    raise ValueError(f"{text}: not a release folder (DATASET/releases/X.Y.Z) nor a version of the other release")

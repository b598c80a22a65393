"""Group-aware, stratified train/val/test splits and the dataset's variants (pure: no I/O).

Groups are connected components of "must stay together" links: the same uploader, the same content
(sha256), near-duplicate fingerprints, and ingest's `dup_of` links. A group never straddles two
splits. Assignment: multi-item groups first, largest first, each to the split whose per-class
deficit it fills best; then the singletons of each class (the vast majority at eMotions' scale) fill
the remaining per-class deficits exactly, in a seeded random order. 1,000,000 rows in ~100,000
groups take a few seconds.

Variants (the paper's sampling rules are unpublished; ours are documented here and in the card):
  full           every ok, labelled video
  balanced       per split, every class cut down (seeded) to the split's rarest class count, or to a
                 fixed count per class and split (setting)
  test_oriented  a larger class-balanced test set (`test_per_class` per class, default a quarter of
                 the rarest class; whole groups only),
                 a stratified validation share of the rest, everything else for training
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emotions_data.schema import Split, Variant

VARIANT_RULES = {  # how each variant is sampled: printed in the dataset card
    Variant.FULL: "every ok video with a final label, split by the ratios, stratified by label, whole groups per split",
    Variant.BALANCED: "per split, every class cut down (seeded) to the split's rarest class count, or to "
    "balanced_per_class; a subset of full",
    Variant.TEST_ORIENTED: "whole groups drawn into a class-balanced test set of test_oriented_per_class per class "
    "(default a quarter of the rarest class); a stratified validation share of the rest; the rest is training",
}


@dataclass(frozen=True)
class SplitSettings:
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    balanced_per_class: int | None = None  # None: each split's rarest class count
    test_oriented_per_class: int | None = None  # None: a quarter of the rarest class
    test_oriented_val_ratio: float = 0.1

    def __post_init__(self) -> None:
        """Raises ValueError naming the first setting out of range (NaN fails every comparison, so it is refused)."""
        ratios = tuple(self.ratios)
        if len(ratios) != 3 or not all(r >= 0 for r in ratios) or not abs(sum(ratios) - 1.0) <= 1e-6:
            raise ValueError(f"ratios must be three non-negative numbers summing to 1, not {self.ratios}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed}")
        for name in ("balanced_per_class", "test_oriented_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:  # 0 would silently mean "the default" or an empty variant
                raise ValueError(f"{name} must be at least 1 when given, not {value}")
        if not 0 <= self.test_oriented_val_ratio < 1:
            raise ValueError(f"test_oriented_val_ratio must be in [0, 1), not {self.test_oriented_val_ratio}")


def connected_groups(n: int, links: list[np.ndarray]) -> np.ndarray:
    """Component id (its smallest member) per item, from edge arrays of shape (k, 2): minimum-label
    propagation over the edges with pointer jumping, until every edge joins equal labels."""
    label = np.arange(n)
    nonempty = [np.asarray(e, dtype=np.int64).reshape(-1, 2) for e in links if len(e)]
    if not nonempty:
        return label
    edges = np.concatenate(nonempty)
    a, b = edges[:, 0], edges[:, 1]
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        np.minimum.at(new, label, new)  # a root learns the smaller label found by any of its members
        while True:
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new


def _members(group_index: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(group_index, kind="stable")
    return np.split(order, np.cumsum(sizes)[:-1])


def links_by_key(values: pd.Series) -> np.ndarray:
    """Edges joining every item to the first item with the same non-null key value."""
    valid = values.notna() & (values.astype(str) != "")
    codes = pd.Series(np.arange(len(values)))[valid.to_numpy()]
    keys = values[valid].to_numpy()
    if len(keys) == 0:
        return np.empty((0, 2), int)
    first = pd.Series(codes.to_numpy()).groupby(keys).transform("first").to_numpy()
    mask = first != codes.to_numpy()
    return np.stack([codes.to_numpy()[mask], first[mask]], axis=1)


def assign_splits(labels: np.ndarray, groups: np.ndarray, ratios: tuple[float, ...], seed: int) -> np.ndarray:
    """Split index (0..len(ratios)-1) per item; `labels` are class codes, `groups` component ids."""
    rng = np.random.default_rng(seed)
    n, n_splits = len(labels), len(ratios)
    n_classes = int(labels.max()) + 1 if n else 0
    result = np.full(n, -1, dtype=np.int64)
    _, group_index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    class_totals = np.bincount(labels, minlength=n_classes).astype(float)
    target = np.outer(ratios, class_totals)  # (splits, classes)
    filled = np.zeros_like(target)

    multi = np.flatnonzero(sizes > 1)
    if len(multi):
        members = _members(group_index, sizes)
        order = multi[np.lexsort((rng.random(len(multi)), -sizes[multi]))]
        scale = 1.0 / np.maximum(target, 1e-9)
        for g in order:
            idx = members[g]
            counts = np.bincount(labels[idx], minlength=n_classes)
            # the split furthest behind its own target on this group's classes (relative, so a small
            # split is not starved by a big one); ties go to the emptiest split
            score = ((target - filled) * scale) @ counts - 1e-9 * (filled.sum(axis=1) * scale.mean(axis=1))
            best = int(np.argmax(score))
            result[idx] = best
            filled[best] += counts

    single = np.flatnonzero(sizes[group_index] == 1)
    for c in range(n_classes):
        items = single[labels[single] == c]
        items = items[rng.permutation(len(items))]
        need = np.maximum(target[:, c] - filled[:, c], 0)
        if need.sum() > 0:
            quota = np.floor(need / need.sum() * len(items)).astype(int)
            rest = len(items) - quota.sum()
            quota[np.argsort(-(need / need.sum() * len(items) - quota))[:rest]] += 1
        else:
            quota = np.floor(np.asarray(ratios) * len(items)).astype(int)
            quota[0] += len(items) - quota.sum()
        result[items] = np.repeat(np.arange(n_splits), quota)
    return result


@dataclass(frozen=True)
class SplitResult:
    splits: pd.DataFrame  # video_id, variant, split
    deviation: pd.DataFrame  # variant, split, label, count, share, target share, deviation
    groups: np.ndarray


def grouping_links(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """Edges (row positions) that must not cross splits, by kind."""
    links = {col: links_by_key(items[col]) for col in ("uploader", "sha256") if col in items.columns}
    if "dup_of" in items.columns:
        position = pd.Series(np.arange(len(items)), index=items["video_id"])
        kept = items["dup_of"].map(position)
        ok = kept.notna().to_numpy()
        links["dup_of"] = np.stack([np.flatnonzero(ok), kept[ok].to_numpy(int)], axis=1)
    near = np.asarray(items.attrs.get("near_dup_edges", np.empty((0, 2), int)), dtype=int).reshape(-1, 2)
    links["near_duplicate"] = near
    return links


def find_leaks(items: pd.DataFrame, splits: pd.DataFrame, max_report: int = 20) -> list[str]:
    """The leakage gate: one line per problem (capped per kind), empty when the splits are clean.
    A problem is a linked pair (same uploader, same content, duplicate, near-duplicate) in two different
    splits of one variant, or a video in a split without a final label."""
    items = items.reset_index(drop=True)
    problems: list[str] = []
    labelled = set(items.loc[items["label"].notna(), "video_id"])
    unlabelled = sorted(set(splits["video_id"]) - labelled)
    problems += [f"{vid}: in a split but has no final label" for vid in unlabelled[:max_report]]
    ids = items["video_id"].to_numpy()
    for variant, part in splits.groupby("variant"):
        where = pd.Series(part["split"].to_numpy(), index=part["video_id"])
        split_of = pd.Series(ids).map(where).to_numpy()
        for kind, edges in grouping_links(items).items():
            if len(edges) == 0:
                continue
            a, b = split_of[edges[:, 0]], split_of[edges[:, 1]]
            crossing = pd.notna(a) & pd.notna(b) & (a != b)
            for i, j in edges[crossing][:max_report]:
                problems.append(f"{variant}: {ids[i]} ({split_of[i]}) and {ids[j]} ({split_of[j]}) share {kind}")
    return problems


def make_splits(items: pd.DataFrame, settings: SplitSettings) -> SplitResult:
    """`items`: one row per ok, labelled video with `video_id`, `label`, and any of `uploader`,
    `sha256`, `dup_of` (and precomputed `near_dup_edges` in `items.attrs`) for grouping."""
    items = items.reset_index(drop=True)
    label_codes, _ = pd.factorize(items["label"], sort=True)
    groups = connected_groups(len(items), list(grouping_links(items).values()))
    full = assign_splits(label_codes, groups, settings.ratios, settings.seed)
    rng = np.random.default_rng(settings.seed + 1)
    frames = [_frame(items, full, Variant.FULL)]
    frames.append(_frame(items, _balanced(label_codes, full, settings.balanced_per_class, rng), Variant.BALANCED))
    frames.append(_frame(items, _test_oriented(label_codes, groups, settings, rng), Variant.TEST_ORIENTED))
    splits = pd.concat(frames, ignore_index=True)
    return SplitResult(splits, deviation_table(splits, items, settings), groups)


def _frame(items: pd.DataFrame, split_index: np.ndarray, variant: Variant) -> pd.DataFrame:
    chosen = split_index >= 0
    return pd.DataFrame(
        {"video_id": items["video_id"].to_numpy()[chosen], "variant": variant,
         "split": np.asarray(list(Split))[split_index[chosen]]}
    )  # fmt: skip


def _balanced(labels: np.ndarray, full: np.ndarray, per_class: int | None, rng: np.random.Generator) -> np.ndarray:
    """A subset of `full` (so no new leakage): per split, the same count of every class."""
    out = np.full(len(labels), -1, dtype=np.int64)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    for s in range(len(Split)):
        in_split = full == s
        counts = np.bincount(labels[in_split], minlength=n_classes)
        m = int(counts.min()) if per_class is None else min(per_class, int(counts.min()))
        for c in range(n_classes):
            pool = np.flatnonzero(in_split & (labels == c))
            out[rng.choice(pool, size=m, replace=False)] = s
    return out


def _test_oriented(labels: np.ndarray, groups: np.ndarray, settings: SplitSettings, rng: np.random.Generator):
    """Whole groups into a class-balanced test set until every class has its quota; the rest is
    split into train and val by the stratified group assignment."""
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    totals = np.bincount(labels, minlength=n_classes)
    quota = settings.test_oriented_per_class or max(1, int(totals.min()) // 4)
    out = np.full(len(labels), -1, dtype=np.int64)
    _, group_index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = _members(group_index, sizes)
    taken = np.zeros(n_classes, dtype=np.int64)
    for g in rng.permutation(len(order)):
        idx = order[g]
        counts = np.bincount(labels[idx], minlength=n_classes)
        if np.all(taken + counts <= quota):
            out[idx] = list(Split).index(Split.TEST)
            taken += counts
            if np.all(taken == quota):
                break
    rest = np.flatnonzero(out < 0)
    val = settings.test_oriented_val_ratio
    inner = assign_splits(labels[rest], groups[rest], (1 - val, val), settings.seed + 2)
    out[rest] = np.where(inner == 0, list(Split).index(Split.TRAIN), list(Split).index(Split.VAL))
    return out


def deviation_table(splits: pd.DataFrame, items: pd.DataFrame, settings: SplitSettings) -> pd.DataFrame:
    """Per variant, split and class: count, share of the class that went to the split, the target
    share (the ratio, for `full`) and the difference."""
    merged = splits.merge(items[["video_id", "label"]], on="video_id")
    counts = merged.groupby(["variant", "split", "label"]).size().rename("count").reset_index()
    totals = merged.groupby(["variant", "label"]).size().rename("class_total").reset_index()
    table = counts.merge(totals, on=["variant", "label"])
    table["share"] = table["count"] / table["class_total"]
    ratio = dict(zip(Split, settings.ratios, strict=True))
    table["target_share"] = np.where(table["variant"] == Variant.FULL, table["split"].map(ratio), np.nan)
    table["deviation"] = table["share"] - table["target_share"]
    return table.drop(columns="class_total")

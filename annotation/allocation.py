"""Personnel allocation (pure): annotators into G groups balanced on their attributes, videos into
equal group shares, and the rotation that says which group cross-checks which.

Balance objective: attributes become standardised features (numeric ones z-scored, categorical
ones one-hot, each category scaled to unit variance), and the cost of a partition is
sum_g n_g * ||mean_g - mean||^2, the between-group sum of squares. Random balanced starts are
improved by best-improvement swaps (sizes stay equal); the best of several restarts is kept.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from annotation.roster import CATEGORICAL, NUMERIC


def group_names(n_groups: int) -> list[str]:
    """The names of `n_groups` groups: "A", "B", ...; ValueError outside 1-26."""
    if not 1 <= n_groups <= 26:
        raise ValueError("the number of groups must be between 1 and 26")
    return list(string.ascii_uppercase[:n_groups])


def features(frame: pd.DataFrame) -> np.ndarray:
    """The roster's allocation attributes as an (annotators, features) matrix: numeric ones standardised, categorical
    ones one-hot and standardised, so each attribute weighs about the same in `imbalance`."""
    parts = []
    for col in NUMERIC:
        x = frame[col].to_numpy(float)
        parts.append(((x - x.mean()) / (x.std() or 1.0))[:, None])
    for col in CATEGORICAL:
        onehot = pd.get_dummies(frame[col]).to_numpy(float)
        std = onehot.std(axis=0)
        parts.append((onehot - onehot.mean(axis=0)) / np.where(std > 0, std, 1.0))
    return np.hstack(parts) if parts else np.zeros((len(frame), 0))


def imbalance(x: np.ndarray, groups: np.ndarray, n_groups: int) -> float:
    """Between-group sum of squares of the features (0 = every group has the population's means)."""
    total = 0.0
    centre = x.mean(axis=0)
    for g in range(n_groups):
        members = x[groups == g]
        if len(members):
            total += len(members) * float(((members.mean(axis=0) - centre) ** 2).sum())
    return total


def _improve(x: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, float]:
    groups = groups.copy()
    cost = imbalance(x, groups, n_groups)
    while True:
        best = (cost, -1, -1)
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                if groups[i] == groups[j]:
                    continue
                groups[i], groups[j] = groups[j], groups[i]
                trial = imbalance(x, groups, n_groups)
                groups[i], groups[j] = groups[j], groups[i]
                if trial < best[0] - 1e-12:
                    best = (trial, i, j)
        if best[1] < 0:
            return groups, cost
        cost, i, j = best
        groups[i], groups[j] = groups[j], groups[i]


@dataclass(frozen=True)
class Allocation:
    annotator_group: dict[str, str]
    imbalance: float
    random_imbalance: float  # mean cost of random equal-size partitions, for scale


def allocate_annotators(frame: pd.DataFrame, n_groups: int = 3, seed: int = 0, restarts: int = 8) -> Allocation:
    """Split the roster's annotators into `n_groups` groups of equal size (+-1), balanced."""
    names = group_names(n_groups)
    if len(frame) < n_groups:
        raise ValueError(f"{len(frame)} annotators cannot fill {n_groups} groups")
    x = features(frame)
    rng = np.random.default_rng(seed)
    base = np.arange(len(frame)) % n_groups
    best_groups, best_cost, random_costs = None, np.inf, []
    for _ in range(restarts):
        start = rng.permutation(base)
        random_costs.append(imbalance(x, start, n_groups))
        groups, cost = _improve(x, start, n_groups)
        if cost < best_cost - 1e-12:
            best_groups, best_cost = groups, cost
    mapping = {ann: names[g] for ann, g in zip(frame["id"], best_groups, strict=True)}
    return Allocation(mapping, float(best_cost), float(np.mean(random_costs)))


def balance_table(frame: pd.DataFrame, annotator_group: dict[str, str]) -> pd.DataFrame:
    """Per group: size, means of the numeric attributes, counts of each category."""
    data = frame.assign(group=frame["id"].map(annotator_group))
    table = data.groupby("group").agg(size=("id", "size"), **{f"mean_{c}": (c, "mean") for c in NUMERIC})
    for col in CATEGORICAL:
        counts = pd.crosstab(data["group"], data[col])
        counts.columns = [f"{col}={v}" for v in counts.columns]
        table = table.join(counts)
    return table


def assign_videos(
    video_ids: list[str], n_groups: int, seed: int = 0, existing: dict[str, str] | None = None
) -> dict[str, str]:
    """Videos into equal group shares (+-1). Videos already in `existing` keep their group; new ones
    (in a seeded hash order) each go to the currently smallest group, so adding videos later keeps
    the shares balanced without moving anything already labelled."""
    names = group_names(n_groups)
    result = {v: g for v, g in (existing or {}).items() if g in names}
    sizes = {g: 0 for g in names}
    for g in result.values():
        sizes[g] += 1
    new = [v for v in dict.fromkeys(video_ids) if v not in result]
    for vid in sorted(new, key=lambda v: hashlib.sha256(f"{seed}:{v}".encode()).hexdigest()):
        group = min(names, key=lambda g: (sizes[g], g))
        result[vid] = group
        sizes[group] += 1
    return result


def crosscheck_group(group: str, groups: list[str]) -> str:
    """The group that re-labels `group`'s items: A->B, B->C, ..., last->A."""
    return groups[(groups.index(group) + 1) % len(groups)]

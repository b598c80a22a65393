"""Group-aware stratified splits, variants and the leakage gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emotions_data.stratified_split import SplitSettings, connected_groups, find_leaks, make_splits
from emotions_data.taxonomy import EMOTIONS6


@pytest.mark.parametrize("seed", range(20))
def test_components_match_a_breadth_first_search(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    edges = rng.integers(0, n, (int(rng.integers(0, 60)), 2))
    got = connected_groups(n, [edges])
    neighbours = {i: set() for i in range(n)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    component = [-1] * n
    for start in range(n):
        if component[start] < 0:
            stack, component[start] = [start], start
            while stack:
                for nxt in neighbours[stack.pop()]:
                    if component[nxt] < 0:
                        component[nxt] = start
                        stack.append(nxt)
    same = got[:, None] == got[None, :]
    expected = np.array(component)[:, None] == np.array(component)[None, :]
    assert np.array_equal(same, expected)


def items_table(n: int, uploaders: int | None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "video_id": [f"v{i:06d}" for i in range(n)],
            "label": rng.choice(EMOTIONS6.classes, n, p=[0.3, 0.1, 0.2, 0.2, 0.1, 0.1]),
        }
    )
    if uploaders:
        frame["uploader"] = [f"u{k}" for k in rng.integers(0, uploaders, n)]
    return frame


def test_full_split_follows_the_ratios_per_class_and_is_seeded():
    items = items_table(20000, uploaders=None)
    result = make_splits(items, SplitSettings(seed=3))
    full = result.deviation.query("variant == 'full'")
    assert full["deviation"].abs().max() < 0.001
    again = make_splits(items, SplitSettings(seed=3)).splits
    other = make_splits(items, SplitSettings(seed=4)).splits
    assert again.equals(result.splits) and not other.equals(result.splits)
    assert set(result.splits["variant"]) == {"full", "balanced", "test_oriented"}


def test_no_group_straddles_two_splits_and_ratios_stay_close():
    items = items_table(20000, uploaders=3000, seed=1)
    result = make_splits(items, SplitSettings(ratios=(0.7, 0.15, 0.15), seed=0))
    merged = result.splits.merge(items, on="video_id")
    for _, part in merged.groupby("variant"):
        assert (part.groupby("uploader")["split"].nunique() == 1).all()
    full = result.deviation.query("variant == 'full'")
    assert full["deviation"].abs().max() < 0.03
    assert find_leaks(items, result.splits) == []


def test_balanced_variant_has_equal_class_counts_and_is_a_subset_of_full():
    items = items_table(6000, uploaders=800, seed=2)
    splits = make_splits(items, SplitSettings(seed=0)).splits.merge(items, on="video_id")
    balanced = splits[splits["variant"] == "balanced"]
    for _, part in balanced.groupby("split"):
        assert part["label"].value_counts().nunique() == 1 and part["label"].nunique() == 6
    full = splits[splits["variant"] == "full"].set_index("video_id")["split"]
    assert (balanced.set_index("video_id")["split"] == full.loc[balanced["video_id"]].to_numpy()).all()
    fixed = make_splits(items, SplitSettings(seed=0, balanced_per_class=10)).splits
    counts = fixed[fixed["variant"] == "balanced"].merge(items, on="video_id").groupby(["split", "label"]).size()
    assert set(counts) == {10}


def test_test_oriented_variant_has_a_large_balanced_test_set():
    items = items_table(6000, uploaders=None, seed=4)
    splits = make_splits(items, SplitSettings(seed=0, test_oriented_per_class=150)).splits.merge(items, on="video_id")
    oriented = splits[splits["variant"] == "test_oriented"]
    test = oriented[oriented["split"] == "test"]["label"].value_counts()
    assert set(test) == {150} and len(test) == 6
    assert len(oriented) == len(items)
    val_share = (oriented["split"] == "val").sum() / (oriented["split"] != "test").sum()
    assert abs(val_share - 0.1) < 0.01


def test_the_gate_names_crossing_pairs_and_unlabelled_videos():
    items = items_table(300, uploaders=40, seed=5)
    items["sha256"] = [f"h{i}" for i in range(len(items))]
    items.loc[7, "sha256"] = items.loc[8, "sha256"]  # the same content under two ids
    splits = make_splits(items, SplitSettings(seed=0)).splits
    assert find_leaks(items, splits) == []
    tampered = splits.copy()
    row = tampered.index[(tampered["variant"] == "full") & (tampered["video_id"] == "v000007")][0]
    tampered.loc[row, "split"] = "test" if tampered.loc[row, "split"] != "test" else "train"
    problems = find_leaks(items, tampered)
    assert any("v000007" in p and "share" in p for p in problems)
    assert any("v000008" in p and "sha256" in p for p in problems)
    unlabelled = items.assign(label=items["label"].where(items["video_id"] != "v000010"))
    assert any("v000010: in a split but has no final label" in p for p in find_leaks(unlabelled, splits))


def test_near_duplicate_edges_keep_pairs_together():
    items = items_table(200, uploaders=None, seed=6)
    items.attrs["near_dup_edges"] = np.array([[0, 1], [1, 2], [50, 60]])
    splits = make_splits(items, SplitSettings(seed=0)).splits
    full = splits[splits["variant"] == "full"].set_index("video_id")["split"]
    assert full["v000000"] == full["v000001"] == full["v000002"] and full["v000050"] == full["v000060"]

"""`diff_releases` on two real releases of one dataset with one label changed, one item added and one removed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from emotions_data.release_diff import bootstrap_ci, confusion_pairs, diff_releases, render_diff
from tests.support.release_changes import ADDED, RELABELLED, REMOVED, two_releases


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    return two_releases(tmp_path_factory.mktemp("diff") / "ds")


def test_added_removed_relabelled_and_counts(releases):
    diff = diff_releases(*releases)
    assert (diff.old, diff.new, diff.variant) == ("1.0.0", "1.1.0", "full")
    assert diff.added["video_id"].tolist() == [ADDED]
    assert diff.removed["video_id"].tolist() == [REMOVED]
    assert diff.removed["reason"].iloc[0] == "rejected: near_duplicate"
    assert diff.relabelled["video_id"].tolist() == [RELABELLED]
    row = diff.relabelled.iloc[0]
    assert row["old"] != row["new"] and row["decided_by"] == "expert"
    assert diff.counts[[c for c in diff.counts.columns if c.startswith("1.0.0")]].to_numpy().sum() == 120
    assert diff.counts[[c for c in diff.counts.columns if c.startswith("1.1.0")]].to_numpy().sum() == 120
    share = {m["name"]: m for m in diff.metrics}["share decided by the expert"]
    assert share["old"]["value"] == 0 and share["new"]["value"] == pytest.approx(1 / 120)
    assert share["new"]["ci"][0] <= share["new"]["value"] <= share["new"]["ci"][1]
    text = "\n".join(render_diff(diff))
    assert "1 added, 1 removed, 1 relabelled" in text and "no baseline recorded" in text


def test_a_release_compared_with_itself_has_no_changes(releases):
    diff = diff_releases(releases[0], releases[0])
    assert not len(diff.added) and not len(diff.removed) and not len(diff.relabelled) and not len(diff.moved)


def test_bootstrap_over_confusion_pairs():
    cm = [[8, 2], [1, 9]]
    pairs = confusion_pairs(cm)
    assert len(pairs) == 20 and (pairs[:, 0] == pairs[:, 1]).sum() == 17
    low, high = bootstrap_ci(pairs, lambda p: np.mean(p[:, 0] == p[:, 1]))
    assert low < 0.85 < high and 0.5 < low and high <= 1.0
    assert bootstrap_ci(np.array([1.0])) is None


def test_baseline_war_and_uar_side_by_side_with_intervals(releases, tmp_path):
    with_baseline = releases[1].parent / "1.1.1"
    shutil.copytree(releases[1], with_baseline)
    (with_baseline / "baseline" / "full").mkdir(parents=True)
    cm = np.eye(6, dtype=int) * 3 + 1  # per class 4 right of 9
    (with_baseline / "baseline" / "full" / "metrics.json").write_text(json.dumps({"confusion_matrix": cm.tolist()}))
    metrics = {m["name"]: m for m in diff_releases(releases[0], with_baseline).metrics}
    war, uar = metrics["baseline test WAR"], metrics["baseline test UAR"]
    assert war["old"] is None and war["new"]["value"] == pytest.approx(24 / 54) and war["new"]["n"] == 54
    assert uar["new"]["value"] == pytest.approx(4 / 9) and uar["new"]["ci"][0] < 4 / 9 < uar["new"]["ci"][1]
    shutil.rmtree(with_baseline)

"""`emotions release diff` and `emotions release create --since` through the real CLI: two releases of one
dataset with one label changed, one item added and one removed; the newer card says what changed, and verifies."""

from __future__ import annotations

from emotions_data.layout import DatasetLayout
from tests.cli.test_release_verify_cli import evaluation
from tests.support.commands import run_cli
from tests.support.manifests import released_dataset
from tests.support.release_changes import ADDED, RELABELLED, REMOVED, change_dataset


def test_release_diff_and_the_changes_in_the_newer_card(tmp_path):
    root = tmp_path / "ds"
    layout, _ = released_dataset(root)
    run_cli("release", str(root), "--version", "1.0.0", check=True)
    change_dataset(layout)
    run_cli("release", str(root), "--version", "1.1.0", "--since", "1.0.0", check=True)
    proc = run_cli("release", "diff", str(root / "releases" / "1.0.0"), "1.1.0", check=True)
    out = proc.stdout
    assert "# Changes from 1.0.0 to 1.1.0" in out and "1 added, 1 removed, 1 relabelled" in out
    for video_id in (ADDED, REMOVED, RELABELLED):
        assert video_id in out
    assert "rejected: near_duplicate" in out and "mean per-item agreement" in out
    card = (root / "releases" / "1.1.0" / "README.md").read_text()
    assert "## Changes since 1.0.0" in card and RELABELLED in card
    copy = DatasetLayout(root).data_card(root.name, "1.1.0") / "README.md"
    assert copy.read_text() == card
    run_cli("release", "verify", str(root / "releases" / "1.1.0"), check=True)
    refused = run_cli("release", "diff", str(root / "releases" / "1.0.0"), "9.9.9")
    assert refused.returncode != 0 and "9.9.9: not a release folder" in refused.stderr
    eval_dir = evaluation(tmp_path / "eval", "ds 1.1.0")
    run_cli("release", "record-baseline", str(root / "releases" / "1.1.0"), str(eval_dir), check=True)
    recorded = (root / "releases" / "1.1.1" / "README.md").read_text()
    assert "## Changes since 1.0.0" in recorded and "## Baseline validation" in recorded, "the section is kept"

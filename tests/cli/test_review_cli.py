"""`emotions review` through the real CLI and the real browser (Debian's chromium driven by Playwright): a small
dataset with real clips (made with ffmpeg), a near-duplicate pair, a rejected clip, disputed votes, suspect labels
and a recorded baseline. The page loads from disk with no console error, its counts are the manifest's, the pair
shows two pictures, a player plays; screenshots are kept in the test's temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotions_data.card.plots import confusion_png
from emotions_data.demo_corpus import ClipSpec, make_clip, make_near_duplicate
from emotions_data.layout import DatasetLayout
from emotions_data.suspects import group_folds, record_validation
from emotions_data.taxonomy import EMOTIONS6
from tests.support.commands import run_cli

pytestmark = pytest.mark.server  # starts a browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
CLASSES = list(EMOTIONS6.classes)[:4]


def small_dataset(root: Path) -> DatasetLayout:
    """Four ok clips (one per class), a near-duplicate re-upload of the first, and a rejected clip never
    normalised; counted votes of three annotators, two of them disputed; labels and suspect labels."""
    layout = DatasetLayout(root)
    layout.manifests.mkdir(parents=True)
    ids = [f"clip_{i}" for i in range(len(CLASSES))]
    for i, (video_id, label) in enumerate(zip(ids, CLASSES, strict=True)):
        make_clip(ClipSpec(label, 10 + i, width=320, height=240, duration_s=1.5), layout.media_file(video_id))
    (root / "originals").mkdir()
    make_near_duplicate(layout.media_file(ids[0]), root / "originals" / "clip_0_copy.mp4")
    make_clip(ClipSpec(CLASSES[1], 99, width=160, height=120, duration_s=1.5), root / "originals" / "small.mp4")
    videos = pd.DataFrame({
        "video_id": [*ids, "clip_0_copy", "small"], "status": ["ok"] * 4 + ["rejected"] * 2,
        "reason": [None] * 4 + ["near_duplicate", "low_resolution"],
        "reason_detail": [None] * 4 + ["near-duplicate of clip_0 (distance 0.21)", "160x120: too small"],
        "dup_of": [None] * 4 + ["clip_0", None], "uploader": [f"u{i}" for i in range(6)],
        "original_path": [None] * 4 + ["originals/clip_0_copy.mp4", "originals/small.mp4"],
        "media_duration_s": [1.5] * 4 + [None, None], "duration_s": [1.5] * 6, "width": [320] * 4 + [240, 160],
        "height": [240] * 4 + [180, 120], "has_audio": True, "input_index": range(6),
    })  # fmt: skip
    videos.to_parquet(layout.videos_manifest)
    votes = pd.DataFrame([(v, f"A{k}", "label", CLASSES[(i + (k == 2 and i < 2)) % 4], 4.0 + k + i)
                          for i, v in enumerate(ids) for k in range(3)],
                         columns=["video_id", "annotator_id", "stage", "label", "lead_time_s"])  # fmt: skip
    votes.assign(status="kept").to_parquet(layout.votes)
    labels = pd.DataFrame({"video_id": ids, "label": CLASSES, "decided_by": "majority",
                           "agreement": [1 / 3, 1 / 3, 1.0, 1.0]})  # fmt: skip
    labels.to_parquet(layout.labels)
    folds = group_folds(layout, k=2)
    probs = np.full((len(folds), 6), 0.05)
    probs[:, 5] = 0.75  # the model says Tension everywhere: every label is disputed
    record_validation(layout, folds, probs, list(EMOTIONS6.classes), votes, {"folds": 2})
    baseline = layout.release("1.0.0").baseline / "full"
    baseline.mkdir(parents=True)
    (baseline / "confusion.png").write_bytes(confusion_png(np.eye(6, dtype=int) * 2, list(EMOTIONS6.classes)))
    return layout


def test_review_page_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    layout = small_dataset(tmp_path / "ds")
    proc = run_cli("review", str(layout.root), check=True)
    assert "1 near-duplicate pair(s)" in proc.stderr and "rejected near_duplicate: 1" in proc.stdout
    index = layout.root / "review" / "index.html"
    manifest = pd.read_parquet(layout.videos_manifest).fillna({"reason": ""})
    expected = {(s, r): n for (s, r), n in manifest.groupby(["status", "reason"]).size().items()}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        shown = {(r.get_attribute("data-status"), r.get_attribute("data-reason")): int(r.locator(".n").inner_text())
                 for r in page.locator("tr.count").all()}  # fmt: skip
        assert shown == expected
        pair = page.locator('.pair[data-copy="clip_0_copy"][data-kept="clip_0"]')
        loaded = pair.locator("img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        assert len(loaded) == 6 and all(loaded), "three pictures of each copy at the same times"
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        video = page.locator('video[data-video="clip_0"]')
        video.scroll_into_view_if_needed()
        played = video.evaluate("v => { v.muted = true; return v.play().then(() => new Promise(r => "
                                "setTimeout(() => r(v.currentTime), 700))); }")  # fmt: skip
        assert played > 0, "the player plays"
        page.screenshot(path=str(tmp_path / "review-player.png"))
        assert page.locator("#suspects + table tbody tr").count() == 3, "three labels the model disputes"
        cells = page.locator("#baseline + p + table tbody tr").count()
        assert cells == 4, "the out-of-fold confusion matrix: one row per final label"
        browser.close()
    assert errors == []

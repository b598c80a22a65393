"""Item ids that are prefixes of each other (`clip` and `clip.v2`): every file operation touches its own item only."""

from __future__ import annotations

import csv

import pandas as pd

from emotions_data.layout import DatasetLayout
from tests.support.commands import run_cli


def test_an_id_that_is_another_plus_a_dot_suffix_never_touches_the_others_file(server, tmp_path):
    table = tmp_path / "urls.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "video_id", "uploader"])
        # `clip.v2` is fetched first, so fetching `clip` afterwards must not remove originals/clip.v2.mp4
        for vid, name in (("clip.v2", "landscape.mp4"), ("clip", "portrait.mp4"), ("clip.v2.b", "lookalike_a.mp4")):
            writer.writerow([server.url(name), vid, f"up-{vid}"])
    out = tmp_path / "ds"
    proc = run_cli("ingest", str(table), "--out", str(out), "--executor", "serial", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out / "manifests" / "videos.parquet").set_index("video_id")
    assert frame.loc[["clip.v2", "clip", "clip.v2.b"], "status"].tolist() == ["ok", "ok", "ok"]
    layout = DatasetLayout(out)
    assert [p.name for p in layout.originals_of("clip")] == ["clip.mp4"]
    assert [p.name for p in layout.originals_of("clip.v2")] == ["clip.v2.mp4"]
    # a re-run re-fetches nothing and loses nothing
    again = run_cli("ingest", str(table), "--out", str(out), "--executor", "serial", "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert pd.read_parquet(out / "manifests" / "videos.parquet").set_index("video_id").loc[
        ["clip.v2", "clip", "clip.v2.b"], "status"
    ].tolist() == ["ok", "ok", "ok"]

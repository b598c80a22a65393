"""Ingest through the real tools: yt-dlp downloading from a loopback HTTP server, ffprobe, ffmpeg."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from emotions_data.executor import make_executor
from emotions_data.ingest import ingest, read_manifest
from emotions_data.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, VIDEOS_SCHEMA
from emotions_data.sources import is_safe_id
from emotions_data.storage import TMP_MARK
from tests.support.corpus import CORPUS, ffprobe_json, settings, url_table


def assert_browser_safe(media: Path, max_short_side: int = 720) -> dict:
    info = ffprobe_json(media)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert info["format"]["format_name"].startswith("mov,mp4")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert audio["codec_name"] == "aac"
    assert video["r_frame_rate"] == video["avg_frame_rate"], "constant frame rate"
    assert abs(float(video["duration"]) - float(audio["duration"])) < 0.05, "audio and video of equal length"
    assert not any("rotation" in sd for sd in video.get("side_data_list", [])), "no rotation left"
    assert video["width"] % 2 == 0 and video["height"] % 2 == 0
    assert min(video["width"], video["height"]) <= max_short_side
    return video


@pytest.fixture(scope="module")
def url_run(corpus, tmp_path_factory):
    """One full URL ingest of the whole corpus plus a 404, shared by the assertions below."""
    from emotions_data.loopback import serve

    out = tmp_path_factory.mktemp("url_run")
    with serve(corpus, faults={"/gone.mp4": [404] * 50}) as srv:
        table = url_table(srv, out.parent / f"{out.name}-urls.csv", CORPUS, extra={"gone": srv.url("gone.mp4")})
        report = ingest([table], out / "ds", settings(), executor=make_executor("local", 2))
        hits_404 = srv.hits("gone.mp4")
        report2 = ingest([table], out / "ds", settings(), executor=make_executor("local", 2))
        hits_404_after = srv.hits("gone.mp4")
    return out / "ds", report, report2, (hits_404, hits_404_after), table


def _by_source_name(frame: pd.DataFrame) -> dict[str, pd.Series]:
    from urllib.parse import unquote

    return {unquote(r.source.rsplit("/", 1)[1]): r for r in frame.itertuples()}


def test_every_input_gets_exactly_one_row_with_the_expected_outcome(url_run):
    ds, report, _, _, _ = url_run
    frame = read_manifest(ds / "manifests" / "videos.parquet")
    assert len(frame) == len(CORPUS) + 1 and frame["video_id"].is_unique
    rows = _by_source_name(frame)
    for name, (_, status, reason) in CORPUS.items():
        row = rows[name]
        assert (row.status, row.reason if row.status != "ok" else None) == (status, reason), (name, row.reason_detail)
        if status != "ok":
            assert row.reason_detail, name
    gone = rows["gone.mp4"]
    assert (gone.status, gone.reason, gone.retryable) == ("failed", "download_error", False)
    assert "404" in gone.reason_detail
    assert report.status_counts == frame["status"].value_counts().to_dict()


def test_manifest_schema_ids_and_carried_columns(url_run):
    ds, *_ = url_run
    table = pq.read_table(ds / "manifests" / "videos.parquet")
    assert table.schema.metadata[SCHEMA_VERSION_KEY].decode() == SCHEMA_VERSION
    assert table.schema.names[: len(VIDEOS_SCHEMA)] == VIDEOS_SCHEMA.names
    frame = table.to_pandas()
    assert "note" in frame.columns and frame["note"].str.startswith("note ").sum() == len(CORPUS)
    assert all(is_safe_id(v) for v in frame["video_id"])
    hostile = frame[frame["source"].str.endswith("/copy.mp4")].iloc[0]
    assert "/" not in hostile.video_id and ".." not in hostile.video_id
    ok = frame[frame["status"] == "ok"]
    assert ok["extractor"].notna().all() and ok["downloader_version"].notna().all()
    assert (ok["downloader"] == "yt-dlp").all()
    for row in ok.itertuples():
        assert row.media_path == f"media/{row.video_id}.mp4" and (ds / row.media_path).is_file()
        assert (ds / row.original_path).resolve().is_relative_to(ds.resolve())
        assert len(row.sha256) == 64 and row.fingerprint.startswith("p2:")
    # Nothing but the ok rows' media is left in media/, and no temporaries anywhere.
    assert sorted(p.name for p in (ds / "media").iterdir()) == sorted(f"{v}.mp4" for v in ok["video_id"])
    assert not [p for p in ds.rglob(f"{TMP_MARK}*")]


def test_normalised_media_is_browser_safe_and_faithful(url_run):
    ds, *_ = url_run
    rows = _by_source_name(read_manifest(ds / "manifests" / "videos.parquet"))
    for name, row in rows.items():
        if row.status != "ok":
            continue
        video = assert_browser_safe(ds / row.media_path)
        assert abs(video["width"] / video["height"] - row.width / row.height) < 0.02, name  # aspect kept
        assert abs(row.media_duration_s - row.duration_s) < 0.15, name
    assert rows["variable rate.mp4"].vfr and not rows["landscape.mp4"].vfr
    assert rows["vp9 clip.webm"].video_codec == "vp9" and rows["vp9 clip.webm"].audio_codec == "opus"
    portrait = rows["portrait.mp4"]
    assert portrait.media_height > portrait.media_width


def test_rotated_phone_clip_ends_up_upright(url_run):
    ds, *_ = url_run
    row = _by_source_name(read_manifest(ds / "manifests" / "videos.parquet"))["rotated.mp4"]
    assert row.rotation in (90, 270) and (row.width, row.height) == (240, 320)
    assert (row.media_width, row.media_height) == (240, 320)
    frame = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(ds / row.media_path), "-frames:v", "1", "-vf", "scale=6:9,format=gray",
         "-f", "rawvideo", "-"], check=True, capture_output=True,
    ).stdout  # fmt: skip
    pixels = np.frombuffer(frame, np.uint8).reshape(9, 6)
    assert pixels[:2].mean() > 200 and pixels[-3:].mean() < 50, "white third must be on top"


def test_near_duplicate_points_at_its_source_and_lookalikes_survive(url_run):
    ds, *_ = url_run
    rows = _by_source_name(read_manifest(ds / "manifests" / "videos.parquet"))
    assert rows["reupload.mp4"].dup_of == rows["source.mp4"].video_id
    assert rows["copy.mp4"].dup_of == rows["landscape.mp4"].video_id
    assert rows["lookalike_a.mp4"].status == rows["lookalike_b.mp4"].status == "ok"
    from emotions_data.fingerprint import distance

    assert distance(rows["lookalike_a.mp4"].fingerprint, rows["lookalike_b.mp4"].fingerprint) > 0.35
    assert distance(rows["reupload.mp4"].fingerprint, rows["source.mp4"].fingerprint) < 0.3
    detail = rows["reupload.mp4"].reason_detail
    assert re.fullmatch(r"near-duplicate of \S+ \(distance 0\.\d\d \(picture 0\.\d\d, sound 0\.\d\d\)\)", detail), (
        detail
    )


def test_rerun_skips_finished_work_and_yields_the_same_manifest(url_run):
    ds, report, report2, (hits, hits_after), _ = url_run
    assert report.n_processed["fetch"] == len(CORPUS) + 1
    assert report2.n_processed == {"resolve": 0, "fetch": 0, "normalise": 0}
    assert hits_after == hits, "a permanent failure (404) is not retried"
    first = pq.read_table(ds / "manifests" / "videos.parquet")
    ingest([url_run[4]], ds, settings(), executor=make_executor("serial", 1))
    assert pq.read_table(ds / "manifests" / "videos.parquet").equals(first)


def test_transient_429_fails_then_succeeds_on_the_next_run(corpus, server, tmp_path):
    server.add_faults("landscape.mp4", [429] * 3)
    table = url_table(server, tmp_path / "urls.csv", ["landscape.mp4"])
    report = ingest([table], tmp_path / "ds", settings(**{"download.attempts": 1}), executor=make_executor("serial", 1))
    row = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet").iloc[0]
    assert (row.status, row.reason, row.retryable) == ("failed", "download_error", True)
    assert "429" in row.reason_detail and report.status_counts == {"failed": 1}
    # Two more 429s are queued: with 3 attempts and backoff the next run gets through.
    ingest([table], tmp_path / "ds", settings(**{"download.attempts": 3}), executor=make_executor("serial", 1))
    row = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet").iloc[0]
    assert row.status == "ok" and row.attempts == 4
    assert server.hits("landscape.mp4") >= 4


def test_server_error_then_success_within_one_run(corpus, server, tmp_path):
    server.add_faults("portrait.mp4", [503])
    table = url_table(server, tmp_path / "urls.csv", ["portrait.mp4"])
    ingest([table], tmp_path / "ds", settings(), executor=make_executor("serial", 1))
    row = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet").iloc[0]
    assert row.status == "ok" and row.attempts == 2


def test_cookies_and_user_agent_reach_the_server_but_not_the_manifest(corpus, server, tmp_path, monkeypatch):
    cookies = tmp_path / "secret-cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tsecret-value\n")
    monkeypatch.setenv("EMOTIONS_COOKIES_FILE", str(cookies))
    table = url_table(server, tmp_path / "urls.csv", ["landscape.mp4"])
    ingest([table], tmp_path / "ds", settings(**{"download.user_agent": "emotions-test/1"}),
           executor=make_executor("serial", 1))  # fmt: skip
    headers = server.headers("landscape.mp4")
    assert "session=secret-value" in headers.get("Cookie", "")
    assert headers.get("User-Agent") == "emotions-test/1"
    for path in (tmp_path / "ds").rglob("*"):
        if path.is_file() and path.suffix in (".parquet", ".json"):
            assert b"secret" not in path.read_bytes(), path


def test_per_host_request_rate_holds_across_workers(corpus, server, tmp_path):
    names = ["landscape.mp4", "portrait.mp4", "lookalike_a.mp4", "lookalike_b.mp4"]
    table = url_table(server, tmp_path / "urls.csv", names)
    ingest([table], tmp_path / "ds", settings(**{"download.max_requests_per_minute": 60, "shard_size": 1}),
           executor=make_executor("local", 2))  # fmt: skip
    starts = sorted(server.first_request_times().values())
    assert len(starts) == len(names)
    # Download starts are spaced 1 s apart across both workers; the request itself follows the start
    # after yt-dlp's set-up, which jitters, so the span is checked with that slack (unthrottled: ~0.5 s).
    assert starts[-1] - starts[0] >= (len(names) - 1) * 1.0 - 0.3
    assert read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet")["status"].eq("ok").all()


def test_local_folder_with_unicode_names(corpus, tmp_path):
    folder = tmp_path / "in put"
    folder.mkdir()
    for name in ("ünïcödé 视频.mp4", "portrait.mp4", "garbage.mp4", "empty.mp4"):
        (folder / name).write_bytes((corpus / name).read_bytes())
    (folder / "notes.txt").write_text("not a video")
    ingest([folder], tmp_path / "ds", settings(), executor=make_executor("serial", 1))
    frame = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet")
    assert len(frame) == 4 and all(is_safe_id(v) for v in frame["video_id"])
    assert set(frame["source_kind"]) == {"file"} and frame["original_path"].isna().all()
    assert sorted(frame["status"]) == ["ok", "ok", "rejected", "rejected"]
    empty = frame[frame["source"].str.endswith("empty.mp4")].iloc[0]
    assert (empty.reason, empty.size_bytes) == ("corrupt", 0) and "0 bytes" in empty.reason_detail
    assert all(Path(s).is_absolute() for s in frame["source"])


def test_file_urls_need_the_explicit_flag(corpus, tmp_path):
    url = (corpus / "landscape.mp4").as_uri()
    (tmp_path / "urls.txt").write_text(url + "\n")
    ingest([tmp_path / "urls.txt"], tmp_path / "ds", settings(), executor=make_executor("serial", 1))
    row = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet").iloc[0]
    assert (row.status, row.reason, row.retryable) == ("failed", "download_error", False)
    assert "--allow-file-urls" in row.reason_detail
    ingest([tmp_path / "urls.txt"], tmp_path / "ds2", settings(**{"download.allow_file_urls": True}),
           executor=make_executor("serial", 1))  # fmt: skip
    assert read_manifest(tmp_path / "ds2" / "manifests" / "videos.parquet").iloc[0].status == "ok"


def test_changed_filters_apply_on_rerun_without_refetching(corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((corpus / "portrait.mp4").read_bytes())
    ingest([folder], tmp_path / "ds", settings(), executor=make_executor("serial", 1))
    report = ingest([folder], tmp_path / "ds", settings(**{"filters.min_duration_s": 5.0}),
                    executor=make_executor("serial", 1))  # fmt: skip
    row = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet").iloc[0]
    assert (row.status, row.reason) == ("rejected", "too_short") and report.n_processed["fetch"] == 0
    assert not (tmp_path / "ds" / "media" / f"{row.video_id}.mp4").exists()


def test_resolution_cap_and_new_recipe_redo_media(corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((corpus / "source.mp4").read_bytes())  # 640x360
    ingest([folder], tmp_path / "ds", settings(), executor=make_executor("serial", 1))
    base = settings()
    capped = replace(base, filters=replace(base.filters, min_short_side=100),
                     normalise=replace(base.normalise, max_short_side=120))  # fmt: skip
    report = ingest([folder], tmp_path / "ds", capped, executor=make_executor("serial", 1))
    row = read_manifest(tmp_path / "ds" / "manifests" / "videos.parquet").iloc[0]
    assert report.n_processed["normalise"] == 1 and (row.media_width, row.media_height) == (214, 120)
    assert_browser_safe(tmp_path / "ds" / row.media_path, max_short_side=120)


def test_a_second_concurrent_run_is_refused(corpus, tmp_path):
    from emotions_data.layout import DatasetLayout
    from emotions_data.storage import exclusive_lock

    layout = DatasetLayout(tmp_path / "ds")
    with exclusive_lock(layout.lock, "first"), pytest.raises(RuntimeError, match="another run"):
        ingest([corpus / "landscape.mp4"], layout.root, settings(), executor=make_executor("serial", 1))

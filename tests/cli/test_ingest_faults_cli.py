"""`emotions ingest` against bad input and local faults, as a user runs it (real processes, yt-dlp and ffmpeg on
loopback): the right result, or one `error:` line naming the file, row, option or folder and the reason, a non-zero
exit, and nothing already done lost or changed.

A bad item is that item's failure (status and reason in the manifest) and the other items go on. A fault of the
machine (a full disk or quota, a read-only or unwritable folder) stops the run with one line; committed work is kept
and the items at hand stay retryable. The faults are real: a small tmpfs that fills, a read-only bind mount, and
errors injected into the real process's system calls with strace (tests/support/mounts.py).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from emotions_data.ingest import read_manifest
from emotions_data.schema import NORMALISE_STAGE_SCHEMA, PROBE_STAGE_SCHEMA
from emotions_data.storage import StageLog
from tests.support.commands import run_cli
from tests.support.corpus import CORPUS, url_table
from tests.support.mounts import read_only, resize, run_with_error, small_disk, used_bytes

pytestmark = pytest.mark.slow
ARGS = ["--workers", "2", "--max-duration", "6"]
FOUR = ["landscape.mp4", "portrait.mp4", "rotated.mp4", "copy.mp4"]  # three ok, one exact duplicate


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def ingest(table: Path, out: Path, *more: str) -> subprocess.CompletedProcess:
    return run_cli("ingest", str(table), "--out", str(out), *ARGS, *more)


def assert_designed_outcomes(ds: Path, names: list[str]) -> pd.DataFrame:
    """Every input has exactly one row, with the outcome the corpus design intends."""
    frame = read_manifest(ds / "manifests" / "videos.parquet")
    assert len(frame) == len(names) and frame["video_id"].is_unique
    by_name = {unquote(Path(s).name): r for s, r in zip(frame["source"], frame.itertuples(), strict=True)}
    for name in names:
        row = by_name[name]
        _, status, reason = CORPUS[name]
        assert (row.status, row.reason if status != "ok" else None) == (status, reason), (name, row.reason_detail)
    return frame


def fetch_rows(ds: Path) -> pd.DataFrame:
    return StageLog(ds / ".work" / "fetch", PROBE_STAGE_SCHEMA).load()


# ---------------------------------------------------------------- the machine's faults: full disk, read-only folders


def test_a_disk_that_fills_during_downloads_stops_the_run_and_the_items_stay_retryable(server, tmp_path):
    table = url_table(server, tmp_path / "urls.csv", FOUR)
    with small_disk(tmp_path / "disk", "300k") as disk:  # the four originals take 640 kB
        ds = disk / "ds"
        line = one_line_error(ingest(table, ds))
        assert f"error: {ds}/.work/downloads/" in line and "no space left on device (ENOSPC)" in line
        assert "free some space and run the same command again" in line
        fetched = fetch_rows(ds)
        assert not (fetched["status"] == "failed").any(), "a full disk is never an item's failure"
        done = {Path(s).name for s in fetched.merge(pd.read_parquet(ds / ".work" / "inputs.parquet"))["source"]}
        hits = {name: server.hits(name) for name in FOUR}

        resize(disk, "50m")  # space freed
        proc = ingest(table, ds)
        assert proc.returncode == 0, proc.stderr
        assert_designed_outcomes(ds, FOUR)
        for name in done:  # committed work was kept, not fetched again
            assert server.hits(name) == hits[name], name


def test_a_disk_that_fills_during_normalising_keeps_the_old_manifest(server, tmp_path):
    table = url_table(server, tmp_path / "urls.csv", FOUR)
    with small_disk(tmp_path / "disk", "50m") as disk:
        ds = disk / "ds"
        proc = ingest(table, ds, "--min-duration", "5")  # everything fetched, nothing normalised (2 s: too short)
        assert proc.returncode == 0, proc.stderr
        manifest = (ds / "manifests" / "videos.parquet").read_bytes()
        hits = {name: server.hits(name) for name in FOUR}

        resize(disk, used_bytes(disk) + 4096)  # no room for a normalised clip
        line = one_line_error(ingest(table, ds))
        # Two normalise jobs run at once: the first write to fail is a clip's (media/) or a finished job's shard
        # commit (.work/normalise), whichever comes first; the line names that folder.
        assert re.match(rf"error: {re.escape(str(ds))}/(media|\.work/normalise): no space left on device \(ENOSPC\)",
                        line), line  # fmt: skip
        assert (ds / "manifests" / "videos.parquet").read_bytes() == manifest, "the last manifest is kept as it was"
        normalised = StageLog(ds / ".work" / "normalise", NORMALISE_STAGE_SCHEMA)
        assert not normalised.shards() or not (normalised.load()["status"] == "failed").any()

        resize(disk, "50m")
        proc = ingest(table, ds)
        assert proc.returncode == 0, proc.stderr
        assert_designed_outcomes(ds, FOUR)
        assert {name: server.hits(name) for name in FOUR} == hits, "nothing is downloaded again"


@pytest.mark.parametrize(
    ("folder", "named"),
    [
        (".", "ds"),  # --out itself read-only
        (".work/downloads", "ds/.work/downloads"),  # yt-dlp's work folder
        ("originals", "ds/originals"),
        (".work/fetch", "ds/.work/fetch"),  # where workers commit their rows
        ("media", "ds/media"),  # ffmpeg's output
        ("manifests", "ds/manifests"),  # the driver's
    ],
)
def test_a_read_only_folder_stops_the_run_naming_it_and_the_next_run_finishes(server, tmp_path, folder, named):
    names = ["landscape.mp4", "rotated.mp4"]
    table = url_table(server, tmp_path / "urls.csv", names)
    ds = tmp_path / "ds"
    with read_only(ds / folder):
        line = one_line_error(ingest(table, ds))
    assert line.startswith(f"error: {tmp_path / named}: read-only file system (EROFS);"), line
    assert not (ds / "manifests" / "videos.parquet").exists()
    if (ds / ".work" / "fetch").exists():
        assert not (fetch_rows(ds)["status"] == "failed").any()
    proc = ingest(table, ds)
    assert proc.returncode == 0, proc.stderr
    assert_designed_outcomes(ds, names)


@pytest.mark.parametrize(
    ("where", "syscalls", "error", "named", "reason"),
    [
        # yt-dlp's own output (it wraps the OSError in its DownloadError, or keeps only its text)
        ("part", "openat", "EACCES", "ds/.work/downloads/clip", "permission denied (EACCES)"),
        ("part", "openat", "EPERM", "ds/.work/downloads/clip", "operation not permitted (EPERM)"),
        ("part", "write", "EDQUOT", "ds/.work/downloads/clip", "disk quota exceeded (EDQUOT)"),
        ("part", "write", "ENOSPC", "ds/.work/downloads/clip", "no space left on device (ENOSPC)"),
        ("part", "write", "EIO", "ds/.work/downloads/clip", "input/output error (EIO)"),
        # the driver's, after all the work: the manifests folder cannot be made
        ("manifests", "mkdir,mkdirat", "ENOSPC", "ds", "no space left on device (ENOSPC)"),
        ("manifests", "mkdir,mkdirat", "EACCES", "ds", "permission denied (EACCES)"),
    ],
)
def test_errors_of_the_system_calls_are_the_machines(server, tmp_path, where, syscalls, error, named, reason):
    table = tmp_path / "urls.csv"
    table.write_text(f"url,video_id\n{server.url('landscape.mp4')},clip\n")
    ds = tmp_path / "ds"
    path = ds / ".work" / "downloads" / "clip" / "original.mp4.part" if where == "part" else ds / where
    proc = run_with_error(path, syscalls, error, "ingest", str(table), "--out", str(ds), *ARGS)
    assert one_line_error(proc).startswith(f"error: {tmp_path / named}: {reason};")
    assert not (ds / ".work" / "fetch").exists() or not (fetch_rows(ds)["status"] == "failed").any()
    proc = ingest(table, ds)
    assert proc.returncode == 0, proc.stderr
    assert_designed_outcomes(ds, ["landscape.mp4"])


# ---------------------------------------------------------------- bad items: their own failure, the others go on


def test_malformed_urls_are_permanent_failures_and_the_others_go_on(server, tmp_path):
    good = server.url("landscape.mp4")
    bad = {
        "nul": good.replace("landscape", "land\x00scape"),
        "esc": good + "\x1b",
        "space-in-host": "http://bad host/a.mp4",
        "space-in-ipv4-host": good.replace("127.0.0.1", "127.0.0 .1"),
        "no-host": "http:///a.mp4",
        "empty-host-with-user": "http://user@/a.mp4",
        "scheme": "ftp://127.0.0.1/a.mp4",
        "port-range": good.replace(str(server.httpd.server_address[1]), "99999"),
        "port-text": "http://127.0.0.1:x/a.mp4",
        "ipv6": "http://[::1/a.mp4",
    }
    table = tmp_path / "urls.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "video_id"])
        writer.writerow([good, "good"])
        writer.writerows([url, vid] for vid, url in bad.items())
    ds = tmp_path / "ds"
    for run in range(2):  # the second run retries none of them
        if run:
            hits = server.hits("landscape.mp4")
        proc = ingest(table, ds)  # a process pool: every error crosses the process boundary as plain data
        assert proc.returncode == 0, proc.stderr
        frame = read_manifest(ds / "manifests" / "videos.parquet").set_index("video_id")
        assert frame.loc["good", "status"] == "ok"
        failed = frame.drop(index="good")
        assert (failed["status"] == "failed").all() and (failed["reason"] == "download_error").all()
        assert not failed["retryable"].any() and (failed["attempts"] == 1).all()
    assert server.hits("landscape.mp4") == hits
    details = failed["reason_detail"]
    assert details["nul"].startswith("malformed URL: control character NUL at character")
    assert details["space-in-host"] == "malformed URL: host 'bad host' contains a space"
    assert details["no-host"] == details["empty-host-with-user"] == "malformed URL: no host"
    assert details["port-range"] == "malformed URL: invalid port '99999' (must be 1-65535)"
    assert details["scheme"] == "URL scheme 'ftp' is not allowed"
    assert details["ipv6"] == "malformed URL: Invalid IPv6 URL"
    assert set(server.handler.hits) == {"/landscape.mp4"}, "no malformed URL reached the network"


def test_unreadable_entries_of_a_source_folder_are_their_own_failures(corpus, tmp_path):
    folder = tmp_path / "in"
    (folder / "clips.mp4").mkdir(parents=True)  # a folder named like a video: searched, not an input
    for name in ("landscape.mp4", "portrait.mp4"):
        (folder / name).write_bytes((corpus / name).read_bytes())
    (folder / "clips.mp4" / "rotated.mp4").write_bytes((corpus / "rotated.mp4").read_bytes())
    os.mkfifo(folder / "fifo.mp4")
    (folder / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    ds = tmp_path / "ds"
    # root reads every file, so "permission denied" on one of them comes from the kernel through strace
    proc = run_with_error(folder / "portrait.mp4", "open,openat", "EACCES", "ingest", str(folder), "--out", str(ds),
                          *ARGS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frame = read_manifest(ds / "manifests" / "videos.parquet")
    rows = {Path(s).name: r for s, r in zip(frame["source"], frame.itertuples(), strict=True)}
    assert len(frame) == 6
    assert [rows[n].status for n in ("landscape.mp4", "rotated.mp4")] == ["ok", "ok"]
    expected = {
        "portrait.mp4": "cannot read: Permission denied",
        "fifo.mp4": "not a regular file (a FIFO)",
        "dangling.mp4": "dangling symbolic link",
        "loop.mp4": "cannot read: Too many levels of symbolic links",
    }
    for name, detail in expected.items():
        row = rows[name]
        assert (row.status, row.reason, row.retryable) == ("failed", "source_missing", True), name
        assert row.reason_detail == f"{folder / name}: {detail}"
    proc = ingest(folder, ds)  # readable again: the retryable item is done, the others fail the same way
    assert proc.returncode == 0, proc.stderr
    frame = read_manifest(ds / "manifests" / "videos.parquet")
    assert sorted(frame["status"]) == ["failed", "failed", "failed", "ok", "ok", "ok"]


# ---------------------------------------------------------------- bad sources and options: one line, nothing written


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: (p / "urls.csv").write_text("url,video_id,uploader\n"), "urls.csv: no rows"),
        (lambda p: (p / "urls.txt").write_text("# nothing yet\n"), "urls.txt: no URLs"),
        (lambda p: (p / "videos").mkdir() or (p / "videos" / "notes.txt").write_text("x"),
         "videos: no videos in this folder"),
        (lambda p: (p / "urls.parquet").write_text("url\nhttp://127.0.0.1:9/a.mp4\n"),
         "urls.parquet: unreadable source: Could not open Parquet input source"),
        (lambda p: (p / "urls.parquet").write_bytes(b""), "urls.parquet: unreadable source"),
        (lambda p: os.mkfifo(p / "urls.txt"), "urls.txt: not a regular file or a folder"),
        (lambda p: None, "urls.txt: no such file or folder"),
    ],
)  # fmt: skip
def test_a_bad_source_is_one_line_naming_it(tmp_path, make, expected):
    make(tmp_path)
    source = next((p for p in tmp_path.iterdir() if p.name != "ds"), tmp_path / "urls.txt")
    line = one_line_error(run_cli("ingest", str(source), "--out", str(tmp_path / "ds")))
    assert line.startswith(f"error: {tmp_path}/{expected}"), line
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("out", "options", "expected"),
    [
        ("a-file", [], "--out {tmp}/a-file: not a folder; give a new folder, or an existing dataset's"),
        ("a-file/ds", [], "--out {tmp}/a-file/ds: not a folder ({tmp}/a-file is not a folder)"),
        ("ds", ["--workers", "0"], "settings: workers = 0: must be >= 1"),
        ("ds", ["--workers", "-3"], "settings: workers = -3: must be >= 1"),
    ],
)
def test_a_bad_out_or_workers_is_one_line_naming_the_option(corpus, tmp_path, out, options, expected):
    (tmp_path / "a-file").write_text("not a folder\n")
    proc = run_cli("ingest", str(corpus / "landscape.mp4"), "--out", str(tmp_path / out), *options)
    assert one_line_error(proc).startswith("error: " + expected.format(tmp=tmp_path))
    assert (tmp_path / "a-file").read_text() == "not a folder\n" and not (tmp_path / "ds").exists()


def test_out_on_a_full_disk_is_one_line(corpus, tmp_path):
    with small_disk(tmp_path / "disk", "4k") as disk:
        line = one_line_error(run_cli("ingest", str(corpus / "landscape.mp4"), "--out", str(disk / "ds")))
        assert line.startswith(f"error: {disk}/ds") and "no space left on device (ENOSPC)" in line


@pytest.mark.parametrize("folder", ["media", "originals"])
def test_a_folder_that_is_no_dataset_but_holds_media_is_refused_and_kept(corpus, tmp_path, folder):
    """A run ends by deleting media no manifest row names: in someone's own folder those would be their files."""
    own = tmp_path / "mine" / folder / "holiday.mp4"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"my holiday")
    proc = run_cli("ingest", str(corpus / "landscape.mp4"), "--out", str(tmp_path / "mine"))
    line = one_line_error(proc)
    assert line.startswith(f"error: {tmp_path}/mine: not an emotions dataset") and "holiday.mp4" in line, line
    assert own.read_bytes() == b"my holiday"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == [folder], "nothing was written"

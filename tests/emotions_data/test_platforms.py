"""The platform metadata rules: scrubbing the info JSON, the manifest's platform columns, uploader groups, one item
per platform video, and fetch logs committed before the platform columns existed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.platforms import platform_facts, platform_of_extractor, scrub_info, uploader_group
from emotions_data.schema import OUTCOME_FIELDS, PROBE_FIELDS, PROBE_STAGE_SCHEMA
from emotions_data.screening import platform_duplicates
from emotions_data.storage import StageLog


def test_scrubbing_drops_headers_cookies_media_addresses_local_paths_and_signatures():
    info = {
        "id": "7301", "webpage_url": "https://www.douyin.com/video/7301", "_type": "video",
        "http_headers": {"User-Agent": "x", "Cookie": "sid=1"}, "cookies": "sid_tt=secret",
        "url": "https://v26-web.douyinvod.com/a.mp4?x-signature=abc", "filepath": "/home/me/ds/originals/a.mp4",
        "formats": [{"format_id": "play_addr", "url": "https://cdn/a.mp4?sign=1", "http_headers": {"Referer": "r"},
                     "width": 320}],
        "thumbnail": "https://p3-sign.douyinpic.com/c.jpeg?x-expires=19&x-signature=def&from=4010",
        "uploader_url": "https://www.douyin.com/user/MS4w",
    }  # fmt: skip
    clean = scrub_info(info)
    assert clean == {
        "id": "7301", "webpage_url": "https://www.douyin.com/video/7301",
        "formats": [{"format_id": "play_addr", "width": 320}],
        "thumbnail": "https://p3-sign.douyinpic.com/c.jpeg?from=4010",
        "uploader_url": "https://www.douyin.com/user/MS4w",
    }  # fmt: skip


def test_platform_facts_name_the_account_and_the_upload_time():
    info = {"id": "7301", "uploader": "seaside_cat", "uploader_id": "1104", "channel_id": "MS4w", "title": "t",
            "timestamp": 1620905839, "duration": 19, "view_count": 5, "like_count": True,
            "tags": ["a", " ", "b"]}  # fmt: skip
    facts = platform_facts(info, "Douyin")
    assert facts["platform_video_id"] == "7301" and facts["uploader_id"] == "1104"
    assert facts["uploader_handle"] == "seaside_cat" and facts["tags"] == ["a", "b"]
    assert facts["upload_time"] == datetime(2021, 5, 13, 11, 37, 19, tzinfo=UTC)
    assert (facts["platform_duration_s"], facts["view_count"], facts["like_count"]) == (19.0, 5, None)
    assert platform_facts({"id": "clip", "upload_date": "20240102"}, "Generic")["platform_video_id"] is None
    assert platform_facts({"upload_date": "20240102"}, "Douyin")["upload_time"] == datetime(2024, 1, 2, tzinfo=UTC)


def test_uploader_groups_and_platform_names():
    assert uploader_group("douyin", "1104", "seaside_cat") == "douyin:1104"
    assert uploader_group("kuaishou", None, "小王") == "kuaishou:小王"
    assert uploader_group("douyin", None, None) is None
    assert [platform_of_extractor(k) for k in ("DouyinShare", "Kuaishou", "TikTokVM", "Youtube", "Generic", None)] == [
        "douyin", "kuaishou", "tiktok", "youtube", None, None]  # fmt: skip


def test_the_earliest_input_of_a_platform_video_is_the_item():
    inputs = [{"video_id": v, "input_index": i} for i, v in enumerate(["share", "page", "other", "failed", "mobile"])]
    ok = {"status": "ok", "resolved_platform": "douyin"}
    resolved = {
        "share": {**ok, "platform_video_id": "7301"}, "page": {**ok, "platform_video_id": "7301"},
        "other": {**ok, "resolved_platform": "tiktok", "platform_video_id": "7301"},
        "failed": {"status": "failed", "resolved_platform": None, "platform_video_id": None},
        "mobile": {**ok, "platform_video_id": "7301"},
    }  # fmt: skip
    assert platform_duplicates(inputs, resolved) == {"page": "share", "mobile": "share"}


def test_fetch_rows_committed_before_the_platform_columns_load_with_them_null(tmp_path):
    old = pa.schema([pa.field("video_id", pa.string(), nullable=False), *OUTCOME_FIELDS, *PROBE_FIELDS])
    log = StageLog(tmp_path / "fetch", PROBE_STAGE_SCHEMA)
    (tmp_path / "fetch").mkdir()
    row = {name: None for name in old.names} | {"video_id": "a", "status": "ok"}
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "fetch" / f"{1:020d}-old.parquet")
    loaded = log.load_table().to_pylist()
    assert loaded[0]["video_id"] == "a" and loaded[0]["platform_video_id"] is None and loaded[0]["tags"] is None


def test_the_plugin_extractors_are_found_when_their_folder_is_not_on_sys_path(tmp_path):
    """An editable install leaves `yt_dlp_plugins` in the source tree, whose folder is not on `sys.path` (the
    editable finder maps package names only): the downloader adds it before yt-dlp loads its plugins."""
    repo = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        f"import emotions_data.download as d\n"
        f"sys.path[:] = [p for p in sys.path if p not in ({str(repo)!r}, '')]\n"
        "d._load_plugins()\n"
        "from yt_dlp.extractor import gen_extractor_classes\n"
        "print(sorted(c.ie_key() for c in gen_extractor_classes() if 'emotions plugin' in (c.IE_DESC or '')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['DouyinPage', 'DouyinShare', 'Kuaishou', 'KuaishouShare']"

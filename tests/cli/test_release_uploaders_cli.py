"""`emotions release` and the platform columns: uploaders are keyed pseudonyms unless asked otherwise, the key never
enters a release, and no local path (a file:// page, an info JSON's path) does either."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.support.manifests import released_dataset

EMOTIONS = str(Path(sys.executable).with_name("emotions"))


def _release(dataset: Path, version: str, *flags: str, key: str | None = None) -> pd.DataFrame:
    env = {k: v for k, v in os.environ.items() if k != "EMOTIONS_RELEASE_KEY"}
    if key is not None:
        env["EMOTIONS_RELEASE_KEY"] = key
    proc = subprocess.run([EMOTIONS, "release", str(dataset), "--version", version, *flags],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    folder = dataset / "releases" / version
    return pd.concat(pd.read_parquet(p) for p in sorted((folder / "data" / "full").glob("*.parquet")))


def _released_text(folder: Path) -> str:
    """Every value of every released file as text (Parquet decoded: its pages are compressed)."""
    parts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).astype(str).to_csv())
        else:
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def _pseudonym(uploader: str, key: bytes) -> str:
    return "u-" + hmac.new(key, uploader.encode(), hashlib.sha256).hexdigest()[:20]


def test_uploaders_are_keyed_pseudonyms_and_no_local_path_is_released(tmp_path):
    dataset = tmp_path / "ds"
    released_dataset(dataset)
    manifest = dataset / "manifests" / "videos.parquet"
    videos = pd.read_parquet(manifest)
    videos["platform_video_id"] = [str(7300 + i) for i in range(len(videos))]
    videos["webpage_url"] = [f"https://www.douyin.com/video/{7300 + i}" for i in range(len(videos))]
    videos.loc[0, "webpage_url"] = "file:///home/alice/private/clip0.mp4"  # a local import
    videos["info_json_path"] = [f"platform_info/{v}.info.json" for v in videos["video_id"]]
    videos.to_parquet(manifest)
    uploaders = dict(zip(videos["video_id"], videos["uploader"], strict=True))

    keyed = _release(dataset, "1.0.0", key="a publisher's secret")
    for row in keyed.itertuples():
        assert row.uploader == _pseudonym(uploaders[row.video_id], b"a publisher's secret")
    assert keyed.set_index("video_id").loc["v0000", "webpage_url"] == "clip0.mp4"
    assert keyed.set_index("video_id").loc["v0005", "platform_video_id"] == "7305"
    released_text = _released_text(dataset / "releases")
    for private in ("info.json", "platform_info", "/home/alice", str(tmp_path), "publisher's secret"):
        assert private not in released_text, private

    # no key in the environment: the dataset's own key, made once (0600, outside the release), gives stable names
    first, second = _release(dataset, "1.1.0"), _release(dataset, "1.2.0")
    key_file = dataset / ".keys" / "release-pseudonyms.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(first["uploader"]) == list(second["uploader"]) != list(keyed["uploader"])
    assert first.iloc[0]["uploader"] == _pseudonym(uploaders[first.iloc[0]["video_id"]], key_file.read_bytes())
    assert not list((dataset / "releases").rglob("*.key"))

    plain = _release(dataset, "2.0.0", "--include-uploaders", key="a publisher's secret")
    assert all(row.uploader == uploaders[row.video_id] for row in plain.itertuples())
    assert subprocess.run(["grep", "-r", key_file.read_text(), str(dataset / "releases")]).returncode == 1

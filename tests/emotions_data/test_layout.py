"""Dataset folder locations (emotions_data.layout)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_dataset_dir_takes_paths_and_file_urls_and_refuses_object_storage():
    from emotions_data.layout import local_dataset_dir

    assert local_dataset_dir("ds") == Path("ds") and local_dataset_dir("ds:v2") == Path("ds:v2")
    assert local_dataset_dir("file:///data/my%20ds") == Path("/data/my ds")
    assert local_dataset_dir(Path("file:///data/ds")) == Path("/data/ds")  # a Path folds "//" into "/"
    for url in ("s3://bucket/ds", Path("gs://bucket/ds"), "memory://ds", "file://otherhost/ds"):
        with pytest.raises(ValueError, match="is not a folder; this command needs a local dataset folder"):
            local_dataset_dir(url)

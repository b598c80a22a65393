"""`location.files_under`: what a resumed run asks to learn which finished items still have their media. On object
storage it is one paginated listing (S3 pages hold at most 1,000 keys), never a request per file; checked against a
real S3-compatible server on loopback (moto's server mode) with more keys than one page holds."""

from __future__ import annotations

import pytest

from emotions_data.location import open_location
from tests.support.objectstore import listings, moto_env, object_requests

pytestmark = pytest.mark.server  # an S3 server (moto) on loopback

N_OBJECTS = 2001  # three pages of ListObjectsV2 (1,000 keys each)


@pytest.fixture()
def moto(monkeypatch, tmp_path):
    with moto_env(monkeypatch, tmp_path / "scratch") as s3:
        yield s3


def test_object_storage_lists_every_page_in_a_handful_of_requests(moto):
    location = open_location("s3://data/ds")
    names = {f"media/clip-{i:05d}.mp4" for i in range(N_OBJECTS)}
    # put concurrently in one call (s3fs batches them), plus keys beside media/ that must not be listed
    location.store.fs.pipe({location.store.key(rel): b"x" for rel in names | {"media.txt", "originals/a.mp4"}})
    moto.taken()

    assert location.files_under(location.layout.media) == names
    log = moto.taken()
    assert len(listings(log, "data", "ds/media")) == 3, log[:5]
    assert object_requests(log, "data", "ds/media") == []
    assert len(log) == 3


def test_an_empty_folder_in_object_storage_lists_as_nothing(moto):
    location = open_location("s3://data/ds")
    assert location.files_under(location.layout.media) == set()


def test_a_local_dataset_lists_its_files_relative_to_the_dataset(tmp_path):
    location = open_location(tmp_path / "ds")
    assert location.files_under(location.layout.media) == set()  # no folder yet
    (location.layout.media / "sub").mkdir(parents=True)
    for rel in ("media/a.mp4", "media/sub/b.mp4", "originals/c.mp4"):
        (location.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (location.root / rel).write_bytes(b"x")
    assert location.files_under(location.layout.media) == {"media/a.mp4", "media/sub/b.mp4"}

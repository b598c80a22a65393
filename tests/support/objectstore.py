"""A real S3-compatible server on loopback for the object-storage tests (moto's server mode), with a log of the
requests it answered, and checks of a dataset kept in it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from emotions_data.objectstore import ObjectStore
from emotions_data.probe import sha256_file
from emotions_data.storage import TMP_MARK


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # unquoted, path-style: /BUCKET/KEY
    query: dict[str, str]


@dataclass
class MotoS3:
    """A running moto server: `env` points a process (the AWS_* variables) at it; `requests` logs what it answered."""

    endpoint: str
    env: dict[str, str]
    requests: list[Request] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def log(self, request: Request) -> None:
        with self._guard:
            self.requests.append(request)

    def taken(self) -> list[Request]:
        """The requests answered since the last call (and clears the log)."""
        with self._guard:
            taken, self.requests[:] = list(self.requests), []
        return taken


@contextlib.contextmanager
def moto_s3(bucket: str = "data") -> Iterator[MotoS3]:
    """A moto S3 server on a free loopback port, started with no buckets but `bucket`, and stopped on exit."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = MotoS3(endpoint, {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})  # fmt: skip
    app = server._server.app  # werkzeug's server reads `.app` for every request: count them on the way in

    def counting(environ: dict, start_response):  # type: ignore[no-untyped-def]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        s3.log(Request(environ["REQUEST_METHOD"], unquote(environ.get("PATH_INFO", "")), query))
        return app(environ, start_response)

    server._server.app = counting
    try:
        # moto keeps its buckets per process, not per server: start from none
        requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
        requests.put(f"{endpoint}/{bucket}", timeout=30).raise_for_status()
        s3.taken()
        yield s3
    finally:
        server.stop()


@contextlib.contextmanager
def moto_env(monkeypatch: pytest.MonkeyPatch, scratch: Path, secret: str | None = None,
             **more: str) -> Iterator[MotoS3]:  # fmt: skip
    """`moto_s3("data")` with every process pointed at it through the environment: the AWS_* variables, a scratch
    folder (EMOTIONS_SCRATCH_DIR) and `more` variables. With `secret`, that is the secret key every process uses
    (moto without authentication takes any), and on exit no object in any bucket holds it (manifests, summaries,
    locks, shards), whatever the test did."""
    with moto_s3("data") as s3:
        env = {**s3.env, "EMOTIONS_SCRATCH_DIR": str(scratch), **more}
        if secret is not None:
            env["AWS_SECRET_ACCESS_KEY"] = secret
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield s3
        if secret is not None:
            _assert_no_object_holds(s3.endpoint, secret)


def _assert_no_object_holds(endpoint: str, secret: str) -> None:
    import boto3

    store = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                         region_name="us-east-1")  # fmt: skip
    for bucket in store.list_buckets()["Buckets"]:
        for obj in store.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = store.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"].read()
            assert secret.encode() not in body, obj["Key"]


def object_requests(log: list[Request], bucket: str, folder: str) -> list[Request]:
    """The requests that read or wrote one object under `bucket/folder/` (HEAD, GET, PUT, DELETE of a key)."""
    return [r for r in log if r.path.startswith(f"/{bucket}/{folder}/") and "list-type" not in r.query]


def listings(log: list[Request], bucket: str, folder: str) -> list[Request]:
    """The ListObjectsV2 requests (each one page of at most 1,000 keys) under `bucket/folder/`."""
    return [r for r in log if r.path.rstrip("/") == f"/{bucket}" and "list-type" in r.query
            and r.query.get("prefix", "").startswith(f"{folder}/")]  # fmt: skip


def stored_manifest(store: ObjectStore) -> pd.DataFrame:
    return pq.read_table(pa.BufferReader(store.read_bytes("manifests/videos.parquet"))).to_pandas()


def assert_every_object_whole(store: ObjectStore, frame: pd.DataFrame, tmp_path: Path) -> None:
    """Each ok row's media object is there with the bytes the row names; no other media, no temporaries."""
    keys = store.list("")
    assert not [k for k in keys if TMP_MARK in k], keys
    ok = frame[frame["status"] == "ok"]
    assert sorted(k for k in keys if k.startswith("media/")) == sorted(ok["media_path"])
    for rel, sha in zip(ok["media_path"], ok["media_sha256"], strict=True):
        local = tmp_path / "check" / rel
        assert store.get_file(rel, local) and sha256_file(local) == sha, rel
    assert not store.exists(".work/ingest.lock"), "the lock is released"

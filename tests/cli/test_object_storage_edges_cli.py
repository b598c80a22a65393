"""`emotions ingest --out s3://...` given what a user gets wrong, against moto's S3 server on loopback: a missing
bucket, no/refused credentials, an endpoint that is down or never answers, malformed URLs, a prefix of other
objects, a newer manifest, a foreign lock, corrupt objects, Ctrl-C. Each is one line naming the URL or object and
the reason, a non-zero exit, nothing in the store changed, and the secret key nowhere in the output or the store."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from emotions_data.objectstore import ObjectLock, ObjectStore, node_scratch
from tests.support.commands import EMOTIONS, _wait_for, interruptible, run_cli
from tests.support.corpus import url_table
from tests.support.objectstore import moto_env, stored_manifest

pytestmark = [pytest.mark.slow, pytest.mark.server]
SECRET = "Sx9-never-shown-QpL2vT7wZ"  # moto without auth takes any key pair: this one must never be printed
ARGS = ["--workers", "1", "--max-duration", "6"]


@pytest.fixture()
def moto(monkeypatch, tmp_path):
    none = str(tmp_path / "none")  # no AWS configuration of the machine's is read
    with moto_env(monkeypatch, tmp_path / "scratch", SECRET, EMOTIONS_LOCK_LEASE_S="3", AWS_CONFIG_FILE=none,
                  AWS_SHARED_CREDENTIALS_FILE=none, AWS_EC2_METADATA_DISABLED="true") as s3:  # fmt: skip
        yield s3


@pytest.fixture()
def client(moto):
    return boto3.client("s3", endpoint_url=moto.endpoint, aws_access_key_id="testing",
                        aws_secret_access_key=SECRET, region_name="us-east-1")  # fmt: skip


def objects(client, prefix: str = "") -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket="data", Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket="data", Key=o["Key"])["Body"].read() for o in listed}


def ingest(source: Path | str, out: str, *, secret: str = SECRET) -> subprocess.CompletedProcess:
    proc = run_cli("ingest", str(source), "--out", out, *ARGS)
    assert secret not in proc.stdout + proc.stderr
    return proc


def one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_no_secret_stored(client, secret: str = SECRET) -> None:
    for key, data in objects(client).items():
        assert secret.encode() not in data, key


@pytest.fixture()
def clip(corpus) -> Path:
    return corpus / "landscape.mp4"


def test_a_missing_bucket_no_credentials_and_a_down_endpoint_are_one_line_each(moto, client, clip, monkeypatch):
    one_line(ingest(clip, "s3://nosuch/ds"), "s3://nosuch/ds: no such bucket")
    with monkeypatch.context() as env:
        env.delenv("AWS_ACCESS_KEY_ID")
        env.delenv("AWS_SECRET_ACCESS_KEY")
        one_line(ingest(clip, "s3://data/ds"), "s3://data/ds: no credentials found")
    with socket.socket() as closed:  # a port nobody listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")
        one_line(ingest(clip, "s3://data/ds"), "s3://data/ds: cannot reach the object store")
    assert objects(client) == {}


def test_an_endpoint_that_never_answers_is_given_up_on(moto, client, clip, monkeypatch):
    """Accepts connections and says nothing: botocore's and s3fs's retries would hold the run for minutes; the first
    request's bounds give up after a few read timeouts (the subprocess's own timeout is only the hang guard)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.extend(silent.accept()[0] for _ in iter(int, 1)), daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        proc = subprocess.run([EMOTIONS, "ingest", str(clip), "--out", "s3://data/ds", *ARGS], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    finally:
        silent.close()
    one_line(proc, "s3://data/ds: cannot reach the object store", "Read timeout")
    assert SECRET not in proc.stderr


@pytest.mark.parametrize("request_", ["put", "list", "read"])
def test_a_store_that_stops_answering_fails_each_request_in_bounded_time(monkeypatch, request_):
    """Mid-run, a put waited forever for `100 Continue` from a silent store (no timeout covers that wait); every kind
    of request now ends in a `LocalFault` after its bounded tries (read timeout cut to 1 s here; the thread's join
    is only the hang guard)."""
    import emotions_data.objectstore as objectstore
    from emotions_data.faults import LocalFault

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.extend(silent.accept()[0] for _ in iter(int, 1)), daemon=True).start()
    for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(objectstore, "_BOUNDS", {**objectstore._BOUNDS, "connect_timeout": 1, "read_timeout": 1})
    store = ObjectStore("s3://data/ds")
    call = {"put": lambda: store.put_bytes("x.bin", b"1" * 1000), "list": lambda: store.list("media"),
            "read": lambda: store.read_bytes("x.bin")}[request_]  # fmt: skip
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(120)
    silent.close()
    assert not worker.is_alive(), f"{request_} still waiting on a silent store"
    assert len(raised) == 1 and isinstance(raised[0], LocalFault), raised
    assert "cannot reach the object store" in str(raised[0]) and SECRET not in str(raised[0])


def test_refused_credentials_are_named_and_the_secret_never_shown(moto, clip):
    iam = boto3.client("iam", endpoint_url=moto.endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    iam.create_user(UserName="ingest")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="ingest", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="ingest")["AccessKey"]
    requests.post(f"{moto.endpoint}/moto-api/reset-auth", data=b"0", timeout=30).raise_for_status()  # auth on
    try:
        good = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        cases = [
            ({**good, "AWS_SECRET_ACCESS_KEY": SECRET}, "the secret key does not match the access key"),
            ({"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000", "AWS_SECRET_ACCESS_KEY": SECRET}, "does not know this"),
        ]
        for env, reason in cases:
            proc = subprocess.run([EMOTIONS, "ingest", str(clip), "--out", "s3://data/ds", *ARGS],
                                  capture_output=True, text=True, timeout=600, env={**os.environ, **env})  # fmt: skip
            one_line(proc, "s3://data/ds: ", reason)
            assert SECRET not in proc.stdout + proc.stderr and key["SecretAccessKey"] not in proc.stderr
        proc = subprocess.run([EMOTIONS, "ingest", str(clip), "--out", "s3://data/ds", *ARGS],
                              capture_output=True, text=True, timeout=600, env={**os.environ, **good})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert key["SecretAccessKey"] not in proc.stdout + proc.stderr
        store = boto3.client(
            "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        )  # fmt: skip
        for obj in store.list_objects_v2(Bucket="data")["Contents"]:
            body = store.get_object(Bucket="data", Key=obj["Key"])["Body"].read()
            assert key["SecretAccessKey"].encode() not in body and SECRET.encode() not in body, obj["Key"]
    finally:
        requests.post(f"{moto.endpoint}/moto-api/reset-auth", data=b"inf", timeout=30)  # moto's setting is global


@pytest.mark.parametrize(
    ("url", "shown", "reason"),
    [
        ("s3://Data/ds", "s3://Data/ds", "not a valid bucket name"),
        ("s3://my_bucket/ds", "s3://my_bucket/ds", "not a valid bucket name"),
        ("s3://ab/ds", "s3://ab/ds", "not a valid bucket name"),
        ("s3://192.168.1.1/ds", "s3://192.168.1.1/ds", "not a valid bucket name"),
        ("s3://data//ds", "s3://data//ds", "empty, '.' or '..' segment"),
        ("s3://data/a/../ds", "s3://data/a/../ds", "empty, '.' or '..' segment"),
        ("s3://data/ds?versionId=1", "s3://data/ds?versionId=1", "no port, query or fragment"),
        (f"s3://AKIAX:{SECRET}@data/ds", "s3://data/ds", "credentials in the URL are refused"),
    ],
)
def test_a_malformed_url_is_refused_before_any_request(moto, client, clip, url, shown, reason):
    line = one_line(ingest(clip, url), f"{shown}: ", reason)
    assert SECRET not in line
    assert moto.taken() == [] and objects(client) == {}


@pytest.mark.parametrize("argv", [["split", f"s3://AKIAX:{SECRET}@data/ds"], ["ingest", "x.csv", "--out",
                                  f"gs://AKIAX:{SECRET}@data/ds"]])  # fmt: skip
def test_other_commands_and_schemes_do_not_repeat_credentials_in_a_url(argv):
    proc = run_cli(*argv)
    one_line(proc, "data/ds: ")
    assert SECRET not in proc.stdout + proc.stderr


def test_the_bucket_root_and_a_trailing_slash_name_the_same_dataset(moto, client, clip):
    assert ingest(clip, "s3://data").returncode == 0
    again = ingest(clip, "s3://data/")
    assert again.returncode == 0, again.stderr
    assert "fetch 0, normalise 0" in again.stdout
    assert stored_manifest(ObjectStore("s3://data"))["status"].tolist() == ["ok"]
    assert_no_secret_stored(client)


def test_a_prefix_of_other_objects_is_refused_and_left_alone(moto, client, clip):
    mine = {"photos/report.pdf": b"%PDF", "photos/media/holiday.mp4": b"not ours", "photos/notes/a.txt": b"a"}
    for key, body in mine.items():
        client.put_object(Bucket="data", Key=key, Body=body)
    for url in ("s3://data/photos", "s3://data"):  # the bucket root holds them too
        one_line(ingest(clip, url), f"{url}: holds other objects", "not an emotions dataset")
    assert objects(client) == mine  # no lock, no media deleted


def test_a_manifest_of_a_newer_schema_version_is_refused_by_url(moto, client, clip):
    table = pa.table({"video_id": ["x"]}).replace_schema_metadata({"emotions.schema_version": "99.0"})
    body = io.BytesIO()
    pq.write_table(table, body)
    client.put_object(Bucket="data", Key="ds/manifests/videos.parquet", Body=body.getvalue())
    one_line(ingest(clip, "s3://data/ds"), "s3://data/ds/manifests/videos.parquet: manifest schema version 99.0")
    assert objects(client) == {"ds/manifests/videos.parquet": body.getvalue()}


@pytest.mark.parametrize(
    "body", [b"\x00garbage{", b"", b"[1]", b'{"owner": "x"}', b'{"expires_at": NaN}', b'{"expires_at": Infinity}']
)
def test_a_lock_object_this_emotions_did_not_write_is_refused(moto, client, clip, body):
    client.put_object(Bucket="data", Key="ds/.work/ingest.lock", Body=body)
    one_line(ingest(clip, "s3://data/ds"), "s3://data/ds/.work/ingest.lock", "delete that object")
    assert objects(client) == {"ds/.work/ingest.lock": body}


def test_a_corrupt_stage_shard_is_named_and_kept_until_the_user_decides(moto, client, clip):
    assert ingest(clip, "s3://data/ds").returncode == 0
    shard = next(k for k in objects(client, "ds/.work/normalise/"))
    client.put_object(Bucket="data", Key=shard, Body=b"not parquet")
    before = objects(client)
    one_line(ingest(clip, "s3://data/ds"), f"s3://data/{shard}: not a readable shard", "delete it and run again")
    assert objects(client) == before, "nothing skipped, rewritten or deleted"

    client.delete_object(Bucket="data", Key=shard)  # the user's decision: its item is made again
    done = ingest(clip, "s3://data/ds")
    assert done.returncode == 0, done.stderr
    assert stored_manifest(ObjectStore("s3://data/ds"))["status"].tolist() == ["ok"]


def test_a_corrupt_input_register_is_named(moto, client, clip):
    client.put_object(Bucket="data", Key="ds/.work/inputs.parquet", Body=b"junk")
    one_line(ingest(clip, "s3://data/ds"), "s3://data/ds/.work/inputs.parquet: the dataset's input register")
    assert objects(client) == {"ds/.work/inputs.parquet": b"junk"}


def test_ctrl_c_releases_the_lock_and_the_working_folder_and_the_next_run_resumes(moto, client, server, tmp_path):
    names = ["landscape.mp4", "portrait.mp4"]
    table = url_table(server, tmp_path / "urls.csv", names)
    release = threading.Event()
    plain = server.handler.do_GET

    def do_get(self) -> None:  # portrait's download hangs until Ctrl-C
        if self.path.split("?", 1)[0] == "/portrait.mp4":
            release.wait(120)
        plain(self)

    server.handler.do_GET = do_get
    store = ObjectStore("s3://data/ds")
    argv = [EMOTIONS, "ingest", str(table), "--out", "s3://data/ds", "--workers", "2", "--max-duration", "6",
            "--config", str(_one_per_shard(tmp_path))]  # fmt: skip
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)  # fmt: skip
    try:
        _wait_for(lambda: len(store.list(".work/fetch")) >= 1, 300)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the driver's whole process group
        out, err = proc.communicate(timeout=120)
    finally:
        release.set()
    assert SECRET not in out
    one_line(subprocess.CompletedProcess(argv, proc.returncode, out, err), "interrupted: finished work is kept")
    assert proc.returncode == 130
    assert not store.exists(".work/ingest.lock"), "the lock is released at once, not left to its lease"
    scratch = node_scratch("s3://data/ds")
    assert not scratch.exists() or not any(p.is_file() for p in scratch.rglob("*")), list(scratch.rglob("*"))
    hits = server.hits("landscape.mp4")

    done = ingest(table, "s3://data/ds")  # at once: no lease to wait for
    assert done.returncode == 0, done.stderr
    assert server.hits("landscape.mp4") == hits, "the item committed before Ctrl-C is not downloaded again"
    assert sorted(stored_manifest(store)["status"]) == ["ok", "ok"]
    assert not scratch.exists() or not any(p.is_file() for p in scratch.rglob("*"))
    assert_no_secret_stored(client)


def test_ctrl_c_on_a_local_folder_is_one_line_too(server, tmp_path):
    """The quiet pool workers and the one-line message are the CLI's, whatever the location."""
    table = url_table(server, tmp_path / "urls.csv", ["landscape.mp4", "portrait.mp4"])
    release = threading.Event()
    plain = server.handler.do_GET

    def do_get(self) -> None:
        if self.path.split("?", 1)[0] == "/portrait.mp4":
            release.wait(120)
        plain(self)

    server.handler.do_GET = do_get
    out_dir = tmp_path / "ds"
    argv = [EMOTIONS, "ingest", str(table), "--out", str(out_dir), "--workers", "2", "--max-duration", "6",
            "--config", str(_one_per_shard(tmp_path))]  # fmt: skip
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)  # fmt: skip
    try:
        _wait_for(lambda: any((out_dir / ".work" / "fetch").glob("*.parquet")), 300)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        release.set()
    one_line(subprocess.CompletedProcess(argv, proc.returncode, out, err), "interrupted: finished work is kept")
    assert proc.returncode == 130
    done = run_cli("ingest", str(table), "--out", str(out_dir), *ARGS)
    assert done.returncode == 0, done.stderr


def _one_per_shard(tmp_path: Path) -> Path:
    config = tmp_path / "one-per-shard.toml"
    config.write_text("[ingest]\nshard_size = 1\n")
    return config


def test_a_lock_with_a_far_lease_and_odd_fields_is_refused_on_one_line(moto, client, clip):
    body = json.dumps({"expires_at": 1e300, "host": "a\nb\r\nc", "pid": "1\n2"}).encode()
    client.put_object(Bucket="data", Key="ds/.work/ingest.lock", Body=body)
    one_line(ingest(clip, "s3://data/ds"), "another run holds s3://data/ds/.work/ingest.lock (host a b c, pid 1 2")
    assert objects(client) == {"ds/.work/ingest.lock": body}


def test_a_lock_held_by_a_live_run_is_still_refused(moto, clip):
    """The refusal of garbage locks does not weaken the lease: a live lock of ours is refused as before."""
    live = ObjectLock(ObjectStore("s3://data/ds"), "another host", lease_s=600)
    live.acquire()
    try:
        one_line(ingest(clip, "s3://data/ds"), "another run holds s3://data/ds/.work/ingest.lock")
    finally:
        live.release()

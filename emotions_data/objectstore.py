"""A dataset on object storage (`s3://bucket/prefix`, or any S3-compatible server), through fsspec's s3fs.

Object storage has no rename and no file lock, so the guarantees of `emotions_data.storage` are kept differently:

- A finished file becomes visible in one put. Everything is made in a node-local temporary folder first (ffmpeg and
  yt-dlp never write to the store) and then uploaded with one PutObject, or a multipart upload that becomes visible
  only when it completes: a reader sees the whole object or none. So no key ever holds a partial file and there is
  nothing to sweep.
- A stage shard is one Parquet object named like a local shard (`SEQUENCE-RANDOM.parquet`), so lexical order is
  commit order; a worker puts its media before the shard that names them, so a committed row never names a missing
  file. Media put by a job whose shard never committed are named by no row: the next run makes them again (same key,
  overwritten) or the end of a run deletes them (`ObjectLocation.remove_unlisted_media`).
- One run at a time: :class:`ObjectLock`, a lock object created with a conditional put (`If-None-Match: *`, which
  AWS S3 and S3-compatible servers honour) that holds its owner and a lease. The holder renews the lease; a run
  killed without releasing leaves a lock whose lease runs out, and the next run takes it over with a put conditional
  on the stale object's ETag (`If-Match`), so of two runs that find it stale at once exactly one wins.

- Before a run writes anything, :meth:`ObjectStore.check_bucket` refuses, with one line naming the URL and the
  reason, a store it cannot reach or that refuses the credentials, a missing bucket, and a prefix of other objects
  (not an emotions dataset); `check_url` refuses malformed URLs before any request. Every request is bounded
  (`_BOUNDS`, `_PROBE`): an unreachable store is an error, never a hang.

Credentials and the endpoint come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL`, `AWS_PROFILE` ...) or fsspec's configuration, never from the command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.faults import LocalFault

#: URL schemes read as object storage; every other `scheme://` is refused by `layout.local_dataset_dir`.
SCHEMES = ("s3", "s3a")
#: How long a lock stays valid without renewal, in seconds; the holder renews it every third of that. A run killed
#: without releasing its lock blocks the next one for at most this long. `EMOTIONS_LOCK_LEASE_S` overrides it.
DEFAULT_LEASE_S = 60.0
LOCK_KEY = ".work/ingest.lock"
_ADVICE = "check the object store's endpoint, bucket and credentials (AWS_* variables)"
#: What makes a prefix an emotions dataset: ingest writes under an empty prefix or one holding either of these,
#: never into a "folder" of other objects (the end of a run deletes media/ objects no manifest row names).
DATASET_MARKERS = (".work/", "manifests/videos.parquet")
#: Bucket names as S3 accepts them today (AWS's bucket naming rules; MinIO and Ceph apply the same): 3-63 of
#: lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit, not an IP address.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_USERINFO = re.compile(r"//[^/@\s]+@")
#: Request bounds. botocore's default ("legacy") retries and s3fs's own retry loop multiply: an endpoint that
#: accepts connections and never answers held one request for over six minutes (5 s3fs tries x 5 botocore attempts
#: x a 15 s read timeout). Here a request is tried at most 2 x 3 times ("standard" mode, which also backs off on
#: SlowDown/503), so a store that stops answering fails a request after about 95 s (puts too: see
#: `_no_expect_continue`), and a refused connection within seconds. `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE` in the
#: environment still choose botocore's.
_BOUNDS = {"connect_timeout": 5, "read_timeout": 15, "attempts": 3, "s3fs_retries": 2}
#: The first request of a run, which decides whether the store can be used at all, is bounded tighter: a store
#: that does not answer is reported within about 15 s (2 attempts x 5 s read timeout, plus backoff).
_PROBE = {"connect_timeout": 3, "read_timeout": 5, "attempts": 2, "s3fs_retries": 1}


def is_object_url(location: str | os.PathLike[str]) -> bool:
    """Whether `location` names object storage (`s3://bucket/prefix`)."""
    return urlsplit(os.fspath(location)).scheme.lower() in SCHEMES and "://" in os.fspath(location)


def check_url(url: str) -> None:
    """Raise ValueError (one line) unless `url` is `s3://BUCKET[/PREFIX]` with a valid bucket name and a plain
    prefix: no credentials, port, query or fragment, and no empty, `.` or `..` segment (S3 keeps `a//b` and
    `a/./b` as other keys than `a/b`, so such a prefix would be a different dataset on every client that folds
    them). The message never repeats a `user:password@` part."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if "@" in parts.netloc else url
    if "@" in parts.netloc:
        raise ValueError(f"{shown}: credentials in the URL are refused (they would show in process lists and "
                         "logs); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE instead")  # fmt: skip
    if not parts.netloc:
        raise ValueError(f"{url}: no bucket named (write s3://BUCKET/PREFIX)")
    if ":" in parts.netloc or parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"{url}: write s3://BUCKET/PREFIX with no port, query or fragment (the endpoint comes "
                         "from AWS_ENDPOINT_URL)")  # fmt: skip
    bucket = parts.netloc
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise ValueError(f"{url}: {bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, dots and "
                         "hyphens, starting and ending with a letter or digit)")  # fmt: skip
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if any(seg in ("", ".", "..") for seg in segments) or parts.path.startswith("//"):
        raise ValueError(f"{url}: the prefix has an empty, '.' or '..' segment; write s3://BUCKET/PREFIX with "
                         "single slashes (a trailing one is fine)")  # fmt: skip


def _filesystem(s3fs: Any, connect_timeout: float, read_timeout: float, attempts: int, s3fs_retries: int) -> Any:
    """An s3fs filesystem with the request bounds given (see `_BOUNDS`), keeping any `config_kwargs` of fsspec's
    configuration and the AWS_MAX_ATTEMPTS / AWS_RETRY_MODE variables when set."""
    import fsspec.config

    config = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
    if not (os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE")):
        config["retries"] = {"mode": "standard", "total_max_attempts": attempts}
    config.update(fsspec.config.conf.get("s3", {}).get("config_kwargs", {}))
    import aiobotocore.session

    session = aiobotocore.session.AioSession()
    session.get_component("event_emitter").register_last("before-call.s3", _no_expect_continue)
    # No listing cache: workers on other hosts add objects, and a cached listing would hide them.
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, config_kwargs=config, session=session)
    fs.retries = s3fs_retries  # s3fs's own retry loop around botocore's (a class attribute, not an argument)
    return fs


def _no_expect_continue(params: dict, **_: Any) -> None:
    """Drop the `Expect: 100-continue` botocore puts on every PutObject/UploadPart: aiohttp waits for the interim
    `100 Continue` before sending the body, and no timeout covers that wait (the read timeout arms only once a read
    is in flight), so a store that accepts the connection and never answers held a put forever. Without it, a put the
    store refuses sends its body first (at most one part, s3fs's 50 MiB) before the refusal arrives."""
    params.get("headers", {}).pop("Expect", None)


def _refusal(exc: BaseException) -> str | None:
    """Why the store refused a request, in words and without any credential; None for an error of another kind.
    s3fs turns S3's answers into OSErrors whose cause (a botocore ClientError) carries S3's error code."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    code = (getattr(cause, "response", None) or {}).get("Error", {}).get("Code")
    name = type(exc).__name__
    if code in ("NoSuchBucket",) or (isinstance(exc, FileNotFoundError) and code in (None, "404")):
        return "no such bucket"
    if code == "InvalidAccessKeyId":
        return "the store does not know this access key (AWS_ACCESS_KEY_ID or the profile's)"
    if code == "SignatureDoesNotMatch":
        return "the secret key does not match the access key (AWS_SECRET_ACCESS_KEY or the profile's)"
    if code in ("ExpiredToken", "TokenRefreshRequired", "InvalidToken"):
        return f"the session token was refused ({code}: AWS_SESSION_TOKEN or the profile's)"
    if code == "AccessDenied" or isinstance(exc, PermissionError):
        return ("access denied: these credentials may not use this prefix (a run needs s3:ListBucket, GetObject, "
                "PutObject and DeleteObject)")  # fmt: skip
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return ("no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run "
                "with an instance role")  # fmt: skip
    # botocore's messages name the endpoint URL: one line, and never a `user:password@` in it
    text = _USERINFO.sub("//", " ".join(str(exc).split()))[:160]
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                "ProxyConnectionError", "SSLError"):  # fmt: skip
        return f"cannot reach the object store ({text})"
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp"):
        return f"the object store refused: {name}: {text}"
    return None


def _is_precondition_failure(exc: BaseException) -> bool:
    """s3fs turns S3's 412 into an OSError; the botocore error it wraps names the failed condition."""
    if isinstance(exc, FileExistsError):  # s3fs's word for a failed `If-None-Match: *`
        return True
    cause = exc.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause is not None else None
    return code in ("PreconditionFailed", "412", "ConditionalRequestConflict")


class ObjectStore:
    """The objects under one `s3://bucket/prefix`, addressed by keys relative to the prefix (`media/x.mp4`).

    Every method raises `LocalFault` (naming the URL) when the store refuses or cannot be reached: like a full disk,
    that is no item's fault, so the run stops and committed work is kept."""

    def __init__(self, url: str) -> None:
        check_url(url)
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.base = f"{parts.netloc}{parts.path}".rstrip("/")
        self._fs: Any = None
        self._bounds = _BOUNDS

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                import s3fs  # an optional dependency: pip install 'emotions[s3]'
            except ImportError:
                raise ValueError(
                    f"{self.url}: object storage needs s3fs; install it with pip install 'emotions[s3]'"
                ) from None
            self._fs = _filesystem(s3fs, **self._bounds)
        return self._fs

    def __getstate__(self) -> dict:  # an s3fs client holds an event loop; each process makes its own
        return {**self.__dict__, "_fs": None}

    def key(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    @contextlib.contextmanager
    def _faults(self, rel: str) -> Iterator[None]:
        try:
            yield
        except (OSError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError) or _is_precondition_failure(exc):
                raise
            raise LocalFault(self.url_of(rel), _refusal(exc) or str(exc)[:200], _ADVICE) from None
        except Exception as exc:  # botocore's own errors (no credentials, endpoint unreachable) are not OSErrors
            reason = _refusal(exc)
            if reason is None:
                raise
            raise LocalFault(self.url_of(rel), reason, _ADVICE) from None

    def check_bucket(self) -> None:
        """Before a run touches anything: raise `LocalFault` (one line naming the URL and the reason) when the store
        cannot be reached, has no credentials, refuses them, or has no such bucket; ValueError when the prefix holds
        other objects and is not an emotions dataset (see `DATASET_MARKERS`). At most three small requests, each
        bounded (`_PROBE`): an endpoint that is down is reported within seconds, one that never answers in ~15 s."""
        probe = ObjectStore(self.url)
        probe._bounds = _PROBE
        bucket, _, prefix = self.base.partition("/")
        under = f"{prefix}/" if prefix else ""
        try:
            first = probe._first_key(bucket, under)
            if first is None or first.startswith(f"{under}{DATASET_MARKERS[0]}"):
                return
            work, manifest = DATASET_MARKERS
            if probe._first_key(bucket, f"{under}{work}") is not None or probe.fs.exists(self.key(manifest)):
                return
        except Exception as exc:  # every kind `_refusal` names; others are re-raised
            reason = _refusal(exc)
            if reason is None:
                raise
            raise LocalFault(self.url, reason, _ADVICE) from None
        raise ValueError(
            f"{self.url}: holds other objects ({first[len(under) :]!r} ...) and is not an emotions dataset (no .work/ "
            "or manifests/videos.parquet); ingest writes only to an empty prefix or a dataset's, and would delete "
            "media/ objects no manifest row names: choose another prefix"
        )

    def _first_key(self, bucket: str, prefix: str) -> str | None:
        """The first key under `prefix` (one ListObjectsV2 of one key), or None when there is none."""
        reply = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
        contents = reply.get("Contents") or []
        return contents[0]["Key"] if contents else None

    def put_file(self, local: Path, rel: str) -> None:
        """Upload the finished, closed file `local` to `rel`: visible whole when this returns, never in part."""
        with self._faults(rel):
            self.fs.put_file(str(local), self.key(rel))

    def put_bytes(self, rel: str, data: bytes) -> None:
        with self._faults(rel):
            self.fs.pipe_file(self.key(rel), data)

    def get_file(self, rel: str, local: Path) -> bool:
        """Download `rel` to `local` (through a temporary sibling, renamed when complete); False when absent."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{local.name}")
        try:
            with self._faults(rel):
                self.fs.get_file(self.key(rel), str(tmp))
            os.replace(tmp, local)
            return True
        except FileNotFoundError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def read_bytes(self, rel: str) -> bytes | None:
        with self._faults(rel):
            try:
                return self.fs.cat_file(self.key(rel))
            except FileNotFoundError:
                return None

    def read_table(self, rel: str, schema: pa.Schema | None = None) -> pa.Table:
        """The Parquet object `rel`. Raises FileNotFoundError when absent, and ValueError naming the object when it
        is not Parquet or not of `schema` (a corrupt or foreign object: the caller stops rather than skip it, since
        skipping a stage shard would drop the rows it committed)."""
        data = self.read_bytes(rel)
        if data is None:
            raise FileNotFoundError(self.url_of(rel))
        try:
            return pq.read_table(pa.BufferReader(data), schema=schema)
        except (pa.ArrowException, ValueError) as exc:
            reason = " ".join(str(exc).split()).replace("'<Buffer>'", "the object")[:200]
            raise ValueError(
                f"{self.url_of(rel)}: not a readable shard of this stage ({reason}); restore the object, or delete "
                "it and run again (the items it held are then done again)"
            ) from None

    def exists(self, rel: str) -> bool:
        with self._faults(rel):
            return bool(self.fs.exists(self.key(rel)))

    def list(self, folder: str) -> list[str]:
        """The keys under `folder` (recursively), relative to the prefix, sorted."""
        with self._faults(folder):
            try:
                found = self.fs.find(self.key(folder))
            except FileNotFoundError:
                return []
        start = len(self.base) + 1
        return sorted(k[start:] for k in found if k.startswith(self.base + "/"))

    def delete(self, rels: list[str]) -> None:
        if rels:
            with self._faults(rels[0]):
                self.fs.rm([self.key(r) for r in rels])

    # ------------------------------------------------------------ conditional puts (the lock)

    def create(self, rel: str, data: bytes) -> str | None:
        """Put `data` at `rel` only if nothing is there (`If-None-Match: *`); its ETag, or None when it exists."""
        with self._faults(rel):
            try:
                return self.fs.pipe_file(self.key(rel), data, mode="create")["ETag"]
            except OSError as exc:
                if _is_precondition_failure(exc):
                    return None
                raise

    def replace_if(self, rel: str, data: bytes, etag: str) -> str | None:
        """Put `data` at `rel` only if it still has `etag` (`If-Match`); the new ETag, or None when it changed."""
        with self._faults(rel):
            try:
                return self.fs.pipe_file(self.key(rel), data, IfMatch=etag)["ETag"]
            except (OSError, FileNotFoundError) as exc:
                if isinstance(exc, FileNotFoundError) or _is_precondition_failure(exc):
                    return None
                raise

    def read_with_etag(self, rel: str) -> tuple[bytes, str] | None:
        """The object's bytes and the ETag of exactly those bytes (the read is conditional on it); None if absent
        or replaced while being read."""
        with self._faults(rel):
            try:
                with self.fs.open(self.key(rel), "rb") as handle:
                    return handle.read(), handle.details["ETag"]
            except (OSError, FileNotFoundError) as exc:
                if isinstance(exc, FileNotFoundError) or _is_precondition_failure(exc):
                    return None
                raise

    def delete_if(self, rel: str, etag: str) -> bool:
        """Delete `rel` only if it still has `etag`; False when it changed or is gone."""
        bucket, _, key = self.key(rel).partition("/")
        with self._faults(rel):
            try:
                self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
                return True
            except (OSError, FileNotFoundError) as exc:
                if isinstance(exc, FileNotFoundError) or _is_precondition_failure(exc):
                    return False
                raise


def lease_seconds() -> float:
    """The lock lease: `EMOTIONS_LOCK_LEASE_S` when set (a positive number of seconds), else `DEFAULT_LEASE_S`."""
    text = os.environ.get("EMOTIONS_LOCK_LEASE_S")
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"EMOTIONS_LOCK_LEASE_S={text!r}: not a positive number of seconds")
    return value


class ObjectLock:
    """One run at a time on a dataset in object storage.

    The lock object holds JSON: owner (a random id), host, pid, what, `expires_at` (Unix seconds, the holder's clock)
    and `lease_s`. The lease rule: a lock whose `expires_at` has passed, by this host's clock, belongs to a run that
    stopped renewing it (killed, or cut off from the store for a whole lease), and may be taken over; a lock whose
    lease is running is never touched. Hosts' clocks must agree to well within the lease. The holder renews every
    `lease_s / 3` seconds with a put conditional on its last ETag; if that condition ever fails another run has taken
    the lock over, and :meth:`check` raises before the holder commits anything more."""

    def __init__(self, store: ObjectStore, what: str, rel: str = LOCK_KEY, lease_s: float | None = None) -> None:
        self.store, self.what, self.rel = store, what, rel
        self.lease_s = lease_s if lease_s is not None else lease_seconds()
        self.owner = uuid.uuid4().hex
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "what": self.what,
                           "expires_at": time.time() + self.lease_s, "lease_s": self.lease_s}).encode()  # fmt: skip

    def acquire(self) -> None:
        """Take the lock, or raise RuntimeError (one line naming the lock, its holder and when its lease ends)."""
        self.etag = self.store.create(self.rel, self._body())
        if self.etag is not None:
            return self._start()
        found = self.store.read_with_etag(self.rel)
        if found is None:  # released or replaced between our two requests: one more try, then give up
            self.etag = self.store.create(self.rel, self._body())
            if self.etag is not None:
                return self._start()
            raise RuntimeError(f"{self.what}: another run holds {self.store.url_of(self.rel)}")
        data, etag = found
        try:
            held = json.loads(data)
            expires_at = float(held["expires_at"])
        except (ValueError, KeyError, TypeError):
            # Not the JSON this class writes (puts are whole, so never a half-written lock of ours): another tool's,
            # or a newer emotions' whose lease this one cannot read. Taking it over could run beside a live run.
            raise RuntimeError(
                f"{self.what}: {self.store.url_of(self.rel)} is not a lock this emotions wrote (no JSON with "
                "expires_at); if no run is using the dataset, delete that object and run again"
            ) from None
        if not math.isfinite(expires_at):  # NaN or infinite: no lease that ends
            raise RuntimeError(
                f"{self.what}: {self.store.url_of(self.rel)} has no valid lease (expires_at {expires_at}); if no run "
                "is using the dataset, delete that object and run again"
            )
        if time.time() < expires_at:
            try:
                until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_at))
            except (OverflowError, OSError, ValueError):  # beyond the calendar this platform can show
                until = f"{expires_at:.0f} (Unix seconds)"
            host, pid = (
                " ".join(str(held.get(k)).split())[:80] for k in ("host", "pid")
            )  # one line, whatever it holds
            raise RuntimeError(
                f"{self.what}: another run holds {self.store.url_of(self.rel)} (host {host}, pid "
                f"{pid}, lease until {until}); if that run was killed, run again after its lease ends"
            )
        self.etag = self.store.replace_if(self.rel, self._body(), etag)
        if self.etag is None:
            raise RuntimeError(f"{self.what}: another run took over the expired {self.store.url_of(self.rel)} first")
        return self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._renew, name="emotions-lock-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3) and self.renew():
            pass

    def renew(self) -> bool:
        """Extend the lease by one conditional put; False (and :meth:`check` raises from then on) when another run
        has taken the lock over. A store unreachable for now is tried again at the next renewal: the lease covers
        two misses."""
        try:
            etag = self.store.replace_if(self.rel, self._body(), self.etag or "")
        except LocalFault:
            return True
        if etag is None:
            self.lost = f"{self.what}: lost {self.store.url_of(self.rel)} to another run (its lease had expired)"
            return False
        self.etag = etag
        return True

    def check(self) -> None:
        """Raise RuntimeError when another run has taken the lock over (this run must commit nothing more)."""
        if self.lost:
            raise RuntimeError(self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.etag and not self.lost:
            self.store.delete_if(self.rel, self.etag)
        self.etag = None


def node_scratch(url: str) -> Path:
    """This host's working folder for the dataset at `url`: downloads, transcodes and the driver's copies are made
    here and uploaded when finished. One per dataset and host, so the workers of a host share the download rate
    locks (`--max-requests-per-minute` holds per host for a dataset in object storage). `EMOTIONS_SCRATCH_DIR`
    chooses the parent folder (default: the system's temporary folder); ValueError naming it when it is not an
    absolute path (workers run in other folders) or names something that is not a folder."""
    chosen = os.environ.get("EMOTIONS_SCRATCH_DIR")
    if chosen and (not os.path.isabs(chosen) or (os.path.lexists(chosen) and not os.path.isdir(chosen))):
        raise ValueError(f"EMOTIONS_SCRATCH_DIR={chosen!r}: must be the absolute path of a folder (made when missing)")
    parent = Path(chosen or tempfile.gettempdir())
    name = hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16]
    return parent / f"emotions-scratch-{name}"


def clear_folder(folder: Path) -> None:
    """Delete what a killed run left in a scratch folder (only called under the dataset's lock)."""
    shutil.rmtree(folder, ignore_errors=True)

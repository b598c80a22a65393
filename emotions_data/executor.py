"""Where pipeline jobs run. Every backend has one signature: `map_unordered(fn, jobs)` yields each
job's result as it finishes. Jobs commit their own results (see `storage.StageLog`), so a backend
never has to ship rows back reliably: a lost job just leaves its items pending for the next run.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
import socket
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from emotions_data.child_processes import end_with_parent

Job = TypeVar("Job")
Result = TypeVar("Result")
Handle = TypeVar("Handle")

EXECUTORS = ("local", "serial", "ray")
RAY_EXTRA_HINT = "--executor ray needs the ray extra: pip install 'emotions[ray]'"


class ExecutorError(RuntimeError):
    """The backend cannot run (e.g. Ray is not installed) or lost work (e.g. a worker process was
    killed); committed work is kept."""


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]: ...

    def close(self) -> None: ...


class _Closing:
    """Executors are context managers that release their workers on exit."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        self.close()

    def abort(self) -> None:
        """Interrupted (Ctrl-C, SIGTERM): end the jobs in flight now rather than wait for them (their partial files
        are temporaries, swept by the next run)."""


def _bounded_map(
    jobs: Sequence[Job],
    limit: int,
    submit: Callable[[Job], Handle],
    wait_any: Callable[[list[Handle]], tuple[list[Handle], list[Handle]]],
    result: Callable[[Handle], Result],
    cancel: Callable[[Handle], object],
) -> Iterator[Result]:
    """Keep at most `limit` jobs in flight, so an interrupted run has little work to redo, and
    yield results as they finish; whatever is still in flight when the caller stops is cancelled."""
    pending = iter(jobs)
    in_flight: list[Handle] = []
    try:
        in_flight.extend(submit(job) for job in itertools.islice(pending, limit))
        while in_flight:
            done, in_flight = wait_any(in_flight)
            for handle in done:
                yield result(handle)
                in_flight.extend(submit(job) for job in itertools.islice(pending, 1))
    finally:
        for handle in in_flight:
            cancel(handle)


class SerialExecutor(_Closing):
    """Runs jobs in this process, in order: for debugging and tiny inputs."""

    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]:
        for job in jobs:
            yield fn(job)


def _worker_start(parent_pid: int) -> None:
    """A pool worker's first steps: quiet on Ctrl-C, and ended with its parent (`child_processes.end_with_parent`)."""
    _quiet_interrupt()
    end_with_parent(parent_pid)


def _quiet_interrupt() -> None:
    """In a pool worker: Ctrl-C (SIGINT to the terminal's whole process group) ends an idle worker quietly instead
    of each printing a KeyboardInterrupt traceback; the driver gets it too and reports the interruption once. A job
    that is running is stopped as before (the exception is its result), and its partial files are temporaries."""
    signal.signal(signal.SIGINT, _exit_on_interrupt)


def _exit_on_interrupt(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # multiprocessing ends a process on SystemExit without a traceback


def _first_completed(futures: list[Future]) -> tuple[list[Future], list[Future]]:
    done, not_done = wait(futures, return_when=FIRST_COMPLETED)
    return list(done), list(not_done)


class LocalProcessExecutor(_Closing):
    """A pool of `workers` processes on this machine (spawned, so no state leaks from the parent),
    started on first use and kept until `close()`, so the stages of a run share it.
    At most `workers * 2` jobs are in flight."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """End the workers at once (SIGTERM: each kills its own children first), so that closing does not wait for
        the jobs in flight."""
        if self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):  # no public way before Python 3.14
                if process.is_alive():
                    process.terminate()

    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]:
        if not jobs:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start,
                initargs=(os.getpid(),),
            )  # fmt: skip
        pool = self._pool
        try:
            yield from _bounded_map(
                jobs, self.workers * 2, lambda job: pool.submit(fn, job), _first_completed, Future.result, Future.cancel
            )
        except BrokenProcessPool as exc:
            self._pool = None
            raise ExecutorError("a worker process died; finished work is kept, re-run to resume") from exc


def import_ray() -> Any:
    """The `ray` module, imported only when asked for: the core never needs it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(RAY_EXTRA_HINT) from None
    return ray


def _call(fn: Callable[[Job], Result], job: Job) -> tuple[str, Result]:
    """The Ray task: any picklable callable runs, as in the process pool (`ray.remote` takes only functions).
    Returns the id of the node that ran it with the result, so a run can say where its jobs went."""
    import ray

    return ray.get_runtime_context().get_node_id(), fn(job)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a `HOST:PORT` (or `ray://HOST:PORT`) nobody listens on: `ray.init` would keep
    retrying for minutes. Other forms (`auto`) are left to Ray, which fails fast on those."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class RayExecutor(_Closing):
    """Jobs as Ray tasks (one CPU each), on a Ray cluster or on a local instance started for the run.

    `address` (else `$RAY_ADDRESS`) names a running cluster (`auto`, `HOST:6379`, `ray://HOST:10001`);
    without one a local instance with `workers` CPUs is started and shut down on `close()`. If Ray is
    already initialised in this process, that session is used and left running. The modules the jobs
    need must be importable on every node: install the package there, or pass a `runtime_env` in
    `init_options` (forwarded to `ray.init`).

    A task whose worker dies (killed, OOM, node lost) is re-run by Ray up to `max_retries` times:
    jobs commit their shard atomically and the newest row per item wins, so a re-run shard never
    duplicates a row. Beyond that the run stops with `ExecutorError`; committed shards are kept.
    """

    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        *,
        max_retries: int = 3,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.requested_cpus = max(1, workers)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.max_retries = max_retries
        self.init_options = dict(init_options or {})
        self._ray: Any = None
        self._started = False
        self.jobs_per_node: Counter[str] = Counter()  # finished jobs by Ray node id (a re-run counts where it ended)

    def _connect(self) -> Any:
        if self._ray is None:
            ray = import_ray()
            if not ray.is_initialized():
                options: dict[str, Any] = {
                    "address": self.address,
                    "include_dashboard": False,
                    "log_to_driver": False,  # worker logs stay in the session's log folder, not on our stderr
                    "logging_level": logging.WARNING,
                    **self.init_options,
                }
                if self.address in (None, "local"):  # a cluster brings its own CPUs
                    options.setdefault("num_cpus", self.requested_cpus)
                else:
                    _check_reachable(self.address)
                try:
                    ray.init(**options)
                except ConnectionError as exc:
                    raise ExecutorError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
                self._started = True
            self._ray = ray
        return self._ray

    @property
    def workers(self) -> int:
        """The CPUs of the cluster: how many jobs Ray runs at once (connects on first use)."""
        return max(1, int(self._connect().cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        if self._started and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray, self._started = None, False

    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]:
        if not jobs:
            return
        ray = self._connect()
        task = ray.remote(_call).options(
            name=getattr(fn, "__name__", "job"), num_cpus=1, max_retries=self.max_retries, retry_exceptions=False
        )

        def submit(job: Job) -> Any:
            return task.remote(fn, job)

        def wait_any(refs: list) -> tuple[list, list]:
            return ray.wait(refs, num_returns=1)

        def result(ref: Any) -> Result:
            node, value = ray.get(ref)
            self.jobs_per_node[node] += 1
            return value

        try:
            yield from _bounded_map(jobs, self.workers * 2, submit, wait_any, result, ray.cancel)
        except ray.exceptions.RayTaskError as exc:
            # The job itself raised: re-raise its own exception, as the other backends do.
            raise (exc.cause if isinstance(exc.cause, BaseException) else exc) from exc
        except ray.exceptions.RayError as exc:
            raise ExecutorError(
                f"Ray lost a job ({type(exc).__name__}, after {self.max_retries} retries); "
                "finished work is kept, re-run to resume"
            ) from exc


def placement_line(executor: object) -> str | None:
    """Where a Ray run's jobs went, e.g. `ray: 12 jobs on 2 nodes (3f2a9c01: 7, 9be41d77: 5)` (node ids
    shortened to 8 hex digits); None for the other backends, which run on this machine, or when no job ran."""
    counts = executor.jobs_per_node if isinstance(executor, RayExecutor) else None
    if not counts:
        return None
    nodes = ", ".join(f"{node[:8]}: {n}" for node, n in counts.most_common())
    total, k = sum(counts.values()), len(counts)
    return f"ray: {total} job{'s' * (total != 1)} on {k} node{'s' * (k != 1)} ({nodes})"


def make_executor(
    name: str, workers: int, address: str | None = None
) -> LocalProcessExecutor | SerialExecutor | RayExecutor:
    """The backend called `name`; `address` is the Ray cluster's (ignored by the others)."""
    if name == "local":
        return SerialExecutor() if workers <= 1 else LocalProcessExecutor(workers)
    if name == "serial":
        return SerialExecutor()
    if name == "ray":
        import_ray()  # fail now, before any work, when the extra is missing
        return RayExecutor(workers, address)
    raise ValueError(f"unknown executor {name!r} (choose: {', '.join(EXECUTORS)})")

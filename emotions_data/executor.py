"""Where pipeline jobs run. Every backend has one signature: `map_unordered(fn, jobs)` yields each
job's result as it finishes. Jobs commit their own results (see `storage.StageLog`), so a backend
never has to ship rows back reliably: a lost job just leaves its items pending for the next run.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class ExecutorError(RuntimeError):
    """The backend lost work (e.g. a worker process was killed); committed work is kept."""


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]: ...

    def close(self) -> None: ...


class _Closing:
    """Executors are context managers that release their workers on exit."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(_Closing):
    """Runs jobs in this process, in order: for debugging and tiny inputs."""

    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]:
        for job in jobs:
            yield fn(job)


class LocalProcessExecutor(_Closing):
    """A pool of `workers` processes on this machine (spawned, so no state leaks from the parent),
    started on first use and kept until `close()`, so the stages of a run share it.
    At most `workers * 2` jobs are in flight, so an interrupted run has little work to redo."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map_unordered(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> Iterator[Result]:
        if not jobs:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        pool = self._pool
        pending = iter(jobs)
        in_flight: set[Future] = set()
        try:
            for job in pending:
                in_flight.add(pool.submit(fn, job))
                if len(in_flight) >= self.workers * 2:
                    break
            while in_flight:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        in_flight.add(pool.submit(fn, nxt))
        except BrokenProcessPool as exc:
            self._pool = None
            raise ExecutorError("a worker process died; finished work is kept, re-run to resume") from exc
        finally:
            for future in in_flight:
                future.cancel()


def make_executor(name: str, workers: int) -> LocalProcessExecutor | SerialExecutor:
    if name == "local":
        return SerialExecutor() if workers <= 1 else LocalProcessExecutor(workers)
    if name == "serial":
        return SerialExecutor()
    raise ValueError(f"unknown executor {name!r} (choose: local, serial)")

"""What every command shares: the stderr console, one-line errors, progress bars and number formatting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)
stdout = Console()  # results (tables) go to stdout

EXECUTOR_HELP = "local (process pool), serial, or ray (needs the ray extra: pip install 'emotions\\[ray]')"
RAY_ADDRESS_HELP = (
    "Ray cluster to run on (HOST:PORT, ray://HOST:PORT, auto); default: a local Ray instance with --workers CPUs"
)


def error_line(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width: scripts grep these."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    error_line(message)
    return typer.Exit(code)


def os_error_text(exc: OSError, folder: Path | None = None) -> str:
    """`PATH: reason` for an OSError, without Python's `[Errno N]`: the file it names, else `folder` (what the command
    was writing). A full disk or quota, a read-only or unwritable folder (`emotions_data.faults.local_fault`) also
    says what to do about it."""
    from emotions_data.faults import local_fault

    if exc.filename is not None or folder is not None:
        fault = local_fault(exc, folder or Path("."))
        if fault is not None:
            return str(fault)
    reason = exc.strerror or str(exc)
    where = os.fsdecode(exc.filename) if exc.filename is not None else folder
    return f"{where}: {reason}" if where is not None else reason


def failure(exc: Exception, folder: Path | None = None) -> typer.Exit:
    """`fail` with the message of `exc`; an OSError names its file, else `folder` (`os_error_text`)."""
    return fail(os_error_text(exc, folder) if isinstance(exc, OSError) else str(exc))


def local_folder(value: Path | None) -> Path | None:
    """Typer's callback for folder arguments: a `file://` URL becomes its path; `s3://` and other URLs are refused
    with one line (only `emotions ingest` writes to object storage; the others need a folder)."""
    from emotions_data.layout import local_dataset_dir

    if value is None:
        return None
    try:
        return local_dataset_dir(value)
    except ValueError as exc:
        raise fail(str(exc)) from None


def say(message: str) -> None:
    """A progress or status line on stderr, unwrapped and without rich's highlighting."""
    console.print(message, highlight=False, soft_wrap=True)


class ProgressBar:
    """Adapts the library's (stage, done, total) callback to a rich progress bar per stage; `fields` are the
    task fields the bar's columns expect (e.g. a training bar's `status`)."""

    def __init__(self, progress: Progress, **fields: object) -> None:
        self.progress = progress
        self.fields = fields
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, **self.fields)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def progress_bars() -> Progress:
    """Per-stage bars on stderr; silent when stderr is not a terminal (logs and pipes stay clean)."""
    return Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal and not sys.stderr.isatty(),
    )


def fmt(value: object, digits: int = 3) -> str:
    """A statistic for a table cell: `–` for undefined, floats to `digits`, [lo, hi] intervals."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list) and len(value) == 2:
        return f"[{fmt(value[0])}, {fmt(value[1])}]"
    return str(value)

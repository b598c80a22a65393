"""The `emotions` command line: thin wrappers over the library functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(
    help="Build, annotate, split, document and validate short-video emotion datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def error_line(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width: scripts grep these."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    error_line(message)
    return typer.Exit(code)


class _ProgressBar:
    """Adapts the library's (stage, done, total) callback to a rich progress bar per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal and not sys.stderr.isatty(),
    )


def print_report(report) -> None:
    table = Table(title=f"ingest: {report.n_inputs} inputs", show_header=True)
    table.add_column("status / reason")
    table.add_column("count", justify="right")
    for status, count in report.status_counts.items():
        table.add_row(f"[bold]{status}[/bold]", str(count))
        for reason, n in report.reason_counts.get(status, {}).items():
            table.add_row(f"  {reason}", str(n))
    Console().print(table)
    processed = ", ".join(f"{k} {v}" for k, v in report.n_processed.items())
    Console().print(
        f"processed this run: {processed} in {report.elapsed_s:.1f} s "
        f"({report.throughput:.2f} items/s); ok media: {report.media_seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="URL list (.txt), table with a url column (.csv, .parquet), or folder")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset folder")],
    workers: Annotated[int | None, typer.Option(help="parallel worker processes [default: 2]")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with an [ingest] table")] = None,
    executor: Annotated[str, typer.Option(help="local or serial")] = "local",
    min_duration: Annotated[float | None, typer.Option(help="seconds [default: 1]")] = None,
    max_duration: Annotated[float | None, typer.Option(help="seconds [default: 300]")] = None,
    min_short_side: Annotated[int | None, typer.Option(help="pixels [default: 240]")] = None,
    require_audio: Annotated[bool | None, typer.Option("--require-audio/--allow-no-audio")] = None,
    max_short_side: Annotated[int | None, typer.Option(help="normalised resolution cap [default: 720]")] = None,
    near_dup_threshold: Annotated[float | None, typer.Option(help="fingerprint distance [default: 0.30]")] = None,
    limit_rate: Annotated[int | None, typer.Option(help="download bytes/s per worker")] = None,
    max_requests_per_minute: Annotated[float | None, typer.Option(help="per domain, all workers")] = None,
    attempts: Annotated[int | None, typer.Option(help="download tries per run [default: 3]")] = None,
    user_agent: Annotated[str | None, typer.Option()] = None,
    allow_file_urls: Annotated[bool | None, typer.Option("--allow-file-urls", help="accept file:// URLs")] = None,
    retry_permanent: Annotated[bool, typer.Option(help="also retry permanent failures")] = False,
) -> None:
    """Fetch, probe, filter, deduplicate and normalise videos into DATASET_DIR/manifests/videos.parquet.

    Cookies for yt-dlp come from $EMOTIONS_COOKIES_FILE or the config file, never from the command line."""
    from emotions_data.executor import ExecutorError, make_executor
    from emotions_data.ingest import ingest as run_ingest
    from emotions_data.settings import load_settings
    from emotions_data.sources import SourceError

    try:
        settings = load_settings(
            config,
            **{
                "workers": workers,
                "filters.min_duration_s": min_duration,
                "filters.max_duration_s": max_duration,
                "filters.min_short_side": min_short_side,
                "filters.require_audio": require_audio,
                "normalise.max_short_side": max_short_side,
                "dedup.near_duplicate_threshold": near_dup_threshold,
                "download.rate_limit_bytes": limit_rate,
                "download.max_requests_per_minute": max_requests_per_minute,
                "download.attempts": attempts,
                "download.user_agent": user_agent,
                "download.allow_file_urls": allow_file_urls,
            },
        )
        with _progress() as progress, make_executor(executor, settings.workers) as pool:
            report = run_ingest(
                sources, out, settings, executor=pool, progress=_ProgressBar(progress), retry_permanent=retry_permanent
            )
    except (SourceError, ValueError, RuntimeError, ExecutorError) as exc:
        raise fail(str(exc)) from None
    print_report(report)
    console.print(f"manifest: {out / 'manifests' / 'videos.parquet'}", highlight=False)


@app.command()
def probe(
    files: Annotated[list[Path], typer.Argument(help="media files")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print probe facts (as displayed: rotation applied) for FILES; writes nothing."""
    from emotions_data.probe import ProbeError, probe_file

    failed = False
    for path in files:
        try:
            facts = probe_file(path).as_dict()
        except ProbeError as exc:
            error_line(f"{path}: {exc}")
            failed = True
            continue
        if as_json:
            print(json.dumps({"file": str(path), **facts}))
        else:
            table = Table(title=str(path), show_header=False)
            for key, value in facts.items():
                table.add_row(key, str(value))
            Console().print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset folder")] = Path("demo-dataset"),
    workers: Annotated[int, typer.Option(help="parallel worker processes")] = 2,
) -> None:
    """Generate the demo corpus, serve it on 127.0.0.1 and ingest it through yt-dlp like real URLs."""
    from emotions_data.demo import run_demo

    try:
        with _progress() as progress:
            report = run_demo(out, workers=workers, progress=_ProgressBar(progress), log=console.print)
    except (ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    print_report(report)
    console.print(f"dataset: {out}  (manifest: {out / 'manifests' / 'videos.parquet'})", highlight=False)


if __name__ == "__main__":
    app()

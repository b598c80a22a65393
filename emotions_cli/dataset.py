"""Dataset commands: `emotions ingest | probe | split | import-official` (releases: `emotions_cli.release`)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from emotions_cli.console import (
    EXECUTOR_HELP,
    RAY_ADDRESS_HELP,
    ProgressBar,
    console,
    error_line,
    fail,
    failure,
    local_folder,
    os_error_text,
    progress_bars,
    stdout,
)
from emotions_cli.params import SEED, integers, number, setting

dataset_app = typer.Typer()


def _setting_option(kind: type, name: str, help_text: str) -> Any:
    """An option that sets the ingest setting `name` (dotted): a number here, its range checked (and named) by
    `load_settings`."""
    return Annotated[kind | None, number(bounds=setting(kind, name), help=help_text)]


MinDurationOpt = _setting_option(float, "filters.min_duration_s", "seconds \\[default: 1]")
MaxDurationOpt = _setting_option(float, "filters.max_duration_s", "seconds \\[default: 300]")
MinShortSideOpt = _setting_option(int, "filters.min_short_side", "pixels \\[default: 240]")
MaxShortSideOpt = _setting_option(int, "normalise.max_short_side", "normalised resolution cap \\[default: 720]")
NearDupOpt = _setting_option(float, "dedup.near_duplicate_threshold", "fingerprint distance \\[default: 0.30]")
LimitRateOpt = _setting_option(int, "download.rate_limit_bytes", "download bytes/s per worker")
RequestsOpt = _setting_option(float, "download.max_requests_per_minute", "per domain, all workers")
AttemptsOpt = _setting_option(int, "download.attempts", "download tries per run \\[default: 3]")


def print_report(report) -> None:
    table = Table(title=f"ingest: {report.n_inputs} inputs", show_header=True)
    table.add_column("status / reason")
    table.add_column("count", justify="right")
    for status, count in report.status_counts.items():
        table.add_row(f"[bold]{status}[/bold]", str(count))
        for reason, n in report.reason_counts.get(status, {}).items():
            table.add_row(f"  {reason}", str(n))
    stdout.print(table)
    processed = ", ".join(f"{k} {v}" for k, v in report.n_processed.items())
    stdout.print(
        f"processed this run: {processed} in {report.elapsed_s:.1f} s "
        f"({report.throughput:.2f} items/s); ok media: {report.media_seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


@dataset_app.command()
def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="URL list (.txt), table with a url column (.csv, .parquet), or folder")
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="dataset folder, or s3://BUCKET/PREFIX (docs/lead/scale.md)")],
    workers: Annotated[
        int | None, number(bounds=setting(int, "workers"), help="parallel worker processes \\[default: 2]")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with an \\[ingest] table")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help=RAY_ADDRESS_HELP)] = None,
    min_duration: MinDurationOpt = None,
    max_duration: MaxDurationOpt = None,
    min_short_side: MinShortSideOpt = None,
    require_audio: Annotated[bool | None, typer.Option("--require-audio/--allow-no-audio")] = None,
    max_short_side: MaxShortSideOpt = None,
    near_dup_threshold: NearDupOpt = None,
    limit_rate: LimitRateOpt = None,
    max_requests_per_minute: RequestsOpt = None,
    attempts: AttemptsOpt = None,
    user_agent: Annotated[str | None, typer.Option()] = None,
    allow_file_urls: Annotated[bool | None, typer.Option("--allow-file-urls", help="accept file:// URLs")] = None,
    retry_permanent: Annotated[bool, typer.Option(help="also retry permanent failures")] = False,
) -> None:
    """Fetch, probe, filter, deduplicate and normalise videos into DATASET_DIR/manifests/videos.parquet.

    Cookies for yt-dlp come from $EMOTIONS_COOKIES_FILE or the config file, never from the command line."""
    from emotions_data.executor import ExecutorError, make_executor, placement_line
    from emotions_data.ingest import ingest as run_ingest
    from emotions_data.layout import local_dataset_dir
    from emotions_data.location import open_location
    from emotions_data.objectstore import is_object_url
    from emotions_data.settings import load_settings
    from emotions_data.sources import SourceError

    try:
        if not is_object_url(out):  # checked before any executor starts: gs:// and the like are refused
            open_location(out)
            _check_out(local_dataset_dir(out))
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
        with progress_bars() as progress, make_executor(executor, settings.workers, ray_address) as pool:
            report = run_ingest(
                sources, out, settings, executor=pool, progress=ProgressBar(progress), retry_permanent=retry_permanent
            )
            placement = placement_line(pool)
    except (SourceError, ValueError, RuntimeError, ExecutorError) as exc:  # LocalFault is a RuntimeError
        raise fail(str(exc)) from None
    except OSError as exc:  # e.g. --out below a file: the library names what it could not do
        raise fail(os_error_text(exc)) from None
    except KeyboardInterrupt:  # the lock is released and the working folder emptied on the way out
        raise fail("interrupted: finished work is kept; the same command resumes", 130) from None
    print_report(report)
    for line in report.refused_inputs:
        console.print(f"refused: {line}", highlight=False, soft_wrap=True, markup=False)
    if placement:
        console.print(placement, highlight=False)
    where = f"{out.rstrip('/')}/" if is_object_url(out) else f"{local_dataset_dir(out)}{os.sep}"
    console.print(f"manifest: {where}manifests/videos.parquet", highlight=False)


def _check_out(out: Path) -> None:
    """Raises ValueError naming --out when it, or the nearest of its folders that exists, is not a folder."""
    existing = out
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == out else f" ({existing} is not a folder)"
        raise ValueError(f"--out {out}: not a folder{where}; give a new folder, or an existing dataset's")


@dataset_app.command()
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
        except OSError as exc:  # ffprobe missing, or too many open files
            raise fail(os_error_text(exc)) from None
        if as_json:
            print(json.dumps({"file": str(path), **facts}))
        else:
            table = Table(title=str(path), show_header=False)
            for key, value in facts.items():
                table.add_row(key, str(value))
            stdout.print(table)
    if failed:
        raise typer.Exit(1)


def leak_failure(exc, what: str) -> typer.Exit:
    """One `leak:` line per offending pair, then the one-line error."""
    for problem in exc.problems:
        print(f"leak: {problem}", file=sys.stderr)
    return fail(f"{what}: leakage gate failed with {len(exc.problems)} problem(s)")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """`--ratios` as three shares; raises typer.Exit after one error line naming the option."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(p >= 0 and math.isfinite(p) for p in parts) or not abs(sum(parts) - 1) <= 1e-6:
        raise fail(f"--ratios {text!r}: expected three non-negative numbers train,val,test summing to 1")
    return parts  # type: ignore[return-value]


@dataset_app.command()
def split(
    dataset: Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)],
    seed: Annotated[int, number(bounds=SEED)] = 0,
    ratios: Annotated[str, typer.Option(help="train,val,test")] = "0.8,0.1,0.1",
    balanced_per_class: Annotated[
        int | None, number(bounds=integers(1), help="balanced variant: per class and split")
    ] = None,
    test_per_class: Annotated[
        int | None, number(bounds=integers(1), help="test_oriented variant: test items per class")
    ] = (None),
    check: Annotated[bool, typer.Option("--check", help="only run the leakage gate on the written splits")] = False,
) -> None:
    """Group-aware stratified splits (full, balanced, test_oriented) into manifests/splits.parquet."""
    from emotions_data.layout import DatasetLayout
    from emotions_data.split_step import LeakageError, check_splits, split_dataset
    from emotions_data.stratified_split import SplitSettings

    layout = DatasetLayout(dataset)
    try:
        if check:
            problems = check_splits(layout)
            if problems:
                raise LeakageError(problems)
            stdout.print(f"leakage gate passed: {layout.splits}", highlight=False)
            return
        settings = SplitSettings(parse_ratios(ratios), seed, balanced_per_class, test_per_class)
        outcome = split_dataset(layout, settings)
    except LeakageError as exc:
        raise leak_failure(exc, str(layout.splits)) from None
    except (ValueError, OSError) as exc:
        raise failure(exc, layout.manifests) from None
    table = outcome.result.deviation.pivot_table(
        index=["variant", "label"], columns="split", values="count", aggfunc="sum"
    )
    stdout.print(table.fillna(0).astype(int).to_string())
    full = outcome.result.deviation.query("variant == 'full'")
    stdout.print(
        f"full: largest per-class deviation from the ratios {full['deviation'].abs().max():.4f}; "
        f"{len(set(outcome.result.groups))} groups; {outcome.n_unlabelled} ok video(s) without a final label left out",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    stdout.print(f"splits: {layout.splits} (leakage gate passed)", highlight=False)


@dataset_app.command("import-official")
def import_official_cmd(
    path: Annotated[Path, typer.Argument(help="the authors' release folder, or a folder per class")],
    out: Annotated[str, typer.Option("--out", "-o", help="dataset folder")],
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML (VideoEmotion-8, Ekman-6, ...)")] = (
        "emotions6"
    ),
    workers: Annotated[int, number(bounds=setting(int, "workers"), help="parallel worker processes")] = 2,
    config: Annotated[Path | None, typer.Option(help="TOML file with an \\[ingest] table")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help=RAY_ADDRESS_HELP)] = None,
    replace_labels: Annotated[
        bool, typer.Option("--replace-labels", help="replace final labels the dataset already holds")
    ] = False,
    fold: Annotated[
        int | None, number(bounds=integers(1, 100), help="which fold of split lists to import \\[default: 1]")
    ] = None,
) -> None:
    """Import a published dataset (class folders, classInd/trainlist/testlist, ActivityNet JSON) with its
    labels and split, so splits, cards and the baseline run on it."""
    from emotions_data.executor import make_executor
    from emotions_data.layout import local_dataset_dir
    from emotions_data.official import import_official
    from emotions_data.settings import load_settings
    from emotions_data.taxonomy import resolve_taxonomy

    try:
        folder = local_dataset_dir(out)  # labels and splits are committed by renames: a folder, not s3://
        settings = load_settings(config, workers=workers)
        with progress_bars() as progress, make_executor(executor, settings.workers, ray_address) as pool:
            report, found = import_official(
                path, folder, resolve_taxonomy(taxonomy), settings, executor=pool, progress=ProgressBar(progress),
                replace_labels=replace_labels, fold=fold,
            )  # fmt: skip
    except (ValueError, RuntimeError, OSError) as exc:
        raise failure(exc, Path(out)) from None
    print_report(report)
    split_counts = ", ".join(f"{k} {v}" for k, v in sorted(Counter(found.splits.values()).items()))
    console.print(f"labels: {len(found.labels)} videos; official split: {split_counts or 'none'}", highlight=False)

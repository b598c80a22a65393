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

annotate_app = typer.Typer(help="Annotation workflow over Label Studio.", no_args_is_help=True)
app.add_typer(annotate_app, name="annotate")


def error_line(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width: scripts grep these."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    error_line(message)
    return typer.Exit(code)


class _ProgressBar:
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


EXECUTOR_HELP = "local (process pool), serial, or ray (needs the ray extra: pip install 'emotions[ray]')"
RAY_ADDRESS_HELP = (
    "Ray cluster to run on (HOST:PORT, ray://HOST:PORT, auto); default: a local Ray instance with --workers CPUs"
)


@app.command()
def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="URL list (.txt), table with a url column (.csv, .parquet), or folder")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset folder")],
    workers: Annotated[int | None, typer.Option(help="parallel worker processes [default: 2]")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with an [ingest] table")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help=RAY_ADDRESS_HELP)] = None,
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
    from emotions_data.layout import local_dataset_dir
    from emotions_data.settings import load_settings
    from emotions_data.sources import SourceError

    try:
        out = local_dataset_dir(out)  # before any executor starts: s3:// and the like are refused
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
        with _progress() as progress, make_executor(executor, settings.workers, ray_address) as pool:
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
    annotate: Annotated[bool, typer.Option("--annotate/--no-annotate", help="run the annotation workflow")] = True,
    train: Annotated[bool, typer.Option("--train/--no-train", help="train and evaluate the tiny baseline")] = True,
) -> None:
    """Build the demo dataset: generate the corpus, serve it on 127.0.0.1 and ingest it through yt-dlp
    like real URLs, then annotate it on a real Label Studio server with a simulated panel."""
    from emotions_data.demo import run_demo

    try:
        with _progress() as progress:
            report, annotation, release_dir, evaluation = run_demo(
                out,
                workers=workers,
                progress=_ProgressBar(progress),
                annotate=annotate,
                train=train,
                log=lambda message: console.print(message, highlight=False, soft_wrap=True),
            )
    except (ValueError, RuntimeError, OSError) as exc:
        raise fail(str(exc)) from None
    print_report(report)
    if annotation is not None:
        print_agreement(annotation.agreement.to_dict())
        counts = ", ".join(f"{k}: {v}" for k, v in annotation.label_counts.items())
        decided = ", ".join(f"{k}: {v}" for k, v in annotation.decided_by.items())
        Console().print(f"final labels: {counts}  (decided by {decided})", highlight=False, soft_wrap=True)
        Console().print(
            f"to browse the projects: emotions annotate server start --data-dir {out / '.label-studio'} "
            f"--document-root {out}", highlight=False, soft_wrap=True,
        )  # fmt: skip
    if evaluation is not None:
        from baselines.cli import print_metrics

        print_metrics(evaluation.metrics)
        console.print(f"baseline evaluation: {evaluation.out_dir}", highlight=False)
    if release_dir is not None:
        console.print(f"release: {release_dir}  (card: {release_dir / 'README.md'})", highlight=False)
    console.print(f"dataset: {out}  (manifests in {out / 'manifests'})", highlight=False)


def leak_failure(exc, what: str) -> typer.Exit:
    """One `leak:` line per offending pair, then the one-line error."""
    for problem in exc.problems:
        print(f"leak: {problem}", file=sys.stderr)
    return fail(f"{what}: leakage gate failed with {len(exc.problems)} problem(s)")


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return str(value)


def print_agreement(report: dict) -> None:
    out = Console()
    head = Table(title=f"agreement: {report['n_items']} items, {report['n_annotators']} annotators, "
                       f"{report['n_votes']} votes", show_header=True)  # fmt: skip
    head.add_column("statistic")
    head.add_column("value", justify="right")
    head.add_column(f"{report['confidence']:.0%} CI (bootstrap over items, n={report['n_bootstrap']})")
    head.add_row("Krippendorff's alpha (nominal)", _fmt(report["krippendorff_alpha"]), _fmt(report["alpha_ci"]))
    if report["fleiss_kappa"] is None:
        head.add_row("Fleiss' kappa", "–", report["fleiss_kappa_absent_reason"])
    else:
        head.add_row("Fleiss' kappa", _fmt(report["fleiss_kappa"]), _fmt(report["fleiss_kappa_ci"]))
    head.add_row(f"Cohen's kappa, mean of {report['cohen_kappa_pairs']} pairs", _fmt(report["cohen_kappa_mean"]), "")
    out.print(head)
    classes = Table(title="per class (one vs rest)")
    for col in ("class", "votes", "alpha", "CI"):
        classes.add_column(col, justify="left" if col == "class" else "right")
    for name, row in report["per_class"].items():
        classes.add_row(name, str(row["n_votes"]), _fmt(row["alpha"]), _fmt(row["alpha_ci"]))
    out.print(classes)
    people = Table(title="per annotator (against the others on the same items)")
    for col in ("annotator", "votes", "agreement", "with majority", "Cohen's kappa"):
        people.add_column(col, justify="left" if col == "annotator" else "right")
    for name, row in sorted(report["per_annotator"].items(), key=lambda kv: kv[1]["agreement"] or 0):
        people.add_row(name, str(row["n_votes"]), _fmt(row["agreement"]), _fmt(row["majority_agreement"]),
                       _fmt(row["cohen_kappa_mean"]))  # fmt: skip
    out.print(people)
    if report["most_disputed"]:
        disputed = Table(title="most disputed items")
        for col in ("video_id", "agreement", "votes"):
            disputed.add_column(col)
        for item in report["most_disputed"]:
            votes = ", ".join(f"{k}:{v}" for k, v in item["votes"].items())
            disputed.add_row(item["video_id"], _fmt(item["agreement"]), votes)
        out.print(disputed)


@app.command()
def agreement(
    votes: Annotated[Path, typer.Argument(help="Parquet or CSV with video_id, annotator_id, label")],
    stage: Annotated[str | None, typer.Option(help="only this stage's votes")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    taxonomy: Annotated[str | None, typer.Option(help="'emotions6' or a taxonomy TOML; validates labels")] = None,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples over items")] = 1000,
    confidence: Annotated[float, typer.Option(help="confidence level of the intervals")] = 0.95,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    top: Annotated[int, typer.Option(help="how many disputed items to list")] = 10,
) -> None:
    """Krippendorff's alpha, Fleiss' and Cohen's kappa, per class and per annotator, with CIs."""
    from annotation.agreement import agreement_report
    from annotation.votes import read_votes
    from emotions_data.taxonomy import resolve_taxonomy

    try:
        tax = resolve_taxonomy(taxonomy)
        frame = read_votes(votes, tax, stage)
        if frame.empty:
            raise ValueError(f"{votes}: no votes" + (f" in stage {stage!r}" if stage else ""))
        report = agreement_report(
            frame, list(tax.classes) if tax else None, n_bootstrap=bootstrap, confidence=confidence, seed=seed,
            top_disputed=top,
        )  # fmt: skip
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(report.to_dict(), allow_nan=False))
    else:
        print_agreement(report.to_dict())


@app.command()
def labels(
    dataset: Annotated[Path, typer.Argument(help="dataset folder")],
    method: Annotated[str, typer.Option(help="majority or dawid-skene")] = "majority",
    votes: Annotated[Path | None, typer.Option(help="vote table [default: DATASET/manifests/votes.parquet]")] = None,
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
) -> None:
    """Final labels into DATASET/manifests/labels.parquet; ties go to manifests/needs_expert.parquet."""
    from annotation.labels import final_labels
    from annotation.votes import read_votes
    from annotation.workflow import counted_votes
    from emotions_data.layout import DatasetLayout
    from emotions_data.storage import write_table_atomic
    from emotions_data.taxonomy import resolve_taxonomy

    layout = DatasetLayout(dataset)
    try:
        tax = resolve_taxonomy(taxonomy)
        frame = read_votes(votes or layout.votes, tax)
        counted = counted_votes(layout, frame)  # dropped annotators' votes stay on record but do not count
        result = final_labels(counted, tax, method)
    except ValueError as exc:
        raise fail(str(exc)) from None
    write_table_atomic(layout.labels, result.labels)
    write_table_atomic(layout.needs_expert, result.needs_expert)
    counts = result.labels.to_pandas().groupby(["label", "decided_by"]).size().unstack(fill_value=0)
    table = Table(title=f"labels ({method}): {result.labels.num_rows} decided, {result.needs_expert.num_rows} "
                        "waiting for the expert stage")  # fmt: skip
    table.add_column("label")
    for col in counts.columns:
        table.add_column(col, justify="right")
    for lab, row in counts.iterrows():
        table.add_row(str(lab), *(str(v) for v in row))
    Console().print(table)
    if len(counted) < len(frame):
        console.print(f"{len(frame) - len(counted)} vote(s) of dropped annotators not counted", highlight=False)
    console.print(f"labels: {layout.labels}", highlight=False)


@app.command()
def split(
    dataset: Annotated[Path, typer.Argument(help="dataset folder")],
    seed: Annotated[int, typer.Option()] = 0,
    ratios: Annotated[str, typer.Option(help="train,val,test")] = "0.8,0.1,0.1",
    balanced_per_class: Annotated[int | None, typer.Option(help="balanced variant: per class and split")] = None,
    test_per_class: Annotated[int | None, typer.Option(help="test_oriented variant: test items per class")] = None,
    check: Annotated[bool, typer.Option("--check", help="only run the leakage gate on the written splits")] = False,
) -> None:
    """Group-aware stratified splits (full, balanced, test_oriented) into manifests/splits.parquet."""
    from emotions_data.layout import DatasetLayout
    from emotions_data.splits import SplitSettings
    from emotions_data.splitting import LeakageError, check_splits, split_dataset

    layout = DatasetLayout(dataset)
    try:
        if check:
            problems = check_splits(layout)
            if problems:
                raise LeakageError(problems)
            Console().print(f"leakage gate passed: {layout.splits}", highlight=False)
            return
        parts = tuple(float(x) for x in ratios.split(","))
        settings = SplitSettings(parts, seed, balanced_per_class, test_per_class)  # type: ignore[arg-type]
        outcome = split_dataset(layout, settings)
    except LeakageError as exc:
        raise leak_failure(exc, str(layout.splits)) from None
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    table = outcome.result.deviation.pivot_table(
        index=["variant", "label"], columns="split", values="count", aggfunc="sum"
    )
    Console().print(table.fillna(0).astype(int).to_string())
    full = outcome.result.deviation.query("variant == 'full'")
    Console().print(
        f"full: largest per-class deviation from the ratios {full['deviation'].abs().max():.4f}; "
        f"{len(set(outcome.result.groups))} groups; {outcome.n_unlabelled} ok video(s) without a final label left out",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    Console().print(f"splits: {layout.splits} (leakage gate passed)", highlight=False)


@app.command()
def release(
    dataset: Annotated[Path, typer.Argument(help="dataset folder")],
    version: Annotated[str, typer.Option(help="X.Y.Z; an existing version is never overwritten")],
    name: Annotated[str | None, typer.Option(help="dataset name [default: the folder's name]")] = None,
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
) -> None:
    """Write releases/X.Y.Z: Parquet per variant and split, the authors' formats, the card, SHA256SUMS."""
    from annotation.workflow import read_counted_votes
    from emotions_data.layout import DatasetLayout
    from emotions_data.release import write_release
    from emotions_data.splitting import LeakageError
    from emotions_data.taxonomy import resolve_taxonomy

    layout = DatasetLayout(dataset)
    try:
        tax = resolve_taxonomy(taxonomy)
        votes = read_counted_votes(layout, tax)
        folder = write_release(layout, version, votes=votes, taxonomy=tax, name=name, card=_card_writer(layout))
    except LeakageError as exc:
        raise leak_failure(exc, f"release {version} not written") from None
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    meta = json.loads((folder / "release.json").read_text())
    for variant, counts in meta["variants"].items():
        Console().print(f"{variant}: " + ", ".join(f"{s} {n}" for s, n in counts.items()), highlight=False)
    console.print(f"release: {folder}", highlight=False)


@app.command("import-official")
def import_official_cmd(
    path: Annotated[Path, typer.Argument(help="the authors' release folder, or a folder per class")],
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset folder")],
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML (VideoEmotion-8, Ekman-6, ...)")] = (
        "emotions6"
    ),
    workers: Annotated[int, typer.Option(help="parallel worker processes")] = 2,
    config: Annotated[Path | None, typer.Option(help="TOML file with an [ingest] table")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help=RAY_ADDRESS_HELP)] = None,
) -> None:
    """Import a published dataset (class folders, classInd/trainlist/testlist, ActivityNet JSON) with its
    labels and split, so splits, cards and the baseline run on it."""
    from emotions_data.executor import make_executor
    from emotions_data.official import import_official
    from emotions_data.settings import load_settings
    from emotions_data.taxonomy import resolve_taxonomy

    try:
        settings = load_settings(config, workers=workers)
        with _progress() as progress, make_executor(executor, settings.workers, ray_address) as pool:
            report, found = import_official(path, out, resolve_taxonomy(taxonomy), settings, executor=pool,
                                            progress=_ProgressBar(progress))  # fmt: skip
    except (ValueError, RuntimeError, OSError) as exc:
        raise fail(str(exc)) from None
    print_report(report)
    split_counts = pd_counts(found.splits.values())
    console.print(f"labels: {len(found.labels)} videos; official split: {split_counts or 'none'}", highlight=False)


def pd_counts(values) -> str:
    from collections import Counter

    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(values).items()))


def _card_writer(layout):
    """The dataset card writer, or None while the card module is not available."""
    try:
        from emotions_data.card import build_metadata, write_card
    except ImportError:
        return None

    def write(release_dir: Path, votes) -> list[Path]:
        meta = build_metadata(release_dir, votes)
        return write_card(meta, release_dir, [layout.data_card(meta.name, meta.version)])

    return write


def _mount_server_commands() -> None:
    from annotation.cli import workflow_app
    from annotation.server import server_app

    annotate_app.add_typer(server_app, name="server")
    annotate_app.registered_commands += workflow_app.registered_commands
    from baselines.cli import baseline_app  # cache, train, evaluate (torch is imported by the commands only)

    app.registered_commands += baseline_app.registered_commands


_mount_server_commands()

if __name__ == "__main__":
    app()

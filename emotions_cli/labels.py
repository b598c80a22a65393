"""Annotation statistics and final labels: `emotions agreement | labels`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from emotions_cli.console import console, fail, failure, fmt, local_folder, stdout
from emotions_cli.params import SEED, integers, number, reals
from emotions_cli.votes import LEAVE_OUT_HELP, PSEUDONYMISE_HELP, print_notes

labels_app = typer.Typer()
#: `annotation.agreement.MAX_BOOTSTRAP`, kept here so the option is checked before the statistics are imported.
BOOTSTRAP = integers(0, 100_000, "more resamples do not narrow the interval; they take memory and time in proportion")


def print_agreement(report: dict) -> None:
    out = stdout
    head = Table(title=f"agreement: {report['n_items']} items, {report['n_annotators']} annotators, "
                       f"{report['n_votes']} votes", show_header=True)  # fmt: skip
    head.add_column("statistic")
    head.add_column("value", justify="right")
    head.add_column(f"{report['confidence']:.0%} CI (bootstrap over items, n={report['n_bootstrap']})")
    for statistic in report["statistics"]:  # whatever is registered, as the report lists it
        name = statistic["name"] + (f" ({statistic['detail']})" if statistic.get("detail") else "")
        note = fmt(statistic["ci"]) if statistic.get("ci") else ""
        if statistic["value"] is None:  # say why rather than print a bare dash
            note = ("undefined: " if statistic.get("applies", True) else "") + (statistic.get("reason") or "")
        elif statistic.get("reason"):
            note = f"{note} ({statistic['reason']})" if note else statistic["reason"]
        head.add_row(name, fmt(statistic["value"], statistic.get("digits", 3)), note)
    out.print(head)
    classes = Table(title="per class (one vs rest)")
    for col in ("class", "votes", "alpha", "CI"):
        classes.add_column(col, justify="left" if col == "class" else "right")
    for name, row in report["per_class"].items():
        classes.add_row(name, str(row["n_votes"]), fmt(row["alpha"]), fmt(row["alpha_ci"]))
    out.print(classes)
    people = Table(title="per annotator (against the others on the same items)")
    for col in ("annotator", "votes", "agreement", "with majority", "Cohen's kappa"):
        people.add_column(col, justify="left" if col == "annotator" else "right")
    for name, row in sorted(report["per_annotator"].items(), key=lambda kv: kv[1]["agreement"] or 0):
        people.add_row(name, str(row["n_votes"]), fmt(row["agreement"]), fmt(row["majority_agreement"]),
                       fmt(row["cohen_kappa_mean"]))  # fmt: skip
    out.print(people)
    if report["most_disputed"]:
        disputed = Table(title="most disputed items")
        for col in ("video_id", "agreement", "votes"):
            disputed.add_column(col)
        for item in report["most_disputed"]:
            votes = ", ".join(f"{k}:{v}" for k, v in item["votes"].items())
            disputed.add_row(item["video_id"], fmt(item["agreement"]), votes)
        out.print(disputed)


@labels_app.command()
def agreement(
    votes: Annotated[
        Path, typer.Argument(help="Parquet, CSV or JSON with video_id, annotator_id, label, or a Label Studio export")
    ],
    stage: Annotated[str | None, typer.Option(help="only this stage's votes")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    taxonomy: Annotated[str | None, typer.Option(help="'emotions6' or a taxonomy TOML; validates labels")] = None,
    bootstrap: Annotated[int, number(bounds=BOOTSTRAP, help="bootstrap resamples over items")] = 1000,
    confidence: Annotated[
        float, number(bounds=reals(above=0.0, below=1.0), help="confidence level of the intervals")
    ] = (0.95),
    seed: Annotated[int, number(bounds=SEED, help="bootstrap seed")] = 0,
    top: Annotated[int, number(bounds=integers(0), help="how many disputed items to list")] = 10,
) -> None:
    """Krippendorff's alpha, Fleiss' and Cohen's kappa, per class and per annotator, with CIs."""
    from annotation.agreement import agreement_report
    from annotation.outside_votes import read_outside_votes
    from emotions_data.taxonomy import resolve_taxonomy

    try:
        tax = resolve_taxonomy(taxonomy)
        notes: list[str] = []
        frame = read_outside_votes(votes, tax, stage, notes=notes).votes
        print_notes(notes)
        if frame.empty:
            raise ValueError(f"{votes}: no votes" + (f" in stage {stage!r}" if stage else ""))
        try:
            report = agreement_report(
                frame, list(tax.classes) if tax else None, n_bootstrap=bootstrap, confidence=confidence, seed=seed,
                top_disputed=top,
            )  # fmt: skip
        except ValueError as exc:  # what the table holds, e.g. no item with two votes
            raise ValueError(f"{votes}" + (f" (stage {stage!r})" if stage else "") + f": {exc}") from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(report.to_dict(), allow_nan=False))
    else:
        print_agreement(report.to_dict())


@labels_app.command()
def labels(
    dataset: Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)],
    method: Annotated[str, typer.Option(help="how votes become labels: one of the registered aggregators")] = (
        "majority"
    ),
    votes: Annotated[Path | None, typer.Option(help="vote table \\[default: DATASET/manifests/votes.parquet]")] = None,
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
    leave_out_unknown_videos: Annotated[bool, typer.Option(help=LEAVE_OUT_HELP)] = False,
    pseudonymise: Annotated[bool, typer.Option(help=PSEUDONYMISE_HELP)] = False,
) -> None:
    """Final labels into DATASET/manifests/labels.parquet; ties go to manifests/needs_expert.parquet."""
    from annotation.labels import METHODS
    from annotation.labels_step import decide_labels, label_counts
    from emotions_data.layout import DatasetLayout
    from emotions_data.taxonomy import resolve_taxonomy

    if method not in METHODS:
        raise fail(f"--method {method!r}: choose {' or '.join(METHODS)}")
    layout = DatasetLayout(dataset)
    try:
        notes: list[str] = []
        outcome = decide_labels(
            layout, resolve_taxonomy(taxonomy), method, votes, leave_out_unknown=leave_out_unknown_videos,
            pseudonymise=pseudonymise, notes=notes,
        )  # fmt: skip
    except (ValueError, OSError) as exc:  # a read-only or full disk: one line naming the folder
        raise failure(exc, layout.manifests) from None
    print_notes(notes)
    counts = label_counts(outcome)
    table = Table(title=f"labels ({method}): {outcome.labels.num_rows} decided, {outcome.needs_expert.num_rows} "
                        "waiting for the expert stage")  # fmt: skip
    table.add_column("label")
    for col in counts.columns:
        table.add_column(col, justify="right")
    for lab, row in counts.iterrows():
        table.add_row(str(lab), *(str(v) for v in row))
    stdout.print(table)
    if outcome.n_counted < outcome.n_votes:
        dropped = outcome.n_votes - outcome.n_counted
        console.print(f"{dropped} vote(s) of dropped annotators not counted", highlight=False)
    console.print(f"labels: {layout.labels}", highlight=False)

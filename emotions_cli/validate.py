"""`emotions validate DATASET`: suspect labels from the baseline's out-of-fold predictions, optionally sent to the
expert stage (thin over `baselines.crossval` and `emotions_data.suspects`); `emotions review DATASET`: the static
review page (`emotions_data.review`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotions_cli.console import console, fail, local_folder, stdout
from emotions_cli.params import SEED, integers, number, reals

validate_app = typer.Typer()


def _queue_for_expert(dataset: Path, top: int | None, max_margin: float | None) -> None:
    from emotions_data.layout import DatasetLayout
    from emotions_data.suspects import request_expert_review

    n = request_expert_review(DatasetLayout(dataset), top=top, max_margin=max_margin)
    console.print(f"{n} suspect(s) queued for the expert stage (the model disputes the label): run "
                  f"emotions annotate push {dataset} --stage expert", highlight=False, soft_wrap=True)  # fmt: skip


def _print_suspects(table, limit: int = 20) -> None:
    from rich.table import Table

    shown = Table(title=f"suspect labels: {table.num_rows} (first {min(limit, table.num_rows)})")
    columns = ["rank", "video_id", "label", "suggested", "self_confidence", "margin", "votes", "agreement",
               "decided_by"]  # fmt: skip
    for name in columns:
        shown.add_column(name, overflow="fold")
    for row in table.slice(0, limit).to_pylist():
        shown.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    stdout.print(shown)


@validate_app.command()
def validate(
    dataset: Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)],
    folds: Annotated[
        int, number(bounds=integers(2, 100, "k-fold needs two folds or more"), help="k of the group-aware k-fold")
    ] = 5,
    config: Annotated[str, typer.Option(help="tiny (CPU) or paper (GPU, with --weights/--audio-weights)")] = "tiny",
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N \\[default: cuda when available]")] = None,
    epochs: Annotated[
        int | None, number(bounds=integers(1, 100_000), help="override the configuration's epochs")
    ] = None,
    batch_size: Annotated[int | None, number(bounds=integers(1, 65_536), help="clips per batch")] = None,
    loader_workers: Annotated[
        int | None, number(bounds=integers(0, 256), help="DataLoader workers \\[default: the CPUs, <= 16]")
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="local visual backbone weights (Swin-T .pth)")] = None,
    audio_weights: Annotated[Path | None, typer.Option(help="local audio backbone weights (ResNet-34 .pth)")] = None,
    random_init: Annotated[bool, typer.Option(help="let --config paper start from random weights")] = False,
    use_cache: Annotated[bool, typer.Option("--cache/--no-cache", help="decode once into the cache")] = True,
    seed: Annotated[int, number(bounds=SEED, help="seed of the fold assignment")] = 0,
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
    to_expert: Annotated[
        int | None,
        number(bounds=integers(1), help="send the first N suspects by rank to the expert stage (a new round)"),
    ] = None,
    max_margin: Annotated[
        float | None,
        number(bounds=reals(-1.0, 1.0), help="with --to-expert: only suspects whose margin is at most this"),
    ] = None,
) -> None:
    """Train the baseline k-fold over the labelled items (whole leakage groups per fold), score each item with the
    model that never saw it, and list the labels it disputes (confident learning) into manifests/suspects.parquet,
    with each item's votes, agreement and decided_by. Labels are never changed; --to-expert queues suspects for
    `emotions annotate push DATASET --stage expert`."""
    if folds < 2:
        raise fail(f"--folds must be >= 2 (got {folds})")
    from emotions_cli.baseline import _device, _need_torch

    _need_torch()
    from annotation.votes import read_counted_votes
    from baselines.crossval import cross_validate
    from baselines.recipes import TrainRequest
    from emotions_data.layout import DatasetLayout
    from emotions_data.suspects import record_validation
    from emotions_data.taxonomy import resolve_taxonomy

    layout = DatasetLayout(dataset)
    device = _device(device)
    request = TrainRequest(dataset, config=config, device=device, epochs=epochs, batch_size=batch_size,
                           num_workers=loader_workers, use_cache=use_cache, weights=weights,
                           audio_weights=audio_weights, random_init=random_init)  # fmt: skip
    try:
        tax = resolve_taxonomy(taxonomy)
        result = cross_validate(dataset, request, tax, k=folds, seed=seed,
                                on_fold=lambda i, acc: console.print(f"fold {i + 1}/{folds}: accuracy {acc:.3f}",
                                                                     highlight=False))  # fmt: skip
        settings = {"folds": folds, "config": config, "seed": seed, "epochs": epochs,
                    "fold_accuracy": [result.fold_accuracy.get(i) for i in range(folds)]}  # fmt: skip
        table, report = record_validation(layout, result.items, result.probs, result.classes,
                                          read_counted_votes(layout, tax), settings, result.trained_on)  # fmt: skip
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    _print_suspects(table)
    summary = (f"out-of-fold accuracy {report['out_of_fold_accuracy']:.3f} over {report['n_items']} items; "
               f"{report['n_suspects']} suspect(s): {layout.manifests / 'suspects.parquet'}")  # fmt: skip
    console.print(summary, highlight=False, soft_wrap=True)
    chance = 1 / max(len(result.classes), 1)
    if report["out_of_fold_accuracy"] <= chance + 0.05:
        console.print(f"warning: the out-of-fold accuracy is near chance ({chance:.3f}): the model has not learnt the "
                      "classes, so its suspects say little (train longer, or the paper configuration)",
                      highlight=False, soft_wrap=True)  # fmt: skip
    if to_expert is not None or max_margin is not None:
        try:
            _queue_for_expert(dataset, to_expert, max_margin)
        except (ValueError, OSError) as exc:
            raise fail(str(exc)) from None


@validate_app.command()
def review(
    dataset: Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="folder \\[default: DATASET/review]")] = None,
    per_reason: Annotated[int, number(bounds=integers(0, 1000), help="thumbnails per status reason")] = 8,
    disputed: Annotated[
        int, number(bounds=integers(0, 10_000), help="disputed items shown (lowest agreement first)")
    ] = 24,
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
) -> None:
    """Write a static HTML review of the dataset (one folder; open index.html from disk or serve it): counts by
    status and reason with thumbnails, near-duplicate pairs side by side, disputed items with votes and a player,
    suspect labels from `emotions validate`, annotators' plots, a recorded baseline's confusion matrix."""
    if per_reason < 0 or disputed < 0:
        raise fail("--per-reason and --disputed must be >= 0")
    from annotation.votes import read_counted_votes
    from emotions_data.layout import DatasetLayout
    from emotions_data.review import write_review
    from emotions_data.taxonomy import resolve_taxonomy

    layout = DatasetLayout(dataset)
    try:
        tax = resolve_taxonomy(taxonomy)
        outcome = write_review(layout, out, read_counted_votes(layout, tax), per_reason=per_reason,
                               disputed_limit=disputed, classes=list(tax.classes))  # fmt: skip
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    for row in outcome.counts.itertuples():
        stdout.print(f"{row.status} {row.reason or '-'}: {row.n}", highlight=False)
    console.print(f"review: {outcome.index}  ({outcome.n_pairs} near-duplicate pair(s), {outcome.n_disputed} "
                  f"disputed, {outcome.n_suspects} suspect(s), {outcome.n_thumbnails} thumbnails, "
                  f"{outcome.n_missing} without a picture)", highlight=False, soft_wrap=True)  # fmt: skip

"""Votes from outside Label Studio's pull: `emotions votes import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotions_cli.console import console, fail, local_folder

votes_app = typer.Typer(help="Votes from outside the Label Studio pull.", no_args_is_help=True)

LEAVE_OUT_HELP = "leave out (never count) votes on videos the dataset does not have, with a warning, not refuse them"
PSEUDONYMISE_HELP = "give annotators not on the roster a keyed pseudonym (ext-...) instead of refusing"


def print_notes(notes: list[str]) -> None:
    """What a reader of votes left out or changed, one line each on stderr."""
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)


@votes_app.command("import")
def import_(
    dataset: Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)],
    export: Annotated[Path, typer.Argument(help="Label Studio JSON, JSON-MIN or CSV export, or a vote table")],
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
    leave_out_unknown_videos: Annotated[bool, typer.Option(help=LEAVE_OUT_HELP)] = False,
    pseudonymise: Annotated[bool, typer.Option(help=PSEUDONYMISE_HELP)] = False,
) -> None:
    """Check votes from outside against the dataset (videos, roster, labels) and add them to its vote table."""
    from annotation.outside_votes import import_votes
    from emotions_data.layout import DatasetLayout
    from emotions_data.taxonomy import resolve_taxonomy

    layout = DatasetLayout(dataset)
    try:
        result = import_votes(
            layout, export, resolve_taxonomy(taxonomy), leave_out_unknown=leave_out_unknown_videos,
            pseudonymise=pseudonymise,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    print_notes(result.notes)
    votes = result.votes
    console.print(
        f"imported {len(votes)} vote(s) on {votes['video_id'].nunique()} video(s) by "
        f"{votes['annotator_id'].nunique()} annotator(s) into {layout.votes}",
        highlight=False,
        soft_wrap=True,
    )

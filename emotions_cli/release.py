"""Release commands: `emotions release [create] DATASET --version X.Y.Z | verify RELEASE | record-baseline | diff A B`.

`emotions release DATASET ...` stays the short form of `emotions release create DATASET ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from emotions_cli.console import console, fail, failure, local_folder, say, stdout
from emotions_cli.dataset import leak_failure

DEFAULT_COMMAND = "create"


class _DefaultCreate(TyperGroup):
    """A group whose first argument, when it names no subcommand, is the dataset folder of `create`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


release_app = typer.Typer(
    cls=_DefaultCreate,
    no_args_is_help=True,
    help="Write a release (`emotions release DATASET --version X.Y.Z`), verify one, record a baseline in a new one.",
)


@release_app.command("create")
def create(
    dataset: Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)],
    version: Annotated[str, typer.Option(help="X.Y.Z; an existing version is never overwritten")],
    name: Annotated[str | None, typer.Option(help="dataset name \\[default: the folder's name]")] = None,
    taxonomy: Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")] = "emotions6",
    include_uploaders: Annotated[
        bool,
        typer.Option(
            "--include-uploaders",
            help="publish the uploaders as they are \\[default: keyed pseudonyms, key from EMOTIONS_RELEASE_KEY]",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="an earlier release (folder or version of this dataset): the card says what changed since"),
    ] = None,
) -> None:
    """Write releases/X.Y.Z: Parquet per variant and split, the authors' formats, the card, SHA256SUMS (also
    `emotions release DATASET --version X.Y.Z`)."""
    from annotation.votes import read_counted_votes
    from emotions_data.card import card_writer
    from emotions_data.layout import DatasetLayout
    from emotions_data.release import release_name_problem, write_release
    from emotions_data.release_info import ReleaseInfo
    from emotions_data.split_step import LeakageError
    from emotions_data.taxonomy import resolve_taxonomy

    problem = release_name_problem(name) if name is not None else None
    if problem:
        raise fail(f"--name {name!r} {problem} (it names the folder data_cards/<name>-<version>/)")
    layout = DatasetLayout(dataset)
    try:
        card = card_writer(layout)
        if since is not None:
            from emotions_data.release_diff import resolve_release, with_changes_since

            base = Path(since) if (Path(since) / "release.json").is_file() else layout.release(since).root
            card = with_changes_since(card, resolve_release(base))
        tax = resolve_taxonomy(taxonomy)
        votes = read_counted_votes(layout, tax)
        folder = write_release(
            layout, version, votes=votes, taxonomy=tax, name=name, card=card, include_uploaders=include_uploaders
        )
        info = ReleaseInfo.from_directory(folder)
    except LeakageError as exc:
        raise leak_failure(exc, f"release {version} not written") from None
    except (ValueError, OSError) as exc:
        raise failure(exc, layout.releases) from None
    for variant, counts in info.variants.items():
        stdout.print(f"{variant}: " + ", ".join(f"{s} {n}" for s, n in counts.items()), highlight=False)
    console.print(f"release: {folder}", highlight=False)


@release_app.command("verify")
def verify(
    release_dir: Annotated[Path, typer.Argument(help="release folder (DATASET/releases/X.Y.Z)", callback=local_folder)],
) -> None:
    """Check every file of a release against the digests recorded outside it when it was written (the dataset's
    manifests/release-ledger/X.Y.Z.json); a copy without its dataset is checked against its own SHA256SUMS. One
    line per changed, missing or extra file; exit 1 when there is any."""
    from emotions_data.release_ledger import check_release

    try:
        result = check_release(release_dir)
    except (ValueError, OSError) as exc:
        raise failure(exc, release_dir) from None
    if not result.outside:
        say(f"warning: {release_dir}: the digest recorded outside the release is not available (no ledger of its "
            "dataset beside it): checked against its own SHA256SUMS only")  # fmt: skip
    for problem in result.problems:
        stdout.print(problem, highlight=False, soft_wrap=True)
    if result.problems:
        raise fail(f"{release_dir}: does not verify against {result.against}: {len(result.problems)} file(s) changed, "
                   "missing or extra")  # fmt: skip
    console.print(f"verified: {result.n_files} files match {result.against}", highlight=False, soft_wrap=True)


@release_app.command("record-baseline")
def record_baseline_cmd(
    release_dir: Annotated[Path, typer.Argument(help="release folder (DATASET/releases/X.Y.Z)", callback=local_folder)],
    evaluations: Annotated[
        list[Path], typer.Argument(help="output folders of `emotions evaluate ... --split test` (RUN/eval-V-test)")
    ],
    version: Annotated[str | None, typer.Option(help="the new version \\[default: the next patch version]")] = None,
) -> None:
    """Record test evaluations in the card of a NEW release version: the release is copied (data byte for byte)
    with baseline/<variant>/ and the card's "Baseline validation" section. The release itself is never changed."""
    from emotions_data.release_baseline import record_baseline

    try:
        folder = record_baseline(release_dir, evaluations, version)
    except (ValueError, OSError) as exc:
        raise failure(exc, release_dir.parent) from None
    console.print(f"release: {folder}  (baseline recorded; {release_dir} unchanged)", highlight=False, soft_wrap=True)


@release_app.command("diff")
def diff_cmd(
    old: Annotated[Path, typer.Argument(help="the earlier release folder (or its version, beside NEW)")],
    new: Annotated[Path, typer.Argument(help="the later release folder (or its version, beside OLD)")],
    variant: Annotated[str | None, typer.Option(help="variant to compare \\[default: full]")] = None,
) -> None:
    """What changed from release OLD to release NEW (Markdown on stdout): items added and removed with reasons,
    labels changed (old, new, decided_by), split moves, class counts per split, and agreement and baseline metrics
    side by side with 95% bootstrap intervals over items."""
    from emotions_data.release_diff import diff_releases, render_diff, resolve_release

    try:
        old_dir = resolve_release(old, new if (Path(new) / "release.json").is_file() else None)
        new_dir = resolve_release(new, old_dir)
        diff = diff_releases(old_dir, new_dir, variant)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    stdout.print(f"# Changes from {diff.old} to {diff.new}\n", highlight=False, soft_wrap=True, markup=False)
    stdout.print("\n".join(render_diff(diff)), highlight=False, soft_wrap=True, markup=False)

"""The `emotions` application: every command group mounted on one typer app (the console script's entry)."""

from __future__ import annotations

import typer

from emotions_cli.annotate import workflow_app
from emotions_cli.baseline import baseline_app
from emotions_cli.console import failure
from emotions_cli.dataset import dataset_app
from emotions_cli.demo import demo_app
from emotions_cli.labels import labels_app
from emotions_cli.lifecycle import CommandGroup
from emotions_cli.ls_backup import backup_app
from emotions_cli.release import release_app
from emotions_cli.server import server_app
from emotions_cli.validate import validate_app
from emotions_cli.votes import votes_app


class _Commands(CommandGroup):
    """The root group: an OSError no command turned into a line (a full disk, a read-only folder, a file it may not
    read) still ends the command in one line naming the file, never a traceback."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            raise failure(exc) from None


app = typer.Typer(
    cls=_Commands,  # SIGTERM and Ctrl-C end every command in one line too (emotions_cli.lifecycle)
    help="Build, annotate, split, document and validate short-video emotion datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
annotate_app = typer.Typer(help="Annotation workflow over Label Studio.", no_args_is_help=True)
annotate_app.add_typer(server_app, name="server")
app.add_typer(annotate_app, name="annotate")
app.add_typer(release_app, name="release")
app.add_typer(votes_app, name="votes")

# Order of the help listing: the pipeline's order.
for group in (dataset_app, demo_app, labels_app, validate_app, baseline_app):
    app.registered_commands += group.registered_commands
annotate_app.registered_commands += workflow_app.registered_commands
annotate_app.registered_commands += backup_app.registered_commands

if __name__ == "__main__":
    app()

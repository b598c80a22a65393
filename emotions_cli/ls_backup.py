"""`emotions annotate backup | restore DATASET`: the managed Label Studio server's state, saved next to the dataset
(`annotation.labelstudio.backup`). The server's data folder is `--data-dir`, else the one the dataset recorded
(`manifests/ls_server.json`), else (restore) the one the backup was taken from; its database comes from the
environment or the config file as for `emotions annotate server`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from emotions_cli.console import fail, failure, local_folder, say

backup_app = typer.Typer(no_args_is_help=True)

DatasetArg = Annotated[
    Path, typer.Argument(help="dataset folder (its backups/label-studio/ holds the backups)", callback=local_folder)
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML with a `label_studio` table")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="server data folder \\[default: the dataset's recorded server's]"),
]


def _note_copy(layout) -> None:
    """Say it when the dataset is a copy (or was moved): its backups are of the original's server."""
    from annotation.server_record import moved_note

    note = moved_note(layout)
    if note:
        say(note)


@backup_app.command("backup")
def backup_command(
    dataset: DatasetArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Save the server's database (SQLite online copy or pg_dump), secret key and generated credentials into
    DATASET/backups/label-studio/<time>/; the server may keep running."""
    from annotation.deployment import managed_server
    from annotation.labelstudio.backup import backup, backup_summary
    from annotation.labelstudio.config import ServerError
    from emotions_data.layout import DatasetLayout

    if not dataset.is_dir():
        raise fail(f"{dataset}: no such dataset folder")
    try:
        layout = DatasetLayout(dataset)
        server = managed_server(layout, config, data_dir)
        _note_copy(layout)
        made = backup(server, dataset)
    except (ServerError, OSError, ValueError, RuntimeError) as exc:
        raise failure(exc, dataset) from None
    if as_json:
        print(json.dumps(backup_summary(made)))
    else:
        census = made.census or {}
        print(
            f"backed up {made.database} ({made.size / 1e6:.1f} MB; {census.get('task_completion', 0)} "
            f"annotation(s), {census.get('htx_user', 0)} account(s)) to {made.path} (backup {made.sequence})"
        )


@backup_app.command("restore")
def restore_command(
    dataset: DatasetArg,
    backup_folder: Annotated[
        Path | None, typer.Option("--from", help="the backup folder to restore \\[default: the newest of DATASET]")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace a database that holds data (SQLite: kept beside it)")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bring a backup back as the database of the (stopped) server; then start it with `emotions annotate server
    start`."""
    from annotation.deployment import managed_server
    from annotation.labelstudio.backup import list_backups, read_backup, restore
    from annotation.labelstudio.config import ServerError
    from emotions_data.layout import DatasetLayout

    try:
        if backup_folder is not None:
            chosen = read_backup(backup_folder)
        else:
            found = list_backups(dataset)
            if not found:
                raise ServerError(f"{dataset}: no Label Studio backup (make one: emotions annotate backup {dataset})")
            chosen = found[-1]  # the highest sequence: the newest whatever the clock said
        layout = DatasetLayout(dataset)
        server = managed_server(layout, config, data_dir, chosen.data_dir)
        _note_copy(layout)
        say(
            f"restoring {chosen.path} (backup {chosen.sequence}, taken {chosen.created_at} from {chosen.database}) "
            f"into the server of {server.data_dir}"
        )
        report = restore(server, chosen, replace=replace)
    except (ServerError, OSError, ValueError, RuntimeError) as exc:
        raise failure(exc, dataset) from None
    for path in report.swept:
        say(f"removed {path}: a partial backup a killed run left (it held the database)")
    print(f"restored {report.backup.path.name} into {report.database}")
    rows = report.census
    token = {True: "holds the admin's API token", False: "does NOT hold the admin's API token",
             None: "admin token not checked (none known)"}[report.admin_token]  # fmt: skip
    print(
        f"read back: {rows.get('htx_user', 0)} account(s), {rows.get('project', 0)} project(s), "
        f"{rows.get('task', 0)} task(s), {rows.get('task_completion', 0)} annotation(s), as in the backup; {token}"
    )
    if report.replaced is not None:
        print(f"replaced: {report.replaced}")

"""`emotions annotate backup | restore DATASET`: the managed Label Studio server's state, saved next to the dataset
(`annotation.labelstudio.backup`). The server's data folder and database come from the options, the environment or
the config file as for `emotions annotate server`."""

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
    Path | None, typer.Option("--data-dir", help="server data folder \\[default: ~/.local/share/emotions/label-studio]")
]


@backup_app.command("backup")
def backup_command(
    dataset: DatasetArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Save the server's database (SQLite online copy or pg_dump), secret key and generated credentials into
    DATASET/backups/label-studio/<time>/; the server may keep running."""
    from annotation.labelstudio.backup import backup, backup_summary
    from annotation.labelstudio.config import ServerError, load_config

    if not dataset.is_dir():
        raise fail(f"{dataset}: no such dataset folder")
    try:
        made = backup(load_config(config, data_dir=data_dir), dataset)
    except (ServerError, OSError) as exc:
        raise failure(exc, dataset) from None
    if as_json:
        print(json.dumps(backup_summary(made)))
    else:
        print(f"backed up {made.database} ({made.size / 1e6:.1f} MB) to {made.path}")


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
    from annotation.labelstudio.backup import list_backups, read_backup, restore
    from annotation.labelstudio.config import ServerError, load_config

    try:
        if backup_folder is not None:
            chosen = read_backup(backup_folder)
        else:
            found = list_backups(dataset)
            if not found:
                raise ServerError(f"{dataset}: no Label Studio backup (make one: emotions annotate backup {dataset})")
            chosen = found[-1]
        say(f"restoring {chosen.path} (taken {chosen.created_at} from {chosen.database})")
        report = restore(load_config(config, data_dir=data_dir), chosen, replace=replace)
    except (ServerError, OSError) as exc:
        raise failure(exc, dataset) from None
    print(f"restored {report.backup.path.name} into {report.database}")
    if report.replaced is not None:
        print(f"replaced: {report.replaced}")

"""The Label Studio server a dataset's projects and votes live on (`manifests/ls_server.json`): recorded at the
first contact, checked at every one (user, task and annotation ids are local to a server, so a dataset never mixes
two), and changed only by an explicit migration."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from annotation.annotators import account_email, load_annotators, save_annotators
from annotation.labelstudio.client import LabelStudio
from emotions_data.dataset_lock import writes_dataset
from emotions_data.layout import DatasetLayout
from emotions_data.storage import write_bytes_atomic


def load_server(layout: DatasetLayout) -> dict[str, str] | None:
    """The Label Studio server the dataset's projects and votes live on ({"server_id", "url"}, and "data_dir" for a
    server the toolkit started on this machine), None before the first contact. Raises ValueError for a damaged
    file."""
    path = layout.ls_server
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("server_id"), str) or not record.get("url"):
        raise ValueError(f"{path}: not a server record (server_id and url)")
    return record


def _server_record(client: LabelStudio, identity: str) -> dict[str, str]:
    config = client.config
    record = {"server_id": identity, "url": config.url}
    if config.base_url is None:  # a server the toolkit runs: its data folder holds its admin's credentials
        record["data_dir"] = str(config.data_dir)
    return record


def _save_server(layout: DatasetLayout, record: dict[str, str]) -> None:
    write_bytes_atomic(layout.ls_server, json.dumps(record, indent=2).encode())


def check_server(layout: DatasetLayout, client: LabelStudio) -> tuple[str, str]:
    """(server_id, url) of the client's server, after checking it is the dataset's: user, task and annotation ids
    are local to a server, so a dataset never mixes two. The first contact records the server; a changed URL of the
    same server (same database) is recorded too. Raises ValueError for another server: moving to one is an explicit
    `migrate_server`."""
    identity, url = client.server_identity(), client.config.url
    known = load_server(layout)
    if known is not None and known["server_id"] != identity:
        raise ValueError(
            f"{layout.ls_server}: this dataset's projects and votes are on Label Studio server "
            f"{known['server_id']} ({known['url']}), but {url} is another server ({identity}); to move the dataset "
            f"to it, run 'emotions annotate migrate-server {layout.root}'"
        )
    record = _server_record(client, identity)
    if known != record:
        _save_server(layout, record)
    return identity, url


@dataclass(frozen=True)
class MigrationReport:
    old: dict[str, str] | None
    new: dict[str, str]
    archived_projects: Path | None  # where the old server's project list went
    accounts: int


@writes_dataset("annotate migrate-server")
def migrate_server(layout: DatasetLayout, client: LabelStudio) -> MigrationReport:
    """Move the dataset to the client's server: the old server's project list and task record are archived
    (`ls_projects.<server_id>.json`, `ls_tasks.<server_id>.json`), the roster's accounts are found or made on the
    new server and their ids recorded, and the new server becomes the dataset's. Votes keep the server they were
    cast on (their `server_id`), so no old vote is ever matched with a new server's annotation or user ids. The
    next `push` makes the projects."""
    old = load_server(layout)
    identity = client.server_identity()
    archived = None
    if layout.ls_projects.exists():
        archived = layout.ls_projects_archive(old["server_id"] if old else "unknown")
        write_bytes_atomic(archived, layout.ls_projects.read_bytes())
        layout.ls_projects.unlink()
    if layout.ls_tasks.exists():  # task ids are the old server's: the next push records the new server's tasks
        tasks = layout.ls_tasks.with_name(f"ls_tasks.{old['server_id'] if old else 'unknown'}.json")
        write_bytes_atomic(tasks, layout.ls_tasks.read_bytes())
        layout.ls_tasks.unlink()
    people = load_annotators(layout)
    people["ls_user_id"] = [client.ensure_user(account_email(a), a) for a in people["annotator_id"]]
    save_annotators(layout, people)
    new = _server_record(client, identity)
    _save_server(layout, new)
    return MigrationReport(old, new, archived, len(people))

"""The Label Studio server a dataset's projects and votes live on (`manifests/ls_server.json`): recorded at the
first contact, checked at every one (user, task and annotation ids are local to a server, so a dataset never mixes
two), and changed only by an explicit command: `set_server` (the same server at another URL or data folder, or the
dataset moved) or `migrate_server` (another server). A command run with `--url` or another data folder reaches the
server that way for that run only.

The record also holds where the dataset was when it was made (`dataset`), so a copy of the dataset (which shares
the original's server, projects and media link) is noticed and said (`moved_note`), and for a server the toolkit
runs its data folder and document root, from which the restart command is built."""

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


def _server_record(client: LabelStudio, identity: str, layout: DatasetLayout) -> dict[str, str]:
    config = client.config
    record = {"server_id": identity, "url": config.url, "dataset": str(layout.root.expanduser().absolute())}
    if config.base_url is None:  # a server the toolkit runs: its data folder holds its admin's credentials
        record["data_dir"] = str(config.data_dir.expanduser().absolute())
        if config.document_root is not None:
            record["document_root"] = str(config.document_root)
    return record


def _save_server(layout: DatasetLayout, record: dict[str, str]) -> None:
    write_bytes_atomic(layout.ls_server, json.dumps(record, indent=2).encode())


def _same_route(known: dict[str, str], record: dict[str, str]) -> bool:
    """Whether the client reached the recorded server the recorded way: the same data folder of a server the
    toolkit runs (whose port may change from start to start), or the same URL."""
    if known.get("data_dir"):
        return known["data_dir"] == record.get("data_dir")
    return "data_dir" not in record and known["url"] == record["url"]


def check_server(layout: DatasetLayout, client: LabelStudio) -> tuple[str, str]:
    """(server_id, url) of the client's server, after checking it is the dataset's: user, task and annotation ids
    are local to a server, so a dataset never mixes two. The first contact records the server; later contacts
    through the recorded route refresh its port and document root (a server the toolkit runs) and nothing else: a
    run with another URL or data folder leaves the record as it is (`set_server` changes it). Raises ValueError for
    another server: moving to one is an explicit `migrate_server`."""
    identity, url = client.server_identity(), client.config.url
    known = load_server(layout)
    if known is not None and known["server_id"] != identity:
        raise ValueError(
            f"{layout.ls_server}: this dataset's projects and votes are on Label Studio server "
            f"{known['server_id']} ({known['url']}), but {url} is another server ({identity}); to move the dataset "
            f"to it, run 'emotions annotate migrate-server {layout.root}'"
        )
    record = _server_record(client, identity, layout)
    if known is None:
        _save_server(layout, record)
    elif _same_route(known, record):
        refreshed = {**known, **{k: v for k, v in record.items() if k != "dataset"}}
        refreshed.setdefault("dataset", record["dataset"])
        if refreshed != known:
            _save_server(layout, refreshed)
    return identity, url


def set_server(layout: DatasetLayout, client: LabelStudio) -> tuple[dict[str, str] | None, dict[str, str]]:
    """Record the client's server as the dataset's, reached the way the client reaches it (URL, or data folder and
    document root), and the dataset's current folder as its own (a moved dataset; a copy that is to be told apart
    needs a server of its own, see `migrate_server`). Returns (old record, new record). Raises ValueError when the
    client's server is another one than the recorded (`migrate_server` moves a dataset to another server)."""
    known = load_server(layout)
    identity = client.server_identity()
    if known is not None and known["server_id"] != identity:
        raise ValueError(
            f"{client.config.url} is another Label Studio server ({identity}) than the dataset's "
            f"({known['server_id']}): to move the dataset to it, run 'emotions annotate migrate-server {layout.root}'"
        )
    record = _server_record(client, identity, layout)
    _save_server(layout, record)
    return known, record


def moved_note(layout: DatasetLayout) -> str | None:
    """One line when the dataset is not where its server record was made (a copy, or a moved dataset), else None:
    a copy shares the original's server, projects and votes unless it is moved to a server of its own."""
    known = load_server(layout) if layout.ls_server.exists() else None
    if known is None or not known.get("dataset"):
        return None
    here = str(layout.root.expanduser().absolute())
    if known["dataset"] == here:
        return None
    return (
        f"note: this dataset's server record was made at {known['dataset']}: if this is a copy, it shares that "
        f"dataset's Label Studio server ({known['url']}), projects and media link (push and pull here change the "
        f"same projects) until it is moved to a server of its own (emotions annotate migrate-server); if the dataset "
        f"was moved, record its new place with 'emotions annotate server set-url {here}'"
    )


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
    new = _server_record(client, identity, layout)
    _save_server(layout, new)
    return MigrationReport(old, new, archived, len(people))

"""Local-files media that survive a moved or copied dataset: the managed server serves a folder of links.

Label Studio serves a clip as local files (`/data/local-files/?d=PATH`) only when `PATH`, joined to its
`LOCAL_FILES_DOCUMENT_ROOT`, lies under the absolute `path` of a local-files storage of a project the user may open
(`io_storages/localfiles` and the `localfiles_data` view of Label Studio 1.23). Both are compared as text, without
resolving links (Django's `safe_join` and a prefix match), and the file is then opened through whatever links the
path holds. So the toolkit's server gets a document root of its own that never moves, `DATA_DIR/local-files/`,
holding one folder per dataset, named by an id the dataset keeps (`manifests/ls_media.json`), with a symbolic link
`media` to the dataset's `media/`. What is registered in Label Studio, the storage `DATA_DIR/local-files/<link>/media`
and the task URLs `?d=<link>/media/<clip>`, is relative to that link; moving or copying the dataset only re-points
the link, which every `server start` (for the datasets at or under its `--document-root`) and every workflow command
on the dataset does. No push is needed after a move.

A link is made or re-pointed only for a dataset at or under the server's document root, so the server serves no
folder the lead did not choose to serve.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from emotions_data.layout import DatasetLayout
from emotions_data.storage import write_bytes_atomic

LINKS_DIR = "local-files"  # in the server's data folder: Label Studio's LOCAL_FILES_DOCUMENT_ROOT
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")


def links_root(data_dir: Path) -> Path:
    """The managed server's local-files document root: `DATA_DIR/local-files` (absolute)."""
    return data_dir.expanduser().absolute() / LINKS_DIR


def link_name(layout: DatasetLayout, create: bool = True) -> str | None:
    """The name of the dataset's link, kept in `manifests/ls_media.json` so it stays the same wherever the dataset
    goes: its folder's name at the first push (letters, digits, '.', '_', '-') and a random suffix, so two datasets
    of the same name never share a link. None when there is none yet and `create` is False. Raises ValueError for
    a damaged record."""
    path = layout.ls_media
    if path.exists():
        try:
            name = json.loads(path.read_text()).get("link")
        except (OSError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: unreadable ({exc})") from None
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"{path}: 'link' must be a folder name of letters, digits, '.', '_' or '-'")
        return name
    if not create:
        return None
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", layout.root.resolve().name).strip("-._")[:40] or "dataset"
    name = f"{stem}-{secrets.token_hex(4)}"
    write_bytes_atomic(path, json.dumps({"link": name}, indent=2).encode())
    return name


def _is_under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def point_link(root: Path, layout: DatasetLayout, document_root: Path, create: bool = True) -> str | None:
    """Make or re-point `root/<link>/media` at the dataset's current `media/` folder (atomically: a new link renamed
    over the old one, so a clip being served never meets a missing link) and return the link's name. None, changing
    nothing, when the dataset is not at or under `document_root` or (with `create` False) has no link yet.

    Only `media/` is linked, not the dataset folder: the server then serves nothing else of the dataset, and a
    server whose data folder sits inside the dataset (the demo's) makes no link back to a folder holding it, which
    copying tools that follow links would walk forever."""
    if not _is_under(layout.root.resolve(), document_root.resolve()):
        return None
    name = link_name(layout, create)
    if name is None:
        return None
    target = layout.media.resolve()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = root / name
    if folder.is_symlink():  # a link to the whole dataset, as an earlier layout made it
        folder.unlink()
    folder.mkdir(exist_ok=True, mode=0o700)
    link = folder / "media"
    if link.is_symlink() and os.readlink(link) == str(target):
        return name
    temporary = folder / f".media.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary, target_is_directory=True)
    os.replace(temporary, link)
    return name


def repoint_under(root: Path, document_root: Path, depth: int = 2) -> list[str]:
    """Re-point the links of the datasets at `document_root` or up to `depth` folders below it that have one (a
    server start: the datasets may have moved there while it was stopped). Returns the links re-pointed or kept.
    Unreadable folders and damaged records are passed over: the dataset's own next command reports them."""
    found: list[str] = []
    level = [document_root]
    for _ in range(depth + 1):
        below: list[Path] = []
        for folder in level:
            if DatasetLayout(folder).ls_media.is_file():
                try:
                    name = point_link(root, DatasetLayout(folder), document_root, create=False)
                except (OSError, ValueError):
                    name = None
                if name:
                    found.append(name)
                continue  # a dataset's own sub-folders hold no other dataset
            try:
                below += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        level = below
    return found

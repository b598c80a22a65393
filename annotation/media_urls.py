"""Where a task's clip loads from in the annotator's browser: under the configured media base URL (any static file
server or bucket serving the dataset's `media/` folder), else through Label Studio's local files (a storage over the
dataset's `media/` folder, through the dataset's link on the toolkit's server, `annotation.labelstudio.media_links`)."""

from __future__ import annotations

import posixpath

from annotation.labelstudio.config import ServerConfig
from annotation.labelstudio.media_links import point_link
from emotions_data.layout import DatasetLayout


def local_files(layout: DatasetLayout, config: ServerConfig) -> tuple[str, str]:
    """(the dataset's folder as a path under the server's local-files document root, "" for the root itself; the
    local-files storage path of its `media/` folder as the server sees it). On the toolkit's server the dataset is
    served through its link (`annotation.labelstudio.media_links`), re-pointed here, so neither changes when the
    dataset moves; elsewhere through its place under `document_root`, which the server sees at
    `server_document_root` (a Docker bind mount) or at the same path. Raises ValueError without a document root or
    for a dataset outside it."""
    document_root = config.document_root
    if document_root is None:
        raise ValueError(
            f"Label Studio at {config.url} has no media source: start the toolkit's server with --document-root at "
            "(or above) the dataset folder, or set a media base URL (EMOTIONS_MEDIA_BASE_URL or the config file's "
            "media_base_url) where the dataset's media/ folder is served"
        )
    outside = ValueError(
        f"{layout.root.resolve()} is not under the server's document root {document_root}: start the server with "
        "--document-root at (or above) the dataset folder"
    )
    if config.media_links is not None:
        name = point_link(config.media_links, layout, document_root)
        if name is None:
            raise outside
        return name, str(config.media_links / name / "media")
    try:
        relative = layout.root.resolve().relative_to(document_root.resolve()).as_posix()
    except ValueError:
        raise outside from None
    relative = "" if relative == "." else relative
    server_root = posixpath.normpath(config.server_document_root or str(document_root))
    return relative, posixpath.join(server_root, relative, "media")


def media_base(layout: DatasetLayout, config: ServerConfig) -> tuple[str, str | None]:
    """(the URL the dataset's `media/` folder loads from in the annotator's browser; the local-files storage path
    that lets Label Studio serve it, None under a media base URL). Media go under the configured media base URL
    (any static file server or bucket serving the dataset's `media/` folder), else through Label Studio's local
    files (`local_files`). Raises ValueError when there is no media source or the dataset is outside it."""
    from urllib.parse import quote

    if config.media_base_url:
        return config.media_base_url, None
    prefix, storage = local_files(layout, config)
    return "/data/local-files/?d=" + quote(f"{prefix}/media" if prefix else "media"), storage


def media_url(layout: DatasetLayout, media_path: str, base: str) -> str:
    """The URL of one clip under `base` (`media_base`); ValueError for media outside the dataset's `media/`."""
    from urllib.parse import quote

    absolute = (layout.root / media_path).resolve()
    try:
        relative = absolute.relative_to(layout.media.resolve())
    except ValueError:
        raise ValueError(f"{absolute} is not in the dataset's media folder {layout.media}") from None
    return f"{base}/{quote(relative.as_posix())}"

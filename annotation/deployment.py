"""Which Label Studio a dataset's commands talk to, and with which secrets.

Any deployment works: the server the toolkit starts (`emotions annotate server start`, found through its data
folder), or any other Label Studio given by its base URL (`url` in the config file's `[label_studio]` table,
`EMOTIONS_LS_URL`, or `--url`): one started by hand, one in Docker, an institution's behind HTTPS. Its API token
(a legacy token or a personal access token) comes from `EMOTIONS_LS_TOKEN` or the config file, never from the
command line.

The dataset remembers its server (`manifests/ls_server.json`, written at the first contact: the server's identity,
its URL and, for a server the toolkit runs, its data folder), so after the first command none needs `--data-dir`
or `--url` again. Nothing here starts a server or creates a database: a server that is not running is an error
that says how to start it. For the toolkit's server, every command re-points the dataset's local-files link at
the dataset's current folder, so a moved or copied dataset plays again without a push.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from annotation.labelstudio.config import CONFIG_ENV, TOKEN_ENV, URL_ENV, ServerConfig, ServerError, load_config
from annotation.labelstudio.media_links import point_link
from annotation.labelstudio.process import connect
from annotation.server_record import load_server
from emotions_data.layout import DatasetLayout


def _by_url(config: ServerConfig, whence: str) -> ServerConfig:
    if config.token is None:
        raise ServerError(
            f"no API token for the Label Studio at {config.url} ({whence}): set {TOKEN_ENV} or the config file's "
            "[label_studio] token (a legacy token or a personal access token from its Account & Settings page)"
        )
    return config


def _repointed(config: ServerConfig, layout: DatasetLayout | None) -> ServerConfig:
    """The toolkit's server `config` after re-pointing the dataset's local-files link at its current folder (a moved
    or copied dataset keeps playing with no push; see `annotation.labelstudio.media_links`)."""
    if layout is not None and config.media_links is not None and config.document_root is not None:
        point_link(config.media_links, layout, config.document_root, create=False)
    return config


def resolve_server(
    layout: DatasetLayout | None,
    config_file: Path | None = None,
    data_dir: Path | None = None,
    url: str | None = None,
) -> ServerConfig:
    """The server config for a command on `layout` (None: no dataset), in this order: an explicit `data_dir` (the
    toolkit's server there, which must be running); a URL (`url`, else $EMOTIONS_LS_URL, else the config file's
    `url`) with its token; the server the dataset recorded (its data folder when the toolkit runs it, else its URL
    with the configured token); the toolkit's server in the default data folder. Raises ServerError (one line)
    when that server is not running, or a server by URL has no token; ValueError for a damaged server record."""
    config = load_config(config_file, data_dir=data_dir, url=url)
    if data_dir is not None:  # the toolkit's server there, whatever URL the environment names
        return _repointed(connect(dataclasses.replace(config, base_url=None)), layout)
    if config.base_url is not None:
        return _by_url(config, f"from --url, {URL_ENV} or the config file ({CONFIG_ENV})")
    known = load_server(layout) if layout is not None else None
    if known is not None and known.get("data_dir"):
        managed = dataclasses.replace(config, data_dir=Path(known["data_dir"]), base_url=None)
        try:
            return _repointed(connect(managed), layout)
        except ServerError:
            raise ServerError(
                f"the dataset's Label Studio ({known['url']}, data folder {known['data_dir']}) is not running: start "
                f"it with '{restart_command(known)}'"
            ) from None
    if known is not None:
        return _by_url(dataclasses.replace(config, base_url=known["url"]), "recorded in manifests/ls_server.json")
    try:
        return _repointed(connect(config), layout)
    except ServerError:
        raise ServerError(
            f"no Label Studio known for this dataset and none running for {config.data_dir}: start one with "
            f"'emotions annotate server start', or give another by URL ({URL_ENV} or the config file's url, with "
            f"{TOKEN_ENV})"
        ) from None


def restart_command(known: dict[str, str]) -> str:
    """The command that starts the dataset's recorded server as it ran: its data folder, its port (from the recorded
    URL, so the projects' links and the annotators' bookmarks stay right) and its document root (else the clips
    would not play)."""
    command = f"emotions annotate server start --data-dir {shlex.quote(known['data_dir'])}"
    port = urlsplit(known["url"]).port
    if port:
        command += f" --port {port}"
    if known.get("document_root"):
        command += f" --document-root {shlex.quote(known['document_root'])}"
    return command


def managed_server(
    layout: DatasetLayout, config_file: Path | None = None, data_dir: Path | None = None, fallback: str | None = None
) -> ServerConfig:
    """The toolkit's server whose state `backup` and `restore` handle for the dataset, running or not: an explicit
    `data_dir`; else the data folder the dataset recorded; else `fallback` (the data folder a backup was taken
    from); else the default one. The database and secrets come from the config as for every command. Raises
    ServerError when the dataset's recorded server is one the toolkit does not run (reached by URL: its state is
    backed up where it runs), ValueError for a damaged server record."""
    config = dataclasses.replace(load_config(config_file, data_dir=data_dir), base_url=None)
    if data_dir is not None:
        return config
    known = load_server(layout)
    if known is not None and known.get("data_dir"):
        return dataclasses.replace(config, data_dir=Path(known["data_dir"]))
    if known is not None:
        raise ServerError(
            f"the dataset's Label Studio ({known['url']}) is not a server the toolkit runs on this machine: back up "
            "its database and secret key where it runs, or give the data folder of a server the toolkit runs "
            "(--data-dir)"
        )
    if fallback:
        return dataclasses.replace(config, data_dir=Path(fallback))
    return config

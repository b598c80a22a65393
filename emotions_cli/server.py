"""`emotions annotate server start | stop | status`: the Label Studio server the toolkit manages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from annotation.labelstudio.config import CREDENTIALS_FILE, ServerConfig, ServerError, load_config
from annotation.labelstudio.database import describe
from annotation.labelstudio.process import DEFAULT_START_TIMEOUT_S, start, status, stop
from emotions_cli.console import console, fail
from emotions_cli.params import integers, number, reals

server_app = typer.Typer(
    help="Run the local Label Studio server. Secrets come from EMOTIONS_LS_USERNAME / EMOTIONS_LS_PASSWORD / "
    "EMOTIONS_LS_TOKEN or the config file's `label_studio` table, never from options; so does a PostgreSQL database "
    "(EMOTIONS_LS_DATABASE_URL or `database_url`; SQLite in the data folder otherwise).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="server data folder \\[default: ~/.local/share/emotions/label-studio]")
]
#: A day: a start that has not become healthy by then never will.
START_TIMEOUT = reals(above=0.0, high=86400.0, why="a day")
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML file with a `label_studio` table \\[default: $EMOTIONS_CONFIG]")
]


def _config_or_exit(config: Path | None, **overrides: Any) -> ServerConfig:
    try:
        return load_config(config, **overrides)
    except ServerError as exc:
        raise fail(str(exc)) from None


@server_app.command("start")
def start_command(
    data_dir: DataDirOpt = None,
    port: Annotated[int | None, number(bounds=integers(0, 65535), help="0 picks a free port \\[default: 8080]")] = None,
    host: Annotated[
        str | None,
        typer.Option(help="address to bind \\[default: 127.0.0.1]; any other serves plain HTTP to other machines"),
    ] = None,
    document_root: Annotated[
        Path | None,
        typer.Option(
            "--document-root",
            help="the dataset, or a folder of datasets, served as local files (through links in the data folder "
            "that each start re-points, so a moved dataset keeps playing)",
        ),
    ] = None,
    wsgi: Annotated[
        str | None,
        typer.Option(help="django (development server), gunicorn, or auto: gunicorn beyond loopback \\[default: auto]"),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", help="the https:// URL annotators open, when a TLS proxy is in front"),
    ] = None,
    config: ConfigOpt = None,
    timeout: Annotated[
        float, number(bounds=START_TIMEOUT, help="seconds to wait until healthy")
    ] = DEFAULT_START_TIMEOUT_S,
) -> None:
    """Start Label Studio in the background and wait until it is healthy and accepts the API token."""
    cfg = _config_or_exit(
        config, data_dir=data_dir, port=port, host=host, document_root=document_root, wsgi=wsgi, public_url=public_url
    )
    try:
        handle = start(cfg, timeout_s=timeout, log=lambda line: console.print(line, highlight=False, soft_wrap=True))
    except (ServerError, RuntimeError, OSError) as exc:
        raise fail(str(exc)) from None
    print(f"Label Studio {handle.version} running at {handle.url} (pid {handle.pid}, ready in {handle.ready_s:.1f} s)")
    print(f"log: {handle.log_path}; database: {describe(handle.config)}")
    if handle.config.public_url:
        print(f"annotators open {handle.config.public_url}")
    if handle.generated:
        print(f"login: {handle.config.username}; generated {' and '.join(handle.generated)} in ", end="")
        print(handle.config.data_dir / CREDENTIALS_FILE)


@server_app.command("stop")
def stop_command(data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """Stop the server started for the data folder (only that process)."""
    cfg = _config_or_exit(config, data_dir=data_dir)
    try:
        pid = stop(cfg)
    except (ServerError, RuntimeError, OSError) as exc:
        raise fail(str(exc)) from None
    print(f"stopped Label Studio (pid {pid})" if pid else "not running")


@server_app.command("status")
def status_command(
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Report whether the server runs and is healthy; exit code 0 only when it is."""
    cfg = _config_or_exit(config, data_dir=data_dir)
    st = status(cfg)
    if as_json:
        print(json.dumps(st.as_dict()))
    else:
        print(f"{'healthy' if st.healthy else st.detail}: {st.url or '-'} (pid {st.pid or '-'}, data {st.data_dir})")
        if st.running:
            token = {True: f"accepted for {st.user}", False: "refused", None: "unknown (none configured)"}
            print(f"version {st.version}, started {st.started_at}; API token {token[st.token_ok]}")
            print(f"database: {describe(cfg)}")
    if not st.healthy:
        raise typer.Exit(1)


@server_app.command("set-url")
def set_url_command(
    dataset: Annotated[Path, typer.Argument(help="dataset folder whose server record to change")],
    url: Annotated[
        str | None, typer.Option("--url", help="the server's new base URL (a server the toolkit does not run)")
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Record how the dataset reaches its Label Studio from now on (another URL, or the data folder of the server the
    toolkit runs) and the dataset's current folder (after a move). The server must be the same one (its
    organization); commands given --url or --data-dir use them for that run only and never change the record."""
    from annotation.deployment import resolve_server
    from annotation.labelstudio.client import LabelStudio
    from annotation.server_record import set_server
    from emotions_data.layout import DatasetLayout

    layout = DatasetLayout(dataset)
    if not layout.ls_server.exists():
        raise fail(f"{layout.ls_server}: no server recorded yet (the first command that talks to one records it)")
    try:
        old, new = set_server(layout, LabelStudio(resolve_server(layout, config, data_dir, url)))
    except (ServerError, ValueError) as exc:
        raise fail(str(exc)) from None
    where = f"data folder {new['data_dir']}" if new.get("data_dir") else "by URL"
    was = f"{old['url']}" + (f" (data folder {old['data_dir']})" if old and old.get("data_dir") else "") if old else "-"
    print(f"server {new['server_id']}: {was} -> {new['url']} ({where}); dataset at {new['dataset']}")


if __name__ == "__main__":
    server_app()

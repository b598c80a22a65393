"""Where and how the local Label Studio server runs, and its secrets.

Secrets (admin e-mail, password, API token) come from the environment (`EMOTIONS_LS_USERNAME`,
`EMOTIONS_LS_PASSWORD`, `EMOTIONS_LS_TOKEN`) or from the `[label_studio]` table of a TOML config file (`--config` or
`EMOTIONS_CONFIG`), never from the command line. Missing ones are generated at the first start and kept in the data
folder's `credentials.json` (mode 0600). They reach Label Studio through its environment only (see
`annotation.labelstudio.process`), and Label Studio applies them only when it first creates the admin user: a token
changed later is refused by the health check, with a message saying so.

The default data folder is `$XDG_DATA_HOME/emotions/label-studio` (`~/.local/share/emotions/label-studio`): one
server per user, holding all projects.

Deployment settings (see `load_config`): the database (`database_url`, a `postgresql://` URL from
`EMOTIONS_LS_DATABASE_URL` or the config file, or Label Studio's own `DJANGO_DB=postgresql` with `POSTGRE_*`; SQLite in
the data folder otherwise), the WSGI server (`wsgi`: `django`, `gunicorn` or `auto`, which is gunicorn whenever the
bind address is not loopback), its `workers`, and `public_url`, the address annotators open when the server sits
behind a proxy (Label Studio's `LABEL_STUDIO_HOST`). For a server by URL that sees the files at another path than
this machine (a Docker bind mount), `server_document_root` (`EMOTIONS_LS_SERVER_DOCUMENT_ROOT`) is its own path of
`document_root`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

USERNAME_ENV = "EMOTIONS_LS_USERNAME"
PASSWORD_ENV = "EMOTIONS_LS_PASSWORD"
TOKEN_ENV = "EMOTIONS_LS_TOKEN"
CONFIG_ENV = "EMOTIONS_CONFIG"
URL_ENV = "EMOTIONS_LS_URL"  # a Label Studio the toolkit did not start (any deployment), by its base URL
MEDIA_URL_ENV = "EMOTIONS_MEDIA_BASE_URL"  # where the dataset's media/ is served to remote annotators
SERVER_ROOT_ENV = "EMOTIONS_LS_SERVER_DOCUMENT_ROOT"  # the document root's path as the server sees it (Docker)
DATABASE_URL_ENV = "EMOTIONS_LS_DATABASE_URL"
PUBLIC_URL_ENV = "LABEL_STUDIO_HOST"  # Label Studio's own name for it, honoured as it is

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_USERNAME = "admin@localhost"

CREDENTIALS_FILE = "credentials.json"  # in the data folder, mode 0600

# Label Studio's Token model is a 40-character key, and it ignores tokens of 5 characters or fewer (printing them).
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.-]{8,40}")
_CONFIG_KEYS = {"username", "password", "token", "data_dir", "host", "port", "document_root", "executable",
                "database_url", "wsgi", "workers", "public_url", "server_document_root"}  # fmt: skip
_INT_KEYS = {"port", "workers"}  # the rest are text (paths included)
WSGI_SERVERS = ("auto", "django", "gunicorn")
# A server reached by URL: its base URL (http or https, any path prefix) and the media base URL.
_REMOTE_KEYS = {"url", "media_base_url"}
# A personal access token is a JWT refresh token: three base64url parts, the first one a JSON header ("eyJ...").
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class ServerError(RuntimeError):
    """A configuration, start, stop, status or API call that could not be done; the message is one line."""


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/emotions/label-studio`, or `~/.local/share/emotions/label-studio` without XDG_DATA_HOME."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "emotions" / "label-studio"


def server_url(host: str, port: int) -> str:
    """The base URL of a server on `host`:`port` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the server runs. `port` 0 picks a free port at start. The secrets stay out of the repr."""

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    document_root: Path | None = None  # the dataset, or a folder of datasets, served as local files; None: none
    executable: Path | None = None  # the `label-studio` script; None: found by `process.find_executable`
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    base_url: str | None = None  # a server given by URL (`url` in the config file); None: host and port
    media_base_url: str | None = None  # task media under this URL instead of Label Studio's local files
    database_url: str | None = field(default=None, repr=False)  # None: SQLite in the data folder; may hold a password
    wsgi: str = "auto"  # "django" (its development server), "gunicorn", or "auto": gunicorn beyond loopback
    workers: int = 2  # gunicorn worker processes (each with 4 threads)
    public_url: str | None = None  # the URL annotators open (a proxy in front); None: `url`
    # The server's own path of `document_root` when it sees the files elsewhere (a Docker bind mount such as
    # /label-studio/files); None: the same path. What a local-files storage is registered with.
    server_document_root: str | None = None
    # The toolkit's server: its local-files document root of dataset links (`media_links`); None otherwise.
    media_links: Path | None = None

    @property
    def url(self) -> str:
        return self.base_url or server_url(self.host, self.port)

    @property
    def token_kind(self) -> str:
        """ "personal" for a personal access token (a JWT refresh token, exchanged for short-lived access tokens),
        "legacy" for a legacy API token, "none" without a token."""
        if self.token is None:
            return "none"
        return "personal" if _JWT_RE.fullmatch(self.token) else "legacy"

    @property
    def database(self) -> PostgresDatabase | None:
        """The PostgreSQL database the server uses; None for SQLite in the data folder."""
        return parse_database_url(self.database_url) if self.database_url else None

    @property
    def loopback(self) -> bool:
        """Whether the bind address is reachable from this machine only."""
        return is_loopback(self.host)

    @property
    def wsgi_server(self) -> str:
        """ "django" or "gunicorn": what `wsgi` means for this bind address."""
        if self.wsgi == "auto":
            return "django" if self.loopback else "gunicorn"
        return self.wsgi


def load_config(
    config_file: Path | None = None,
    *,
    data_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    document_root: Path | None = None,
    url: str | None = None,
    wsgi: str | None = None,
    public_url: str | None = None,
) -> ServerConfig:
    """Defaults, then the config file's `[label_studio]` table (`config_file`, else $EMOTIONS_CONFIG), then the
    environment (secrets, `EMOTIONS_LS_DATABASE_URL` or `DJANGO_DB=postgresql` with `POSTGRE_*`, `LABEL_STUDIO_HOST`),
    then the explicit arguments (None values are ignored). Paths come back absolute. Raises ServerError, one line
    starting with where the value came from (`FILE [label_studio].KEY`, the environment variable or the option), for
    an unreadable or misspelt file, an unknown setting, a value of the wrong type or an invalid value."""
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    table: dict[str, Any] = {}
    origin: dict[str, str] = {}  # where each setting came from, for the messages
    if path is not None:
        table = read_config_table(path, "" if config_file else f" (from {CONFIG_ENV})")
        origin = {key: f"{path} [label_studio].{key}" for key in table}
    for env, key in ((USERNAME_ENV, "username"), (PASSWORD_ENV, "password"), (TOKEN_ENV, "token"),
                     (URL_ENV, "url"), (MEDIA_URL_ENV, "media_base_url"),
                     (SERVER_ROOT_ENV, "server_document_root")):  # fmt: skip
        if os.environ.get(env):
            table[key], origin[key] = os.environ[env], env
    deployment, deployment_origin = _deployment_from_env(os.environ)
    table.update(deployment)
    origin.update(deployment_origin)
    explicit = {"data_dir": data_dir, "host": host, "port": port, "document_root": document_root, "wsgi": wsgi,
                "public_url": public_url, "url": url}  # fmt: skip
    for key, value in explicit.items():
        if value is not None:
            table[key], origin[key] = value, f"--{key.replace('_', '-')}"
    if "url" in table:
        origin["base_url"] = origin.pop("url")
        table["base_url"] = _named(
            origin, "base_url", lambda: normalize_url(str(table.pop("url")), "the Label Studio URL")
        )
    if table.get("media_base_url") is not None:
        table["media_base_url"] = _named(
            origin, "media_base_url", lambda: normalize_url(table["media_base_url"], "the media base URL")
        )
    for key in ("data_dir", "document_root", "executable"):
        if table.get(key) is not None:
            table[key] = Path(table[key]).expanduser().absolute()
    config = ServerConfig(**table)
    for key, problem in config_problems(config):
        raise ServerError(f"{origin[key]}: {problem}" if key in origin else problem)
    return config


def read_config_table(path: Path, how: str = "") -> dict[str, Any]:
    """The `[label_studio]` table of the TOML file `path`, each value of its setting's type. Raises ServerError naming
    the file (`how` says how it was chosen) and the key: unreadable, not UTF-8, not TOML, a table whose name is a
    misspelling of the toolkit's, an unknown setting or a value of the wrong type."""
    from emotions_data.settings import read_config_file

    try:
        document = read_config_file(path, f"{path}{how}")
    except ValueError as exc:
        raise ServerError(str(exc)) from None
    table = document.get("label_studio", {})
    if not isinstance(table, dict):
        raise ServerError(f"{path}{how}: label_studio must be a table ([label_studio]), not {table!r}")
    unknown = set(table) - _CONFIG_KEYS - _REMOTE_KEYS
    if unknown:
        raise ServerError(f"{path}{how}: unknown [label_studio] setting(s) {', '.join(sorted(unknown))}")
    for key, value in table.items():
        wanted = int if key in _INT_KEYS else str
        if isinstance(value, bool) or not isinstance(value, wanted):
            noun = "an integer" if wanted is int else "text (a quoted TOML string)"
            raise ServerError(f"{path}{how} [label_studio].{key}: {value!r} is not {noun}")
    return dict(table)


def _named(origin: dict[str, str], key: str, read: Any) -> Any:
    """`read()`, its ServerError prefixed with where `key` came from."""
    try:
        return read()
    except ServerError as exc:
        raise ServerError(f"{origin.get(key, key)}: {exc}") from None


def normalize_url(url: str, what: str) -> str:
    """`url` without a trailing slash; ServerError unless it is an http(s) URL with a host, and no query or user
    name and password (which would be secrets outside the environment)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number or out of range)
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise ServerError(f"{what} must be an http:// or https:// URL with a host, not {url!r} ({exc})") from None
    if parts.username is not None or parts.password is not None:  # a secret in a URL ends up in argv and logs
        raise ServerError(f"{what} must not carry a user name or password: give secrets through the environment")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ServerError(f"{what} must be an http:// or https:// URL with a host, not {url!r}")
    return url.strip().rstrip("/")


def validate_config(config: ServerConfig) -> None:
    """Raise ServerError with the first of `config_problems`."""
    for _, problem in config_problems(config):
        raise ServerError(problem)


def config_problems(config: ServerConfig) -> Iterator[tuple[str, str]]:
    """(setting, why) for each invalid setting: the port outside 0-65535, a bind address that is not a host name or
    address, a token that is neither a legacy token (8-40 characters Label Studio accepts) nor a personal access token
    (a JWT), an empty password, a username that is not an e-mail address, a database URL that is not PostgreSQL's, an
    unknown WSGI server, workers outside 1-64, a relative server document root, a public URL that is not http(s)."""
    if not 0 <= config.port <= 65535:
        yield "port", f"port {config.port} is out of range (0 picks a free port)"
    if not config.host or any(c.isspace() or c in "/?#@" for c in config.host):
        yield "host", f"host must be a host name or an address to bind, not {config.host!r}"
    if config.token is not None and not (_TOKEN_RE.fullmatch(config.token) or _JWT_RE.fullmatch(config.token)):
        yield "token", ("the API token must be a legacy token (8-40 characters of letters, digits, '_', '-' or '.') "
                        "or a personal access token (a JWT, 'eyJ...')")  # fmt: skip
    if config.password is not None and not config.password:
        yield "password", "the admin password is empty"
    if config.username is not None and "@" not in config.username:
        yield "username", "the admin username must be an e-mail address (Label Studio logs in by e-mail)"
    if config.database_url is not None:
        try:
            parse_database_url(config.database_url)
        except ServerError as exc:
            yield "database_url", str(exc)
    if config.wsgi not in WSGI_SERVERS:
        yield "wsgi", f"wsgi must be one of {', '.join(WSGI_SERVERS)}, not {config.wsgi!r}"
    if not 1 <= config.workers <= 64:
        yield "workers", f"workers must be 1-64, not {config.workers}"
    if config.server_document_root is not None and not config.server_document_root.startswith("/"):
        yield "server_document_root", ("server_document_root must be an absolute path as the server sees it, not "
                                       f"{config.server_document_root!r}")  # fmt: skip
    if config.public_url is not None:
        try:
            public = urlsplit(config.public_url)
            ok = public.scheme in ("http", "https") and bool(public.hostname) and not (public.query or public.fragment)
            public.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError:
            ok = False
        if not ok:
            yield "public_url", f"public_url must be an http(s) URL (https://ls.lab.example), not {config.public_url!r}"


# --- JSON files in the data folder ---------------------------------------------------------------------------


def read_json_file(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None when there is no file, {} when it is unreadable or not an object (so a
    damaged file reads as stale rather than failing)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_file(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    """Write `data` as JSON atomically (temporary + rename, fsynced), created with `mode` before anything is
    written, so a secret is never readable by others even for a moment."""
    from emotions_data.storage import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode)


# --- the credentials file ------------------------------------------------------------------------------------


def stored_credentials(data_dir: Path) -> dict[str, str]:
    """The secrets generated for `data_dir` at its first start (empty when all were configured)."""
    return {k: v for k, v in (read_json_file(data_dir / CREDENTIALS_FILE) or {}).items() if isinstance(v, str)}


def with_stored_credentials(config: ServerConfig) -> ServerConfig:
    """`config` with missing secrets filled in from the data folder's credentials file."""
    stored = stored_credentials(config.data_dir)
    return dataclasses.replace(
        config,
        username=config.username or stored.get("username"),
        password=config.password or stored.get("password"),
        token=config.token or stored.get("token"),
    )


def ensure_secrets(config: ServerConfig, first_start: bool) -> tuple[str, ...]:
    """At the first start, generate the admin password and token that are not configured (kept in
    credentials.json, 0600). Later the admin exists already and only the token is needed, to check and to use the
    server: ServerError when none is known. Returns the names of the generated secrets."""
    if not first_start:
        if config.token is None:
            raise ServerError(
                f"no API token known for {config.data_dir}: set {TOKEN_ENV} or the config file's [label_studio] "
                "token to the one it was first started with"
            )
        return ()
    missing = [k for k, v in (("password", config.password), ("token", config.token)) if v is None]
    if not missing:
        return ()
    stored = stored_credentials(config.data_dir)
    stored.setdefault("username", config.username or DEFAULT_USERNAME)
    for key in missing:
        stored[key] = secrets.token_hex(20) if key == "token" else secrets.token_urlsafe(18)
    write_json_file(config.data_dir / CREDENTIALS_FILE, stored, mode=0o600)
    return tuple(missing)


# --- deployment: database, bind address, proxy -------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresDatabase:
    """A PostgreSQL database Label Studio keeps its data in. `label` names it without the password (for messages,
    manifests and logs); the password reaches Label Studio and the PostgreSQL tools through their environment only."""

    host: str
    port: int
    name: str
    user: str
    password: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{self.user}@{host}:{self.port}/{self.name}"

    def label_studio_env(self) -> dict[str, str]:
        """Label Studio's settings for this database (`DJANGO_DB`, `POSTGRE_*`)."""
        env = {"DJANGO_DB": "postgresql", "POSTGRE_HOST": self.host, "POSTGRE_PORT": str(self.port),
               "POSTGRE_NAME": self.name, "POSTGRE_USER": self.user}  # fmt: skip
        env["POSTGRE_PASSWORD"] = self.password or ""
        return env

    def libpq_env(self) -> dict[str, str]:
        """The same for the PostgreSQL client tools (pg_dump, pg_restore, psql): `PG*` variables."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.name, "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def parse_database_url(url: str) -> PostgresDatabase:
    """`postgresql://USER[:PASSWORD]@HOST[:PORT]/NAME` (also `postgres://`; user and password percent-encoded, port
    5432 by default) as a PostgresDatabase. Raises ServerError naming the URL without its password when it is not
    one."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as exc:
        raise ServerError(f"database_url is not a URL ({exc})") from None
    shown = f"{parts.scheme}://{parts.username or ''}@{parts.hostname or ''}{parts.path}"
    if parts.scheme not in ("postgresql", "postgres"):
        raise ServerError(f"database_url must be a postgresql:// URL (SQLite needs none), not {parts.scheme}://...")
    name = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not parts.username or not name or "/" in name:
        raise ServerError(f"database_url {shown} must name a user, a host and a database: postgresql://USER@HOST/NAME")
    password = unquote(parts.password) if parts.password is not None else None
    return PostgresDatabase(parts.hostname, port, name, unquote(parts.username), password)


def _deployment_from_env(environ: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The deployment settings the environment gives (ours, else Label Studio's own names for them), and the
    variable each came from."""
    found: dict[str, str] = {}
    origin: dict[str, str] = {}
    if environ.get(DATABASE_URL_ENV):
        found["database_url"], origin["database_url"] = environ[DATABASE_URL_ENV], DATABASE_URL_ENV
    elif environ.get("DJANGO_DB") == "postgresql":
        user = quote(environ.get("POSTGRE_USER", "postgres"), safe="")
        password = environ.get("POSTGRE_PASSWORD")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        host = environ.get("POSTGRE_HOST", "localhost")
        host = f"[{host}]" if ":" in host else host
        name = quote(environ.get("POSTGRE_NAME", "postgres"), safe="")
        found["database_url"] = f"postgresql://{auth}@{host}:{environ.get('POSTGRE_PORT', '5432')}/{name}"
        origin["database_url"] = "DJANGO_DB=postgresql with POSTGRE_*"
    if environ.get(PUBLIC_URL_ENV):
        found["public_url"], origin["public_url"] = environ[PUBLIC_URL_ENV], PUBLIC_URL_ENV
    return found, origin


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

"""A tiny HTTP file server on 127.0.0.1 for the demo and the tests: real URLs, no network.

It also answers as an HTTP proxy for any host, so a client configured with the proxy can use
stable made-up URLs (``http://demo-corpus.invalid/clip.mp4``) whatever port the server got.

`faults` scripts per-path answers (a path with its query first), consumed one per request: ``{"/a.mp4": [429, 429]}``
answers 429 twice and then serves the file; ``{"/gone.mp4": [404] * 100}`` keeps answering 404. Two codes are not HTTP
statuses: `DROP` hangs up without an answer (a dropped connection), `STALL` answers nothing for `STALL_S` seconds and
then hangs up (a client with a shorter socket timeout times out).

`routes` answer for a host and path (optionally with its query) before any file: ``{"v.douyin.com/abc/":
Route(302, {"Location": ...})}``, so fixture pages live under a platform's real host names. With `tls=True` the
proxy also tunnels ``https://`` URLs (HTTP CONNECT) and ends TLS itself, with a throwaway self-signed certificate
made by the ``openssl`` command: the client must be told not to check certificates.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

DROP = 0  # a fault code: close the connection without answering
STALL = 1  # a fault code: answer nothing for STALL_S seconds, then close
STALL_S = 3.0


@dataclass(frozen=True)
class Route:
    """A scripted answer: status, headers and body (bytes, or a file whose bytes are sent)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Path = b""
    content_type: str = "text/html; charset=utf-8"


def _self_signed_context(folder: Path) -> ssl.SSLContext:
    """A server-side TLS context with a fresh self-signed certificate (made by `openssl`; the key never leaves
    `folder`)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=loopback.invalid"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _key(name: str) -> str:
    return "/" + quote(name)


class _Handler(SimpleHTTPRequestHandler):
    faults: dict[str, list[int]]
    lock: threading.Lock
    hits: dict[str, int]
    seen_headers: dict[str, dict[str, str]]
    request_log: list[tuple[float, str]]  # (time.monotonic(), path) of every request
    routes: dict[str, Route]
    tls: ssl.SSLContext | None
    host_log: list[str]  # "host/path?query" of every request that named its host

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _fault(self) -> int | None:
        """The next scripted answer for this path with its query (first) or without, else None."""
        path = self.path.split("?", 1)[0]
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.request_log.append((time.monotonic(), path))
            self.seen_headers[path] = dict(self.headers.items())
            queue = self.faults.get(self.path) or self.faults.get(path)
            return queue.pop(0) if queue else None

    def _route(self) -> Route | None:
        """The scripted answer for this request's host and path (with its query first, then without)."""
        if "://" in self.path:  # asked as an HTTP proxy: the absolute URL names the host
            parts = urlsplit(self.path)
            host, path, query = parts.hostname or "", parts.path or "/", parts.query
        else:  # inside a CONNECT tunnel, or asked directly: the Host header names it
            host = (self.headers.get("Host") or "").partition(":")[0]
            path, _, query = self.path.partition("?")
        with self.lock:
            self.host_log.append(f"{host}{path}" + (f"?{query}" if query else ""))
        return self.routes.get(f"{host}{path}?{query}") or self.routes.get(f"{host}{path}")

    def _send_route(self, route: Route, head_only: bool) -> None:
        body = route.body.read_bytes() if isinstance(route.body, Path) else route.body
        self.send_response(route.status)
        headers = {"Content-Type": route.content_type, **route.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _answer(self, head_only: bool) -> None:
        route = self._route() if self.routes else None
        if "://" in self.path:  # asked as an HTTP proxy: serve the path part of the absolute URL
            self.path = "/" + self.path.split("://", 1)[1].split("/", 1)[-1]
        code = self._fault()
        if code is None and route is not None:
            self._send_route(route, head_only)
            return
        if code is None:
            (super().do_HEAD if head_only else super().do_GET)()
            return
        if code in (DROP, STALL):
            if code == STALL:
                time.sleep(STALL_S)
            self.close_connection = True
            return
        self.send_response(code)
        if code == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._answer(head_only=False)

    def do_HEAD(self) -> None:
        self._answer(head_only=True)

    def do_CONNECT(self) -> None:
        """An ``https://`` URL through the proxy: answer the tunnel, end TLS here and serve what comes through it
        like any other request (the Host header names the host)."""
        if self.tls is None:
            self.send_error(501, "this loopback server was started without tls=True")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        try:
            tunnel = self.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        type(self)(tunnel, self.client_address, self.server, directory=self.directory)
        self.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Clients such as yt-dlp hang up after reading what they need; that is not an error."""


class LoopbackServer:
    def __init__(
        self,
        root: Path,
        faults: dict[str, list[int]] | None = None,
        *,
        routes: dict[str, Route] | None = None,
        tls: bool = False,
    ) -> None:
        self._cert_dir = Path(tempfile.mkdtemp(prefix="loopback-tls-")) if tls else None
        handler = type(
            "Handler",
            (_Handler,),
            {"faults": dict(faults or {}), "lock": threading.Lock(), "hits": {}, "seen_headers": {}, "request_log": [],
             "routes": dict(routes or {}), "host_log": [],
             "tls": _self_signed_context(self._cert_dir) if self._cert_dir else None},
        )  # fmt: skip
        self.handler = handler
        self.httpd = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def proxy_url(self) -> str:
        return self.base_url

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}{_key(name)}"

    def hits(self, name: str) -> int:
        return self.handler.hits.get(_key(name), 0)

    def first_request_times(self) -> dict[str, float]:
        """When each path was first asked for (monotonic clock)."""
        first: dict[str, float] = {}
        for when, path in self.handler.request_log:
            first.setdefault(path, when)
        return first

    def headers(self, name: str) -> dict[str, str]:
        """The headers of the last request for `name`."""
        return self.handler.seen_headers.get(_key(name), {})

    def requests_for(self, host: str) -> list[str]:
        """Every "host/path?query" asked of `host` through the proxy or a tunnel, in order."""
        return [entry for entry in self.handler.host_log if entry.startswith(f"{host}/")]

    def add_faults(self, name: str, codes: list[int]) -> None:
        with self.handler.lock:
            self.handler.faults.setdefault(_key(name), []).extend(codes)

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)


@contextmanager
def serve(
    root: Path, faults: dict[str, list[int]] | None = None, *, routes: dict[str, Route] | None = None, tls: bool = False
) -> Iterator[LoopbackServer]:
    server = LoopbackServer(root, faults, routes=routes, tls=tls).start()
    try:
        yield server
    finally:
        server.stop()

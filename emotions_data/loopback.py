"""A tiny HTTP file server on 127.0.0.1 for the demo and the tests: real URLs, no network.

It also answers as an HTTP proxy for any host, so a client configured with the proxy can use
stable made-up URLs (``http://demo-corpus.invalid/clip.mp4``) whatever port the server got.

`faults` scripts per-path answers, consumed one per request: ``{"/a.mp4": [429, 429]}`` answers
429 twice and then serves the file; ``{"/gone.mp4": [404] * 100}`` keeps answering 404.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote


def _key(name: str) -> str:
    return "/" + quote(name)


class _Handler(SimpleHTTPRequestHandler):
    faults: dict[str, list[int]]
    lock: threading.Lock
    hits: dict[str, int]
    seen_headers: dict[str, dict[str, str]]
    request_log: list[tuple[float, str]]  # (time.monotonic(), path) of every request

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _fault(self) -> int | None:
        path = self.path.split("?", 1)[0]
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.request_log.append((time.monotonic(), path))
            self.seen_headers[path] = dict(self.headers.items())
            queue = self.faults.get(path)
            return queue.pop(0) if queue else None

    def _answer(self, head_only: bool) -> None:
        if "://" in self.path:  # asked as an HTTP proxy: serve the path part of the absolute URL
            self.path = "/" + self.path.split("://", 1)[1].split("/", 1)[-1]
        code = self._fault()
        if code is None:
            (super().do_HEAD if head_only else super().do_GET)()
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


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Clients such as yt-dlp hang up after reading what they need; that is not an error."""


class LoopbackServer:
    def __init__(self, root: Path, faults: dict[str, list[int]] | None = None) -> None:
        handler = type(
            "Handler",
            (_Handler,),
            {"faults": dict(faults or {}), "lock": threading.Lock(), "hits": {}, "seen_headers": {}, "request_log": []},
        )
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

    def add_faults(self, name: str, codes: list[int]) -> None:
        with self.handler.lock:
            self.handler.faults.setdefault(_key(name), []).extend(codes)

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serve(root: Path, faults: dict[str, list[int]] | None = None) -> Iterator[LoopbackServer]:
    server = LoopbackServer(root, faults).start()
    try:
        yield server
    finally:
        server.stop()

"""A real HTTP server on 127.0.0.1 for crawler tests: routes map a path to a response (or a sequence)."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Page:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    etag: bool = True  # send an ETag and answer If-None-Match with 304
    chunked: bool = False  # no Content-Length: the body streams until the connection closes

    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


Route = Page | list[Page] | Callable[[str], Page]


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]


class Site:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self.base = ""
        self.port = 0  # tests that reach the site under another host name build their URLs with it

    def route(self, path: str, response: Route) -> None:
        self.routes[path] = response

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def hits_for(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    def _resolve(self, raw_path: str) -> Page:
        path = raw_path if raw_path in self.routes else urlsplit(raw_path).path
        route = self.routes.get(path)
        if route is None:
            return Page("not found", status=404, content_type="text/plain", etag=False)
        if isinstance(route, list):
            return route.pop(0) if len(route) > 1 else route[0]
        if callable(route):
            return route(raw_path)
        return route


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            with site._lock:
                site.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}))
                page = site._resolve(self.path)
            if page.delay:
                time.sleep(page.delay)
            body = page.payload()
            tag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
            if page.etag and page.status == 200 and self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.send_header("ETag", tag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(page.status)
            self.send_header("Content-Type", page.content_type)
            if page.etag and page.status == 200:
                self.send_header("ETag", tag)
            for key, value in page.headers.items():
                self.send_header(key, value)
            if page.chunked:
                self.send_header("Connection", "close")
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    return Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def serve(site: Site, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    """Serve ``site`` on ``host`` (an IPv4 or IPv6 address), over https when given a server TLS context."""
    server = (_IPv6Server if ":" in host else ThreadingHTTPServer)((host, 0), _handler(site))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    site.port = server.server_address[1]
    site.base = f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{site.port}"
    thread = threading.Thread(target=server.serve_forever, name="fixture-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

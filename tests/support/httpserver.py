"""A real HTTP server on 127.0.0.1 for tests: serves routes, records every request.

Used as the feed server (fixture feeds, error statuses, slow or huge bodies, redirects) and as
the receiving end of Slack and webhook alerts. Routes map a path to a :class:`Reply` or to a
function that builds one from the :class:`Recorded` request, so a test can change behaviour
mid-run (answer 500 for a while, then 200).

    with LocalServer() as server:
        server.route("/feed.xml", Reply(body=xml, headers={"Content-Type": "application/rss+xml"}))
        url = server.url("/feed.xml")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (slow server)
    chunk_delay_s: float = 0.0  # wait between body chunks (slow body)
    reset: bool = False  # close the connection without answering
    declared_length: int | None = None  # send this Content-Length (a truncated body lies)


Handler = Callable[[Recorded], Reply]


class LocalServer:
    """Threaded HTTP/1.1 server on an ephemeral loopback port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with server._lock:
                    server.requests.append(recorded)
                reply = server._reply_for(recorded)
                server._send(self, reply)

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        self._httpd = ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- routes and requests -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, reply: Reply | Handler) -> None:
        self.routes[path] = reply

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def _reply_for(self, request: Recorded) -> Reply:
        route = self.routes.get(request.path) or self.routes.get(request.path.split("?", 1)[0])
        if route is None:
            return Reply(status=404, body=b"not found")
        return route(request) if callable(route) else route

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.reset:
            handler.close_connection = True
            handler.connection.close()
            return
        streamed = not isinstance(reply.body, bytes)
        chunks: Iterable[bytes] = [reply.body] if isinstance(reply.body, bytes) else reply.body
        handler.send_response(reply.status)
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        if reply.declared_length is not None:
            handler.send_header("Content-Length", str(reply.declared_length))
        elif streamed:
            # a generator body (e.g. 100 MB) is streamed without a length; the close ends it
            handler.send_header("Connection", "close")
            handler.close_connection = True
        else:
            handler.send_header("Content-Length", str(len(reply.body)))  # type: ignore[arg-type]
        handler.end_headers()
        if handler.command == "HEAD":
            return
        sent = 0
        try:
            for chunk in chunks:
                handler.wfile.write(chunk)
                handler.wfile.flush()
                sent += len(chunk)
                if reply.chunk_delay_s:
                    time.sleep(reply.chunk_delay_s)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
            return
        if reply.declared_length is not None and reply.declared_length != sent:
            handler.close_connection = True

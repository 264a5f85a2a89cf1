"""A platform API stand-in over real HTTP on 127.0.0.1 (stdlib `ThreadingHTTPServer`, keep-alive, as the
ShopiMind emulator), with the faults a pull must survive or stop on.

A platform (loyaltylion.py, voucherify.py) subclasses `StandIn`: `routes` (method, path pattern, handler)
and `authorized(headers)`; handlers answer `(status, body[, headers])` and may raise `ApiError`.

Faults, for the next API requests in order (`inject`): "429" (with `Retry-After: retry_after_s`), "500",
"503", "drop" (the connection closes without an answer). `down = True`: every request answers 503 until
it is set back; `down_after = n`: the same, from the (n+1)th request on. `delay_s`: each request waits
that long first (to catch a pull mid-way). `requests` logs every API request (method, path, query).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

Reply = tuple  # (status, body) or (status, body, headers)
Query = dict[str, str]
Handler = Callable[[tuple[str, ...], Query], Reply]
FAULTS = {"429", "500", "503", "drop"}


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class StandIn:
    """Subclass with `routes()` and `authorized()`; then `with Platform(...) as api: api.base_url`."""

    name = "platform"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.lock = threading.RLock()
        self.faults: list[str] = []
        self.retry_after_s = 0.05
        self.down = False
        self.down_after: int | None = None
        self.delay_s = 0.0
        self.requests: list[tuple[str, str, Query]] = []
        self._compiled = [(method, re.compile("^" + re.sub(r"\{\w+\}", "([^/]+)", template) + "/?$"), handler)
                          for method, template, handler in self.routes()]
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- what a platform defines -----------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        raise NotImplementedError

    def authorized(self, headers: Any) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        return 401, {"message": "Unauthorized"}

    # -- control -----------------------------------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
        with self.lock:
            self.faults.extend(faults)

    def served(self, path_prefix: str = "") -> list[tuple[str, str, Query]]:
        with self.lock:
            return [r for r in self.requests if r[1].startswith(path_prefix)]

    # -- serving -----------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: Query, headers: Any) -> Reply | None:
        """The reply to one API request; None: drop the connection."""
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.requests.append((method, path, query))
            fault = self.faults.pop(0) if self.faults else None
            if self.down or (self.down_after is not None and len(self.requests) > self.down_after):
                fault = "503"
        if fault == "drop":
            return None
        if fault == "429":
            return 429, {"message": "Too many requests"}, {"Retry-After": str(self.retry_after_s)}
        if fault in ("500", "503"):
            return int(fault), {"message": "Service unavailable"}
        if not self.authorized(headers):
            return self.unauthorized()
        for route_method, pattern, handler in self._compiled:
            if route_method == method and (match := pattern.match(path)):
                try:
                    with self.lock:
                        return handler(tuple(unquote(g) for g in match.groups()), query)
                except ApiError as exc:
                    return exc.status, exc.body
        return 404, {"message": f"Cannot {method} {path}"}

    def start(self) -> StandIn:
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"{self.name}-stand-in", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_open_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: StandIn) -> None:
        self.api = api
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("stand-in connection error from %s", client_address, exc_info=True)

    def close_open_connections(self) -> None:
        with self.connections_lock:
            for conn in self.open_connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; a credential must never be printed

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        reply = self.server.api.answer("GET", url.path, query, self.headers)
        if reply is None:
            self.close_connection = True  # no byte of an answer: the client sees a dropped connection
            return
        status, body, headers = (*reply, {}) if len(reply) == 2 else reply
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

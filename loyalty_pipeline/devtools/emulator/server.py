"""The emulator over real HTTP on 127.0.0.1 (stdlib `ThreadingHTTPServer`, keep-alive): the /v1 routes
of store.py behind the API key, and control/inspection routes under /_emulator/ that need none.

`Emulator` serves it on a background thread (tests, `make demo`); `serve` in the foreground (the
`loyalty-devtools emulator` command).
"""

from __future__ import annotations

import hmac
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

from .contract import ApiError, Json, Query, Reply, error_body, require_object
from .store import EMULATOR_API_KEY, EmulatorConfig, Store

log = logging.getLogger(__name__)


Handler = Callable[[Store, tuple[str, ...], Query, Json], Reply]

# The template doubles as the key of the per-route request counters.
_V1_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/custom-data-definitions", lambda s, p, q, b: s.create_definition(b)),
    ("GET", "/v1/custom-data-definitions", lambda s, p, q, b: s.list_definitions(q)),
    ("GET", "/v1/custom-data-definitions/{id}", lambda s, p, q, b: s.get_definition(p[0])),
    ("PATCH", "/v1/custom-data-definitions/{id}/extend", lambda s, p, q, b: s.extend_definition(p[0], b)),
    ("PATCH", "/v1/custom-data-definitions/{id}/activate", lambda s, p, q, b: s.set_status(p[0], "active")),
    (
        "PATCH",
        "/v1/custom-data-definitions/{id}/deactivate",
        lambda s, p, q, b: s.set_status(p[0], "inactive"),
    ),
    ("DELETE", "/v1/custom-data-definitions/{id}", lambda s, p, q, b: s.delete_definition(p[0])),
    ("POST", "/v1/custom-data-records/{id}", lambda s, p, q, b: s.save_records(p[0], b)),
    ("GET", "/v1/custom-data-records/{id}", lambda s, p, q, b: s.list_records(p[0], q)),
    (
        "POST",
        "/v1/custom-data-records/{id}/bulk-delete",
        lambda s, p, q, b: s.bulk_delete_records(p[0], b),
    ),
    ("POST", "/v1/events", lambda s, p, q, b: s.create_event(b)),
    ("GET", "/v1/events", lambda s, p, q, b: s.list_events(q)),
    ("GET", "/v1/events/histories", lambda s, p, q, b: s.list_histories(q)),
    ("POST", "/v1/events/trigger/{code_name}", lambda s, p, q, b: s.trigger_event(p[0], b)),
]
_COMPILED_ROUTES = [
    (method, re.compile("^" + re.sub(r"\{\w+\}", "([^/]+)", template) + "/?$"), template, handler)
    for method, template, handler in _V1_ROUTES
]


def _match_route(method: str, path: str) -> tuple[str | None, tuple[str, ...], Handler | None]:
    for route_method, pattern, template, handler in _COMPILED_ROUTES:
        if route_method == method and (match := pattern.match(path)):
            return template, tuple(unquote(g) for g in match.groups()), handler
    return None, (), None


def _parse_json(raw: bytes) -> Json:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "body is not valid JSON") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent clients connecting at once

    def __init__(self, address: tuple[str, int], store: Store) -> None:
        self.store = store
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection error from %s", client_address, exc_info=True)  # e.g. client resets

    def close_open_connections(self) -> None:
        """Keep-alive connections would otherwise keep being served after stop()."""
        with self.connections_lock:
            for conn in self.open_connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    timeout = 60  # drop idle keep-alive connections
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
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
        pass  # quiet; nothing here may ever include the API key

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # unsupported framing: the stream cannot be resynchronised
            raise ApiError(411, "Content-Length required")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            raw = self._read_body()  # always drained first so keep-alive stays in sync on early errors
        except ApiError as exc:
            self._send(exc.status, error_body(exc.status, exc.message))
            return
        if url.path.startswith("/_emulator/"):
            self._control(method, url.path, raw)
        else:
            self._api(method, url.path, parse_qs(url.query), raw)

    def _authorized(self) -> bool:
        given = self.headers.get("spm-api-key") or ""
        return hmac.compare_digest(given.encode(), self.server.store.api_key.encode())

    def _api(self, method: str, path: str, query: Query, raw: bytes) -> None:
        store = self.server.store
        template, params, handler = _match_route(method, path)
        route = f"{method} {template or '(unmatched)'}"
        if store.config.latency_ms:
            time.sleep(store.config.latency_ms / 1000)
        headers: dict[str, str] = {}
        lose = False
        with store.lock:
            try:
                fault, lose = store.admit(is_write=method != "GET")
                if fault:
                    status, body, headers = fault
                elif not self._authorized():
                    raise ApiError(401, "Invalid or missing API key")  # never echo the key
                elif handler is None:
                    raise ApiError(404, f"Cannot {method} {path}")
                else:
                    status, body = handler(store, params, query, _parse_json(raw))
            except ApiError as exc:
                status, body = exc.status, error_body(exc.status, exc.message, **exc.extra)
            except Exception:
                log.exception("emulator error on %s", route)
                status, body = 500, error_body(500, "Internal server error")
            lose = lose and status < 300  # only an applied write can lose its answer
            store.count(route, "lost" if lose else status)
        if lose:
            # The write is applied; closing without a byte makes the client see a transport error.
            self.close_connection = True
            return
        self._send(status, body, headers)

    def _control(self, method: str, path: str, raw: bytes) -> None:
        store = self.server.store
        try:
            body = _parse_json(raw)
            with store.lock:
                if (method, path) == ("GET", "/_emulator/state"):
                    result = store.snapshot()
                elif (method, path) == ("POST", "/_emulator/config"):
                    result = {"config": store.configure(require_object(body or {}, "body"))}
                elif (method, path) == ("POST", "/_emulator/contacts"):
                    result = {"contacts": store.seed_contacts(body)}
                elif (method, path) == ("POST", "/_emulator/reset"):
                    store.reset()
                    result = {"reset": True}
                else:
                    raise ApiError(404, f"Cannot {method} {path}")
        except ApiError as exc:
            self._send(exc.status, error_body(exc.status, exc.message))
            return
        self._send(200, result)


class Emulator:
    """The emulator on a background thread: `with Emulator() as emu: httpx.get(emu.base_url + ...)`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = EMULATOR_API_KEY,
        config: EmulatorConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.host, self.port, self.api_key = host, port, api_key
        self._store = Store(api_key, config or EmulatorConfig())
        if overrides:
            self.configure(**overrides)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        if self._server is None:
            self._server = _Server((self.host, self.port), self._store)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="shopimind-emulator",
                daemon=True,
            )
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

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:54321" (append /v1/... for API routes)."""
        if self._server is None:
            raise RuntimeError("emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def config(self) -> EmulatorConfig:
        return self._store.config

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Partial, validated config update (same as POST /_emulator/config); raises ValueError."""
        with self._store.lock:
            try:
                self._store.configure(changes)
            except ApiError as exc:
                raise ValueError(exc.message) from None
            return self._store.config

    def state(self) -> dict[str, Json]:
        """Same document as GET /_emulator/state (a deep copy)."""
        with self._store.lock:
            return self._store.snapshot()

    def seed_contacts(self, contacts: list[dict[str, Json]]) -> list[dict[str, Json]]:
        with self._store.lock:
            try:
                return self._store.seed_contacts(contacts)
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def reset(self) -> None:
        """Forget all data and counters; the config is kept."""
        with self._store.lock:
            self._store.reset()


def serve(host: str = "127.0.0.1", port: int = 8765, api_key: str = EMULATOR_API_KEY, **config: Any) -> None:
    """Run the emulator in the foreground until Ctrl-C (`loyalty-devtools emulator`)."""
    with Emulator(host, port, api_key, **config) as emulator:
        print(f"ShopiMind emulator listening on {emulator.base_url} (inspect: /_emulator/state); deliver to it "
              f"with SHOPIMIND_BASE_URL={emulator.base_url} SHOPIMIND_API_KEY={api_key}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

"""The emulator over real HTTP on 127.0.0.1: a Starlette app served by uvicorn (keep-alive, devtools/local_server.py),
with the /v1 routes of store.py behind the API key, and control/inspection routes under /_emulator/ that need none.

`Emulator` serves it on a background thread (tests, `make demo`); `serve` in the foreground (the
`loyalty-devtools emulator` command).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..local_server import LocalServer, Served, Unanswered
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
_CONTROL_ROUTES: list[tuple[str, str, Callable[[Store, Json], Json]]] = [
    ("GET", "/_emulator/state", lambda s, b: s.snapshot()),
    ("POST", "/_emulator/config", lambda s, b: {"config": s.configure(require_object(b or {}, "body"))}),
    ("POST", "/_emulator/contacts", lambda s, b: {"contacts": s.seed_contacts(b)}),
    ("POST", "/_emulator/reset", lambda s, b: s.reset() or {"reset": True}),
]
_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]  # what the catch-all routes answer (404)

class _Json(Response):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Json) -> bytes:
        return json.dumps(content, ensure_ascii=False).encode()  # NaN allowed: bodies echo what clients sent


class _ExpressPaths:
    """Route as the real API (NestJS on Express) does: on the raw path, a trailing slash ignored, the matched
    parameters percent-decoded afterwards (an encoded "/" stays inside its parameter)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["path"] = scope["raw_path"].decode("latin-1").rstrip("/") or "/"
        await self.app(scope, receive, send)


def _parse_json(raw: bytes) -> Json:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "body is not valid JSON") from None


def _authorized(request: Request, store: Store) -> bool:
    given = request.headers.get("spm-api-key") or ""
    return hmac.compare_digest(given.encode(), store.api_key.encode())


async def _api(request: Request, template: str | None, handler: Handler | None) -> Response:
    """One /v1 request: injected faults first (as a gateway would), then the key, then the route."""
    store: Store = request.app.state.store
    method, route = request.method, f"{request.method} {template or '(unmatched)'}"
    raw = await request.body()
    if store.config.latency_ms:
        await asyncio.sleep(store.config.latency_ms / 1000)
    headers: dict[str, str] = {}
    lose = False
    with store.lock:
        try:
            fault, lose = store.admit(is_write=method != "GET")
            if fault:
                status, body, headers = fault
            elif not _authorized(request, store):
                raise ApiError(401, "Invalid or missing API key")  # never echo the key
            elif handler is None:
                raise ApiError(404, f"Cannot {method} {request.scope['raw_path'].decode('latin-1')}")
            else:
                params = tuple(unquote(value) for value in request.path_params.values())
                query = parse_qs(request.scope["query_string"].decode("latin-1"))
                status, body = handler(store, params, query, _parse_json(raw))
        except ApiError as exc:
            status, body = exc.status, error_body(exc.status, exc.message, **exc.extra)
        except Exception:
            log.exception("emulator error on %s", route)
            status, body = 500, error_body(500, "Internal server error")
        lose = lose and status < 300  # only an applied write can lose its answer
        store.count(route, "lost" if lose else status)
    return Unanswered() if lose else _Json(body, status, headers)


async def _control(request: Request, action: Callable[[Store, Json], Json] | None) -> Response:
    store: Store = request.app.state.store
    try:
        body = _parse_json(await request.body())
        if action is None:
            raise ApiError(404, f"Cannot {request.method} {request.scope['raw_path'].decode('latin-1')}")
        with store.lock:
            return _Json(action(store, body))
    except ApiError as exc:
        return _Json(error_body(exc.status, exc.message), exc.status)


def _app(store: Store) -> Starlette:
    # Routes are tried in order; the catch-alls take what no route fully matches (a wrong method included).
    routes = [
        *(Route(t, functools.partial(_api, template=t, handler=h), methods=[m]) for m, t, h in _V1_ROUTES),
        *(Route(t, functools.partial(_control, action=a), methods=[m]) for m, t, a in _CONTROL_ROUTES),
        Route("/_emulator/{rest:path}", functools.partial(_control, action=None), methods=_METHODS),
        Route("/{rest:path}", functools.partial(_api, template=None, handler=None), methods=_METHODS),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_ExpressPaths)])
    app.state.store = store
    return app


class Emulator(Served):
    """The emulator on a background thread: `with Emulator() as emu: httpx.get(emu.base_url + "/v1/...")`."""

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
        self._server = LocalServer(_app(self._store), host, port, name="shopimind-emulator")

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

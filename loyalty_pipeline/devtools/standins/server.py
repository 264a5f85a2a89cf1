"""A platform API stand-in over real HTTP on 127.0.0.1 (a Starlette app served by uvicorn, keep-alive, like the
ShopiMind emulator: devtools/local_server.py), with the faults a pull must survive or stop on.

A platform (loyaltylion.py, voucherify.py) subclasses `StandIn`: `routes` (method, path pattern, handler)
and `authorized(headers)`; handlers answer `(status, body[, headers])` and may raise `ApiError`.

Faults, for the next API requests in order (`inject`): "429" (with `Retry-After: retry_after_s`), "500",
"503", "drop" (the connection closes without an answer). `down = True`: every request answers 503 until
it is set back; `down_after = n`: the same, from the (n+1)th request on. `delay_s`: each request waits
that long first (to catch a pull mid-way). `requests` logs every API request (method, path, query).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..local_server import LocalServer, Served, Unanswered

Reply = tuple  # (status, body) or (status, body, headers)
Query = dict[str, str]
Handler = Callable[[tuple[str, ...], Query], Reply]
FAULTS = {"429", "500", "503", "drop"}


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class StandIn(Served):
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
        self._server = LocalServer(Starlette(routes=[Route("/{rest:path}", self._endpoint)]), host, port,
                                   name=f"{self.name}-stand-in")

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
                        return handler(match.groups(), query)
                except ApiError as exc:
                    return exc.status, exc.body
        return 404, {"message": f"Cannot {method} {path}"}

    def _endpoint(self, request: Request) -> Response:
        # A plain function: Starlette runs it in a worker thread, so `delay_s` holds this request only.
        reply = self.answer(request.method, request.url.path, dict(request.query_params), request.headers)
        if reply is None:
            return Unanswered()
        status, body, headers = (*reply, {}) if len(reply) == 2 else reply
        return Response(json.dumps(body, ensure_ascii=False), status, headers, "application/json; charset=utf-8")

"""A fault-injecting HTTP proxy on 127.0.0.1, in front of the emulator, for the delivery tests.

It is a real server the pipeline's client talks to over TCP: each request is matched against the
rules (first rule of its route with uses left, in the order they were added), and a rule's action
decides what happens: forward untouched, answer in place of ShopiMind, forward then rewrite the
answer, answer late, or drop the connection before or after forwarding. Unmatched requests are
forwarded. `rule.applied` says how often each fault really happened.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_FORWARDED_HEADERS = ("spm-api-key", "content-type", "accept", "user-agent")


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        return f"{self.method} {self.target.split('?', 1)[0]}"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, value: Any) -> Reply:
        return cls(status, json.dumps(value).encode())

    def parsed(self) -> Any:
        return json.loads(self.body)


# forward(body=None) sends the request upstream (optionally with another body) and returns the answer.
Forward = Callable[..., Reply]
# An action answers (a Reply) or drops the connection unanswered (None).
Action = Callable[[Request, Forward], Reply | None]


@dataclass
class Rule:
    route: re.Pattern  # matched against "METHOD /path"
    action: Action
    times: int | None  # uses left; None = every matching request
    when: Callable[[Request], bool] | None = None
    applied: int = 0

    def takes(self, request: Request) -> bool:
        return ((self.times is None or self.applied < self.times) and bool(self.route.search(request.route))
                and (self.when is None or self.when(request)))


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.upstream, timeout=30)
        self._server: _Server | None = None

    def add(self, route: str, action: Action, times: int | None = 1,
            when: Callable[[Request], bool] | None = None) -> Rule:
        """`route` is a regex searched in "METHOD /path", e.g. r"^POST /v1/custom-data-records/"."""
        rule = Rule(re.compile(route), action, times, when)
        with self._lock:
            self.rules.append(rule)
        return rule

    def pending(self) -> list[Rule]:
        """Rules with a fixed number of uses that have not all happened."""
        return [r for r in self.rules if r.times is not None and r.applied < r.times]

    def _rule_for(self, request: Request) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.takes(request):
                    rule.applied += 1
                    return rule
        return None

    def _forward(self, request: Request, body: bytes | None = None) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        response = self._http.request(request.method, request.target, headers=headers,
                                      content=request.body if body is None else body)
        return Reply(response.status_code, response.content,
                     response.headers.get("content-type", "application/octet-stream"))

    def handle(self, request: Request) -> Reply | None:
        rule = self._rule_for(request)
        forward = lambda body=None: self._forward(request, body)  # noqa: E731
        return rule.action(request, forward) if rule else forward()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._server = _Server(("127.0.0.1", 0), self)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._http.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer: expected here

    def close_connections(self) -> None:
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request(self.command, self.path, dict(self.headers.items()), body)
        reply = self.server.proxy.handle(request)
        if reply is None:  # dropped: the connection closes without a byte of answer
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


# -- actions ----------------------------------------------------------------------------------------

def answer(status: int, body: Any = None, content_type: str = "application/json") -> Action:
    """Answer in ShopiMind's place; the request never reaches it. `body`: bytes/str as is, else JSON."""
    data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return lambda request, forward: Reply(status, data, content_type)


def html(status: int = 200) -> Action:
    """What a captive portal, a maintenance page or a misrouted load balancer answers."""
    return answer(status, "<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>",
                  "text/html; charset=utf-8")


def rewrite(change: Callable[[Request, Reply], Reply]) -> Action:
    """Forward (ShopiMind acts on the request), then answer something else."""
    return lambda request, forward: change(request, forward())


def rewrite_json(change: Callable[[Any], Any], status: int | None = None) -> Action:
    """Forward, then rewrite the answer's JSON document."""
    return rewrite(lambda request, reply: Reply.json(status or reply.status, change(reply.parsed())))


def drop_before() -> Action:
    """The connection dies before the request reaches ShopiMind: nothing happened there."""
    return lambda request, forward: None


def drop_after() -> Action:
    """ShopiMind acted on the request, then the connection died before the answer came back."""
    return lambda request, forward: (forward(), None)[1]


def slow(seconds: float) -> Action:
    """ShopiMind acted on the request; its answer comes `seconds` later (past the client's timeout)."""
    def act(request: Request, forward: Forward) -> Reply:
        reply = forward()
        time.sleep(seconds)
        return reply
    return act


def echoed_headers(request: Request) -> str:
    """The request's headers as a careless server would echo them (the API key included)."""
    return json.dumps(request.headers)

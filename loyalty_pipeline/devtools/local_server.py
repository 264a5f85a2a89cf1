"""An ASGI app served by uvicorn on 127.0.0.1 in a background thread, for the local stand-ins of the APIs the
pipeline talks to (the ShopiMind emulator, the loyalty platforms' stand-ins): real HTTP, keep-alive, quiet.

`Unanswered()` is a response that closes the connection without a byte of answer, which ASGI cannot express
(an app raising after `http.response.start` would leave the client a status line and headers): a lost answer,
or a dropped connection, must not even say whether the request was accepted.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A scope extension of _Protocol: close the connection without a byte of answer.
_CLOSE_UNANSWERED = "loyalty.local_server.close_unanswered"


class _Protocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools), plus closing the connection with no answer at all."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {_CLOSE_UNANSWERED: self.transport.close}


class Unanswered(Response):
    """The client sees the connection close unanswered (a transport error)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["extensions"][_CLOSE_UNANSWERED]()
        await receive()  # http.disconnect, once uvicorn has seen the close: nothing is sent after it


class LocalServer:
    """`app` on `host:port` (0: a free port) until `stop()`: `with LocalServer(app) as s: s.base_url`."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, name: str = "local-server") -> None:
        self.app, self.host, self.port, self.name = app, host, port, name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    def start(self) -> LocalServer:
        if self._server is None:
            listener = socket.create_server((self.host, self.port))  # a taken port raises OSError here
            self._address = listener.getsockname()[:2]
            self._server = uvicorn.Server(uvicorn.Config(
                self.app, http=_Protocol, lifespan="off", log_config=None, log_level="warning",
                access_log=False, proxy_headers=False,  # quiet (nothing here may ever log a credential); no proxy
                timeout_keep_alive=60,  # a client's pooled connection must not be closed under it between calls
                timeout_graceful_shutdown=1,  # a client stuck mid-request cannot hold stop() up
            ))
            self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]},
                                            name=self.name, daemon=True)
            self._thread.start()
            while not self._server.started:  # connections queue on the listener meanwhile; this catches a failure
                if not self._thread.is_alive():
                    self._server = self._thread = None
                    raise RuntimeError(f"the {self.name} server did not start")
                time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stops accepting, closes idle keep-alive connections, gives requests in flight a second to finish."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:54321"."""
        if self._server is None or self._address is None:
            raise RuntimeError(f"the {self.name} server is not started")
        host, port = self._address
        return f"http://{host}:{port}"


class Served:
    """What runs on a LocalServer (the emulator, the platforms' stand-ins): set `self._server` in
    `__init__`; then `with Thing(...) as thing: thing.base_url`."""

    _server: LocalServer

    def start(self):
        self._server.start()
        return self

    def stop(self) -> None:
        """Stops accepting, closes idle keep-alive connections, gives requests in flight a second to finish."""
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:54321"."""
        return self._server.base_url

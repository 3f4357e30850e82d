"""The HTTP face: uvicorn (httptools) serving the app inside the server's own event loop, beside
grpc.aio, on the services and the Guard the runtime built (no loopback gRPC hop: that would cost
~10x the framework's own CPU per call).

uvicorn is driven piece by piece rather than through `Server.serve`, which installs its own
SIGINT/SIGTERM handlers and re-raises the signal when it returns: here the process's signals
belong to `assistants-grpc serve`, which stops the runtime, which stops every face in its order.

- `start` binds the socket itself (an address in use is an OSError here, not uvicorn's
  `sys.exit`), so port 0 works and the bound port is read back; then uvicorn's `startup` serves
  it and its `main_loop` ticks (the Date header, once a second) as a task.
- `set_serving` is the runtime's health state, shown by `GET /health`.
- `stop(grace)`: the listener closes and idle keep-alive connections with it; calls in flight
  get the grace to finish; open streams still running then end with an `error` event
  (UNAVAILABLE) and `done`; whatever is left after that is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Final

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from assistants_grpc.auth.exposure import SecurityConfigError
from assistants_grpc.auth.guard import Guard
from assistants_grpc.http.app import build_app
from assistants_grpc.http.call import Face
from assistants_grpc.http.errors import envelope
from assistants_grpc.http.streaming import KEEPALIVE_SECONDS, Streams
from assistants_grpc.services.bundle import Services

log = logging.getLogger(__name__)

# How long streams ended at shutdown get to send their last frames and close.
_END_GRACE: Final = 1.0
_POLL: Final = 0.02


@dataclass(frozen=True)
class TlsFiles:
    """The same PEM files as the gRPC face (`--tls-cert`, `--tls-key`, `--tls-client-ca`)."""

    cert: str
    key: str
    client_ca: str | None = None


class HttpFace:
    def __init__(
        self,
        services: Services,
        guard: Guard,
        *,
        host: str,
        port: int,
        max_request_bytes: int,
        tls: TlsFiles | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._tls = tls
        self._streams = Streams(guard, keepalive=keepalive)
        self._face = Face(services, guard, self._streams, max_request_bytes=max_request_bytes)
        self._server: uvicorn.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        # The bound port (the one asked for, or the one chosen for port 0), once started.
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def keepalive(self) -> float:
        """Seconds of silence before an open stream sends a keep-alive comment."""
        return self._streams.keepalive

    @keepalive.setter
    def keepalive(self, seconds: float) -> None:
        self._streams.keepalive = seconds

    @property
    def requests(self) -> int:
        """Requests received so far (health checks aside)."""
        return self._face.requests

    async def start(self) -> None:
        app = build_app(self._face)
        server, sock = await _serve(app, self._host, self._requested_port, self._tls)
        self.port = sock.getsockname()[1]
        self._server = server
        self._ticker = asyncio.ensure_future(server.main_loop())
        log.info("HTTP face on %s://%s:%d/v1", self.scheme, self._host, self.port)

    async def set_serving(self, serving: bool) -> None:
        self._face.serving = serving

    async def stop(self, grace: float) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        state = server.server_state
        for listener in server.servers:
            listener.close()
        # Idle keep-alive connections close now; busy ones once their answer is sent.
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while state.tasks and loop.time() < deadline:
            await asyncio.sleep(_POLL)
        if self._streams:
            self._streams.end_all()
            deadline = loop.time() + _END_GRACE
            while state.tasks and loop.time() < deadline:
                await asyncio.sleep(_POLL)
        for task in list(state.tasks):
            task.cancel()
        if state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)
        for connection in list(state.connections):
            connection.transport.close()
        server.should_exit = True
        if self._ticker is not None:
            await self._ticker
            self._ticker = None
        for listener in server.servers:
            await listener.wait_closed()


async def _serve(
    app: ASGIApp, host: str, port: int, tls: TlsFiles | None
) -> tuple[uvicorn.Server, socket.socket]:
    """uvicorn serving `app` on a socket bound here (see the module's docstring)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        ws="none",
        lifespan="off",
        # The server's own logging stays as configured; no access log (keys and ids in
        # URLs are nobody's business at INFO).
        log_config=None,
        access_log=False,
        server_header=False,
        # No proxy header rewriting: the client address is the connection's.
        proxy_headers=False,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
        ssl_ca_certs=tls.client_ca if tls else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca else ssl.CERT_NONE,
    )
    try:
        config.load()
    except (OSError, ssl.SSLError) as error:
        raise SecurityConfigError(f"HTTP face TLS: {error}") from None
    sock = _bind(host, port)
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    return server, sock


class StartingHttp:
    """The HTTP port while the runtime starts (migrations may wait for another replica's), as
    StartingHealth is the gRPC port's: `GET /health` answers 503 `{"status": "NOT_SERVING",
    "state": "starting"}`, every other request 503 with an OpenAI error and `Retry-After`, so
    an HTTP probe tells "starting" from "serving" and from "down" (refused). `stop` frees the
    port for the face, which binds the same one (the chosen one, for port 0)."""

    def __init__(self, *, host: str, port: int, tls: TlsFiles | None = None) -> None:
        self._host, self._requested_port, self._tls = host, port, tls
        self._server: uvicorn.Server | None = None
        self.port = 0

    async def start(self) -> int:
        server, sock = await _serve(_starting_app, self._host, self._requested_port, self._tls)
        self._server = server
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        for listener in server.servers:
            await listener.wait_closed()


_STARTING_HEALTH: Final = b'{"status": "NOT_SERVING", "state": "starting"}'
# Nothing was done, so the SDK may retry anything (it retries a 503 after `retry-after-ms`).
_STARTING_ERROR: Final = json.dumps(
    envelope(
        "the server is starting (database migrations are running); retry shortly",
        "server_error",
        None,
        "starting",
    )
).encode()


async def _starting_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    health = scope["path"] == "/health"
    body = _STARTING_HEALTH if health else _STARTING_ERROR
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if not health:
        headers += [(b"retry-after", b"1"), (b"retry-after-ms", b"1000")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (IPv6 for an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


__all__ = ["HttpFace", "StartingHttp", "TlsFiles"]

"""The HTTP client that model calls go through, and why its sockets re-arm ``TCP_QUICKACK``.

A model server that leaves Nagle's algorithm on (``TCP_NODELAY`` unset: Python's
``http.server``, several C++ HTTP libraries) and writes its response in small pieces (the head,
then each SSE chunk) holds its second small write until the first one is acknowledged. Linux
delays that ACK by up to 40 ms once a connection looks interactive: a new connection's quick-ACK
credit is soon spent, and sending data soon after receiving some (the next request on a
kept-alive connection) puts the socket in delayed-ACK ("pingpong") mode. So a fresh connection
does not stall; a reused one, i.e. every model call after the first, can. Measured on this
machine (``make bench``, runs section, against the fake model with Nagle on): a plain
``openai.AsyncOpenAI`` got its first content chunk after ~43 ms instead of ~3 ms every time, and
about half of the service's runs had their first delta 40 ms late (mean +13 to +20 ms, p99 52 ms
instead of 12).

The fix belongs to the client, since we do not control the servers, and in the transport, since
that is where the socket is. ``TCP_NODELAY`` on our side (asyncio sets it already) does not
help: it is the peer's Nagle that waits. Setting ``TCP_QUICKACK`` once at connect does not help
either (measured for issue 18: 43.8 ms to the first content chunk with both options set through
the HTTP client's ``socket_options``), because Linux drops out of quick-ACK mode again by itself,
as above. Re-arming it before each read of the socket does (issue 18's raw-socket experiment on
a reused connection: 44.0 ms -> 0.2 ms; the service's runs with this module: first delta within
0.1-0.5 ms of the same server with ``TCP_NODELAY``, median, quiet machine). The option takes the
socket out of delayed-ACK mode and sends an ACK that is pending; then Linux ACKs a small segment
as soon as it has been read, so the held write follows one read later instead of 40 ms later.

The cost is one ``setsockopt`` per read (0.6 microseconds on asyncio's sockets, 2 through
uvloop's), and a streamed completion from a local server takes one or two reads (one per network
segment from a slow one). Data is ACKed as it is read rather than every other segment: a few
more small packets on large responses. Endpoints that set ``TCP_NODELAY`` never wait for our
ACKs, so nothing changes for them.

:class:`QuickAckBackend` is an ``httpcore2`` network backend (the HTTP client's pluggable socket
layer, so nothing is patched globally) wrapping the default one; :func:`model_http_client` is
the ``openai`` SDK's own default HTTP client (its timeout, connection limits, keep-alive pool and
redirects; the SDK keeps its retries) on that backend. Where the option does not exist (macOS,
Windows) or the socket refuses it, the backend only sets ``TCP_NODELAY``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore2
import httpx2
import openai
from openai._base_client import AsyncHttpxClientWrapper

from assistants_grpc.observability import metrics

__all__ = ["TCP_QUICKACK", "QuickAckBackend", "QuickAckStream", "model_http_client"]

log = logging.getLogger(__name__)

TCP_QUICKACK: Final[int | None] = getattr(socket, "TCP_QUICKACK", None)
"""The option's number on this platform (Linux), else None."""


class QuickAckStream(httpcore2.AsyncNetworkStream):
    """A connection's stream that re-arms ``TCP_QUICKACK`` before each read (see the module
    docstring); everything else goes to the wrapped stream."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream, sock: Any, option: int) -> None:
        self._inner = inner
        self._socket: Any = sock
        self._option = option
        self.rearms = 0
        """How many reads re-armed the option (for tests and debugging)."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        sock = self._socket
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, self._option, 1)
            except OSError as error:  # closed under us, or not TCP after all: stop trying
                log.debug("TCP_QUICKACK not re-armed, giving up on this connection: %s", error)
                self._socket = None
            else:
                self.rearms += 1
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        # TLS runs over the same TCP socket, so its reads need the same treatment.
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return QuickAckStream(tls, self._socket, self._option)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class QuickAckBackend(httpcore2.AsyncNetworkBackend):
    """Wraps a network backend (default ``httpcore2.AnyIOBackend``, what the HTTP client uses
    under asyncio): TCP connections get ``TCP_NODELAY`` at connect and, where ``quickack`` (the
    option's number, default :data:`TCP_QUICKACK`) is not None, a :class:`QuickAckStream`.

    ``connections`` counts the TCP connections opened (reuse shows as a count that stays put).
    """

    def __init__(
        self,
        inner: httpcore2.AsyncNetworkBackend | None = None,
        *,
        quickack: int | None = TCP_QUICKACK,
    ) -> None:
        self.inner = inner if inner is not None else httpcore2.AnyIOBackend()
        self.quickack = quickack
        self.connections = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(
            host,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        self.connections += 1
        sock = stream.get_extra_info("socket")
        if sock is None:  # a backend without a raw socket (a mock): nothing to tune
            return stream
        try:
            # asyncio already sets it on every TCP connection; other backends may not.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            log.debug("TCP_NODELAY not set on the model connection: %s", error)
        if self.quickack is None:
            return stream
        return QuickAckStream(stream, sock, self.quickack)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        # No TCP, no delayed ACKs.
        return await self.inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _Transport(httpx2.AsyncHTTPTransport):
    """``httpx2.AsyncHTTPTransport`` whose connection pool uses ``network_backend``.

    The transport takes no backend argument (encode/httpx#3749 would add one), so the pool it
    sends through (``_pool``, the one private name used here; the versions are pinned and
    tests/unit/test_model_http.py checks that requests do go through the backend) is replaced by
    one built with httpcore's public constructor, with the same TLS context and limits.
    """

    def __init__(self, network_backend: httpcore2.AsyncNetworkBackend, limits: httpx2.Limits):
        # The TLS context (~35 ms to build) is made once and shared with the parent's pool.
        ssl_context = httpx2.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=network_backend,
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # The SDK numbers its attempts in a header: anything but 0 is a retry (of a 429/5xx).
        retries = request.headers.get("x-stainless-retry-count")
        if retries not in (None, "0") and (recorded := metrics.active()) is not None:
            recorded.model_retries.labels(metrics.endpoint_label(request.url)).inc()
        return await super().handle_async_request(request)


def model_http_client(
    network_backend: httpcore2.AsyncNetworkBackend | None = None,
) -> httpx2.AsyncClient:
    """The HTTP client the SDK builds for itself when given none (its timeout, connection limits
    and redirects, closed when garbage-collected), sending through ``network_backend`` (default
    a new :class:`QuickAckBackend`). Pass it as ``openai.AsyncOpenAI(http_client=...)``; the
    client's ``close()`` closes it."""
    backend = network_backend if network_backend is not None else QuickAckBackend()
    transport = _Transport(backend, openai.DEFAULT_CONNECTION_LIMITS)
    return AsyncHttpxClientWrapper(
        transport=transport, event_hooks={"response": [_log_refused_response]}
    )


async def _log_refused_response(response: httpx2.Response) -> None:
    """A WARNING for each answer of the endpoint that is an error (the SDK retries a 408, 409,
    429 or 5xx): the endpoint (no query: no credentials), the status and the retry number."""
    if response.status_code < 400:
        return
    request = response.request
    url = request.url
    # Host and port only: a URL's user information may hold a credential.
    port = f":{url.port}" if url.port is not None else ""
    retry = request.headers.get("x-stainless-retry-count", "0")
    log.warning(
        "model endpoint answered %d",
        response.status_code,
        extra={
            "endpoint": f"{url.scheme}://{url.host}{port}{url.path}",
            "http_status": response.status_code,
            "retry": int(retry) if retry.isdigit() else retry,
        },
    )

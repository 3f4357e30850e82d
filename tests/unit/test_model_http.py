"""The model client's transport (engine/model_http.py): the network backend that sets
TCP_NODELAY at connect and re-arms TCP_QUICKACK before each read, and the SDK client on it."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore2
import openai
import pytest
from openai._base_client import AsyncHttpxClientWrapper

from assistants_grpc.engine.model_http import (
    TCP_QUICKACK,
    QuickAckBackend,
    QuickAckStream,
    model_http_client,
)
from assistants_grpc.engine.models import ModelConfig, ModelRouter
from assistants_grpc.fake_model import ErrorReply, FakeModelServer, TextReply
from tests.sockets import RecordingBackend

QUICKACK = 12  # Linux's number; the fakes below only record it
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
REARM = (socket.IPPROTO_TCP, QUICKACK, 1)
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="TCP_QUICKACK is Linux's"
)


class FakeSocket:
    """Records setsockopt calls in the shared log; refuses the options in ``refuse``."""

    def __init__(self, log: list[Any], refuse: tuple[int, ...] = ()) -> None:
        self.log = log
        self.refuse = refuse

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if option in self.refuse:
            self.log.append(("refused", option))
            raise OSError(22, "Invalid argument")
        self.log.append(("setsockopt", level, option, value))


class FakeStream(httpcore2.AsyncNetworkStream):
    def __init__(self, log: list[Any], sock: FakeSocket | None, name: str = "tcp") -> None:
        self.log = log
        self.sock = sock
        self.name = name

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.log.append((f"{self.name} read", max_bytes, timeout))
        return b"data"

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.log.append((f"{self.name} write", buffer, timeout))

    async def aclose(self) -> None:
        self.log.append(f"{self.name} close")

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        self.log.append(("start_tls", server_hostname, timeout))
        return FakeStream(self.log, self.sock, "tls")

    def get_extra_info(self, info: str) -> Any:
        return self.sock if info == "socket" else f"{self.name} {info}"


class FakeBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream
        self.calls: list[Any] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        self.calls.append(("tcp", host, port, timeout, local_address, socket_options))
        return self.stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        self.calls.append(("unix", path, timeout, socket_options))
        return self.stream

    async def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))


def fakes(refuse: tuple[int, ...] = ()) -> tuple[list[Any], FakeBackend]:
    log: list[Any] = []
    return log, FakeBackend(FakeStream(log, FakeSocket(log, refuse)))


async def test_connect_passes_everything_on_sets_nodelay_and_wraps() -> None:
    log, inner = fakes()
    backend = QuickAckBackend(inner, quickack=QUICKACK)
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    stream = await backend.connect_tcp(
        "h", 8, timeout=2.0, local_address="l", socket_options=options
    )
    assert inner.calls == [("tcp", "h", 8, 2.0, "l", options)]
    assert isinstance(stream, QuickAckStream)
    assert log == [("setsockopt", *NODELAY)]
    assert backend.connections == 1


async def test_each_read_rearms_quickack_before_reading() -> None:
    log, inner = fakes()
    stream = await QuickAckBackend(inner, quickack=QUICKACK).connect_tcp("h", 8)
    log.clear()
    assert await stream.read(100, 5.0) == b"data"
    assert await stream.read(200) == b"data"
    assert log == [
        ("setsockopt", *REARM),
        ("tcp read", 100, 5.0),
        ("setsockopt", *REARM),
        ("tcp read", 200, None),
    ]
    assert isinstance(stream, QuickAckStream)
    assert stream.rearms == 2


async def test_without_the_option_the_backend_only_sets_nodelay() -> None:
    """Other platforms (no socket.TCP_QUICKACK): the connection's own stream, untouched."""
    log, inner = fakes()
    stream = await QuickAckBackend(inner, quickack=None).connect_tcp("h", 8)
    assert stream is inner.stream
    await stream.read(10)
    assert log == [("setsockopt", *NODELAY), ("tcp read", 10, None)]


async def test_a_refused_option_is_given_up_and_reads_go_on() -> None:
    log, inner = fakes(refuse=(QUICKACK, socket.TCP_NODELAY))
    stream = await QuickAckBackend(inner, quickack=QUICKACK).connect_tcp("h", 8)
    assert await stream.read(10) == b"data"
    assert await stream.read(10) == b"data"
    assert log == [
        ("refused", socket.TCP_NODELAY),
        ("refused", QUICKACK),
        ("tcp read", 10, None),
        ("tcp read", 10, None),  # not tried again
    ]
    assert isinstance(stream, QuickAckStream)
    assert stream.rearms == 0


async def test_tls_reads_are_rearmed_on_the_same_socket() -> None:
    log, inner = fakes()
    stream = await QuickAckBackend(inner, quickack=QUICKACK).connect_tcp("h", 8)
    tls = await stream.start_tls(ssl.create_default_context(), "h", 3.0)
    log.clear()
    await tls.read(10)
    assert isinstance(tls, QuickAckStream)
    assert log == [("setsockopt", *REARM), ("tls read", 10, None)]


async def test_writes_close_and_extra_info_go_to_the_wrapped_stream() -> None:
    log, inner = fakes()
    stream = await QuickAckBackend(inner, quickack=QUICKACK).connect_tcp("h", 8)
    log.clear()
    await stream.write(b"x", 1.0)
    await stream.aclose()
    assert log == [("tcp write", b"x", 1.0), "tcp close"]
    assert stream.get_extra_info("server_addr") == "tcp server_addr"
    assert stream.get_extra_info("socket") is inner.stream.sock


async def test_a_stream_without_a_socket_is_left_alone() -> None:
    log: list[Any] = []
    inner = FakeBackend(FakeStream(log, None))
    backend = QuickAckBackend(inner, quickack=QUICKACK)
    assert await backend.connect_tcp("h", 8) is inner.stream
    assert log == []


async def test_unix_sockets_and_sleep_pass_through() -> None:
    log, inner = fakes()
    backend = QuickAckBackend(inner, quickack=QUICKACK)
    assert await backend.connect_unix_socket("/s", timeout=1.0) is inner.stream
    await backend.sleep(0.5)
    assert inner.calls == [("unix", "/s", 1.0, None), ("sleep", 0.5)]
    assert log == []


def test_the_default_backend_and_option() -> None:
    backend = QuickAckBackend()
    assert isinstance(backend.inner, httpcore2.AnyIOBackend)
    assert backend.quickack == TCP_QUICKACK == getattr(socket, "TCP_QUICKACK", None)


# -- real sockets ---------------------------------------------------------------------------------


@pytest.fixture
async def sender() -> AsyncIterator[tuple[int, asyncio.Queue[bytes]]]:
    """A loopback server writing whatever is put in the queue to its (one) connection."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await queue.get():
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], queue
    finally:
        queue.put_nowait(b"")
        server.close()
        await server.wait_closed()


@linux_only
async def test_a_real_connection_has_nodelay_and_quickack_rearmed(
    sender: tuple[int, asyncio.Queue[bytes]],
) -> None:
    port, queue = sender
    backend = QuickAckBackend()
    stream = await backend.connect_tcp("127.0.0.1", port, timeout=10.0)
    try:
        assert isinstance(stream, QuickAckStream)
        sock = stream.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        for i in range(3):
            queue.put_nowait(b"chunk %d" % i)
            assert await stream.read(100, timeout=10.0) == b"chunk %d" % i
            assert stream.rearms == i + 1
            # Nothing sent since the re-arm: the socket is still out of delayed-ACK mode.
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
    finally:
        await stream.aclose()


async def stream_text(client: openai.AsyncOpenAI) -> str:
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    return "".join(parts)


async def test_the_sdk_client_reuses_one_connection_through_the_backend() -> None:
    backend = RecordingBackend()
    async with (
        FakeModelServer(nodelay=False) as server,
        openai.AsyncOpenAI(
            base_url=server.base_url,
            api_key="x",
            max_retries=0,
            http_client=model_http_client(backend),
        ) as client,
    ):
        for i in range(5):
            server.push(TextReply(f"reply {i} in words", chunks=4))
            assert await stream_text(client) == f"reply {i} in words"
    assert backend.connections == server.connections == 1
    [stream] = backend.streams
    assert isinstance(stream, QuickAckStream) or TCP_QUICKACK is None
    if isinstance(stream, QuickAckStream):
        assert stream.rearms >= 5  # at least one re-armed read per response


async def test_the_sdk_client_keeps_its_defaults_and_retries() -> None:
    http_client = model_http_client()
    assert isinstance(http_client, AsyncHttpxClientWrapper)  # the SDK's own default class
    assert http_client.timeout == openai.DEFAULT_TIMEOUT
    assert http_client.follow_redirects
    pool = http_client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, httpcore2.AsyncConnectionPool)
    limits = openai.DEFAULT_CONNECTION_LIMITS
    assert pool._max_connections == limits.max_connections
    assert pool._max_keepalive_connections == limits.max_keepalive_connections
    assert pool._keepalive_expiry == limits.keepalive_expiry
    async with (
        FakeModelServer() as server,
        openai.AsyncOpenAI(
            base_url=server.base_url, api_key="x", max_retries=1, http_client=http_client
        ) as client,
    ):
        server.push(ErrorReply(503), TextReply("after a retry"))
        assert await stream_text(client) == "after a retry"
        assert len(server.requests) == 2


async def test_router_clients_send_through_one_backend() -> None:
    backend = RecordingBackend()
    async with FakeModelServer() as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "another key"}
        data = {"endpoints": [{"base_url": server.base_url, "models": ["other-*"]}]}
        async with ModelRouter(
            ModelConfig.from_mapping(data, env), max_retries=0, network_backend=backend
        ) as router:
            assert router.network_backend is backend
            for model in ("gpt-4o", "other-1"):  # two routes, two clients, one backend
                server.push(TextReply("ok"))
                assert await stream_text(router.client_for(model)) == "ok"
    assert backend.connections == 2
    assert isinstance(ModelRouter(ModelConfig()).network_backend, QuickAckBackend)

"""Issue 18: a model server that leaves Nagle on, over the service's reused model connection.

The test model server here is written the way simple servers are (Python's http.server, several
C++ libraries): ``TCP_NODELAY`` unset, and the head, each SSE chunk and the end of the body each
its own write. The run's first delta must reach the caller while that server still holds the
rest of its answer, and the service's end of the connection must have ``TCP_NODELAY`` and
re-arm ``TCP_QUICKACK`` before its reads (engine/model_http.py). How long the first delta takes
is the benchmark's business (`make bench`, runs section, the "Nagle on" rows), not a test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import grpc
import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import run_pb2 as R
from assistants_grpc.engine.model_http import QuickAckStream
from assistants_grpc.runtime import Overrides
from assistants_grpc.server import AssistantsServer
from tests.conftest import Stubs, stubs_for
from tests.integration.helpers import text_input
from tests.integration.runs_helpers import make_assistant, names
from tests.sockets import RecordingBackend, nodelay

WAIT = 30.0  # generous: the machine is shared
pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's"
)
PIECES = ("Hello", " from", " a", " server", " with Nagle on.")
CHUNK = {"id": "chatcmpl-nagle", "object": "chat.completion.chunk", "created": 0, "model": "m"}


def _frame(payload: str) -> bytes:
    data = f"data: {payload}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _frame(json.dumps({**CHUNK, "choices": [choice]}))


class NagleModelServer:
    """Streams ``PIECES`` to every chat-completions request, one write per piece of the
    response, Nagle left on. With ``hold`` set, a response stops after its first content
    chunk until that event is set. ``timeline`` records what it sent and when it held."""

    def __init__(self) -> None:
        self.hold: asyncio.Event | None = None
        self.timeline: list[str] = []
        self.connections = 0
        self.server_nodelay: list[bool] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # asyncio set it
        self.server_nodelay.append(nodelay(sock))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                request = json.loads(await reader.readexactly(length))
                await self._respond(writer, request)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, what: str) -> None:
        writer.write(data)
        await writer.drain()
        self.timeline.append(what)

    async def _respond(self, writer: asyncio.StreamWriter, request: dict[str, Any]) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        )
        await self._send(writer, head, "head")
        first, *rest = PIECES
        await self._send(writer, _chunk({"role": "assistant", "content": first}), "chunk 1")
        if self.hold is not None:
            self.timeline.append("holding")
            await self.hold.wait()
            self.timeline.append("released")
        for i, piece in enumerate(rest, start=2):
            await self._send(writer, _chunk({"content": piece}), f"chunk {i}")
        await self._send(writer, _chunk({}, "stop"), "finish")
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
            await self._send(
                writer, _frame(json.dumps({**CHUNK, "choices": [], "usage": usage})), "usage"
            )
        await self._send(writer, _frame("[DONE]"), "[DONE]")
        await self._send(writer, b"0\r\n\r\n", "end")


@contextlib.asynccontextmanager
async def service(
    database_url: str, model: NagleModelServer, backend: RecordingBackend
) -> AsyncIterator[Stubs]:
    server = AssistantsServer(
        Settings(
            host="127.0.0.1",
            port=0,
            http_port=0,
            metrics_port=0,
            database_url=database_url,
            model_max_retries=0,
            shutdown_grace=1.0,
            code_interpreter="off",  # this server's runs do not call it
        ),
        Overrides(
            clock=ManualClock(),
            model_env={"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test-key"},
            model_network_backend=backend,
        ),
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield stubs_for(channel)
    finally:
        await channel.close()
        await server.stop(0)


def run_request(assistant_id: str) -> R.CreateThreadAndRunRequest:
    return R.CreateThreadAndRunRequest(
        assistant_id=assistant_id, thread=R.ThreadInput(messages=[text_input("hi")])
    )


def delta_text(events: list[R.RunEvent]) -> str:
    return "".join(
        part.text.value
        for e in events
        if e.event == "thread.message.delta"
        for part in e.message_delta.delta.content
    )


async def test_first_delta_arrives_while_a_nagle_server_holds_the_rest(database_url: str) -> None:
    backend = RecordingBackend()
    async with NagleModelServer() as model, service(database_url, model, backend) as stubs:
        assistant = await make_assistant(stubs)

        # A first run opens the model connection; the service keeps it alive.
        async with asyncio.timeout(WAIT):
            warm = [e async for e in stubs.runs.CreateThreadAndRunStream(run_request(assistant.id))]
        assert names(warm)[-2:] == ["thread.run.completed", "done"]
        assert delta_text(warm) == "".join(PIECES)
        assert model.server_nodelay == [False]  # the premise: Nagle is on at the server
        [connection] = backend.streams
        assert isinstance(connection, QuickAckStream)

        # The second run goes over the same connection; the server holds all but its first
        # content chunk until the test has seen the first delta.
        model.hold = asyncio.Event()
        model.timeline.clear()
        rearmed_at_first_delta = -1
        events: list[R.RunEvent] = []
        async with asyncio.timeout(WAIT):
            async for event in stubs.runs.CreateThreadAndRunStream(run_request(assistant.id)):
                events.append(event)
                if event.event == "thread.message.delta" and model.timeline[-1] == "holding":
                    model.timeline.append("first delta")
                    sock = connection.get_extra_info("socket")
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
                    # Re-armed before the reads so far, and nothing sent since: the socket is
                    # out of delayed-ACK mode while the server holds the rest.
                    rearmed_at_first_delta = connection.rearms
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
                    model.hold.set()
                elif event.event == "thread.run.completed":
                    model.timeline.append("completed")

        assert model.timeline == [
            "head",
            "chunk 1",
            "holding",
            "first delta",
            "released",
            *(f"chunk {i}" for i in range(2, len(PIECES) + 1)),
            "finish",
            "usage",
            "[DONE]",
            "end",
            "completed",
        ]
        assert names(events)[-2:] == ["thread.run.completed", "done"]
        assert delta_text(events) == "".join(PIECES)
        # The read that got the held chunks was re-armed too, on the one reused connection.
        assert 0 < rearmed_at_first_delta < connection.rearms
        assert backend.connections == model.connections == 1

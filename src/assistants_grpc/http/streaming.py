"""A run's events as server-sent events, the way the `openai` SDK reads them.

Frames are `event: <name>` / `data: <one-line JSON>` (`contract.openai_json.to_sse`), in the
order the run service streams them; the run's `done` is the last frame and the body closes
right after it (the async SDK otherwise waits 100 ms for the end before it returns).

- **Before the 200.** The stream slot is taken, the service call made (its checks and writes)
  and the first event read before anything is sent, so every error up to there is an ordinary
  HTTP error with its status (`Streams.open`).
- **After the 200.** A service error in the middle of the stream (the thread deleted meanwhile)
  is an `error` event with OpenAI's `{"error": {...}}` (what the SDK raises on), then `done`.
- **Silence.** After `keepalive` seconds without a frame, a comment line (`: keep-alive`) keeps
  proxies and the client's read timeout from ending a stream that is only waiting (a run in a
  long model turn). SSE clients skip comments.
- **Disconnects.** The connection is watched while the stream runs: a client that goes away
  ends the stream at once, which ends the subscription and frees the stream slot, rather than
  when the next event or keep-alive finds the socket closed.
- **Shutdown.** `Streams.end_all` ends every open stream with an `error` event (UNAVAILABLE:
  another replica can serve the caller) and `done`, for the face's stop once the grace is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from typing import Any, Final, cast

from starlette.types import Message, Receive, Scope, Send

from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.openai_json import to_sse
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.http.errors import described_envelope
from assistants_grpc.services.errors import UnavailableError, describe

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS: Final = 15.0
_KEEPALIVE: Final = b": keep-alive\n\n"
_DONE: Final = b"event: done\ndata: [DONE]\n\n"
SHUTTING_DOWN: Final = "The server is shutting down; retry the call (another replica can serve it)."

RunEvents = AsyncIterator[run_pb2.RunEvent]


class EventStream:
    """The ASGI response of one open stream: the first event already read, the rest to come."""

    def __init__(
        self,
        streams: Streams,
        first: run_pb2.RunEvent | None,
        events: RunEvents,
        held: ExitStack,
        headers: dict[str, str],
    ) -> None:
        self._streams = streams
        self._first = first
        self._events = events
        self._held = held
        self._headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._pump: asyncio.Task[None] | None = None
        self._ending: BaseException | None = None
        self._last_sent = 0.0

    def end(self, error: BaseException) -> None:
        """End the stream with `error` as its last event (the face is stopping)."""
        self._ending = error
        if self._pump is not None:
            self._pump.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        watcher: asyncio.Task[None] | None = None
        keepalive: asyncio.Task[None] | None = None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        *self._headers,
                    ],
                }
            )
            self._last_sent = loop.time()
            pump = self._pump = asyncio.ensure_future(self._relay(send))
            if self._ending is not None:  # ended while the response was starting
                pump.cancel()
            watcher = asyncio.ensure_future(_disconnected(receive))
            keepalive = asyncio.ensure_future(self._keep_alive(send))
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():  # the client went away: stop at once, nothing more to send
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
                return
            keepalive.cancel()
            error = self._ending if pump.cancelled() else pump.exception()
            if error is not None:
                if self._ending is None:
                    log.debug("stream ended by %r", error)
                await send(_body(_error_frame(error)))
            if error is not None or self._ending is not None:
                await send(_body(_DONE))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            for task in (watcher, keepalive, self._pump):
                if task is not None and not task.done():
                    task.cancel()
            await _close(self._events)
            self._held.close()  # the stream slot
            self._streams.discard(self)

    async def _relay(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        if self._first is not None:
            await send(_body(to_sse(self._first).encode()))
            self._last_sent = loop.time()
        async for event in self._events:
            await send(_body(to_sse(event).encode()))
            self._last_sent = loop.time()

    async def _keep_alive(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        interval = self._streams.keepalive
        while True:
            wait = self._last_sent + interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await send(_body(_KEEPALIVE))
            self._last_sent = loop.time()


class Streams:
    """The open streams of one HTTP face: how they open, and ending them all at shutdown."""

    def __init__(self, guard: Guard, *, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self._guard = guard
        self.keepalive = keepalive
        self._open: set[EventStream] = set()

    def __len__(self) -> int:
        return len(self._open)

    async def open(
        self,
        caller: Caller,
        start: Callable[[], Awaitable[RunEvents]],
        headers: dict[str, str],
    ) -> EventStream:
        """Take a stream slot, start the stream (`start`: the service call) and read its first
        event; any error up to here raises, for an ordinary HTTP error."""
        held = ExitStack()
        events: RunEvents | None = None
        try:
            held.enter_context(self._guard.stream_slot(caller))
            events = await start()
            first = await anext(events, None)
        except BaseException:
            if events is not None:
                await _close(events)
            held.close()
            raise
        stream = EventStream(self, first, events, held, headers)
        self._open.add(stream)
        return stream

    def discard(self, stream: EventStream) -> None:
        self._open.discard(stream)

    def end_all(self) -> None:
        for stream in list(self._open):
            stream.end(UnavailableError(SHUTTING_DOWN))


def _body(data: bytes) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": True}


def _error_frame(error: BaseException) -> bytes:
    described = describe(error)
    if described.code == "INTERNAL":
        log.error("stream failed", exc_info=error)
    data = json.dumps(described_envelope(described), separators=(",", ":"), ensure_ascii=False)
    return f"event: error\ndata: {data}\n\n".encode()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the body was read before the stream started)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _close(events: RunEvents) -> None:
    """End the subscription now, wherever the generator stands (not when it is collected)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await cast(AsyncGenerator[Any, None], events).aclose()


__all__ = ["KEEPALIVE_SECONDS", "SHUTTING_DOWN", "EventStream", "Streams"]

"""Run event streams that survive a broken connection.

A stream yields the generated `RunEvent`s as they arrive. When the call breaks with UNAVAILABLE
(the server restarted, the network dropped), the stream reopens the run with
`WatchRun(after_sequence=<last seen>)` and goes on, retrying with backoff for up to the client's
`resume_timeout`; events carry sequence numbers, so none is lost or repeated. WatchRun follows a
run to its very end, through the `done` that closes each segment (CreateRunStream and
SubmitToolOutputsStream stop at `thread.run.requires_action`'s `done`), so a resumed segment
stops at the first `done` itself.

Resuming needs to know where: the run's id, and a position the server has confirmed. A stream
that broke before its first event cannot tell whether its write (a new run, submitted outputs)
happened, so it raises instead: writes are never retried silently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from types import TracebackType
from typing import Any, Literal, Self

import grpc

from assistants_grpc_client._errors import StreamEndedError, from_rpc_error
from assistants_grpc_client._events import RunState, delta_text
from assistants_grpc_client._gen.assistants.v1 import message_pb2, run_pb2
from assistants_grpc_client._retry import is_unavailable
from assistants_grpc_client._transport import AsyncTransport, CallSettings, SyncTransport

__all__ = ["AsyncRunStream", "AsyncStreamHelpers", "RunStream", "SyncStreamHelpers", "Until"]

Until = Literal["segment", "run"]
"""Where a stream ends: at the first `done` (one segment), or at the run's final one."""


class _Resumer:
    """The bounded retry schedule of one outage; reset by every event that gets through."""

    def __init__(self, settings: CallSettings) -> None:
        self._settings = settings
        self._delays: Iterator[float] | None = None
        self._deadline = 0.0

    def reset(self) -> None:
        self._delays = None

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None once the budget is spent."""
        now = time.monotonic()
        if self._delays is None:
            self._delays = self._settings.backoff.delays()
            self._deadline = now + self._settings.resume_timeout
        if now >= self._deadline:
            return None
        return min(next(self._delays), self._deadline - now)


def _watch_request(state: RunState) -> run_pb2.WatchRunRequest:
    assert state.thread_id is not None and state.run_id is not None
    return run_pb2.WatchRunRequest(
        thread_id=state.thread_id, run_id=state.run_id, after_sequence=state.last_sequence
    )


def _is_end(event: run_pb2.RunEvent, state: RunState, until: Until) -> bool:
    return state.run_ended if until == "run" else event.event == "done"


def _final_run(state: RunState) -> run_pb2.Run:
    if state.run is None:
        raise StreamEndedError("the stream ended before it carried any run")
    return state.run


class SyncStreamHelpers:
    """Iteration and the result helpers, over an event generator and the state it fills."""

    _state: RunState
    _events: Generator[run_pb2.RunEvent, None, None]

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> run_pb2.RunEvent:
        return next(self._events)

    def text_deltas(self) -> Iterator[str]:
        """The text of the messages as it arrives, delta by delta (consumes the stream)."""
        for event in self:
            if text := delta_text(event):
                yield text

    def until_done(self) -> Self:
        """Read the rest of the stream."""
        for _ in self:
            pass
        return self

    def final_run(self) -> run_pb2.Run:
        """The run as the stream's last run event left it (after reading the rest)."""
        return _final_run(self.until_done()._state)

    def final_messages(self) -> list[message_pb2.Message]:
        """The messages completed (or left incomplete) during the stream, in order."""
        return list(self.until_done()._state.messages.values())

    @property
    def run_id(self) -> str | None:
        return self._state.run_id

    @property
    def thread_id(self) -> str | None:
        return self._state.thread_id

    @property
    def current_run(self) -> run_pb2.Run | None:
        """The latest run snapshot seen so far."""
        return self._state.run

    @property
    def last_sequence(self) -> int:
        return self._state.last_sequence

    def close(self) -> None:
        """Stop reading; the call is cancelled."""
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RunStream(SyncStreamHelpers):
    """The events of one run stream: iterate it, or use the helpers. The call starts with the
    first read."""

    def __init__(
        self,
        transport: SyncTransport,
        stub: Any,
        open_call: Callable[[], Any],
        *,
        state: RunState,
        until: Until = "segment",
        positioned: bool = False,
    ) -> None:
        self._transport = transport
        self._stub = stub
        self._open_call = open_call
        self._state = state
        self._until = until
        # Whether a resume would start from a position the server confirmed (module docstring).
        self._positioned = positioned
        self._events = self._generate()

    def _can_resume(self, error: grpc.RpcError) -> bool:
        return is_unavailable(error) and self._positioned and self._state.run_id is not None

    def _generate(self) -> Generator[run_pb2.RunEvent, None, None]:
        resumer = _Resumer(self._transport.settings)
        call = self._open_call()
        try:
            while True:
                try:
                    for event in call:
                        resumer.reset()
                        if self._state.seen(event):
                            continue
                        self._state.add(event)
                        self._positioned = True
                        yield event
                        if _is_end(event, self._state, self._until):
                            return
                    return
                except grpc.RpcError as error:
                    delay = resumer.next_delay() if self._can_resume(error) else None
                    if delay is None:
                        raise from_rpc_error(error) from error
                    time.sleep(delay)
                    call.cancel()
                    call = self._transport.stream(self._stub.WatchRun, _watch_request(self._state))
        finally:
            call.cancel()


class AsyncStreamHelpers:
    """The async twin of `SyncStreamHelpers`."""

    _state: RunState
    _events: AsyncGenerator[run_pb2.RunEvent, None]

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> run_pb2.RunEvent:
        return await self._events.__anext__()

    async def text_deltas(self) -> AsyncIterator[str]:
        async for event in self:
            if text := delta_text(event):
                yield text

    async def until_done(self) -> Self:
        async for _ in self:
            pass
        return self

    async def final_run(self) -> run_pb2.Run:
        return _final_run((await self.until_done())._state)

    async def final_messages(self) -> list[message_pb2.Message]:
        return list((await self.until_done())._state.messages.values())

    @property
    def run_id(self) -> str | None:
        return self._state.run_id

    @property
    def thread_id(self) -> str | None:
        return self._state.thread_id

    @property
    def current_run(self) -> run_pb2.Run | None:
        return self._state.run

    @property
    def last_sequence(self) -> int:
        return self._state.last_sequence

    async def close(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncRunStream(AsyncStreamHelpers):
    """The async twin of `RunStream`."""

    def __init__(
        self,
        transport: AsyncTransport,
        stub: Any,
        open_call: Callable[[], Any],
        *,
        state: RunState,
        until: Until = "segment",
        positioned: bool = False,
    ) -> None:
        self._transport = transport
        self._stub = stub
        self._open_call = open_call
        self._state = state
        self._until = until
        self._positioned = positioned
        self._events = self._generate()

    def _can_resume(self, error: grpc.RpcError) -> bool:
        return is_unavailable(error) and self._positioned and self._state.run_id is not None

    async def _generate(self) -> AsyncGenerator[run_pb2.RunEvent, None]:
        resumer = _Resumer(self._transport.settings)
        call = self._open_call()
        try:
            while True:
                try:
                    async for event in call:
                        resumer.reset()
                        if self._state.seen(event):
                            continue
                        self._state.add(event)
                        self._positioned = True
                        yield event
                        if _is_end(event, self._state, self._until):
                            return
                    return
                except grpc.RpcError as error:
                    delay = resumer.next_delay() if self._can_resume(error) else None
                    if delay is None:
                        raise from_rpc_error(error) from error
                    await asyncio.sleep(delay)
                    call.cancel()
                    call = self._transport.stream(self._stub.WatchRun, _watch_request(self._state))
        finally:
            call.cancel()

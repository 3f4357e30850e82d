"""The tool runner: a run streamed from start to end, its tool calls answered on the way.

Each segment streams until the run ends or pauses in `requires_action`; then the matching
functions run (`_tools.py`) and all their outputs go back in one SubmitToolOutputsStream, whose
events continue the same stream. Iterating a `ToolRunStream` shows every event of every segment;
`run_with_tools` just drains it and returns the final run and the messages it wrote.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass

from assistants_grpc_client._errors import AssistantsError, StreamEndedError
from assistants_grpc_client._events import RunState
from assistants_grpc_client._gen.assistants.v1 import message_pb2, run_pb2
from assistants_grpc_client._streaming import (
    AsyncRunStream,
    AsyncStreamHelpers,
    RunStream,
    SyncStreamHelpers,
)
from assistants_grpc_client._tools import (
    OnToolError,
    Tool,
    ToolCallError,
    run_calls_async,
    run_calls_sync,
)

__all__ = ["AsyncToolRunStream", "ToolRunResult", "ToolRunStream"]

OpenSync = Callable[[RunState], RunStream]
SubmitSync = Callable[[RunState, list[run_pb2.ToolOutput]], RunStream]
OpenAsync = Callable[[RunState], AsyncRunStream]
SubmitAsync = Callable[[RunState, list[run_pb2.ToolOutput]], AsyncRunStream]


@dataclass(frozen=True, slots=True)
class ToolRunResult:
    """How a tool run ended: the final run and the messages it wrote, in order."""

    run: run_pb2.Run
    messages: Sequence[message_pb2.Message]

    @property
    def text(self) -> str:
        """The text of the run's messages, joined by blank lines."""
        return "\n\n".join(
            "".join(part.text.value for part in message.content if part.HasField("text"))
            for message in self.messages
        )


def _pending_calls(state: RunState) -> list[run_pb2.RequiredToolCall] | None:
    """The calls to answer, or None when the run is not waiting for any."""
    run = state.run
    if run is None:
        raise StreamEndedError("the stream ended before it carried any run")
    if run.status != run_pb2.RUN_STATUS_REQUIRES_ACTION:
        return None
    return list(run.required_action.submit_tool_outputs.tool_calls)


class ToolRunStream(SyncStreamHelpers):
    """Every event of a tool run, across its segments; the helpers cover the whole run."""

    def __init__(
        self,
        open_stream: OpenSync,
        submit: SubmitSync,
        cancel: Callable[[RunState], object],
        tools: dict[str, Tool],
        *,
        tool_timeout: float | None,
        on_tool_error: OnToolError,
        state: RunState | None = None,
    ) -> None:
        self._open_stream = open_stream
        self._submit = submit
        self._cancel = cancel
        self._tools = tools
        self._tool_timeout = tool_timeout
        self._on_tool_error = on_tool_error
        self._state = state or RunState()
        self._events = self._generate()

    def _generate(self) -> Generator[run_pb2.RunEvent, None, None]:
        stream = self._open_stream(self._state)
        while True:
            with stream:
                yield from stream
            calls = _pending_calls(self._state)
            if calls is None:
                return
            try:
                outputs = run_calls_sync(
                    self._tools,
                    calls,
                    default_timeout=self._tool_timeout,
                    on_error=self._on_tool_error,
                )
            except ToolCallError:
                _cancel_quietly(self._cancel, self._state)
                raise
            stream = self._submit(self._state, outputs)

    def result(self) -> ToolRunResult:
        """Read the rest of the run; its final state and messages."""
        return ToolRunResult(self.final_run(), self.final_messages())


class AsyncToolRunStream(AsyncStreamHelpers):
    """The async twin of `ToolRunStream`."""

    def __init__(
        self,
        open_stream: OpenAsync,
        submit: SubmitAsync,
        cancel: Callable[[RunState], Awaitable[object]],
        tools: dict[str, Tool],
        *,
        tool_timeout: float | None,
        on_tool_error: OnToolError,
        state: RunState | None = None,
    ) -> None:
        self._open_stream = open_stream
        self._submit = submit
        self._cancel = cancel
        self._tools = tools
        self._tool_timeout = tool_timeout
        self._on_tool_error = on_tool_error
        self._state = state or RunState()
        self._events = self._generate()

    async def _generate(self) -> AsyncGenerator[run_pb2.RunEvent, None]:
        stream = self._open_stream(self._state)
        while True:
            async with stream:
                async for event in stream:
                    yield event
            calls = _pending_calls(self._state)
            if calls is None:
                return
            try:
                outputs = await run_calls_async(
                    self._tools,
                    calls,
                    default_timeout=self._tool_timeout,
                    on_error=self._on_tool_error,
                )
            except ToolCallError:
                try:
                    await self._cancel(self._state)
                except AssistantsError:
                    pass  # the ToolCallError is what the caller needs to see
                raise
            stream = self._submit(self._state, outputs)

    async def result(self) -> ToolRunResult:
        return ToolRunResult(await self.final_run(), await self.final_messages())


def _cancel_quietly(cancel: Callable[[RunState], object], state: RunState) -> None:
    """A run left in requires_action would hold its thread until it expires; cancel it before
    raising, and let the ToolCallError, not a failed cancel, be what the caller sees."""
    try:
        cancel(state)
    except AssistantsError:
        pass

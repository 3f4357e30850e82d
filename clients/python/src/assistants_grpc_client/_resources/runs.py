"""`client.runs` (and `client.runs.steps`): RunService.

Streaming methods return a `RunStream` (`_streaming.py`); the tool runner methods wrap them in a
`ToolRunStream` (`_runner.py`) that answers tool calls with Python functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Unpack

from assistants_grpc_client._convert import (
    create_run_request,
    list_request,
    thread_and_run_request,
    tool_output,
)
from assistants_grpc_client._events import RunState
from assistants_grpc_client._gen.assistants.v1 import common_pb2, run_pb2, run_pb2_grpc
from assistants_grpc_client._pagination import AsyncPaginator, SyncCursorPage
from assistants_grpc_client._params import (
    ListParams,
    RunCreateParams,
    StepListParams,
    ThreadAndRunParams,
    ToolOutputParam,
    ToolRunParams,
)
from assistants_grpc_client._runner import AsyncToolRunStream, ToolRunResult, ToolRunStream
from assistants_grpc_client._streaming import AsyncRunStream, RunStream, Until
from assistants_grpc_client._tools import OnToolError, ToolsParam, resolve_tools
from assistants_grpc_client._transport import AsyncTransport, SyncTransport

__all__ = ["AsyncRuns", "AsyncSteps", "Runs", "Steps"]

R = run_pb2
DEFAULT_TOOL_TIMEOUT = 60.0


def _update_request(
    thread_id: str, run_id: str, metadata: Mapping[str, str] | None
) -> R.UpdateRunRequest:
    request = R.UpdateRunRequest(thread_id=thread_id, run_id=run_id)
    if metadata is not None:
        request.metadata.CopyFrom(common_pb2.Metadata(values=metadata))
    return request


def _submit_request(
    thread_id: str, run_id: str, tool_outputs: Iterable[ToolOutputParam]
) -> R.SubmitToolOutputsRequest:
    return R.SubmitToolOutputsRequest(
        thread_id=thread_id, run_id=run_id, tool_outputs=[tool_output(o) for o in tool_outputs]
    )


def _ids(state: RunState) -> tuple[str, str]:
    assert state.thread_id is not None and state.run_id is not None, "no run in the stream yet"
    return state.thread_id, state.run_id


class Steps:
    def __init__(self, transport: SyncTransport, stub: Any) -> None:
        self._t = transport
        self._stub = stub

    def retrieve(
        self, step_id: str, *, thread_id: str, run_id: str, include: Iterable[str] = ()
    ) -> R.RunStep:
        request = R.GetRunStepRequest(
            thread_id=thread_id, run_id=run_id, step_id=step_id, include=include
        )
        return self._t.unary(self._stub.GetRunStep, request, R.RunStep, idempotent=True)

    def list(
        self, run_id: str, *, thread_id: str, **params: Unpack[StepListParams]
    ) -> SyncCursorPage[R.RunStep]:
        request = list_request(R.ListRunStepsRequest(thread_id=thread_id, run_id=run_id), params)
        return self._t.paginate(self._stub.ListRunSteps, request, R.ListRunStepsResponse)


class Runs:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._stub: Any = run_pb2_grpc.RunServiceStub(transport.channel)
        self.steps = Steps(transport, self._stub)

    def _stream(
        self,
        method: Any,
        request: Any,
        state: RunState,
        *,
        until: Until = "segment",
        positioned: bool = False,
    ) -> RunStream:
        return RunStream(
            self._t,
            self._stub,
            lambda: self._t.stream(method, request),
            state=state,
            until=until,
            positioned=positioned,
        )

    def create(self, thread_id: str, assistant_id: str, **params: Unpack[RunCreateParams]) -> R.Run:
        """Start a run; it returns at once with the run queued."""
        request = create_run_request(thread_id, assistant_id, params)
        return self._t.unary(self._stub.CreateRun, request, R.Run, idempotent=False)

    def stream(
        self, thread_id: str, assistant_id: str, **params: Unpack[RunCreateParams]
    ) -> RunStream:
        """Start a run and stream its events until it ends or waits for tool outputs."""
        request = create_run_request(thread_id, assistant_id, params)
        return self._stream(self._stub.CreateRunStream, request, RunState(thread_id=thread_id))

    def create_and_run(self, assistant_id: str, **params: Unpack[ThreadAndRunParams]) -> R.Run:
        """Create a thread (from `thread`, or empty) and start a run on it (CreateThreadAndRun,
        the OpenAI SDK's `threads.create_and_run`)."""
        request = thread_and_run_request(assistant_id, params)
        return self._t.unary(self._stub.CreateThreadAndRun, request, R.Run, idempotent=False)

    def create_and_stream(
        self, assistant_id: str, **params: Unpack[ThreadAndRunParams]
    ) -> RunStream:
        """`create_and_run`, streamed: the events start with `thread.created`."""
        request = thread_and_run_request(assistant_id, params)
        return self._stream(self._stub.CreateThreadAndRunStream, request, RunState())

    def retrieve(self, run_id: str, *, thread_id: str) -> R.Run:
        request = R.GetRunRequest(thread_id=thread_id, run_id=run_id)
        return self._t.unary(self._stub.GetRun, request, R.Run, idempotent=True)

    def list(self, thread_id: str, **params: Unpack[ListParams]) -> SyncCursorPage[R.Run]:
        request = list_request(R.ListRunsRequest(thread_id=thread_id), params)
        return self._t.paginate(self._stub.ListRuns, request, R.ListRunsResponse)

    def update(
        self, run_id: str, *, thread_id: str, metadata: Mapping[str, str] | None = None
    ) -> R.Run:
        request = _update_request(thread_id, run_id, metadata)
        return self._t.unary(self._stub.UpdateRun, request, R.Run, idempotent=False)

    def cancel(self, run_id: str, *, thread_id: str) -> R.Run:
        request = R.CancelRunRequest(thread_id=thread_id, run_id=run_id)
        return self._t.unary(self._stub.CancelRun, request, R.Run, idempotent=False)

    def submit_tool_outputs(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[ToolOutputParam]
    ) -> R.Run:
        request = _submit_request(thread_id, run_id, tool_outputs)
        return self._t.unary(self._stub.SubmitToolOutputs, request, R.Run, idempotent=False)

    def submit_tool_outputs_stream(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[ToolOutputParam]
    ) -> RunStream:
        """Answer every pending tool call and stream the run on."""
        request = _submit_request(thread_id, run_id, tool_outputs)
        state = RunState(thread_id=thread_id, run_id=run_id)
        return self._stream(self._stub.SubmitToolOutputsStream, request, state)

    def watch(self, run_id: str, *, thread_id: str, after_sequence: int = 0) -> RunStream:
        """Follow a run from any process: its events after `after_sequence`, to its end."""
        request = R.WatchRunRequest(
            thread_id=thread_id, run_id=run_id, after_sequence=after_sequence
        )
        state = RunState(thread_id=thread_id, run_id=run_id, after_sequence=after_sequence)
        return self._stream(self._stub.WatchRun, request, state, until="run", positioned=True)

    def stream_with_tools(
        self,
        thread_id: str,
        assistant_id: str,
        *,
        tools: ToolsParam,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        on_tool_error: OnToolError = "report",
        **params: Unpack[ToolRunParams],
    ) -> ToolRunStream:
        """Like `run_with_tools`, as a stream of every event of the run."""

        def submit(state: RunState, outputs: list[R.ToolOutput]) -> RunStream:
            thread, run = _ids(state)
            request = _submit_request(thread, run, outputs)
            return self._stream(self._stub.SubmitToolOutputsStream, request, state)

        def cancel(state: RunState) -> R.Run:
            thread, run = _ids(state)
            return self.cancel(run, thread_id=thread)

        request = create_run_request(thread_id, assistant_id, params)
        return ToolRunStream(
            lambda state: self._stream(self._stub.CreateRunStream, request, state),
            submit,
            cancel,
            resolve_tools(tools),
            tool_timeout=tool_timeout,
            on_tool_error=on_tool_error,
            state=RunState(thread_id=thread_id),
        )

    def run_with_tools(
        self,
        thread_id: str,
        assistant_id: str,
        *,
        tools: ToolsParam,
        on_event: Callable[[R.RunEvent], object] | None = None,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        on_tool_error: OnToolError = "report",
        **params: Unpack[ToolRunParams],
    ) -> ToolRunResult:
        """Run the assistant, answering its tool calls with `tools`, until the run ends.

        Each `requires_action` calls the named functions concurrently with the model's
        arguments and submits every result at once. A failing call (raised, timed out after
        `tool_timeout` or the tool's own timeout, unknown name, bad arguments, result not
        JSON-encodable) answers with an error the model can read; `on_tool_error="raise"`
        cancels the run and raises `ToolCallError` instead. `on_event` sees every event.
        """
        with self.stream_with_tools(
            thread_id,
            assistant_id,
            tools=tools,
            tool_timeout=tool_timeout,
            on_tool_error=on_tool_error,
            **params,
        ) as stream:
            for event in stream:
                if on_event is not None:
                    on_event(event)
            return stream.result()


class AsyncSteps:
    def __init__(self, transport: AsyncTransport, stub: Any) -> None:
        self._t = transport
        self._stub = stub

    async def retrieve(
        self, step_id: str, *, thread_id: str, run_id: str, include: Iterable[str] = ()
    ) -> R.RunStep:
        request = R.GetRunStepRequest(
            thread_id=thread_id, run_id=run_id, step_id=step_id, include=include
        )
        return await self._t.unary(self._stub.GetRunStep, request, R.RunStep, idempotent=True)

    def list(
        self, run_id: str, *, thread_id: str, **params: Unpack[StepListParams]
    ) -> AsyncPaginator[R.RunStep]:
        request = list_request(R.ListRunStepsRequest(thread_id=thread_id, run_id=run_id), params)
        return self._t.paginate(self._stub.ListRunSteps, request, R.ListRunStepsResponse)


class AsyncRuns:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub: Any = run_pb2_grpc.RunServiceStub(transport.channel)
        self.steps = AsyncSteps(transport, self._stub)

    def _stream(
        self,
        method: Any,
        request: Any,
        state: RunState,
        *,
        until: Until = "segment",
        positioned: bool = False,
    ) -> AsyncRunStream:
        return AsyncRunStream(
            self._t,
            self._stub,
            lambda: self._t.stream(method, request),
            state=state,
            until=until,
            positioned=positioned,
        )

    async def create(
        self, thread_id: str, assistant_id: str, **params: Unpack[RunCreateParams]
    ) -> R.Run:
        request = create_run_request(thread_id, assistant_id, params)
        return await self._t.unary(self._stub.CreateRun, request, R.Run, idempotent=False)

    def stream(
        self, thread_id: str, assistant_id: str, **params: Unpack[RunCreateParams]
    ) -> AsyncRunStream:
        request = create_run_request(thread_id, assistant_id, params)
        return self._stream(self._stub.CreateRunStream, request, RunState(thread_id=thread_id))

    async def create_and_run(
        self, assistant_id: str, **params: Unpack[ThreadAndRunParams]
    ) -> R.Run:
        request = thread_and_run_request(assistant_id, params)
        return await self._t.unary(self._stub.CreateThreadAndRun, request, R.Run, idempotent=False)

    def create_and_stream(
        self, assistant_id: str, **params: Unpack[ThreadAndRunParams]
    ) -> AsyncRunStream:
        request = thread_and_run_request(assistant_id, params)
        return self._stream(self._stub.CreateThreadAndRunStream, request, RunState())

    async def retrieve(self, run_id: str, *, thread_id: str) -> R.Run:
        request = R.GetRunRequest(thread_id=thread_id, run_id=run_id)
        return await self._t.unary(self._stub.GetRun, request, R.Run, idempotent=True)

    def list(self, thread_id: str, **params: Unpack[ListParams]) -> AsyncPaginator[R.Run]:
        request = list_request(R.ListRunsRequest(thread_id=thread_id), params)
        return self._t.paginate(self._stub.ListRuns, request, R.ListRunsResponse)

    async def update(
        self, run_id: str, *, thread_id: str, metadata: Mapping[str, str] | None = None
    ) -> R.Run:
        request = _update_request(thread_id, run_id, metadata)
        return await self._t.unary(self._stub.UpdateRun, request, R.Run, idempotent=False)

    async def cancel(self, run_id: str, *, thread_id: str) -> R.Run:
        request = R.CancelRunRequest(thread_id=thread_id, run_id=run_id)
        return await self._t.unary(self._stub.CancelRun, request, R.Run, idempotent=False)

    async def submit_tool_outputs(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[ToolOutputParam]
    ) -> R.Run:
        request = _submit_request(thread_id, run_id, tool_outputs)
        return await self._t.unary(self._stub.SubmitToolOutputs, request, R.Run, idempotent=False)

    def submit_tool_outputs_stream(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[ToolOutputParam]
    ) -> AsyncRunStream:
        request = _submit_request(thread_id, run_id, tool_outputs)
        state = RunState(thread_id=thread_id, run_id=run_id)
        return self._stream(self._stub.SubmitToolOutputsStream, request, state)

    def watch(self, run_id: str, *, thread_id: str, after_sequence: int = 0) -> AsyncRunStream:
        request = R.WatchRunRequest(
            thread_id=thread_id, run_id=run_id, after_sequence=after_sequence
        )
        state = RunState(thread_id=thread_id, run_id=run_id, after_sequence=after_sequence)
        return self._stream(self._stub.WatchRun, request, state, until="run", positioned=True)

    def stream_with_tools(
        self,
        thread_id: str,
        assistant_id: str,
        *,
        tools: ToolsParam,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        on_tool_error: OnToolError = "report",
        **params: Unpack[ToolRunParams],
    ) -> AsyncToolRunStream:
        def submit(state: RunState, outputs: list[R.ToolOutput]) -> AsyncRunStream:
            thread, run = _ids(state)
            request = _submit_request(thread, run, outputs)
            return self._stream(self._stub.SubmitToolOutputsStream, request, state)

        async def cancel(state: RunState) -> R.Run:
            thread, run = _ids(state)
            return await self.cancel(run, thread_id=thread)

        request = create_run_request(thread_id, assistant_id, params)
        return AsyncToolRunStream(
            lambda state: self._stream(self._stub.CreateRunStream, request, state),
            submit,
            cancel,
            resolve_tools(tools),
            tool_timeout=tool_timeout,
            on_tool_error=on_tool_error,
            state=RunState(thread_id=thread_id),
        )

    async def run_with_tools(
        self,
        thread_id: str,
        assistant_id: str,
        *,
        tools: ToolsParam,
        on_event: Callable[[R.RunEvent], object] | None = None,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        on_tool_error: OnToolError = "report",
        **params: Unpack[ToolRunParams],
    ) -> ToolRunResult:
        """The async twin of `Runs.run_with_tools`; `on_event` may be a coroutine function."""
        async with self.stream_with_tools(
            thread_id,
            assistant_id,
            tools=tools,
            tool_timeout=tool_timeout,
            on_tool_error=on_tool_error,
            **params,
        ) as stream:
            async for event in stream:
                if on_event is not None:
                    outcome = on_event(event)
                    if inspect.isawaitable(outcome):
                        await outcome
            return await stream.result()

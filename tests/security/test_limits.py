"""Each limit: hit it (a clear error, nothing written), then recover (the next call within the
limit succeeds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import assistant_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.fake_model import FakeModelServer
from tests.conftest import Stubs, start_server
from tests.integration.helpers import violated_fields
from tests.integration.runs_helpers import TIME, WEATHER, collect, make_assistant, make_thread
from tests.security.conftest import Secured, make_keys
from tests.security.helpers import expect_code, stubs

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
M, R = message_pb2, run_pb2

LIMITS: dict[str, Any] = {
    "max_request_bytes": 64 * 1024,
    "max_message_chars": 100,
    "max_content_parts": 3,
    "max_tool_output_bytes": 100,
    "max_tool_outputs_bytes": 150,
    "max_streams_per_key": 2,
}


async def _server(
    database_url: str, fake_model: FakeModelServer, **settings: Any
) -> AsyncIterator[Secured]:
    fake_model.reset()
    clock = ManualClock()
    keys = make_keys(database_url, int(clock.now()))
    server = await start_server(database_url, clock, fake_model, **settings)
    secured = Secured(server, clock, keys, database_url)
    try:
        yield secured
    finally:
        for opened in secured.opened:
            await opened.channel.close()
        await server.stop(0)


@pytest.fixture
async def limited(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[Secured]:
    async for secured in _server(database_url, fake_model, **LIMITS):
        yield secured


def _message(thread_id: str, *texts: str) -> M.CreateMessageRequest:
    return M.CreateMessageRequest(
        thread_id=thread_id,
        role=M.MESSAGE_ROLE_USER,
        content=[M.MessageContentInput(text=t) for t in texts],
    )


async def _messages(s: Stubs, thread_id: str) -> list[str]:
    page = await s.messages.ListMessages(M.ListMessagesRequest(thread_id=thread_id))
    return [part.text.value for m in page.data for part in m.content]


async def test_request_size(limited: Secured) -> None:
    s = limited.stubs(limited.keys.alpha)
    too_big = assistant_pb2.CreateAssistantRequest(model="m", instructions="x" * 70_000)
    error = await expect_code(s.assistants.CreateAssistant(too_big), EXHAUSTED)
    assert "larger than max" in (error.details() or "")
    assert (
        list((await s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())).data) == []
    )
    fits = assistant_pb2.CreateAssistantRequest(model="m", instructions="x" * 60_000)
    await s.assistants.CreateAssistant(fits)


async def test_message_content_length(limited: Secured) -> None:
    s = limited.stubs(limited.keys.alpha)
    thread = await s.threads.CreateThread(thread_pb2.CreateThreadRequest())
    for texts in (["x" * 101], ["x" * 60, "y" * 41]):  # one part, or all parts together
        error = await expect_code(s.messages.CreateMessage(_message(thread.id, *texts)), INVALID)
        assert violated_fields(error) == ["content"]
        assert "at most 100 characters" in (error.details() or "")
    # The same rule wherever a message is created: new threads and additional messages.
    error = await expect_code(
        s.threads.CreateThread(
            thread_pb2.CreateThreadRequest(
                messages=[
                    M.MessageInput(
                        role=M.MESSAGE_ROLE_USER, content=[M.MessageContentInput(text="x" * 101)]
                    )
                ]
            )
        ),
        INVALID,
    )
    assert violated_fields(error) == ["messages[0].content"]
    assert await _messages(s, thread.id) == []
    await s.messages.CreateMessage(_message(thread.id, "x" * 60, "y" * 40))
    assert sorted(await _messages(s, thread.id)) == ["x" * 60, "y" * 40]


async def test_number_of_content_parts(limited: Secured) -> None:
    s = limited.stubs(limited.keys.alpha)
    thread = await s.threads.CreateThread(thread_pb2.CreateThreadRequest())
    error = await expect_code(s.messages.CreateMessage(_message(thread.id, *"abcd")), INVALID)
    assert violated_fields(error) == ["content"]
    assert "at most 3 parts" in (error.details() or "")
    assert await _messages(s, thread.id) == []
    await s.messages.CreateMessage(_message(thread.id, *"abc"))


async def _paused_run(s: Stubs) -> tuple[str, str, list[str]]:
    """A run waiting for the outputs of two parallel calls: thread, run and call ids."""
    assistant = await make_assistant(s, tools=[WEATHER, TIME])
    thread = await make_thread(s, "/tool get_weather {}\n/tool get_time {}")
    events = await collect(
        s.runs.CreateRunStream(R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id))
    )
    run = events[-2].run
    assert run.status == R.RUN_STATUS_REQUIRES_ACTION
    calls = [c.id for c in run.required_action.submit_tool_outputs.tool_calls]
    assert len(calls) == 2
    return thread.id, run.id, calls


async def test_tool_output_sizes(limited: Secured) -> None:
    s = limited.stubs(limited.keys.alpha)
    thread_id, run_id, calls = await _paused_run(s)

    def submit(*outputs: str) -> Any:
        return s.runs.SubmitToolOutputs(
            R.SubmitToolOutputsRequest(
                thread_id=thread_id,
                run_id=run_id,
                tool_outputs=[
                    R.ToolOutput(tool_call_id=c, output=o)
                    for c, o in zip(calls, outputs, strict=True)
                ],
            )
        )

    error = await expect_code(submit("é" * 51, "ok"), INVALID)  # 102 bytes in 51 characters
    assert violated_fields(error) == ["tool_outputs[0].output"]
    error = await expect_code(submit("a" * 80, "b" * 80), INVALID)
    assert violated_fields(error) == ["tool_outputs"]
    run = await s.runs.GetRun(R.GetRunRequest(thread_id=thread_id, run_id=run_id))
    assert run.status == R.RUN_STATUS_REQUIRES_ACTION  # nothing was taken
    run = await submit("a" * 100, "b" * 50)
    assert run.status == R.RUN_STATUS_QUEUED


async def test_open_streams_per_key(limited: Secured) -> None:
    alpha = limited.stubs(limited.keys.alpha)
    thread_id, run_id, _ = await _paused_run(alpha)
    watch = R.WatchRunRequest(thread_id=thread_id, run_id=run_id)
    streams = [alpha.runs.WatchRun(watch) for _ in range(2)]
    for stream in streams:
        await stream.read()  # the server holds the stream: its slot is taken
    error = await expect_code(collect(alpha.runs.WatchRun(watch)), EXHAUSTED)
    assert "Too many open streams" in (error.details() or "")
    # Another key has its own slots; unary calls are not streams.
    beta = limited.stubs(limited.keys.beta)
    beta_thread, beta_run, _ = await _paused_run(beta)
    await beta.runs.WatchRun(R.WatchRunRequest(thread_id=beta_thread, run_id=beta_run)).read()
    await alpha.runs.GetRun(R.GetRunRequest(thread_id=thread_id, run_id=run_id))
    # Closing one frees its slot.
    streams[0].cancel()
    for _ in range(100):
        third = alpha.runs.WatchRun(watch)
        try:
            await third.read()
            break
        except grpc.aio.AioRpcError as refused:
            assert refused.code() == EXHAUSTED
            await asyncio.sleep(0.02)
    else:
        raise AssertionError("the slot of the closed stream was never freed")
    third.cancel()
    streams[1].cancel()


@pytest.fixture
async def rate_limited(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[Secured]:
    async for secured in _server(
        database_url, fake_model, rate_limit_per_second=1.0, rate_limit_burst=3
    ):
        yield secured


async def test_request_rate_per_key(rate_limited: Secured) -> None:
    alpha = rate_limited.stubs(rate_limited.keys.alpha)

    def create() -> Any:
        return alpha.assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="m"))

    for _ in range(3):  # the burst
        await create()
    error = await expect_code(create(), EXHAUSTED)
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    info = error_details_pb2.RetryInfo()
    retry[0].Unpack(info)
    assert 0.9 <= info.retry_delay.ToTimedelta().total_seconds() <= 1.0
    # Streams count as calls too, and the other key is not affected.
    await expect_code(
        collect(alpha.runs.WatchRun(R.WatchRunRequest(thread_id="t", run_id="r"))), EXHAUSTED
    )
    beta = rate_limited.stubs(rate_limited.keys.beta)
    await beta.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
    rate_limited.clock.advance(2.0)  # two calls' worth
    await create()
    listed = await alpha.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
    assert len(listed.data) == 4  # the refused call wrote nothing


async def test_no_limits_counted_without_a_key(
    database_url: str, fake_model: FakeModelServer
) -> None:
    """Without keys (loopback only) nothing is counted per key: there is no key."""
    server = await start_server(
        database_url, ManualClock(), fake_model, rate_limit_per_second=1.0, rate_limit_burst=1
    )
    try:
        s = stubs(f"127.0.0.1:{server.port}")
        for _ in range(3):
            await s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
        await s.channel.close()
    finally:
        await server.stop(0)

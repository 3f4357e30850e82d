"""A server-side call's input streams while the model writes it (issue 16 §1): a turn whose first
call is a server-side tool's goes live (engine/accumulator.py). The fake model holds its last
call fragment until the test has seen a step delta with the input so far, so each test proves
the delta left before the model finished (no timing involved: it would hang otherwise, and the
timeout fails it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2
from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from tests.conftest import RunningServer, serving
from tests.integration.echo_tools import EchoCode, EchoSearch
from tests.integration.event_checks import check_run_log
from tests.integration.runs_helpers import (
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    thread_messages,
    wait_for_status,
)
from tests.integration.test_sdk_replay import replay

R = run_pb2
CODE = common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
SOURCE = "total = 0\nfor i in range(10):\n    total += i\nprint(total)\n"
ARGUMENTS = json.dumps({"code": SOURCE})


@pytest.fixture
def echo() -> EchoCode:
    return EchoCode()


@pytest.fixture
async def tooled(
    database_url: str, fake_model: FakeModelServer, echo: EchoCode
) -> AsyncIterator[RunningServer]:
    registry = ToolRegistry([echo, EchoSearch()])
    async with serving(
        database_url, fake_model, overrides={"tool_registry": registry}, max_tool_rounds=4
    ) as server:
        yield server


def input_of(event: R.RunEvent) -> str:
    """The code_interpreter input fragments a step delta carries."""
    if event.event != "thread.run.step.delta":
        return ""
    calls = event.run_step_delta.delta.step_details.tool_calls.tool_calls
    return "".join(c.code_interpreter.input for c in calls if c.HasField("code_interpreter"))


async def stream_until_input(
    stream: Any, hold: asyncio.Event, *, release: bool = True, partial: bool = True
) -> list[R.RunEvent]:
    """Read `stream`; once a step delta shows some of the call's input, check it is only a part
    of it (`partial`: the model holds the call's last fragment), then release the model (or
    not) and read on."""
    events: list[R.RunEvent] = []
    async with asyncio.timeout(30):
        async for event in stream:
            events.append(event)
            if not hold.is_set() and input_of(event):
                shown = "".join(input_of(e) for e in events)
                assert shown and ARGUMENTS.startswith(shown)
                assert shown != ARGUMENTS or not partial
                if not release:
                    return events
                hold.set()
    assert hold.is_set(), "no input fragment was streamed before the model's last chunk"
    return events


def step_events(events: list[R.RunEvent], step_id: str) -> list[str]:
    out = []
    for event in events:
        if event.WhichOneof("data") == "run_step" and event.run_step.id == step_id:
            out.append(event.event)
        elif event.event == "thread.run.step.delta" and event.run_step_delta.id == step_id:
            out.append(event.event)
    return out


async def start(server: RunningServer, *replies: Any) -> tuple[R.Run, Any]:
    server.model.push(*replies)
    assistant = await make_assistant(server.stubs, tools=[CODE, WEATHER])
    thread = await make_thread(server.stubs, "sum the first ten numbers")
    stream = server.stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    return thread, stream


async def test_a_python_call_input_streams_before_the_model_has_finished(
    tooled: RunningServer,
) -> None:
    hold = asyncio.Event()
    thread, stream = await start(
        tooled,
        ToolCallsReply([("python", ARGUMENTS)], fragments=12, hold=hold),
        TextReply("It is 45.", chunks=3),
    )
    events = await stream_until_input(stream, hold)
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    steps = [e.run_step for e in events if e.event == "thread.run.step.created"]
    assert [s.type for s in steps] == [R.RUN_STEP_TYPE_TOOL_CALLS, R.RUN_STEP_TYPE_MESSAGE_CREATION]
    tool_step = steps[0]
    shown = step_events(events, tool_step.id)
    assert shown[:2] == ["thread.run.step.created", "thread.run.step.in_progress"]
    assert set(shown[2:-1]) == {"thread.run.step.delta"}
    assert shown[-1] == "thread.run.step.completed"
    # The first delta is the call's opening, as OpenAI's: id, type, empty input and outputs.
    first = next(e for e in events if e.event == "thread.run.step.delta")
    (opening,) = first.run_step_delta.delta.step_details.tool_calls.tool_calls
    opened = render(opening)
    assert opened["type"] == "code_interpreter" and opened["id"].startswith("call_")
    assert opened["code_interpreter"] == {"input": "", "outputs": []}
    assert "".join(input_of(e) for e in events) == ARGUMENTS

    # The SDK rebuilds the step as stored, and the answer.
    message, rebuilt = replay(events)
    assert message["content"][0]["text"]["value"] == "It is 45."  # type: ignore[index]
    stored = await tooled.stubs.runs.GetRunStep(
        R.GetRunStepRequest(thread_id=thread.id, run_id=events[0].run.id, step_id=tool_step.id)
    )
    (call,) = render(stored)["step_details"]["tool_calls"]
    assert call["code_interpreter"] == {
        "input": ARGUMENTS,
        "outputs": [{"type": "logs", "logs": "echo: " + ARGUMENTS}],
    }
    (again,) = rebuilt[tool_step.id]["step_details"]["tool_calls"]  # type: ignore[index]
    assert again["code_interpreter"]["input"] == ARGUMENTS
    assert stored.status == R.RUN_STEP_STATUS_COMPLETED and stored.usage.total_tokens > 0
    # The model got its call back with the output, as when the call is held.
    tool_messages = [
        m["content"] for m in tooled.model.requests[1]["messages"] if m["role"] == "tool"
    ]
    assert tool_messages == [f"echo {ARGUMENTS}"]


async def test_text_before_a_live_call_is_a_message_completed_before_the_step(
    tooled: RunningServer,
) -> None:
    hold = asyncio.Event()
    thread, stream = await start(
        tooled,
        ToolCallsReply(
            [("python", ARGUMENTS)], fragments=12, text="Let me add them up.", hold=hold
        ),
        TextReply("It is 45.", chunks=3),
    )
    events = await stream_until_input(stream, hold)
    check_run_log(events)
    steps = [e.run_step for e in events if e.event == "thread.run.step.created"]
    assert [s.type for s in steps] == [
        R.RUN_STEP_TYPE_MESSAGE_CREATION,
        R.RUN_STEP_TYPE_TOOL_CALLS,
        R.RUN_STEP_TYPE_MESSAGE_CREATION,
    ]
    at = names(events).index
    first_completed = at("thread.message.completed")
    assert first_completed < at("thread.run.step.created", first_completed)
    completed = events[first_completed].message
    assert completed.content[0].text.value == "Let me add them up."
    stored = await thread_messages(tooled.stubs, thread.id, run_id=events[0].run.id)
    assert [m.content[0].text.value for m in stored] == ["Let me add them up.", "It is 45."]
    assert {m.status for m in stored} == {message_pb2.MESSAGE_STATUS_COMPLETED}
    message, rebuilt = replay(events)
    assert message["content"][0]["text"]["value"] == "It is 45."  # type: ignore[index]
    (again,) = rebuilt[steps[1].id]["step_details"]["tool_calls"]  # type: ignore[index]
    assert again["code_interpreter"]["input"] == ARGUMENTS


async def test_text_after_a_live_call_opens_the_next_message(tooled: RunningServer) -> None:
    hold = asyncio.Event()
    thread, stream = await start(
        tooled,
        ToolCallsReply(
            [("python", ARGUMENTS)], fragments=12, text_after="Running it now.", hold=hold
        ),
        TextReply("It is 45.", chunks=3),
    )
    events = await stream_until_input(stream, hold)
    check_run_log(events)
    steps = [e.run_step for e in events if e.event == "thread.run.step.created"]
    assert [s.type for s in steps] == [
        R.RUN_STEP_TYPE_TOOL_CALLS,
        R.RUN_STEP_TYPE_MESSAGE_CREATION,
    ]
    # Nothing of the text was lost: it leads the message written after the step.
    message, _ = replay(events)
    texts = [part["text"]["value"] for part in message["content"]]  # type: ignore[attr-defined]
    assert texts == ["Running it now.", "It is 45."]
    (stored,) = await thread_messages(tooled.stubs, thread.id, run_id=events[0].run.id)
    assert [p.text.value for p in stored.content] == ["Running it now.", "It is 45."]


async def test_a_live_turn_with_a_function_call_waits_then_writes_its_text(
    tooled: RunningServer,
) -> None:
    hold = asyncio.Event()
    thread, stream = await start(
        tooled,
        ToolCallsReply(
            [("python", ARGUMENTS), ("get_weather", '{"city": "Oslo"}')],
            fragments=12,
            interleave=False,
            text_after="Both are on their way.",
            hold=hold,
        ),
        TextReply("Done.", chunks=2),
    )
    # The model holds its last fragment, the function's: the python call's input is whole.
    first = await stream_until_input(stream, hold, partial=False)
    check_run_log(first, whole=False)
    assert names(first)[-2:] == ["thread.run.requires_action", "done"]
    paused = first[-2].run
    (required,) = paused.required_action.submit_tool_outputs.tool_calls
    assert required.function.arguments == '{"city": "Oslo"}'
    # The function call streamed in the live step too, and the SDK rebuilds it.
    _, rebuilt = replay(first)
    (step,) = rebuilt.values()
    python, weather = step["step_details"]["tool_calls"]  # type: ignore[index]
    assert python["code_interpreter"]["input"] == ARGUMENTS
    assert weather["function"]["arguments"] == '{"city": "Oslo"}'
    rest = await collect(
        tooled.stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=paused.id,
                tool_outputs=[R.ToolOutput(tool_call_id=required.id, output="sunny")],
            )
        )
    )
    assert names(rest)[0] == "thread.run.step.completed"
    assert names(rest)[-2:] == ["thread.run.completed", "done"]
    whole = await collect(
        tooled.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=paused.id))
    )
    check_run_log(whole)
    (stored,) = await thread_messages(tooled.stubs, thread.id, run_id=paused.id)
    assert [p.text.value for p in stored.content] == ["Both are on their way.", "Done."]


async def test_cancel_while_a_live_call_streams_cancels_its_step(tooled: RunningServer) -> None:
    hold = asyncio.Event()  # never set: the model stays on its last fragment
    thread, stream = await start(
        tooled, ToolCallsReply([("python", ARGUMENTS)], fragments=12, hold=hold)
    )
    seen = await stream_until_input(stream, hold, release=False)
    run = seen[0].run
    await tooled.stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run.id))
    ended = await wait_for_status(tooled.stubs, thread.id, run.id, R.RUN_STATUS_CANCELLED)
    assert ended.HasField("cancelled_at")
    events = await collect(
        tooled.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=run.id))
    )
    assert names(events)[-4:] == [
        "thread.run.cancelling",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    check_run_log(events)
    listed = await tooled.stubs.runs.ListRunSteps(
        R.ListRunStepsRequest(thread_id=thread.id, run_id=run.id)
    )
    (step,) = listed.data
    assert step.status == R.RUN_STEP_STATUS_CANCELLED
    # The step keeps what the stream showed of the input.
    (call,) = render(step)["step_details"]["tool_calls"]
    assert ARGUMENTS.startswith(call["code_interpreter"]["input"])
    assert call["code_interpreter"]["input"]


async def test_expiry_while_a_live_call_streams_expires_its_step(tooled: RunningServer) -> None:
    hold = asyncio.Event()  # never set
    thread, stream = await start(
        tooled, ToolCallsReply([("python", ARGUMENTS)], fragments=12, hold=hold)
    )
    seen = await stream_until_input(stream, hold, release=False)
    run = seen[0].run
    tooled.clock.advance(601)
    await wait_for_status(tooled.stubs, thread.id, run.id, R.RUN_STATUS_EXPIRED)
    events = await collect(
        tooled.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=run.id))
    )
    assert names(events)[-3:] == ["thread.run.step.expired", "thread.run.expired", "done"]
    check_run_log(events)


async def test_a_model_failing_mid_call_fails_the_live_step(tooled: RunningServer) -> None:
    hold = asyncio.Event()
    thread, stream = await start(
        tooled,
        ToolCallsReply(
            [("python", ARGUMENTS)], fragments=12, text="Computing.", hold=hold, break_at_hold=True
        ),
    )
    events = await stream_until_input(stream, hold)
    check_run_log(events)
    assert names(events)[-3:] == ["thread.run.step.failed", "thread.run.failed", "done"]
    failed = events[-2].run
    assert failed.status == R.RUN_STATUS_FAILED and failed.last_error.message
    listed = await tooled.stubs.runs.ListRunSteps(
        R.ListRunStepsRequest(
            thread_id=thread.id, run_id=failed.id, order=common_pb2.LIST_ORDER_ASC
        )
    )
    message_step, tool_step = listed.data
    assert message_step.status == R.RUN_STEP_STATUS_COMPLETED
    assert tool_step.status == R.RUN_STEP_STATUS_FAILED and tool_step.last_error.message
    (call,) = render(tool_step)["step_details"]["tool_calls"]
    assert call["code_interpreter"]["input"] == "".join(input_of(e) for e in events)
    (stored,) = await thread_messages(tooled.stubs, thread.id, run_id=failed.id)
    assert stored.content[0].text.value == "Computing."
    assert stored.status == message_pb2.MESSAGE_STATUS_COMPLETED

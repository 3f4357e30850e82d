"""The tool runner against the real server and the fake model: parallel sync and async tools,
several rounds, and every way a tool call can fail, reported to the model or raised."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from assistants_grpc_client import (
    AsyncClient,
    Client,
    FunctionTool,
    ToolCallError,
    function_tool,
)
from assistants_grpc_client.v1 import run_pb2

from assistants_grpc.fake_model import ToolCallsReply
from tests.client.conftest import in_thread
from tests.conftest import RunningServer

R = run_pb2


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def make_tools(
    both_started: threading.Event,
) -> tuple[FunctionTool[..., dict[str, object]], FunctionTool[..., Any]]:
    @function_tool
    def get_weather(city: str, unit: Unit = Unit.CELSIUS) -> dict[str, object]:
        """The weather in a city."""
        if city == "Paris":
            # Only returns if get_time runs at the same time: the calls are concurrent.
            assert both_started.wait(5), "get_time never started"
        return {"city": city, "temperature": 70 if unit is Unit.FAHRENHEIT else 21}

    @function_tool
    async def get_time(tz: str) -> str:
        """The time in a time zone."""
        both_started.set()
        await asyncio.sleep(0)
        return f"12:00 {tz}"

    return get_weather, get_time


ROUNDS = (
    ToolCallsReply([("get_weather", '{"city": "Paris"}'), ("get_time", '{"tz": "Europe/Paris"}')]),
    ToolCallsReply([("get_weather", '{"city": "Lyon", "unit": "fahrenheit"}')]),
)


def tool_results(text: str) -> list[str]:
    """The outputs the fake model echoes back: "Tool results: a; b"."""
    assert text.startswith("Tool results: "), text
    return text.removeprefix("Tool results: ").split("; ")


async def test_two_parallel_tools_two_rounds(running: RunningServer, client: Client) -> None:
    running.model.push(*ROUNDS)
    get_weather, get_time = make_tools(threading.Event())

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o", tools=[get_weather, get_time])
        thread = client.threads.create(messages=[{"role": "user", "content": "weather?"}])
        events: list[R.RunEvent] = []
        result = client.runs.run_with_tools(
            thread.id,
            assistant.id,
            tools={"get_weather": get_weather, "get_time": get_time},
            on_event=events.append,
        )
        assert result.run.status == R.RUN_STATUS_COMPLETED
        assert tool_results(result.text) == ['{"city": "Lyon", "temperature": 70}']
        names = [e.event for e in events]
        assert names.count("thread.run.requires_action") == 2
        assert names[-2:] == ["thread.run.completed", "done"]
        # Three segments, one event log: every event once, in order.
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))

        steps = list(client.runs.steps.list(result.run.id, thread_id=thread.id, order="asc"))
        outputs = {
            call.function.name + call.function.arguments: call.function.output
            for step in steps
            if step.step_details.HasField("tool_calls")
            for call in step.step_details.tool_calls.tool_calls
        }
        assert outputs == {
            'get_weather{"city": "Paris"}': '{"city": "Paris", "temperature": 21}',
            'get_time{"tz": "Europe/Paris"}': "12:00 Europe/Paris",
            'get_weather{"city": "Lyon", "unit": "fahrenheit"}': (
                '{"city": "Lyon", "temperature": 70}'
            ),
        }

    await in_thread(flow)


def failing_tools(release: threading.Event) -> list[Callable[..., Any]]:
    def boom() -> str:
        raise ValueError("the sensor is broken")

    @function_tool(timeout=0.2)
    def slow() -> str:
        release.wait(10)
        return "too late"

    def unencodable() -> object:
        return object()

    def count(n: int) -> int:
        return n + 1

    return [boom, slow, unencodable, count]


FAILING_CALLS = ToolCallsReply(
    [
        ("boom", "{}"),
        ("missing_tool", "{}"),
        ("slow", "{}"),
        ("unencodable", "{}"),
        ("count", "{not json"),
        ("count", '{"m": 1}'),
        ("count", '{"n": 1}'),
    ]
)
EXPECTED_ERRORS = [
    "boom raised ValueError: the sensor is broken",
    "Unknown tool 'missing_tool'. Available tools: boom, count, slow, unencodable.",
    "slow timed out after 0.2 s",
    "unencodable returned a value that cannot be encoded as JSON",
    "Invalid arguments for count: Expecting property name",
    "Invalid arguments for count: missing a required argument: 'n'",
]


def check_failures(text: str) -> None:
    *errors, good = tool_results(text)
    assert good == "2"
    assert len(errors) == len(EXPECTED_ERRORS)
    for output, expected in zip(errors, EXPECTED_ERRORS, strict=True):
        assert json.loads(output)["error"].startswith(expected), output


async def test_failing_tools_answer_with_errors(running: RunningServer, client: Client) -> None:
    running.model.push(FAILING_CALLS)
    release = threading.Event()

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        thread = client.threads.create(messages=[{"role": "user", "content": "go"}])
        with client.runs.stream_with_tools(
            thread.id, assistant.id, tools=failing_tools(release)
        ) as stream:
            names = [event.event for event in stream]
        assert names.count("thread.run.requires_action") == 1
        result = stream.result()
        assert result.run.status == R.RUN_STATUS_COMPLETED
        check_failures(result.text)

    try:
        await in_thread(flow)
    finally:
        release.set()


async def test_raise_instead_cancels_the_run(running: RunningServer, client: Client) -> None:
    running.model.push(ToolCallsReply([("count", '{"n": 1}'), ("boom", "{}")]))

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o")
        thread = client.threads.create(messages=[{"role": "user", "content": "go"}])
        with pytest.raises(ToolCallError) as raised:
            client.runs.run_with_tools(
                thread.id,
                assistant.id,
                tools=failing_tools(threading.Event()),
                on_tool_error="raise",
            )
        error = raised.value
        assert (error.kind, error.tool_name) == ("raised", "boom")
        assert isinstance(error.__cause__, ValueError)
        (run,) = client.runs.list(thread.id)
        assert run.status in (R.RUN_STATUS_CANCELLING, R.RUN_STATUS_CANCELLED)

    await in_thread(flow)


async def test_async_tool_runner(running: RunningServer, aclient: AsyncClient) -> None:
    # Pushed replies come before the default one (which echoes the outputs): one run at a time.
    running.model.push(*ROUNDS)
    get_weather, get_time = make_tools(threading.Event())
    assistant = await aclient.assistants.create(model="gpt-4o", tools=[get_weather, get_time])

    thread = await aclient.threads.create(messages=[{"role": "user", "content": "weather?"}])
    seen: list[str] = []

    async def on_event(event: R.RunEvent) -> None:
        seen.append(event.event)

    result = await aclient.runs.run_with_tools(
        thread.id, assistant.id, tools=[get_weather, get_time], on_event=on_event
    )
    assert result.run.status == R.RUN_STATUS_COMPLETED
    assert tool_results(result.text) == ['{"city": "Lyon", "temperature": 70}']
    assert seen.count("thread.run.requires_action") == 2

    running.model.push(FAILING_CALLS)
    release = threading.Event()
    thread = await aclient.threads.create(messages=[{"role": "user", "content": "go"}])
    try:
        stream = aclient.runs.stream_with_tools(
            thread.id, assistant.id, tools=failing_tools(release)
        )
        names = [event.event async for event in stream]
        assert names[-1] == "done"
        check_failures((await stream.result()).text)
    finally:
        release.set()

    @function_tool(timeout=0.1)
    async def hang() -> str:
        await asyncio.sleep(30)
        return "never"

    running.model.push(ToolCallsReply([("hang", "{}")]))
    thread = await aclient.threads.create(messages=[{"role": "user", "content": "go"}])
    with pytest.raises(ToolCallError) as raised:
        await aclient.runs.run_with_tools(
            thread.id, assistant.id, tools=[hang], on_tool_error="raise"
        )
    assert raised.value.kind == "timeout"
    run = (await aclient.runs.list(thread.id)).data[0]
    assert run.status in (R.RUN_STATUS_CANCELLING, R.RUN_STATUS_CANCELLED)

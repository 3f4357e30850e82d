"""Client code as users write it, checked with `mypy --strict` by test_typing.py (never run).

`assert_type` pins what the type checker sees, so an `Any` leaking out of the client fails here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, assert_type

from assistants_grpc_client import (
    AssistantsError,
    AsyncClient,
    AsyncCursorPage,
    AsyncRunStream,
    Client,
    FieldViolation,
    FunctionTool,
    InvalidArgumentError,
    RunStream,
    SyncCursorPage,
    ToolRunResult,
    function_tool,
)
from assistants_grpc_client.v1 import assistant_pb2, file_pb2, message_pb2, run_pb2, thread_pb2


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclass
class Place:
    city: str
    country: str = "FR"


@function_tool
def get_weather(place: Place, unit: Unit = Unit.CELSIUS) -> str:
    """The weather somewhere."""
    return f"{place.city}: 21 {unit.value}"


@function_tool(timeout=5)
async def get_time(tz: Literal["UTC", "CET"] = "UTC") -> str:
    return "12:00"


def blocking(client: Client) -> None:
    tool: FunctionTool[..., str] = get_weather  # the decorator keeps the signature
    assert_type(get_weather(Place("Paris")), str)
    assert_type(tool.name, str)

    assistant = client.assistants.create(
        model="gpt-4o",
        name="Weather",
        tools=[get_weather, {"type": "code_interpreter"}],
        metadata={"team": "ops"},
        response_format="auto",
        temperature=0.2,
    )
    assert_type(assistant, assistant_pb2.Assistant)
    thread = client.threads.create(messages=[{"role": "user", "content": "hi"}])
    assert_type(thread, thread_pb2.Thread)
    message = client.messages.create(thread.id, role="user", content="What's the weather?")
    assert_type(message, message_pb2.Message)

    page = client.messages.list(thread.id, limit=5, order="asc")
    assert_type(page, SyncCursorPage[message_pb2.Message])
    assert_type(page.data, list[message_pb2.Message])
    for item in page:
        assert_type(item, message_pb2.Message)

    stream = client.runs.stream(thread.id, assistant.id, tool_choice="auto")
    assert_type(stream, RunStream)
    for event in stream:
        assert_type(event, run_pb2.RunEvent)
    for text in stream.text_deltas():
        assert_type(text, str)
    assert_type(stream.final_run(), run_pb2.Run)
    assert_type(stream.final_messages(), list[message_pb2.Message])

    result = client.runs.run_with_tools(
        thread.id,
        assistant.id,
        tools=[get_weather, get_time],
        on_event=lambda event: print(event.event),
        tool_timeout=10,
        additional_instructions="Be brief.",
    )
    assert_type(result, ToolRunResult)
    assert_type(result.run, run_pb2.Run)
    assert_type(result.text, str)
    client.runs.run_with_tools(thread.id, assistant.id, tools={"get_weather": get_weather})

    step_page = client.runs.steps.list(result.run.id, thread_id=thread.id)
    assert_type(step_page, SyncCursorPage[run_pb2.RunStep])

    uploaded = client.files.upload(Path("report.pdf"), purpose="assistants")
    assert_type(uploaded, file_pb2.File)
    client.files.upload(
        b"data",
        purpose="user_data",
        filename="d.bin",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert_type(client.files.list(purpose="vision", limit=10), SyncCursorPage[file_pb2.File])
    assert_type(client.files.content(uploaded.id), bytes)
    assert_type(client.files.download(uploaded.id, "copy.pdf"), Path)
    for data in client.files.iter_content(uploaded.id):
        assert_type(data, bytes)
    assert_type(client.files.delete(uploaded.id), file_pb2.DeleteFileResponse)

    try:
        client.assistants.retrieve("asst_x")
    except InvalidArgumentError as error:
        assert_type(error.field_violations, tuple[FieldViolation, ...])
    except AssistantsError as error:
        assert_type(error.message, str)


async def asynchronous(client: AsyncClient) -> None:
    assistant = await client.assistants.create(model="gpt-4o", tools=[get_weather])
    assert_type(assistant, assistant_pb2.Assistant)
    page = await client.assistants.list(limit=2)
    assert_type(page, AsyncCursorPage[assistant_pb2.Assistant])
    async for item in client.assistants.list():
        assert_type(item, assistant_pb2.Assistant)

    stream = client.runs.create_and_stream(
        assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert_type(stream, AsyncRunStream)
    async for event in stream:
        assert_type(event, run_pb2.RunEvent)
    assert_type(await stream.final_run(), run_pb2.Run)

    stored = await client.files.upload(b"x", purpose="assistants", filename="x.txt")
    assert_type(stored, file_pb2.File)
    assert_type(await client.files.content(stored.id), bytes)
    async for piece in client.files.iter_content(stored.id):
        assert_type(piece, bytes)
    async for listed in client.files.list(purpose="assistants"):
        assert_type(listed, file_pb2.File)

    result = await client.runs.run_with_tools(
        "thread_1", assistant.id, tools=[get_weather, get_time], on_tool_error="raise"
    )
    assert_type(result, ToolRunResult)

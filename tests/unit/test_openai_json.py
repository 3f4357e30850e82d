"""The OpenAI JSON rendering of the protos, compared with the shapes CONTRACT.md describes, and fed
through the openai SDK's own models and stream helpers to prove the SDK reads it."""

from __future__ import annotations

import json
import typing
from typing import Any

import httpx2
import openai
import pytest
from assistants_grpc_client.v1 import (
    assistant_pb2,
    common_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    thread_pb2,
)
from google.protobuf import struct_pb2
from google.protobuf.message import Message as ProtoMessage
from openai.lib.streaming._assistants import accumulate_event, accumulate_run_step
from openai.lib.streaming._deltas import accumulate_delta
from openai.types import FileDeleted as SDKFileDeleted
from openai.types import FileObject as SDKFileObject
from openai.types.beta import Assistant as SDKAssistant
from openai.types.beta import AssistantDeleted as SDKAssistantDeleted
from openai.types.beta import Thread as SDKThread
from openai.types.beta import ThreadDeleted as SDKThreadDeleted
from openai.types.beta.assistant_stream_event import AssistantStreamEvent
from openai.types.beta.threads import Message as SDKMessage
from openai.types.beta.threads import MessageDeleted as SDKMessageDeleted
from openai.types.beta.threads import Run as SDKRun
from openai.types.beta.threads import TextContentBlock
from openai.types.beta.threads.runs import RunStep as SDKRunStep
from pydantic import BaseModel

import assistants_grpc.contract as contract
from assistants_grpc.contract import (
    OpenAIJSONError,
    enum_name,
    enum_value,
    parse,
    render,
    render_event,
    render_value,
    to_sse,
)

T = 1_700_000_000

# --- builders ----------------------------------------------------------------------------------


def weather_schema() -> struct_pb2.Struct:
    schema = struct_pb2.Struct()
    schema.update(
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
            "additionalProperties": False,
        }
    )
    return schema


def function_tool() -> common_pb2.Tool:
    return common_pb2.Tool(
        function=common_pb2.FunctionDefinition(
            name="get_weather", description="Weather of a city", parameters=weather_schema()
        )
    )


FUNCTION_TOOL_JSON = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": None,
    },
}


def assistant() -> assistant_pb2.Assistant:
    return assistant_pb2.Assistant(
        id="asst_abc",
        created_at=T,
        model="gpt-4o",
        instructions="You are helpful.",
        tools=[
            function_tool(),
            common_pb2.Tool(file_search=common_pb2.FileSearchSettings(max_num_results=5)),
            common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool()),
        ],
        metadata={"team": "x"},
        temperature=0.7,
        response_format=common_pb2.ResponseFormat(
            json_schema=common_pb2.JsonSchemaFormat(name="weather", schema=weather_schema())
        ),
    )


def thread() -> thread_pb2.Thread:
    return thread_pb2.Thread(
        id="thread_abc",
        created_at=T,
        tool_resources=common_pb2.ToolResources(
            code_interpreter=common_pb2.CodeInterpreterResources(file_ids=["file-1"])
        ),
        metadata={"user": "42"},
    )


def user_message(message_id: str = "msg_abc", text: str = "Hello") -> message_pb2.Message:
    return message_pb2.Message(
        id=message_id,
        created_at=T,
        thread_id="thread_abc",
        status=message_pb2.MESSAGE_STATUS_COMPLETED,
        role=message_pb2.MESSAGE_ROLE_USER,
        content=[message_pb2.MessageContent(text=message_pb2.TextContent(value=text))],
    )


def assistant_message(
    status: int = message_pb2.MESSAGE_STATUS_COMPLETED, text: str | None = "Hello, world"
) -> message_pb2.Message:
    message = message_pb2.Message(
        id="msg_ast",
        created_at=T,
        thread_id="thread_abc",
        status=status,  # type: ignore[arg-type]
        role=message_pb2.MESSAGE_ROLE_ASSISTANT,
        assistant_id="asst_abc",
        run_id="run_abc",
    )
    if text is not None:
        message.content.add(text=message_pb2.TextContent(value=text))
        message.completed_at = T + 5
    return message


def rich_message() -> message_pb2.Message:
    """A message with every content part and annotation kind."""
    message = assistant_message(text=None)
    message.content.add(
        text=message_pb2.TextContent(
            value="See 【4:0†a.txt】 and sandbox:/mnt/data/x.csv",
            annotations=[
                message_pb2.Annotation(
                    text="【4:0†a.txt】",
                    start_index=4,
                    end_index=15,
                    file_citation=message_pb2.FileCitation(file_id="file-a"),
                ),
                message_pb2.Annotation(
                    text="sandbox:/mnt/data/x.csv",
                    start_index=20,
                    end_index=43,
                    file_path=message_pb2.FilePath(file_id="file-x"),
                ),
            ],
        )
    )
    message.content.add(
        image_file=message_pb2.ImageFile(file_id="file-img", detail=message_pb2.IMAGE_DETAIL_LOW)
    )
    message.content.add(image_url=message_pb2.ImageUrl(url="https://example.com/a.png"))
    message.content.add(refusal="I can't help with that.")
    message.attachments.add(
        file_id="file-a",
        tools=[message_pb2.AttachmentTool(type=common_pb2.TOOL_TYPE_FILE_SEARCH)],
    )
    message.incomplete_details.reason = message_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS
    return message


def requires_action_run() -> run_pb2.Run:
    return run_pb2.Run(
        id="run_abc",
        created_at=T,
        thread_id="thread_abc",
        assistant_id="asst_abc",
        status=run_pb2.RUN_STATUS_REQUIRES_ACTION,
        required_action=run_pb2.RequiredAction(
            submit_tool_outputs=run_pb2.SubmitToolOutputsAction(
                tool_calls=[
                    run_pb2.RequiredToolCall(
                        id="call_1",
                        function=run_pb2.FunctionCall(
                            name="get_weather", arguments='{"city":"Paris"}'
                        ),
                    )
                ]
            )
        ),
        expires_at=T + 600,
        started_at=T + 1,
        model="gpt-4o",
        instructions="You are helpful.",
        tools=[function_tool()],
        temperature=1.0,
        top_p=1.0,
        truncation_strategy=run_pb2.TruncationStrategy(type=run_pb2.TRUNCATION_TYPE_AUTO),
        tool_choice=common_pb2.ToolChoice(mode=common_pb2.TOOL_CHOICE_MODE_AUTO),
        parallel_tool_calls=True,
        response_format=common_pb2.ResponseFormat(auto=common_pb2.ResponseFormatAuto()),
    )


def failed_run() -> run_pb2.Run:
    """A run with the other unions and nested objects set."""
    run = requires_action_run()
    run.ClearField("required_action")
    run.status = run_pb2.RUN_STATUS_FAILED
    run.failed_at = T + 9
    run.last_error.code = run_pb2.RUN_ERROR_CODE_RATE_LIMIT_EXCEEDED
    run.last_error.message = "slow down"
    run.usage.CopyFrom(common_pb2.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15))
    run.tool_choice.named.type = common_pb2.TOOL_TYPE_FUNCTION
    run.tool_choice.named.function.name = "get_weather"
    run.response_format.json_object.SetInParent()
    run.truncation_strategy.type = run_pb2.TRUNCATION_TYPE_LAST_MESSAGES
    run.truncation_strategy.last_messages = 3
    run.max_prompt_tokens = 1000
    run.metadata["k"] = "v"
    return run


def step_base(step_type: int, status: int = run_pb2.RUN_STEP_STATUS_IN_PROGRESS) -> run_pb2.RunStep:
    return run_pb2.RunStep(
        id="step_abc",
        created_at=T,
        run_id="run_abc",
        assistant_id="asst_abc",
        thread_id="thread_abc",
        type=step_type,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
    )


def tool_calls_step(output: str | None = None) -> run_pb2.RunStep:
    step = step_base(run_pb2.RUN_STEP_TYPE_TOOL_CALLS)
    call = step.step_details.tool_calls.tool_calls.add(id="call_1")
    call.function.name = "get_weather"
    call.function.arguments = '{"city":"Paris"}'
    if output is not None:
        call.function.output = output
    return step


def message_creation_step() -> run_pb2.RunStep:
    step = step_base(run_pb2.RUN_STEP_TYPE_MESSAGE_CREATION, run_pb2.RUN_STEP_STATUS_COMPLETED)
    step.step_details.message_creation.message_id = "msg_ast"
    step.completed_at = T + 5
    step.usage.CopyFrom(common_pb2.Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10))
    return step


def server_tools_step() -> run_pb2.RunStep:
    """A completed step with code interpreter and file search calls."""
    step = step_base(run_pb2.RUN_STEP_TYPE_TOOL_CALLS, run_pb2.RUN_STEP_STATUS_COMPLETED)
    calls = step.step_details.tool_calls.tool_calls
    code = calls.add(id="call_ci").code_interpreter
    code.input = "print(1)"
    code.outputs.add(logs="1\n")
    code.outputs.add(image=run_pb2.CodeInterpreterImage(file_id="file-png"))
    search = calls.add(id="call_fs").file_search
    search.ranking_options.ranker = "default_2024_08_21"
    search.ranking_options.score_threshold = 0.5
    result = search.results.add(file_id="file-a", file_name="a.txt", score=0.75)
    result.content.add(text="the matching text")
    step.last_error.code = run_pb2.RUN_STEP_ERROR_CODE_SERVER_ERROR
    step.last_error.message = "oops"
    return step


def text_delta(index: int, value: str, *, first: bool = False) -> message_pb2.MessageDelta:
    delta = message_pb2.MessageDelta(id="msg_ast")
    if first:
        delta.delta.role = message_pb2.MESSAGE_ROLE_ASSISTANT
    delta.delta.content.add(index=index, text=message_pb2.TextDelta(value=value))
    return delta


def function_delta(
    index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
) -> run_pb2.RunStepDelta:
    delta = run_pb2.RunStepDelta(id="step_abc")
    call = delta.delta.step_details.tool_calls.tool_calls.add(index=index)
    if call_id is not None:
        call.id = call_id
    if name is not None:
        call.function.name = name
    call.function.arguments = arguments
    return delta


# --- the public surface ------------------------------------------------------------------------


def test_public_names() -> None:
    assert contract.__all__ == [
        "OpenAIJSONError",
        "enum_name",
        "enum_value",
        "parse",
        "render",
        "render_event",
        "render_value",
        "to_sse",
    ]


# --- full objects ------------------------------------------------------------------------------


def test_assistant() -> None:
    rendered = render(assistant())
    assert rendered == {
        "id": "asst_abc",
        "object": "assistant",
        "created_at": T,
        "name": None,
        "description": None,
        "model": "gpt-4o",
        "instructions": "You are helpful.",
        "tools": [
            FUNCTION_TOOL_JSON,
            {"type": "file_search", "file_search": {"max_num_results": 5, "ranking_options": None}},
            {"type": "code_interpreter"},
        ],
        "tool_resources": None,
        "metadata": {"team": "x"},
        "temperature": 0.7,
        "top_p": None,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "weather",
                "description": None,
                "schema": FUNCTION_TOOL_JSON["function"]["parameters"],  # type: ignore[index]
                "strict": None,
            },
        },
    }
    assert list(rendered)[:3] == ["id", "object", "created_at"]
    # Struct numbers are doubles; whole ones come back as ints, as the schema was written.
    parameters = rendered["tools"][0]["function"]["parameters"]
    assert type(parameters["properties"]["days"]["minimum"]) is int


def test_response_format_auto_is_the_bare_string() -> None:
    message = assistant()
    message.response_format.auto.SetInParent()
    assert render(message)["response_format"] == "auto"
    assert render_value(common_pb2.ResponseFormat(text=common_pb2.ResponseFormatText())) == {
        "type": "text"
    }


def test_thread() -> None:
    assert render(thread()) == {
        "id": "thread_abc",
        "object": "thread",
        "created_at": T,
        "tool_resources": {"code_interpreter": {"file_ids": ["file-1"]}, "file_search": None},
        "metadata": {"user": "42"},
    }


def test_user_message() -> None:
    rendered = render(user_message())
    assert rendered == {
        "id": "msg_abc",
        "object": "thread.message",
        "created_at": T,
        "thread_id": "thread_abc",
        "status": "completed",
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": "user",
        "content": [{"type": "text", "text": {"value": "Hello", "annotations": []}}],
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
    }
    # Fresh containers on every call: a caller may mutate what it got.
    rendered["metadata"]["x"] = "y"
    assert render(user_message())["metadata"] == {}


def test_message_parts_and_annotations() -> None:
    rendered = render(rich_message())
    assert rendered["incomplete_details"] == {"reason": "max_tokens"}
    assert rendered["content"] == [
        {
            "type": "text",
            "text": {
                "value": "See 【4:0†a.txt】 and sandbox:/mnt/data/x.csv",
                "annotations": [
                    {
                        "type": "file_citation",
                        "text": "【4:0†a.txt】",
                        "start_index": 4,
                        "end_index": 15,
                        "file_citation": {"file_id": "file-a"},
                    },
                    {
                        "type": "file_path",
                        "text": "sandbox:/mnt/data/x.csv",
                        "start_index": 20,
                        "end_index": 43,
                        "file_path": {"file_id": "file-x"},
                    },
                ],
            },
        },
        {"type": "image_file", "image_file": {"file_id": "file-img", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": None}},
        {"type": "refusal", "refusal": "I can't help with that."},
    ]
    assert next(iter(rendered["content"][0]["text"]["annotations"][0])) == "type"
    assert rendered["attachments"] == [{"file_id": "file-a", "tools": [{"type": "file_search"}]}]


def test_message_without_status_renders_null() -> None:
    message = user_message()
    message.ClearField("status")
    assert render(message)["status"] is None


def test_list_page() -> None:
    page = message_pb2.ListMessagesResponse(
        data=[user_message("msg_2", "second"), user_message("msg_1", "first")],
        first_id="msg_2",
        last_id="msg_1",
        has_more=True,
    )
    rendered = render(page)
    assert list(rendered) == ["object", "data", "first_id", "last_id", "has_more"]
    assert rendered == {
        "object": "list",
        "data": [render(user_message("msg_2", "second")), render(user_message("msg_1", "first"))],
        "first_id": "msg_2",
        "last_id": "msg_1",
        "has_more": True,
    }
    assert rendered["data"][0]["object"] == "thread.message"


@pytest.mark.parametrize(
    "page",
    [
        message_pb2.ListMessagesResponse(),
        assistant_pb2.ListAssistantsResponse(),
        thread_pb2.ListThreadsResponse(),
        run_pb2.ListRunsResponse(),
        run_pb2.ListRunStepsResponse(),
    ],
    ids=lambda page: type(page).__name__,
)
def test_empty_page(page: ProtoMessage) -> None:
    assert render(page) == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    ("response", "object_type"),
    [
        (assistant_pb2.DeleteAssistantResponse(id="asst_abc", deleted=True), "assistant.deleted"),
        (thread_pb2.DeleteThreadResponse(id="asst_abc", deleted=True), "thread.deleted"),
        (message_pb2.DeleteMessageResponse(id="asst_abc", deleted=True), "thread.message.deleted"),
    ],
    ids=["assistant", "thread", "message"],
)
def test_delete_responses(response: ProtoMessage, object_type: str) -> None:
    rendered = render(response)
    assert rendered == {"id": "asst_abc", "object": object_type, "deleted": True}
    assert list(rendered) == ["id", "object", "deleted"]


def stored_file(**fields: Any) -> file_pb2.File:
    values: dict[str, Any] = {
        "id": "file-abc",
        "bytes": 175,
        "created_at": T,
        "filename": "salesOverview.pdf",
        "purpose": file_pb2.FILE_PURPOSE_ASSISTANTS,
    }
    return file_pb2.File(**(values | fields))


def test_file() -> None:
    # OpenAI's own example, plus the deprecated status keys its SDK still requires.
    assert render(stored_file(expires_at=T + 3600)) == {
        "id": "file-abc",
        "object": "file",
        "bytes": 175,
        "created_at": T,
        "expires_at": T + 3600,
        "filename": "salesOverview.pdf",
        "purpose": "assistants",
        "status": "processed",
        "status_details": None,
    }
    assert render(stored_file())["expires_at"] is None
    output = stored_file(purpose=file_pb2.FILE_PURPOSE_ASSISTANTS_OUTPUT)
    assert render(output)["purpose"] == "assistants_output"
    assert render(stored_file(purpose=file_pb2.FILE_PURPOSE_USER_DATA))["purpose"] == "user_data"


def test_file_list_and_deletion() -> None:
    page = render(file_pb2.ListFilesResponse(data=[stored_file()], first_id="file-abc"))
    assert page["object"] == "list" and page["data"][0]["object"] == "file"
    deleted = render(file_pb2.DeleteFileResponse(id="file-abc", deleted=True))
    assert deleted == {"id": "file-abc", "object": "file", "deleted": True}


def test_run_requires_action() -> None:
    assert render(requires_action_run()) == {
        "id": "run_abc",
        "object": "thread.run",
        "created_at": T,
        "thread_id": "thread_abc",
        "assistant_id": "asst_abc",
        "status": "requires_action",
        "required_action": {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ]
            },
        },
        "last_error": None,
        "expires_at": T + 600,
        "started_at": T + 1,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "model": "gpt-4o",
        "instructions": "You are helpful.",
        "tools": [FUNCTION_TOOL_JSON],
        "metadata": {},
        "usage": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": "auto",
    }


def test_failed_run_unions() -> None:
    rendered = render(failed_run())
    assert rendered["required_action"] is None
    assert rendered["last_error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert rendered["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert rendered["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert rendered["response_format"] == {"type": "json_object"}
    assert rendered["truncation_strategy"] == {"type": "last_messages", "last_messages": 3}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (common_pb2.TOOL_CHOICE_MODE_NONE, "none"),
        (common_pb2.TOOL_CHOICE_MODE_AUTO, "auto"),
        (common_pb2.TOOL_CHOICE_MODE_REQUIRED, "required"),
    ],
)
def test_tool_choice_modes_are_bare_strings(mode: int, expected: str) -> None:
    assert render_value(common_pb2.ToolChoice(mode=mode)) == expected  # type: ignore[arg-type]


def test_run_step_tool_calls() -> None:
    assert render(tool_calls_step()) == {
        "id": "step_abc",
        "object": "thread.run.step",
        "created_at": T,
        "run_id": "run_abc",
        "assistant_id": "asst_abc",
        "thread_id": "thread_abc",
        "type": "tool_calls",
        "status": "in_progress",
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city":"Paris"}',
                        "output": None,
                    },
                }
            ],
        },
        "last_error": None,
        "expired_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "metadata": {},
        "usage": None,
    }


def test_run_step_message_creation() -> None:
    rendered = render(message_creation_step())
    assert rendered["type"] == "message_creation"
    assert rendered["status"] == "completed"
    assert rendered["step_details"] == {
        "type": "message_creation",
        "message_creation": {"message_id": "msg_ast"},
    }
    assert rendered["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert rendered["completed_at"] == T + 5


def test_run_step_server_tools() -> None:
    calls = render(server_tools_step())["step_details"]["tool_calls"]
    assert calls == [
        {
            "id": "call_ci",
            "type": "code_interpreter",
            "code_interpreter": {
                "input": "print(1)",
                "outputs": [
                    {"type": "logs", "logs": "1\n"},
                    {"type": "image", "image": {"file_id": "file-png"}},
                ],
            },
        },
        {
            "id": "call_fs",
            "type": "file_search",
            "file_search": {
                "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.5},
                "results": [
                    {
                        "file_id": "file-a",
                        "file_name": "a.txt",
                        "score": 0.75,
                        "content": [{"type": "text", "text": "the matching text"}],
                    }
                ],
            },
        },
    ]


def test_unset_union_is_null() -> None:
    step = step_base(run_pb2.RUN_STEP_TYPE_MESSAGE_CREATION)
    assert render(step)["step_details"] is None
    step.step_details.SetInParent()  # set, but no case: still nothing to say
    assert render(step)["step_details"] is None
    assert render_value(common_pb2.Tool()) is None


def test_wrappers_render_as_their_field() -> None:
    tools = common_pb2.ToolList(tools=[function_tool()])
    assert render_value(tools) == [FUNCTION_TOOL_JSON]
    assert render_value(common_pb2.Metadata(values={"a": "b"})) == {"a": "b"}
    request = assistant_pb2.UpdateAssistantRequest(assistant_id="asst_abc", tools=tools)
    rendered = render(request)
    assert rendered["tools"] == [FUNCTION_TOOL_JSON]
    assert rendered["metadata"] is None
    assert rendered["reasoning_effort"] is None


def test_render_rejects_non_objects() -> None:
    with pytest.raises(TypeError, match="render_value"):
        render(common_pb2.ResponseFormat(auto=common_pb2.ResponseFormatAuto()))


def test_struct_values() -> None:
    schema = struct_pb2.Struct()
    schema.update({"a": [1, 2.5, True, None, "s", {"b": []}], "big": 2.0**60, "neg": -3})
    definition = common_pb2.FunctionDefinition(name="f", parameters=schema)
    rendered = render(definition)["parameters"]
    assert rendered == {"a": [1, 2.5, True, None, "s", {"b": []}], "big": 2.0**60, "neg": -3}
    assert type(rendered["big"]) is float  # past 2**53 a double is not an exact integer
    assert parse(render(definition), common_pb2.FunctionDefinition) == definition


def test_unknown_enum_number_renders_null() -> None:
    run = requires_action_run()
    run.status = 99  # type: ignore[assignment]  # from a peer with a newer proto
    assert render(run)["status"] is None


# --- deltas ------------------------------------------------------------------------------------


def test_message_delta_first_text() -> None:
    rendered = render(text_delta(0, "Hel"))
    assert rendered == {
        "id": "msg_ast",
        "object": "thread.message.delta",
        "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "Hel"}}]},
    }
    assert list(rendered) == ["id", "object", "delta"]


def test_message_delta_role_and_other_parts() -> None:
    delta = text_delta(0, "Hi", first=True)
    delta.delta.content.add(index=1, refusal="no")
    delta.delta.content.add(index=2, image_file=message_pb2.ImageFileDelta(file_id="file-img"))
    annotated = delta.delta.content.add(index=0).text
    annotated.annotations.add(
        index=0,
        text="【0†a】",
        start_index=2,
        end_index=7,
        file_citation=message_pb2.FileCitationDelta(file_id="file-a"),
    )
    assert render(delta)["delta"] == {
        "role": "assistant",
        "content": [
            {"index": 0, "type": "text", "text": {"value": "Hi"}},
            {"index": 1, "type": "refusal", "refusal": "no"},
            {"index": 2, "type": "image_file", "image_file": {"file_id": "file-img"}},
            {
                "index": 0,
                "type": "text",
                "text": {
                    "annotations": [
                        {
                            "index": 0,
                            "type": "file_citation",
                            "text": "【0†a】",
                            "start_index": 2,
                            "end_index": 7,
                            "file_citation": {"file_id": "file-a"},
                        }
                    ]
                },
            },
        ],
    }


def test_empty_message_delta_keeps_its_body() -> None:
    assert render(message_pb2.MessageDelta(id="msg_ast")) == {
        "id": "msg_ast",
        "object": "thread.message.delta",
        "delta": {},
    }


def test_run_step_delta_first_function_delta() -> None:
    rendered = render(function_delta(0, "", call_id="call_1", name="get_weather"))
    assert rendered == {
        "id": "step_abc",
        "object": "thread.run.step.delta",
        "delta": {
            "step_details": {
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "index": 0,
                        "type": "function",
                        "id": "call_1",
                        "function": {"name": "get_weather", "arguments": "", "output": None},
                    }
                ],
            }
        },
    }


def test_run_step_delta_fragment() -> None:
    rendered = render(function_delta(0, '{"city"'))
    assert rendered["delta"]["step_details"]["tool_calls"] == [
        {"index": 0, "type": "function", "function": {"arguments": '{"city"'}}
    ]


def test_run_step_delta_other_calls() -> None:
    delta = run_pb2.RunStepDelta(id="step_abc")
    calls = delta.delta.step_details.tool_calls.tool_calls
    calls.add(index=0, id="call_fs", file_search=run_pb2.FileSearchToolCallDelta())
    code = calls.add(index=1, id="call_ci").code_interpreter
    code.input = "print("
    code.outputs.add(index=0, logs="out")
    assert render(delta)["delta"]["step_details"]["tool_calls"] == [
        {"index": 0, "type": "file_search", "id": "call_fs", "file_search": {}},
        {
            "index": 1,
            "type": "code_interpreter",
            "id": "call_ci",
            "code_interpreter": {
                "input": "print(",
                "outputs": [{"index": 0, "type": "logs", "logs": "out"}],
            },
        },
    ]
    creation = run_pb2.RunStepDelta(id="step_abc")
    creation.delta.step_details.message_creation.message_id = "msg_ast"
    assert render(creation)["delta"] == {
        "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_ast"}}
    }


# --- events ------------------------------------------------------------------------------------


def test_render_event_done() -> None:
    event = run_pb2.RunEvent(event="done", sequence=9)
    assert render_event(event) == ("done", "[DONE]")
    assert to_sse(event) == "event: done\ndata: [DONE]\n\n"


def test_render_event_error() -> None:
    event = run_pb2.RunEvent(
        event="error", sequence=3, error=run_pb2.Error(message="boom", type="server_error")
    )
    fields = {"message": "boom", "type": "server_error", "param": None, "code": None}
    assert render_event(event) == ("error", {**fields, "error": fields})


def test_render_event_run() -> None:
    event = run_pb2.RunEvent(event="thread.run.requires_action", run=requires_action_run())
    name, data = render_event(event)
    assert name == "thread.run.requires_action"
    assert data == render(requires_action_run())
    frame = to_sse(event)
    head, _, rest = frame.partition("\n")
    assert head == "event: thread.run.requires_action"
    assert rest.startswith("data: {") and rest.endswith("}\n\n")
    assert "\n" not in rest[:-2] and ", " not in rest[: rest.index("instructions")]
    assert json.loads(rest[len("data: ") :]) == data


def test_render_event_without_data_fails() -> None:
    with pytest.raises(ValueError, match="no data"):
        render_event(run_pb2.RunEvent(event="thread.run.created"))


def test_sse_keeps_newlines_in_one_data_line() -> None:
    frame = to_sse(
        run_pb2.RunEvent(event="thread.message.delta", message_delta=text_delta(0, "a\nb"))
    )
    assert frame.count("\n") == 3
    assert "a\\nb" in frame


# --- parsing -----------------------------------------------------------------------------------

FULL_OBJECTS: list[ProtoMessage] = [
    assistant(),
    thread(),
    user_message(),
    rich_message(),
    assistant_message(message_pb2.MESSAGE_STATUS_IN_PROGRESS, text=None),
    message_pb2.ListMessagesResponse(
        data=[user_message()], first_id="msg_abc", last_id="msg_abc", has_more=False
    ),
    message_pb2.ListMessagesResponse(),
    assistant_pb2.DeleteAssistantResponse(id="asst_abc", deleted=True),
    thread_pb2.DeleteThreadResponse(id="thread_abc", deleted=True),
    message_pb2.DeleteMessageResponse(id="msg_abc", deleted=True),
    requires_action_run(),
    failed_run(),
    tool_calls_step(),
    tool_calls_step(output="18C"),
    message_creation_step(),
    server_tools_step(),
    run_pb2.ListRunStepsResponse(data=[tool_calls_step(), message_creation_step()]),
    stored_file(),
    stored_file(expires_at=T + 60, purpose=file_pb2.FILE_PURPOSE_VISION),
    file_pb2.ListFilesResponse(data=[stored_file()], first_id="file-abc", last_id="file-abc"),
    file_pb2.DeleteFileResponse(id="file-abc", deleted=True),
]


@pytest.mark.parametrize("message", FULL_OBJECTS, ids=lambda m: type(m).__name__)
def test_round_trip(message: ProtoMessage) -> None:
    rendered = render(message)
    assert parse(rendered, type(message)) == message
    # and through real JSON text, as the store and a gateway hold it
    assert parse(json.loads(json.dumps(rendered)), type(message)) == message


@pytest.mark.parametrize(
    "message",
    [
        common_pb2.ResponseFormat(auto=common_pb2.ResponseFormatAuto()),
        common_pb2.ResponseFormat(text=common_pb2.ResponseFormatText()),
        common_pb2.ToolChoice(mode=common_pb2.TOOL_CHOICE_MODE_REQUIRED),
        common_pb2.ToolChoice(
            named=common_pb2.NamedToolChoice(type=common_pb2.TOOL_TYPE_FILE_SEARCH)
        ),
        common_pb2.ToolList(tools=[function_tool()]),
        common_pb2.ToolList(),
        common_pb2.Metadata(values={"a": "b"}),
        common_pb2.ChunkingStrategy(auto=common_pb2.AutoChunkingStrategy()),
        common_pb2.ChunkingStrategy(
            static=common_pb2.StaticChunkingStrategy(
                max_chunk_size_tokens=800, chunk_overlap_tokens=400
            )
        ),
        run_pb2.StepDetails(tool_calls=run_pb2.ToolCallsDetails()),
    ],
    ids=lambda m: type(m).__name__,
)
def test_round_trip_values(message: ProtoMessage) -> None:
    assert parse(render_value(message), type(message)) == message


def test_parse_deltas() -> None:
    for delta in (
        function_delta(0, "", call_id="call_1", name="f"),
        text_delta(0, "x", first=True),
    ):
        assert parse(render(delta), type(delta)) == delta


def test_parse_request_content_part() -> None:
    assert parse({"type": "text", "text": "hi"}, message_pb2.MessageContentInput) == (
        message_pb2.MessageContentInput(text="hi")
    )
    image = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}}
    assert parse(image, message_pb2.MessageContentInput) == message_pb2.MessageContentInput(
        image_url=message_pb2.ImageUrl(url="https://x/a.png", detail=message_pb2.IMAGE_DETAIL_HIGH)
    )


def test_parse_message_create_request() -> None:
    # `content` may be a bare string: one text part (CONTRACT §5).
    parsed = parse(
        {"role": "user", "content": "hi", "metadata": {"k": "v"}}, message_pb2.MessageInput
    )
    assert parsed == message_pb2.MessageInput(
        role=message_pb2.MESSAGE_ROLE_USER,
        content=[message_pb2.MessageContentInput(text="hi")],
        metadata={"k": "v"},
    )
    parts = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_file", "image_file": {"file_id": "file-1"}},
        ],
        "attachments": [{"file_id": "file-2", "tools": [{"type": "code_interpreter"}]}],
    }
    parsed = parse(parts, message_pb2.MessageInput)
    assert [part.WhichOneof("content") for part in parsed.content] == ["text", "image_file"]
    assert parsed.attachments[0].tools[0].type == common_pb2.TOOL_TYPE_CODE_INTERPRETER


def test_parse_run_request() -> None:
    body = {
        "thread_id": "thread_abc",
        "assistant_id": "asst_abc",
        "tools": [{"type": "code_interpreter"}, {"type": "file_search"}],
        "tool_choice": "required",
        "response_format": {"type": "json_object"},
        "truncation_strategy": {"type": "last_messages", "last_messages": 2},
        "temperature": 1,
        "additional_messages": None,
    }
    parsed = parse(body, run_pb2.CreateRunRequest)
    assert parsed.HasField("tools")
    assert [t.WhichOneof("tool") for t in parsed.tools.tools] == ["code_interpreter", "file_search"]
    assert parsed.tool_choice == common_pb2.ToolChoice(mode=common_pb2.TOOL_CHOICE_MODE_REQUIRED)
    assert parsed.response_format.HasField("json_object")
    assert parsed.truncation_strategy.last_messages == 2
    assert parsed.temperature == 1.0
    assert (
        parse(
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            run_pb2.CreateRunRequest,
        ).tool_choice.named.function.name
        == "f"
    )
    assert parse({"tools": []}, run_pb2.CreateRunRequest).HasField("tools")  # [] replaces
    assert not parse({"tools": None}, run_pb2.CreateRunRequest).HasField("tools")  # None: unset


def test_parse_update_metadata_wrapper() -> None:
    parsed = parse({"metadata": {}}, assistant_pb2.UpdateAssistantRequest)
    assert parsed.HasField("metadata") and dict(parsed.metadata.values) == {}


def test_parse_ignores_object_and_none() -> None:
    assert parse(
        {"object": "thread", "id": "thread_abc", "tool_resources": None}, thread_pb2.Thread
    ) == (thread_pb2.Thread(id="thread_abc"))
    assert parse(None, thread_pb2.Thread) == thread_pb2.Thread()


@pytest.mark.parametrize(
    ("data", "message_type", "path", "problem"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": 5}}]},
            assistant_pb2.Assistant,
            "tools[0].function.name",
            "expected a string",
        ),
        ({"nmae": "x"}, assistant_pb2.Assistant, "nmae", "unknown key"),
        (
            {"tools": [{"type": "code_interpreter"}, {"type": "browser"}]},
            assistant_pb2.Assistant,
            "tools[1].type",
            "expected one of 'function', 'file_search', 'code_interpreter'",
        ),
        (
            {"tools": [{"function": {"name": "f"}}]},
            assistant_pb2.Assistant,
            "tools[0].type",
            "required with 'function'",
        ),
        (
            {"tools": [{"type": "function", "function": {}, "file_search": {}}]},
            assistant_pb2.Assistant,
            "tools[0].file_search",
            "not allowed with type 'function'",
        ),
        ({"status": "running"}, run_pb2.Run, "status", "expected one of 'queued'"),
        ({"created_at": True}, run_pb2.Run, "created_at", "expected an integer"),
        ({"created_at": 1.5}, run_pb2.Run, "created_at", "expected an integer"),
        ({"max_prompt_tokens": 2**40}, run_pb2.Run, "max_prompt_tokens", "out of range"),
        ({"temperature": "hot"}, run_pb2.Run, "temperature", "expected a number"),
        ({"parallel_tool_calls": 1}, run_pb2.Run, "parallel_tool_calls", "expected a boolean"),
        ({"metadata": {"version": 2}}, run_pb2.Run, "metadata.version", "expected a string"),
        ({"metadata": ["x"]}, run_pb2.Run, "metadata", "expected an object"),
        ({"tools": {}}, run_pb2.Run, "tools", "expected a list"),
        ({"response_format": "json"}, run_pb2.Run, "response_format", "or one of 'auto'"),
        ({"tool_choice": "sometimes"}, run_pb2.Run, "tool_choice", "'none', 'auto', 'required'"),
        ({"tool_choice": 3}, run_pb2.Run, "tool_choice", "expected an object"),
        ({"usage": {"tokens": 1}}, run_pb2.Run, "usage.tokens", "unknown key"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]},
            run_pb2.Run,
            "tools[0].function.parameters",
            "expected an object",
        ),
        (
            {"required_action": {"type": "submit_tool_outputs", "extra": 1}},
            run_pb2.Run,
            "required_action.extra",
            "unknown key",
        ),
        ("hello", thread_pb2.Thread, "", "expected an object"),
        (
            {"content": [{"type": "text", "text": "not an object"}]},
            message_pb2.Message,
            "content[0].text",
            "expected an object",
        ),
        (
            {"content": [{"type": "text", "text": 3}]},
            message_pb2.MessageInput,
            "content[0].text",
            "expected a string",
        ),
        (
            {"data": [None, {"id": 1}]},
            message_pb2.ListMessagesResponse,
            "data[1].id",
            "expected a string",
        ),
    ],
)
def test_parse_errors_name_the_path(
    data: Any, message_type: type[ProtoMessage], path: str, problem: str
) -> None:
    with pytest.raises(OpenAIJSONError) as caught:
        parse(data, message_type)
    assert caught.value.path == path
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{path}: " if path else problem)
    assert isinstance(caught.value, ValueError)


def test_enum_helpers() -> None:
    assert enum_name(run_pb2.RunStatus, run_pb2.RUN_STATUS_REQUIRES_ACTION) == "requires_action"
    assert enum_name(common_pb2.ListOrder, common_pb2.LIST_ORDER_ASC) == "asc"
    assert enum_name(message_pb2.MessageStatus, 0) is None
    assert (
        enum_value(common_pb2.ToolType, "code_interpreter") == common_pb2.TOOL_TYPE_CODE_INTERPRETER
    )
    assert enum_value(message_pb2.MessageRole, None) == message_pb2.MESSAGE_ROLE_UNSPECIFIED
    with pytest.raises(OpenAIJSONError, match="'user', 'assistant'"):
        enum_value(message_pb2.MessageRole, "system")


# --- the openai SDK reads it -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "model"),
    [
        (assistant(), SDKAssistant),
        (thread(), SDKThread),
        (user_message(), SDKMessage),
        (rich_message(), SDKMessage),
        (requires_action_run(), SDKRun),
        (failed_run(), SDKRun),
        (tool_calls_step(), SDKRunStep),
        (message_creation_step(), SDKRunStep),
        (server_tools_step(), SDKRunStep),
        (assistant_pb2.DeleteAssistantResponse(id="asst_abc", deleted=True), SDKAssistantDeleted),
        (thread_pb2.DeleteThreadResponse(id="thread_abc", deleted=True), SDKThreadDeleted),
        (message_pb2.DeleteMessageResponse(id="msg_abc", deleted=True), SDKMessageDeleted),
        (stored_file(), SDKFileObject),
        (stored_file(expires_at=T + 3600), SDKFileObject),
        (file_pb2.DeleteFileResponse(id="file-abc", deleted=True), SDKFileDeleted),
    ],
    ids=lambda value: type(value).__name__,
)
def test_sdk_models_validate_the_rendering(message: ProtoMessage, model: type[BaseModel]) -> None:
    rendered = render(message)
    assert set(rendered) <= set(model.model_fields), "a key the SDK doesn't know"
    validated = model.model_validate(rendered)
    assert validated.model_dump(mode="json", exclude_unset=True, by_alias=True) == rendered


def _event_models() -> dict[str, type[BaseModel]]:
    union = typing.get_args(AssistantStreamEvent)[0]
    models: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        (name,) = typing.get_args(model.model_fields["event"].annotation)
        models[name] = model
    return models


EVENT_MODELS = _event_models()


def sdk_event(event: run_pb2.RunEvent) -> Any:
    """The SDK's AssistantStreamEvent for one of our events, as its stream would build it."""
    name, data = render_event(event)
    return EVENT_MODELS[name].model_validate({"event": name, "data": data})


def first_text(message: SDKMessage) -> str:
    block = message.content[0]
    assert isinstance(block, TextContentBlock)
    return block.text.value


def test_sdk_accumulates_message_deltas() -> None:
    created = assistant_message(message_pb2.MESSAGE_STATUS_IN_PROGRESS, text=None)
    events = [
        run_pb2.RunEvent(event="thread.message.created", message=created),
        run_pb2.RunEvent(
            event="thread.message.delta", message_delta=text_delta(0, "Hel", first=True)
        ),
        run_pb2.RunEvent(event="thread.message.delta", message_delta=text_delta(0, "lo, ")),
        run_pb2.RunEvent(event="thread.message.delta", message_delta=text_delta(0, "world")),
        run_pb2.RunEvent(event="thread.message.completed", message=assistant_message()),
    ]
    snapshot = None
    for event in events[:-1]:
        snapshot, _ = accumulate_event(event=sdk_event(event), current_message_snapshot=snapshot)
    assert snapshot is not None
    final = sdk_event(events[-1]).data
    assert first_text(snapshot) == first_text(final) == "Hello, world"
    assert snapshot.id == final.id


def test_sdk_accumulates_tool_call_deltas() -> None:
    created = tool_calls_step()
    created.step_details.tool_calls.ClearField("tool_calls")  # created with `tool_calls: []`
    deltas = [
        function_delta(0, "", call_id="call_1", name="get_weather"),
        function_delta(0, '{"city"'),
        function_delta(1, "", call_id="call_2", name="get_time"),
        function_delta(0, ':"Paris"}'),
        function_delta(1, "{}"),
    ]
    # Through the SDK's step accumulator (which uses accumulate_delta)…
    snapshots: dict[str, Any] = {}
    accumulate_run_step(
        event=sdk_event(run_pb2.RunEvent(event="thread.run.step.created", run_step=created)),
        run_step_snapshots=snapshots,
    )
    for delta in deltas:
        event = run_pb2.RunEvent(event="thread.run.step.delta", run_step_delta=delta)
        accumulate_run_step(event=sdk_event(event), run_step_snapshots=snapshots)
    calls = snapshots["step_abc"].step_details.tool_calls
    assert [(c.id, c.function.name, c.function.arguments, c.function.output) for c in calls] == [
        ("call_1", "get_weather", '{"city":"Paris"}', None),
        ("call_2", "get_time", "{}", None),
    ]
    # …and with accumulate_delta on the plain JSON, as CONTRACT §9 describes the merge.
    merged = typing.cast("dict[object, object]", render(created))
    for delta in deltas:
        accumulate_delta(merged, render(delta)["delta"])
    first_call = merged["step_details"]["tool_calls"][0]  # type: ignore[index]
    assert first_call.pop("index") == 0  # the merge keeps the delta's index, as the SDK's does
    assert first_call == render(tool_calls_step())["step_details"]["tool_calls"][0]


@pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning")
def test_sdk_reads_the_sse_stream() -> None:
    """The real client parses our frames: snapshots, deltas, and the error event raises."""
    events = [
        run_pb2.RunEvent(event="thread.run.created", run=requires_action_run()),
        run_pb2.RunEvent(
            event="thread.message.created",
            message=assistant_message(message_pb2.MESSAGE_STATUS_IN_PROGRESS, text=None),
        ),
        run_pb2.RunEvent(
            event="thread.message.delta", message_delta=text_delta(0, "Hel", first=True)
        ),
        run_pb2.RunEvent(event="thread.message.delta", message_delta=text_delta(0, "lo")),
        run_pb2.RunEvent(event="thread.message.completed", message=assistant_message(text="Hello")),
        run_pb2.RunEvent(event="error", error=run_pb2.Error(message="boom", type="server_error")),
        run_pb2.RunEvent(event="done"),
    ]
    body = "".join(to_sse(event) for event in events).encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = openai.OpenAI(
        api_key="sk-test",
        base_url="http://assistants.test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        with client.beta.threads.runs.stream(
            thread_id="thread_abc", assistant_id="asst_abc"
        ) as stream:
            for event in stream:
                seen.append(event.event)
    assert seen == [event.event for event in events[:5]]
    assert caught.value.message == "boom"
    assert caught.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    snapshot = stream.current_message_snapshot
    assert snapshot is not None and first_text(snapshot) == "Hello"
    client.close()

"""OpenAI-shaped inputs (strings, dicts) become the contract's request messages."""

from __future__ import annotations

import pytest
from assistants_grpc_client import function_tool
from assistants_grpc_client._convert import (
    create_assistant_request,
    create_message_request,
    create_run_request,
    thread_and_run_request,
    update_assistant_request,
)
from assistants_grpc_client.v1 import common_pb2, message_pb2, run_pb2

C = common_pb2


@function_tool
def lookup(query: str) -> str:
    """Look something up."""
    return query


def test_assistant_inputs() -> None:
    request = create_assistant_request(
        {
            "model": "gpt-4o",
            "tools": [
                lookup,
                {"type": "file_search", "file_search": {"max_num_results": 5}},
                C.Tool(code_interpreter=C.CodeInterpreterTool()),
            ],
            "tool_resources": {
                "code_interpreter": {"file_ids": ["file-1"]},
                "file_search": {
                    "vector_stores": [
                        {
                            "file_ids": ["file-2"],
                            "chunking_strategy": {
                                "type": "static",
                                "static": {
                                    "max_chunk_size_tokens": 400,
                                    "chunk_overlap_tokens": 100,
                                },
                            },
                            "metadata": {"k": "v"},
                        }
                    ]
                },
            },
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
            },
            "reasoning_effort": "high",
            "name": None,  # None means "not sent"
        }
    )
    assert [t.WhichOneof("tool") for t in request.tools] == [
        "function",
        "file_search",
        "code_interpreter",
    ]
    assert request.tools[0].function.description == "Look something up."
    assert request.tools[1].file_search.max_num_results == 5
    assert list(request.tool_resources.code_interpreter.file_ids) == ["file-1"]
    store = request.tool_resources.file_search.vector_stores[0]
    assert store.chunking_strategy.static.chunk_overlap_tokens == 100
    assert dict(store.metadata) == {"k": "v"}
    assert request.response_format.json_schema.strict
    assert request.response_format.json_schema.schema["type"] == "object"
    assert request.reasoning_effort == C.REASONING_EFFORT_HIGH
    assert not request.HasField("name")


def test_updates_use_the_replacing_wrappers() -> None:
    request = update_assistant_request("asst_1", {"tools": [], "metadata": {}})
    assert request.HasField("tools") and list(request.tools.tools) == []
    assert request.HasField("metadata") and dict(request.metadata.values) == {}
    untouched = update_assistant_request("asst_1", {"name": "x"})
    assert not untouched.HasField("tools") and not untouched.HasField("metadata")


def test_message_inputs() -> None:
    request = create_message_request(
        "thread_1",
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_file", "image_file": {"file_id": "file-1", "detail": "high"}},
                message_pb2.MessageContentInput(text="raw"),
            ],
            "attachments": [{"file_id": "file-3", "tools": [{"type": "file_search"}]}],
        },
    )
    assert request.role == message_pb2.MESSAGE_ROLE_ASSISTANT
    assert request.content[1].image_file.detail == message_pb2.IMAGE_DETAIL_HIGH
    assert request.content[2].text == "raw"
    assert request.attachments[0].tools[0].type == C.TOOL_TYPE_FILE_SEARCH
    plain = create_message_request("thread_1", {"role": "user", "content": "hi"})
    assert [part.text for part in plain.content] == ["hi"]


def test_run_inputs() -> None:
    request = create_run_request(
        "thread_1",
        "asst_1",
        {
            "tools": [lookup],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "truncation_strategy": {"type": "last_messages", "last_messages": 3},
            "additional_messages": [{"role": "user", "content": "more"}],
            "include": ["step_details.tool_calls[*].file_search.results[*].content"],
            "parallel_tool_calls": False,
            "max_completion_tokens": 512,
        },
    )
    assert request.tools.tools[0].function.name == "lookup"  # a run's tools override: ToolList
    assert request.tool_choice.named.function.name == "lookup"
    assert request.tool_choice.named.type == C.TOOL_TYPE_FUNCTION
    assert request.truncation_strategy.type == run_pb2.TRUNCATION_TYPE_LAST_MESSAGES
    assert request.additional_messages[0].content[0].text == "more"
    assert request.HasField("parallel_tool_calls") and not request.parallel_tool_calls
    assert len(request.include) == 1 and request.max_completion_tokens == 512

    both = thread_and_run_request(
        "asst_1",
        {
            "thread": {"messages": [{"role": "user", "content": "q"}], "metadata": {"a": "b"}},
            "tool_choice": "required",
            "response_format": "auto",
        },
    )
    assert both.thread.messages[0].content[0].text == "q"
    assert both.tool_choice.mode == C.TOOL_CHOICE_MODE_REQUIRED
    assert both.response_format.HasField("auto")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"role": "user", "content": [{"type": "audio"}]}, "unknown content part type"),
        ({"role": "user", "content": [{"text": "no type"}]}, "needs a 'type'"),
        ({"role": "robot", "content": "x"}, "unknown role"),
    ],
)
def test_bad_message_inputs(params: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        create_message_request("thread_1", params)  # type: ignore[arg-type]

"""The keyword arguments of the resource methods, named as in the OpenAI SDK.

Each method takes `**params: Unpack[...Params]`, so one declaration here serves the sync and the
async client and type checkers still see every name and type. Inputs accept the OpenAI shapes
(plain strings, dicts) as well as the generated messages; `_convert.py` turns them into requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Required, TypeAlias, TypedDict

from assistants_grpc_client._function_tool import FunctionTool
from assistants_grpc_client._gen.assistants.v1 import common_pb2, file_pb2, message_pb2, run_pb2

__all__ = [
    "AssistantCreateParams",
    "AssistantUpdateParams",
    "ContentParam",
    "ExpiresAfterParam",
    "FileListParams",
    "FilePurposeParam",
    "ListParams",
    "MessageCreateParams",
    "MessageListParams",
    "MessageParam",
    "OrderParam",
    "ReasoningEffortParam",
    "ResponseFormatParam",
    "RoleParam",
    "RunCreateParams",
    "StepListParams",
    "ThreadAndRunParams",
    "ThreadCreateParams",
    "ThreadParam",
    "ThreadUpdateParams",
    "ToolChoiceParam",
    "ToolOutputParam",
    "ToolParam",
    "ToolResourcesParam",
    "ToolRunParams",
    "TruncationStrategyParam",
]

ToolParam: TypeAlias = common_pb2.Tool | FunctionTool[..., Any] | Mapping[str, Any]
"""A `Tool` message, a `@function_tool`, or `{"type": "function", "function": {...}}`,
`{"type": "code_interpreter"}`, `{"type": "file_search", "file_search": {...}}`."""

ContentParam: TypeAlias = str | Iterable[message_pb2.MessageContentInput | Mapping[str, Any]]
"""A plain string, or parts: `{"type": "text", "text": "..."}`, `{"type": "image_file",
"image_file": {"file_id": ...}}`, `{"type": "image_url", "image_url": {"url": ...}}`."""

RoleParam: TypeAlias = Literal["user", "assistant"] | message_pb2.MessageRole.ValueType
OrderParam: TypeAlias = Literal["asc", "desc"] | common_pb2.ListOrder.ValueType

MessageParam: TypeAlias = message_pb2.MessageInput | Mapping[str, Any]
"""A `MessageInput`, or `{"role": "user", "content": ..., "attachments": [...], "metadata": {}}`."""

ThreadParam: TypeAlias = run_pb2.ThreadInput | Mapping[str, Any]
"""A `ThreadInput`, or `{"messages": [...], "metadata": {...}, "tool_resources": {...}}`."""

ToolResourcesParam: TypeAlias = common_pb2.ToolResources | Mapping[str, Any]
"""`{"code_interpreter": {"file_ids": [...]}, "file_search": {"vector_store_ids": [...]}}`."""

ResponseFormatParam: TypeAlias = Literal["auto"] | common_pb2.ResponseFormat | Mapping[str, Any]
"""`"auto"`, `{"type": "text"}`, `{"type": "json_object"}` or
`{"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}`."""

ToolChoiceParam: TypeAlias = (
    Literal["none", "auto", "required"] | common_pb2.ToolChoice | Mapping[str, Any]
)
"""A mode, or `{"type": "function", "function": {"name": ...}}` / `{"type": "file_search"}`."""

TruncationStrategyParam: TypeAlias = run_pb2.TruncationStrategy | Mapping[str, Any]
"""`{"type": "auto"}` or `{"type": "last_messages", "last_messages": N}`."""

ReasoningEffortParam: TypeAlias = (
    Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
    | common_pb2.ReasoningEffort.ValueType
)

ToolOutputParam: TypeAlias = run_pb2.ToolOutput | Mapping[str, str]
"""A `ToolOutput`, or `{"tool_call_id": "call_...", "output": "..."}`."""


class ListParams(TypedDict, total=False):
    limit: int
    order: OrderParam
    after: str
    before: str


FilePurposeParam: TypeAlias = (
    Literal["assistants", "assistants_output", "vision", "user_data"]
    | file_pb2.FilePurpose.ValueType
)
"""What a file is for; uploads take "assistants", "vision" or "user_data"."""

ExpiresAfterParam: TypeAlias = file_pb2.FileExpiresAfter | Mapping[str, Any]
"""`{"anchor": "created_at", "seconds": 3600}` (3600 to 2592000 seconds)."""


class FileListParams(TypedDict, total=False):
    """OpenAI's file list pages forward only: no `before`."""

    limit: int
    order: OrderParam
    after: str
    purpose: FilePurposeParam


class MessageListParams(ListParams, total=False):
    run_id: str


class StepListParams(ListParams, total=False):
    include: Iterable[str]


class AssistantCreateParams(TypedDict, total=False):
    model: Required[str]
    name: str | None
    description: str | None
    instructions: str | None
    tools: Iterable[ToolParam]
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None
    temperature: float | None
    top_p: float | None
    response_format: ResponseFormatParam | None
    reasoning_effort: ReasoningEffortParam | None


class AssistantUpdateParams(TypedDict, total=False):
    model: str | None
    name: str | None
    description: str | None
    instructions: str | None
    tools: Iterable[ToolParam] | None
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None
    temperature: float | None
    top_p: float | None
    response_format: ResponseFormatParam | None
    reasoning_effort: ReasoningEffortParam | None


class ThreadCreateParams(TypedDict, total=False):
    messages: Iterable[MessageParam]
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None


class ThreadUpdateParams(TypedDict, total=False):
    tool_resources: ToolResourcesParam | None
    metadata: Mapping[str, str] | None


class MessageCreateParams(TypedDict, total=False):
    role: Required[RoleParam]
    content: Required[ContentParam]
    attachments: Iterable[message_pb2.Attachment | Mapping[str, Any]] | None
    metadata: Mapping[str, str] | None


class _RunSettings(TypedDict, total=False):
    model: str | None
    instructions: str | None
    metadata: Mapping[str, str] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: TruncationStrategyParam | None
    tool_choice: ToolChoiceParam | None
    response_format: ResponseFormatParam | None
    parallel_tool_calls: bool | None
    reasoning_effort: ReasoningEffortParam | None


class ToolRunParams(_RunSettings, total=False):
    """The options of a tool run: a run's, except `tools`, which there names the functions."""

    additional_instructions: str | None
    additional_messages: Iterable[MessageParam] | None
    include: Iterable[str] | None


class RunCreateParams(ToolRunParams, total=False):
    """The options of a run on an existing thread (CreateRun, CreateRunStream)."""

    tools: Iterable[ToolParam] | None


class ThreadAndRunParams(_RunSettings, total=False):
    """The options of CreateThreadAndRun: the new thread and the run's."""

    tools: Iterable[ToolParam] | None
    thread: ThreadParam | None
    tool_resources: ToolResourcesParam | None

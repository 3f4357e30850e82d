"""Rows ⇄ contract messages. Nested structures are stored as their OpenAI JSON, through the one
module that knows that shape (`contract.openai_json`); status and role enums as OpenAI strings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from assistants_grpc.contract.openai_json import enum_name, enum_value, parse, render, render_value
from assistants_grpc.contract.pb import (
    assistant_pb2,
    common_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    thread_pb2,
)

M = TypeVar("M", bound=ProtoMessage)
Row = Mapping[Any, Any]  # a RowMapping, or a dict of column values


def json_or_none(message: ProtoMessage, field: str) -> Any:
    """The OpenAI JSON of `message.field` if it is set, else None (for a nullable column)."""
    return render_value(getattr(message, field)) if message.HasField(field) else None


def scalar_or_none(message: ProtoMessage, field: str) -> Any:
    """`message.field` if it is set, else None (for a nullable column)."""
    return getattr(message, field) if message.HasField(field) else None


def set_optional(message: ProtoMessage, field: str, value: Any) -> None:
    if value is not None:
        setattr(message, field, value)


def set_parsed(message: ProtoMessage, field: str, value: Any) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(parse(value, type(getattr(message, field))))


def tools_json(tools: Any) -> list[dict[str, Any]]:
    return [render(tool) for tool in tools]


def parse_tools(values: list[dict[str, Any]]) -> list[common_pb2.Tool]:
    return [parse(value, common_pb2.Tool) for value in values]


# --- assistants ---------------------------------------------------------------------------


def assistant_from_row(row: Row) -> assistant_pb2.Assistant:
    assistant = assistant_pb2.Assistant(
        id=row["id"],
        created_at=row["created_at"],
        model=row["model"],
        tools=parse_tools(row["tools"]),
        metadata=row["metadata"],
    )
    for field in ("name", "description", "instructions", "temperature", "top_p"):
        set_optional(assistant, field, row[field])
    set_parsed(assistant, "tool_resources", row["tool_resources"])
    set_parsed(assistant, "response_format", row["response_format"])
    return assistant


def assistant_values(assistant: assistant_pb2.Assistant) -> dict[str, Any]:
    """Column values of every field an assistant stores."""
    return {
        "id": assistant.id,
        "created_at": assistant.created_at,
        "name": scalar_or_none(assistant, "name"),
        "description": scalar_or_none(assistant, "description"),
        "model": assistant.model,
        "instructions": scalar_or_none(assistant, "instructions"),
        "tools": tools_json(assistant.tools),
        "tool_resources": json_or_none(assistant, "tool_resources"),
        "metadata": dict(assistant.metadata),
        "temperature": scalar_or_none(assistant, "temperature"),
        "top_p": scalar_or_none(assistant, "top_p"),
        "response_format": json_or_none(assistant, "response_format"),
    }


# --- threads ------------------------------------------------------------------------------


def thread_from_row(row: Row) -> thread_pb2.Thread:
    thread = thread_pb2.Thread(id=row["id"], created_at=row["created_at"], metadata=row["metadata"])
    set_parsed(thread, "tool_resources", row["tool_resources"])
    return thread


def thread_values(thread: thread_pb2.Thread) -> dict[str, Any]:
    return {
        "id": thread.id,
        "created_at": thread.created_at,
        "tool_resources": json_or_none(thread, "tool_resources"),
        "metadata": dict(thread.metadata),
    }


# --- messages -----------------------------------------------------------------------------


def message_from_row(row: Row) -> message_pb2.Message:
    message = message_pb2.Message(
        id=row["id"],
        created_at=row["created_at"],
        thread_id=row["thread_id"],
        status=enum_value(message_pb2.MessageStatus, row["status"]),
        role=enum_value(message_pb2.MessageRole, row["role"]),
        content=[parse(part, message_pb2.MessageContent) for part in row["content"]],
        attachments=[parse(a, message_pb2.Attachment) for a in row["attachments"]],
        metadata=row["metadata"],
    )
    if row["incomplete_reason"] is not None:
        message.incomplete_details.reason = enum_value(
            message_pb2.MessageIncompleteReason, row["incomplete_reason"]
        )
    for field in ("completed_at", "incomplete_at", "assistant_id", "run_id"):
        set_optional(message, field, row[field])
    return message


def message_values(message: message_pb2.Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "thread_id": message.thread_id,
        "created_at": message.created_at,
        "status": enum_name(message_pb2.MessageStatus, message.status),
        "incomplete_reason": (
            enum_name(message_pb2.MessageIncompleteReason, message.incomplete_details.reason)
            if message.HasField("incomplete_details")
            else None
        ),
        "completed_at": scalar_or_none(message, "completed_at"),
        "incomplete_at": scalar_or_none(message, "incomplete_at"),
        "role": enum_name(message_pb2.MessageRole, message.role),
        "content": [render(part) for part in message.content],
        "assistant_id": scalar_or_none(message, "assistant_id"),
        "run_id": scalar_or_none(message, "run_id"),
        "attachments": [render(a) for a in message.attachments],
        "metadata": dict(message.metadata),
    }


__all__ = [
    "INCLUDE_FILE_SEARCH_CONTENT",
    "MODEL_VIEW",
    "assistant_from_row",
    "assistant_values",
    "file_from_row",
    "file_values",
    "json_or_none",
    "message_from_row",
    "message_values",
    "parse_tools",
    "run_from_row",
    "run_values",
    "scalar_or_none",
    "set_optional",
    "set_parsed",
    "shown_step_details",
    "step_from_row",
    "step_values",
    "thread_from_row",
    "thread_values",
    "tools_json",
]


# --- runs and steps -----------------------------------------------------------------------


# The Run's nullable fields: scalars with their own column, nested ones kept as OpenAI JSON.
_RUN_SCALARS = (
    "expires_at",
    "started_at",
    "cancelled_at",
    "failed_at",
    "completed_at",
    "instructions",
    "temperature",
    "top_p",
    "max_prompt_tokens",
    "max_completion_tokens",
)
_RUN_NESTED = (
    "required_action",
    "last_error",
    "usage",
    "truncation_strategy",
    "tool_choice",
    "response_format",
)


def run_from_row(row: Row) -> run_pb2.Run:
    run = run_pb2.Run(
        id=row["id"],
        created_at=row["created_at"],
        thread_id=row["thread_id"],
        assistant_id=row["assistant_id"],
        status=enum_value(run_pb2.RunStatus, row["status"]),
        model=row["model"],
        tools=parse_tools(row["tools"]),
        metadata=row["metadata"],
        parallel_tool_calls=row["parallel_tool_calls"],
    )
    for field in _RUN_SCALARS:
        set_optional(run, field, row[field])
    for field in _RUN_NESTED:
        set_parsed(run, field, row[field])
    if row["incomplete_reason"] is not None:
        run.incomplete_details.reason = enum_value(
            run_pb2.RunIncompleteReason, row["incomplete_reason"]
        )
    return run


def run_values(run: run_pb2.Run) -> dict[str, Any]:
    """Column values of every field of the Run object (not the bookkeeping columns)."""
    values: dict[str, Any] = {
        "id": run.id,
        "created_at": run.created_at,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "status": enum_name(run_pb2.RunStatus, run.status),
        "model": run.model,
        "tools": tools_json(run.tools),
        "metadata": dict(run.metadata),
        "parallel_tool_calls": run.parallel_tool_calls,
        "incomplete_reason": (
            enum_name(run_pb2.RunIncompleteReason, run.incomplete_details.reason)
            if run.HasField("incomplete_details")
            else None
        ),
    }
    for field in _RUN_SCALARS:
        values[field] = scalar_or_none(run, field)
    for field in _RUN_NESTED:
        values[field] = json_or_none(run, field)
    return values


# A server-side call (file_search, code_interpreter) is stored in its step with what the model
# must get back in later turns, under this key of the call: `{"name": <the function the model
# called>, "arguments": <as it wrote them>, "output": <the tool message>, "message_parts":
# [<parts the next message starts with>]}`. Kept with the call (the step row is the one record
# of it, and a run taken over by another replica needs it too); never shown: stripped here.
MODEL_VIEW = "_model_view"
# The only `include[]` value (CONTRACT.md §6): file_search results show their content only then.
INCLUDE_FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def shown_step_details(
    details: Mapping[str, Any], *, include_result_content: bool = False
) -> dict[str, Any]:
    """A step's stored details as the API shows them: without the model's view of its calls,
    and without the text of file_search results unless asked for: it is stored whole (the
    executor's ToolResult.details) and shown only then (CONTRACT.md §11.15)."""
    calls = details.get("tool_calls")
    if not calls:
        return dict(details)
    shown = []
    for call in calls:
        if MODEL_VIEW in call:
            call = {k: v for k, v in call.items() if k != MODEL_VIEW}
        body = call.get("file_search") if call.get("type") == "file_search" else None
        if not include_result_content and body and body.get("results"):
            results = [{k: v for k, v in r.items() if k != "content"} for r in body["results"]]
            call = {**call, "file_search": {**body, "results": results}}
        shown.append(call)
    return {**details, "tool_calls": shown}


def step_from_row(row: Row, *, include_result_content: bool = False) -> run_pb2.RunStep:
    """The step of a row. `include_result_content`: the request's `include[]` has
    INCLUDE_FILE_SEARCH_CONTENT; without it the results' `content` is left out."""
    details = shown_step_details(row["step_details"], include_result_content=include_result_content)
    step = run_pb2.RunStep(
        id=row["id"],
        created_at=row["created_at"],
        run_id=row["run_id"],
        assistant_id=row["assistant_id"],
        thread_id=row["thread_id"],
        type=enum_value(run_pb2.RunStepType, row["type"]),
        status=enum_value(run_pb2.RunStepStatus, row["status"]),
        step_details=parse(details, run_pb2.StepDetails),
        metadata=row["metadata"],
    )
    for field in ("expired_at", "cancelled_at", "failed_at", "completed_at"):
        set_optional(step, field, row[field])
    set_parsed(step, "last_error", row["last_error"])
    # A tool_calls step paused in requires_action already knows the usage of the model call that
    # produced it, but CONTRACT.md §11.12 shows step usage only once the step has ended.
    if row["status"] != "in_progress":
        set_parsed(step, "usage", row["usage"])
    return step


def step_values(step: run_pb2.RunStep) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": step.id,
        "created_at": step.created_at,
        "run_id": step.run_id,
        "assistant_id": step.assistant_id,
        "thread_id": step.thread_id,
        "type": enum_name(run_pb2.RunStepType, step.type),
        "status": enum_name(run_pb2.RunStepStatus, step.status),
        "step_details": render(step.step_details),
        "metadata": dict(step.metadata),
        "last_error": json_or_none(step, "last_error"),
        "usage": json_or_none(step, "usage"),
    }
    for field in ("expired_at", "cancelled_at", "failed_at", "completed_at"):
        values[field] = scalar_or_none(step, field)
    return values


# --- files --------------------------------------------------------------------------------


def file_from_row(row: Row) -> file_pb2.File:
    file = file_pb2.File(
        id=row["id"],
        bytes=row["bytes"],
        created_at=row["created_at"],
        filename=row["filename"],
        purpose=enum_value(file_pb2.FilePurpose, row["purpose"]),
    )
    set_optional(file, "expires_at", row["expires_at"])
    return file


def file_values(file: file_pb2.File) -> dict[str, Any]:
    """Column values of every field of the File object (not its project nor its sha256)."""
    return {
        "id": file.id,
        "bytes": file.bytes,
        "created_at": file.created_at,
        "filename": file.filename,
        "purpose": enum_name(file_pb2.FilePurpose, file.purpose),
        "expires_at": scalar_or_none(file, "expires_at"),
    }

"""OpenAI-shaped inputs (strings, dicts) to the contract's request messages.

Every converter also takes the generated message itself and passes it through, so callers can mix
both styles. The dict shapes are the OpenAI JSON ones, `type` discriminators included; the proto
leaves those out (the `oneof` case says it), so they are mapped here, by hand, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

from google.protobuf.message import Message

from assistants_grpc_client._function_tool import FunctionTool
from assistants_grpc_client._gen.assistants.v1 import (
    assistant_pb2,
    common_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    thread_pb2,
)
from assistants_grpc_client._params import (
    AssistantCreateParams,
    AssistantUpdateParams,
    ContentParam,
    ExpiresAfterParam,
    FileListParams,
    FilePurposeParam,
    ListParams,
    MessageCreateParams,
    MessageParam,
    OrderParam,
    ReasoningEffortParam,
    ResponseFormatParam,
    RoleParam,
    RunCreateParams,
    ThreadAndRunParams,
    ThreadCreateParams,
    ThreadParam,
    ThreadUpdateParams,
    ToolChoiceParam,
    ToolOutputParam,
    ToolParam,
    ToolResourcesParam,
    ToolRunParams,
    TruncationStrategyParam,
)

M = TypeVar("M", bound=Message)

__all__ = [
    "create_assistant_request",
    "create_message_request",
    "create_run_request",
    "create_thread_request",
    "expires_after",
    "file_list_request",
    "file_purpose",
    "list_request",
    "thread_and_run_request",
    "tool",
    "tool_output",
    "update_assistant_request",
    "update_thread_request",
]


def _enum(wrapper: Any, prefix: str, value: Any, what: str) -> Any:
    """An enum value from its OpenAI string ("requires_action") or the number itself."""
    if isinstance(value, int):
        return value
    try:
        return wrapper.Value(f"{prefix}{str(value).upper()}")
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}") from None


def _kind(value: Mapping[str, Any], what: str) -> str:
    kind = value.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"{what} needs a 'type', got {dict(value)!r}")
    return kind


def _check_keys(params: Mapping[str, Any], allowed: Iterable[str], method: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword arguments {unknown}")


def _keys(typed_dict: Any) -> frozenset[str]:
    return frozenset(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def role(value: RoleParam) -> message_pb2.MessageRole.ValueType:
    result: message_pb2.MessageRole.ValueType = _enum(
        message_pb2.MessageRole, "MESSAGE_ROLE_", value, "role"
    )
    return result


def order(value: OrderParam) -> common_pb2.ListOrder.ValueType:
    result: common_pb2.ListOrder.ValueType = _enum(
        common_pb2.ListOrder, "LIST_ORDER_", value, "order"
    )
    return result


def file_purpose(value: FilePurposeParam) -> file_pb2.FilePurpose.ValueType:
    result: file_pb2.FilePurpose.ValueType = _enum(
        file_pb2.FilePurpose, "FILE_PURPOSE_", value, "purpose"
    )
    return result


def expires_after(value: ExpiresAfterParam) -> file_pb2.FileExpiresAfter:
    if isinstance(value, file_pb2.FileExpiresAfter):
        return value
    _check_keys(value, ("anchor", "seconds"), "expires_after")
    return file_pb2.FileExpiresAfter(
        anchor=value.get("anchor", "created_at"), seconds=value["seconds"]
    )


def file_list_request(params: FileListParams) -> file_pb2.ListFilesRequest:
    paging = {k: v for k, v in params.items() if k != "purpose"}
    request = list_request(file_pb2.ListFilesRequest(), cast(ListParams, paging))
    purpose = params.get("purpose")
    if purpose is not None:
        request.purpose = file_purpose(purpose)
    return request


def reasoning_effort(value: ReasoningEffortParam) -> common_pb2.ReasoningEffort.ValueType:
    result: common_pb2.ReasoningEffort.ValueType = _enum(
        common_pb2.ReasoningEffort, "REASONING_EFFORT_", value, "reasoning_effort"
    )
    return result


def _image_detail(value: Any) -> message_pb2.ImageDetail.ValueType:
    result: message_pb2.ImageDetail.ValueType = _enum(
        message_pb2.ImageDetail, "IMAGE_DETAIL_", value, "image detail"
    )
    return result


def _image(message: M, value: Mapping[str, Any]) -> M:
    for name, item in value.items():
        setattr(message, name, _image_detail(item) if name == "detail" else item)
    return message


def content(value: ContentParam) -> list[message_pb2.MessageContentInput]:
    """A plain string becomes one text part, as in the OpenAI API."""
    if isinstance(value, str):
        return [message_pb2.MessageContentInput(text=value)]
    parts = []
    for part in value:
        if isinstance(part, message_pb2.MessageContentInput):
            parts.append(part)
            continue
        kind = _kind(part, "a content part")
        if kind == "text":
            parts.append(message_pb2.MessageContentInput(text=part["text"]))
        elif kind == "image_file":
            image = _image(message_pb2.ImageFile(), part["image_file"])
            parts.append(message_pb2.MessageContentInput(image_file=image))
        elif kind == "image_url":
            url = _image(message_pb2.ImageUrl(), part["image_url"])
            parts.append(message_pb2.MessageContentInput(image_url=url))
        else:
            raise ValueError(f"unknown content part type {kind!r}")
    return parts


def _attachment(value: message_pb2.Attachment | Mapping[str, Any]) -> message_pb2.Attachment:
    if isinstance(value, message_pb2.Attachment):
        return value
    return message_pb2.Attachment(
        file_id=value["file_id"],
        tools=[
            message_pb2.AttachmentTool(
                type=_enum(
                    common_pb2.ToolType, "TOOL_TYPE_", _kind(t, "an attachment tool"), "tool"
                )
            )
            for t in value.get("tools", ())
        ],
    )


def message_input(value: MessageParam) -> message_pb2.MessageInput:
    if isinstance(value, message_pb2.MessageInput):
        return value
    _check_keys(value, ("role", "content", "attachments", "metadata"), "a message")
    return _fill(message_pb2.MessageInput(), value)


def tool(value: ToolParam) -> common_pb2.Tool:
    if isinstance(value, common_pb2.Tool):
        return value
    if isinstance(value, FunctionTool):
        return value.to_proto()
    kind = _kind(value, "a tool")
    if kind == "function":
        spec = value["function"]
        definition = common_pb2.FunctionDefinition(name=spec["name"])
        if spec.get("description") is not None:
            definition.description = spec["description"]
        if spec.get("parameters") is not None:
            definition.parameters.update(spec["parameters"])
        if spec.get("strict") is not None:
            definition.strict = spec["strict"]
        return common_pb2.Tool(function=definition)
    if kind == "code_interpreter":
        return common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
    if kind == "file_search":
        settings = common_pb2.FileSearchSettings()
        spec = value.get("file_search") or {}
        if spec.get("max_num_results") is not None:
            settings.max_num_results = spec["max_num_results"]
        if spec.get("ranking_options") is not None:
            ranking = spec["ranking_options"]
            settings.ranking_options.score_threshold = ranking.get("score_threshold", 0.0)
            if ranking.get("ranker") is not None:
                settings.ranking_options.ranker = ranking["ranker"]
        return common_pb2.Tool(file_search=settings)
    raise ValueError(f"unknown tool type {kind!r}")


def tool_resources(value: ToolResourcesParam) -> common_pb2.ToolResources:
    if isinstance(value, common_pb2.ToolResources):
        return value
    resources = common_pb2.ToolResources()
    if (code := value.get("code_interpreter")) is not None:
        resources.code_interpreter.file_ids.extend(code.get("file_ids", ()))
    if (search := value.get("file_search")) is not None:
        resources.file_search.vector_store_ids.extend(search.get("vector_store_ids", ()))
        for store in search.get("vector_stores", ()):
            spec = resources.file_search.vector_stores.add(
                file_ids=store.get("file_ids", ()), metadata=store.get("metadata") or {}
            )
            if (chunking := store.get("chunking_strategy")) is not None:
                if _kind(chunking, "a chunking strategy") == "static":
                    spec.chunking_strategy.static.SetInParent()
                    for name, number in chunking.get("static", {}).items():
                        setattr(spec.chunking_strategy.static, name, number)
                else:
                    spec.chunking_strategy.auto.SetInParent()
    return resources


def response_format(value: ResponseFormatParam) -> common_pb2.ResponseFormat:
    if isinstance(value, common_pb2.ResponseFormat):
        return value
    kind = value if isinstance(value, str) else _kind(value, "a response format")
    result = common_pb2.ResponseFormat()
    if kind == "auto":
        result.auto.SetInParent()
    elif kind == "text":
        result.text.SetInParent()
    elif kind == "json_object":
        result.json_object.SetInParent()
    elif kind == "json_schema" and not isinstance(value, str):
        spec = value["json_schema"]
        result.json_schema.name = spec["name"]
        if spec.get("description") is not None:
            result.json_schema.description = spec["description"]
        if spec.get("schema") is not None:
            result.json_schema.schema.update(spec["schema"])
        if spec.get("strict") is not None:
            result.json_schema.strict = spec["strict"]
    else:
        raise ValueError(f"unknown response format {value!r}")
    return result


def tool_choice(value: ToolChoiceParam) -> common_pb2.ToolChoice:
    if isinstance(value, common_pb2.ToolChoice):
        return value
    if isinstance(value, str):
        return common_pb2.ToolChoice(
            mode=_enum(common_pb2.ToolChoiceMode, "TOOL_CHOICE_MODE_", value, "tool_choice")
        )
    named = common_pb2.NamedToolChoice(
        type=_enum(common_pb2.ToolType, "TOOL_TYPE_", _kind(value, "a tool choice"), "tool type")
    )
    if value.get("function") is not None:
        named.function.name = value["function"]["name"]
    return common_pb2.ToolChoice(named=named)


def truncation_strategy(value: TruncationStrategyParam) -> run_pb2.TruncationStrategy:
    if isinstance(value, run_pb2.TruncationStrategy):
        return value
    strategy = run_pb2.TruncationStrategy(
        type=_enum(run_pb2.TruncationType, "TRUNCATION_TYPE_", _kind(value, "a strategy"), "type")
    )
    if value.get("last_messages") is not None:
        strategy.last_messages = value["last_messages"]
    return strategy


def thread_input(value: ThreadParam) -> run_pb2.ThreadInput:
    if isinstance(value, run_pb2.ThreadInput):
        return value
    _check_keys(value, ("messages", "metadata", "tool_resources"), "a thread")
    return _fill(run_pb2.ThreadInput(), value)


def tool_output(value: ToolOutputParam) -> run_pb2.ToolOutput:
    if isinstance(value, run_pb2.ToolOutput):
        return value
    return run_pb2.ToolOutput(tool_call_id=value["tool_call_id"], output=value.get("output", ""))


def _tools(values: Iterable[ToolParam]) -> list[common_pb2.Tool]:
    return [tool(t) for t in values]


def _attachments(
    values: Iterable[message_pb2.Attachment | Mapping[str, Any]],
) -> list[message_pb2.Attachment]:
    return [_attachment(a) for a in values]


def _messages(values: Iterable[MessageParam]) -> list[message_pb2.MessageInput]:
    return [message_input(m) for m in values]


# The parameters that need converting; the rest (strings, numbers, string maps and lists) are
# copied as they are.
_CONVERTERS: dict[str, Any] = {
    "role": role,
    "content": content,
    "attachments": _attachments,
    "tools": _tools,
    "messages": _messages,
    "additional_messages": _messages,
    "tool_resources": tool_resources,
    "response_format": response_format,
    "reasoning_effort": reasoning_effort,
    "tool_choice": tool_choice,
    "truncation_strategy": truncation_strategy,
    "thread": thread_input,
}


def _fill(request: M, params: Mapping[str, Any]) -> M:
    """Copy the present parameters (None means absent) into the request, each where its field
    wants it: an update's lists and maps sit in wrapper messages (`ToolList`, `Metadata`),
    which tell "replace with empty" from "leave alone"."""
    fields = request.DESCRIPTOR.fields_by_name
    for name, value in params.items():
        if value is None:
            continue
        if name in _CONVERTERS:
            value = _CONVERTERS[name](value)
        field = fields[name]
        wrapper = field.message_type.full_name if field.message_type is not None else None
        if wrapper == "assistants.v1.ToolList":
            getattr(request, name).SetInParent()  # present even when empty: "remove all"
            getattr(request, name).tools.extend(value)
        elif wrapper == "assistants.v1.Metadata":
            getattr(request, name).SetInParent()
            getattr(request, name).values.update(value)
        elif (
            field.is_repeated
            and field.message_type is not None
            and (field.message_type.GetOptions().map_entry)
        ):
            getattr(request, name).update(value)
        elif field.is_repeated:
            getattr(request, name).extend(value)
        elif isinstance(value, Message):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


def create_assistant_request(
    params: AssistantCreateParams,
) -> assistant_pb2.CreateAssistantRequest:
    _check_keys(params, _keys(AssistantCreateParams), "create")
    return _fill(assistant_pb2.CreateAssistantRequest(), params)


def update_assistant_request(
    assistant_id: str, params: AssistantUpdateParams
) -> assistant_pb2.UpdateAssistantRequest:
    _check_keys(params, _keys(AssistantUpdateParams), "update")
    return _fill(assistant_pb2.UpdateAssistantRequest(assistant_id=assistant_id), params)


def create_thread_request(params: ThreadCreateParams) -> thread_pb2.CreateThreadRequest:
    _check_keys(params, _keys(ThreadCreateParams), "create")
    return _fill(thread_pb2.CreateThreadRequest(), params)


def update_thread_request(
    thread_id: str, params: ThreadUpdateParams
) -> thread_pb2.UpdateThreadRequest:
    _check_keys(params, _keys(ThreadUpdateParams), "update")
    return _fill(thread_pb2.UpdateThreadRequest(thread_id=thread_id), params)


def create_message_request(
    thread_id: str, params: MessageCreateParams
) -> message_pb2.CreateMessageRequest:
    _check_keys(params, _keys(MessageCreateParams), "create")
    return _fill(message_pb2.CreateMessageRequest(thread_id=thread_id), params)


def create_run_request(
    thread_id: str, assistant_id: str, params: RunCreateParams | ToolRunParams
) -> run_pb2.CreateRunRequest:
    """The request of CreateRun(Stream), from `RunCreateParams` (or a tool run's, which lack
    `tools`)."""
    _check_keys(params, _keys(RunCreateParams), "create")
    return _fill(run_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id), params)


def thread_and_run_request(
    assistant_id: str, params: ThreadAndRunParams
) -> run_pb2.CreateThreadAndRunRequest:
    _check_keys(params, _keys(ThreadAndRunParams), "create_and_run")
    return _fill(run_pb2.CreateThreadAndRunRequest(assistant_id=assistant_id), params)


def list_request(request: M, params: ListParams, method: str = "list") -> M:
    """Fill a List*Request's paging fields (and any extra filters such as `run_id`)."""
    values: Mapping[str, Any] = params
    for name, value in values.items():
        if value is None:
            continue
        if name == "order":
            setattr(request, name, order(value))
        elif name == "include":
            getattr(request, name).extend(value)
        elif name in request.DESCRIPTOR.fields_by_name:
            setattr(request, name, value)
        else:
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")
    return request

"""The input rules of CONTRACT.md, checked on request messages before anything is written.

Checks collect every violation with its field path (`tools[2].function.name`), so one
INVALID_ARGUMENT names all that is wrong, not just the first thing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2

from assistants_grpc.contract.pb import common_pb2, message_pb2
from assistants_grpc.engine.server_tools import BUILTIN_FUNCTIONS
from assistants_grpc.services.errors import FieldViolation, InvalidArgumentError
from assistants_grpc.services.limits import Limits

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000
MAX_ASSISTANT_TOOLS = 128
MAX_RUN_TOOLS = 20
MAX_FILE_IDS = 20
MAX_MODEL = 256
MIN_TOKEN_BUDGET = 256
# JSON Schemas (function parameters, response_format json_schema) are user data that is stored,
# rendered and sent to the model: bounded in size and nesting so none of that can blow up.
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_BYTES = 64 * 1024
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Every id this server hands out has this shape. Anything else names no object, so it is answered
# NOT_FOUND without a query (a NUL byte would even make PostgreSQL fail the query).
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RANKERS = ("auto", "default_2024_08_21")


class Violations:
    """Collects field violations; `raise_if_any` turns them into one InvalidArgumentError."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgumentError(self.items)


def check_required_id(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "required.")


def plausible_id(value: str) -> bool:
    return _PLAUSIBLE_ID.fullmatch(value) is not None


def check_length(v: Violations, field: str, value: str | None, maximum: int) -> None:
    """At most `maximum` characters, and no NUL (PostgreSQL text cannot hold one)."""
    if value is None:
        return
    if len(value) > maximum:
        v.add(
            field,
            f"string too long. Expected a string with maximum length {maximum}, "
            f"but got a string with length {len(value)} instead.",
        )
    elif "\x00" in value:
        v.add(field, "must not contain NUL characters.")


def check_metadata(v: Violations, field: str, metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        v.add(field, f"at most {MAX_METADATA_KEYS} keys are allowed, got {len(metadata)}.")
    for key, value in metadata.items():
        if not key:
            v.add(field, "keys must not be empty.")
        elif len(key) > MAX_METADATA_KEY:
            v.add(f"{field}.{key[:MAX_METADATA_KEY]}…", f"key longer than {MAX_METADATA_KEY}.")
        if len(value) > MAX_METADATA_VALUE:
            v.add(f"{field}.{key}", f"value longer than {MAX_METADATA_VALUE} characters.")


def check_range(v: Violations, field: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if math.isnan(value) or value < low:
        v.add(field, f"number below minimum value. Expected a value >= {low}, got {value}.")
    elif value > high:
        v.add(field, f"number above maximum value. Expected a value <= {high}, got {value}.")


def check_model(v: Violations, field: str, model: str, *, required: bool) -> None:
    if required and not model.strip():
        v.add(field, "required.")
    check_length(v, field, model, MAX_MODEL)


def check_enum(v: Violations, field: str, value: int, enum: Any, *, required: bool) -> None:
    """`value` must be a known number of `enum`; 0 (UNSPECIFIED) only when not required."""
    if value == 0:
        if required:
            v.add(field, "required.")
        return
    if value not in enum.values():
        v.add(field, f"unknown value {value}.")


def check_tools(v: Violations, field: str, tools: Sequence[common_pb2.Tool], maximum: int) -> None:
    if len(tools) > maximum:
        v.add(field, f"array too long. Expected at most {maximum} tools, got {len(tools)}.")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"{field}[{i}]"
        case = tool.WhichOneof("tool")
        if case is None:
            v.add(f"{path}.type", "required: one of function, file_search, code_interpreter.")
        elif case == "function":
            _check_function(v, f"{path}.function", tool.function)
            if tool.function.name in seen:
                v.add(f"{path}.function.name", f"duplicate function name {tool.function.name!r}.")
            seen.add(tool.function.name)
        elif case == "file_search":
            _check_file_search(v, f"{path}.file_search", tool.file_search)
    # A chat model sees each built-in tool as a function (file_search, python): a function of
    # the same name beside it would be two tools the model cannot tell apart.
    enabled = {tool.WhichOneof("tool") for tool in tools}
    for i, tool in enumerate(tools):
        if tool.WhichOneof("tool") != "function":
            continue
        for builtin, name in BUILTIN_FUNCTIONS.items():
            if builtin in enabled and tool.function.name == name:
                v.add(
                    f"{field}[{i}].function.name",
                    f"{name!r} is the name the {builtin} tool is given to the model; "
                    "a function may not use it on a run that enables that tool.",
                )


def _check_function(v: Violations, path: str, fn: common_pb2.FunctionDefinition) -> None:
    if not _FUNCTION_NAME.fullmatch(fn.name):
        v.add(f"{path}.name", "must match [A-Za-z0-9_-] and be 1 to 64 characters long.")
    if fn.HasField("description"):
        check_length(v, f"{path}.description", fn.description, MAX_DESCRIPTION * 2)
    if fn.HasField("parameters"):
        check_json_schema_object(v, f"{path}.parameters", fn.parameters)


def check_struct(v: Violations, path: str, value: struct_pb2.Struct) -> bool:
    """A JSON object within the schema limits: at most MAX_SCHEMA_BYTES serialized, nested at
    most MAX_SCHEMA_DEPTH deep, numbers finite (JSON has no NaN). False if it is not."""
    size = value.ByteSize()
    if size > MAX_SCHEMA_BYTES:
        v.add(path, f"too large: {size} bytes serialized, at most {MAX_SCHEMA_BYTES}.")
        return False
    # Iterative, so a deep value cannot exhaust the interpreter's stack.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_SCHEMA_DEPTH:
            v.add(path, f"nested too deeply: at most {MAX_SCHEMA_DEPTH} levels.")
            return False
        children = item.fields.values() if isinstance(item, struct_pb2.Struct) else item.values
        for child in children:
            kind = child.WhichOneof("kind")
            if kind == "struct_value":
                pending.append((child.struct_value, depth + 1))
            elif kind == "list_value":
                pending.append((child.list_value, depth + 1))
            elif kind == "number_value" and not math.isfinite(child.number_value):
                v.add(path, "numbers must be finite (JSON has no NaN or Infinity).")
                return False
    return True


def check_json_schema_object(v: Violations, path: str, schema: struct_pb2.Struct) -> None:
    """Function parameters describe the arguments object, so the schema must be of type object."""
    if not check_struct(v, path, schema):
        return
    fields = schema.fields
    if "type" in fields:
        declared = fields["type"]
        if declared.WhichOneof("kind") != "string_value" or declared.string_value != "object":
            v.add(
                f"{path}.type", 'a function\'s parameters must be a JSON Schema of type "object".'
            )
    if "properties" in fields and fields["properties"].WhichOneof("kind") != "struct_value":
        v.add(f"{path}.properties", "must be an object.")


def _check_file_search(v: Violations, path: str, settings: common_pb2.FileSearchSettings) -> None:
    if settings.HasField("max_num_results") and not 1 <= settings.max_num_results <= 50:
        v.add(f"{path}.max_num_results", "must be between 1 and 50.")
    if settings.HasField("ranking_options"):
        options = settings.ranking_options
        if options.HasField("ranker") and options.ranker not in _RANKERS:
            v.add(f"{path}.ranking_options.ranker", f"must be one of {', '.join(_RANKERS)}.")
        check_range(v, f"{path}.ranking_options.score_threshold", options.score_threshold, 0, 1)


def check_tool_resources(
    v: Violations, field: str, resources: common_pb2.ToolResources, *, create_form: bool
) -> None:
    if resources.HasField("code_interpreter"):
        file_ids = resources.code_interpreter.file_ids
        if len(file_ids) > MAX_FILE_IDS:
            v.add(f"{field}.code_interpreter.file_ids", f"at most {MAX_FILE_IDS} file ids.")
    if resources.HasField("file_search"):
        search = resources.file_search
        path = f"{field}.file_search"
        if len(search.vector_store_ids) > 1:
            v.add(f"{path}.vector_store_ids", "at most 1 vector store.")
        if search.vector_stores and not create_form:
            v.add(f"{path}.vector_stores", "only allowed when creating; use vector_store_ids.")
        elif search.vector_stores:
            if search.vector_store_ids:
                v.add(path, "vector_store_ids and vector_stores are mutually exclusive.")
            if len(search.vector_stores) > 1:
                v.add(f"{path}.vector_stores", "at most 1 vector store.")
            for i, store in enumerate(search.vector_stores):
                _check_vector_store(v, f"{path}.vector_stores[{i}]", store)


def _check_vector_store(v: Violations, path: str, store: common_pb2.VectorStoreSpec) -> None:
    check_metadata(v, f"{path}.metadata", store.metadata)
    if len(store.file_ids) > MAX_STORE_FILE_IDS:
        v.add(f"{path}.file_ids", f"at most {MAX_STORE_FILE_IDS} file ids.")
    if store.HasField("chunking_strategy"):
        check_chunking_strategy(v, f"{path}.chunking_strategy", store.chunking_strategy)


# OpenAI's `auto` chunking, and the bounds of `static` (CONTRACT.md §12).
AUTO_CHUNK_TOKENS = 800
AUTO_CHUNK_OVERLAP = 400
MAX_STORE_FILE_IDS = 500


def check_chunking_strategy(
    v: Violations, path: str, strategy: common_pb2.ChunkingStrategy
) -> tuple[int, int]:
    """The (max tokens, overlap) a strategy stands for; `auto` (or none) is 800/400."""
    if not strategy.HasField("static"):
        return AUTO_CHUNK_TOKENS, AUTO_CHUNK_OVERLAP
    static = strategy.static
    size, overlap = static.max_chunk_size_tokens, static.chunk_overlap_tokens
    if not 100 <= size <= 4096:
        v.add(f"{path}.static.max_chunk_size_tokens", "must be 100..4096.")
    if overlap < 0 or overlap > size // 2:
        v.add(
            f"{path}.static.chunk_overlap_tokens",
            "must be between 0 and half of max_chunk_size_tokens.",
        )
    return size, overlap


def check_response_format(
    v: Violations, field: str, fmt: common_pb2.ResponseFormat, tools: Iterable[common_pb2.Tool]
) -> None:
    case = fmt.WhichOneof("format")
    if case is None:
        v.add(field, "required: one of auto, text, json_object, json_schema.")
    elif case == "json_schema":
        if not _FUNCTION_NAME.fullmatch(fmt.json_schema.name):
            v.add(f"{field}.json_schema.name", "must match [A-Za-z0-9_-], 1 to 64 characters.")
        if fmt.json_schema.HasField("schema"):
            check_struct(v, f"{field}.json_schema.schema", fmt.json_schema.schema)
        if any(tool.WhichOneof("tool") != "function" for tool in tools):
            v.add(
                "tools",
                "Invalid tools: all tools must be of type `function` when `response_format` "
                "is of type `json_schema`.",
            )


_BUILTIN_TYPES = {
    common_pb2.TOOL_TYPE_FILE_SEARCH: "file_search",
    common_pb2.TOOL_TYPE_CODE_INTERPRETER: "code_interpreter",
}


def check_tool_choice(
    v: Violations, field: str, choice: common_pb2.ToolChoice, tools: Sequence[common_pb2.Tool]
) -> None:
    case = choice.WhichOneof("choice")
    if case is None:
        v.add(field, "required: a mode or a named tool.")
    elif case == "mode":
        check_enum(v, field, choice.mode, common_pb2.ToolChoiceMode, required=True)
    else:
        named = choice.named
        check_enum(v, f"{field}.type", named.type, common_pb2.ToolType, required=True)
        if named.type == common_pb2.TOOL_TYPE_FUNCTION:
            if not named.HasField("function") or not named.function.name:
                v.add(f"{field}.function.name", "required when type is function.")
            elif not any(
                t.WhichOneof("tool") == "function" and t.function.name == named.function.name
                for t in tools
            ):
                v.add(f"{field}.function.name", f"no function named {named.function.name!r}.")
        elif named.type in _BUILTIN_TYPES:
            kind = _BUILTIN_TYPES[named.type]
            if not any(t.WhichOneof("tool") == kind for t in tools):
                v.add(f"{field}.type", f"the run has no {kind} tool to force.")


def check_message_input(
    v: Violations,
    field: str,
    role: int,
    content: Sequence[message_pb2.MessageContentInput],
    attachments: Sequence[message_pb2.Attachment],
    metadata: Mapping[str, str],
    limits: Limits,
) -> None:
    """A MessageCreate (CONTRACT.md §5); `field` is the prefix ("" for CreateMessage itself)."""
    prefix = f"{field}." if field else ""
    check_enum(v, f"{prefix}role", role, message_pb2.MessageRole, required=True)
    if not content:
        v.add(f"{prefix}content", "must contain at least one part.")
    if len(content) > limits.max_content_parts:
        v.add(
            f"{prefix}content",
            f"array too long. Expected at most {limits.max_content_parts} parts, "
            f"got {len(content)}.",
        )
        content = []  # one violation says it all; checking every part would only add noise
    chars = sum(len(part.text) for part in content if part.WhichOneof("content") == "text")
    if chars > limits.max_message_chars:
        v.add(
            f"{prefix}content",
            f"text too long. Expected at most {limits.max_message_chars} characters in all, "
            f"got {chars}.",
        )
    for i, part in enumerate(content):
        path = f"{prefix}content[{i}]"
        case = part.WhichOneof("content")
        if case is None:
            v.add(f"{path}.type", "required: one of text, image_file, image_url.")
        elif case == "text" and not part.text:
            v.add(f"{path}.text", "must not be empty.")
        elif case == "image_file":
            if not part.image_file.file_id:
                v.add(f"{path}.image_file.file_id", "required.")
            _check_detail(v, f"{path}.image_file.detail", part.image_file)
        elif case == "image_url":
            if not part.image_url.url.startswith(("https://", "http://", "data:image/")):
                v.add(f"{path}.image_url.url", "must be an http(s) URL or an image data URL.")
            _check_detail(v, f"{path}.image_url.detail", part.image_url)
    for i, attachment in enumerate(attachments):
        path = f"{prefix}attachments[{i}]"
        if not attachment.file_id:
            v.add(f"{path}.file_id", "required.")
        for j, tool in enumerate(attachment.tools):
            if tool.type not in (
                common_pb2.TOOL_TYPE_CODE_INTERPRETER,
                common_pb2.TOOL_TYPE_FILE_SEARCH,
            ):
                v.add(f"{path}.tools[{j}].type", "must be code_interpreter or file_search.")
    check_metadata(v, f"{prefix}metadata", metadata)


def _check_detail(
    v: Violations, field: str, image: message_pb2.ImageFile | message_pb2.ImageUrl
) -> None:
    if image.HasField("detail"):
        check_enum(v, field, image.detail, message_pb2.ImageDetail, required=False)


def check_tool_outputs(v: Violations, field: str, outputs: Sequence[Any], limits: Limits) -> None:
    """Every output names its call and fits the per-output and per-submission sizes."""
    total = 0
    for i, output in enumerate(outputs):
        if not output.HasField("tool_call_id") or not output.tool_call_id:
            v.add(f"{field}[{i}].tool_call_id", "required.")
        size = len(output.output.encode())
        total += size
        if size > limits.max_tool_output_bytes:
            v.add(
                f"{field}[{i}].output",
                f"too large: {size} bytes, at most {limits.max_tool_output_bytes}.",
            )
    if total > limits.max_tool_outputs_bytes:
        v.add(field, f"too large: {total} bytes in all, at most {limits.max_tool_outputs_bytes}.")


__all__ = [
    "AUTO_CHUNK_OVERLAP",
    "AUTO_CHUNK_TOKENS",
    "MAX_ASSISTANT_TOOLS",
    "MAX_DESCRIPTION",
    "MAX_INSTRUCTIONS",
    "MAX_NAME",
    "MAX_RUN_TOOLS",
    "MAX_SCHEMA_BYTES",
    "MAX_SCHEMA_DEPTH",
    "MAX_STORE_FILE_IDS",
    "MIN_TOKEN_BUDGET",
    "Violations",
    "check_chunking_strategy",
    "check_enum",
    "check_json_schema_object",
    "check_length",
    "check_message_input",
    "check_metadata",
    "check_model",
    "check_range",
    "check_required_id",
    "check_response_format",
    "check_struct",
    "check_tool_choice",
    "check_tool_outputs",
    "check_tool_resources",
    "check_tools",
    "plausible_id",
]

"""What a request says, read into the request protos: headers for the Guard, the `OpenAI-Beta`
header, the JSON body (within the size limit) and the query string.

Nothing is validated against a second model of the objects: the body, the query parameters and
the path ids are put together as one JSON object and parsed by `contract.openai_json.parse`,
which refuses what does not fit the proto (an unknown key, a wrong type) naming the path; the
services then check the rules as they do for gRPC. A key that belongs to the path or the query
(`thread_id`, `include`) is refused in the body, as OpenAI did: only the URL says it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from starlette.requests import Request

from assistants_grpc.contract.openai_json import OpenAIJSONError, parse
from assistants_grpc.http.errors import BAD_JSON, BETA_V1, HttpError, too_large
from assistants_grpc.services.errors import InvalidArgumentError

M = TypeVar("M", bound=Message)

_INTEGER_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
    }
)


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers as the Guard reads them: lowercase names (ASGI's already are), a repeated
    name's values joined with ", " (RFC 9110 §5.3), so two Authorization headers read as one
    malformed one, as two authorization metadata entries do over gRPC."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def check_beta(headers: Mapping[str, str]) -> None:
    """`OpenAI-Beta` may be absent (the SDK always sends it; other clients need not) or name
    `assistants=v2`; `assistants=v1` (or any other version) gets OpenAI's own 400."""
    value = headers.get("openai-beta")
    if value is None:
        return
    for part in value.split(","):
        name, _, version = part.strip().partition("=")
        if name.strip().lower() == "assistants" and version.strip().lower() != "v2":
            raise HttpError(400, BETA_V1, code="invalid_beta")


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON and no field can hold.
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON (None when empty: `cancel` sends nothing); 413 past `limit` bytes,
    counted as they arrive whatever Content-Length said, and 400 when it is not JSON."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    if not body.strip():
        return None
    try:
        return json.loads(bytes(body), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise HttpError(400, BAD_JSON) from None


def query_values(
    request: Request, message_type: type[Message], allowed: frozenset[str]
) -> dict[str, Any]:
    """The query string as JSON values of `message_type`'s fields: `include[]=a&include[]=b`
    (the SDK's bracket form) or `include=a` for a repeated field, integers as integers."""
    fields = message_type.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {}
    for raw_name, value in request.query_params.multi_items():
        name = raw_name.removesuffix("[]")
        field = fields.get(name) if name in allowed else None
        if field is None:
            raise InvalidArgumentError.single(name, "unknown query parameter")
        item: Any = value
        if field.type in _INTEGER_TYPES:
            try:
                item = int(value)
            except ValueError:
                raise InvalidArgumentError.single(name, "expected an integer") from None
        if field.is_repeated:
            values.setdefault(name, []).append(item)
        elif name in values:
            raise InvalidArgumentError.single(name, "given more than once")
        else:
            values[name] = item
    return values


def build(
    message_type: type[M],
    body: Any,
    path: Mapping[str, str],
    query: Mapping[str, Any],
    reserved: frozenset[str],
) -> M:
    """One request proto from the body, the query values and the path ids (`reserved`: the
    names only the URL may give)."""
    if body is None:
        data: dict[str, Any] = {}
    elif isinstance(body, dict):
        for key in body:
            if key in reserved:
                raise InvalidArgumentError.single(key, "unknown key")
        data = body
    else:
        raise InvalidArgumentError.single("body", "expected a JSON object")
    data = {**data, **query, **path}
    try:
        return parse(data, message_type)
    except OpenAIJSONError as error:
        raise InvalidArgumentError.single(error.path or "body", error.problem) from None
    except (ValueError, TypeError, RecursionError):
        # What protobuf itself refuses (a string with a lone surrogate, nesting past its limit).
        raise InvalidArgumentError.single("body", "cannot be parsed") from None


def stream_flag(body: Any) -> bool:
    """Whether the body asks for a stream (`"stream": true`), removing the key: it is the
    face's to decide, not a field of the request proto."""
    if not isinstance(body, dict) or "stream" not in body:
        return False
    value = body.pop("stream")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgumentError.single("stream", "expected a boolean")
    return value


__all__ = [
    "build",
    "check_beta",
    "query_values",
    "read_json",
    "request_headers",
    "stream_flag",
]

"""The OpenAI JSON form of the ``assistants.v1`` proto messages, both ways.

:func:`render` turns an object (Assistant, Run, a list page, a delta…) into the exact JSON the
OpenAI Assistants API v2 sends; :func:`parse` reads that JSON, or a request shape, back into the
proto. :func:`render_value` renders nested values that are not objects (``"auto"``, a tool list);
:func:`enum_name` and :func:`enum_value` map one enum value; :func:`render_event` and
:func:`to_sse` give a streamed ``RunEvent`` as the event name and data the SDK reads. The store
keeps nested structures as this JSON and an HTTP gateway reuses it, so the mapping lives in one
module (DESIGN.md, "Decisions").
"""

from assistants_grpc.contract.openai_json import (
    OpenAIJSONError,
    enum_name,
    enum_value,
    parse,
    render,
    render_event,
    render_value,
    to_sse,
)

__all__ = [
    "OpenAIJSONError",
    "enum_name",
    "enum_value",
    "parse",
    "render",
    "render_event",
    "render_value",
    "to_sse",
]

"""`/v1/assistants` (CONTRACT.md §3)."""

from __future__ import annotations

from starlette.types import ASGIApp

from assistants_grpc.contract.pb import assistant_pb2 as A
from assistants_grpc.http.call import Call
from assistants_grpc.http.routes.table import Route

LIST_QUERY = frozenset({"limit", "order", "after", "before"})


async def create(call: Call) -> ASGIApp:
    request = call.parse(A.CreateAssistantRequest)
    return call.respond(await call.services.assistants.create(call.project, request))


async def list_(call: Call) -> ASGIApp:
    request = call.parse(A.ListAssistantsRequest, query=LIST_QUERY)
    return call.respond(await call.services.assistants.list(call.project, request))


async def get(call: Call) -> ASGIApp:
    request = call.parse(A.GetAssistantRequest)
    return call.respond(await call.services.assistants.get(call.project, request.assistant_id))


async def update(call: Call) -> ASGIApp:
    request = call.parse(A.UpdateAssistantRequest)
    return call.respond(await call.services.assistants.update(call.project, request))


async def delete(call: Call) -> ASGIApp:
    request = call.parse(A.DeleteAssistantRequest)
    return call.respond(await call.services.assistants.delete(call.project, request.assistant_id))


ROUTES = (
    Route("POST", "/assistants", "createAssistant", create),
    Route("GET", "/assistants", "listAssistants", list_),
    Route("GET", "/assistants/{assistant_id}", "getAssistant", get),
    Route("POST", "/assistants/{assistant_id}", "modifyAssistant", update),
    Route("DELETE", "/assistants/{assistant_id}", "deleteAssistant", delete),
)

__all__ = ["LIST_QUERY", "ROUTES"]

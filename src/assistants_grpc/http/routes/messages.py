"""`/v1/threads/{thread_id}/messages` (CONTRACT.md §5)."""

from __future__ import annotations

from starlette.types import ASGIApp

from assistants_grpc.contract.pb import message_pb2 as M
from assistants_grpc.http.call import Call
from assistants_grpc.http.routes.assistants import LIST_QUERY
from assistants_grpc.http.routes.table import Route

BASE = "/threads/{thread_id}/messages"


async def create(call: Call) -> ASGIApp:
    request = call.parse(M.CreateMessageRequest)
    return call.respond(await call.services.messages.create(call.project, request))


async def list_(call: Call) -> ASGIApp:
    request = call.parse(M.ListMessagesRequest, query=LIST_QUERY | {"run_id"})
    return call.respond(await call.services.messages.list(call.project, request))


async def get(call: Call) -> ASGIApp:
    request = call.parse(M.GetMessageRequest)
    message = await call.services.messages.get(call.project, request.thread_id, request.message_id)
    return call.respond(message)


async def update(call: Call) -> ASGIApp:
    request = call.parse(M.UpdateMessageRequest)
    return call.respond(await call.services.messages.update(call.project, request))


async def delete(call: Call) -> ASGIApp:
    request = call.parse(M.DeleteMessageRequest)
    deleted = await call.services.messages.delete(
        call.project, request.thread_id, request.message_id
    )
    return call.respond(deleted)


ROUTES = (
    Route("POST", BASE, "createMessage", create),
    Route("GET", BASE, "listMessages", list_),
    Route("GET", BASE + "/{message_id}", "getMessage", get),
    Route("POST", BASE + "/{message_id}", "modifyMessage", update),
    Route("DELETE", BASE + "/{message_id}", "deleteMessage", delete),
)

__all__ = ["ROUTES"]

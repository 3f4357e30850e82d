"""`/v1/threads` (CONTRACT.md §4). Threads have no list endpoint in OpenAI's API, so none is
served here (gRPC's ListThreads is an addition of this project)."""

from __future__ import annotations

from starlette.types import ASGIApp

from assistants_grpc.contract.pb import thread_pb2 as T
from assistants_grpc.http.call import Call
from assistants_grpc.http.routes.table import Route


async def create(call: Call) -> ASGIApp:
    request = call.parse(T.CreateThreadRequest)
    return call.respond(await call.services.threads.create(call.project, request))


async def get(call: Call) -> ASGIApp:
    request = call.parse(T.GetThreadRequest)
    return call.respond(await call.services.threads.get(call.project, request.thread_id))


async def update(call: Call) -> ASGIApp:
    request = call.parse(T.UpdateThreadRequest)
    return call.respond(await call.services.threads.update(call.project, request))


async def delete(call: Call) -> ASGIApp:
    request = call.parse(T.DeleteThreadRequest)
    return call.respond(await call.services.threads.delete(call.project, request.thread_id))


ROUTES = (
    Route("POST", "/threads", "createThread", create),
    Route("GET", "/threads/{thread_id}", "getThread", get),
    Route("POST", "/threads/{thread_id}", "modifyThread", update),
    Route("DELETE", "/threads/{thread_id}", "deleteThread", delete),
)

__all__ = ["ROUTES"]

"""Runs and run steps (CONTRACT.md §6-§9): `/v1/threads/runs`, `/v1/threads/{thread_id}/runs…`.

`"stream": true` in the body decides a stream (the SDK sends `Accept: application/json` even
then). A run read with GET tells the SDK's poller when to look again (`openai-poll-after-ms`):
without it `create_and_poll` sleeps a whole second between polls, while a run here often ends
within a few milliseconds.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp

from assistants_grpc.contract.pb import run_pb2 as R
from assistants_grpc.http.call import Call
from assistants_grpc.http.routes.assistants import LIST_QUERY
from assistants_grpc.http.routes.table import Route

BASE = "/threads/{thread_id}/runs"
RUN = BASE + "/{run_id}"
INCLUDE = frozenset({"include"})
POLL_AFTER_MS: Final = "100"


async def create(call: Call) -> ASGIApp:
    request = call.parse(R.CreateRunRequest, query=INCLUDE, stream=True)
    runs = call.services.runs
    if call.stream:
        return await call.event_stream(lambda: runs.create_stream(call.project, request))
    return call.respond(await runs.create(call.project, request))


async def create_thread_and_run(call: Call) -> ASGIApp:
    request = call.parse(R.CreateThreadAndRunRequest, stream=True)
    runs = call.services.runs
    if call.stream:
        return await call.event_stream(
            lambda: runs.create_thread_and_run_stream(call.project, request)
        )
    return call.respond(await runs.create_thread_and_run(call.project, request))


async def list_(call: Call) -> ASGIApp:
    request = call.parse(R.ListRunsRequest, query=LIST_QUERY)
    return call.respond(await call.services.runs.list(call.project, request))


async def get(call: Call) -> ASGIApp:
    request = call.parse(R.GetRunRequest)
    run = await call.services.runs.get(call.project, request.thread_id, request.run_id)
    call.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return call.respond(run)


async def update(call: Call) -> ASGIApp:
    request = call.parse(R.UpdateRunRequest)
    return call.respond(await call.services.runs.update(call.project, request))


async def cancel(call: Call) -> ASGIApp:
    request = call.parse(R.CancelRunRequest)  # the SDK sends no body
    run = await call.services.runs.cancel(call.project, request.thread_id, request.run_id)
    return call.respond(run)


async def submit_tool_outputs(call: Call) -> ASGIApp:
    request = call.parse(R.SubmitToolOutputsRequest, stream=True)
    runs = call.services.runs
    if call.stream:
        return await call.event_stream(
            lambda: runs.submit_tool_outputs_stream(call.project, request)
        )
    return call.respond(await runs.submit_tool_outputs(call.project, request))


async def list_steps(call: Call) -> ASGIApp:
    request = call.parse(R.ListRunStepsRequest, query=LIST_QUERY | INCLUDE)
    return call.respond(await call.services.runs.list_steps(call.project, request))


async def get_step(call: Call) -> ASGIApp:
    request = call.parse(R.GetRunStepRequest, query=INCLUDE)
    return call.respond(await call.services.runs.get_step(call.project, request))


ROUTES = (
    # Before /threads/{thread_id} (threads.py), which would take "runs" for an id.
    Route("POST", "/threads/runs", "createThreadAndRun", create_thread_and_run),
    Route("POST", BASE, "createRun", create),
    Route("GET", BASE, "listRuns", list_),
    Route("GET", RUN, "getRun", get),
    Route("POST", RUN, "modifyRun", update),
    Route("POST", RUN + "/cancel", "cancelRun", cancel),
    Route("POST", RUN + "/submit_tool_outputs", "submitToolOuputsToRun", submit_tool_outputs),
    Route("GET", RUN + "/steps", "listRunSteps", list_steps),
    Route("GET", RUN + "/steps/{step_id}", "getRunStep", get_step),
)

__all__ = ["POLL_AFTER_MS", "ROUTES"]

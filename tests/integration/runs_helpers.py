"""Helpers for the run tests: set-up, collecting streams, waiting for a status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from assistants_grpc.contract.pb import assistant_pb2, common_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.fake_model import FakeModelServer, HangReply
from tests.conftest import Stubs
from tests.integration.helpers import function_tool, text_input

R = run_pb2

WEATHER = function_tool(
    "get_weather", type="object", properties={"city": {"type": "string"}}, required=["city"]
)
TIME = function_tool("get_time", type="object", properties={"tz": {"type": "string"}})


async def make_assistant(stubs: Stubs, **fields: Any) -> assistant_pb2.Assistant:
    fields.setdefault("model", "gpt-4o")
    return await stubs.assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(**fields))


async def make_thread(stubs: Stubs, *texts: str) -> thread_pb2.Thread:
    return await stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(messages=[text_input(t) for t in texts])
    )


async def collect(stream: AsyncIterator[R.RunEvent]) -> list[R.RunEvent]:
    return [event async for event in stream]


def names(events: list[R.RunEvent]) -> list[str]:
    return [event.event for event in events]


async def wait_for_status(
    stubs: Stubs, thread_id: str, run_id: str, *statuses: int, timeout: float = 10.0
) -> R.Run:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread_id, run_id=run_id))
        if run.status in statuses:
            return run
        if loop.time() > deadline:
            raise AssertionError(f"run stayed {R.RunStatus.Name(run.status)}")
        await asyncio.sleep(0.02)


async def thread_messages(stubs: Stubs, thread_id: str, **filters: Any) -> list[Any]:
    page = await stubs.messages.ListMessages(
        message_pb2.ListMessagesRequest(
            thread_id=thread_id, order=common_pb2.LIST_ORDER_ASC, limit=100, **filters
        )
    )
    return list(page.data)


def text_of(message: message_pb2.Message) -> str:
    return "".join(part.text.value for part in message.content)


TERMINAL = (
    R.RUN_STATUS_COMPLETED,
    R.RUN_STATUS_FAILED,
    R.RUN_STATUS_CANCELLED,
    R.RUN_STATUS_EXPIRED,
    R.RUN_STATUS_INCOMPLETE,
)


async def start_hanging_run(stubs: Stubs, model: FakeModelServer) -> tuple[str, str]:
    """A run in progress whose model holds the request (and so a worker) without answering;
    returns its thread id and run id."""
    asked = len(model.requests)
    model.push(HangReply(30))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "hold the worker")
    run = await stubs.runs.CreateRun(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_IN_PROGRESS)
    async with asyncio.timeout(10):
        while len(model.requests) == asked:
            await asyncio.sleep(0.01)
    return thread.id, run.id

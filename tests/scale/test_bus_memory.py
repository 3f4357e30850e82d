"""Two replicas on one PostgreSQL database, in one process: a run that pauses for tool outputs
on one replica and is continued on the other leaves nothing in either one's memory (issue 11).

In-process, so each replica's event bus can be asked how many runs it holds."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.server import AssistantsServer
from tests.conftest import POSTGRES_URL, reset_postgres, start_server, stubs_for
from tests.integration.helpers import text_input
from tests.integration.runs_helpers import WEATHER, make_assistant

R = run_pb2
RUNS = 200

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="multi-replica tests need PostgreSQL: set ASSISTANTS_TEST_DATABASE_URL (.ci/run does)",
)


def _channels(server: AssistantsServer) -> int:
    return server.runtime.bus.channel_count


async def _settled(servers: list[AssistantsServer], expected: list[int]) -> list[int]:
    """The replicas' channel counts once they reach `expected` (the other replica's signals
    arrive asynchronously), or as they are after a generous wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (counts := [_channels(s) for s in servers]) != expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return counts


@pytest.mark.timeout(300)
async def test_runs_continued_on_the_other_replica_leave_no_channels(
    fake_model: FakeModelServer,
) -> None:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    fake_model.reset()
    clock = ManualClock()
    servers = [await start_server(POSTGRES_URL, clock, fake_model) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    stubs = [stubs_for(channel) for channel in channels]
    try:
        at_start = [_channels(s) for s in servers]
        assistant = await make_assistant(stubs[0], tools=[WEATHER])
        limit = asyncio.Semaphore(20)

        async def one(i: int) -> list[str]:
            # The run starts (and pauses for its tool call) on `home`, is continued on `other`,
            # and is watched from start to end on either: a watcher on `home` reads the events
            # `other` writes.
            home, other = (stubs[0], stubs[1]) if i % 2 == 0 else (stubs[1], stubs[0])
            watcher = home if i % 4 < 2 else other
            command = "/tool get_weather " + json.dumps({"city": f"city-{i}"})
            async with limit:
                run = await home.runs.CreateThreadAndRun(
                    R.CreateThreadAndRunRequest(
                        assistant_id=assistant.id,
                        thread=R.ThreadInput(messages=[text_input(command)]),
                    )
                )
                events = []
                watch = watcher.runs.WatchRun(
                    R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id)
                )
                async for event in watch:
                    events.append(event.event)
                    if event.event == "thread.run.requires_action":
                        calls = event.run.required_action.submit_tool_outputs.tool_calls
                        await other.runs.SubmitToolOutputs(
                            R.SubmitToolOutputsRequest(
                                thread_id=run.thread_id,
                                run_id=run.id,
                                tool_outputs=[
                                    R.ToolOutput(tool_call_id=c.id, output="sunny") for c in calls
                                ],
                            )
                        )
                return events

        results = await asyncio.gather(*(one(i) for i in range(RUNS)))
        for events in results:
            assert "thread.run.step.delta" in events  # the paused segment streamed deltas
            assert events[-2:] == ["thread.run.completed", "done"], events
        assert await _settled(servers, at_start) == at_start
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(0)

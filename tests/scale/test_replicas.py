"""Several server processes on one PostgreSQL database (issue 5): any replica serves any call,
runs survive a replica killed with SIGKILL, watchers on one replica follow runs executing on
another without gaps, the thread lock and cancel hold across replicas, SIGTERM drains."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text

from assistants_grpc.contract.pb import assistant_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.fake_model import FakeModelServer, FakeModelThread, TextReply
from assistants_grpc.store.database import normalize_url
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.integration.helpers import function_tool, text_input
from tests.scale.replicas import Replica, start_replica

R = run_pb2
TERMINAL_EVENTS = {
    "thread.run.completed",
    "thread.run.failed",
    "thread.run.cancelled",
    "thread.run.expired",
    "thread.run.incomplete",
}
WEATHER = function_tool("get_weather", type="object", properties={"city": {"type": "string"}})
SLOW = "slow-model"

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="multi-replica tests need PostgreSQL: set ASSISTANTS_TEST_DATABASE_URL (.ci/run does)",
)


def _reachable(url: str) -> bool:
    try:
        engine = create_engine(normalize_url(url))
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModelThread]:
    handle = FakeModelServer.start_in_thread()
    # The slow model answers in ten chunks over about three seconds.
    handle.set_responder(SLOW, lambda request: TextReply("w " * 10, chunks=10, chunk_delay=0.3))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
async def replicas(model: FakeModelThread) -> AsyncIterator[list[Replica]]:
    assert POSTGRES_URL
    if not _reachable(POSTGRES_URL):
        pytest.skip("PostgreSQL is not reachable")
    reset_postgres(POSTGRES_URL)
    started: list[Replica] = []
    try:
        # Appended one by one, so a replica that fails to start never orphans the others.
        for i in range(3):
            started.append(start_replica(f"r{i}", POSTGRES_URL, model.base_url))
        yield started
    finally:
        for replica in started:
            await replica.close()


async def _assistant(replica: Replica, model: str = "gpt-4o") -> str:
    created = await replica.stubs.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model=model, tools=[WEATHER])
    )
    return created.id


async def _watch_all(replica: Replica, thread_id: str, run_id: str) -> list[R.RunEvent]:
    call = replica.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread_id, run_id=run_id))
    return [event async for event in call]


def _assert_gapless(events: list[R.RunEvent]) -> None:
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "done" and events[-2].event in TERMINAL_EVENTS


async def test_runs_with_tool_rounds_across_replicas(replicas: list[Replica]) -> None:
    assistant_id = await _assistant(replicas[0])
    limit = asyncio.Semaphore(40)

    async def one(i: int) -> None:
        home, watcher, submitter = (replicas[(i + k) % 3] for k in range(3))
        command = "/tool get_weather " + json.dumps({"city": f"city-{i}"})
        async with limit:
            run = await home.stubs.runs.CreateThreadAndRun(
                R.CreateThreadAndRunRequest(
                    assistant_id=assistant_id, thread=R.ThreadInput(messages=[text_input(command)])
                )
            )
            call = watcher.stubs.runs.WatchRun(
                R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id)
            )
            events: list[R.RunEvent] = []
            async for event in call:
                events.append(event)
                if event.event == "thread.run.requires_action":
                    calls = event.run.required_action.submit_tool_outputs.tool_calls
                    await submitter.stubs.runs.SubmitToolOutputs(
                        R.SubmitToolOutputsRequest(
                            thread_id=run.thread_id,
                            run_id=run.id,
                            tool_outputs=[
                                R.ToolOutput(tool_call_id=c.id, output=f"sunny in city-{i}")
                                for c in calls
                            ],
                        )
                    )
            _assert_gapless(events)
            assert events[-2].event == "thread.run.completed", [e.event for e in events]
            page = await submitter.stubs.messages.ListMessages(
                message_pb2.ListMessagesRequest(thread_id=run.thread_id, run_id=run.id)
            )
            assert [m.content[0].text.value for m in page.data] == [
                f"Tool results: sunny in city-{i}"
            ]

    await asyncio.gather(*(one(i) for i in range(200)))


async def test_deleting_a_thread_ends_its_watchers_on_other_replicas(
    replicas: list[Replica],
) -> None:
    home, watcher, deleter = replicas
    assistant_id = await _assistant(home)
    command = "/tool get_weather " + json.dumps({"city": "Oslo"})
    run = await home.stubs.runs.CreateThreadAndRun(
        R.CreateThreadAndRunRequest(
            assistant_id=assistant_id, thread=R.ThreadInput(messages=[text_input(command)])
        )
    )
    call = watcher.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id))
    async for event in call:
        if event.event == "thread.run.requires_action":
            break
    # The watcher now waits for outputs that will never come: the thread goes, elsewhere.
    await deleter.stubs.threads.DeleteThread(
        thread_pb2.DeleteThreadRequest(thread_id=run.thread_id)
    )
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async with asyncio.timeout(10):  # a guard: without the signal it waits forever
            async for _ in call:
                pass
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND
    assert ended.value.details() == f"The thread '{run.thread_id}' was deleted."


async def test_killed_replica_runs_are_taken_over(replicas: list[Replica]) -> None:
    victim, survivor, _ = replicas
    assistant_id = await _assistant(victim, SLOW)
    runs = []
    for _ in range(8):
        runs.append(
            await victim.stubs.runs.CreateThreadAndRun(
                R.CreateThreadAndRunRequest(
                    assistant_id=assistant_id, thread=R.ThreadInput(messages=[text_input("go")])
                )
            )
        )
    watchers = [asyncio.create_task(_watch_all(survivor, run.thread_id, run.id)) for run in runs]
    await asyncio.sleep(1.0)  # the runs are streaming now
    victim.kill()
    killed_at = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=30)
    took = time.monotonic() - killed_at
    assert took < 2 + 5 + 5, f"runs took {took:.1f}s to end after the kill"
    for run, events in zip(runs, results, strict=True):
        _assert_gapless(events)
        created = [e.message.id for e in events if e.event == "thread.message.created"]
        assert len(created) == len(set(created)) <= 1
        page = await survivor.stubs.messages.ListMessages(
            message_pb2.ListMessagesRequest(thread_id=run.thread_id)
        )
        assert sorted(m.id for m in page.data if m.role == message_pb2.MESSAGE_ROLE_ASSISTANT) == (
            sorted(created)
        )
        assert [m.content[0].text.value for m in page.data if m.role == 1] == ["go"]
    # Each takeover is a WARNING line of the replica that took the run (README "Logs").
    survivors_log = "".join(survivor.log + replicas[2].log)
    ended = [line for line in survivors_log.splitlines() if "run ended [" in line]
    for run in runs:
        assert f"took over run {run.id} from " in survivors_log
        # A run taken over still logs with its thread's project.
        (line,) = [line for line in ended if f"run_id={run.id} " in line]
        assert f"thread_id={run.thread_id} project=default " in line


async def test_create_run_race_across_replicas(replicas: list[Replica]) -> None:
    assistant_id = await _assistant(replicas[0], SLOW)
    thread = await replicas[1].stubs.threads.CreateThread(
        __import__(
            "assistants_grpc.contract.pb", fromlist=["thread_pb2"]
        ).thread_pb2.CreateThreadRequest()
    )
    results = await asyncio.gather(
        *(
            replicas[i % 3].stubs.runs.CreateRun(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant_id)
            )
            for i in range(20)
        ),
        return_exceptions=True,
    )
    started = [r for r in results if isinstance(r, R.Run)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(started) == 1 and len(refused) == 19, results
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}


async def test_cancel_reaches_the_executing_replica(
    replicas: list[Replica], model: FakeModelThread
) -> None:
    home, other, _ = replicas
    assistant_id = await _assistant(home, SLOW)
    run = await home.stubs.runs.CreateThreadAndRun(
        R.CreateThreadAndRunRequest(
            assistant_id=assistant_id, thread=R.ThreadInput(messages=[text_input("go")])
        )
    )
    watcher = asyncio.create_task(_watch_all(other, run.thread_id, run.id))
    await _until_streaming(other, run)
    before = model.server.disconnects
    sent = time.monotonic()
    await other.stubs.runs.CancelRun(R.CancelRunRequest(thread_id=run.thread_id, run_id=run.id))
    events = await asyncio.wait_for(watcher, timeout=10)
    assert events[-2].event == "thread.run.cancelled"
    assert time.monotonic() - sent < 1.0, "the executing replica did not stop within a second"
    assert model.server.disconnects > before


async def test_sigterm_drains(replicas: list[Replica]) -> None:
    leaving, staying, _ = replicas
    assistant_id = await _assistant(leaving, SLOW)
    runs = [
        await leaving.stubs.runs.CreateThreadAndRun(
            R.CreateThreadAndRunRequest(
                assistant_id=assistant_id, thread=R.ThreadInput(messages=[text_input("go")])
            )
        )
        for _ in range(4)
    ]
    watchers = [asyncio.create_task(_watch_all(staying, r.thread_id, r.id)) for r in runs]
    await _until_streaming(staying, runs[0])
    code = await asyncio.to_thread(leaving.terminate)
    assert code == 0, "".join(leaving.log[-30:])
    for events in await asyncio.wait_for(asyncio.gather(*watchers), timeout=30):
        _assert_gapless(events)


async def _until_streaming(replica: Replica, run: R.Run) -> None:
    """Wait until the run's first message delta is in its log."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events: list[Any] = []
        call = replica.stubs.runs.WatchRun(
            R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id)
        )
        async for event in call:
            events.append(event)
            if event.event == "thread.message.delta":
                call.cancel()
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the run never started streaming")

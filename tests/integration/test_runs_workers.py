"""The run workers: a bounded number of runs execute at once and the rest wait queued; a run
created (or given its tool outputs) while a worker is free starts in that same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from tests.conftest import RunningServer, serving
from tests.integration.helpers import expect_error
from tests.integration.runs_helpers import (
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    start_hanging_run,
)

R = run_pb2


@pytest.fixture
async def one_worker(
    database_url: str, fake_model: FakeModelServer
) -> AsyncIterator[RunningServer]:
    """A server that executes one run at a time."""
    async with serving(database_url, fake_model, max_concurrent_runs=1) as server:
        yield server


async def test_a_run_beyond_the_worker_limit_waits_queued(one_worker: RunningServer) -> None:
    stubs, model = one_worker.stubs, one_worker.model
    busy_thread, busy_run = await start_hanging_run(stubs, model)
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "wait for me")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    first = [await anext(aiter(stream)) for _ in range(2)]
    assert names(first) == ["thread.run.created", "thread.run.queued"]
    waiting = first[0].run.id
    # The only worker is held by the hanging run: this one stays queued, the model unasked.
    run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=waiting))
    assert run.status == R.RUN_STATUS_QUEUED and not run.HasField("started_at")
    assert len(model.requests) == 1  # the hanging run's only

    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=busy_thread, run_id=busy_run))
    rest = await collect(stream)
    assert names(rest)[0] == "thread.run.in_progress"
    assert names(rest)[-2:] == ["thread.run.completed", "done"]
    assert [e.sequence for e in first + rest] == list(range(1, len(first) + len(rest) + 1))
    assert len(model.requests) == 2


async def test_tool_outputs_given_while_the_workers_are_busy_wait_queued(
    one_worker: RunningServer,
) -> None:
    stubs, model = one_worker.stubs, one_worker.model
    model.push(ToolCallsReply([("get_weather", '{"city": "Paris"}')]))
    assistant = await make_assistant(stubs, tools=[WEATHER])
    thread = await make_thread(stubs, "weather?")
    first = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    paused = first[-2].run
    assert paused.status == R.RUN_STATUS_REQUIRES_ACTION
    # Waiting for outputs holds no worker: another run takes the only one (and hangs).
    busy_thread, busy_run = await start_hanging_run(stubs, model)
    model.push(TextReply("Sunny in Paris."))
    call = paused.required_action.submit_tool_outputs.tool_calls[0]
    stream = stubs.runs.SubmitToolOutputsStream(
        R.SubmitToolOutputsRequest(
            thread_id=thread.id,
            run_id=paused.id,
            tool_outputs=[R.ToolOutput(tool_call_id=call.id, output="sunny")],
        )
    )
    head = [await anext(aiter(stream)) for _ in range(2)]
    assert names(head) == ["thread.run.step.completed", "thread.run.queued"]
    run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=paused.id))
    assert run.status == R.RUN_STATUS_QUEUED

    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=busy_thread, run_id=busy_run))
    rest = await collect(stream)
    assert names(rest)[0] == "thread.run.in_progress"
    assert names(rest)[-2:] == ["thread.run.completed", "done"]
    assert model.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "sunny",
    }


async def test_a_run_created_with_a_free_worker_streams_its_start_in_order(
    running: RunningServer,
) -> None:
    stubs = running.stubs
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "hello")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[:3] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
    ]
    created, queued, started = (e.run for e in events[:3])
    assert created.status == queued.status == R.RUN_STATUS_QUEUED
    assert not created.HasField("started_at")
    assert started.status == R.RUN_STATUS_IN_PROGRESS and started.HasField("started_at")
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=created.id))
    assert run.started_at == started.started_at


async def test_a_refused_run_gives_its_worker_back(one_worker: RunningServer) -> None:
    """A create that fails inside its transaction (here: no such thread, an active run) keeps
    no worker: the next run still starts at once and completes."""
    stubs = one_worker.stubs
    assistant = await make_assistant(stubs)
    for _ in range(3):
        await expect_error(
            stubs.runs.CreateRun(
                R.CreateRunRequest(thread_id="thread_missing", assistant_id=assistant.id)
            ),
            grpc.StatusCode.NOT_FOUND,
        )
    scheduler = one_worker.server.scheduler
    assert scheduler is not None
    slot = scheduler.reserve("run_probe")
    assert slot is not None, "a refused create kept the only worker"
    slot.release()
    thread = await make_thread(stubs, "go")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]

"""Deleting a thread while its runs are streamed: every live stream of them ends with NOT_FOUND
("The thread '…' was deleted."), the run executing on it stops quietly, and the server goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from assistants_grpc.contract.pb import run_pb2, thread_pb2
from assistants_grpc.fake_model import TextReply, ToolCallsReply
from tests.conftest import RunningServer
from tests.integration.helpers import expect_error
from tests.integration.runs_helpers import (
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    start_hanging_run,
    wait_for_status,
)

R = run_pb2

# A guard against hanging, not a measure of speed: the streams end as soon as the delete commits.
ENDS_WITHIN = 10.0


async def _until(stream: AsyncIterator[R.RunEvent], name: str) -> list[R.RunEvent]:
    """Read a stream up to (and including) the first event called `name`."""
    seen = []
    async for event in stream:
        seen.append(event)
        if event.event == name:
            return seen
    raise AssertionError(f"the stream ended before {name}: {names(seen)}")


async def _ends_deleted(stream: AsyncIterator[R.RunEvent], thread_id: str) -> None:
    error = await expect_error(
        asyncio.wait_for(collect(stream), ENDS_WITHIN), grpc.StatusCode.NOT_FOUND
    )
    assert error.details() == f"The thread '{thread_id}' was deleted."


async def test_deleting_the_thread_ends_the_streams_of_its_running_run(
    running: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    stubs, model = running.stubs, running.model
    model.push(TextReply("slow words " * 50, chunks=50, chunk_delay=0.1))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "go")
    created = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    run_id = (await _until(created, "thread.message.delta"))[0].run.id
    watched = stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=run_id))
    await _until(watched, "thread.message.delta")

    with caplog.at_level(logging.WARNING):
        deleted = await stubs.threads.DeleteThread(
            thread_pb2.DeleteThreadRequest(thread_id=thread.id)
        )
        assert deleted.deleted
        await asyncio.gather(_ends_deleted(created, thread.id), _ends_deleted(watched, thread.id))
        # The turn finds its run gone at its next write and stops streaming from the model.
        assert await model.wait_for_disconnects(1, timeout=ENDS_WITHIN), "the turn kept streaming"
        await expect_error(
            stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=run_id)),
            grpc.StatusCode.NOT_FOUND,
        )
        # A deleted thread is a normal ending: no warning (not even of a lost lease), no trace.
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]

    # The server goes on: the next run elsewhere completes.
    model.push(TextReply("still here"))
    other = await make_thread(stubs, "again")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=other.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]


async def test_deleting_the_thread_ends_a_watch_of_a_run_waiting_for_tool_outputs(
    running: RunningServer,
) -> None:
    """Nothing executes a run that waits for tool outputs: without the delete telling its
    watchers, they would wait until their callers gave up."""
    stubs, model = running.stubs, running.model
    model.push(ToolCallsReply([("get_weather", '{"city": "Paris"}')]))
    assistant = await make_assistant(stubs, tools=[WEATHER])
    thread = await make_thread(stubs, "weather?")
    first = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(first)[-2:] == ["thread.run.requires_action", "done"]
    run_id = first[0].run.id
    await wait_for_status(stubs, thread.id, run_id, R.RUN_STATUS_REQUIRES_ACTION)
    # Resumed just before the end of the log: once it has the segment's `done`, this watcher
    # holds nothing but the wait for the next segment.
    watched = stubs.runs.WatchRun(
        R.WatchRunRequest(thread_id=thread.id, run_id=run_id, after_sequence=first[-2].sequence)
    )
    assert (await _until(watched, "done"))[0].sequence == first[-1].sequence
    await stubs.threads.DeleteThread(thread_pb2.DeleteThreadRequest(thread_id=thread.id))
    await _ends_deleted(watched, thread.id)


async def test_deleting_a_thread_leaves_the_streams_of_other_threads_alone(
    running: RunningServer,
) -> None:
    stubs, model = running.stubs, running.model
    model.push(TextReply("a b c d e f", chunks=6, chunk_delay=0.05))
    assistant = await make_assistant(stubs)
    kept, doomed = await make_thread(stubs, "keep"), await make_thread(stubs, "doomed")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=kept.id, assistant_id=assistant.id)
    )
    seen = await _until(stream, "thread.run.in_progress")
    await stubs.threads.DeleteThread(thread_pb2.DeleteThreadRequest(thread_id=doomed.id))
    seen += await asyncio.wait_for(collect(stream), ENDS_WITHIN)
    assert names(seen)[-2:] == ["thread.run.completed", "done"]


async def test_deleting_the_thread_stops_a_turn_whose_model_is_silent(
    running: RunningServer,
) -> None:
    """A turn finds its run gone at its next write; a model that sends nothing would keep it
    (and its model connection) waiting: the delete stops the turn itself."""
    stubs, model = running.stubs, running.model
    thread_id, _ = await start_hanging_run(stubs, model)
    await stubs.threads.DeleteThread(thread_pb2.DeleteThreadRequest(thread_id=thread_id))
    assert await model.wait_for_disconnects(1, timeout=ENDS_WITHIN), "the turn kept waiting"

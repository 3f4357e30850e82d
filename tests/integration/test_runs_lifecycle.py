"""Runs that end other ways: cancel, model failures, token budgets; the thread lock; watchers;
truncation seen in the prompt the model server received; a restart with a run in flight."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import message_pb2, run_pb2
from assistants_grpc.fake_model import (
    ErrorReply,
    FakeModelServer,
    HangReply,
    MalformedReply,
    TextReply,
)
from tests.conftest import RunningServer, serving, start_server, stubs_for
from tests.integration.helpers import expect_error, text_input
from tests.integration.runs_helpers import (
    TERMINAL,
    collect,
    make_assistant,
    make_thread,
    names,
    thread_messages,
    wait_for_status,
)

R = run_pb2


async def test_cancel_during_a_slow_stream(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(TextReply("one two three four five six", chunks=6, chunk_delay=0.3))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "go")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    seen: list[R.RunEvent] = []
    async for event in stream:
        seen.append(event)
        if event.event == "thread.message.delta":
            break
    run_id = seen[0].run.id
    cancelling = await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run_id))
    assert cancelling.status == R.RUN_STATUS_CANCELLING
    assert await model.wait_for_disconnects(1, timeout=1.0), "model stream not closed in 1 s"
    seen += await collect(stream)
    tail = names(seen)[names(seen).index("thread.run.cancelling") :]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    message = seen[names(seen).index("thread.message.incomplete")].message
    assert message.incomplete_details.reason == message_pb2.MESSAGE_INCOMPLETE_REASON_RUN_CANCELLED
    assert message.content[0].text.value.startswith("one")
    cancelled = seen[-2].run
    assert cancelled.HasField("cancelled_at") and not cancelled.HasField("expires_at")
    error = await expect_error(
        stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error.details() == "Cannot cancel run with status 'cancelled'."


async def test_cancel_a_queued_run_and_the_thread_lock(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(HangReply(30))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "go")
    run = await stubs.runs.CreateRun(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    error = await expect_error(
        stubs.runs.CreateRun(R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error.details() == f"Thread {thread.id} already has an active run {run.id}."
    error = await expect_error(
        stubs.messages.CreateMessage(
            message_pb2.CreateMessageRequest(
                thread_id=thread.id,
                role=message_pb2.MESSAGE_ROLE_USER,
                content=text_input("more").content,
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error.details() == f"Can't add messages to {thread.id} while a run {run.id} is active."
    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run.id))
    done = await wait_for_status(stubs, thread.id, run.id, *TERMINAL)
    assert done.status == R.RUN_STATUS_CANCELLED
    # Nothing was written by the refused calls; the thread takes messages again.
    assert len(await thread_messages(stubs, thread.id)) == 1


async def test_concurrent_create_run_starts_exactly_one(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(HangReply(30))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "race")
    results = await asyncio.gather(
        *(
            stubs.runs.CreateRun(R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id))
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    started = [r for r in results if isinstance(r, R.Run)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(started) == 1 and len(refused) == 19
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    runs = await stubs.runs.ListRuns(R.ListRunsRequest(thread_id=thread.id))
    assert [r.id for r in runs.data] == [started[0].id]
    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=started[0].id))
    await wait_for_status(stubs, thread.id, started[0].id, R.RUN_STATUS_CANCELLED)


async def test_rate_limit_retried_then_succeeds(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(ErrorReply(429), TextReply("made it"))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "x")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    assert len(model.requests) == 2


async def test_model_failures_fail_the_run(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    assistant = await make_assistant(stubs)
    cases = [
        ([ErrorReply(500), ErrorReply(500)], "server_error"),
        ([ErrorReply(429), ErrorReply(429)], "rate_limit_exceeded"),
        ([MalformedReply()], "server_error"),
        ([ErrorReply(404, message="The model does not exist")], "server_error"),
    ]
    for replies, code in cases:
        model.push(*replies)
        thread = await make_thread(stubs, "x")
        events = await collect(
            stubs.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
            )
        )
        assert names(events)[-2:] == ["thread.run.failed", "done"], names(events)
        failed = events[-2].run
        assert R.RunErrorCode.Name(failed.last_error.code) == "RUN_ERROR_CODE_" + code.upper()
        assert failed.last_error.message and "test-key" not in failed.last_error.message
        assert failed.HasField("failed_at")


async def test_unreachable_endpoint_fails_the_run(running: RunningServer, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text('[[endpoints]]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["nowhere-*"]\n')
    await running.server.stop(0)
    server = await start_server(
        running.database_url, running.clock, running.model, models_config=str(config)
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stubs = stubs_for(channel)
            assistant = await make_assistant(stubs, model="nowhere-1")
            thread = await make_thread(stubs, "x")
            events = await collect(
                stubs.runs.CreateRunStream(
                    R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
                )
            )
            assert names(events)[-2:] == ["thread.run.failed", "done"]
            assert "unreachable" in events[-2].run.last_error.message
    finally:
        await server.stop(0)


async def test_max_completion_tokens_ends_incomplete(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(TextReply("cut short", finish_reason="length"))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "x")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(
                thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=300
            )
        )
    )
    assert names(events)[-5:] == [
        "thread.message.delta",
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.incomplete",
        "done",
    ]
    assert model.requests[-1]["max_completion_tokens"] == 300
    message = events[-4].message
    assert message.incomplete_details.reason == message_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS
    run = events[-2].run
    assert run.incomplete_details.reason == R.RUN_INCOMPLETE_REASON_MAX_COMPLETION_TOKENS
    assert run.usage.total_tokens > 0


async def test_truncation_seen_by_the_model(running: RunningServer, tmp_path: Path) -> None:
    stubs, model = running.stubs, running.model
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, *(f"message number {i}" for i in range(10)))
    await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(
                thread_id=thread.id,
                assistant_id=assistant.id,
                truncation_strategy=R.TruncationStrategy(
                    type=R.TRUNCATION_TYPE_LAST_MESSAGES, last_messages=3
                ),
            )
        )
    )
    assert [m["content"] for m in model.requests[-1]["messages"]] == [
        "message number 7",
        "message number 8",
        "message number 9",
    ]
    # auto: a small context window keeps the newest messages that fit.
    config = tmp_path / "models.toml"
    config.write_text(
        f'[[endpoints]]\nbase_url = "{model.base_url}"\nmodels = ["tiny"]\ncontext_window = 600\n'
    )
    await running.server.stop(0)
    server = await start_server(
        running.database_url, running.clock, model, models_config=str(config)
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stubs = stubs_for(channel)
            tiny = await make_assistant(stubs, model="tiny")
            long_thread = await make_thread(stubs, *(f"{i} " + "word " * 60 for i in range(8)))
            events = await collect(
                stubs.runs.CreateRunStream(
                    R.CreateRunRequest(
                        thread_id=long_thread.id, assistant_id=tiny.id, max_completion_tokens=256
                    )
                )
            )
            assert names(events)[-2:] == ["thread.run.completed", "done"]
            sent = [m["content"] for m in model.requests[-1]["messages"]]
            assert 0 < len(sent) < 8
            assert sent[-1].startswith("7 ")  # the newest user message is always kept
            # The opening (the first user message) and the newest messages; the middle went.
            assert [int(s.split()[0]) for s in sent] == [0, *range(9 - len(sent), 8)]
            # Even the instructions do not fit under max_prompt_tokens of this size.
            wordy = await make_assistant(stubs, model="tiny", instructions="rule " * 400)
            short = await make_thread(stubs, "hi")
            events = await collect(
                stubs.runs.CreateRunStream(
                    R.CreateRunRequest(
                        thread_id=short.id, assistant_id=wordy.id, max_prompt_tokens=256
                    )
                )
            )
            assert names(events)[-2:] == ["thread.run.incomplete", "done"]
            reason = events[-2].run.incomplete_details.reason
            assert reason == R.RUN_INCOMPLETE_REASON_MAX_PROMPT_TOKENS
    finally:
        await server.stop(0)


async def test_watch_from_two_callers_and_resume(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(TextReply("a b c d e f g h", chunks=8, chunk_delay=0.05))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "x")
    run = await stubs.runs.CreateRun(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )

    def watch(after: int) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
        return stubs.runs.WatchRun(
            R.WatchRunRequest(thread_id=thread.id, run_id=run.id, after_sequence=after)
        )

    first, second = await asyncio.gather(collect(watch(0)), collect(watch(0)))
    assert [e.sequence for e in first] == list(range(1, len(first) + 1))
    assert first == second
    assert names(first)[-2:] == ["thread.run.completed", "done"]
    # Resume from the middle: exactly the rest, nothing twice.
    middle = len(first) // 2
    rest = await collect(watch(first[middle - 1].sequence))
    assert rest == first[middle:]
    # Resuming right after the terminal event still ends at the final done.
    assert await collect(watch(first[-2].sequence)) == first[-1:]
    await expect_error(
        collect(watch(-1)),  # type: ignore[arg-type]
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        collect(  # type: ignore[arg-type]
            stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id="run_nope"))
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_restart_with_a_run_in_flight(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(TextReply("slow words " * 20, chunks=20, chunk_delay=0.2))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "x")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    seen = []
    async for event in stream:
        seen.append(event)
        if event.event == "thread.message.delta":
            break
    run_id = seen[0].run.id
    await running.server.stop(0)
    server = await start_server(running.database_url, running.clock, model)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            again = stubs_for(channel)
            run = await wait_for_status(again, thread.id, run_id, *TERMINAL)
            assert run.status in (R.RUN_STATUS_FAILED, R.RUN_STATUS_COMPLETED)
            events = await collect(
                again.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=run_id))
            )
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            assert events[: len(seen)] == seen
            assert names(events)[-1] == "done"
            # The thread is usable again.
            model.push(TextReply("back"))
            events = await collect(
                again.runs.CreateRunStream(
                    R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
                )
            )
            assert names(events)[-2:] == ["thread.run.completed", "done"]
    finally:
        await server.stop(0)


async def test_a_turn_stops_writing_when_its_lease_is_taken(
    database_url: str, fake_model: FakeModelServer
) -> None:
    """A replica taken for dead (another one now holds the run's lease) writes nothing more:
    its next write finds the lease gone, and its model stream is closed."""
    lease_clock = ManualClock(time.time())
    async with serving(database_url, fake_model, overrides={"lease_clock": lease_clock}) as running:
        await _lease_taken(running, lease_clock)


async def _lease_taken(running: RunningServer, lease_clock: ManualClock) -> None:
    from sqlalchemy import select, update

    from assistants_grpc.store.repository import RUNS

    stubs, model = running.stubs, running.model
    model.push(TextReply("one two three four five six", chunks=6, chunk_delay=0.2))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "go")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    run_id = ""
    async for event in stream:
        run_id = run_id or event.run.id
        if event.event == "thread.message.delta":
            break
    stream.cancel()
    database = running.server.database
    assert database is not None

    def lease_and_sequence() -> tuple[str, int]:
        query = select(RUNS.c.lease_owner, RUNS.c.last_sequence).where(RUNS.c.id == run_id)
        owner, sequence = database.transaction_sync(lambda c: c.execute(query).one())
        return owner, sequence

    # Another replica's live lease, by the lease clock both replicas read.
    taken = {"lease_owner": "another-replica", "lease_expires_at": lease_clock.now() + 10}
    await database.transaction(
        lambda c: c.execute(update(RUNS).where(RUNS.c.id == run_id).values(**taken))
    )
    _, sequence = lease_and_sequence()
    assert await model.wait_for_disconnects(1, timeout=2.0), "the turn kept streaming"
    await asyncio.sleep(0.3)
    assert lease_and_sequence() == ("another-replica", sequence)  # nothing more was written
    run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=run_id))
    assert run.status == R.RUN_STATUS_IN_PROGRESS  # left to the replica that holds it

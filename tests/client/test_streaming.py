"""Run streams: typed events and their helpers against the real server, and, against a scripted
server, unknown events passed through and broken streams resumed exactly once."""

from __future__ import annotations

import pytest
from assistants_grpc_client import AsyncClient, Client, UnavailableError
from assistants_grpc_client.v1 import run_pb2

from assistants_grpc.fake_model import TextReply
from tests.client.conftest import in_thread
from tests.client.scripted import ScriptedServer, run_events
from tests.conftest import RunningServer

R = run_pb2


async def test_stream_helpers(running: RunningServer, client: Client) -> None:
    running.model.push(
        TextReply("Hello there, friend.", chunks=4), TextReply("a b c d e f", chunk_delay=0.01)
    )

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o")
        thread = client.threads.create(messages=[{"role": "user", "content": "hi"}])

        stream = client.runs.stream(thread.id, assistant.id)
        first = next(stream)
        assert first.event == "thread.run.created" and first.sequence == 1
        assert stream.run_id == first.run.id and stream.current_run == first.run
        assert "".join(stream.text_deltas()) == "Hello there, friend."
        run = stream.final_run()
        assert run.status == R.RUN_STATUS_COMPLETED and run.HasField("usage")
        (message,) = stream.final_messages()
        assert message.content[0].text.value == "Hello there, friend."
        assert message.run_id == run.id
        assert stream.until_done() is stream
        assert list(stream) == []

        # Leaving the `with` early cancels the call, not the run.
        with client.runs.stream(thread.id, assistant.id) as partial:
            seen = [next(partial).event for _ in range(3)]
        assert seen == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
        whole = list(client.runs.watch(partial.run_id or "", thread_id=thread.id))
        assert [e.sequence for e in whole] == list(range(1, len(whole) + 1))
        assert [e.event for e in whole][-2:] == ["thread.run.completed", "done"]

    await in_thread(flow)


async def test_async_stream_helpers(running: RunningServer, aclient: AsyncClient) -> None:
    running.model.push(TextReply("One two.", chunks=2), TextReply("three"))
    assistant = await aclient.assistants.create(model="gpt-4o")
    thread = await aclient.threads.create(messages=[{"role": "user", "content": "hi"}])

    async with aclient.runs.stream(thread.id, assistant.id) as stream:
        assert [t async for t in stream.text_deltas()] != []
        assert (await stream.final_run()).status == R.RUN_STATUS_COMPLETED
        assert [m.content[0].text.value for m in await stream.final_messages()] == ["One two."]

    created = aclient.runs.create_and_stream(
        assistant.id, thread={"messages": [{"role": "user", "content": "x"}]}
    )
    names = [event.event async for event in created]
    assert names[0] == "thread.created" and names[-1] == "done"
    assert (await created.until_done()).thread_id is not None


async def test_unknown_events_pass_through_and_breaks_resume_exactly_once() -> None:
    async with ScriptedServer() as server:
        script = server.script
        script.events = run_events(
            "thread.run.created",
            "thread.run.queued",
            "thread.run.something_new",  # an event this client does not know
            "thread.run.in_progress",
            "thread.message.delta",
            "thread.run.requires_action",
            "done",
            "thread.run.queued",
            "thread.run.completed",
            "done",
        )
        script.events[4].message_delta.delta.content.add(index=0).text.value = "Hi"
        # The stream breaks after 3 events, its resume after 2 more, the next one holds.
        script.break_after = [3, 2, None]
        async with AsyncClient(server.target) as client:
            stream = client.runs.stream("thread_1", "asst_1")
            events = [event async for event in stream]
        assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6, 7]
        assert events[2].event == "thread.run.something_new"
        assert [r.after_sequence for r in script.watch_requests] == [3, 5]
        assert stream.current_run is not None
        assert stream.current_run.status == R.RUN_STATUS_REQUIRES_ACTION

        # watch() follows the run through the intermediate `done` to the final one.
        script.watch_requests.clear()
        script.break_after = [8, None]

        def blocking() -> list[int]:
            with Client(server.target) as sync:
                return [e.sequence for e in sync.runs.watch("run_1", thread_id="thread_1")]

        assert await in_thread(blocking) == list(range(1, 11))
        assert [r.after_sequence for r in script.watch_requests] == [0, 8]


async def test_a_stream_that_breaks_before_its_first_event_is_not_resumed() -> None:
    async with ScriptedServer() as server:
        script = server.script
        script.events = run_events("thread.run.created", "thread.run.completed", "done")
        script.break_after = [0]
        async with AsyncClient(server.target) as client:
            with pytest.raises(UnavailableError):
                await client.runs.stream("thread_1", "asst_1").until_done()
        assert script.watch_requests == []  # the run may not exist: nothing to resume


async def test_resuming_gives_up_after_resume_timeout() -> None:
    async with ScriptedServer() as server:
        script = server.script
        script.events = run_events("thread.run.created", "thread.run.completed", "done")
        script.break_after = [1, *[0] * 100]
        async with AsyncClient(server.target, resume_timeout=0.3) as client:
            stream = client.runs.stream("thread_1", "asst_1")
            with pytest.raises(UnavailableError):
                async for _ in stream:
                    pass
        assert stream.last_sequence == 1
        assert 1 <= len(script.watch_requests) <= 6

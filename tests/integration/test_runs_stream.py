"""A run seen through its stream, event for event as CONTRACT.md §9 describes."""

from __future__ import annotations

from typing import Any

from assistants_grpc.contract.pb import assistant_pb2, common_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.fake_model import TextReply
from tests.conftest import RunningServer
from tests.integration.helpers import text_input
from tests.integration.runs_helpers import (
    collect,
    make_assistant,
    make_thread,
    names,
    text_of,
    thread_messages,
)

R = run_pb2

TEXT_RUN = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]
TEXT_RUN_END = [
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]


def split_deltas(events: list[R.RunEvent]) -> tuple[list[str], int]:
    """The event names with the run of `thread.message.delta` collapsed, and how many."""
    out: list[str] = []
    deltas = 0
    for name in names(events):
        if name == "thread.message.delta":
            deltas += 1
            if out and out[-1] == "thread.message.delta":
                continue
        out.append(name)
    return out, deltas


async def test_text_run_event_sequence(running: RunningServer) -> None:
    stubs = running.stubs
    running.model.push(TextReply("Hello there, how can I help?", chunks=6))
    assistant = await make_assistant(stubs, instructions="Be brief.")
    thread = await make_thread(stubs, "hi")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    collapsed, deltas = split_deltas(events)
    assert collapsed == [*TEXT_RUN, "thread.message.delta", *TEXT_RUN_END]
    assert deltas >= 1
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))

    by_name = {e.event: e for e in events}
    created = by_name["thread.run.created"].run
    assert created.status == R.RUN_STATUS_QUEUED and not created.HasField("started_at")
    assert created.expires_at == created.created_at + 600 and not created.HasField("usage")
    assert created.instructions == "Be brief." and created.temperature == 1.0
    assert created.tool_choice.mode and created.response_format.HasField("auto")
    assert created.truncation_strategy.type == R.TRUNCATION_TYPE_AUTO
    assert created.parallel_tool_calls
    assert by_name["thread.run.in_progress"].run.HasField("started_at")

    step = by_name["thread.run.step.created"].run_step
    assert step.type == R.RUN_STEP_TYPE_MESSAGE_CREATION
    message_id = step.step_details.message_creation.message_id
    message = by_name["thread.message.created"].message
    assert message.id == message_id and list(message.content) == []
    assert message.status == message_pb2.MESSAGE_STATUS_IN_PROGRESS
    text = "".join(
        part.text.value
        for e in events
        if e.event == "thread.message.delta"
        for part in e.message_delta.delta.content
    )
    assert text == "Hello there, how can I help?"
    final_message = by_name["thread.message.completed"].message
    assert text_of(final_message) == text and final_message.HasField("completed_at")
    final_step = by_name["thread.run.step.completed"].run_step
    assert final_step.HasField("usage") and final_step.usage.total_tokens > 0
    final = by_name["thread.run.completed"].run
    assert final.status == R.RUN_STATUS_COMPLETED and not final.HasField("expires_at")
    assert final.usage == final_step.usage and final.HasField("completed_at")
    assert not events[-1].HasField("run") and events[-1].event == "done"

    # The message belongs to the thread and the run, as the events said.
    listed = await thread_messages(stubs, thread.id, run_id=final.id)
    assert [m.id for m in listed] == [message_id]
    assert listed[0].assistant_id == assistant.id and text_of(listed[0]) == text
    # The prompt the model received: the instructions, then the thread.
    sent = running.model.requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_create_thread_and_run_stream_starts_with_thread(running: RunningServer) -> None:
    stubs = running.stubs
    assistant = await make_assistant(stubs)
    events = await collect(
        stubs.runs.CreateThreadAndRunStream(
            R.CreateThreadAndRunRequest(
                assistant_id=assistant.id,
                thread=R.ThreadInput(messages=[text_input("ping")], metadata={"k": "v"}),
            )
        )
    )
    assert names(events)[:3] == ["thread.created", "thread.run.created", "thread.run.queued"]
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    thread = events[0].thread
    assert dict(thread.metadata) == {"k": "v"}
    assert await stubs.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=thread.id)) == thread
    messages = await thread_messages(stubs, thread.id)
    assert [text_of(m) for m in messages] == ["ping", "You said: ping"]


async def test_unary_create_returns_queued_run(running: RunningServer) -> None:
    from tests.integration.runs_helpers import TERMINAL, wait_for_status

    stubs = running.stubs
    assistant = await make_assistant(stubs, temperature=0.3)
    thread = await make_thread(stubs, "hello")
    run = await stubs.runs.CreateRun(
        R.CreateRunRequest(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_instructions="Reply in French.",
            additional_messages=[text_input("and more")],
            metadata={"trace": "1"},
        )
    )
    assert run.status == R.RUN_STATUS_QUEUED and run.temperature == 0.3
    assert run.instructions == "Reply in French."
    done = await wait_for_status(stubs, thread.id, run.id, *TERMINAL)
    assert done.status == R.RUN_STATUS_COMPLETED
    messages = await thread_messages(stubs, thread.id)
    assert [text_of(m) for m in messages] == ["hello", "and more", "You said: and more"]
    runs = await stubs.runs.ListRuns(R.ListRunsRequest(thread_id=thread.id))
    assert [r.id for r in runs.data] == [run.id]
    steps = await stubs.runs.ListRunSteps(R.ListRunStepsRequest(thread_id=thread.id, run_id=run.id))
    assert len(steps.data) == 1
    step = await stubs.runs.GetRunStep(
        R.GetRunStepRequest(thread_id=thread.id, run_id=run.id, step_id=steps.data[0].id)
    )
    assert step == steps.data[0] and step.status == R.RUN_STEP_STATUS_COMPLETED
    updated = await stubs.runs.UpdateRun(
        R.UpdateRunRequest(
            thread_id=thread.id,
            run_id=run.id,
            metadata={"values": {"a": "b"}},  # type: ignore[arg-type]
        )
    )
    assert dict(updated.metadata) == {"a": "b"} and updated.status == R.RUN_STATUS_COMPLETED


async def test_reasoning_effort_reaches_the_model_never_shown(running: RunningServer) -> None:
    """Request-only (CONTRACT.md §3): the run's, else its assistant's, goes to the model."""
    stubs, model = running.stubs, running.model
    assistant = await make_assistant(stubs, reasoning_effort=common_pb2.REASONING_EFFORT_HIGH)

    async def effort_sent(**run_fields: Any) -> str | None:
        thread = await make_thread(stubs, "think")
        events = await collect(
            stubs.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id, **run_fields)
            )
        )
        assert names(events)[-2:] == ["thread.run.completed", "done"]
        effort: str | None = model.requests[-1].get("reasoning_effort")
        return effort

    assert await effort_sent() == "high"
    assert await effort_sent(reasoning_effort=common_pb2.REASONING_EFFORT_LOW) == "low"
    # Set to unspecified: the model's own default, whatever the assistant says.
    unspecified = common_pb2.REASONING_EFFORT_UNSPECIFIED
    assert await effort_sent(reasoning_effort=unspecified) is None
    await stubs.assistants.UpdateAssistant(
        assistant_pb2.UpdateAssistantRequest(
            assistant_id=assistant.id, reasoning_effort=unspecified
        )
    )
    assert await effort_sent() is None
    await stubs.assistants.UpdateAssistant(
        assistant_pb2.UpdateAssistantRequest(
            assistant_id=assistant.id, reasoning_effort=common_pb2.REASONING_EFFORT_MINIMAL
        )
    )
    assert await effort_sent() == "minimal"


async def test_the_answer_is_stored_with_its_token_count(running: RunningServer) -> None:
    """Counted once, when the text is final (a long answer on a worker thread): the prompt of
    the next runs reads this count instead of counting the text again."""
    from sqlalchemy import select

    from assistants_grpc.engine.tokens import COUNTING_MODEL, OFF_LOOP_CHARS, TokenCounter
    from assistants_grpc.store.repository import MESSAGES

    stubs, model = running.stubs, running.model
    assistant = await make_assistant(stubs)
    short, long = "Hello there.", " ".join(f"word{i}" for i in range(OFF_LOOP_CHARS // 4))
    assert len(long) > OFF_LOOP_CHARS
    counter = TokenCounter()
    database = running.server.database
    assert database is not None
    for answer in (short, long):
        model.push(TextReply(answer, chunks=8))
        thread = await make_thread(stubs, "say it")
        events = await collect(
            stubs.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
            )
        )
        run_id = events[0].run.id
        stored = await database.transaction(
            lambda c, run_id=run_id: c.execute(
                select(MESSAGES.c.token_count).where(MESSAGES.c.run_id == run_id)
            ).scalar_one()
        )
        assert stored == counter.count_text(COUNTING_MODEL, answer) > 0


async def test_the_log_is_read_in_pages(running: RunningServer) -> None:
    """`read_after` with a limit: the pages of a run's log, put together, are the whole log,
    which is what a replay streams."""
    from assistants_grpc.events import log

    stubs, model = running.stubs, running.model
    assistant = await make_assistant(stubs)
    model.push(TextReply("one two three four five six", chunks=6, chunk_delay=0.03))
    thread = await make_thread(stubs, "count")
    streamed = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    run_id = streamed[0].run.id
    database = running.server.database
    assert database is not None
    pages: list[list[R.RunEvent]] = []
    after = 0
    while page := await database.transaction(
        lambda c, after=after: log.read_after(c, run_id, after, 3)
    ):
        assert len(page) <= 3
        pages.append(page)
        after = page[-1].sequence
    assert len(pages) > 2  # longer than a page
    assert [e for page in pages for e in page] == streamed
    replayed = await collect(
        stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=run_id))
    )
    assert replayed == streamed

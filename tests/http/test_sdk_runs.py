"""Runs and run steps through the official `openai` SDK against the HTTP face: create, poll,
the streaming helpers with an event handler, tool calls answered three ways, cancel, the steps
with `include[]`, and the conflicts the SDK must not retry."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler, AsyncAssistantEventHandler
from openai.types.beta import Assistant
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep
from typing_extensions import override

from assistants_grpc.fake_model import HangReply
from tests.http.conftest import SDK_DEPRECATIONS, HttpServer

pytestmark = list(SDK_DEPRECATIONS)

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


async def _assistant(client: openai.AsyncOpenAI, **fields: Any) -> Assistant:
    return await client.beta.assistants.create(model="gpt-4o", **fields)


class Recorder(AsyncAssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.done_messages: list[Message] = []
        self.done_steps: list[RunStep] = []
        self.text = ""

    @override
    async def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    @override
    async def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""

    @override
    async def on_message_done(self, message: Message) -> None:
        self.done_messages.append(message)

    @override
    async def on_run_step_done(self, run_step: RunStep) -> None:
        self.done_steps.append(run_step)


async def _check_accumulated(
    client: openai.AsyncOpenAI, thread_id: str, run_id: str, handler: Recorder
) -> None:
    """What the handler put together from the deltas is what retrieve and list return."""
    for message in handler.done_messages:
        assert message == await client.beta.threads.messages.retrieve(
            message.id, thread_id=thread_id
        )
    steps = [s async for s in client.beta.threads.runs.steps.list(run_id, thread_id=thread_id)]
    assert sorted(handler.done_steps, key=lambda s: s.id) == sorted(steps, key=lambda s: s.id)


async def test_create_and_poll_the_seed_example(client: openai.AsyncOpenAI) -> None:
    assistant = await client.beta.assistants.create(
        name="Math Tutor",
        instructions="You are a personal math tutor.",
        tools=[{"type": "code_interpreter"}],
        model="gpt-4o",
    )
    thread = await client.beta.threads.create()
    await client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="I need to solve 3x + 11 = 14."
    )
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, instructions="Address the user as Jane."
    )
    assert run.status == "completed" and run.instructions == "Address the user as Jane."
    assert run.usage is not None and run.usage.total_tokens > 0
    page = await client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)
    assert [m.content[0].text.value for m in page.data] == [  # type: ignore[union-attr]
        "You said: I need to solve 3x + 11 = 14."
    ]
    listed = [r.id async for r in client.beta.threads.runs.list(thread.id)]
    assert listed == [run.id]
    polled = await client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert polled == await client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    updated = await client.beta.threads.runs.update(
        run.id, thread_id=thread.id, metadata={"a": "b"}
    )
    assert updated.metadata == {"a": "b"}


async def test_stream_with_an_event_handler(client: openai.AsyncOpenAI) -> None:
    assistant = await _assistant(client)
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "Hello there"}])
    handler = Recorder()
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        await stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "completed"
    assert handler.text == "You said: Hello there"
    assert (
        handler.events[0] == "thread.run.created" and handler.events[-1] == "thread.run.completed"
    )
    assert len(handler.done_messages) == 1 and len(handler.done_steps) == 1
    await _check_accumulated(client, thread.id, run.id, handler)
    # `create_and_stream`, the older name of the same helper.
    await client.beta.threads.messages.create(thread.id, role="user", content="Once more")
    again = Recorder()
    async with client.beta.threads.runs.create_and_stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=again
    ) as stream:
        await stream.until_done()
    assert again.text == "You said: Once more"


async def test_tool_run_polled_then_answered(client: openai.AsyncOpenAI) -> None:
    assistant = await _assistant(client, tools=[WEATHER])
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": '/tool get_weather {"city": "Paris"}'}]
    )
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert run.status == "requires_action" and run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "22C"}],
    )
    assert done.status == "completed"
    messages = await client.beta.threads.messages.list(thread.id, run_id=run.id)
    assert messages.data[0].content[0].text.value == "Tool results: 22C"  # type: ignore[union-attr]
    steps = await client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "message_creation"]
    tool_step = await client.beta.threads.runs.steps.retrieve(
        steps.data[0].id, thread_id=thread.id, run_id=run.id, include=[FILE_SEARCH_CONTENT]
    )
    assert tool_step.step_details.type == "tool_calls"
    assert tool_step.step_details.tool_calls[0].function.output == "22C"  # type: ignore[union-attr]
    included = await client.beta.threads.runs.steps.list(
        run.id, thread_id=thread.id, include=[FILE_SEARCH_CONTENT]
    )
    assert {s.id for s in included.data} == {s.id for s in steps.data}


async def test_tool_run_streamed_then_answered_by_stream(client: openai.AsyncOpenAI) -> None:
    assistant = await _assistant(client, tools=[WEATHER])
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": '/tool get_weather {"city": "Oslo"}'}]
    )
    first = Recorder()
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=first
    ) as stream:
        await stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "requires_action"
    assert first.events[-1] == "thread.run.requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    second = Recorder()
    async with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "-3C"}],
        event_handler=second,
    ) as stream:
        await stream.until_done()
    assert second.events[0] == "thread.run.step.completed"
    assert second.text == "Tool results: -3C"
    await _check_accumulated(client, thread.id, run.id, second)
    # The plain submit too, on the next tool run of the thread.
    await client.beta.threads.messages.create(
        thread.id, role="user", content='/tool get_weather {"city": "Rome"}'
    )
    paused = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    call = paused.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    queued = await client.beta.threads.runs.submit_tool_outputs(
        run_id=paused.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "9C"}],
    )
    assert queued.status in ("queued", "in_progress")
    final = await client.beta.threads.runs.poll(paused.id, thread_id=thread.id)
    assert final.status == "completed"


async def test_create_and_run_in_every_form(client: openai.AsyncOpenAI) -> None:
    assistant = await _assistant(client)
    run = await client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "one"}], "metadata": {"t": "1"}},
    )
    assert run.status in ("queued", "in_progress") and run.thread_id.startswith("thread_")
    assert (await client.beta.threads.retrieve(run.thread_id)).metadata == {"t": "1"}
    polled = await client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "two"}]}
    )
    assert polled.status == "completed"
    handler = Recorder()
    async with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "three"}]},
        event_handler=handler,
    ) as stream:
        await stream.until_done()
    assert handler.events[0] == "thread.created" and handler.text == "You said: three"


async def test_cancel_with_an_empty_body(
    http_server: HttpServer, client: openai.AsyncOpenAI
) -> None:
    http_server.running.model.push(HangReply(30))
    assistant = await _assistant(client)
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "wait"}])
    run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    cancelling = await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    final = await client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert final.status == "cancelled"
    with pytest.raises(openai.BadRequestError) as finished:
        await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert finished.value.message.endswith("Cannot cancel run with status 'cancelled'.")


async def test_a_conflict_is_one_request_and_a_bad_request(
    http_server: HttpServer, client: openai.AsyncOpenAI
) -> None:
    http_server.running.model.push(HangReply(30))
    assistant = await _assistant(client)
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "wait"}])
    run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    before = http_server.face.requests
    with pytest.raises(openai.BadRequestError) as busy:
        await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert http_server.face.requests == before + 1  # the SDK (max_retries=2) did not retry
    assert busy.value.message.endswith(f"Thread {thread.id} already has an active run {run.id}.")
    assert busy.value.body == {
        "message": f"Thread {thread.id} already has an active run {run.id}.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    before = http_server.face.requests
    with pytest.raises(openai.BadRequestError) as locked:
        await client.beta.threads.messages.create(thread.id, role="user", content="more")
    assert http_server.face.requests == before + 1
    assert "while a run" in locked.value.message
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[]
        )
    # Streams refuse the same way, before any event: an ordinary error, not a broken stream.
    with pytest.raises(openai.BadRequestError):
        async with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id
        ) as stream:
            await stream.until_done()
    await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


async def test_missing_ids_are_not_found(client: openai.AsyncOpenAI) -> None:
    assistant = await _assistant(client)
    thread = await client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.runs.create(thread_id="thread_missing", assistant_id=assistant.id)
    with pytest.raises(openai.NotFoundError) as no_assistant:
        await client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_missing")
    assert no_assistant.value.message.endswith("No assistant found with id 'asst_missing'.")
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.runs.steps.list("run_missing", thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        async with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id="asst_missing"
        ) as stream:
            await stream.until_done()


async def test_runs_every_method_sync(http_server: HttpServer) -> None:
    def work() -> None:
        with http_server.sync_client() as client:
            assistant = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER])
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "sync"}])
            run: Run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id
            )
            assert run.status == "completed"
            assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).id == run.id
            assert [r.id for r in client.beta.threads.runs.list(thread.id)] == [run.id]
            client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"s": "y"})
            steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread.id))
            one = client.beta.threads.runs.steps.retrieve(
                steps[0].id, thread_id=thread.id, run_id=run.id
            )
            assert one == steps[0]

            class Texts(AssistantEventHandler):
                text = ""

                @override
                def on_text_delta(self, delta: Any, snapshot: Any) -> None:
                    self.text += delta.value or ""

            client.beta.threads.messages.create(
                thread.id, role="user", content='/tool get_weather {"city": "Lima"}'
            )
            with client.beta.threads.runs.stream(
                thread_id=thread.id, assistant_id=assistant.id
            ) as stream:
                stream.until_done()
                paused = stream.current_run
            assert paused is not None and paused.status == "requires_action"
            call = paused.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
            handler = Texts()
            with client.beta.threads.runs.submit_tool_outputs_stream(
                run_id=paused.id,
                thread_id=thread.id,
                tool_outputs=[{"tool_call_id": call.id, "output": "18C"}],
                event_handler=handler,
            ) as stream:
                stream.until_done()
            assert handler.text == "Tool results: 18C"
            polled = client.beta.threads.create_and_run_poll(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "x"}]}
            )
            assert polled.status == "completed"
            with client.beta.threads.create_and_run_stream(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "y"}]}
            ) as stream:
                stream.until_done()
            created = client.beta.threads.create_and_run(assistant_id=assistant.id)
            client.beta.threads.runs.poll(created.id, thread_id=created.thread_id)

    await asyncio.to_thread(work)

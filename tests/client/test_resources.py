"""Every resource method, through the blocking and the asyncio client, against a real server
and the fake model."""

from __future__ import annotations

import time

from assistants_grpc_client import (
    AsyncClient,
    Client,
    FailedPreconditionError,
    NotFoundError,
    function_tool,
)
from assistants_grpc_client.v1 import common_pb2, message_pb2, run_pb2

from assistants_grpc.fake_model import HangReply, TextReply, ToolCallsReply
from tests.client.conftest import in_thread
from tests.conftest import RunningServer

R = run_pb2

WEATHER_DICT = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@function_tool
def get_time(tz: str = "UTC") -> str:
    """The time in a time zone."""
    return "12:00"


def text_of(message: message_pb2.Message) -> str:
    return "".join(part.text.value for part in message.content)


async def test_assistants(client: Client) -> None:
    def flow() -> None:
        created = client.assistants.create(
            model="gpt-4o",
            name="Weather bot",
            instructions="Answer about the weather.",
            tools=[WEATHER_DICT, get_time, {"type": "code_interpreter"}],
            metadata={"team": "ops"},
            temperature=0.5,
            response_format={"type": "json_object"},
            reasoning_effort="low",
        )
        assert created.id.startswith("asst_") and created.name == "Weather bot"
        assert [t.WhichOneof("tool") for t in created.tools] == [
            "function",
            "function",
            "code_interpreter",
        ]
        assert created.tools[0].function.parameters["required"] == ["city"]
        assert created.tools[1].function.name == "get_time"
        assert created.response_format.HasField("json_object")
        assert client.assistants.retrieve(created.id) == created

        updated = client.assistants.update(
            created.id, name="Renamed", tools=[], metadata={"new": "1"}, top_p=0.9
        )
        assert updated.name == "Renamed" and list(updated.tools) == []
        assert dict(updated.metadata) == {"new": "1"} and updated.top_p == 0.9
        assert updated.instructions == "Answer about the weather."

        assert [a.id for a in client.assistants.list()] == [created.id]
        deleted = client.assistants.delete(created.id)
        assert deleted.id == created.id and deleted.deleted
        try:
            client.assistants.retrieve(created.id)
        except NotFoundError as error:
            assert created.id in error.message
        else:
            raise AssertionError("retrieve after delete succeeded")

    await in_thread(flow)


async def test_threads_and_messages(client: Client) -> None:
    def flow() -> None:
        thread = client.threads.create(
            messages=[
                {"role": "user", "content": "first"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "second"}],
                    "metadata": {"k": "v"},
                },
            ],
            metadata={"topic": "x"},
        )
        assert thread.id.startswith("thread_") and dict(thread.metadata) == {"topic": "x"}
        assert client.threads.retrieve(thread.id) == thread
        assert dict(client.threads.update(thread.id, metadata={"topic": "y"}).metadata) == {
            "topic": "y"
        }
        assert thread.id in [t.id for t in client.threads.list()]

        plain = client.messages.create(thread.id, role="user", content="hi")
        assert plain.role == message_pb2.MESSAGE_ROLE_USER and text_of(plain) == "hi"
        parts = client.messages.create(
            thread.id,
            role="user",
            content=[
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
            metadata={"a": "b"},
        )
        assert parts.content[1].image_url.detail == message_pb2.IMAGE_DETAIL_LOW
        assert client.messages.retrieve(plain.id, thread_id=thread.id) == plain
        assert dict(
            client.messages.update(plain.id, thread_id=thread.id, metadata={"x": "1"}).metadata
        ) == {"x": "1"}
        texts = [text_of(m) for m in client.messages.list(thread.id, order="asc")]
        assert texts == ["first", "second", "hi", "look"]

        assert client.messages.delete(plain.id, thread_id=thread.id).deleted
        assert len(list(client.messages.list(thread.id))) == 3
        assert client.threads.delete(thread.id).deleted
        try:
            client.threads.retrieve(thread.id)
        except NotFoundError:
            pass
        else:
            raise AssertionError("the thread is still there")

    await in_thread(flow)


async def test_runs(running: RunningServer, client: Client) -> None:
    model = running.model
    model.push(
        TextReply("first answer"),
        HangReply(30),
        ToolCallsReply([("get_weather", '{"city": "Paris"}')]),
        TextReply("done"),
    )

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o", tools=[WEATHER_DICT])
        thread = client.threads.create(messages=[{"role": "user", "content": "hello"}])

        # create + watch until the end; retrieve, list, update; the messages of the run.
        run = client.runs.create(thread.id, assistant.id, metadata={"n": "1"}, temperature=0.3)
        assert run.status == R.RUN_STATUS_QUEUED and run.temperature == 0.3
        finished = client.runs.watch(run.id, thread_id=thread.id).final_run()
        assert finished.status == R.RUN_STATUS_COMPLETED
        assert client.runs.retrieve(run.id, thread_id=thread.id) == finished
        assert [r.id for r in client.runs.list(thread.id)] == [run.id]
        assert dict(client.runs.update(run.id, thread_id=thread.id, metadata={}).metadata) == {}
        by_run = list(client.messages.list(thread.id, run_id=run.id))
        assert [text_of(m) for m in by_run] == ["first answer"]

        # steps
        steps = list(client.runs.steps.list(run.id, thread_id=thread.id))
        assert [s.type for s in steps] == [R.RUN_STEP_TYPE_MESSAGE_CREATION]
        step = client.runs.steps.retrieve(steps[0].id, thread_id=thread.id, run_id=run.id)
        assert step == steps[0]

        # cancel a run that hangs on the model
        hanging = client.runs.create(
            thread.id,
            assistant.id,
            additional_messages=[{"role": "user", "content": "again"}],
            additional_instructions="Be quick.",
        )
        # Cancel once the model has the request: cancelled earlier, the run would leave the
        # queued HangReply to the next run.
        deadline = time.monotonic() + 10
        while len(model.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        cancelling = client.runs.cancel(hanging.id, thread_id=thread.id)
        assert cancelling.status in (R.RUN_STATUS_CANCELLING, R.RUN_STATUS_CANCELLED)
        ended = client.runs.watch(hanging.id, thread_id=thread.id).final_run()
        assert ended.status == R.RUN_STATUS_CANCELLED
        try:
            client.runs.cancel(hanging.id, thread_id=thread.id)
        except FailedPreconditionError as error:
            assert error.code.name == "FAILED_PRECONDITION"
        else:
            raise AssertionError("cancelling a cancelled run succeeded")

        # unary submit_tool_outputs, then watch the rest from where the stream stopped
        stream = client.runs.stream(thread.id, assistant.id, tool_choice="auto")
        paused = stream.final_run()
        assert paused.status == R.RUN_STATUS_REQUIRES_ACTION
        call = paused.required_action.submit_tool_outputs.tool_calls[0]
        queued = client.runs.submit_tool_outputs(
            paused.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
        )
        assert queued.status == R.RUN_STATUS_QUEUED
        rest = client.runs.watch(
            paused.id, thread_id=thread.id, after_sequence=stream.last_sequence
        )
        assert rest.final_run().status == R.RUN_STATUS_COMPLETED
        assert [text_of(m) for m in rest.final_messages()] == ["done"]

    await in_thread(flow)


async def test_thread_and_run(running: RunningServer, client: Client) -> None:
    running.model.push(TextReply("one"), TextReply("two"))

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o")
        run = client.runs.create_and_run(
            assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert client.runs.watch(run.id, thread_id=run.thread_id).final_run().status == (
            R.RUN_STATUS_COMPLETED
        )

        stream = client.runs.create_and_stream(
            assistant.id,
            thread={"messages": [{"role": "user", "content": "hi"}], "metadata": {"k": "v"}},
            truncation_strategy={"type": "last_messages", "last_messages": 5},
        )
        first = next(stream)
        assert first.event == "thread.created" and dict(first.thread.metadata) == {"k": "v"}
        assert stream.thread_id == first.thread.id
        assert "".join(stream.text_deltas()) == "two"
        final = stream.final_run()
        assert final.status == R.RUN_STATUS_COMPLETED
        assert final.truncation_strategy.last_messages == 5
        assert stream.run_id == final.id

    await in_thread(flow)


async def test_submit_tool_outputs_stream(running: RunningServer, client: Client) -> None:
    running.model.push(
        ToolCallsReply([("get_weather", '{"city": "Paris"}')]), TextReply("It is sunny.")
    )

    def flow() -> None:
        assistant = client.assistants.create(model="gpt-4o", tools=[WEATHER_DICT])
        thread = client.threads.create(messages=[{"role": "user", "content": "weather?"}])
        with client.runs.stream(thread.id, assistant.id) as stream:
            names = [event.event for event in stream]
        assert names[-2:] == ["thread.run.requires_action", "done"]
        run = stream.final_run()
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        assert call.function.name == "get_weather"
        second = client.runs.submit_tool_outputs_stream(
            run.id,
            thread_id=thread.id,
            tool_outputs=[R.ToolOutput(tool_call_id=call.id, output="sunny")],
        )
        assert "".join(second.text_deltas()) == "It is sunny."
        assert second.final_run().status == R.RUN_STATUS_COMPLETED

    await in_thread(flow)


async def test_async_client_resources(running: RunningServer, aclient: AsyncClient) -> None:
    running.model.push(
        TextReply("hello back"),
        ToolCallsReply([("get_time", "{}")]),
        TextReply("noon"),
        TextReply("new thread"),
    )
    assistant = await aclient.assistants.create(
        model="gpt-4o", tools=[get_time], metadata={"a": "1"}
    )
    assert (await aclient.assistants.retrieve(assistant.id)) == assistant
    updated = await aclient.assistants.update(assistant.id, description="d")
    assert updated.description == "d" and updated.tools[0].function.name == "get_time"
    assert [a.id async for a in aclient.assistants.list()] == [assistant.id]

    thread = await aclient.threads.create()
    assert (await aclient.threads.retrieve(thread.id)) == thread
    await aclient.threads.update(thread.id, metadata={"t": "1"})
    assert [t.id async for t in aclient.threads.list()] == [thread.id]
    message = await aclient.messages.create(thread.id, role="user", content="hi")
    assert (await aclient.messages.retrieve(message.id, thread_id=thread.id)) == message
    await aclient.messages.update(message.id, thread_id=thread.id, metadata={"m": "1"})

    stream = aclient.runs.stream(thread.id, assistant.id)
    assert "".join([text async for text in stream.text_deltas()]) == "hello back"
    run = await stream.final_run()
    assert (await aclient.runs.retrieve(run.id, thread_id=thread.id)) == run
    assert [r.id async for r in aclient.runs.list(thread.id)] == [run.id]
    await aclient.runs.update(run.id, thread_id=thread.id, metadata={"r": "1"})
    steps = [s async for s in aclient.runs.steps.list(run.id, thread_id=thread.id)]
    assert (
        await aclient.runs.steps.retrieve(steps[0].id, thread_id=thread.id, run_id=run.id)
    ) == steps[0]

    paused = await aclient.runs.stream(thread.id, assistant.id).final_run()
    call = paused.required_action.submit_tool_outputs.tool_calls[0]
    rest = aclient.runs.submit_tool_outputs_stream(
        paused.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "12"}]
    )
    assert [m.content[0].text.value for m in await rest.final_messages()] == ["noon"]

    created = await aclient.runs.create_and_run(
        assistant.id, thread={"messages": [{"role": "user", "content": "x"}]}, tool_choice="none"
    )
    watched = await aclient.runs.watch(created.id, thread_id=created.thread_id).final_run()
    assert watched.status == R.RUN_STATUS_COMPLETED
    assert watched.tool_choice.mode == common_pb2.TOOL_CHOICE_MODE_NONE

    # unary create, cancel, submit_tool_outputs; the thread's messages
    running.model.push(HangReply(30), ToolCallsReply([("get_time", "{}")]), TextReply("later"))
    hanging = await aclient.runs.create(thread.id, assistant.id)
    await aclient.runs.cancel(hanging.id, thread_id=thread.id)
    cancelled = await aclient.runs.watch(hanging.id, thread_id=thread.id).final_run()
    assert cancelled.status == R.RUN_STATUS_CANCELLED
    stream = aclient.runs.stream(thread.id, assistant.id)
    paused = await stream.final_run()
    call = paused.required_action.submit_tool_outputs.tool_calls[0]
    queued = await aclient.runs.submit_tool_outputs(
        paused.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "1"}]
    )
    assert queued.status == R.RUN_STATUS_QUEUED
    rest = aclient.runs.watch(paused.id, thread_id=thread.id, after_sequence=stream.last_sequence)
    assert (await rest.final_run()).status == R.RUN_STATUS_COMPLETED
    texts = [text_of(m) async for m in aclient.messages.list(thread.id, order="asc")]
    assert texts == ["hi", "hello back", "noon", "later"]

    assert (await aclient.messages.delete(message.id, thread_id=thread.id)).deleted
    assert (await aclient.threads.delete(thread.id)).deleted
    assert (await aclient.assistants.delete(assistant.id)).deleted

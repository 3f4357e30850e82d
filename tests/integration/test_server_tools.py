"""The run loop with server-side tool calls, proved with test ToolExecutors (echo_tools.py):
rounds executed inside `in_progress`, their outputs back in the prompt, mixed turns, the round
cap, cancel during a call, annotations and image parts, and no text lost around tool calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from tests.conftest import RunningServer, serving
from tests.integration.echo_tools import IMAGE_FILE, EchoCode, EchoSearch
from tests.integration.event_checks import check_run_log
from tests.integration.helpers import expect_error, function_tool, text_input, violated_fields
from tests.integration.runs_helpers import (
    TIME,
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    thread_messages,
    wait_for_status,
)
from tests.integration.test_sdk_replay import replay

R = run_pb2
CODE = common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
SEARCH = common_pb2.Tool(file_search=common_pb2.FileSearchSettings())


@pytest.fixture
def echo() -> EchoCode:
    return EchoCode()


@pytest.fixture
async def tooled(
    database_url: str, fake_model: FakeModelServer, echo: EchoCode
) -> AsyncIterator[RunningServer]:
    """A server whose registry executes code_interpreter (echo) and file_search (echo)."""
    registry = ToolRegistry([echo, EchoSearch()])
    async with serving(
        database_url, fake_model, overrides={"tool_registry": registry}, max_tool_rounds=4
    ) as server:
        yield server


async def run_stream(stubs: Any, assistant_id: str, *texts: str) -> list[R.RunEvent]:
    thread = await make_thread(stubs, *texts)
    return await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant_id)
        )
    )


async def whole_log(stubs: Any, run: R.Run) -> list[R.RunEvent]:
    return await collect(
        stubs.runs.WatchRun(R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id))
    )


def step_events(events: list[R.RunEvent], step_id: str) -> list[str]:
    out = []
    for event in events:
        if event.WhichOneof("data") == "run_step" and event.run_step.id == step_id:
            out.append(event.event)
        elif event.event == "thread.run.step.delta" and event.run_step_delta.id == step_id:
            out.append(event.event)
    return out


async def test_three_server_side_rounds_then_an_answer(
    tooled: RunningServer, echo: EchoCode
) -> None:
    stubs, model = tooled.stubs, tooled.model
    codes = ['{"code": "1 + 1"}', '{"code": "2 * 2"}', '{"code": "3 ** 3"}']
    model.push(
        *(ToolCallsReply([("python", code)], fragments=3) for code in codes),
        TextReply("Two, four and twenty-seven.", chunks=5),
    )
    assistant = await make_assistant(stubs, tools=[CODE, WEATHER])
    events = await run_stream(stubs, assistant.id, "compute")
    run = events[0].run

    # The whole stream is one segment: the caller never sees requires_action.
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    assert "thread.run.requires_action" not in names(events)
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    steps = [e.run_step for e in events if e.event == "thread.run.step.created"]
    assert [s.type for s in steps] == [R.RUN_STEP_TYPE_TOOL_CALLS] * 3 + [
        R.RUN_STEP_TYPE_MESSAGE_CREATION
    ]
    for step in steps[:3]:
        # created, in progress, the call's first delta, its input (streamed as the model writes
        # it: one delta or more, as the writes coalesce), what it emitted while running, its
        # final delta, completed (CONTRACT.md §9, §12).
        shown = step_events(events, step.id)
        assert shown[:2] == ["thread.run.step.created", "thread.run.step.in_progress"]
        assert shown[-1] == "thread.run.step.completed"
        assert set(shown[2:-1]) == {"thread.run.step.delta"} and len(shown) >= 7
    first_deltas = [
        e.run_step_delta.delta.step_details.tool_calls.tool_calls[0]
        for e in events
        if e.event == "thread.run.step.delta"
    ]
    first = render(first_deltas[0])
    assert first["type"] == "code_interpreter" and first["id"].startswith("call_")
    assert first["code_interpreter"] == {"input": "", "outputs": []}

    # The official SDK's accumulator rebuilds every step as stored, and the final message.
    message, rebuilt = replay(events)
    assert message["content"][0]["text"]["value"] == "Two, four and twenty-seven."  # type: ignore[index]
    listed = await stubs.runs.ListRunSteps(
        R.ListRunStepsRequest(
            thread_id=run.thread_id, run_id=run.id, order=common_pb2.LIST_ORDER_ASC
        )
    )
    for stored, code in zip(listed.data[:3], codes, strict=True):
        (call,) = render(stored)["step_details"]["tool_calls"]
        assert call["code_interpreter"] == {
            "input": code,
            "outputs": [{"type": "logs", "logs": "echo: " + code}],
        }
        (again,) = rebuilt[stored.id]["step_details"]["tool_calls"]  # type: ignore[index]
        assert again["code_interpreter"]["input"] == code
        assert [o["logs"] for o in again["code_interpreter"]["outputs"]] == ["echo: " + code]
        assert stored.status == R.RUN_STEP_STATUS_COMPLETED and stored.usage.total_tokens > 0
    final = events[-2].run
    assert final.usage.total_tokens == sum(s.usage.total_tokens for s in listed.data)

    # Each turn's prompt carried the earlier rounds: the python call and its tool message.
    assert len(model.requests) == 4
    offered = [t["function"]["name"] for t in model.requests[0]["tools"]]
    assert offered == ["python", "get_weather"]
    last = model.requests[3]["messages"]
    calls = [m for m in last if m.get("tool_calls")]
    assert [json.loads(m["tool_calls"][0]["function"]["arguments"])["code"] for m in calls] == [
        "1 + 1",
        "2 * 2",
        "3 ** 3",
    ]
    tool_messages = [m["content"] for m in last if m["role"] == "tool"]
    assert tool_messages == [f"echo {code}" for code in codes]
    # The executor knew the run and what it had done before.
    assert [len(c.earlier_calls) for c in echo.contexts] == [0, 1, 2]
    assert {c.run_id for c in echo.contexts} == {run.id}
    # WatchRun replays the same log.
    assert await whole_log(stubs, run) == events


async def test_a_mixed_turn_runs_the_server_calls_then_waits_for_the_functions(
    tooled: RunningServer,
) -> None:
    stubs, model = tooled.stubs, tooled.model
    model.push(
        ToolCallsReply([("python", '{"code": "x"}'), ("get_weather", '{"city": "Oslo"}')]),
        TextReply("Done."),
    )
    assistant = await make_assistant(stubs, tools=[CODE, WEATHER])
    first = await run_stream(stubs, assistant.id, "both")
    assert names(first)[-2:] == ["thread.run.requires_action", "done"]
    paused = first[-2].run
    required = paused.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in required] == ["get_weather"]  # only the function
    (step,) = [e.run_step for e in first if e.event == "thread.run.step.created"]
    waiting = await stubs.runs.GetRunStep(
        R.GetRunStepRequest(thread_id=paused.thread_id, run_id=paused.id, step_id=step.id)
    )
    assert waiting.status == R.RUN_STEP_STATUS_IN_PROGRESS
    python, weather = waiting.step_details.tool_calls.tool_calls
    assert python.code_interpreter.outputs[0].logs == 'echo: {"code": "x"}'  # already ran
    assert not weather.function.HasField("output")

    # The outputs expected are exactly the function calls'.
    await expect_error(
        stubs.runs.SubmitToolOutputs(
            R.SubmitToolOutputsRequest(
                thread_id=paused.thread_id,
                run_id=paused.id,
                tool_outputs=[
                    R.ToolOutput(tool_call_id=python.id, output="x"),
                    R.ToolOutput(tool_call_id=weather.id, output="sunny"),
                ],
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    rest = await collect(
        stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=paused.thread_id,
                run_id=paused.id,
                tool_outputs=[R.ToolOutput(tool_call_id=weather.id, output="sunny")],
            )
        )
    )
    assert names(rest)[0] == "thread.run.step.completed"
    done = rest[0].run_step
    python, weather = done.step_details.tool_calls.tool_calls
    assert python.code_interpreter.input == '{"code": "x"}' and weather.function.output == "sunny"
    assert names(rest)[-2:] == ["thread.run.completed", "done"]
    prompt = model.requests[1]["messages"]
    assert [m["content"] for m in prompt if m["role"] == "tool"] == ['echo {"code": "x"}', "sunny"]
    check_run_log(await whole_log(stubs, paused))


async def test_the_tool_round_cap_fails_a_runaway_run(tooled: RunningServer) -> None:
    stubs, model = tooled.stubs, tooled.model
    model.push(*(ToolCallsReply([("python", '{"code": "again"}')]) for _ in range(5)))
    assistant = await make_assistant(stubs, tools=[CODE])
    events = await run_stream(stubs, assistant.id, "loop")
    failed = events[-2].run
    assert failed.status == R.RUN_STATUS_FAILED
    assert failed.last_error.code == R.RUN_ERROR_CODE_SERVER_ERROR
    assert failed.last_error.message == (
        "The run made 4 rounds of server-side tool calls without answering "
        "(the limit set by --max-tool-rounds)."
    )
    assert len(model.requests) == 5  # four rounds executed, the fifth call refused
    assert [e.event for e in events].count("thread.run.step.completed") == 4
    check_run_log(events)


async def test_cancel_interrupts_a_long_server_side_call(
    tooled: RunningServer, echo: EchoCode
) -> None:
    stubs, model = tooled.stubs, tooled.model
    echo.gate = asyncio.Event()  # never set: the call runs until it is cancelled
    model.push(ToolCallsReply([("python", '{"code": "sleep"}')]))
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "slow")
    run = await stubs.runs.CreateRun(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    await asyncio.wait_for(echo.started.wait(), 10)
    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run.id))
    ended = await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_CANCELLED)
    assert ended.HasField("cancelled_at")
    assert echo.cancelled == 1
    events = await whole_log(stubs, run)
    assert names(events)[-4:] == [
        "thread.run.cancelling",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    check_run_log(events)


async def test_annotations_and_image_parts_from_server_side_calls(tooled: RunningServer) -> None:
    stubs, model = tooled.stubs, tooled.model
    model.push(
        ToolCallsReply([("file_search", '{"queries": ["tides"]}')]),
        ToolCallsReply([("python", '{"code": "plot()"}')]),
        TextReply("Tides rise 【4:0†doc.txt】 twice a day, see the plot.", chunks=9),
    )
    assistant = await make_assistant(stubs, tools=[SEARCH, CODE])
    events = await run_stream(stubs, assistant.id, "tides?")
    check_run_log(events)
    final = next(e.message for e in events if e.event == "thread.message.completed")
    image, text = final.content
    assert image.image_file.file_id == IMAGE_FILE  # the round's image opens the next message
    assert text.text.value == "Tides rise 【4:0†doc.txt】 twice a day, see the plot."
    (annotation,) = text.text.annotations
    assert annotation.text == "【4:0†doc.txt】"
    assert text.text.value[annotation.start_index : annotation.end_index] == annotation.text
    assert annotation.file_citation.file_id == "file-cited"
    # Streamed: the marker never went out half; the annotation once, complete.
    deltas = [e.message_delta.delta.content for e in events if e.event == "thread.message.delta"]
    texts = [part.text.value for content in deltas for part in content if part.HasField("text")]
    assert not any(t.endswith(("【", "【4", "【4:0")) for t in texts)
    assert "".join(texts) == text.text.value
    annotated = [a for content in deltas for p in content for a in p.text.annotations]
    assert len(annotated) == 1 and annotated[0].index == 0
    # The SDK rebuilds the same message, annotation and image part included.
    message, _ = replay(events)
    assert message["content"][0]["image_file"]["file_id"] == IMAGE_FILE  # type: ignore[index]
    rebuilt = message["content"][1]["text"]  # type: ignore[index]
    assert rebuilt["value"] == text.text.value
    assert [a["text"] for a in rebuilt["annotations"]] == [annotation.text]
    # file_search results hide their content unless the run asked for it (include[]).
    search_step = next(
        e.run_step for e in events if e.event == "thread.run.step.completed"
    ).step_details.tool_calls.tool_calls[0]
    assert search_step.file_search.results[0].file_name == "doc.txt"
    assert not search_step.file_search.results[0].content
    stored = await thread_messages(stubs, events[0].run.thread_id, run_id=events[0].run.id)
    assert [render(m)["content"] for m in stored] == [render(final)["content"]]


async def test_include_shows_file_search_content(tooled: RunningServer) -> None:
    stubs, model = tooled.stubs, tooled.model
    model.push(ToolCallsReply([("file_search", '{"queries": ["x"]}')]), TextReply("ok"))
    assistant = await make_assistant(stubs, tools=[SEARCH])
    thread = await make_thread(stubs, "q")
    include = "step_details.tool_calls[*].file_search.results[*].content"
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id, include=[include])
        )
    )
    step = next(e.run_step for e in events if e.event == "thread.run.step.completed")
    result = step.step_details.tool_calls.tool_calls[0].file_search.results[0]
    assert result.content[0].text == "about ['x']"
    # GetRunStep / ListRunSteps show it when they ask, whatever the run asked.
    run = events[0].run
    for asked, shown in (([], 0), ([include], 1)):
        got = await stubs.runs.GetRunStep(
            R.GetRunStepRequest(
                thread_id=run.thread_id, run_id=run.id, step_id=step.id, include=asked
            )
        )
        assert (
            len(got.step_details.tool_calls.tool_calls[0].file_search.results[0].content) == shown
        )
        page = await stubs.runs.ListRunSteps(
            R.ListRunStepsRequest(thread_id=run.thread_id, run_id=run.id, include=asked)
        )
        listed = next(s for s in page.data if s.id == step.id)
        assert (
            len(listed.step_details.tool_calls.tool_calls[0].file_search.results[0].content)
            == shown
        )


async def test_tools_get_the_run_and_its_merged_resources(
    tooled: RunningServer, echo: EchoCode
) -> None:
    stubs, model = tooled.stubs, tooled.model
    model.push(ToolCallsReply([("python", '{"code": "ls"}')]), TextReply("ok"))
    assistant = await make_assistant(
        stubs,
        tools=[CODE],
        tool_resources=common_pb2.ToolResources(
            code_interpreter=common_pb2.CodeInterpreterResources(file_ids=["file-a", "file-b"])
        ),
    )
    thread = await stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(
            messages=[text_input("go")],
            tool_resources=common_pb2.ToolResources(
                code_interpreter=common_pb2.CodeInterpreterResources(file_ids=["file-b", "file-c"])
            ),
        )
    )
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    (context,) = echo.contexts
    assert context.tool_resources == {
        "code_interpreter": {"file_ids": ["file-a", "file-b", "file-c"]}
    }
    assert context.project == "default" and context.thread_id == thread.id
    assert context.tool == {"type": "code_interpreter"} and context.model == "gpt-4o"
    assert context.include == frozenset()


async def test_expiry_interrupts_a_long_server_side_call(
    tooled: RunningServer, echo: EchoCode
) -> None:
    stubs, model = tooled.stubs, tooled.model
    echo.gate = asyncio.Event()
    model.push(ToolCallsReply([("python", '{"code": "sleep"}')]))
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "slow")
    run = await stubs.runs.CreateRun(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    await asyncio.wait_for(echo.started.wait(), 10)
    tooled.clock.advance(601)
    await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_EXPIRED)
    assert echo.cancelled == 1
    events = await whole_log(stubs, run)
    assert names(events)[-3:] == ["thread.run.step.expired", "thread.run.expired", "done"]
    check_run_log(events)


async def test_built_in_function_names_and_forced_tools(tooled: RunningServer) -> None:
    stubs, model = tooled.stubs, tooled.model
    python = function_tool("python")
    error = await expect_error(
        make_assistant(stubs, tools=[CODE, python]), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert violated_fields(error) == ["tools[1].function.name"]
    error = await expect_error(
        make_assistant(stubs, tools=[SEARCH, function_tool("file_search")]),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["tools[1].function.name"]
    plain = await make_assistant(stubs, tools=[python])  # no code_interpreter: allowed
    thread = await make_thread(stubs, "x")
    await expect_error(
        stubs.runs.CreateRun(
            R.CreateRunRequest(
                thread_id=thread.id,
                assistant_id=plain.id,
                tools=common_pb2.ToolList(tools=[CODE, python]),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    error = await expect_error(
        stubs.runs.CreateRun(
            R.CreateRunRequest(
                thread_id=thread.id,
                assistant_id=plain.id,
                tool_choice=common_pb2.ToolChoice(
                    named=common_pb2.NamedToolChoice(type=common_pb2.TOOL_TYPE_FILE_SEARCH)
                ),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["tool_choice.type"]

    # tool_choice {type: code_interpreter} forces `python` on the first turn only.
    model.push(ToolCallsReply([("python", '{"code": "1"}')]), TextReply("one"))
    assistant = await make_assistant(stubs, tools=[CODE, TIME])
    thread = await make_thread(stubs, "go")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(
                thread_id=thread.id,
                assistant_id=assistant.id,
                tool_choice=common_pb2.ToolChoice(
                    named=common_pb2.NamedToolChoice(type=common_pb2.TOOL_TYPE_CODE_INTERPRETER)
                ),
            )
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    forced, after = model.requests[-2:]
    assert forced["tool_choice"] == {"type": "function", "function": {"name": "python"}}
    assert "tool_choice" not in after


async def test_a_built_in_tool_without_an_executor_is_not_offered(
    database_url: str, fake_model: FakeModelServer
) -> None:
    # A server whose registry has no executors (an embedder's choice): the built-ins are
    # not offered, so the model cannot call what nobody would execute.
    async with serving(database_url, fake_model, overrides={"tool_registry": ToolRegistry()}) as s:
        assistant = await make_assistant(s.stubs, tools=[CODE, SEARCH, WEATHER])
        events = await run_stream(s.stubs, assistant.id, "hi")
        assert names(events)[-2:] == ["thread.run.completed", "done"]
        assert [t["function"]["name"] for t in s.model.requests[-1]["tools"]] == ["get_weather"]


async def test_the_built_in_tools_are_offered_by_default(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    assistant = await make_assistant(stubs, tools=[CODE, SEARCH, WEATHER])
    events = await run_stream(stubs, assistant.id, "hi")
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    offered = [t["function"]["name"] for t in model.requests[-1]["tools"]]
    assert sorted(offered) == ["file_search", "get_weather", "python"]


# --- no text is lost around tool calls ---------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        ToolCallsReply(
            [("get_weather", '{"city": "Rome"}'), ("get_time", "{}")],
            fragments=3,
            text_after="I will check both for you.",
        ),
        ToolCallsReply(
            [("get_weather", '{"city": "Rome"}'), ("get_time", "{}")],
            fragments=3,
            text="I will ",
            text_between="check both ",
            text_after="for you.",
        ),
    ],
    ids=["text-after-calls", "interleaved"],
)
async def test_text_around_calls_is_one_message_before_the_step(
    running: RunningServer, reply: ToolCallsReply
) -> None:
    stubs, model = running.stubs, running.model
    model.push(reply)
    assistant = await make_assistant(stubs, tools=[WEATHER, TIME])
    events = await run_stream(stubs, assistant.id, "rome?")
    check_run_log(events, whole=False)
    assert names(events)[-2:] == ["thread.run.requires_action", "done"]
    created = [e.run_step.type for e in events if e.event == "thread.run.step.created"]
    assert created == [R.RUN_STEP_TYPE_MESSAGE_CREATION, R.RUN_STEP_TYPE_TOOL_CALLS]
    completed = next(e.message for e in events if e.event == "thread.message.completed")
    assert completed.content[0].text.value == "I will check both for you."
    at = names(events).index
    assert at("thread.message.completed") < at(
        "thread.run.step.created", at("thread.message.completed")
    )
    # Every delta of the message came before it completed, and they add up to it.
    message, steps = replay(events)
    assert message["content"][0]["text"]["value"] == "I will check both for you."  # type: ignore[index]
    tool_step = next(s for s in steps.values() if s["type"] == "tool_calls")
    rebuilt = [
        (c["function"]["name"], c["function"]["arguments"])
        for c in tool_step["step_details"]["tool_calls"]
    ]  # type: ignore[index]
    assert rebuilt == [("get_weather", '{"city": "Rome"}'), ("get_time", "{}")]
    stored = await thread_messages(stubs, events[0].run.thread_id, run_id=events[0].run.id)
    assert [m.content[0].text.value for m in stored] == ["I will check both for you."]
    assert stored[0].status == message_pb2.MESSAGE_STATUS_COMPLETED


async def test_the_lease_is_renewed_while_a_server_side_call_runs(
    database_url: str, fake_model: FakeModelServer
) -> None:
    """A call longer than the lease keeps its run: the heartbeat renews the lease meanwhile (by
    the lease clock), so no other replica takes the run over."""
    from sqlalchemy import select

    from assistants_grpc.clock import ManualClock
    from assistants_grpc.store.repository import RUNS

    echo = EchoCode()
    echo.gate = asyncio.Event()
    lease_clock = ManualClock()
    overrides = {"tool_registry": ToolRegistry([echo]), "lease_clock": lease_clock}
    async with serving(
        database_url, fake_model, overrides=overrides, run_lease_seconds=0.3
    ) as server:
        stubs = server.stubs
        server.model.push(ToolCallsReply([("python", '{"code": "long"}')]), TextReply("ok"))
        assistant = await make_assistant(stubs, tools=[CODE])
        thread = await make_thread(stubs, "long")
        run = await stubs.runs.CreateRun(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
        await asyncio.wait_for(echo.started.wait(), 10)
        database = server.server.database
        assert database is not None
        query = select(RUNS.c.lease_owner, RUNS.c.lease_expires_at).where(RUNS.c.id == run.id)
        for _ in range(3):  # an hour of lease clock at a time, far past any lease
            lease_clock.advance(3600)
            async with asyncio.timeout(10):
                while True:
                    owner, until = await database.transaction(lambda c: c.execute(query).one())
                    if until > lease_clock.now():
                        break
                    await asyncio.sleep(0.02)
            assert server.server.scheduler is not None
            assert owner == server.server.scheduler.owner
        echo.gate.set()
        done = await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_COMPLETED)
        assert done.status == R.RUN_STATUS_COMPLETED

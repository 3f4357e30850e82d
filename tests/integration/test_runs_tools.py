"""Function tools: a run pauses for tool outputs, takes them only as one complete set, and goes
on with them in the prompt for as many rounds as the model needs."""

from __future__ import annotations

import json

import grpc

from assistants_grpc.contract.pb import message_pb2, run_pb2
from assistants_grpc.fake_model import HangReply, TextReply, ToolCallsReply
from tests.conftest import RunningServer
from tests.integration.helpers import expect_error, text_input, violated_fields
from tests.integration.runs_helpers import (
    TIME,
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    text_of,
    thread_messages,
    wait_for_status,
)

R = run_pb2


def arguments_from_deltas(events: list[R.RunEvent]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for event in events:
        if event.event != "thread.run.step.delta":
            continue
        for delta in event.run_step_delta.delta.step_details.tool_calls.tool_calls:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.HasField("id"):
                assert not call["id"], "the id is sent once"
                call["id"] = delta.id
            if delta.function.HasField("name"):
                call["name"] += delta.function.name
            call["arguments"] += delta.function.arguments
    return calls


async def test_two_rounds_with_parallel_calls(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    weather_args = json.dumps({"city": "Paris, the city of light"})
    time_args = json.dumps({"tz": "Europe/Paris"})
    model.push(
        ToolCallsReply([("get_weather", weather_args), ("get_time", time_args)], fragments=5),
        ToolCallsReply([("get_weather", json.dumps({"city": "Lyon"}))], fragments=2),
        TextReply("Sunny in Paris and Lyon.", chunks=4),
    )
    assistant = await make_assistant(stubs, tools=[WEATHER, TIME])
    thread = await make_thread(stubs, "weather?")
    first = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(first)[:5] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
    ]
    assert names(first)[-2:] == ["thread.run.requires_action", "done"]
    assert set(names(first)[5:-2]) == {"thread.run.step.delta"}
    created = first[3].run_step
    assert created.type == R.RUN_STEP_TYPE_TOOL_CALLS
    assert list(created.step_details.tool_calls.tool_calls) == []
    calls = arguments_from_deltas(first)
    assert calls[0]["name"] == "get_weather" and calls[0]["arguments"] == weather_args
    assert calls[1]["name"] == "get_time" and calls[1]["arguments"] == time_args
    paused = first[-2].run
    required = paused.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in required] == [
        (calls[0]["id"], "get_weather", weather_args),
        (calls[1]["id"], "get_time", time_args),
    ]
    # In requires_action the step is still in progress, outputs null, usage hidden.
    step = await stubs.runs.GetRunStep(
        R.GetRunStepRequest(thread_id=thread.id, run_id=paused.id, step_id=created.id)
    )
    assert step.status == R.RUN_STEP_STATUS_IN_PROGRESS and not step.HasField("usage")
    assert all(not c.function.HasField("output") for c in step.step_details.tool_calls.tool_calls)
    # While the run waits, the thread is locked.
    await expect_error(
        stubs.messages.CreateMessage(
            message_pb2.CreateMessageRequest(
                thread_id=thread.id,
                role=message_pb2.MESSAGE_ROLE_USER,
                content=[message_pb2.MessageContentInput(text="x")],
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    outputs = [
        R.ToolOutput(tool_call_id=required[1].id, output="14:00"),
        R.ToolOutput(tool_call_id=required[0].id, output="sunny"),
    ]
    second = await collect(
        stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(thread_id=thread.id, run_id=paused.id, tool_outputs=outputs)
        )
    )
    assert names(second)[:3] == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
    ]
    assert second[0].sequence == first[-1].sequence + 1
    done_step = second[0].run_step
    assert [c.function.output for c in done_step.step_details.tool_calls.tool_calls] == [
        "sunny",
        "14:00",
    ]
    assert done_step.HasField("usage")
    assert names(second)[-2:] == ["thread.run.requires_action", "done"]
    # The second prompt carried the calls and their outputs.
    prompt = model.requests[1]["messages"]
    assert prompt[-3]["role"] == "assistant"
    assert [c["id"] for c in prompt[-3]["tool_calls"]] == [c.id for c in required]
    assert prompt[-2:] == [
        {"role": "tool", "tool_call_id": required[0].id, "content": "sunny"},
        {"role": "tool", "tool_call_id": required[1].id, "content": "14:00"},
    ]

    again = second[-2].run.required_action.submit_tool_outputs.tool_calls
    third = await collect(
        stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=paused.id,
                tool_outputs=[R.ToolOutput(tool_call_id=again[0].id, output="cloudy")],
            )
        )
    )
    assert names(third)[-2:] == ["thread.run.completed", "done"]
    final = third[-2].run
    steps = await stubs.runs.ListRunSteps(
        R.ListRunStepsRequest(thread_id=thread.id, run_id=paused.id)
    )
    assert [s.type for s in steps.data] == [
        R.RUN_STEP_TYPE_MESSAGE_CREATION,
        R.RUN_STEP_TYPE_TOOL_CALLS,
        R.RUN_STEP_TYPE_TOOL_CALLS,
    ]
    total = sum(s.usage.total_tokens for s in steps.data)
    assert final.usage.total_tokens == total > 0
    messages = await thread_messages(stubs, thread.id, run_id=paused.id)
    assert [text_of(m) for m in messages] == ["Sunny in Paris and Lyon."]
    assert len(model.requests[2]["messages"]) == len(prompt) + 2


async def test_submission_rules(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(ToolCallsReply([("get_weather", "{}"), ("get_time", "{}")]))
    assistant = await make_assistant(stubs, tools=[WEATHER, TIME])
    thread = await make_thread(stubs, "x")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    run = events[-2].run
    ids = [c.id for c in run.required_action.submit_tool_outputs.tool_calls]

    def submit(*outputs: R.ToolOutput) -> R.SubmitToolOutputsRequest:
        return R.SubmitToolOutputsRequest(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)

    error = await expect_error(
        stubs.runs.SubmitToolOutputs(submit(R.ToolOutput(tool_call_id=ids[0], output="a"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert f"Expected tool outputs for call_ids {ids}" in (error.details() or "")
    await expect_error(
        stubs.runs.SubmitToolOutputs(
            submit(*(R.ToolOutput(tool_call_id=i, output="a") for i in [*ids, "call_unknown"]))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    error = await expect_error(
        stubs.runs.SubmitToolOutputs(submit(R.ToolOutput(output="a"), R.ToolOutput(output="b"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == [
        "tool_outputs[0].tool_call_id",
        "tool_outputs[1].tool_call_id",
    ]
    unchanged = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=run.id))
    assert unchanged.status == R.RUN_STATUS_REQUIRES_ACTION

    model.push(HangReply(30))
    accepted = await stubs.runs.SubmitToolOutputs(
        submit(*(R.ToolOutput(tool_call_id=i, output="ok") for i in ids))
    )
    assert accepted.status == R.RUN_STATUS_QUEUED
    assert not accepted.HasField("required_action")
    assert accepted.expires_at == run.expires_at  # not extended
    # Twice, and too early (the run is queued or in progress now).
    error = await expect_error(
        stubs.runs.SubmitToolOutputs(
            submit(*(R.ToolOutput(tool_call_id=i, output="ok") for i in ids))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "do not accept tool outputs" in (error.details() or "")
    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run.id))
    await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_CANCELLED)


async def test_expired_while_waiting_for_outputs(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    model.push(ToolCallsReply([("get_weather", "{}")]))
    assistant = await make_assistant(stubs, tools=[WEATHER])
    thread = await make_thread(stubs, "x")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    run = events[-2].run
    watcher = stubs.runs.WatchRun(
        R.WatchRunRequest(thread_id=thread.id, run_id=run.id, after_sequence=events[-1].sequence)
    )
    running.clock.advance(601)
    expired = await wait_for_status(stubs, thread.id, run.id, R.RUN_STATUS_EXPIRED)
    assert not expired.HasField("expires_at") and not expired.HasField("required_action")
    tail = await collect(watcher)
    assert names(tail) == ["thread.run.step.expired", "thread.run.expired", "done"]
    assert tail[0].run_step.HasField("expired_at")
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id
    error = await expect_error(
        stubs.runs.SubmitToolOutputs(
            R.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=run.id,
                tool_outputs=[R.ToolOutput(tool_call_id=call_id, output="late")],
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error.details() == 'Runs in status "expired" do not accept tool outputs.'
    # The thread is free again.
    await stubs.messages.CreateMessage(
        message_pb2.CreateMessageRequest(
            thread_id=thread.id, role=message_pb2.MESSAGE_ROLE_USER, content=text_input("y").content
        )
    )

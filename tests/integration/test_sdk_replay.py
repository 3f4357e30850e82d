"""A streamed run replayed through the openai package's own accumulation helpers, fed the OpenAI
JSON rendering of each event, rebuilds exactly the final message and steps (CONTRACT.md §9)."""

from __future__ import annotations

import json

from openai.lib.streaming._assistants import accumulate_event, accumulate_run_step

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.fake_model import TextReply, ToolCallsReply
from tests.conftest import RunningServer
from tests.integration.runs_helpers import WEATHER, collect, make_assistant, make_thread
from tests.unit.test_openai_json import sdk_event

R = run_pb2


def texts(content: object) -> list[tuple[str, str]]:
    """(type, text) of each part: the SDK keeps a delta's `index` key and omits the empty
    `annotations` a delta never carried, which says nothing about the text."""
    return [(part["type"], part["text"]["value"]) for part in content]  # type: ignore[attr-defined,index]


def replay(events: list[R.RunEvent]) -> tuple[dict[str, object], dict[str, object]]:
    """The SDK's final message snapshot and step snapshots, as plain JSON."""
    message = None
    steps: dict[str, object] = {}
    for event in events:
        if event.event == "done":
            continue
        sdk = sdk_event(event)
        message, _ = accumulate_event(event=sdk, current_message_snapshot=message)
        accumulate_run_step(event=sdk, run_step_snapshots=steps)  # type: ignore[arg-type]
    dumped = message.model_dump(mode="json", exclude_unset=True) if message else {}
    return dumped, {k: v.model_dump(mode="json", exclude_unset=True) for k, v in steps.items()}  # type: ignore[attr-defined]


async def test_text_and_tool_runs_rebuild_through_the_sdk(running: RunningServer) -> None:
    stubs, model = running.stubs, running.model
    arguments = json.dumps({"city": "Zürich — «quoted» 😀"})
    model.push(
        TextReply("Let me look that up, one moment please.", chunks=7),
        ToolCallsReply([("get_weather", arguments), ("get_weather", "{}")], fragments=6),
        TextReply("It is sunny in Zürich. 😀", chunks=9),
    )
    assistant = await make_assistant(stubs, tools=[WEATHER])

    # A text answer: the SDK's message, built from created + deltas, equals our final message.
    thread = await make_thread(stubs, "hi")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    message, _ = replay(events)
    final = next(e.message for e in events if e.event == "thread.message.completed")
    assert texts(message["content"]) == texts(render(final)["content"])

    # A tool run: the step rebuilt from step.created + deltas holds every call's exact
    # arguments; after submission the final message rebuilds the same way.
    thread = await make_thread(stubs, "weather?")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    _, steps = replay(events)
    run = events[-2].run
    (step,) = steps.values()
    rebuilt = step["step_details"]["tool_calls"]  # type: ignore[index]
    required = run.required_action.submit_tool_outputs.tool_calls
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in rebuilt] == [
        (c.id, c.function.name, c.function.arguments) for c in required
    ]
    assert rebuilt[0]["function"]["arguments"] == arguments
    more = await collect(
        stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=run.id,
                tool_outputs=[R.ToolOutput(tool_call_id=c.id, output="sunny") for c in required],
            )
        )
    )
    message, _ = replay(more)
    final = next(e.message for e in more if e.event == "thread.message.completed")
    assert texts(message["content"]) == texts(render(final)["content"])
    assert message["content"][0]["text"]["value"] == "It is sunny in Zürich. 😀"  # type: ignore[index]

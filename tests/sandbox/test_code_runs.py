"""code_interpreter inside runs, end to end through a real server with real sandboxed kernels:
the fake model scripts the `python` calls, the server executes them inside `in_progress`
(CONTRACT.md §12). A missing sandbox fails these tests (`required`), never a skip."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import common_pb2, run_pb2
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from tests.conftest import RunningServer, serving
from tests.integration.event_checks import check_run_log
from tests.integration.runs_helpers import collect, make_assistant, make_thread, names
from tests.integration.test_sdk_replay import replay

pytestmark = pytest.mark.timeout(180)

R = run_pb2
CODE = common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
UID_BASE = 990700

SYMPY = (
    "import sympy as sp\n"
    "x = sp.symbols('x')\n"
    "solution = sp.solve(sp.Eq(3*x + 11, 14), x)\n"
    'print("x =", solution[0], "\u2714 \U0001f600")\n'
    "solution"
)


@pytest.fixture
async def coding(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[RunningServer]:
    """A server whose python tool runs in real sandboxes (`required`: no sandbox, no start)."""
    async with serving(
        database_url,
        fake_model,
        code_interpreter="required",
        code_interpreter_uid_base=UID_BASE,
        code_interpreter_sessions=4,
        code_interpreter_timeout=30.0,
        code_interpreter_memory=512 * 1024 * 1024,
        code_interpreter_processes=64,
    ) as server:
        yield server


def python_call(code: str, **options: Any) -> ToolCallsReply:
    return ToolCallsReply([("python", json.dumps({"code": code}))], **options)


async def run_events(stubs: Any, assistant_id: str, thread_id: str) -> list[R.RunEvent]:
    return await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )


def call_deltas(events: list[R.RunEvent]) -> list[dict[str, Any]]:
    """The code_interpreter bodies of every step delta, in order (OpenAI JSON)."""
    out = []
    for event in events:
        if event.event == "thread.run.step.delta":
            for call in event.run_step_delta.delta.step_details.tool_calls.tool_calls:
                out.append(render(call))
    return out


async def test_the_math_tutor_solves_3x_plus_11_is_14(coding: RunningServer) -> None:
    stubs, model = coding.stubs, coding.model
    arguments = json.dumps({"code": SYMPY})
    # One character per fragment: every escape (\n, \", \u2714) and the surrogate pair
    # \ud83d\ude00 is split across fragments at every point.
    model.push(
        ToolCallsReply([("python", arguments)], fragments=len(arguments)),
        TextReply("The solution is x = 1.", chunks=4),
    )
    assistant = await make_assistant(
        stubs,
        name="Math Tutor",
        instructions="You are a personal math tutor. Write and run code to answer math questions.",
        tools=[CODE],
    )
    thread = await make_thread(
        stubs, "I need to solve the equation `3x + 11 = 14`. Can you help me?"
    )
    events = await run_events(stubs, assistant.id, thread.id)

    assert "thread.run.requires_action" not in names(events)
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    assert names(events)[-2:] == ["thread.run.completed", "done"]

    # The input streamed as the model wrote it, decoded: the pieces add up to the code itself.
    deltas = call_deltas(events)
    assert deltas[0]["type"] == "code_interpreter" and deltas[0]["id"].startswith("call_")
    assert deltas[0]["code_interpreter"] == {"input": "", "outputs": []}
    inputs = [d["code_interpreter"].get("input") or "" for d in deltas]
    assert "".join(inputs) == SYMPY
    # json.dumps wrote \n, \" and \ud83d\ude00 as escapes: each came out whole.
    assert "\\ud83d" in arguments and all("\\" not in i for i in inputs)
    # The outputs: one logs entry with the answer.
    outputs = [o for d in deltas for o in d["code_interpreter"].get("outputs") or []]
    assert outputs == [{"index": 0, "type": "logs", "logs": "x = 1 \u2714 \U0001f600\n[1]"}]

    # The stored step says the same.
    step = next(
        e.run_step
        for e in reversed(events)
        if e.event == "thread.run.step.completed" and e.run_step.type == R.RUN_STEP_TYPE_TOOL_CALLS
    )
    (call,) = render(step)["step_details"]["tool_calls"]
    assert call["code_interpreter"] == {
        "input": SYMPY,
        "outputs": [{"type": "logs", "logs": "x = 1 \u2714 \U0001f600\n[1]"}],
    }

    # The next model turn got the output as the tool message.
    assert len(model.requests) == 2
    offered = [t["function"]["name"] for t in model.requests[0]["tools"]]
    assert offered == ["python"]
    prompt = model.requests[1]["messages"]
    (tool_message,) = [m for m in prompt if m["role"] == "tool"]
    assert "x = 1" in tool_message["content"] and "[1]" in tool_message["content"]
    assert tool_message["tool_call_id"] == call["id"]

    # The official SDK's accumulator rebuilds the step and the answer from the stream.
    message, rebuilt = replay(events)
    assert message["content"][0]["text"]["value"] == "The solution is x = 1."  # type: ignore[index]
    (again,) = rebuilt[step.id]["step_details"]["tool_calls"]  # type: ignore[index]
    assert again["code_interpreter"]["input"] == SYMPY
    assert [o["logs"] for o in again["code_interpreter"]["outputs"]] == [
        "x = 1 \u2714 \U0001f600\n[1]"
    ]

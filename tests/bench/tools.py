"""Tool rounds: a run whose model calls one function, then another once the first output is in,
then answers. End-to-end time through the client (the package's tool runner when it is there,
else the raw stubs: CreateRunStream → requires_action → SubmitToolOutputsStream), and the part
spent in the service: total minus the model server's own time (the same three model calls made
directly with the `openai` client) minus the client's tool functions."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import openai
from assistants_grpc_client.v1 import common_pb2

from tests.bench.common import (
    CALL_TIMEOUT,
    BenchError,
    Plan,
    R,
    Stubs,
    create_assistant,
    create_thread,
    ms,
    percentile,
    summary_ms,
)
from tests.bench.model_server import MODEL_TOOLS, TOOL_CALLS, TOOLS_ANSWER
from tests.bench.processes import HOST

PROMPT: Final = "What is the weather in Paris, and the time?"
ROUNDS: Final = len(TOOL_CALLS)

ToolFunction = Callable[[dict[str, Any]], str]


def _get_weather(arguments: dict[str, Any]) -> str:
    return json.dumps({"city": arguments.get("city"), "sky": "sunny", "celsius": 21})


def _get_time(arguments: dict[str, Any]) -> str:
    return json.dumps({"tz": arguments.get("tz"), "time": "12:00"})


FUNCTIONS: Final[dict[str, ToolFunction]] = {"get_weather": _get_weather, "get_time": _get_time}


def _tool(name: str, **properties: str) -> common_pb2.Tool:
    tool = common_pb2.Tool(function=common_pb2.FunctionDefinition(name=name))
    tool.function.parameters.update(
        {"type": "object", "properties": {p: {"type": t} for p, t in properties.items()}}
    )
    return tool


TOOLS: Final = [_tool("get_weather", city="string"), _tool("get_time", tz="string")]


@dataclass
class Outcome:
    seconds: float  # end to end, as the caller sees it
    tool_seconds: float  # spent in the client's own tool functions
    rounds: int
    answer: str


class _Timed:
    """Wraps the tool functions to add up the time spent in them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def call(self, name: str, arguments: str) -> str:
        began = time.perf_counter()
        try:
            return FUNCTIONS[name](json.loads(arguments or "{}"))
        finally:
            self.seconds += time.perf_counter() - began
            self.calls += 1


async def _raw_stubs(stubs: Stubs, thread_id: str, assistant_id: str) -> Outcome:
    """The tool loop on the generated stubs."""
    timed = _Timed()
    began = time.perf_counter()
    request = R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
    stream = stubs.runs.CreateRunStream(request, timeout=CALL_TIMEOUT)
    rounds = 0
    answer: list[str] = []
    while True:
        last: R.RunEvent | None = None
        names: list[str] = []
        async for event in stream:
            names.append(event.event)
            if event.event == "thread.message.delta":
                answer.extend(part.text.value for part in event.message_delta.delta.content)
            if event.event != "done":
                last = event
        if last is None or last.event == "thread.run.completed":
            break
        if last.event != "thread.run.requires_action":
            raise BenchError(f"tool run ended with {names[-6:]}")
        rounds += 1
        if rounds > ROUNDS:
            raise BenchError("the model asked for more tool rounds than scripted")
        run = last.run
        outputs = [
            R.ToolOutput(
                tool_call_id=call.id, output=timed.call(call.function.name, call.function.arguments)
            )
            for call in run.required_action.submit_tool_outputs.tool_calls
        ]
        submit = R.SubmitToolOutputsRequest(
            thread_id=thread_id, run_id=run.id, tool_outputs=outputs
        )
        stream = stubs.runs.SubmitToolOutputsStream(submit, timeout=CALL_TIMEOUT)
    if last is None:
        raise BenchError("tool run stream was empty")
    return Outcome(time.perf_counter() - began, timed.seconds, rounds, "".join(answer))


def _runner_client(target: str) -> tuple[Any, str]:
    """The client package's AsyncClient when it has the tool runner (`runs.run_with_tools`), and
    a note on what was found. The runner was written alongside this benchmark: the bench uses
    it as soon as the package has it, and otherwise measures the raw stubs only."""
    try:
        package = importlib.import_module("assistants_grpc_client")
    except ImportError as error:
        return None, f"assistants_grpc_client not importable: {error}"
    client_class = getattr(package, "AsyncClient", None)
    if client_class is None:
        return None, "assistants_grpc_client has no AsyncClient yet"
    client = client_class(target)
    if not hasattr(client.runs, "run_with_tools"):
        return client, "AsyncClient has no runs.run_with_tools yet"
    return client, "the client package's tool runner (AsyncClient.runs.run_with_tools)"


async def _with_runner(client: Any, thread_id: str, assistant_id: str) -> Outcome:
    """The tool loop through the client package's runner, with async tool functions (so the
    runner calls them on the event loop, as a service would)."""
    timed = _Timed()
    rounds = 0

    async def get_weather(city: str) -> str:
        return timed.call("get_weather", json.dumps({"city": city}))

    async def get_time(tz: str) -> str:
        return timed.call("get_time", json.dumps({"tz": tz}))

    def on_event(event: R.RunEvent) -> None:
        nonlocal rounds
        if event.event == "thread.run.requires_action":
            rounds += 1

    began = time.perf_counter()
    result = await client.runs.run_with_tools(
        thread_id,
        assistant_id,
        tools={"get_weather": get_weather, "get_time": get_time},
        on_event=on_event,
        on_tool_error="raise",
    )
    seconds = time.perf_counter() - began
    if result.run.status != R.RUN_STATUS_COMPLETED:
        raise BenchError(f"tool runner ended with {R.RunStatus.Name(result.run.status)}")
    return Outcome(seconds, timed.seconds, rounds, result.text)


async def _direct_model(model: openai.AsyncOpenAI) -> float:
    """The model server's own time for the three turns of the conversation, back to back."""
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    chat_tools: list[Any] = [
        {
            "type": "function",
            "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
        }
        for name in FUNCTIONS
    ]
    total = 0.0
    for turn in range(ROUNDS + 1):
        began = time.perf_counter()
        stream = await model.chat.completions.create(
            model=MODEL_TOOLS,
            messages=messages,
            tools=chat_tools,
            stream=True,
            stream_options={"include_usage": True},
        )
        calls: dict[int, dict[str, str]] = {}
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    for delta in choice.delta.tool_calls or []:
                        call = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
                        call["id"] = delta.id or call["id"]
                        if delta.function is not None:
                            call["name"] += delta.function.name or ""
                            call["args"] += delta.function.arguments or ""
        total += time.perf_counter() - began
        if turn == ROUNDS:
            break
        if not calls:
            raise BenchError(f"the model made no tool call in round {turn + 1}")
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["args"]},
                    }
                    for c in calls.values()
                ],
            }
        )
        messages.extend(
            {"role": "tool", "tool_call_id": c["id"], "content": "{}"} for c in calls.values()
        )
    return total


async def measure(service_port: int, model_port: int, plan: Plan) -> dict[str, Any]:
    stubs = Stubs.connect(service_port)
    model = openai.AsyncOpenAI(
        base_url=f"http://{HOST}:{model_port}/v1",
        api_key="x",
        max_retries=0,
        timeout=CALL_TIMEOUT,
    )
    client, found = _runner_client(f"{HOST}:{service_port}")
    has_runner = client is not None and hasattr(client.runs, "run_with_tools")
    try:
        assistant = await create_assistant(stubs, MODEL_TOOLS, tools=TOOLS)

        async def raw() -> Outcome:
            thread = await create_thread(stubs, PROMPT)
            return await _raw_stubs(stubs, thread.id, assistant.id)

        async def runner() -> Outcome:
            thread = await create_thread(stubs, PROMPT)
            return await _with_runner(client, thread.id, assistant.id)

        ways = {"runner": runner, "raw_stubs": raw} if has_runner else {"raw_stubs": raw}
        for way in ways.values():  # warm-up
            for _ in range(2):
                await way()
        await _direct_model(model)
        outcomes: dict[str, list[Outcome]] = {name: [] for name in ways}
        direct: list[float] = []
        for i in range(plan.tool_samples):
            # Alternate the ways and the direct model calls, so all see the same machine.
            for name, way in ways.items() if i % 2 else reversed(ways.items()):
                outcomes[name].append(await way())
            direct.append(await _direct_model(model))
        for name, done in outcomes.items():
            for outcome in done:
                if outcome.rounds != ROUNDS or outcome.answer != TOOLS_ANSWER:
                    raise BenchError(f"tool run through {name} went wrong: {outcome}")
        model_p50 = percentile(direct, 50)
        out: dict[str, Any] = {
            "via": found if has_runner else f"the raw stubs ({found})",
            "rounds": ROUNDS,
            "model_turns": ROUNDS + 1,
            "model_server": summary_ms(direct),
        }
        for name, done in outcomes.items():
            service = [o.seconds - o.tool_seconds - model_p50 for o in done]
            out[name] = {
                "end_to_end": summary_ms([o.seconds for o in done]),
                "client_tool_functions_p50_ms": ms(percentile([o.tool_seconds for o in done], 50)),
                "service_p50_ms": ms(percentile(service, 50)),
                "service_p99_ms": ms(percentile(service, 99)),
                "service_per_model_turn_p50_ms": ms(percentile(service, 50) / (ROUNDS + 1)),
            }
        # The headline is the runner when the client package has it.
        out.update(out["runner" if has_runner else "raw_stubs"])
        return out
    finally:
        if client is not None:
            await client.close()
        await model.close()
        await stubs.close()


__all__ = ["measure"]

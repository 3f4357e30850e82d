"""Unary calls (GetAssistant, CreateMessage, ListMessages of 20) at 1, 16 and 64 callers in
flight, each cell next to the bare echo server measured the same way right before it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc
from assistants_grpc_client.v1 import assistant_pb2, message_pb2

from tests.bench.common import (
    CALL_TIMEOUT,
    CHANNEL_OPTIONS,
    LoadResult,
    Plan,
    Stubs,
    closed_loop,
    create_assistant,
    create_thread,
)
from tests.bench.echo_server import METHOD
from tests.bench.model_server import MODEL_FAST
from tests.bench.processes import HOST

CONCURRENCY: Final = (1, 16, 64)
METHODS: Final = ("GetAssistant", "CreateMessage", "ListMessages")
# CreateMessage is refused on a thread with an active run; these threads never get one.
MESSAGE_THREADS: Final = 8
LIST_SIZE: Final = 20


async def measure(
    service_port: int, service_pid: int, echo_port: int, echo_pid: int, plan: Plan
) -> dict[str, Any]:
    stubs = Stubs.connect(service_port)
    echo_channel = grpc.aio.insecure_channel(f"{HOST}:{echo_port}", options=CHANNEL_OPTIONS)
    try:
        calls = await _prepare(stubs)
        echo = echo_channel.unary_unary(METHOD)
        # The echo payload is the GetAssistant request itself: same size on the wire.
        payload = calls["payload"]

        async def echo_call(_index: int) -> None:
            await echo(payload, timeout=CALL_TIMEOUT)

        cells: dict[str, dict[str, Any]] = {"Echo": {}, **{m: {} for m in METHODS}}
        for concurrency in CONCURRENCY:
            for method in METHODS:
                # Echo and the method take turns in short slices, so a burst of load from
                # anything else on the machine hits both alike.
                baseline, result = [], []
                for _ in range(plan.unary_slices):
                    baseline.append(await _cell(echo_call, concurrency, plan, echo_pid))
                    result.append(await _cell(calls[method], concurrency, plan, service_pid))
                cells["Echo"].setdefault(str(concurrency), []).extend(baseline)
                cells[method][str(concurrency)] = (_merge(result), _merge(baseline))
        return _summarise(cells, service_pid, echo_pid)
    finally:
        await echo_channel.close()
        await stubs.close()


async def _cell(
    call: Callable[[int], Awaitable[object]], concurrency: int, plan: Plan, pid: int
) -> LoadResult:
    seconds = plan.unary_seconds / plan.unary_slices
    return await closed_loop(call, concurrency, seconds, plan.unary_warmup, pids=(pid,))


def _merge(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        results[0].concurrency,
        sum(r.calls for r in results),
        sum(r.seconds for r in results),
        [x for r in results for x in r.latencies],
        {pid: sum(r.cpu.get(pid, 0.0) for r in results) for pid in results[0].cpu},
    )


async def _prepare(stubs: Stubs) -> dict[str, Any]:
    assistant = await create_assistant(stubs, MODEL_FAST, instructions="Be brief.")
    listed = await create_thread(stubs, *(f"message {i} of the listed thread" for i in range(30)))
    writable = [await create_thread(stubs) for _ in range(MESSAGE_THREADS)]
    get_request = assistant_pb2.GetAssistantRequest(assistant_id=assistant.id)
    list_request = message_pb2.ListMessagesRequest(thread_id=listed.id, limit=LIST_SIZE)
    create_requests = [
        message_pb2.CreateMessageRequest(
            thread_id=thread.id,
            role=message_pb2.MESSAGE_ROLE_USER,
            content=[message_pb2.MessageContentInput(text="A message of a few words.")],
        )
        for thread in writable
    ]

    async def get_assistant(_index: int) -> None:
        await stubs.assistants.GetAssistant(get_request, timeout=CALL_TIMEOUT)

    async def create_message(index: int) -> None:
        request = create_requests[index % MESSAGE_THREADS]
        await stubs.messages.CreateMessage(request, timeout=CALL_TIMEOUT)

    async def list_messages(_index: int) -> None:
        page = await stubs.messages.ListMessages(list_request, timeout=CALL_TIMEOUT)
        if len(page.data) != LIST_SIZE:
            raise RuntimeError(f"ListMessages returned {len(page.data)} items")

    return {
        "payload": get_request.SerializeToString(),
        "GetAssistant": get_assistant,
        "CreateMessage": create_message,
        "ListMessages": list_messages,
    }


def _summarise(cells: dict[str, dict[str, Any]], service_pid: int, echo_pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {"concurrency": list(CONCURRENCY), "methods": {}}
    echo: dict[str, Any] = {}
    for concurrency, runs in cells["Echo"].items():
        merged = _merge(runs)
        echo[concurrency] = merged.as_dict() | {"server_cpu_ms": merged.cpu_per_call_ms(echo_pid)}
    out["methods"]["Echo"] = echo
    for method in METHODS:
        row: dict[str, Any] = {}
        for concurrency, (result, baseline) in cells[method].items():
            row[concurrency] = result.as_dict() | {
                # Server CPU per call: the cost, whatever else the machine was doing.
                "server_cpu_ms": result.cpu_per_call_ms(service_pid),
                "echo_server_cpu_ms": baseline.cpu_per_call_ms(echo_pid),
                # Against the echo slices measured alternately with this cell.
                "echo_calls_per_s": round(baseline.rate, 1),
                "ratio_to_echo": round(result.rate / baseline.rate, 3),
            }
            cpu, echo_cpu = (
                row[concurrency]["server_cpu_ms"],
                row[concurrency]["echo_server_cpu_ms"],
            )
            if cpu and echo_cpu:
                # The same comparison by CPU per call: steadier on a busy machine.
                row[concurrency]["cpu_ratio_to_echo"] = round(echo_cpu / cpu, 3)
        out["methods"][method] = row
    return out


__all__ = ["CONCURRENCY", "METHODS", "measure"]

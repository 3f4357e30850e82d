"""The HTTP face next to the gRPC face of the same service process, in the same run:

- GetAssistant at 16 in flight over HTTP (`GET /v1/assistants/{id}`) against gRPC
  GetAssistant, in alternating slices (target: HTTP at least 70% of gRPC's calls/s);
- the time to the first `thread.message.delta` of a run streamed over SSE against the same over
  gRPC `CreateRunStream`, alternating one run each (target: the median within 1 ms of gRPC's);
- gRPC GetAssistant latency (1 in flight) alone, and while 64 HTTP callers keep the HTTP face
  saturated: what one face costs the other (reported; the per-key limits, shared by both faces,
  are what keeps one key from starving the other). The HTTP load comes from a process of its
  own (`python -m tests.bench.http PORT PATH SECONDS`): in the bench's process its callers would
  hold up the gRPC client's own completions (measured: 225 ms instead of 0.8 ms at p50).

The HTTP client is a minimal keep-alive HTTP/1.1 client on asyncio streams (one connection per
caller), so the figures measure the face, not a client library: grpc.aio's client is C, and a
Python HTTP library would cost the shared cores several times what the face does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Final

from assistants_grpc_client.v1 import assistant_pb2

from tests.bench.common import (
    CALL_TIMEOUT,
    BenchError,
    LoadResult,
    Plan,
    R,
    Stubs,
    closed_loop,
    create_assistant,
    create_thread,
    ms,
    percentile,
    summary_ms,
)
from tests.bench.model_server import MODEL_FAST
from tests.bench.processes import HOST
from tests.bench.runs import PROMPT, consume

IN_FLIGHT: Final = 16
SATURATING: Final = 64
FIRST_DELTA: Final = b"event: thread.message.delta\n"


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    def send(self, method: str, path: str, body: bytes | None = None) -> None:
        head = f"{method} {path} HTTP/1.1\r\nhost: {HOST}\r\nopenai-beta: assistants=v2\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))

    async def _head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def answer(self) -> tuple[int, bytes]:
        """A plain (content-length) answer."""
        status, headers = await self._head()
        body = await self.reader.readexactly(int(headers["content-length"]))
        return status, body

    async def stream(self, mark: bytes) -> tuple[float | None, bytes]:
        """A chunked SSE answer to its end: when `mark` first arrived (perf_counter), and all."""
        status, _ = await self._head()
        if status != 200:
            raise BenchError(f"stream answered {status}")
        seen: float | None = None
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return seen, bytes(body)
            body += chunk[:-2]
            if seen is None and mark in chunk:
                seen = time.perf_counter()


async def measure(
    service_port: int, http_port: int, service_pid: int, plan: Plan
) -> dict[str, Any]:
    stubs = Stubs.connect(service_port)
    connections = [await Connection.open(http_port) for _ in range(IN_FLIGHT)]
    try:
        assistant = await create_assistant(stubs, MODEL_FAST, instructions="Be brief.")
        return {
            "get_assistant": await _get_assistant(
                stubs, connections, assistant.id, plan, service_pid
            ),
            "first_delta": await _first_delta(stubs, connections[0], assistant.id, plan),
            "grpc_beside_busy_http": await _beside(stubs, http_port, assistant.id, plan),
        }
    finally:
        for connection in connections:
            connection.close()
        await stubs.close()


def _http_get(connections: list[Connection], path: str) -> Any:
    async def call(index: int) -> None:
        connection = connections[index]
        connection.send("GET", path)
        status, _ = await connection.answer()
        if status != 200:
            raise BenchError(f"GET {path} answered {status}")

    return call


def _grpc_get(stubs: Stubs, assistant_id: str) -> Any:
    request = assistant_pb2.GetAssistantRequest(assistant_id=assistant_id)

    async def call(_index: int) -> None:
        await stubs.assistants.GetAssistant(request, timeout=CALL_TIMEOUT)

    return call


def _merge(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        results[0].concurrency,
        sum(r.calls for r in results),
        sum(r.seconds for r in results),
        [x for r in results for x in r.latencies],
        {pid: sum(r.cpu.get(pid, 0.0) for r in results) for pid in results[0].cpu},
    )


async def _get_assistant(
    stubs: Stubs, connections: list[Connection], assistant_id: str, plan: Plan, pid: int
) -> dict[str, Any]:
    http_call = _http_get(connections, f"/v1/assistants/{assistant_id}")
    grpc_call = _grpc_get(stubs, assistant_id)
    seconds = plan.unary_seconds / plan.unary_slices
    over_http: list[LoadResult] = []
    over_grpc: list[LoadResult] = []
    for _ in range(plan.unary_slices):  # alternating, so load from elsewhere hits both alike
        over_grpc.append(
            await closed_loop(grpc_call, IN_FLIGHT, seconds, plan.unary_warmup, pids=(pid,))
        )
        over_http.append(
            await closed_loop(http_call, IN_FLIGHT, seconds, plan.unary_warmup, pids=(pid,))
        )
    http, grpc_ = _merge(over_http), _merge(over_grpc)
    out: dict[str, Any] = {
        "in_flight": IN_FLIGHT,
        "http": http.as_dict() | {"server_cpu_ms": http.cpu_per_call_ms(pid)},
        "grpc": grpc_.as_dict() | {"server_cpu_ms": grpc_.cpu_per_call_ms(pid)},
        "ratio_to_grpc": round(http.rate / grpc_.rate, 3) if grpc_.rate else None,
    }
    http_cpu, grpc_cpu = out["http"]["server_cpu_ms"], out["grpc"]["server_cpu_ms"]
    if http_cpu and grpc_cpu:
        # The same comparison by the service's CPU per call: steadier on a busy machine.
        out["cpu_ratio_to_grpc"] = round(grpc_cpu / http_cpu, 3)
    return out


async def _http_first_delta(connection: Connection, assistant_id: str, stubs: Stubs) -> float:
    thread = await create_thread(stubs, PROMPT)
    body = json.dumps({"assistant_id": assistant_id, "stream": True}).encode()
    began = time.perf_counter()
    connection.send("POST", f"/v1/threads/{thread.id}/runs", body)
    seen, text = await connection.stream(FIRST_DELTA)
    if seen is None or not text.endswith(b"event: done\ndata: [DONE]\n\n"):
        raise BenchError("the SSE stream had no message delta or did not end with done")
    if b"event: thread.run.completed\n" not in text:
        raise BenchError("the SSE run did not complete")
    return seen - began


async def _grpc_first_delta(stubs: Stubs, assistant_id: str) -> float:
    thread = await create_thread(stubs, PROMPT)
    request = R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant_id)
    began = time.perf_counter()
    stats = await consume(stubs.runs.CreateRunStream(request, timeout=CALL_TIMEOUT), began)
    if stats.first_delta is None:
        raise BenchError("CreateRunStream: no thread.message.delta")
    return stats.first_delta


async def _first_delta(
    stubs: Stubs, connection: Connection, assistant_id: str, plan: Plan
) -> dict[str, Any]:
    for _ in range(3):  # warm both paths outside the samples
        await _http_first_delta(connection, assistant_id, stubs)
        await _grpc_first_delta(stubs, assistant_id)
    over_http: list[float] = []
    over_grpc: list[float] = []
    for i in range(plan.latency_samples):
        if i % 2:
            over_grpc.append(await _grpc_first_delta(stubs, assistant_id))
        over_http.append(await _http_first_delta(connection, assistant_id, stubs))
        if not i % 2:
            over_grpc.append(await _grpc_first_delta(stubs, assistant_id))
    return {
        "samples": len(over_http),
        "http_sse": summary_ms(over_http),
        "grpc": summary_ms(over_grpc),
        "added_p50_ms": ms(percentile(over_http, 50) - percentile(over_grpc, 50)),
    }


async def _beside(stubs: Stubs, http_port: int, assistant_id: str, plan: Plan) -> dict[str, Any]:
    grpc_call = _grpc_get(stubs, assistant_id)
    seconds = plan.unary_seconds
    alone = await closed_loop(grpc_call, 1, seconds, plan.unary_warmup)
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.http", str(http_port),
        f"/v1/assistants/{assistant_id}", str(seconds + 3 * plan.unary_warmup),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(plan.unary_warmup)  # the HTTP face busy first
        beside = await closed_loop(grpc_call, 1, seconds, 0.0)
        output, _ = await asyncio.wait_for(load.communicate(), CALL_TIMEOUT)
    finally:
        if load.returncode is None:
            load.kill()
            await load.wait()
    if load.returncode != 0:
        raise BenchError(f"the HTTP load process exited {load.returncode}")
    return {
        "http_callers": SATURATING,
        "http_calls_per_s": round(float(output.decode().strip()), 1),
        "grpc_alone": summary_ms(alone.latencies),
        "grpc_beside_busy_http": summary_ms(beside.latencies),
        "grpc_calls_per_s_beside": round(beside.rate, 1),
    }


async def _load(port: int, path: str, seconds: float) -> float:
    """SATURATING callers on GET `path` for `seconds`; returns their calls/s."""
    connections = [await Connection.open(port) for _ in range(SATURATING)]
    call = _http_get(connections, path)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    calls = 0

    async def caller(index: int) -> None:
        nonlocal calls
        while loop.time() < end:
            await call(index)
            calls += 1

    try:
        await asyncio.gather(*(caller(i) for i in range(SATURATING)))
    finally:
        for connection in connections:
            connection.close()
    return calls / seconds


if __name__ == "__main__":
    port, path, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    print(asyncio.run(_load(port, path, seconds)))


__all__ = ["measure"]

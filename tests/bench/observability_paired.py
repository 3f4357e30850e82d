"""`python -m tests.bench.observability_paired`: what metrics and traces add to one GetAssistant,
measured the paired way, which a busy machine disturbs far less than separate processes do.

One process serves two in-process servers and calls them (one call in flight) in alternating
batches (which one goes first alternates too); the figure is the median over the batch pairs of
the difference in this process's CPU per call (client and server together, so the added
microseconds are the point, not the ratio).
First metrics off against metrics on; then, in a fresh process, traces off against traces on,
exported over OTLP/HTTP to a sink thread that reads and discards them (its CPU counted too).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import assistant_pb2, assistant_pb2_grpc
from assistants_grpc.observability import tracing
from assistants_grpc.server import AssistantsServer, Overrides

BATCHES = 16
CALLS = 400


class _Served:
    def __init__(self, server: AssistantsServer, channel: grpc.aio.Channel, call: Any) -> None:
        self.server, self.channel, self.call = server, channel, call

    async def batch(self, calls: int) -> float:
        """This process's CPU per call, in microseconds, over `calls` calls."""
        began = time.process_time()
        for _ in range(calls):
            await self.call()
        return (time.process_time() - began) / calls * 1e6

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)


async def _serve(metrics: bool) -> _Served:
    folder = tempfile.mkdtemp()
    server = AssistantsServer(
        Settings(
            port=0,
            http_port=0,
            metrics_port=0,
            code_interpreter="off",
            database_url=f"sqlite:///{folder}/bench.db",
        ),
        Overrides(clock=ManualClock()),
        metrics=metrics,
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = assistant_pb2_grpc.AssistantServiceStub(channel)
    created = await stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="gpt-4o"))
    request = assistant_pb2.GetAssistantRequest(assistant_id=created.id)

    async def call() -> None:
        await stub.GetAssistant(request)

    return _Served(server, channel, call)


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def _paired(variant: str) -> str:
    base = await _serve(metrics=False)
    if variant == "traces":
        sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.server_port}"
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        other = await _serve(metrics=False)  # start() turns traces on from the variables
        assert tracing.tracer() is not None
    else:
        other = await _serve(metrics=True)
    try:
        for served in (base, other):
            await served.batch(300)
        off, on = [], []
        for index in range(BATCHES):
            # Which goes first alternates: a batch right after another may run warmer.
            if index % 2:
                on.append(await other.batch(CALLS))
                off.append(await base.batch(CALLS))
            else:
                off.append(await base.batch(CALLS))
                on.append(await other.batch(CALLS))
        added = statistics.median(b - a for a, b in zip(off, on, strict=True))
        return (
            f"{variant} on: {added:+.0f} us per GetAssistant (median of {BATCHES} paired batches "
            f"of {CALLS}; off {statistics.median(off):.0f} us, on {statistics.median(on):.0f} us "
            "per call, client and server together)"
        )
    finally:
        await base.close()
        await other.close()


def main() -> None:
    if len(sys.argv) > 1:
        print(asyncio.run(_paired(sys.argv[1])), flush=True)
        return
    # Each variant in its own process: metrics and traces, once on, stay on in a process.
    for variant in ("metrics", "traces"):
        subprocess.run([sys.executable, "-m", "tests.bench.observability_paired", variant])


if __name__ == "__main__":
    main()

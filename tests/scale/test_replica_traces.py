"""Operating several replicas (README "Operating"): `serve` processes on one PostgreSQL database.

Traces: two replicas configured by the standard OTEL_* variables export to a small OTLP/HTTP
collector here. A run created on one replica and continued (after its tool outputs) on the other
is one trace: both turns are children of the span of the call that created the run, whichever
process ran them. Metrics: the runs of a killed replica show as lease takeovers in the
survivor's `/metrics`."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from assistants_grpc.contract.pb import assistant_pb2, run_pb2
from assistants_grpc.fake_model import FakeModelServer, FakeModelThread, TextReply
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.integration.helpers import function_tool, text_input
from tests.scale.replicas import Replica, start_replica

R = run_pb2
WEATHER = function_tool("get_weather", type="object", properties={"city": {"type": "string"}})

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="multi-replica tests need PostgreSQL: set ASSISTANTS_TEST_DATABASE_URL (.ci/run does)",
)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Collector:
    """An OTLP/HTTP trace receiver (protobuf bodies on /v1/traces), keeping what it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.changed = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                received = []
                for resource_spans in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        ),
                        "",
                    )
                    for scope in resource_spans.scope_spans:
                        received += [
                            Span(
                                service,
                                span.name,
                                span.trace_id.hex(),
                                span.span_id.hex(),
                                span.parent_span_id.hex(),
                            )
                            for span in scope.spans
                        ]
                with collector.changed:
                    collector.spans += received
                    collector.changed.notify_all()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def wait_for(self, done: object, timeout: float = 30.0) -> list[Span]:
        """The spans, once `done(spans)` holds (AssertionError after `timeout`)."""
        assert callable(done)
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done(self.spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"spans never arrived: {self.spans}")
                self.changed.wait(left)
            return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModelThread]:
    handle = FakeModelServer.start_in_thread()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
async def traced(
    model: FakeModelThread, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[Replica]]:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    started: list[Replica] = []
    try:
        for name in ("r0", "r1"):
            monkeypatch.setenv("OTEL_SERVICE_NAME", name)
            started.append(start_replica(name, POSTGRES_URL, model.base_url))
        yield started
    finally:
        for replica in started:
            await replica.close()


async def test_a_run_continued_on_another_replica_joins_its_trace(
    traced: list[Replica], collector: Collector
) -> None:
    home, other = traced
    assistant = await home.stubs.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model="gpt-4o", tools=[WEATHER])
    )
    command = "/tool get_weather " + json.dumps({"city": "Lyon"})
    run = await home.stubs.runs.CreateThreadAndRun(
        R.CreateThreadAndRunRequest(
            assistant_id=assistant.id, thread=R.ThreadInput(messages=[text_input(command)])
        )
    )
    # WatchRun follows the whole run: the test stops reading at requires_action.
    watch = home.stubs.runs.WatchRun(R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id))
    events = []
    async for event in watch:
        if event.event == "thread.run.requires_action":
            events.append(event)
            break
    watch.cancel()
    assert events, "the run never asked for its tool outputs"
    calls = events[0].run.required_action.submit_tool_outputs.tool_calls
    # The other replica takes the outputs, and so executes the run's second turn itself.
    finished = [
        event.event
        async for event in other.stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=run.thread_id,
                run_id=run.id,
                tool_outputs=[R.ToolOutput(tool_call_id=c.id, output="sunny") for c in calls],
            )
        )
    ]
    assert finished[-2:] == ["thread.run.completed", "done"]

    def both_turns(spans: list[Span]) -> bool:
        turns = {span.service for span in spans if span.name == "run turn"}
        models = [span for span in spans if span.name == "chat.completions"]
        return turns == {"r0", "r1"} and len(models) >= 2

    spans = collector.wait_for(both_turns)
    (created,) = [s for s in spans if s.name == "assistants.v1.RunService/CreateThreadAndRun"]
    assert created.service == "r0"
    turns = [s for s in spans if s.name == "run turn"]
    assert {s.trace_id for s in turns} == {created.trace_id}
    assert {s.parent_id for s in turns} == {created.span_id}
    turn_ids = {s.span_id for s in turns}
    models = [s for s in spans if s.name == "chat.completions"]
    assert {s.parent_id for s in models} == turn_ids
    assert {s.trace_id for s in models} == {created.trace_id}


SLOW = "slow-model"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{"))
    )


async def test_a_killed_replica_runs_show_as_lease_takeovers(model: FakeModelThread) -> None:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    model.set_responder(SLOW, lambda request: TextReply("w " * 10, chunks=10, chunk_delay=0.3))
    metrics_port = _free_port()
    victim = start_replica("victim", POSTGRES_URL, model.base_url)
    survivor = start_replica(
        "survivor", POSTGRES_URL, model.base_url, "--metrics-port", str(metrics_port)
    )
    try:
        assistant = await victim.stubs.assistants.CreateAssistant(
            assistant_pb2.CreateAssistantRequest(model=SLOW)
        )
        runs = [
            await victim.stubs.runs.CreateThreadAndRun(
                R.CreateThreadAndRunRequest(
                    assistant_id=assistant.id, thread=R.ThreadInput(messages=[text_input("go")])
                )
            )
            for _ in range(3)
        ]
        # Each run is streaming on the victim (its first delta is out) before the kill.
        for run in runs:
            watch = survivor.stubs.runs.WatchRun(
                R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id)
            )
            async for event in watch:
                if event.event == "thread.message.delta":
                    break
            watch.cancel()
        before = _scrape(metrics_port, "assistants_lease_takeovers_total")
        victim.kill()
        for run in runs:
            ended = [
                event.event
                async for event in survivor.stubs.runs.WatchRun(
                    R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id)
                )
            ]
            assert ended[-1] == "done"
        after = _scrape(metrics_port, "assistants_lease_takeovers_total")
        assert after - before == len(runs)
        assert _scrape(metrics_port, "assistants_runs_finished_total") >= len(runs)
    finally:
        await victim.close()
        await survivor.close()

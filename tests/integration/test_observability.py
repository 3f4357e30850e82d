"""Operating (README "Operating"): Prometheus `/metrics` after real runs, and the OpenTelemetry
spans of a streamed tool run (the SDK's in-memory exporter), linked into one trace that joins
the caller's `traceparent`.

Metrics live in one registry per process, so each test compares a scrape before and after."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx2
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import common_pb2, run_pb2
from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.fake_model import ErrorReply, FakeModelServer, TextReply, ToolCallsReply
from assistants_grpc.observability import tracing
from assistants_grpc.server import AssistantsServer, Overrides
from tests.conftest import RunningServer, serving
from tests.integration.echo_tools import EchoCode, EchoSearch
from tests.integration.helpers import expect_error
from tests.integration.runs_helpers import collect, make_assistant, make_thread, names

R = run_pb2
CODE = common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
STREAM = "/assistants.v1.RunService/CreateRunStream"
GET_RUN = "/assistants.v1.RunService/GetRun"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(fetch)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """`name` summed over every label set."""
    return sum(v for (n, _), v in samples.items() if n == name)


@pytest.fixture
async def metered(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[RunningServer]:
    async with serving(database_url, fake_model, metrics=True) as server:
        yield server


async def test_a_scrape_after_a_run_counts_it(metered: RunningServer) -> None:
    stubs, model = metered.stubs, metered.model
    port = metered.server.metrics_port
    assert port
    assert R.DESCRIPTOR.services_by_name["RunService"].full_name == STREAM.split("/")[1]
    before = await scrape(port)
    model.push(TextReply("Hello there, operator.", chunks=4))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "hi")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    await expect_error(
        stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id="run_missing")),
        grpc.StatusCode.NOT_FOUND,
    )
    after = await scrape(port)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("assistants_runs_finished_total", status="completed") == 1
    assert grew("assistants_rpc_requests_total", method=STREAM, code="OK") == 1
    assert grew("assistants_rpc_requests_total", method=GET_RUN, code="NOT_FOUND") == 1
    assert grew("assistants_rpc_duration_seconds_count", method=STREAM) == 1
    assert value(after, "assistants_rpc_streams_in_flight", method=STREAM) == 0
    endpoint = model.base_url.split("://", 1)[1].split("/", 1)[0]
    assert grew("assistants_run_first_delta_seconds_count", endpoint=endpoint) == 1
    assert grew("assistants_turn_duration_seconds_count", endpoint=endpoint) == 1
    assert grew("assistants_model_request_duration_seconds_count", endpoint=endpoint) == 1
    assert grew("assistants_tokens_total", direction="completion") > 0
    assert grew("assistants_tokens_total", direction="prompt") > 0
    assert total(after, "assistants_events_published_total") - total(
        before, "assistants_events_published_total"
    ) >= len(events)
    assert total(after, "assistants_events_delivered_total") - total(
        before, "assistants_events_delivered_total"
    ) >= len(events)
    assert total(after, "assistants_db_transaction_duration_seconds_count") > total(
        before, "assistants_db_transaction_duration_seconds_count"
    )
    # The live gauges: this server's workers are free again, nothing is queued.
    assert value(after, "assistants_workers_free") >= 1
    assert value(after, "assistants_turns_queued") == 0
    # Bounded labels: no id of a run, a thread or an assistant anywhere.
    labels = {v for (_, pairs) in after for (_, v) in pairs}
    assert not any(thread.id in v or assistant.id in v or events[0].run.id in v for v in labels)


async def test_a_failing_model_endpoint_shows_in_model_errors(metered: RunningServer) -> None:
    stubs, model = metered.stubs, metered.model
    port = metered.server.metrics_port
    before = await scrape(port)
    # model_max_retries is 1 in tests: the first 500 is retried, the second fails the run.
    model.push(ErrorReply(500), ErrorReply(500))
    assistant = await make_assistant(stubs)
    thread = await make_thread(stubs, "hi")
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.failed", "done"]
    after = await scrape(port)
    endpoint = model.base_url.split("://", 1)[1].split("/", 1)[0]

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("assistants_model_errors_total", endpoint=endpoint, code="server_error") == 1
    assert grew("assistants_model_retries_total", endpoint=endpoint) == 1
    assert grew("assistants_runs_finished_total", status="failed") == 1


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_streamed_tool_run_is_one_trace(
    database_url: str, fake_model: FakeModelServer, spans: InMemorySpanExporter
) -> None:
    registry = ToolRegistry([EchoCode(), EchoSearch()])
    async with serving(
        database_url, fake_model, overrides={"tool_registry": registry}, metrics=True
    ) as server:
        stubs, model = server.stubs, server.model
        before = await scrape(server.server.metrics_port)
        model.push(
            ToolCallsReply([("python", '{"code": "1 + 1"}')], fragments=2),
            TextReply("Two.", chunks=2),
        )
        assistant = await make_assistant(stubs, tools=[CODE])
        thread = await make_thread(stubs, "compute")
        events = await collect(
            stubs.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id),
                metadata=(("traceparent", CALLER),),
            )
        )
        assert names(events)[-2:] == ["thread.run.completed", "done"]
        run_id = events[0].run.id
        after = await scrape(server.server.metrics_port)
    # The tool call is counted too, by type and outcome.
    calls = ("assistants_tool_calls_total", {"type": "code_interpreter", "outcome": "ok"})
    assert value(after, calls[0], **calls[1]) - value(before, calls[0], **calls[1]) == 1
    timed = ("assistants_tool_call_duration_seconds_count", {"type": "code_interpreter"})
    assert value(after, timed[0], **timed[1]) - value(before, timed[0], **timed[1]) == 1

    finished = spans.get_finished_spans()
    (rpc,) = by_name(finished, STREAM.lstrip("/"))
    turns = by_name(finished, "run turn")
    models = by_name(finished, "chat.completions")
    tools = by_name(finished, "tool code_interpreter")
    assert len(turns) == 2 and len(models) == 2 and len(tools) == 1
    # One trace, the caller's: CreateRunStream → turn → model, turn → tool.
    for span in (rpc, *turns, *models, *tools):
        assert format(span.context.trace_id, "032x") == TRACE_ID, span.name
    assert parent_of(rpc) == int("00f067aa0ba902b7", 16)
    assert {parent_of(turn) for turn in turns} == {rpc.context.span_id}
    turn_ids = {turn.context.span_id for turn in turns}
    assert {parent_of(span) for span in models} == turn_ids
    assert all(turn.attributes and turn.attributes["assistants.run_id"] == run_id for turn in turns)
    # The tool ran in the first turn, the answer came in the second.
    first, second = sorted(turns, key=lambda span: span.start_time or 0)
    assert parent_of(tools[0]) == first.context.span_id
    assert second.start_time is not None and first.end_time is not None
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 0


async def test_traces_off_store_no_context(metered: RunningServer) -> None:
    """Off (no OTEL_* variables, nothing installed): no tracer, and runs carry no context."""
    assert tracing.tracer() is None
    assert tracing.requested({}) is None
    assert tracing.requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == "otlp"
    assert tracing.requested({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert (
        tracing.requested(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
        )
        is None
    )
    assert tracing.current_traceparent() is None


async def test_http_routes_are_counted_by_their_template(
    database_url: str, fake_model: FakeModelServer
) -> None:
    async with serving(database_url, fake_model, http=True, metrics=True) as server:
        port = server.server.metrics_port
        before = await scrape(port)
        assistant = await make_assistant(server.stubs)
        base = f"http://127.0.0.1:{server.server.http_port}/v1"
        async with httpx2.AsyncClient(base_url=base, timeout=30) as client:
            found = await client.get(f"/assistants/{assistant.id}")
            missing = await client.get("/assistants/asst_missing")
        assert (found.status_code, missing.status_code) == (200, 404)
        after = await scrape(port)
    route = "/v1/assistants/{assistant_id}"

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("assistants_http_requests_total", route=route, method="GET", status="200") == 1
    assert grew("assistants_http_requests_total", route=route, method="GET", status="404") == 1
    assert grew("assistants_http_request_duration_seconds_count", route=route, method="GET") == 2
    labels = {v for (_, pairs) in after for (_, v) in pairs}
    assert not any(assistant.id in v for v in labels)


@pytest.mark.parametrize(
    ("settings", "bound"),
    [
        # Loopback: /metrics beside the other listeners.
        ({"host": "127.0.0.1"}, "127.0.0.1"),
        # Reachable from the network without keys (allowed on purpose): /metrics stays local.
        ({"host": "0.0.0.0", "auth": "disabled", "allow_insecure": True}, "127.0.0.1"),
        # Secured (keys required): /metrics beside the other listeners.
        ({"host": "0.0.0.0", "auth": "required"}, "0.0.0.0"),
    ],
)
async def test_metrics_bind_loopback_unless_the_server_is_secured(
    tmp_path: Path, settings: dict[str, Any], bound: str
) -> None:
    server = AssistantsServer(
        Settings(
            port=0,
            http_port=0,
            metrics_port=0,
            code_interpreter="off",
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            **settings,
        ),
        Overrides(clock=ManualClock()),
        metrics=True,
    )
    await server.start()
    try:
        assert server.metrics_server is not None
        assert server.metrics_server.host == bound
        assert await scrape(server.metrics_port)  # served, on the port it reports
    finally:
        await server.stop(0)


async def test_a_metrics_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = AssistantsServer(
            Settings(
                port=0,
                http_port=0,
                metrics_port=port,
                code_interpreter="off",
                database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            ),
            Overrides(clock=ManualClock()),
        )
        with pytest.raises(ValueError, match=f"--metrics-port {port}: cannot serve /metrics"):
            await server.start()
        assert server.database is None  # nothing left open


async def test_an_http_request_is_a_span_of_the_callers_trace(
    database_url: str, fake_model: FakeModelServer, spans: InMemorySpanExporter
) -> None:
    async with serving(database_url, fake_model, http=True) as server:
        assistant = await make_assistant(server.stubs)
        base = f"http://127.0.0.1:{server.server.http_port}/v1"
        async with httpx2.AsyncClient(base_url=base, timeout=30) as client:
            got = await client.get(f"/assistants/{assistant.id}", headers={"traceparent": CALLER})
        assert got.status_code == 200
    (span,) = by_name(spans.get_finished_spans(), "GET /v1/assistants/{assistant_id}")
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert parent_of(span) == int("00f067aa0ba902b7", 16)
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200


async def test_a_lease_taken_by_another_replica_counts_as_lost(
    database_url: str, fake_model: FakeModelServer
) -> None:
    from tests.integration.test_runs_lifecycle import _lease_taken

    lease_clock = ManualClock(time.time())
    async with serving(
        database_url, fake_model, overrides={"lease_clock": lease_clock}, metrics=True
    ) as running:
        port = running.server.metrics_port
        before = value(await scrape(port), "assistants_leases_lost_total")
        await _lease_taken(running, lease_clock)
        # The scheduler counts it once the turn has stopped: wait for that, within a deadline.
        deadline = time.monotonic() + 10
        while (lost := value(await scrape(port), "assistants_leases_lost_total")) == before:
            assert time.monotonic() < deadline, "the lost lease was never counted"
            await asyncio.sleep(0.05)
        assert lost - before == 1

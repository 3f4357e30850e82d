"""The faces' lean server spans (observability/tracing.ServerSpan) end as the SDK's own spans
would: same parent, kind, resource, scope and status, the provider's sampler obeyed, and the
span current meanwhile so child spans and a stored `traceparent` join it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

from assistants_grpc.observability import tracing

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _install(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    return exporter


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider(resource=Resource.create({"service.name": "spans-test"}))
    yield made
    tracing.uninstall()
    made.shutdown()


def _caller(flags: str = "01") -> object:
    header = f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}"
    return tracing.context_from_headers([("traceparent", header)])


def test_a_call_joins_its_callers_trace_and_children_join_it(provider: TracerProvider) -> None:
    exporter = _install(provider)
    span = tracing.open_server_span("Svc/Get", _caller(), {"rpc.system": "grpc"})  # type: ignore[arg-type]
    # While it is open it is current: what a run stores, and the SDK's child spans, join it.
    stored = tracing.current_traceparent()
    tracer = tracing.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("child"):
        pass
    span.set_attribute("rpc.grpc.status_code", 0)
    tracing.close_span(span)
    assert tracing.current_traceparent() is None  # detached again
    child, ended = exporter.get_finished_spans()
    assert ended.name == "Svc/Get" and ended.kind is SpanKind.SERVER
    assert format(ended.context.trace_id, "032x") == CALLER_TRACE
    assert ended.parent is not None and format(ended.parent.span_id, "016x") == CALLER_SPAN
    assert ended.parent.is_remote
    assert child.parent is not None and child.parent.span_id == ended.context.span_id
    assert stored == f"00-{CALLER_TRACE}-{ended.context.span_id:016x}-01"
    assert dict(ended.attributes or {}) == {"rpc.system": "grpc", "rpc.grpc.status_code": 0}
    assert ended.resource is provider.resource
    assert ended.instrumentation_scope is not None
    assert ended.instrumentation_scope.name == "assistants_grpc"
    assert ended.status.status_code is StatusCode.UNSET
    assert ended.start_time is not None and ended.end_time is not None
    assert ended.start_time <= ended.end_time


def test_a_call_without_a_caller_starts_a_trace_and_a_failure_is_marked(
    provider: TracerProvider,
) -> None:
    exporter = _install(provider)
    first = tracing.open_server_span("GET /v1/assistants", None, {})
    tracing.close_span(first, "INTERNAL")
    second = tracing.open_server_span("GET /v1/assistants", None, {})
    tracing.close_span(second)
    one, two = exporter.get_finished_spans()
    assert one.parent is None and one.context.trace_id != two.context.trace_id
    assert one.status.status_code is StatusCode.ERROR
    assert one.status.description == "INTERNAL"
    assert one.context.trace_flags.sampled


def test_the_sampler_decides() -> None:
    never = TracerProvider(sampler=ALWAYS_OFF)
    exporter = _install(never)
    try:
        span = tracing.open_server_span("Svc/Get", None, {})
        # Not sampled, still current: a run made in the call carries the decision on (the
        # flags: not sampled, a random trace id, as the SDK marks a root it makes).
        assert tracing.current_traceparent() == (
            f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-02"
        )
        tracing.close_span(span)
        assert exporter.get_finished_spans() == ()
    finally:
        tracing.uninstall()
        never.shutdown()
    # The default (parent-based) follows an unsampled caller; a sampled one is kept.
    parent_based = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)))
    exporter = _install(parent_based)
    try:
        for flags in ("00", "01"):
            tracing.close_span(tracing.open_server_span("Svc/Get", _caller(flags), {}))  # type: ignore[arg-type]
        (kept,) = exporter.get_finished_spans()
        assert format(kept.context.trace_id, "032x") == CALLER_TRACE
    finally:
        tracing.uninstall()
        parent_based.shutdown()

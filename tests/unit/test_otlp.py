"""observability/otlp.py writes the OTLP wire format by hand: what it writes must parse into the
very request the SDK's encoder builds, for every kind of span, simple or not."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from assistants_grpc.observability import otlp

RESOURCE = Resource.create({"service.name": "assistants-grpc", "service.instance.id": "r1"})
SCOPE = InstrumentationScope("assistants_grpc", "1.0")


def _same(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(otlp.encode(spans))
    theirs = encode_spans(spans)
    # Grouping may differ (ours writes the spans the SDK encodes in a request part of their
    # own): compare span by span, each with its resource and scope.
    assert _flatten(ours) == _flatten(theirs)


def _flatten(request: ExportTraceServiceRequest) -> list[tuple[bytes, bytes, bytes]]:
    rows = []
    for resource_spans in request.resource_spans:
        resource = resource_spans.resource.SerializeToString(deterministic=True)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.SerializeToString(deterministic=True)
            for span in scope_spans.spans:
                rows.append((resource, scope, span.SerializeToString(deterministic=True)))
    return sorted(rows)


def _context(trace_id: int, span_id: int, *, remote: bool = False, **kwargs: Any) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=remote, trace_flags=TraceFlags(1), **kwargs)


def test_the_spans_of_the_service_encode_as_the_sdk_encodes_them() -> None:
    provider = TracerProvider(resource=RESOURCE)
    tracer = provider.get_tracer("assistants_grpc")
    server = tracer.start_span(
        "assistants.v1.RunService/CreateRunStream",
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc"},
    )
    server.set_attribute("rpc.grpc.status_code", 0)
    server.end()
    failed = tracer.start_span("run turn", attributes={"run.tokens": 12, "ratio": 0.5})
    failed.set_status(Status(StatusCode.ERROR, "model endpoint unreachable: é"))
    failed.end()
    ok = tracer.start_span("tool file_search", attributes={"ok": True, "nothing": ""})
    ok.set_status(Status(StatusCode.OK))
    ok.end()
    _same([server, failed, ok])  # type: ignore[list-item]
    assert otlp.encode([]) == b""


def test_a_span_only_the_sdk_encodes_is_still_sent() -> None:
    """Events, links and list values go through the SDK's encoder, in the same request."""
    provider = TracerProvider(resource=RESOURCE)
    tracer = provider.get_tracer("assistants_grpc")
    simple = tracer.start_span("simple")
    simple.end()
    with_event = tracer.start_span("with event")
    with_event.add_event("retry", {"attempt": 2})
    with_event.end()
    linked = tracer.start_span("linked", links=[Link(_context(5, 6), {"why": "continued"})])
    linked.end()
    listed = tracer.start_span("listed", attributes={"models": ["a", "b"]})
    listed.end()
    spans = [simple, with_event, linked, listed]
    _same(spans)  # type: ignore[arg-type]
    names = [
        span.name
        for rs in ExportTraceServiceRequest.FromString(otlp.encode(spans)).resource_spans  # type: ignore[arg-type]
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert sorted(names) == ["linked", "listed", "simple", "with event"]


_SCALARS = (
    st.text()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20)
)
_KEYS = st.text(min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=40),
    kind=st.sampled_from(list(SpanKind)),
    ids=st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1)),
    parent=st.none() | st.tuples(st.integers(1, 2**64 - 1), st.booleans()),
    times=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    attributes=st.dictionaries(_KEYS, _SCALARS, max_size=6),
    status=st.sampled_from(list(StatusCode)),
    description=st.none() | st.text(max_size=30),
    state=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
        max_size=2,
    ),
    scope_version=st.none() | st.just("2.1"),
)
def test_any_simple_span_encodes_as_the_sdk_encodes_it(
    name: str,
    kind: SpanKind,
    ids: tuple[int, int],
    parent: tuple[int, bool] | None,
    times: tuple[int, int],
    attributes: dict[str, Any],
    status: StatusCode,
    description: str | None,
    state: dict[str, str],
    scope_version: str | None,
) -> None:
    span = ReadableSpan(
        name=name,
        context=_context(*ids, trace_state=TraceState(list(state.items()))),
        parent=_context(ids[0], parent[0], remote=parent[1]) if parent else None,
        resource=RESOURCE,
        attributes=attributes,
        kind=kind,
        status=Status(status, description if status is StatusCode.ERROR else None),
        start_time=times[0],
        end_time=times[1],
        instrumentation_scope=InstrumentationScope("assistants_grpc", scope_version),
    )
    _same([span, span])


def test_spans_of_two_resources_and_scopes_keep_theirs() -> None:
    other = Resource.create({"service.name": "other", "list": "x"})
    pairs = [
        (RESOURCE, SCOPE),
        (other, SCOPE),
        (RESOURCE, None),
        (other, InstrumentationScope("x")),
    ]
    spans = [
        ReadableSpan(
            name=f"span {index}",
            context=_context(index + 1, index + 1),
            resource=resource,
            instrumentation_scope=scope,
            start_time=1,
            end_time=2,
        )
        for index, (resource, scope) in enumerate(pairs)
    ]
    _same(spans)
    assert trace.SpanKind.INTERNAL.value == 0  # the +1 of the kind mapping

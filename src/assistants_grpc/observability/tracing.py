"""OpenTelemetry traces (README "Operating"), on only when the standard `OTEL_*` variables ask
for an exporter: `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over
HTTP/protobuf), or `OTEL_TRACES_EXPORTER` (`otlp`, `console`; `none` keeps it off), unless
`OTEL_SDK_DISABLED` is true. The SDK reads the rest itself (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`...).

Off, `tracer()` is None and nothing of OpenTelemetry is imported: every span site is one
`is None` test. On, a trace reads CreateRunStream (or any RPC, joining the caller's W3C
`traceparent`) → `run turn` → `chat.completions` (the model request) → `tool <type>` (each
server-side call). A run's turns execute in scheduler workers, maybe on another replica, long
after the call that created the run: so the creating call's context is stored with the run
(`runs.trace_context`, a `traceparent` string) and each turn starts as its child.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

__all__ = [
    "ServerSpan",
    "close_span",
    "configure",
    "context_from_headers",
    "context_from_traceparent",
    "current_traceparent",
    "flush",
    "install",
    "open_server_span",
    "requested",
    "tracer",
    "uninstall",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_lock = threading.Lock()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def tracer() -> Tracer | None:
    """The tracer, while traces are on; None means make no span."""
    return _tracer


def requested(env: Mapping[str, str]) -> str | None:
    """The exporter `env` asks for (`otlp`, `console`), or None: traces stay off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return None
    named = [
        name.strip().lower()
        for name in env.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    if named:
        return next((name for name in named if name in ("otlp", "console")), None)
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def configure(env: Mapping[str, str] | None = None) -> bool:
    """Turn traces on if `env` (default os.environ) asks for them; whether they are on."""
    env = os.environ if env is None else env
    exporter = requested(env)
    if exporter is None or _tracer is not None:
        return _tracer is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    if exporter == "console":
        span_exporter: SpanExporter = ConsoleSpanExporter()
    else:
        from assistants_grpc.observability.otlp import FastOTLPSpanExporter

        span_exporter = FastOTLPSpanExporter()
    service = env.get("OTEL_SERVICE_NAME") or "assistants-grpc"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    install(provider)
    return True


def install(provider: TracerProvider) -> None:
    """Trace through `provider` (configure's, or a test's with an in-memory exporter)."""
    global _tracer, _provider, _api
    with _lock:
        _api = _api or _Api()
        _provider = provider
        _tracer = provider.get_tracer(_SCOPE)


class _Api:
    """The OpenTelemetry API and SDK parts the faces' per-call spans use, imported once traces
    are on."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.status import Status, StatusCode

        self.attach = context.attach
        self.detach = context.detach
        self.in_context = trace.set_span_in_context
        self.current_span = trace.get_current_span
        self.span_context = trace.SpanContext
        self.non_recording = trace.NonRecordingSpan
        self.flags = trace.TraceFlags
        self.readable = ReadableSpan
        self.server = trace.SpanKind.SERVER
        self.status = Status
        self.unset = Status(StatusCode.UNSET)
        self.error = StatusCode.ERROR
        self.scope = InstrumentationScope(_SCOPE)


_api: _Api | None = None
_SCOPE = "assistants_grpc"


@dataclass(slots=True)
class ServerSpan:
    """A face's span of one call (`open_server_span`), made without the SDK's `Span`.

    Every call of both faces pays for its span, so it is the cheapest one that exports the
    same: the SDK's `start_span` … `end` costs ~30 µs (attribute validation under a lock, a
    span object with events, links and limits, its own context), this ~8 µs. It asks the
    provider's sampler and id generator as `start_span` does, is made current (as a
    `NonRecordingSpan` of its context, so child spans and a run's stored `traceparent` join
    it), and ends as the `ReadableSpan` the SDK's `Span` would end as, handed to the
    provider's span processors (their `on_end`; they do nothing in `on_start`). Span limits do
    not apply: the faces set three attributes."""

    name: str
    context: Any
    parent: Any
    attributes: dict[str, Any]
    recording: bool
    start: int
    token: object

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


def open_server_span(
    name: str, parent: Context | None, attributes: Mapping[str, Any]
) -> ServerSpan:
    """A server span made current, for a call of a face; end it with `close_span`."""
    api, provider = _api, _provider
    assert api is not None and provider is not None
    parent_span: Any = api.current_span(parent).get_span_context()
    ids = provider.id_generator
    flags = 0
    if parent_span is None or not parent_span.is_valid:
        parent_span = None
        trace_id = ids.generate_trace_id()
        if ids.is_trace_id_random():
            flags = api.flags.RANDOM_TRACE_ID
    else:
        trace_id = parent_span.trace_id
        flags = parent_span.trace_flags & api.flags.RANDOM_TRACE_ID
    sampled: Any = provider.sampler.should_sample(parent, trace_id, name, api.server, attributes)
    if sampled.decision.is_sampled():
        flags |= api.flags.SAMPLED
    context = api.span_context(
        trace_id,
        ids.generate_span_id(),
        is_remote=False,
        trace_flags=api.flags(flags),
        trace_state=sampled.trace_state,
    )
    token = api.attach(api.in_context(api.non_recording(context), parent))
    return ServerSpan(
        name,
        context,
        parent_span,
        {**attributes, **(sampled.attributes or {})},
        sampled.decision.is_recording(),
        time.time_ns(),
        token,
    )


def close_span(span: ServerSpan, error: str | None = None) -> None:
    """End a span of `open_server_span`; `error` marks it failed, with that description."""
    api, provider = _api, _provider
    assert api is not None
    api.detach(span.token)  # type: ignore[arg-type]
    if not span.recording or provider is None:
        return
    ended = api.readable(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=provider.resource,
        attributes=span.attributes,
        kind=api.server,
        status=api.status(api.error, error) if error is not None else api.unset,
        start_time=span.start,
        end_time=time.time_ns(),
        instrumentation_scope=api.scope,
    )
    provider._active_span_processor.on_end(ended)  # what the SDK's Span.end calls


def uninstall() -> None:
    """Traces off again (tests)."""
    global _tracer, _provider
    with _lock:
        _tracer = None
        _provider = None


def flush(timeout_seconds: float = 5.0) -> None:
    """Export the spans still buffered (at shutdown)."""
    provider = _provider
    if provider is not None:
        provider.force_flush(int(timeout_seconds * 1000))


class _Propagator:
    """The W3C trace-context propagator, imported the first time it is needed (traces on)."""

    def __init__(self) -> None:
        self._inner: Any = None

    def _get(self) -> Any:
        if self._inner is None:
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            self._inner = TraceContextTextMapPropagator()
        return self._inner

    def inject(self, carrier: dict[str, str]) -> None:
        self._get().inject(carrier)

    def extract(self, carrier: dict[str, str]) -> Any:
        return self._get().extract(carrier)


_PROPAGATOR = _Propagator()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to store with a run; None when traces are off
    or no span is current."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The context a stored `traceparent` names (None for none)."""
    if not traceparent:
        return None
    context: Context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context


def context_from_headers(headers: Iterable[tuple[str, Any]]) -> Context | None:
    """The caller's trace context from request headers or gRPC metadata (W3C trace context)."""
    carrier: dict[str, str] = {}
    for key, value in headers:
        name = (key.decode("latin-1") if isinstance(key, bytes) else str(key)).lower()
        if name in ("traceparent", "tracestate"):
            carrier[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    if not carrier:
        return None  # no caller's trace: the span starts one (the propagator costs ~10 us)
    context: Context = _PROPAGATOR.extract(carrier)
    return context

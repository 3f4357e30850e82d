"""Finished spans → an OTLP `ExportTraceServiceRequest`, encoded; and the OTLP/HTTP exporter
that sends it (tracing.py installs it).

Why not the SDK's encoder alone: it builds a protobuf object for every span, attribute and
value, and groups the spans by resource by hashing each span's resource (a `json.dumps` of its
attributes): 35-45 µs a span, as much as a tenth of what the call it traces costs the service.
The spans this service makes are simple (scalar attributes, no events, no links), so they are
written straight into the wire format here, a few µs each. A span that is not simple (one with
events, links, or list or mapping values) is left to the SDK's encoder, and the two encodings
are joined: protobuf encodings concatenate into the message holding both's repeated fields, so
`ours + theirs` is one request with all the `resource_spans`.

Field numbers are those of opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto
(opentelemetry-proto); tests/unit/test_otlp.py checks the output against the SDK's encoder.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from assistants_grpc.observability.otlp_transport import HttpClientTransport, tls_from_environment

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["FastOTLPSpanExporter", "encode"]

log = logging.getLogger(__name__)

# The SDK's variables naming a `requests.Session` factory for the exporter's requests.
_SESSION_PROVIDERS: Final = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
)

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack

# The span flags the SDK sets (trace.proto SpanFlags): "has is_remote", and "is remote" when the
# parent came from another process.
_FLAGS_HAS_IS_REMOTE: Final = 0x100
_FLAGS_IS_REMOTE: Final = 0x200


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes | None:
    """An AnyValue's encoding, or None for a value only the SDK's encoder takes."""
    if isinstance(value, bool):  # before int: a bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _delimited(b"\x0a", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            return None
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _delimited(b"\x3a", value)
    return None


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes | None:
    """Repeated KeyValue fields under `tag`; None if a value is not a scalar."""
    if not attributes:
        return b""
    out = []
    for key, value in attributes.items():
        # The service's attributes take few values (like its metrics' labels): most are known.
        known = _PAIRS.get((tag, key, value.__class__, value))
        if known is None:
            known = _pair(tag, key, value)
            if known is None:
                return None
        out.append(known)
    return b"".join(out)


# (tag, key, type, value) -> the KeyValue field; the type keeps True and 1 apart.
_PAIRS: dict[tuple[bytes, str, type, Any], bytes] = {}
_MAX_PAIRS: Final = 4096


def _pair(tag: bytes, key: str, value: Any) -> bytes | None:
    if value is None:
        encoded = b""  # an empty AnyValue, as the SDK writes it
    else:
        found = _any_value(value)
        if found is None:
            return None
        encoded = found
    pair = _delimited(b"\x0a", str(key).encode("utf-8", "surrogatepass"))
    field = _delimited(tag, pair + _delimited(b"\x12", encoded))
    if len(_PAIRS) >= _MAX_PAIRS:
        _PAIRS.clear()
    try:
        _PAIRS[(tag, key, value.__class__, value)] = field
    except TypeError:  # unhashable: not kept
        pass
    return field


# A span's name -> its field (names are per RPC, route or tool: few).
_NAMES: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    known = _NAMES.get(name)
    if known is None:
        known = _delimited(b"\x2a", name.encode("utf-8", "surrogatepass")) if name else b""
        if len(_NAMES) >= _MAX_PAIRS:
            _NAMES.clear()
        _NAMES[name] = known
    return known


def _span(span: ReadableSpan) -> bytes | None:
    """One Span message's encoding, or None when the span is not simple."""
    # The fields, not the properties: `attributes`, `events` and `links` copy what they show
    # (a mapping proxy, tuples), a third of this function's cost. ReadableSpan's own fields
    # (opentelemetry-sdk pinned in pyproject.toml; tests/unit/test_otlp.py would see a change).
    if span._events or span._links:
        return None
    attributes = _attributes(b"\x4a", span._attributes)
    if attributes is None:
        return None
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
        parts.append(_delimited(b"\x1a", state.encode()))
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    parts.append(_name(span.name))
    # SpanKind: the SDK's INTERNAL..CONSUMER are 0..4, the proto's 1..5.
    parts.append(b"\x30" + _varint(span.kind.value + 1))
    if span.start_time:
        parts.append(b"\x39" + _FIXED64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _FIXED64(span.end_time))
    parts.append(attributes)
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    status = span.status
    message = status.description
    code = status.status_code.value
    parts.append(
        _delimited(
            b"\x7a",
            (_delimited(b"\x12", message.encode("utf-8", "surrogatepass")) if message else b"")
            + (b"\x18" + _varint(code) if code else b""),
        )
    )
    flags = _FLAGS_HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _FLAGS_IS_REMOTE
    parts.append(b"\x85\x01" + _FIXED32(flags))
    return b"".join(parts)


class _Headers:
    """The encoded Resource and InstrumentationScope of each resource and scope seen (they are
    made once per process and never change), kept with the object so its id stays its own."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[object, bytes]] = {}

    def get(self, thing: Any, encode: Any) -> bytes:
        known = self._known.get(id(thing))
        if known is not None and known[0] is thing:
            return known[1]
        encoded: bytes = encode(thing)
        if len(self._known) > 64:
            self._known.clear()
        self._known[id(thing)] = (thing, encoded)
        return encoded


_HEADERS = _Headers()


def _resource(resource: Any) -> bytes:
    attributes = _attributes(b"\x0a", resource.attributes)
    if attributes is None:  # a resource of list values: the SDK's protobuf types say it
        from opentelemetry.exporter.otlp.proto.common._internal import _encode_resource

        return bytes(_encode_resource(resource).SerializePartialToString())
    return attributes


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    parts = []
    if scope.name:
        parts.append(_delimited(b"\x0a", scope.name.encode()))
    if scope.version:
        parts.append(_delimited(b"\x12", scope.version.encode()))
    attributes = _attributes(b"\x1a", scope.attributes)
    if attributes is None:
        from opentelemetry.exporter.otlp.proto.common._internal import (
            _encode_instrumentation_scope,
        )

        return bytes(_encode_instrumentation_scope(scope).SerializePartialToString())
    parts.append(attributes)
    return b"".join(parts)


def encode(spans: Iterable[ReadableSpan]) -> bytes:
    """The serialized ExportTraceServiceRequest holding `spans`."""
    # resource → scope → encoded spans, in the order first seen (as the SDK groups them).
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    others: list[ReadableSpan] = []
    for span in spans:
        encoded = _span(span)
        if encoded is None:
            others.append(span)
            continue
        resource, scope = span.resource, span.instrumentation_scope
        by_scope = groups.get(id(resource))
        if by_scope is None:
            by_scope = groups[id(resource)] = (resource, {})
        in_scope = by_scope[1].get(id(scope))
        if in_scope is None:
            in_scope = by_scope[1][id(scope)] = (scope, [])
        in_scope[1].append(encoded)
    out = []
    for resource, scopes in groups.values():
        parts = [_delimited(b"\x0a", _HEADERS.get(resource, _resource))]
        for scope, encoded_spans in scopes.values():
            body = [_delimited(b"\x0a", _HEADERS.get(scope, _scope))]
            body += [_delimited(b"\x12", one) for one in encoded_spans]
            if scope is not None and scope.schema_url:
                body.append(_delimited(b"\x1a", scope.schema_url.encode()))
            parts.append(_delimited(b"\x12", b"".join(body)))
        if resource.schema_url:
            parts.append(_delimited(b"\x1a", resource.schema_url.encode()))
        out.append(_delimited(b"\x0a", b"".join(parts)))
    if others:
        out.append(bytes(encode_spans(others).SerializePartialToString()))
    return b"".join(out)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP exporter (its `OTEL_EXPORTER_OTLP_*` configuration, retries and
    compression), sending what `encode` writes instead of its own encoding, over one kept-alive
    `http.client` connection (otlp_transport.py) rather than a `requests` session; the session
    still, when a credential provider (the SDK's `requests.Session` entry point) is named."""

    def __init__(self, **kwargs: Any) -> None:
        env = os.environ
        if "_transport" not in kwargs and not any(name in env for name in _SESSION_PROVIDERS):
            verify, cert = tls_from_environment(env)
            kwargs["_transport"] = HttpClientTransport(verify=verify, cert=cert)
        super().__init__(**kwargs)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            data = encode(spans)
        except Exception as error:  # a span no encoder takes: drop the batch, say so
            log.error("encoding %d spans for OTLP failed: %s", len(spans), error)
            return SpanExportResult.FAILURE
        if 0 < self._max_request_size < len(data):  # the SDK exporter's limit (64 MiB)
            log.warning(
                "dropping %d spans: %d bytes encoded, past the limit",
                len(spans),
                len(data),
            )
            return SpanExportResult.FAILURE
        result = self._client.export(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE

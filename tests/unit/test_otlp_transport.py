"""The OTLP exporter's HTTP transport (observability/otlp_transport.py), against real local
collectors: one kept-alive connection, a new one after the collector closes it, failures the
exporter can retry, the SDK's retry of a 503 with `Retry-After`, and TLS with a CA file and a
client certificate as the `OTEL_EXPORTER_OTLP_*` variables give them."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from assistants_grpc.observability.otlp import FastOTLPSpanExporter
from assistants_grpc.observability.otlp_transport import HttpClientTransport, tls_from_environment
from tests.security.certificates import make_certificates


class Collector:
    """An OTLP/HTTP receiver that keeps what it is sent and the connections it saw."""

    def __init__(self, *, close_after: bool = False, busy_first: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.connections: set[tuple[str, int]] = set()
        self.busy = busy_first
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                collector.connections.add(self.client_address)
                if collector.busy:
                    collector.busy -= 1
                    self.send_response(503)
                    self.send_header("retry-after", "0")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                collector.bodies.append(body)
                collector.paths.append(self.path)
                collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                if close_after:
                    self.send_header("connection", "close")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"

    def secure(self, certificate: Path, key: Path, client_ca: Path) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
        context.load_cert_chain(str(certificate), str(key))
        context.verify_mode = ssl.CERT_REQUIRED
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_port}/v1/traces"

    def __enter__(self) -> Collector:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _spans(count: int) -> list[object]:
    tracer = TracerProvider(resource=Resource.create({"service.name": "t"})).get_tracer("t")
    made = []
    for index in range(count):
        span = tracer.start_span(f"span {index}")
        span.end()
        made.append(span)
    return made


def _names(body: bytes) -> list[str]:
    request = ExportTraceServiceRequest.FromString(body)
    return [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    yield


def test_exports_share_one_connection_and_carry_the_headers(no_otel_env: None) -> None:
    with Collector() as collector:
        exporter = FastOTLPSpanExporter(endpoint=collector.url, headers={"x-tenant": "a b"})
        assert isinstance(exporter._client._transport, HttpClientTransport)
        for _ in range(3):
            assert exporter.export(_spans(2)) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
        exporter.shutdown()
    assert [_names(body) for body in collector.bodies] == [["span 0", "span 1"]] * 3
    assert collector.paths == ["/v1/traces"] * 3
    assert all(h["content-type"] == "application/x-protobuf" for h in collector.headers)
    assert all(h["x-tenant"] == "a b" for h in collector.headers)
    assert len(collector.connections) == 1


def test_a_closed_connection_is_made_again(no_otel_env: None) -> None:
    with Collector(close_after=True) as collector:
        exporter = FastOTLPSpanExporter(endpoint=collector.url)
        for _ in range(3):
            assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
        exporter.shutdown()
    assert len(collector.bodies) == 3 and len(collector.connections) == 3


def test_a_busy_collector_is_retried_and_a_missing_one_fails(no_otel_env: None) -> None:
    with Collector(busy_first=1) as collector:
        exporter = FastOTLPSpanExporter(endpoint=collector.url)
        assert exporter.export(_spans(1)) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
        exporter.shutdown()
    assert len(collector.bodies) == 1  # the 503 first, then the retry kept
    transport = HttpClientTransport()
    refused = transport.request("POST", collector.url, data=b"", timeout=2)
    assert refused.status_code is None and transport.is_connection_error(refused.error)
    transport.close()


def test_tls_with_a_ca_file_and_a_client_certificate(tmp_path: Path) -> None:
    made = make_certificates(tmp_path)
    env = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(made.ca),
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": str(made.client_cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(made.client_key),
    }
    verify, cert = tls_from_environment(env)
    assert verify == str(made.ca) and cert == (str(made.client_cert), str(made.client_key))
    assert tls_from_environment({}) == (True, None)
    collector = Collector()
    collector.secure(made.server_cert, made.server_key, made.ca)
    with collector:
        transport = HttpClientTransport(verify=verify, cert=cert)
        sent = transport.request("POST", collector.url, data=b"", timeout=10)
        assert sent.status_code == 200, sent.error
        # Without the client certificate the collector refuses the handshake.
        anonymous = HttpClientTransport(verify=verify)
        refused = anonymous.request("POST", collector.url, data=b"", timeout=10)
        assert refused.status_code is None and anonymous.is_connection_error(refused.error)
        # And a collector whose certificate the CA file did not sign is not trusted.
        untrusting = HttpClientTransport(verify=True, cert=cert)
        distrusted = untrusting.request("POST", collector.url, data=b"", timeout=10)
        assert isinstance(distrusted.error, ssl.SSLError)
        for each in (transport, anonymous, untrusting):
            each.close()

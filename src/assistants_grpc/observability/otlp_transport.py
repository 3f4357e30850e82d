"""The HTTP transport the OTLP exporter sends with (otlp.FastOTLPSpanExporter): one kept-alive
`http.client` connection to the collector.

The SDK's default transport is a `requests` session: ~2 ms of CPU a POST (proxy and netrc
look-ups, hooks, adapters, header merging), as much as encoding a hundred spans; this one costs
~0.2 ms. The exporter keeps what it owns, the rest of the `OTEL_EXPORTER_OTLP_*` configuration,
the retries with backoff (`Retry-After` honoured) and the compression: a transport only sends
one request and says how it went (opentelemetry.exporter.http.transport's interface, which the
exporter takes as `_transport`). TLS as the SDK's: the CA file of
`OTEL_EXPORTER_OTLP[_TRACES]_CERTIFICATE` (else the system's), and a client certificate and key
of `OTEL_EXPORTER_OTLP[_TRACES]_CLIENT_CERTIFICATE` / `_CLIENT_KEY`.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import urlsplit

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

__all__ = ["HttpClientTransport", "tls_from_environment"]


@dataclass(frozen=True, slots=True)
class _Result(BaseHTTPResult):
    body: bytes = field(default=b"", compare=False)
    response_headers: Message | None = field(default=None, compare=False)

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        # An HTTPMessage: case-insensitive `get`, as the interface asks.
        return self.response_headers if self.response_headers is not None else {}  # type: ignore[return-value]


def tls_from_environment(env: Mapping[str, str]) -> tuple[bool | str, str | tuple[str, str] | None]:
    """(verify, cert) as the SDK's exporter reads them: the traces variable, else the general."""

    def pick(name: str) -> str | None:
        return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")

    verify: bool | str = pick("CERTIFICATE") or True
    key, certificate = pick("CLIENT_KEY"), pick("CLIENT_CERTIFICATE")
    cert: str | tuple[str, str] | None = (certificate, key) if certificate and key else certificate
    return verify, cert


class HttpClientTransport(BaseHTTPTransport):
    """Requests over one connection, made on first use and again after a failure or a
    `Connection: close`. The exporter's worker thread is its one caller; a lock keeps a flush
    from another thread off the connection meanwhile."""

    def __init__(
        self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None
    ) -> None:
        self._verify = verify
        self._cert = cert
        self._context: ssl.SSLContext | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._address: tuple[str, str, int] | None = None
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        target = urlsplit(url)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        with self._lock:
            try:
                connection = self._connect(target.scheme, target.hostname or "", target.port)
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request(method, path, body=data, headers=headers or {})
                response = connection.getresponse()
                body = response.read()
            except Exception as error:  # the exporter decides: retry, or give up and log
                self._drop()
                return _Result(error=error)
            if response.will_close:
                self._drop()
        return _Result(
            status_code=response.status,
            reason=response.reason,
            body=body,
            response_headers=response.headers,
        )

    def _connect(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        secure = scheme == "https"
        address = (scheme, host, port or (443 if secure else 80))
        if self._connection is not None and self._address == address:
            return self._connection
        self._drop()
        connection: http.client.HTTPConnection
        if secure:
            connection = http.client.HTTPSConnection(host, address[2], context=self._tls())
        else:
            connection = http.client.HTTPConnection(host, address[2])
        self._connection, self._address = connection, address
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            verify = self._verify
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if isinstance(self._cert, tuple):
                context.load_cert_chain(self._cert[0], self._cert[1])
            elif self._cert:
                context.load_cert_chain(self._cert)
            self._context = context
        return self._context

    def _drop(self) -> None:
        connection, self._connection, self._address = self._connection, None, None
        if connection is not None:
            connection.close()

    def is_connection_error(self, exception: Exception | None) -> bool:
        # Refused, reset, timed out, or a kept-alive connection the collector had closed.
        return isinstance(exception, OSError | http.client.HTTPException)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __repr__(self) -> str:
        return f"HttpClientTransport({self._address!r})"

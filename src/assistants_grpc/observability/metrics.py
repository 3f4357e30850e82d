"""Prometheus metrics (README "Operating"): what is recorded, and `/metrics` on `--metrics-port`.

Every metric lives in one registry of this module, made when the process first serves metrics
(`enable`): until then `active()` is None and every recording site is one `is None` test, so a
server started with `--metrics-port 0` pays nothing else. The recording sites are few and sit
where the thing happens once: the gRPC interceptor and the HTTP route wrapper
(observability/rpc.py, observability/http.py), the one transition function of runs
(engine/transitions.py), the turn (engine/run_loop.py), the scheduler, the event bus, the model
transport and the database's transaction.

Labels are bounded: RPC method names, HTTP route templates (never a path with ids), run
statuses, error codes, tool types, and model endpoints as the host:port of their base URL (the
models config names them: a handful). No id and no user text is ever a label value.

What is live rather than counted (turns queued and running, free workers, subscribers, event
channels) is read when scraped, from the sources the runtime registers with `watch`: summed
over every runtime of the process (tests run several).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "BUCKETS",
    "LIVE",
    "Metrics",
    "MetricsServer",
    "active",
    "enable",
    "endpoint_label",
    "watch",
]

# Seconds: from a tenth of a millisecond (a unary call, a SQLite transaction) to two minutes (a
# long model answer, a code_interpreter call).
BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip

# The live gauges (name -> help), read from the watched sources at each scrape.
LIVE: Final = {
    "assistants_turns_queued": "Runs waiting for a worker of this replica.",
    "assistants_turns_running": "Runs a worker of this replica is executing (or is kept for).",
    "assistants_workers_free": "Workers of this replica free to take a run.",
    "assistants_event_subscribers": "Streams following a run's events on this replica.",
    "assistants_event_channels": "Runs whose events this replica holds in memory.",
}

Source = Callable[[], Mapping[str, float]]


class Metrics:
    """The metrics, in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=BUCKETS)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        # The faces.
        self.rpc_requests = counter(
            "assistants_rpc_requests", "gRPC calls finished, by method and status code.",
            ("method", "code"),
        )  # fmt: skip
        self.rpc_duration = histogram(
            "assistants_rpc_duration_seconds", "gRPC call duration (a stream: while open).",
            ("method",),
        )  # fmt: skip
        self.rpc_streams = gauge(
            "assistants_rpc_streams_in_flight", "gRPC server streams open.", ("method",)
        )
        self.http_requests = counter(
            "assistants_http_requests", "HTTP requests finished, by route, method and status.",
            ("route", "method", "status"),
        )  # fmt: skip
        self.http_duration = histogram(
            "assistants_http_request_duration_seconds",
            "HTTP request duration (an event stream: while open).",
            ("route", "method"),
        )
        self.http_streams = gauge(
            "assistants_http_streams_in_flight", "HTTP event streams open.", ("route",)
        )
        # Runs.
        self.runs_finished = counter(
            "assistants_runs_finished", "Runs that reached a terminal status.", ("status",)
        )
        self.first_delta = histogram(
            "assistants_run_first_delta_seconds",
            "From a turn's start to its first text written and published.",
            ("endpoint",),
        )
        self.turn_duration = histogram(
            "assistants_turn_duration_seconds", "A run turn, prompt to final write.", ("endpoint",)
        )
        self.model_duration = histogram(
            "assistants_model_request_duration_seconds",
            "A streamed model request, from sending it to its last chunk.",
            ("endpoint",),
        )
        self.model_errors = counter(
            "assistants_model_errors", "Model requests failed, by endpoint and run error code.",
            ("endpoint", "code"),
        )  # fmt: skip
        self.model_retries = counter(
            "assistants_model_retries", "Model HTTP requests that were retries (429/5xx).",
            ("endpoint",),
        )  # fmt: skip
        self.tokens = counter(
            "assistants_tokens", "Model tokens, by direction (prompt: in, completion: out).",
            ("direction",),
        )  # fmt: skip
        self.lease_takeovers = counter(
            "assistants_lease_takeovers", "Runs claimed from another replica whose lease expired."
        )
        self.leases_lost = counter(
            "assistants_leases_lost", "Turns stopped because another replica took their run."
        )
        self.tool_calls = counter(
            "assistants_tool_calls", "Server-side tool calls, by tool type and outcome.",
            ("type", "outcome"),
        )  # fmt: skip
        self.tool_duration = histogram(
            "assistants_tool_call_duration_seconds", "A server-side tool call.", ("type",)
        )
        # Events and the database.
        self.events_published = counter(
            "assistants_events_published", "Run events handed to this replica's event bus."
        )
        self.events_delivered = counter(
            "assistants_events_delivered", "Run events handed on to streams by the event bus."
        )
        self.db_transaction = histogram(
            "assistants_db_transaction_duration_seconds",
            "A database transaction, begin to commit (or rollback).",
            ("database",),
        )
        registry.register(_Live())


_sources: dict[int, Source] = {}
_sources_lock = threading.Lock()


class _Live(Collector):
    """The live gauges: the sum of what every watched source reports now."""

    def collect(self) -> Iterator[Metric]:
        totals = dict.fromkeys(LIVE, 0.0)
        with _sources_lock:
            sources = list(_sources.values())
        for source in sources:
            for name, value in source().items():
                totals[name] += value
        for name, doc in LIVE.items():
            yield GaugeMetricFamily(name, doc, value=totals[name])


def watch(source: Source) -> Callable[[], None]:
    """Report `source()` (LIVE names -> values) at each scrape; returns the way to stop."""
    key = id(source)
    with _sources_lock:
        _sources[key] = source

    def unwatch() -> None:
        with _sources_lock:
            _sources.pop(key, None)

    return unwatch


_metrics: Metrics | None = None
_enable_lock = threading.Lock()


def active() -> Metrics | None:
    """The metrics, once this process serves them; None means record nothing."""
    return _metrics


def enable() -> Metrics:
    """Start recording (once per process): the registry, with the process's own collectors."""
    global _metrics
    with _enable_lock:
        if _metrics is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            _metrics = Metrics(registry)
        return _metrics


def endpoint_label(base_url: object) -> str:
    """A model endpoint as a label: the host[:port] of its base URL (no path, no credentials)."""
    text = str(base_url)
    rest = text.split("://", 1)[-1]
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return host or "unknown"


class MetricsServer:
    """`/metrics` over HTTP (TLS with the server's own certificate when it has one), served from
    a thread so a scrape never waits on the event loop. Port 0 binds any free port."""

    def __init__(
        self, host: str, port: int, *, certfile: str | None = None, keyfile: str | None = None
    ) -> None:
        self.host = host
        self._requested = port
        self._certfile = certfile
        self._keyfile = keyfile
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    async def start(self) -> None:
        metrics = enable()
        try:
            self._server, self._thread = start_http_server(
                self._requested,
                self.host,
                registry=metrics.registry,
                certfile=self._certfile,
                keyfile=self._keyfile,
            )
        except (OSError, ssl.SSLError) as error:
            # A ValueError: `serve` reports it on one line and exits 2, like a bad setting.
            raise ValueError(
                f"--metrics-port {self._requested}: cannot serve /metrics on "
                f"{self.host}:{self._requested}: {error.strerror or error} (choose another "
                "port, or 0 to turn metrics off)"
            ) from None
        self.port = self._server.server_port

    async def set_serving(self, serving: bool) -> None:
        """Metrics are served whatever the health (an operator wants them most when it is bad)."""

    async def stop(self, grace: float) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            # shutdown() waits out the serving thread's poll (half a second): not on the loop.
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join, max(grace, 1.0))

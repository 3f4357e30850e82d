"""The HTTP face's per-route wrapper: requests by route template, method and status, their
duration, the event streams open (metrics.py), and a span per request joining the caller's W3C
`traceparent` (tracing.py). Applied to each route of the app when it is built, only when one of
the two is on: otherwise the route is served as it is.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistants_grpc.observability import metrics as metrics_module
from assistants_grpc.observability import tracing

__all__ = ["observe_route"]

_EVENT_STREAM = b"text/event-stream"


def observe_route(template: str, app: ASGIApp) -> ASGIApp:
    """`app` (the route `template`'s handler), observed when metrics or traces are on."""
    recorded = metrics_module.active()
    if recorded is None and tracing.tracer() is None:
        return app
    streams = recorded.http_streams.labels(template) if recorded is not None else None
    children: dict[tuple[str, int], Any] = {}
    attributes = {"http.route": template}

    def done(method: str, status: int, seconds: float) -> None:
        if recorded is None:
            return
        child = children.get((method, status))
        if child is None:
            child = children[(method, status)] = (
                recorded.http_requests.labels(template, method, str(status)),
                recorded.http_duration.labels(template, method),
            )
        child[0].inc()
        child[1].observe(seconds)

    async def observed(scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope.get("method", "GET")
        status = 500
        streaming = False

        async def watch(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or ()
                streaming = any(
                    k.lower() == b"content-type" and v.startswith(_EVENT_STREAM) for k, v in headers
                )
                if streaming and streams is not None:
                    streams.inc()
            await send(message)

        began = time.perf_counter()
        span = None
        if tracing.tracer() is not None:
            parent = tracing.context_from_headers(scope.get("headers") or ())
            span = tracing.open_server_span(f"{method} {template}", parent, attributes)
        try:
            await app(scope, receive, watch)
        finally:
            if streaming and streams is not None:
                streams.dec()
            done(method, status, time.perf_counter() - began)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                tracing.close_span(span, error=str(status) if status >= 500 else None)

    return _Asgi(observed)


class _Asgi:
    """An ASGI app object (Starlette's Route takes a plain function for a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

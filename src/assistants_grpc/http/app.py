"""The ASGI app of the HTTP face: the route table under `/v1`, OpenAI's 404 for anything else,
and `GET /health` for load balancers (the runtime's one health state, no key needed, like
gRPC's health service).

It is Starlette's Router, without the `Starlette` application's middleware: every handler
answers its own errors (`call.Face.handle`), so the extra layers would only cost each call and
each streamed frame. Each path is one Starlette route whose methods are dispatched here, so a
method a path does not have is OpenAI's 404 "Invalid URL", not a 405.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from assistants_grpc.http.call import Face, new_request_id
from assistants_grpc.http.errors import error_response, unknown_route
from assistants_grpc.http.routes import ROUTES
from assistants_grpc.http.routes import Route as TableRoute
from assistants_grpc.observability import logs
from assistants_grpc.observability.http import observe_route

PREFIX = "/v1"


class _Path:
    """The methods of one path."""

    def __init__(self, face: Face, routes: Mapping[str, TableRoute], path: str = "") -> None:
        self._face = face
        self._routes = dict(routes)
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._face.requests += 1
        request = Request(scope, receive)
        # The call's log fields, for its task (observability.logs); the project once admitted.
        params = request.path_params
        logs.bind(
            rpc=f"{request.method} {self._path}",
            thread_id=params.get("thread_id"),
            run_id=params.get("run_id"),
        )
        route = self._routes.get(request.method)
        response: ASGIApp = (
            _not_found(request)
            if route is None
            else await self._face.handle(request, route.handler, own_body=route.own_body)
        )
        await response(scope, receive, send)


def _not_found(request: Request) -> Response:
    return error_response(
        unknown_route(request.method, request.url.path),
        request.method,
        {"x-request-id": new_request_id()},
    )


def _health(face: Face) -> Route:
    async def health(_request: Request) -> Response:
        status = "SERVING" if face.serving else "NOT_SERVING"
        body = json.dumps({"status": status}).encode()
        return Response(
            body, status_code=200 if face.serving else 503, media_type="application/json"
        )

    return Route("/health", health, methods=["GET"])


def build_app(face: Face, routes: Iterable[TableRoute] = ROUTES) -> Router:
    """The app serving `routes` (in order: the first path that matches wins)."""
    paths: dict[str, dict[str, TableRoute]] = {}
    for route in routes:
        methods = paths.setdefault(route.path, {})
        if route.method in methods:
            raise ValueError(f"{route.method} {route.path} is routed twice")
        methods[route.method] = route
    table: list[BaseRoute] = [
        # The route template labels the metrics (never the path, which holds ids).
        Route(PREFIX + path, observe_route(PREFIX + path, _Path(face, methods, PREFIX + path)))
        for path, methods in paths.items()
    ]
    table.append(_health(face))

    async def unknown(scope: Scope, receive: Receive, send: Send) -> None:
        face.requests += 1
        await _not_found(Request(scope, receive))(scope, receive, send)

    return Router(table, redirect_slashes=False, default=unknown)


__all__ = ["PREFIX", "build_app"]

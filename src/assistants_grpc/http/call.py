"""One HTTP call on its way through the face: admitted, parsed, answered.

`Face.handle` is to the HTTP face what `api/errors.py`'s wrappers are to gRPC, the one place
every call passes: a JSON body over the size limit is refused unread (413, as gRPC refuses a
message over its limit before anyone sees it; a file upload has the FileService's limits),
then the Guard admits the caller (401 without a valid key, 429 past the key's rate: an
anonymous caller learns nothing more), then the `OpenAI-Beta` header is checked, and the
route's handler gets a `Call`: the caller, the path ids, the parsed request, and the ways to
answer (a rendered object, or a stream). Every error becomes OpenAI's envelope there, with the
request id every answer carries (`x-request-id`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.openai_json import render
from assistants_grpc.http import requests
from assistants_grpc.http.errors import HttpError, error_response, too_large
from assistants_grpc.http.streaming import RunEvents, Streams
from assistants_grpc.services.bundle import Services
from assistants_grpc.services.errors import ServiceError, describe

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[["Call"], Awaitable[ASGIApp]]

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def new_request_id() -> str:
    """OpenAI's form: `req_` and 32 hex digits."""
    return "req_" + os.urandom(16).hex()


class Call:
    """What a route's handler works with."""

    __slots__ = ("_body", "_face", "caller", "headers", "path", "request", "stream")

    def __init__(
        self, face: Face, request: Request, caller: Caller, body: Any, headers: dict[str, str]
    ) -> None:
        self._face = face
        self.request = request
        self.caller = caller
        self.path: Mapping[str, str] = request.path_params
        # Whether the body asked for a stream (`"stream": true`); read by `parse`.
        self.stream = False
        self._body = body
        # The answer's headers: the request id, and whatever the handler adds.
        self.headers = headers

    @property
    def project(self) -> str:
        return self.caller.project

    @property
    def services(self) -> Services:
        return self._face.services

    def parse(
        self, message_type: type[M], *, query: frozenset[str] = frozenset(), stream: bool = False
    ) -> M:
        """The request proto of this call: the body, the `query` parameters and the path ids;
        with `stream`, the body's `"stream"` decides `self.stream`."""
        body = self._body
        if stream:
            self.stream = requests.stream_flag(body)
        values = requests.query_values(self.request, message_type, query) if query else {}
        if not query and self.request.query_params:
            name = next(iter(self.request.query_params))
            raise HttpError(400, f"Unrecognized query parameter: {name}", param=name)
        return requests.build(message_type, body, self.path, values, frozenset(self.path) | query)

    def respond(self, message: Message) -> Response:
        """The object as OpenAI's JSON."""
        content = json.dumps(render(message), separators=(",", ":"), ensure_ascii=False)
        return Response(content.encode(), headers=self.headers, media_type="application/json")

    async def event_stream(self, start: Callable[[], Awaitable[RunEvents]]) -> ASGIApp:
        """The events of the stream `start` opens, as SSE (errors before the first event
        raise here and are ordinary HTTP errors)."""
        return await self._face.streams.open(self.caller, start, self.headers)


class Face:
    """What every call of one HTTP face shares: the services, the Guard, the limits."""

    def __init__(
        self, services: Services, guard: Guard, streams: Streams, *, max_request_bytes: int
    ) -> None:
        self.services = services
        self.guard = guard
        self.streams = streams
        self.max_request_bytes = max_request_bytes
        self.serving = False
        # Requests received under /v1 (routed or not): what tests count, e.g. that a conflict
        # is answered once and not retried by the SDK.
        self.requests = 0

    async def handle(
        self, request: Request, handler: Handler, *, own_body: bool = False
    ) -> ASGIApp:
        """Answer one call; with `own_body` the handler reads the body (an upload, within its
        own limits), otherwise it is read here as JSON within --max-request-bytes."""
        method = request.method
        headers = {"x-request-id": new_request_id()}
        reads_json = method in _BODY_METHODS and not own_body
        try:
            raw = request.scope["headers"]
            call_headers = requests.request_headers(raw)
            length = call_headers.get("content-length")
            if (
                reads_json
                and length is not None
                and length.isdigit()
                and int(length) > self.max_request_bytes
            ):
                raise too_large(self.max_request_bytes)
            caller = await self.guard.admit(call_headers)
            requests.check_beta(call_headers)
            body = await requests.read_json(request, self.max_request_bytes) if reads_json else None
            return await handler(Call(self, request, caller, body, headers))
        except HttpError as error:
            return error_response(error, method, headers)
        except ServiceError as error:
            return error_response(error.describe(), method, headers)
        except Exception as error:
            log.exception("unexpected error in %s %s", method, request.url.path)
            return error_response(describe(error), method, headers)


__all__ = ["Call", "Face", "Handler", "new_request_id"]

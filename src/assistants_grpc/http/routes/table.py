"""One row of the route table."""

from __future__ import annotations

from dataclasses import dataclass

from assistants_grpc.http.call import Handler


@dataclass(frozen=True)
class Route:
    method: str
    # Under /v1, with Starlette's `{name}` parameters.
    path: str
    # OpenAI's operationId for it (openapi.yaml).
    operation: str
    handler: Handler
    # The handler reads the body itself (a multipart upload, within its own limits) instead of
    # the face reading it as JSON within --max-request-bytes.
    own_body: bool = False


__all__ = ["Route"]

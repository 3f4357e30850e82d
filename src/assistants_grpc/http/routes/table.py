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


__all__ = ["Route"]

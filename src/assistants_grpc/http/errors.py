"""Every error the HTTP face answers, in OpenAI's envelope: `{"error": {message, type, param,
code}}` with the status the official `openai` SDK expects.

Service errors arrive as their transport-neutral description (`services.errors.describe`) and
get their status from one table keyed by the code. The face's own refusals (an unknown route, a
body over the size limit, JSON that does not parse, the v1 beta header) are `HttpError`s with
OpenAI's own wording. Two choices matter to the SDK, which retries 408, 409, 429 and every 5xx:

- FAILED_PRECONDITION (a run already active, outputs when none are awaited) is 400, as OpenAI
  answered it. A 409 would make the SDK send the same create twice more.
- A 5xx to a POST or DELETE carries `x-should-retry: false`: a create that failed after its
  write must not be sent again and start a second run. GETs stay retryable.

Anything that is not a ServiceError is logged with its trace by the caller and reaches the
client only as a bare 500 "server_error".
"""

from __future__ import annotations

import json
from typing import Final

from starlette.responses import Response

from assistants_grpc.services.errors import ErrorCode, ErrorDescription

# The status of each service error code. RESOURCE_EXHAUSTED is a rate or stream limit here (a
# body past the size limit is the face's own 413, refused before any service sees it).
STATUS: Final[dict[ErrorCode, int]] = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.FAILED_PRECONDITION: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

# OpenAI's `type` and `code` for each (`code` null where OpenAI sent null: unknown ids and state
# conflicts, CONTRACT.md §10).
_TYPE_AND_CODE: Final[dict[ErrorCode, tuple[str, str | None]]] = {
    ErrorCode.NOT_FOUND: ("invalid_request_error", None),
    ErrorCode.INVALID_ARGUMENT: ("invalid_request_error", "invalid_value"),
    ErrorCode.FAILED_PRECONDITION: ("invalid_request_error", None),
    ErrorCode.UNAUTHENTICATED: ("invalid_request_error", "invalid_api_key"),
    ErrorCode.RESOURCE_EXHAUSTED: ("requests", "rate_limit_exceeded"),
    ErrorCode.UNAVAILABLE: ("server_error", "service_unavailable"),
    ErrorCode.INTERNAL: ("server_error", None),
}

# Refusals whose code alone would mislead the SDK: a File past the size limit or its project's
# quota is RESOURCE_EXHAUSTED like a rate, but a 429 would be retried to the same answer. Keyed
# by the description's reason; each gives the status, `type` and `code`.
_BY_REASON: Final[dict[str, tuple[int, str, str]]] = {
    "FILETOOLARGE": (413, "invalid_request_error", "file_too_large"),
    "FILEQUOTA": (400, "invalid_request_error", "storage_quota_exceeded"),
}

# An error message echoes what was sent (an id, a field name): a hostile megabyte of it must
# not come back. Budgets are in characters.
_MAX_MESSAGE: Final = 1000
_MAX_PARAM: Final = 200

BETA_V1: Final = (
    "The v1 Assistants API has been deprecated. Please try again by setting the header "
    "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
    "https://platform.openai.com/docs/assistants/migration."
)
BAD_JSON: Final = (
    "We could not parse the JSON body of your request. The API expects a JSON object as the "
    "body, and what was sent was not valid JSON."
)


class HttpError(Exception):
    """A refusal of the face itself, before any service is called."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_


def unknown_route(method: str, path: str) -> HttpError:
    """OpenAI's answer to a route it does not have: 404, never 405 or 501 (the SDK retries
    a 501 as a server error)."""
    return HttpError(404, f"Invalid URL ({method} {clip(path, _MAX_PARAM)})")


def too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        f"The request body is larger than the limit of {limit} bytes (--max-request-bytes).",
        code="request_too_large",
    )


def clip(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[: budget - 1] + "…"


def envelope(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, object]:
    """The OpenAI error object, as a body and as a stream's `error` event carry it."""
    return {
        "error": {
            "message": clip(message, _MAX_MESSAGE),
            "type": type_,
            "param": clip(param, _MAX_PARAM) if param is not None else None,
            "code": code,
        }
    }


def described_envelope(described: ErrorDescription) -> dict[str, object]:
    type_, code = _type_and_code(described)
    return envelope(described.message, type_, described.param, code)


def _type_and_code(described: ErrorDescription) -> tuple[str, str | None]:
    special = _BY_REASON.get(described.reason)
    return special[1:] if special is not None else _TYPE_AND_CODE[described.code]


def status_of(described: ErrorDescription) -> int:
    special = _BY_REASON.get(described.reason)
    return special[0] if special is not None else STATUS[described.code]


def error_response(
    error: HttpError | ErrorDescription, method: str, headers: dict[str, str]
) -> Response:
    """The response for a refused request; `headers` already holds the request id."""
    if isinstance(error, HttpError):
        status = error.status
        body = envelope(error.message, error.type, error.param, error.code)
    else:
        status = status_of(error)
        body = described_envelope(error)
        if error.retry_after is not None:
            # What the SDK waits before its retry (it prefers the milliseconds form).
            milliseconds = max(1, round(error.retry_after * 1000))
            headers["retry-after-ms"] = str(milliseconds)
            headers["retry-after"] = str(max(1, round(error.retry_after)))
    if status >= 500 and method in ("POST", "DELETE"):
        headers["x-should-retry"] = "false"
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


__all__ = [
    "BAD_JSON",
    "BETA_V1",
    "STATUS",
    "HttpError",
    "described_envelope",
    "envelope",
    "error_response",
    "status_of",
    "too_large",
    "unknown_route",
]

"""Service errors described once, in no transport's terms, and the gRPC status made of that;
an HTTP face's mapping is a table keyed by the code (issue 12), shown here on the same
descriptions."""

from __future__ import annotations

import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from assistants_grpc.api.errors import to_status
from assistants_grpc.services.errors import (
    INTERNAL_MESSAGE,
    ErrorCode,
    ErrorDescription,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ServiceError,
    UnauthenticatedError,
    UnavailableError,
    describe,
)

# What an HTTP face answers, OpenAI's way: FAILED_PRECONDITION is a 400, never a 409 (which
# the SDK retries). A body over the size limit is the face's own 413, refused before parsing,
# as gRPC refuses a message over its limit before any service sees it.
HTTP_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.FAILED_PRECONDITION: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


def _openai_error(described: ErrorDescription) -> tuple[int, dict[str, object]]:
    body = {
        "message": described.message,
        "type": "invalid_request_error" if described.code.value != "INTERNAL" else "server_error",
        "param": described.param,
        "code": described.reason.lower(),
    }
    return HTTP_STATUS[described.code], {"error": body}


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (NotFoundError("thread", "thread_x"), ErrorCode.NOT_FOUND, "NOTFOUND"),
        (
            InvalidArgumentError.single("model", "is required."),
            ErrorCode.INVALID_ARGUMENT,
            "INVALIDARGUMENT",
        ),
        (FailedPreconditionError("busy"), ErrorCode.FAILED_PRECONDITION, "FAILEDPRECONDITION"),
        (ResourceExhaustedError("slow down"), ErrorCode.RESOURCE_EXHAUSTED, "RESOURCEEXHAUSTED"),
        (UnauthenticatedError("Invalid API key."), ErrorCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (UnavailableError("stopping"), ErrorCode.UNAVAILABLE, "UNAVAILABLE"),
    ],
)
def test_every_service_error_describes_itself(
    error: ServiceError, code: ErrorCode, reason: str
) -> None:
    described = describe(error)
    assert (described.code, described.reason, described.message) == (code, reason, error.message)
    # gRPC: the code of the same name, the reason in ErrorInfo.
    status = rpc_status.to_status(_status_proto(error))
    assert status.code.name == code.value
    assert HTTP_STATUS[code] in (400, 401, 404, 429, 503)


def _status_proto(error: ServiceError) -> status_pb2.Status:
    status = to_status(error)
    trailers = dict(status.trailing_metadata)
    return status_pb2.Status.FromString(trailers["grpc-status-details-bin"])


def test_violations_and_retry_after_reach_both_faces() -> None:
    invalid = InvalidArgumentError(
        [FieldViolation("tools[0].function.name", "is required."), FieldViolation("model", "x")]
    )
    described = describe(invalid)
    assert described.param == "tools[0].function.name"
    assert [v.field for v in described.violations] == ["tools[0].function.name", "model"]
    status = _status_proto(invalid)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["tools[0].function.name", "model"]
    assert _openai_error(described) == (
        400,
        {
            "error": {
                "message": "Invalid 'tools[0].function.name': is required. (and 1 more)",
                "type": "invalid_request_error",
                "param": "tools[0].function.name",
                "code": "invalidargument",
            }
        },
    )

    limited = describe(ResourceExhaustedError("Rate limit reached.", retry_after=0.25))
    assert (limited.retry_after, limited.param) == (0.25, None)
    retry = error_details_pb2.RetryInfo()
    assert _status_proto(ResourceExhaustedError("x", retry_after=0.25)).details[0].Unpack(retry)
    assert retry.retry_delay.ToNanoseconds() == 250_000_000
    assert _openai_error(limited)[0] == 429


def test_anything_else_is_a_bare_internal() -> None:
    described = describe(KeyError("the secret row"))
    assert described == ErrorDescription(ErrorCode.INTERNAL, "INTERNAL", INTERNAL_MESSAGE)
    assert "secret" not in described.message

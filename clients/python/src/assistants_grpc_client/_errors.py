"""The exceptions the client raises: one class per gRPC code, under `AssistantsError`.

A failed call becomes the class of its status code, carrying the code, the server's message, the
field violations of a `google.rpc.BadRequest` and the `google.rpc.ErrorInfo`, so callers can
`except NotFoundError` instead of comparing codes on a `grpc.RpcError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from assistants_grpc_client._status import ErrorInfo, FieldViolation, details_from_metadata

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AssistantsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "StreamEndedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "from_rpc_error",
]


class AssistantsError(Exception):
    """Base class of every error of this package.

    `code` is the gRPC status code (a `grpc.StatusCode`), or None for errors the client itself
    raises (a tool that failed, a stream that ended early).
    """

    def __init__(
        self,
        message: str,
        *,
        code: Any = None,
        field_violations: Sequence[FieldViolation] = (),
        error_info: ErrorInfo | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field_violations = tuple(field_violations)
        self.error_info = error_info

    def __str__(self) -> str:
        text = self.message
        if self.code is not None:
            text = f"{self.code.name}: {text}"
        # The server's message usually names the field already; add those it does not name.
        unnamed = [v for v in self.field_violations if v.field not in self.message]
        if unnamed:
            fields = "; ".join(f"{v.field}: {v.description}" for v in unnamed)
            text = f"{text} ({fields})"
        return text


class InvalidArgumentError(AssistantsError):
    """The request broke the schema; `field_violations` names each field."""


class NotFoundError(AssistantsError):
    """An id is unknown (or belongs to another parent)."""


class AlreadyExistsError(AssistantsError):
    pass


class FailedPreconditionError(AssistantsError):
    """The state forbids it: a run active on the thread, outputs when none are awaited..."""


class PermissionDeniedError(AssistantsError):
    pass


class UnauthenticatedError(AssistantsError):
    """The API key is missing, malformed, unknown or revoked."""


class ResourceExhaustedError(AssistantsError):
    """A rate or size limit was reached."""


class UnavailableError(AssistantsError):
    """The server is unreachable or shutting down; reads were already retried."""


class DeadlineExceededError(AssistantsError):
    pass


class AbortedError(AssistantsError):
    pass


class UnimplementedError(AssistantsError):
    pass


class InternalError(AssistantsError):
    pass


class StreamEndedError(AssistantsError):
    """A stream ended before it said what the caller asked for (no run in it, say)."""


def _by_code() -> dict[Any, type[AssistantsError]]:
    codes = grpc.StatusCode
    return {
        codes.INVALID_ARGUMENT: InvalidArgumentError,
        codes.NOT_FOUND: NotFoundError,
        codes.ALREADY_EXISTS: AlreadyExistsError,
        codes.FAILED_PRECONDITION: FailedPreconditionError,
        codes.PERMISSION_DENIED: PermissionDeniedError,
        codes.UNAUTHENTICATED: UnauthenticatedError,
        codes.RESOURCE_EXHAUSTED: ResourceExhaustedError,
        codes.UNAVAILABLE: UnavailableError,
        codes.DEADLINE_EXCEEDED: DeadlineExceededError,
        codes.ABORTED: AbortedError,
        codes.UNIMPLEMENTED: UnimplementedError,
        codes.INTERNAL: InternalError,
    }


_BY_CODE = _by_code()


def from_rpc_error(error: Any) -> AssistantsError:
    """The exception for a failed call (a sync `grpc.RpcError` or a `grpc.aio.AioRpcError`)."""
    code = _call(error, "code") or grpc.StatusCode.UNKNOWN
    message = _call(error, "details") or str(error)
    details = details_from_metadata(_call(error, "trailing_metadata"))
    kind = _BY_CODE.get(code, AssistantsError)
    return kind(
        details.message if details is not None and details.message else message,
        code=code,
        field_violations=details.field_violations if details is not None else (),
        error_info=details.error_info if details is not None else None,
    )


def _call(error: Any, method: str) -> Any:
    # Every RpcError the channels raise is also a grpc.Call with these methods, but the base class
    # promises none of them.
    function = getattr(error, method, None)
    return function() if callable(function) else None

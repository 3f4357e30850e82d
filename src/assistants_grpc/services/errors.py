"""Domain errors, and what each one says in words no transport owns.

Services raise these. `describe` turns any of them (or anything unexpected) into an
`ErrorDescription`: a code named like gRPC's, the machine-readable reason, a message safe to
show, the fields at fault and how long to wait. Each face maps that description once: the gRPC
face to a status with `google.rpc` details (`api/errors.py`), an HTTP face to OpenAI's
`{"error": {message, type, param, code}}` with a status from a small table keyed by the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorCode(enum.StrEnum):
    """What went wrong, in gRPC's words (DESIGN.md "Errors"); each face has its own table."""

    NOT_FOUND = "NOT_FOUND"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNAVAILABLE = "UNAVAILABLE"
    # Anything that is not a ServiceError: a bug, logged where it is caught, never shown.
    INTERNAL = "INTERNAL"


# What the caller of a failure that is not a ServiceError is told: never the exception itself.
INTERNAL_MESSAGE = "internal error; the server log has details"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class ErrorDescription:
    """A refused request as every face reports it."""

    code: ErrorCode
    # The cause for machines (gRPC `ErrorInfo.reason`): the error's class name, e.g. NOTFOUND.
    reason: str
    message: str
    # The request fields at fault, in the order found (INVALID_ARGUMENT only).
    violations: tuple[FieldViolation, ...] = ()
    # Seconds until a retry may succeed, when known (RESOURCE_EXHAUSTED past a rate).
    retry_after: float | None = None

    @property
    def param(self) -> str | None:
        """The first field at fault: what OpenAI's error calls `param`."""
        return self.violations[0].field if self.violations else None


class ServiceError(Exception):
    """A request the service refuses, with a message safe to show the caller."""

    code = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def describe(self) -> ErrorDescription:
        # The reason is the class name, as clients have always read it from ErrorInfo.
        reason = type(self).__name__.removesuffix("Error").upper()
        return ErrorDescription(self.code, reason, self.message)


def describe(error: BaseException) -> ErrorDescription:
    """What a face tells the caller about `error`: a ServiceError as it describes itself,
    anything else as a bare INTERNAL (the face logs the real one)."""
    if isinstance(error, ServiceError):
        return error.describe()
    return ErrorDescription(ErrorCode.INTERNAL, "INTERNAL", INTERNAL_MESSAGE)


class NotFoundError(ServiceError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, kind: str, object_id: str, *, deleted: bool = False) -> None:
        # `deleted`: the object went away while the caller was following it (a stream's thread
        # was deleted), which says more than "no such id" would.
        super().__init__(
            f"The {kind} '{object_id}' was deleted."
            if deleted
            else f"No {kind} found with id '{object_id}'."
        )
        self.kind = kind
        self.object_id = object_id


class InvalidArgumentError(ServiceError):
    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"Invalid '{first.field}': {first.description}{more}")
        self.violations = violations

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgumentError:
        return cls([FieldViolation(field, description)])

    def describe(self) -> ErrorDescription:
        base = super().describe()
        return ErrorDescription(base.code, base.reason, base.message, tuple(self.violations))


class FailedPreconditionError(ServiceError):
    """The request is well formed but the object's state forbids it (CONTRACT.md §10)."""

    code = ErrorCode.FAILED_PRECONDITION


class ResourceExhaustedError(ServiceError):
    """A limit was reached; `retry_after` (seconds), when known, travels as `RetryInfo`."""

    code = ErrorCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def describe(self) -> ErrorDescription:
        base = super().describe()
        return ErrorDescription(base.code, base.reason, base.message, retry_after=self.retry_after)


class FileTooLargeError(ResourceExhaustedError):
    """A File past the size limit (`--max-file-bytes`): no retry helps, unlike a rate."""


class FileQuotaError(ResourceExhaustedError):
    """A File past its project's storage quota (`--max-project-file-bytes`)."""


class UnauthenticatedError(ServiceError):
    """The call carries no valid API key while one is required."""

    code = ErrorCode.UNAUTHENTICATED


class UnavailableError(ServiceError):
    """The server cannot take the request now (it is shutting down); another replica can."""

    code = ErrorCode.UNAVAILABLE


__all__ = [
    "INTERNAL_MESSAGE",
    "ErrorCode",
    "ErrorDescription",
    "FailedPreconditionError",
    "FieldViolation",
    "FileQuotaError",
    "FileTooLargeError",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceExhaustedError",
    "ServiceError",
    "UnauthenticatedError",
    "UnavailableError",
    "describe",
]

"""Domain errors. Services raise these; `api/errors.py` is the one place that maps them to gRPC."""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """A request the service refuses, with a message safe to show the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ServiceError):
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


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgumentError(ServiceError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"Invalid '{first.field}': {first.description}{more}")
        self.violations = violations

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgumentError:
        return cls([FieldViolation(field, description)])


class FailedPreconditionError(ServiceError):
    """The request is well formed but the object's state forbids it (CONTRACT.md §10)."""


class ResourceExhaustedError(ServiceError):
    """A limit was reached; `retry_after` (seconds), when known, travels as `RetryInfo`."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnauthenticatedError(ServiceError):
    """The call carries no valid API key while one is required."""


class UnavailableError(ServiceError):
    pass


__all__ = [
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceExhaustedError",
    "ServiceError",
    "UnauthenticatedError",
    "UnavailableError",
]

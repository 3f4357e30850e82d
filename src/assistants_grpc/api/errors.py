"""The one place domain errors become gRPC statuses, with `google.rpc` details.

Handlers are wrapped by `unary` / `streaming`: a ServiceError aborts with its code and a readable
message (INVALID_ARGUMENT carries a `BadRequest` naming each field); anything unexpected is logged
with its stack trace here and reaches the caller only as a bare INTERNAL, never the trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from assistants_grpc.services.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ServiceError,
    UnavailableError,
)

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")

_CODES: list[tuple[type[ServiceError], int]] = [
    (NotFoundError, code_pb2.NOT_FOUND),
    (InvalidArgumentError, code_pb2.INVALID_ARGUMENT),
    (FailedPreconditionError, code_pb2.FAILED_PRECONDITION),
    (ResourceExhaustedError, code_pb2.RESOURCE_EXHAUSTED),
    (UnavailableError, code_pb2.UNAVAILABLE),
]
_DOMAIN = "assistants-grpc"


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: ServiceError) -> grpc.Status:
    code = next((c for kind, c in _CODES if isinstance(error, kind)), code_pb2.UNKNOWN)
    status = status_pb2.Status(code=code, message=error.message)
    if isinstance(error, InvalidArgumentError):
        status.details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    reason = type(error).__name__.removesuffix("Error").upper()
    status.details.append(_pack(error_details_pb2.ErrorInfo(reason=reason, domain=_DOMAIN)))
    return rpc_status.to_status(status)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    if isinstance(error, ServiceError):
        await context.abort_with_status(to_status(error))
    log.exception("unexpected error in %s", _method(context), exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has details")


def _method(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    try:
        return str(context._rpc_event.call_details.method.decode())
    except Exception:  # the name is only for the log line
        return "rpc"


def unary(
    handler: Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    @functools.wraps(handler)
    async def wrapper(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        try:
            return await handler(self, request, context)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:
            await _abort(context, error)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    handler: Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    @functools.wraps(handler)
    async def wrapper(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            async for item in handler(self, request, context):
                yield item
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:
            await _abort(context, error)

    return wrapper


__all__ = ["streaming", "to_status", "unary"]

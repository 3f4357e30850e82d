"""The one place every RPC of the services passes: the caller is admitted, and domain
errors become gRPC statuses with `google.rpc` details.

Handlers are wrapped by `unary` / `streaming` / `client_streaming`. The wrapper asks the servicer's
`Guard` who is calling (UNAUTHENTICATED without a valid key, RESOURCE_EXHAUSTED past the key's rate
or stream limit), refuses a request that did not parse, and hands the handler the `Caller`, whose
project scopes everything the handler does. The Guard and the error descriptions are
transport-neutral (`auth.guard`, `services.errors.describe`); this module is their gRPC adapter:
metadata become the headers the Guard reads, and a description becomes a status (INVALID_ARGUMENT
carries a `BadRequest` naming each field, RESOURCE_EXHAUSTED a `RetryInfo` when the wait is known,
every error an `ErrorInfo`). Anything unexpected is logged with its stack trace here and reaches the
caller only as a bare INTERNAL, never the trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from assistants_grpc.api.registration import Undecodable
from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.observability import logs
from assistants_grpc.services.errors import (
    ErrorCode,
    ErrorDescription,
    InvalidArgumentError,
    ServiceError,
    describe,
)

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Guarded(Protocol):
    """A servicer: it holds the Guard its calls are admitted by."""

    @property
    def guard(self) -> Guard: ...


S = TypeVar("S", bound=Guarded)

_CODES: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    ErrorCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorCode.INTERNAL: code_pb2.INTERNAL,
}
_DOMAIN = "assistants-grpc"

# A status travels in the trailers, which clients cap (8 KiB by default): a message that echoes
# a hostile value (a 1 MB id) must not make the error itself fail. Budgets are in UTF-8 bytes.
_MAX_MESSAGE = 400
_MAX_FIELD = 120
_MAX_DESCRIPTION = 240
_MAX_VIOLATIONS = 8


def clip(text: str, budget: int) -> str:
    """`text` cut to at most `budget` UTF-8 bytes, on a character boundary, marked with '…'."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= budget:
        return text
    return data[: budget - 3].decode("utf-8", "ignore") + "…"


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _bad_request(error: ErrorDescription) -> error_details_pb2.BadRequest:
    shown = error.violations[:_MAX_VIOLATIONS]
    details = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=clip(v.field, _MAX_FIELD), description=clip(v.description, _MAX_DESCRIPTION)
            )
            for v in shown
        ]
    )
    if len(error.violations) > len(shown):
        details.field_violations.add(
            field="", description=f"{len(error.violations) - len(shown)} more violations."
        )
    return details


def to_status(error: ServiceError | ErrorDescription) -> grpc.Status:
    """The gRPC status of a refused request, with its `google.rpc` details."""
    described = error.describe() if isinstance(error, ServiceError) else error
    status = status_pb2.Status(
        code=_CODES[described.code], message=clip(described.message, _MAX_MESSAGE)
    )
    if described.violations:
        status.details.append(_pack(_bad_request(described)))
    if described.retry_after is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(max(1, int(described.retry_after * 1e9)))
        status.details.append(_pack(info))
    status.details.append(
        _pack(error_details_pb2.ErrorInfo(reason=described.reason, domain=_DOMAIN))
    )
    return rpc_status.to_status(status)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    if isinstance(error, ServiceError):
        await context.abort_with_status(to_status(error))
    log.exception("unexpected error in %s", _method(context), exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, describe(error).message)


def metadata_headers(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """A call's metadata as the headers the Guard reads: lowercase names (gRPC's already are),
    a repeated name's values joined with ", " as HTTP joins repeated fields (RFC 9110 §5.3), so
    two authorization entries read as one malformed one on either face. Binary values (gRPC
    gives them only for `-bin` names, never for authorization) are decoded byte for byte."""
    headers: dict[str, str] = {}
    for name, value in metadata or ():
        text = value if isinstance(value, str) else value.decode("latin-1")
        key = name.lower()
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _method(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The RPC's name for a log line: the one bound for the call (see `_rpc_name`)."""
    return logs.current().get("rpc", "rpc")


_PACKAGE = run_pb2.DESCRIPTOR.package
_RPC_NAMES: dict[tuple[type, str], str] = {}


def _rpc_name(servicer: object, method: str) -> str:
    """`/assistants.v1.RunService/CreateRun` for a handler of a servicer (grpc.aio does not
    tell a handler its method): the service is the generated base class the servicer extends."""
    key = (type(servicer), method)
    name = _RPC_NAMES.get(key)
    if name is None:
        service = next(
            (
                base.__name__.removesuffix("Servicer")
                for base in type(servicer).__mro__
                if base.__module__.endswith("_pb2_grpc")
            ),
            type(servicer).__name__,
        )
        name = _RPC_NAMES[key] = f"/{_PACKAGE}.{service}/{method}"
    return name


async def _admit(
    servicer: Guarded, request: object, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> Caller:
    """Authenticate first (an anonymous caller learns nothing, not even that the request was
    malformed), then refuse a request that did not parse. The call's log fields are bound for
    its task (observability.logs): the RPC, then the project and the ids the request names."""
    logs.bind(rpc=_rpc_name(servicer, method))
    caller = await servicer.guard.admit(metadata_headers(context.invocation_metadata()))
    logs.bind(
        project=caller.project,
        thread_id=getattr(request, "thread_id", None) or None,
        run_id=getattr(request, "run_id", None) or None,
    )
    if isinstance(request, Undecodable):
        raise InvalidArgumentError.single("request", f"cannot be parsed: {request.reason}")
    return caller


def unary(
    handler: Callable[[S, Req, Caller], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    @functools.wraps(handler)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            caller = await _admit(self, request, context, handler.__name__)
            return await handler(self, request, caller)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:
            await _abort(context, error)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    handler: Callable[[S, Req, Caller], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    @functools.wraps(handler)
    async def wrapper(
        self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            caller = await _admit(self, request, context, handler.__name__)
            # The slot is held until the stream ends, however it ends (a client cancel arrives
            # here as CancelledError, which the `with` sees and this `except` does not).
            with self.guard.stream_slot(caller):
                async for item in handler(self, request, caller):
                    yield item
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:
            await _abort(context, error)

    return wrapper


async def _parsed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream's messages; one that did not parse ends it as INVALID_ARGUMENT."""
    async for request in requests:
        if isinstance(request, Undecodable):
            raise InvalidArgumentError.single("request", f"cannot be parsed: {request.reason}")
        yield request


def client_streaming(
    handler: Callable[[S, AsyncIterator[Req], Caller], Awaitable[Resp]],
) -> Callable[[S, AsyncIterator[Req], grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """A client-streaming RPC (UploadFile): the caller is admitted before a message is read,
    holds a stream slot while it sends, and each message that does not parse is refused."""

    @functools.wraps(handler)
    async def wrapper(
        self: S, requests: AsyncIterator[Req], context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        try:
            logs.bind(rpc=_rpc_name(self, handler.__name__))
            caller = await self.guard.admit(metadata_headers(context.invocation_metadata()))
            logs.bind(project=caller.project)
            with self.guard.stream_slot(caller):
                return await handler(self, _parsed(requests), caller)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:
            await _abort(context, error)
            raise  # unreachable: abort raises

    return wrapper


__all__ = [
    "Guarded",
    "client_streaming",
    "clip",
    "metadata_headers",
    "streaming",
    "to_status",
    "unary",
]

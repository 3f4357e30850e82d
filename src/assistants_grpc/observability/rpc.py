"""The gRPC face's interceptor: per method, calls by status code, their duration and the server
streams open (metrics.py), and a span per call that joins the caller's W3C `traceparent`
(tracing.py). The face installs it only when one of the two is on (`interceptors()`).

Each method's handler is wrapped once and kept: a call costs two clock reads, one histogram
observation and one counter increment (the label children are looked up once too).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from assistants_grpc.observability import metrics as metrics_module
from assistants_grpc.observability import tracing

__all__ = ["RpcInterceptor", "interceptors"]

_OK = "OK"


def interceptors() -> list[grpc.aio.ServerInterceptor]:
    """What the gRPC server is built with: the interceptor when metrics or traces are on."""
    if metrics_module.active() is None and tracing.tracer() is None:
        return []
    return [RpcInterceptor()]


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The call's status code name: the one set (abort, set_code), else from how it ended."""
    code = context.code()
    if code is not None:
        return _CODE_NAMES.get(code, "UNKNOWN")
    if error is None:
        return _OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return "UNKNOWN"


# What `context.code()` may hold (a StatusCode, or its number), by name.
_CODE_NAMES: dict[object, str] = {
    **{status: str(status.name) for status in grpc.StatusCode},
    **{status.value[0]: str(status.name) for status in grpc.StatusCode},
}


class _Recorder:
    """One method's metric children, and how a finished call is recorded."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.metrics = metrics_module.active()
        self._codes: dict[str, Any] = {}
        if self.metrics is not None:
            self.duration = self.metrics.rpc_duration.labels(method)
            self.streams = self.metrics.rpc_streams.labels(method)

    def done(self, code: str, seconds: float) -> None:
        if self.metrics is None:
            return
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self.metrics.rpc_requests.labels(self.method, code)
        counter.inc()
        self.duration.observe(seconds)


class RpcInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        # method -> (the handler registered, its wrapper)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = _wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


# The one attribute every call's span carries (its name is the method): each one costs.
_RPC_ATTRIBUTES = {"rpc.system": "grpc"}


def _span(method: str, context: grpc.aio.ServicerContext) -> tracing.ServerSpan | None:
    if tracing.tracer() is None:
        return None
    parent = tracing.context_from_headers(context.invocation_metadata() or ())
    return tracing.open_server_span(method.lstrip("/"), parent, _RPC_ATTRIBUTES)


def _end_span(span: tracing.ServerSpan, code: str) -> None:
    span.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS[code])
    tracing.close_span(span, None if code in (_OK, "CANCELLED") else code)


_CODE_NUMBERS = {str(status.name): int(status.value[0]) for status in grpc.StatusCode}


def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    recorder = _Recorder(method)
    if handler.unary_unary is not None:
        wrapped = handler._replace(unary_unary=_unary(handler.unary_unary, method, recorder))
    elif handler.unary_stream is not None:
        behavior = handler.unary_stream
        wrapped = handler._replace(
            unary_stream=_streaming(behavior, method, recorder)
            if inspect.isasyncgenfunction(behavior)
            else _unary(behavior, method, recorder, stream=True)
        )
    elif handler.stream_unary is not None:
        wrapped = handler._replace(stream_unary=_unary(handler.stream_unary, method, recorder))
    elif handler.stream_stream is not None:
        behavior = handler.stream_stream
        wrapped = handler._replace(
            stream_stream=_streaming(behavior, method, recorder)
            if inspect.isasyncgenfunction(behavior)
            else _unary(behavior, method, recorder, stream=True)
        )
    else:
        return handler
    return wrapped


def _unary(
    behavior: Callable[..., Awaitable[Any]],
    method: str,
    recorder: _Recorder,
    *,
    stream: bool = False,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        span = _span(method, context)
        if stream and recorder.metrics is not None:
            recorder.streams.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            code = _code_of(context, error)
            recorder.done(code, time.perf_counter() - started)
            if stream and recorder.metrics is not None:
                recorder.streams.dec()
            if span is not None:
                _end_span(span, code)

    return call


def _streaming(
    behavior: Callable[..., AsyncIterator[Any]], method: str, recorder: _Recorder
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        span = _span(method, context)
        if recorder.metrics is not None:
            recorder.streams.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as raised:
            error = raised
            raise
        finally:
            code = _code_of(context, error)
            recorder.done(code, time.perf_counter() - started)
            if recorder.metrics is not None:
                recorder.streams.dec()
            if span is not None:
                _end_span(span, code)

    return call

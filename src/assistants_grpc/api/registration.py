"""Registering the servicers so that a request that does not parse is INVALID_ARGUMENT.

grpc answers a request its deserializer cannot parse (invalid UTF-8 in a string field, corrupt
wire data, nesting past protobuf's depth limit) with UNKNOWN, as if the server had failed. Here
the generated registration function hands its method handlers to a stand-in, their deserializers
are wrapped to return an `Undecodable` instead of raising, and `api/errors.py` turns that into
INVALID_ARGUMENT after authenticating the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError


class Undecodable:
    """Stands in for a request that could not be parsed; says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as error:
            return Undecodable(str(error))

    return parse


class _Capture:
    """Just enough of a grpc.Server for a generated `add_*Servicer_to_server` to talk to."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service = service
        self.handlers = handlers


def add_servicer(
    server: grpc.aio.Server, add_to_server: Callable[[Any, Any], None], servicer: object
) -> None:
    """Register `servicer` through its generated `add_to_server`, with tolerant parsing."""
    capture = _Capture()
    add_to_server(servicer, capture)
    if not capture.handlers:
        raise RuntimeError(f"{add_to_server.__name__} registered no method handlers")
    handlers = {
        name: cast(Any, handler)._replace(
            request_deserializer=_tolerant(handler.request_deserializer)
        )
        for name, handler in capture.handlers.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(capture.service, handlers),)
    )
    server.add_registered_method_handlers(capture.service, handlers)


__all__ = ["Undecodable", "add_servicer"]

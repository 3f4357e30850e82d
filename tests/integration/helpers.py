"""Small helpers the integration tests share: building requests and reading rich errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assistants_grpc.contract.pb import common_pb2, message_pb2


def text_input(text: str, role: int = message_pb2.MESSAGE_ROLE_USER) -> message_pb2.MessageInput:
    return message_pb2.MessageInput(role=role, content=[message_pb2.MessageContentInput(text=text)])


def function_tool(name: str, **parameters: Any) -> common_pb2.Tool:
    tool = common_pb2.Tool(function=common_pb2.FunctionDefinition(name=name))
    if parameters:
        tool.function.parameters.update(parameters)
    return tool


async def expect_error(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """The field names of the BadRequest detail of an INVALID_ARGUMENT."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no rich status attached"
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields

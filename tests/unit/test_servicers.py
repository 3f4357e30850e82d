"""Every RPC of the contract has a handler: none falls back to the generated UNIMPLEMENTED."""

from __future__ import annotations

import pytest

from assistants_grpc.api.files import FileServicer
from assistants_grpc.api.runs import RunServicer
from assistants_grpc.api.servicers import AssistantServicer, MessageServicer, ThreadServicer
from assistants_grpc.contract.pb import assistant_pb2, file_pb2, message_pb2, run_pb2, thread_pb2


@pytest.mark.parametrize(
    ("servicer", "module", "service"),
    [
        (AssistantServicer, assistant_pb2, "AssistantService"),
        (ThreadServicer, thread_pb2, "ThreadService"),
        (MessageServicer, message_pb2, "MessageService"),
        (RunServicer, run_pb2, "RunService"),
        (FileServicer, file_pb2, "FileService"),
    ],
)
def test_every_rpc_is_implemented(servicer: type, module: object, service: str) -> None:
    descriptor = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
    assert [m.name for m in descriptor.methods if m.name not in vars(servicer)] == []

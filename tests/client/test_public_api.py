"""The package's public names: a change here is a change to what users import."""

from __future__ import annotations

import assistants_grpc_client
from assistants_grpc_client import v1

PUBLIC = {
    "AbortedError",
    "AlreadyExistsError",
    "AssistantsError",
    "AsyncClient",
    "AsyncCursorPage",
    "AsyncPaginator",
    "AsyncRunStream",
    "AsyncToolRunStream",
    "Client",
    "DeadlineExceededError",
    "ErrorInfo",
    "FailedPreconditionError",
    "FieldViolation",
    "FunctionTool",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RunStream",
    "StreamEndedError",
    "SyncCursorPage",
    "ToolCallError",
    "ToolRunResult",
    "ToolRunStream",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "function_tool",
}


def test_public_names_are_pinned() -> None:
    assert set(assistants_grpc_client.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(assistants_grpc_client, name) is not None


def test_public_names_come_from_private_modules() -> None:
    for name in PUBLIC:
        module = getattr(assistants_grpc_client, name).__module__
        assert module.startswith("assistants_grpc_client._"), (name, module)


def test_errors_share_one_base() -> None:
    errors = [n for n in PUBLIC if n.endswith("Error") and n != "AssistantsError"]
    for name in errors:
        assert issubclass(
            getattr(assistants_grpc_client, name), assistants_grpc_client.AssistantsError
        )


def test_generated_modules_stay_under_v1() -> None:
    assert set(v1.__all__) == {
        "assistant_pb2",
        "assistant_pb2_grpc",
        "common_pb2",
        "file_pb2",
        "file_pb2_grpc",
        "message_pb2",
        "message_pb2_grpc",
        "run_pb2",
        "run_pb2_grpc",
        "thread_pb2",
        "thread_pb2_grpc",
        "vector_store_pb2",
        "vector_store_pb2_grpc",
    }


def test_the_client_package_does_not_import_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys, assistants_grpc_client; "
        "assert not any(m.startswith('assistants_grpc.') or m == 'assistants_grpc' "
        "for m in sys.modules), 'server imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

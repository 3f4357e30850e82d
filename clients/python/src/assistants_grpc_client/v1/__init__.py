"""The generated messages (`*_pb2`) and gRPC stubs (`*_pb2_grpc`) of the `assistants.v1` package."""

from assistants_grpc_client._gen.assistants.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    common_pb2,
    file_pb2,
    file_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
    vector_store_pb2,
    vector_store_pb2_grpc,
)

__all__ = [
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
]

"""The generated `assistants.v1` messages, imported from the client package where they live once."""

from assistants_grpc_client.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    common_pb2,
    message_pb2,
    message_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)

__all__ = [
    "assistant_pb2",
    "assistant_pb2_grpc",
    "common_pb2",
    "message_pb2",
    "message_pb2_grpc",
    "run_pb2",
    "run_pb2_grpc",
    "thread_pb2",
    "thread_pb2_grpc",
]

"""What the vector-store tests share: Files made through the server's storage, stubs, and
waiting for ingestion to end."""

from __future__ import annotations

import asyncio
import time

from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.contract.pb import vector_store_pb2_grpc
from tests.conftest import RunningServer


def stores(running: RunningServer) -> vector_store_pb2_grpc.VectorStoreServiceStub:
    return vector_store_pb2_grpc.VectorStoreServiceStub(running.stubs.channel)


async def make_file(
    running: RunningServer, filename: str, data: bytes, project: str = "default"
) -> str:
    files = running.server.files
    assert files is not None
    file = await files.storage.create_from_bytes(project, filename, data, "assistants")
    return file.id


async def wait_ingested(
    running: RunningServer, store_id: str, timeout: float = 60.0
) -> V.VectorStore:
    """The store once none of its files is in progress (by events, with a generous bound)."""
    stub = stores(running)
    deadline = time.monotonic() + timeout
    while True:
        store = await stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store_id))
        if store.file_counts.in_progress == 0:
            return store
        assert time.monotonic() < deadline, f"ingestion of {store_id} did not end: {store}"
        await asyncio.sleep(0.05)

"""What the vector-store tests share: Files made through the server's storage, stubs, waiting
for ingestion to end, and a store's rows written straight into a database."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Connection

from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.contract.pb import vector_store_pb2_grpc
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
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


def insert_store_of_one_file(
    connection: Connection,
    store_id: str,
    file_id: str,
    filename: str,
    *,
    embedding_model: str | None = None,
) -> None:
    """A vector store of one completed file, its rows written straight into the database (no
    server, no File, no chunks: the caller writes those), for tests of the search itself."""
    repo.insert_row(
        connection,
        vs.VECTOR_STORES,
        {"id": store_id, "project": "default", "created_at": 1, "name": "", "metadata": {},
         "last_active_at": 1, "version": 0, "embedding_model": embedding_model},
    )  # fmt: skip
    repo.insert_row(
        connection,
        vs.VECTOR_STORE_FILES,
        {"id": file_id, "vector_store_id": store_id, "created_at": 1, "filename": filename,
         "status": "completed", "usage_bytes": 0, "chunk_max_tokens": 800,
         "chunk_overlap_tokens": 400, "attributes": {}, "attempts": 0},
    )  # fmt: skip

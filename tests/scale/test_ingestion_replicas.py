"""A replica SIGKILLed in the middle of ingesting a file: its lease lapses, another replica
takes the file over, starts it again and finishes it, exactly once (every chunk once, in
order, the file completed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import create_engine, text

from assistants_grpc.clock import SystemClock
from assistants_grpc.contract.pb import common_pb2, vector_store_pb2_grpc
from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.engine.tokens import COUNTING_ENCODING, TokenCounter
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.files.chunking import chunk_text
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import random_id
from assistants_grpc.store.database import Database, normalize_url
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.scale.replicas import Replica, start_replica

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="multi-replica tests need PostgreSQL (ASSISTANTS_TEST_DATABASE_URL)"
)

TEXT = " ".join(f"term{i % 7919} alpha{i % 13}" for i in range(300_000))


@pytest.fixture
async def pair() -> AsyncIterator[list[Replica]]:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL)
    started: list[Replica] = []
    model = FakeModelServer.start_in_thread()
    try:
        for name in ("a", "b"):
            started.append(start_replica(name, POSTGRES_URL, model.base_url))
        yield started
    finally:
        for replica in started:
            await replica.close()
        model.stop()


def _owner_and_chunks(file_id: str) -> tuple[str | None, int]:
    assert POSTGRES_URL
    engine = create_engine(normalize_url(POSTGRES_URL))
    try:
        with engine.connect() as connection:
            owner = connection.execute(
                text("SELECT lease_owner FROM vector_store_files WHERE id = :f"), {"f": file_id}
            ).scalar()
            count = connection.execute(
                text("SELECT count(*) FROM vector_store_chunks WHERE file_id = :f"), {"f": file_id}
            ).scalar()
        return owner, int(count or 0)
    finally:
        engine.dispose()


@pytest.mark.timeout(240)
async def test_a_killed_replicas_file_finishes_elsewhere_exactly_once(pair: list[Replica]) -> None:
    assert POSTGRES_URL
    database = Database(POSTGRES_URL)
    storage = FileStorage.for_database(database, SystemClock(), random_id)
    await storage.start()
    try:
        made = await storage.create_from_bytes("default", "big.txt", TEXT.encode(), "assistants")
    finally:
        storage.close()
        database.dispose()
    stub = vector_store_pb2_grpc.VectorStoreServiceStub(pair[0].stubs.channel)
    store = await stub.CreateVectorStore(V.CreateVectorStoreRequest())
    small = common_pb2.ChunkingStrategy(
        static=common_pb2.StaticChunkingStrategy(max_chunk_size_tokens=100, chunk_overlap_tokens=0)
    )
    await stub.CreateVectorStoreFile(
        V.CreateVectorStoreFileRequest(
            vector_store_id=store.id, file_id=made.id, chunking_strategy=small
        )
    )
    # Wait until some replica has written some chunks, then kill that one.
    deadline = time.monotonic() + 60
    while True:
        owner, chunks = _owner_and_chunks(made.id)
        if owner and chunks:
            break
        assert time.monotonic() < deadline, "ingestion never started"
        await asyncio.sleep(0.02)
    victim = next(r for r in pair if f":{r.process.pid}:" in owner)
    survivor = next(r for r in pair if r is not victim)
    victim.kill()
    expected = chunk_text(TokenCounter().encoding(COUNTING_ENCODING), TEXT, 100, 0)
    assert chunks < len(expected), "the file finished before the kill; make it larger"

    other = vector_store_pb2_grpc.VectorStoreServiceStub(survivor.stubs.channel)
    deadline = time.monotonic() + 120
    while True:
        item = await other.GetVectorStoreFile(
            V.GetVectorStoreFileRequest(vector_store_id=store.id, file_id=made.id)
        )
        if item.status != V.VECTOR_STORE_FILE_STATUS_IN_PROGRESS:
            break
        assert time.monotonic() < deadline, "the file was never taken over"
        await asyncio.sleep(0.1)
    assert item.status == V.VECTOR_STORE_FILE_STATUS_COMPLETED, item
    owner, count = _owner_and_chunks(made.id)
    assert owner is None and count == len(expected)
    engine = create_engine(normalize_url(POSTGRES_URL))
    with engine.connect() as connection:
        seqs = list(
            connection.execute(
                text("SELECT seq FROM vector_store_chunks WHERE file_id = :f ORDER BY seq"),
                {"f": made.id},
            ).scalars()
        )
    engine.dispose()
    assert seqs == list(range(len(expected)))
    found = await other.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=["term7"])
    )
    assert found.data and found.data[0].file_id == made.id

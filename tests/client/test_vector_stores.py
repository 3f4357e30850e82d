"""client.vector_stores (with .files and .file_batches), blocking and asyncio, against a real
server: create_and_poll, search with filters, file attributes, batches, content, errors."""

from __future__ import annotations

import pytest
from assistants_grpc_client import AsyncClient, Client, NotFoundError
from assistants_grpc_client.v1 import vector_store_pb2 as V

from tests.client.conftest import in_thread
from tests.conftest import RunningServer
from tests.integration.vector_helpers import make_file


async def test_blocking_client(client: Client, running: RunningServer) -> None:
    kiwi = await make_file(running, "kiwi.md", b"The kiwi is a flightless bird.")
    tea = await make_file(running, "tea.md", b"Steep green tea at 80 degrees.")

    def work() -> None:
        store = client.vector_stores.create_and_poll(
            name="docs", file_ids=[kiwi], metadata={"k": "v"}, timeout=60, poll_interval=0.05
        )
        assert store.status == V.VECTOR_STORE_STATUS_COMPLETED
        assert store.file_counts.completed == 1
        item = client.vector_stores.files.create_and_poll(
            store.id, file_id=tea, attributes={"topic": "drinks", "year": 2024},
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 200,
                                                            "chunk_overlap_tokens": 100}},
            timeout=60, poll_interval=0.05,
        )  # fmt: skip
        assert item.status == V.VECTOR_STORE_FILE_STATUS_COMPLETED
        assert item.chunking_strategy.static.max_chunk_size_tokens == 200
        found = client.vector_stores.search(store.id, query="flightless bird")
        assert found.data[0].file_id == kiwi
        only = client.vector_stores.search(
            store.id,
            query=["bird", "tea"],
            filters={"type": "and", "filters": [{"type": "eq", "key": "topic", "value": "drinks"},
                                                {"type": "gte", "key": "year", "value": 2000}]},
        )  # fmt: skip
        assert {r.file_id for r in only.data} == {tea}
        files = list(client.vector_stores.files.list(store.id, filter="completed"))
        assert {f.id for f in files} == {kiwi, tea}
        text = client.vector_stores.files.content(store.id, kiwi)
        assert text.data[0].text == "The kiwi is a flightless bird."
        updated = client.vector_stores.files.update(store.id, tea, attributes={"x": True})
        assert updated.attributes["x"].bool_value is True
        batch = client.vector_stores.file_batches.create_and_poll(
            store.id, file_ids=[kiwi], timeout=60, poll_interval=0.05
        )
        assert batch.status == V.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED
        assert [f.id for f in client.vector_stores.file_batches.list_files(store.id, batch.id)] == [
            kiwi
        ]
        renamed = client.vector_stores.update(
            store.id, name="renamed", expires_after={"anchor": "last_active_at", "days": 3}
        )
        assert renamed.name == "renamed" and renamed.expires_after.days == 3
        assert store.id in {s.id for s in client.vector_stores.list()}
        assert client.vector_stores.files.delete(store.id, tea).deleted
        assert client.vector_stores.delete(store.id).deleted
        with pytest.raises(NotFoundError):
            client.vector_stores.retrieve(store.id)
        again = client.vector_stores.create(name="uploads")
        uploaded = client.vector_stores.files.upload_and_poll(
            again.id, file=b"Otters hold hands while they sleep.", filename="otters.txt",
            timeout=60, poll_interval=0.05,
        )  # fmt: skip
        assert uploaded.status == V.VECTOR_STORE_FILE_STATUS_COMPLETED
        batch = client.vector_stores.file_batches.upload_and_poll(
            again.id, files=[("owls.md", b"about owls"), ("bats.md", b"about bats")], timeout=60,
            poll_interval=0.05,
        )  # fmt: skip
        assert batch.file_counts.completed == 2

    await in_thread(work)


async def test_asyncio_client(aclient: AsyncClient, running: RunningServer) -> None:
    kiwi = await make_file(running, "kiwi.md", b"The kiwi is a flightless bird.")
    store = await aclient.vector_stores.create_and_poll(
        file_ids=[kiwi], timeout=60, poll_interval=0.05
    )
    assert store.file_counts.completed == 1
    found = await aclient.vector_stores.search(store.id, query="bird", max_num_results=1)
    assert len(found.data) == 1 and found.data[0].filename == "kiwi.md"
    files = [f.id async for f in aclient.vector_stores.files.list(store.id)]
    assert files == [kiwi]
    batch = await aclient.vector_stores.file_batches.create(store.id, files=[{"file_id": kiwi}])
    assert (await aclient.vector_stores.file_batches.retrieve(store.id, batch.id)).id == batch.id
    item = await aclient.vector_stores.files.retrieve(store.id, kiwi)
    assert item.vector_store_id == store.id
    await aclient.vector_stores.delete(store.id)

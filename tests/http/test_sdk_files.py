"""Files and vector stores through the official `openai` SDK, async and sync, against the HTTP
face: every method, the upload helpers, auto-paging lists, the SDK's error classes, and the
upload's own limits (multipart streamed to storage, nothing stored unless it all arrives)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from openai.types import FileObject, VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from assistants_grpc.contract.pb import file_pb2, vector_store_pb2_grpc
from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.fake_model import FakeModelServer
from tests.conftest import serving
from tests.http.conftest import HttpServer

MIB = 1024 * 1024
BOUNDARY = "testboundary1234"

ALPHA = b"# Alpha\n\nThe alpha reactor is cooled by liquid sodium and runs at 550 kelvin.\n"
BETA = b"# Beta\n\nBeta gardens grow blue tomatoes in volcanic soil near the coast.\n"
GAMMA = b"# Gamma\n\nGamma trains leave the northern station every nine minutes.\n"


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body of (name, filename, data) parts, in that order."""
    body = bytearray()
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return bytes(body)


def _leftovers(http_server: HttpServer) -> list[Path]:
    """Temporary upload files the storage still has."""
    files = http_server.running.server.files
    assert files is not None
    return sorted(files.storage.content.scratch.glob("upload-*"))


async def test_files_every_method_async(client: openai.AsyncOpenAI) -> None:
    made = await client.files.create(file=("notes.md", ALPHA), purpose="assistants")
    assert isinstance(made, FileObject) and made.id.startswith("file-")
    assert (made.filename, made.bytes, made.purpose) == ("notes.md", len(ALPHA), "assistants")
    assert made.expires_at is None

    fetched = await client.files.retrieve(made.id)
    assert fetched == made
    content = await client.files.content(made.id)
    assert content.content == ALPHA
    assert content.response.headers["content-type"] == "application/octet-stream"

    expiring = await client.files.create(
        file=("picture.png", b"\x89PNG\r\n"),
        purpose="vision",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert expiring.purpose == "vision"
    assert expiring.expires_at == expiring.created_at + 3600
    vision = [f.id async for f in client.files.list(purpose="vision")]
    assert vision == [expiring.id]

    deleted = await client.files.delete(made.id)
    assert (deleted.id, deleted.deleted) == (made.id, True)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.files.retrieve(made.id)
    assert missing.value.body == {
        "message": f"No file found with id '{made.id}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        await client.files.content(made.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.delete(made.id)


async def test_file_lists_page_automatically(client: openai.AsyncOpenAI) -> None:
    made = [
        (await client.files.create(file=(f"f{i}.txt", b"x" * i), purpose="user_data")).id
        for i in range(1, 6)
    ]
    assert [f.id async for f in client.files.list(limit=2)] == made[::-1]
    assert [f.id async for f in client.files.list(limit=2, order="asc")] == made
    page = await client.files.list(limit=2, order="asc", after=made[0])
    assert [f.id for f in page.data] == made[1:3] and page.has_more
    with pytest.raises(openai.BadRequestError) as bad:
        await client.files.list(purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "purpose"  # type: ignore[index]


async def test_files_sync_client(http_server: HttpServer, tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes(BETA * 1000)

    def work() -> None:
        with http_server.sync_client() as sync:
            from_path = sync.files.create(file=path, purpose="assistants")
            from_object = sync.files.create(file=io.BytesIO(GAMMA), purpose="assistants")
            assert from_path.filename == "report.txt" and from_path.bytes == len(BETA) * 1000
            assert sync.files.content(from_path.id).read() == BETA * 1000
            assert sync.files.retrieve(from_object.id).bytes == len(GAMMA)
            listed = [f.id for f in sync.files.list(limit=1, order="asc")]
            assert listed == [from_path.id, from_object.id]
            assert sync.files.delete(from_object.id).deleted
            with pytest.raises(openai.NotFoundError):
                sync.files.retrieve(from_object.id)
            with pytest.raises(openai.BadRequestError) as bad:
                sync.files.create(file=("x.txt", b"x"), purpose="batch")
            assert bad.value.body["param"] == "purpose"  # type: ignore[index]

    await asyncio.to_thread(work)


async def test_an_upload_streams_in_any_order_of_its_parts(http_server: HttpServer) -> None:
    """Several MiB go to storage in chunks; a file sent before its purpose is spooled and gives
    the same File; a field after a streamed file, or no file part, is a 400 storing nothing."""
    data = bytes(range(256)) * (3 * MIB // 256) + b"tail"
    async with http_server.raw() as raw:
        headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
        for parts in (
            [("purpose", None, b"assistants"), ("file", "big.bin", data)],
            [("file", "big.bin", data), ("purpose", None, b"assistants")],
        ):
            made = await raw.post("/files", content=_multipart(parts), headers=headers)
            assert made.status_code == 200, made.text
            file = made.json()
            assert (file["filename"], file["bytes"]) == ("big.bin", len(data))
            content = await raw.get(f"/files/{file['id']}/content")
            assert content.content == data
            assert content.headers["content-length"] == str(len(data))

        late = [
            ("purpose", None, b"assistants"),
            ("file", "a.txt", data),  # past one read: streamed before the field arrives
            ("expires_after[seconds]", None, b"3600"),
        ]
        for parts, param in (
            (late, "expires_after[seconds]"),
            ([("purpose", None, b"assistants")], "file"),
            ([("file", "a.txt", b"abc")], "purpose"),
            ([("purpose", None, b"assistants"), ("file", None, b"abc")], "file"),
            ([("purpose", None, b"assistants"), ("model", None, b"x")], "model"),
        ):
            refused = await raw.post("/files", content=_multipart(parts), headers=headers)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["param"] == param
        not_multipart = await raw.post("/files", json={"purpose": "assistants"})
        assert not_multipart.status_code == 400
        assert "multipart/form-data" in not_multipart.json()["error"]["message"]
        broken = await raw.post("/files", content=b"--nothing here", headers=headers)
        assert broken.status_code == 400
        listed = await raw.get("/files")
        assert len(listed.json()["data"]) == 2
    assert _leftovers(http_server) == []


async def test_upload_limits_are_openai_errors_and_store_nothing(
    database_url: str, fake_model: FakeModelServer
) -> None:
    async with serving(
        database_url,
        fake_model,
        http=True,
        auth="disabled",
        max_file_bytes=MIB,
        max_project_file_bytes=MIB + MIB // 2,
    ) as running:
        http_server = HttpServer(running)
        async with http_server.async_client() as client:
            before = http_server.face.requests
            with pytest.raises(openai.APIStatusError) as too_big:
                await client.files.create(file=("big.bin", b"x" * (MIB + 1)), purpose="assistants")
            assert too_big.value.status_code == 413
            assert too_big.value.body["code"] == "file_too_large"  # type: ignore[index]
            assert http_server.face.requests == before + 1  # not retried
            # The limit holds whatever the order of the parts (a spooled file too).
            async with http_server.raw() as raw:
                spooled = await raw.post(
                    "/files",
                    content=_multipart(
                        [("file", "big.bin", b"y" * (MIB + 1)), ("purpose", None, b"assistants")]
                    ),
                    headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                )
            assert spooled.status_code == 413

            await client.files.create(file=("one.bin", b"z" * MIB), purpose="assistants")
            before = http_server.face.requests
            with pytest.raises(openai.BadRequestError) as over_quota:
                await client.files.create(file=("two.bin", b"w" * MIB), purpose="assistants")
            assert over_quota.value.body["code"] == "storage_quota_exceeded"  # type: ignore[index]
            assert http_server.face.requests == before + 1
            assert [f.filename async for f in client.files.list()] == ["one.bin"]
        assert _leftovers(http_server) == []


async def test_an_interrupted_upload_stores_nothing(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = http_server.running.server.files
    assert files is not None
    receiving, ended = asyncio.Event(), asyncio.Event()
    upload = files.upload

    async def watched(project: str, requests: AsyncIterator[object]) -> object:
        async def seen() -> AsyncIterator[object]:
            async for request in requests:
                if getattr(request, "chunk", b""):
                    receiving.set()
                yield request

        try:
            return await upload(project, seen())  # type: ignore[arg-type]
        finally:
            ended.set()

    monkeypatch.setattr(files, "upload", watched)
    body = _multipart([("purpose", None, b"assistants"), ("file", "cut.bin", b"q" * MIB)])
    head = (
        "POST /v1/files HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    port = http_server.running.server.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    await asyncio.wait_for(receiving.wait(), 30)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(ended.wait(), 30)
    assert (await files.list("default", file_pb2.ListFilesRequest())).data == []
    assert _leftovers(http_server) == []
    del reader


async def test_vector_stores_every_method_async(
    http_server: HttpServer, client: openai.AsyncOpenAI
) -> None:
    store = await client.vector_stores.create(
        name="handbook",
        metadata={"team": "ops"},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    assert isinstance(store, VectorStore) and store.id.startswith("vs_")
    assert (store.name, store.metadata, store.status) == ("handbook", {"team": "ops"}, "completed")
    assert store.expires_after is not None and store.expires_after.days == 7

    alpha = await client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("alpha.md", ALPHA)
    )
    assert isinstance(alpha, VectorStoreFile)
    assert (alpha.status, alpha.vector_store_id, alpha.last_error) == ("completed", store.id, None)
    batch = await client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id, files=[("beta.md", BETA), ("gamma.md", GAMMA)]
    )
    assert isinstance(batch, VectorStoreFileBatch) and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (2, 2)
    in_batch = [
        f.id
        async for f in client.vector_stores.file_batches.list_files(
            batch_id=batch.id, vector_store_id=store.id, limit=1
        )
    ]
    assert len(in_batch) == 2 and alpha.id not in in_batch
    assert (
        await client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    ) == batch
    with pytest.raises(openai.BadRequestError):  # a finished batch cannot be cancelled
        await client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)

    results = [
        r async for r in client.vector_stores.search(store.id, query="Which reactor uses sodium?")
    ]
    assert results and results[0].file_id == alpha.id and results[0].filename == "alpha.md"
    assert 0 < results[0].score <= 1 and "sodium" in results[0].content[0].text

    fetched = await client.vector_stores.retrieve(store.id)
    assert fetched.file_counts.completed == 3 and fetched.usage_bytes > 0
    updated = await client.vector_stores.update(store.id, name="renamed", metadata={"v": "2"})
    assert (updated.name, updated.metadata) == ("renamed", {"v": "2"})

    tagged = await client.vector_stores.files.update(
        alpha.id, vector_store_id=store.id, attributes={"topic": "energy", "year": 2024}
    )
    assert tagged.attributes == {"topic": "energy", "year": 2024}
    names = {(await client.files.retrieve(f)).filename: f for f in in_batch}
    await client.vector_stores.files.update(
        names["beta.md"], vector_store_id=store.id, attributes={"topic": "garden"}
    )
    for topic, expected in (("garden", [names["beta.md"]]), ("energy", [])):
        filtered = await client.vector_stores.search(
            store.id, query="tomatoes", filters={"type": "eq", "key": "topic", "value": topic}
        )
        assert [r.file_id for r in filtered.data] == expected
    text = [
        c.text async for c in client.vector_stores.files.content(alpha.id, vector_store_id=store.id)
    ]
    assert "".join(text).strip() == ALPHA.decode().strip()
    listed = [f.id async for f in client.vector_stores.files.list(store.id, limit=2)]
    assert sorted(listed) == sorted([alpha.id, *in_batch])
    completed = await client.vector_stores.files.list(store.id, filter="completed")
    assert len(completed.data) == 3

    removed = await client.vector_stores.files.delete(alpha.id, vector_store_id=store.id)
    assert (removed.id, removed.deleted, removed.object) == (
        alpha.id,
        True,
        "vector_store.file.deleted",
    )
    with pytest.raises(openai.NotFoundError):
        await client.vector_stores.files.retrieve(alpha.id, vector_store_id=store.id)
    assert (await client.files.retrieve(alpha.id)).id == alpha.id  # the File stays

    deleted = await client.vector_stores.delete(store.id)
    assert (deleted.id, deleted.deleted) == (store.id, True)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.vector_stores.retrieve(store.id)
    assert missing.value.message.endswith(f"No vector store found with id '{store.id}'.")
    with pytest.raises(openai.BadRequestError) as bad:
        await client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 10},
            }
        )
    assert bad.value.body["param"] is not None  # type: ignore[index]


async def test_vector_stores_sync_client_and_paging(http_server: HttpServer) -> None:
    worker = http_server.running.server.ingestion
    assert worker is not None

    def work() -> list[str]:
        with http_server.sync_client() as sync:
            made = [sync.vector_stores.create(name=f"s{i}").id for i in range(5)]
            assert [s.id for s in sync.vector_stores.list(limit=2)] == made[::-1]
            assert [s.id for s in sync.vector_stores.list(limit=2, order="asc")] == made
            page = sync.vector_stores.list(limit=2, before=made[4], order="asc")
            assert [s.id for s in page.data] == made[2:4] and page.has_more  # nearest the cursor
            store = made[0]
            one = sync.vector_stores.files.upload_and_poll(
                vector_store_id=store, file=("one.md", ALPHA)
            )
            assert one.status == "completed"
            named = io.BytesIO(BETA)
            named.name = "beta.md"  # the SDK sends a file object's name as its filename
            batch = sync.vector_stores.file_batches.upload_and_poll(
                vector_store_id=store, files=[named], file_ids=[one.id]
            )
            assert batch.file_counts.completed == 2
            found = sync.vector_stores.search(store, query=["blue tomatoes"], max_num_results=1)
            assert len(found.data) == 1 and found.data[0].filename == "beta.md"
            with pytest.raises(openai.NotFoundError):
                sync.vector_stores.files.create(vector_store_id=store, file_id="file-missing")
            return made

    made = await asyncio.to_thread(work)

    # A batch cancelled while its file waits (the worker stopped): the file ends cancelled.
    await worker.stop()

    def cancel(store: str) -> None:
        with http_server.sync_client() as sync:
            file = sync.files.create(file=("late.md", GAMMA), purpose="assistants")
            batch = sync.vector_stores.file_batches.create(store, file_ids=[file.id])
            assert batch.status == "in_progress"
            cancelled = sync.vector_stores.file_batches.cancel(batch.id, vector_store_id=store)
            assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 1
            item = sync.vector_stores.files.retrieve(file.id, vector_store_id=store)
            assert item.status == "cancelled"

    await asyncio.to_thread(cancel, made[1])


async def test_a_body_surely_past_the_limit_is_refused_unread(
    database_url: str, fake_model: FakeModelServer
) -> None:
    async with serving(
        database_url, fake_model, http=True, auth="disabled", max_file_bytes=MIB
    ) as running:
        port = running.server.http_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                "POST /v1/files HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                f"content-type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"content-length: {100 * MIB}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        # No byte of the body is sent: the answer comes all the same.
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.startswith(b"HTTP/1.1 413"), status
        writer.close()
        await writer.wait_closed()


async def test_a_file_is_one_file_on_both_faces(http_server: HttpServer) -> None:
    stubs = http_server.running.stubs
    over_grpc = await stubs.files.UploadFile(
        iter(
            [
                file_pb2.UploadFileRequest(
                    metadata=file_pb2.UploadFileMetadata(
                        filename="grpc.md", purpose=file_pb2.FILE_PURPOSE_ASSISTANTS
                    )
                ),
                file_pb2.UploadFileRequest(chunk=ALPHA),
            ]
        )
    )
    async with http_server.async_client() as client, http_server.raw() as raw:
        assert (await client.files.retrieve(over_grpc.id)).filename == "grpc.md"
        downloaded = await raw.get(f"/files/{over_grpc.id}/content")
        assert downloaded.content == ALPHA
        assert downloaded.headers["x-request-id"].startswith("req_")

        over_http = await client.files.create(file=("http.md", BETA), purpose="assistants")
        chunks = stubs.files.GetFileContent(file_pb2.GetFileContentRequest(file_id=over_http.id))
        assert b"".join([c.data async for c in chunks]) == BETA

        store = await client.vector_stores.create(file_ids=[over_grpc.id, over_http.id])
        polled = await raw.get(f"/vector_stores/{store.id}/files/{over_http.id}")
        assert polled.headers["openai-poll-after-ms"] == "100"
        # Deleting the File over HTTP takes it out of the store, as over gRPC.
        await client.files.delete(over_http.id)
        with pytest.raises(openai.NotFoundError):
            await client.vector_stores.files.retrieve(over_http.id, vector_store_id=store.id)
        grpc_stores = vector_store_pb2_grpc.VectorStoreServiceStub(stubs.channel)
        listed = await grpc_stores.ListVectorStoreFiles(
            V.ListVectorStoreFilesRequest(vector_store_id=store.id)
        )
        assert [f.id for f in listed.data] == [over_grpc.id]

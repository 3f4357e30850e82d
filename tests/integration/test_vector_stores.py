"""VectorStoreService through a real server (SQLite and PostgreSQL): every RPC, its errors,
ingestion of pdf/docx/md, search with filters, batches, expiry, and OpenAI's JSON shapes."""

from __future__ import annotations

import grpc
import pytest
from openai.types import VectorStore, VectorStoreDeleted, VectorStoreSearchResponse
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch, VectorStoreFileDeleted

from assistants_grpc.contract.openai_json import parse, render
from assistants_grpc.contract.pb import common_pb2
from assistants_grpc.contract.pb import vector_store_pb2 as V
from tests.conftest import RunningServer
from tests.integration.documents import docx, pdf
from tests.integration.helpers import expect_error, violated_fields
from tests.integration.vector_helpers import make_file, stores, wait_ingested

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

KIWI = [
    "The kiwi is a flightless bird native to New Zealand.",
    "Kiwis lay the largest egg relative to body size of any bird.",
]
VOLCANO = [
    "Mount Etna in Sicily is one of the most active volcanoes in the world.",
    "Its eruptions produce lava flows and ash clouds.",
]
TEA = "# Brewing green tea\n\nSteep green tea at 80 degrees Celsius for two minutes.\n"


async def _three_documents(running: RunningServer) -> tuple[str, str, str]:
    pdf_id = await make_file(running, "volcano.pdf", pdf(VOLCANO))
    docx_id = await make_file(running, "kiwi.docx", docx(KIWI))
    md_id = await make_file(running, "tea.md", TEA.encode())
    return pdf_id, docx_id, md_id


async def test_three_documents_and_a_question_only_one_answers(running: RunningServer) -> None:
    pdf_id, docx_id, md_id = await _three_documents(running)
    stub = stores(running)
    created = await stub.CreateVectorStore(
        V.CreateVectorStoreRequest(name="docs", file_ids=[pdf_id, docx_id, md_id])
    )
    assert created.id.startswith("vs_")
    assert created.status == V.VECTOR_STORE_STATUS_IN_PROGRESS
    assert created.file_counts.total == 3
    store = await wait_ingested(running, created.id)
    assert store.status == V.VECTOR_STORE_STATUS_COMPLETED
    assert store.file_counts.completed == 3 and store.usage_bytes > 0
    VectorStore.model_validate(render(store))
    for question, expected in (
        ("Which bird cannot fly?", docx_id),
        ("Where is the volcano Etna?", pdf_id),
        ("At what temperature should green tea steep?", md_id),
    ):
        found = await stub.SearchVectorStore(
            V.SearchVectorStoreRequest(vector_store_id=store.id, query=[question])
        )
        assert found.data[0].file_id == expected, (question, found)
        assert 0 < found.data[0].score <= 1
        page = render(found)
        assert page["object"] == "vector_store.search_results.page"
        for item in page["data"]:
            VectorStoreSearchResponse.model_validate(item)
    content = await stub.GetVectorStoreFileContent(
        V.GetVectorStoreFileContentRequest(vector_store_id=store.id, file_id=docx_id)
    )
    assert content.data[0].text == "\n".join(KIWI)


async def test_files_statuses_attributes_filters_and_removal(running: RunningServer) -> None:
    pdf_id, docx_id, md_id = await _three_documents(running)
    stub = stores(running)
    store = await stub.CreateVectorStore(V.CreateVectorStoreRequest(name="s"))
    attributes = {pdf_id: {"kind": "geo", "year": 2020}, docx_id: {"kind": "bio", "year": 2024}}
    for file_id, values in attributes.items():
        request = V.CreateVectorStoreFileRequest(vector_store_id=store.id, file_id=file_id)
        for key, value in values.items():
            if isinstance(value, str):
                request.attributes[key].string_value = value
            else:
                request.attributes[key].number_value = value
        item = await stub.CreateVectorStoreFile(request)
        assert item.id == file_id and item.status == V.VECTOR_STORE_FILE_STATUS_IN_PROGRESS
        json = render(item)
        VectorStoreFile.model_validate(json)
        assert json["chunking_strategy"] == {
            "type": "static",
            "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
        }
    small = V.CreateVectorStoreFileRequest(
        vector_store_id=store.id,
        file_id=md_id,
        chunking_strategy=common_pb2.ChunkingStrategy(
            static=common_pb2.StaticChunkingStrategy(
                max_chunk_size_tokens=100, chunk_overlap_tokens=50
            )
        ),
    )
    await stub.CreateVectorStoreFile(small)
    await wait_ingested(running, store.id)
    listed = await stub.ListVectorStoreFiles(
        V.ListVectorStoreFilesRequest(
            vector_store_id=store.id, filter=V.VECTOR_STORE_FILE_STATUS_COMPLETED
        )
    )
    assert {f.id for f in listed.data} == {pdf_id, docx_id, md_id}
    failed = await stub.ListVectorStoreFiles(
        V.ListVectorStoreFilesRequest(
            vector_store_id=store.id, filter=V.VECTOR_STORE_FILE_STATUS_FAILED
        )
    )
    assert not failed.data

    # Filters pick files before ranking: the kiwi question finds only the geography file.
    geo = parse({"type": "eq", "key": "kind", "value": "geo"}, V.AttributeFilter)
    found = await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=["bird"], filters=geo)
    )
    assert {r.file_id for r in found.data} <= {pdf_id}
    compound = parse(
        {
            "type": "and",
            "filters": [
                {"type": "gte", "key": "year", "value": 2021},
                {"type": "in", "key": "kind", "value": ["bio", "x"]},
            ],
        },
        V.AttributeFilter,
    )
    found = await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=["bird"], filters=compound)
    )
    assert [r.file_id for r in found.data][:1] == [docx_id]
    assert render(found)["data"][0]["attributes"] == {"kind": "bio", "year": 2024}
    high = await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(
            vector_store_id=store.id,
            query=["bird"],
            ranking_options=V.VectorStoreRankingOptions(score_threshold=1.0),
        )
    )
    assert all(r.score >= 1.0 for r in high.data)

    updated = await stub.UpdateVectorStoreFile(
        V.UpdateVectorStoreFileRequest(vector_store_id=store.id, file_id=docx_id)
    )
    assert dict(updated.attributes) == {}
    deleted = await stub.DeleteVectorStoreFile(
        V.DeleteVectorStoreFileRequest(vector_store_id=store.id, file_id=docx_id)
    )
    VectorStoreFileDeleted.model_validate(render(deleted))
    found = await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=["flightless bird kiwi"])
    )
    assert docx_id not in {r.file_id for r in found.data}
    after = await stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store.id))
    assert after.file_counts.total == 2


async def test_batches_complete_and_cancel(running: RunningServer) -> None:
    pdf_id, docx_id, md_id = await _three_documents(running)
    stub = stores(running)
    store = await stub.CreateVectorStore(V.CreateVectorStoreRequest())
    batch = await stub.CreateVectorStoreFileBatch(
        V.CreateVectorStoreFileBatchRequest(vector_store_id=store.id, file_ids=[pdf_id, docx_id])
    )
    assert batch.id.startswith("vsfb_") and batch.file_counts.total == 2
    VectorStoreFileBatch.model_validate(render(batch))
    await wait_ingested(running, store.id)
    done = await stub.GetVectorStoreFileBatch(
        V.GetVectorStoreFileBatchRequest(vector_store_id=store.id, batch_id=batch.id)
    )
    assert done.status == V.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED
    assert done.file_counts.completed == 2
    await expect_error(
        stub.CancelVectorStoreFileBatch(
            V.CancelVectorStoreFileBatchRequest(vector_store_id=store.id, batch_id=batch.id)
        ),
        PRECONDITION,
    )
    files = await stub.ListVectorStoreFileBatchFiles(
        V.ListVectorStoreFileBatchFilesRequest(vector_store_id=store.id, batch_id=batch.id)
    )
    assert {f.id for f in files.data} == {pdf_id, docx_id}

    # A batch cancelled before its files are ingested: they end cancelled. The worker is
    # stopped first so the files are surely still pending.
    worker = running.server.ingestion
    assert worker is not None
    await worker.stop()
    pending = await stub.CreateVectorStoreFileBatch(
        V.CreateVectorStoreFileBatchRequest(
            vector_store_id=store.id, files=[V.VectorStoreFileBatchEntry(file_id=md_id)]
        )
    )
    assert pending.status == V.VECTOR_STORE_FILE_BATCH_STATUS_IN_PROGRESS
    cancelled = await stub.CancelVectorStoreFileBatch(
        V.CancelVectorStoreFileBatchRequest(vector_store_id=store.id, batch_id=pending.id)
    )
    assert cancelled.status == V.VECTOR_STORE_FILE_BATCH_STATUS_CANCELLED
    assert cancelled.file_counts.cancelled == 1
    item = await stub.GetVectorStoreFile(
        V.GetVectorStoreFileRequest(vector_store_id=store.id, file_id=md_id)
    )
    assert item.status == V.VECTOR_STORE_FILE_STATUS_CANCELLED


async def test_store_crud_and_listing(running: RunningServer) -> None:
    stub = stores(running)
    ids = [
        (await stub.CreateVectorStore(V.CreateVectorStoreRequest(name=f"s{i}"))).id
        for i in range(3)
    ]
    page = await stub.ListVectorStores(V.ListVectorStoresRequest(limit=2))
    assert [s.id for s in page.data] == ids[::-1][:2] and page.has_more
    assert render(page)["object"] == "list"
    updated = await stub.UpdateVectorStore(
        V.UpdateVectorStoreRequest(
            vector_store_id=ids[0],
            name="renamed",
            expires_after=V.VectorStoreExpiresAfter(
                anchor=V.VECTOR_STORE_EXPIRY_ANCHOR_LAST_ACTIVE_AT, days=2
            ),
            metadata=common_pb2.Metadata(values={"k": "v"}),
        )
    )
    assert updated.name == "renamed" and dict(updated.metadata) == {"k": "v"}
    assert updated.expires_at == updated.last_active_at + 2 * 86400
    assert render(updated)["expires_after"] == {"anchor": "last_active_at", "days": 2}
    deleted = await stub.DeleteVectorStore(V.DeleteVectorStoreRequest(vector_store_id=ids[0]))
    VectorStoreDeleted.model_validate(render(deleted))
    await expect_error(
        stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id=ids[0])), NOT_FOUND
    )


async def test_errors(running: RunningServer) -> None:
    stub = stores(running)
    await expect_error(
        stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id="vs_missing")), NOT_FOUND
    )
    await expect_error(
        stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=["file-missing"])), NOT_FOUND
    )
    error = await expect_error(
        stub.CreateVectorStore(
            V.CreateVectorStoreRequest(
                chunking_strategy=common_pb2.ChunkingStrategy(
                    static=common_pb2.StaticChunkingStrategy(
                        max_chunk_size_tokens=50, chunk_overlap_tokens=40
                    )
                ),
                expires_after=V.VectorStoreExpiresAfter(days=0),
            )
        ),
        INVALID,
    )
    assert {
        "chunking_strategy",
        "chunking_strategy.static.max_chunk_size_tokens",
        "chunking_strategy.static.chunk_overlap_tokens",
        "expires_after.anchor",
        "expires_after.days",
    } <= set(violated_fields(error))
    store = await stub.CreateVectorStore(V.CreateVectorStoreRequest())
    error = await expect_error(
        stub.SearchVectorStore(
            V.SearchVectorStoreRequest(
                vector_store_id=store.id,
                query=[],
                max_num_results=51,
                filters=V.AttributeFilter(type=V.ATTRIBUTE_FILTER_TYPE_AND),
            )
        ),
        INVALID,
    )
    assert {"query", "max_num_results", "filters.filters"} <= set(violated_fields(error))
    await expect_error(
        stub.GetVectorStoreFile(
            V.GetVectorStoreFileRequest(vector_store_id=store.id, file_id="file-nope")
        ),
        NOT_FOUND,
    )
    await expect_error(
        stub.GetVectorStoreFileBatch(
            V.GetVectorStoreFileBatchRequest(vector_store_id=store.id, batch_id="vsfb_nope")
        ),
        NOT_FOUND,
    )
    request = V.CreateVectorStoreFileRequest(vector_store_id=store.id, file_id="file-x")
    request.attributes["bad"].list_value.values.add(string_value="x")
    error = await expect_error(stub.CreateVectorStoreFile(request), INVALID)
    assert "attributes.bad" in violated_fields(error)
    batch = V.CreateVectorStoreFileBatchRequest(
        vector_store_id=store.id,
        file_ids=["file-a"],
        files=[V.VectorStoreFileBatchEntry(file_id="file-b")],
    )
    await expect_error(stub.CreateVectorStoreFileBatch(batch), INVALID)


async def test_another_projects_file_cannot_be_added(running: RunningServer) -> None:
    theirs = await make_file(running, "a.md", b"# secret\n\nnot yours", project="other")
    stub = stores(running)
    await expect_error(
        stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=[theirs])), NOT_FOUND
    )


async def test_expiry_sweep_expires_stores_and_deletes_chunks(running: RunningServer) -> None:
    md_id = await make_file(running, "tea.md", TEA.encode())
    stub = stores(running)
    store = await stub.CreateVectorStore(
        V.CreateVectorStoreRequest(
            file_ids=[md_id],
            expires_after=V.VectorStoreExpiresAfter(
                anchor=V.VECTOR_STORE_EXPIRY_ANCHOR_LAST_ACTIVE_AT, days=1
            ),
        )
    )
    await wait_ingested(running, store.id)
    worker = running.server.ingestion
    assert worker is not None
    running.clock.advance(86400 - 10)
    # A search is activity: it moves last_active_at and so the expiry.
    await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=["tea"])
    )
    running.clock.advance(20)
    await worker.expire_now()
    alive = await stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store.id))
    assert alive.status == V.VECTOR_STORE_STATUS_COMPLETED
    running.clock.advance(86400)
    await worker.expire_now()
    expired = await stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store.id))
    assert expired.status == V.VECTOR_STORE_STATUS_EXPIRED
    await expect_error(
        stub.SearchVectorStore(V.SearchVectorStoreRequest(vector_store_id=store.id, query=["tea"])),
        PRECONDITION,
    )
    content = await stub.GetVectorStoreFileContent(
        V.GetVectorStoreFileContentRequest(vector_store_id=store.id, file_id=md_id)
    )
    assert not content.data  # its chunks are gone


@pytest.mark.parametrize("question", ['what\'s -this? "NEAR" OR (x*) AND NOT y:', "'; --", "???"])
async def test_hostile_questions_search_fine(running: RunningServer, question: str) -> None:
    md_id = await make_file(running, "tea.md", TEA.encode())
    stub = stores(running)
    store = await stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=[md_id]))
    await wait_ingested(running, store.id)
    await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=[question])
    )


async def test_create_form_resources_and_attachments_make_stores(running: RunningServer) -> None:
    from assistants_grpc.contract.pb import assistant_pb2, message_pb2, thread_pb2

    md_id = await make_file(running, "tea.md", TEA.encode())
    kiwi_id = await make_file(running, "kiwi.docx", docx(KIWI))
    spec = common_pb2.ToolResources(
        file_search=common_pb2.FileSearchResources(
            vector_stores=[common_pb2.VectorStoreSpec(file_ids=[md_id], metadata={"a": "b"})]
        )
    )
    assistant = await running.stubs.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model="gpt-4o", tool_resources=spec)
    )
    [store_id] = assistant.tool_resources.file_search.vector_store_ids
    assert not assistant.tool_resources.file_search.vector_stores
    store = await wait_ingested(running, store_id)
    assert store.file_counts.completed == 1 and dict(store.metadata) == {"a": "b"}
    assert not store.HasField("expires_after")  # an assistant's store does not expire

    thread = await running.stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(tool_resources=spec)
    )
    [thread_store] = thread.tool_resources.file_search.vector_store_ids
    made = await stores(running).GetVectorStore(
        V.GetVectorStoreRequest(vector_store_id=thread_store)
    )
    assert made.expires_after.days == 7
    got = await running.stubs.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=thread.id))
    assert list(got.tool_resources.file_search.vector_store_ids) == [thread_store]

    # An attachment for file_search joins the thread's store; a thread without one gets one.
    bare = await running.stubs.threads.CreateThread(thread_pb2.CreateThreadRequest())
    await running.stubs.messages.CreateMessage(
        message_pb2.CreateMessageRequest(
            thread_id=bare.id,
            role=message_pb2.MESSAGE_ROLE_USER,
            content=[message_pb2.MessageContentInput(text="see the file")],
            attachments=[
                message_pb2.Attachment(
                    file_id=kiwi_id,
                    tools=[message_pb2.AttachmentTool(type=common_pb2.TOOL_TYPE_FILE_SEARCH)],
                )
            ],
        )
    )
    after = await running.stubs.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=bare.id))
    [attached_store] = after.tool_resources.file_search.vector_store_ids
    done = await wait_ingested(running, attached_store)
    assert done.file_counts.completed == 1 and done.expires_after.days == 7


async def test_deleting_a_file_removes_it_from_every_store(running: RunningServer) -> None:
    from assistants_grpc.contract.pb import file_pb2

    md_id = await make_file(running, "tea.md", TEA.encode())
    stub = stores(running)
    first = await stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=[md_id]))
    second = await stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=[md_id]))
    for store in (first, second):
        await wait_ingested(running, store.id)
    await running.stubs.files.DeleteFile(file_pb2.DeleteFileRequest(file_id=md_id))
    for store in (first, second):
        after = await stub.GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store.id))
        assert after.file_counts.total == 0 and after.usage_bytes == 0
        found = await stub.SearchVectorStore(
            V.SearchVectorStoreRequest(vector_store_id=store.id, query=["green tea"])
        )
        assert not found.data
        await expect_error(
            stub.GetVectorStoreFile(
                V.GetVectorStoreFileRequest(vector_store_id=store.id, file_id=md_id)
            ),
            NOT_FOUND,
        )

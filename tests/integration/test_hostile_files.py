"""Hostile files end `failed` with OpenAI's codes, in bounded time, and the server goes on:
a zip bomb, a billion-laughs XML, a 100 MB single-line text, a PDF that keeps the parser busy,
an encrypted PDF, a corrupt one, text that is not UTF-8, an empty file, an unknown type."""

from __future__ import annotations

import time

import pytest

from assistants_grpc.contract.pb import vector_store_pb2 as V
from tests.conftest import RunningServer, serving
from tests.integration.documents import (
    billion_laughs_docx,
    encrypted_pdf,
    spinning_pdf,
    zip_bomb_docx,
)
from tests.integration.vector_helpers import make_file, stores, wait_ingested

HOSTILE = [
    ("bomb.docx", zip_bomb_docx, "invalid_file"),
    ("laughs.docx", billion_laughs_docx, "invalid_file"),
    ("line.txt", lambda: b"a" * (100 * 1024 * 1024), "invalid_file"),
    ("spin.pdf", spinning_pdf, "invalid_file"),
    ("locked.pdf", encrypted_pdf, "invalid_file"),
    ("corrupt.pdf", lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog", "invalid_file"),
    ("latin1.txt", lambda: "café crème".encode("latin-1"), "invalid_file"),
    ("blank.md", lambda: b" \n\t\n", "invalid_file"),
    ("program.exe", lambda: b"MZ\x90\x00", "unsupported_file"),
]


@pytest.fixture
async def strict(database_url: str, fake_model) -> RunningServer:  # type: ignore[no-untyped-def]
    # A 10 s extraction cap, so the busy PDF is stopped in test time; 4 files at once.
    async with serving(
        database_url, fake_model, extraction_timeout=10.0, ingestion_concurrency=4
    ) as server:
        yield server


@pytest.mark.timeout(300)
async def test_hostile_files_fail_with_the_right_code(strict: RunningServer) -> None:
    files = {}
    for name, build, code in HOSTILE:
        files[await make_file(strict, name, build())] = (name, code)
    stub = stores(strict)
    began = time.monotonic()
    store = await stub.CreateVectorStore(V.CreateVectorStoreRequest(file_ids=list(files)))
    done = await wait_ingested(strict, store.id, timeout=240)
    assert time.monotonic() - began < 240
    assert done.file_counts.failed == len(HOSTILE)
    listed = await stub.ListVectorStoreFiles(
        V.ListVectorStoreFilesRequest(vector_store_id=store.id, limit=100)
    )
    for item in listed.data:
        name, code = files[item.id]
        assert item.status == V.VECTOR_STORE_FILE_STATUS_FAILED, name
        got = V.VectorStoreFileErrorCode.Name(item.last_error.code)
        assert got == "VECTOR_STORE_FILE_ERROR_CODE_" + code.upper(), (name, item.last_error)
        assert item.last_error.message
    # The server is unharmed: a good file still goes through.
    good = await make_file(strict, "ok.md", b"# fine\n\nAn ordinary document about otters.")
    await stub.CreateVectorStoreFile(
        V.CreateVectorStoreFileRequest(vector_store_id=store.id, file_id=good)
    )
    after = await wait_ingested(strict, store.id)
    assert after.file_counts.completed == 1
    found = await stub.SearchVectorStore(
        V.SearchVectorStoreRequest(vector_store_id=store.id, query=["otters"])
    )
    assert found.data[0].file_id == good

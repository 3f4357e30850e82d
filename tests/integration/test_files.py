"""FileService through a real server, on SQLite (contents on disk) and PostgreSQL (contents in
the database): uploads in chunks, downloads byte for byte, lists, deletes with their cascade,
limits, interrupted uploads, expiry and shared contents."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Connection

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import (
    assistant_pb2,
    common_pb2,
    file_pb2,
    message_pb2,
    thread_pb2,
)
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.files.storage import DiskContentStore, MissingFileError
from assistants_grpc.server import AssistantsServer, Overrides
from tests.conftest import RunningServer, serving, stubs_for
from tests.integration.files_helpers import (
    MIB,
    blocking_upload,
    download,
    stored_rows,
    upload,
    upload_requests,
)
from tests.integration.helpers import expect_error, text_input, violated_fields

F = file_pb2
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
WAIT = 30.0  # generous: the machine is shared


def _scratch(running: RunningServer) -> Path:
    assert running.server.files is not None
    return running.server.files.storage.content.scratch


def _blobs(running: RunningServer) -> list[Path]:
    """The content files on disk (the SQLite store); [] for the database store."""
    assert running.server.files is not None
    content = running.server.files.storage.content
    if not isinstance(content, DiskContentStore):
        return []
    return [p for p in content.blobs.rglob("*") if p.is_file()]


def _code(outcome: object) -> grpc.StatusCode:
    assert isinstance(outcome, grpc.RpcError), outcome
    return outcome.code()  # type: ignore[attr-defined, no-any-return]


def _violations(outcome: object) -> list[str]:
    status = rpc_status.from_call(outcome)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def _random(size: int, seed: int = 0) -> bytes:
    # Deterministic bytes that no compression or dedup could shortcut.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


async def test_upload_get_download_small_and_multi_chunk(running: RunningServer) -> None:
    s = running.stubs
    small = await upload(s, b"hello, files", "reports/2026/q3 notes.txt")
    assert small.id.startswith("file-") and len(small.id) == len("file-") + 24
    assert small.filename == "q3 notes.txt"  # only the base name is kept
    assert small.bytes == len(b"hello, files")
    assert small.created_at == int(running.clock.now())
    assert small.purpose == F.FILE_PURPOSE_ASSISTANTS
    assert not small.HasField("expires_at")
    assert await s.files.GetFile(F.GetFileRequest(file_id=small.id)) == small
    assert await download(s, small.id) == b"hello, files"

    # 3.5 MiB sent in uneven chunks comes back whole, in chunks of at most 1 MiB.
    data = _random(3 * MIB + MIB // 2)
    big = await s.files.UploadFile(
        upload_requests(data, "data.bin", F.FILE_PURPOSE_USER_DATA, chunk=700_001)
    )
    assert big.bytes == len(data)
    chunks = [c.data async for c in s.files.GetFileContent(F.GetFileContentRequest(file_id=big.id))]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= MIB

    # An empty file is a file.
    empty = await upload(s, b"", "empty.txt")
    assert empty.bytes == 0 and await download(s, empty.id) == b""
    assert not list(_scratch(running).iterdir()), "temporary files left behind"


async def test_a_path_becomes_its_base_name_whichever_separator(running: RunningServer) -> None:
    for name, kept in (
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("  spaced.md  ", "spaced.md"),
        ("é🙂.txt", "é🙂.txt"),
    ):
        assert (await upload(running.stubs, b"x", name)).filename == kept


async def test_list_by_purpose_with_paging_and_order(running: RunningServer) -> None:
    s = running.stubs
    made = []
    for i, purpose in enumerate(
        [F.FILE_PURPOSE_ASSISTANTS, F.FILE_PURPOSE_VISION, F.FILE_PURPOSE_ASSISTANTS] * 3
    ):
        made.append(await upload(s, f"file {i}".encode(), f"f{i}.txt", purpose=purpose))
    listed = await s.files.ListFiles(F.ListFilesRequest())
    assert [f.id for f in listed.data] == [f.id for f in reversed(made)]  # newest first
    assert not listed.has_more and listed.first_id == made[-1].id
    assert listed.last_id == made[0].id

    assistants = [f.id for f in made if f.purpose == F.FILE_PURPOSE_ASSISTANTS]
    page = await s.files.ListFiles(
        F.ListFilesRequest(
            purpose=F.FILE_PURPOSE_ASSISTANTS, order=common_pb2.LIST_ORDER_ASC, limit=4
        )
    )
    assert [f.id for f in page.data] == assistants[:4] and page.has_more
    rest = await s.files.ListFiles(
        F.ListFilesRequest(
            purpose=F.FILE_PURPOSE_ASSISTANTS,
            order=common_pb2.LIST_ORDER_ASC,
            limit=4,
            after=page.last_id,
        )
    )
    assert [f.id for f in rest.data] == assistants[4:] and not rest.has_more
    vision = await s.files.ListFiles(F.ListFilesRequest(purpose=F.FILE_PURPOSE_VISION))
    assert {f.id for f in vision.data} == {f.id for f in made if f.purpose == F.FILE_PURPOSE_VISION}

    error = await expect_error(s.files.ListFiles(F.ListFilesRequest(limit=10_001)), INVALID)
    assert violated_fields(error) == ["limit"]
    error = await expect_error(s.files.ListFiles(F.ListFilesRequest(purpose=99)), INVALID)  # type: ignore[arg-type]
    assert violated_fields(error) == ["purpose"]
    error = await expect_error(s.files.ListFiles(F.ListFilesRequest(after="file-nope")), INVALID)
    assert violated_fields(error) == ["after"]


async def test_delete(running: RunningServer) -> None:
    s = running.stubs
    file = await upload(s, b"to be deleted")
    deleted = await s.files.DeleteFile(F.DeleteFileRequest(file_id=file.id))
    assert deleted == F.DeleteFileResponse(id=file.id, deleted=True)
    for call in (
        s.files.GetFile(F.GetFileRequest(file_id=file.id)),
        s.files.DeleteFile(F.DeleteFileRequest(file_id=file.id)),
        download(s, file.id),
    ):
        error = await expect_error(call, NOT_FOUND)
        assert error.details() == f"No file found with id '{file.id}'."
    assert list((await s.files.ListFiles(F.ListFilesRequest())).data) == []
    assert stored_rows(running.database_url) == {"files": 0, "contents": 0, "parts": 0}
    assert _blobs(running) == []


async def test_unknown_and_impossible_ids_are_not_found(running: RunningServer) -> None:
    s = running.stubs
    for file_id in ("file-" + "Z" * 24, "", "x" * 65, "file-\x00", "../etc/passwd"):
        for call in (
            s.files.GetFile(F.GetFileRequest(file_id=file_id)),
            s.files.DeleteFile(F.DeleteFileRequest(file_id=file_id)),
            download(s, file_id),
        ):
            await expect_error(call, NOT_FOUND)


async def test_identical_contents_are_stored_once(running: RunningServer) -> None:
    s = running.stubs
    data = _random(2 * MIB + 5, seed=1)
    first = await upload(s, data, "a.bin")
    second = await upload(s, data, "b.bin", purpose=F.FILE_PURPOSE_USER_DATA)
    other = await upload(s, b"something else", "c.txt")
    assert first.id != second.id
    rows = stored_rows(running.database_url)
    assert rows["files"] == 3 and rows["contents"] == 2
    if _blobs(running):
        assert len(_blobs(running)) == 2
    else:
        assert rows["parts"] == 3 + 1  # 2 MiB + 5 bytes in 1 MiB parts, and the small one

    await s.files.DeleteFile(F.DeleteFileRequest(file_id=first.id))
    assert await download(s, second.id) == data  # the other File keeps the content
    await s.files.DeleteFile(F.DeleteFileRequest(file_id=second.id))
    assert stored_rows(running.database_url) == {
        "files": 1,
        "contents": 1,
        "parts": 0 if _blobs(running) else 1,
    }
    assert len(_blobs(running)) in (0, 1)
    assert await download(s, other.id) == b"something else"


async def test_the_metadata_comes_first_and_once(running: RunningServer) -> None:
    metadata = F.UploadFileRequest(
        metadata=F.UploadFileMetadata(filename="a.txt", purpose=F.FILE_PURPOSE_ASSISTANTS)
    )
    chunk = F.UploadFileRequest(chunk=b"abc")
    for requests, field in (
        ([], "metadata"),
        ([chunk, metadata], "metadata"),
        ([F.UploadFileRequest(), chunk], "metadata"),
        ([metadata, chunk, metadata], "metadata"),
        ([metadata, F.UploadFileRequest()], "chunk"),
    ):
        # Blocking: the server ends these before the client is done writing (see
        # files_helpers.blocking_upload).
        outcome = await blocking_upload(running.target, requests)
        assert _code(outcome) == INVALID
        assert _violations(outcome) == [field], requests
    assert stored_rows(running.database_url)["files"] == 0
    assert not list(_scratch(running).iterdir())


@pytest.mark.parametrize(
    ("metadata", "fields"),
    [
        (F.UploadFileMetadata(purpose=F.FILE_PURPOSE_ASSISTANTS), ["filename"]),
        (F.UploadFileMetadata(filename="a.txt"), ["purpose"]),
        (F.UploadFileMetadata(filename="a", purpose=F.FILE_PURPOSE_ASSISTANTS_OUTPUT), ["purpose"]),
        (F.UploadFileMetadata(filename="a", purpose=42), ["purpose"]),  # type: ignore[arg-type]
        (F.UploadFileMetadata(filename="dir/", purpose=1), ["filename"]),
        (F.UploadFileMetadata(filename="..", purpose=1), ["filename"]),
        (F.UploadFileMetadata(filename="a\nb", purpose=1), ["filename"]),
        (F.UploadFileMetadata(filename="a\x00b", purpose=1), ["filename"]),
        (F.UploadFileMetadata(filename="x" * 256, purpose=1), ["filename"]),
        (
            F.UploadFileMetadata(
                filename="a",
                purpose=1,
                expires_after=F.FileExpiresAfter(anchor="last_active_at", seconds=3600),
            ),
            ["expires_after.anchor"],
        ),
        (
            F.UploadFileMetadata(
                filename="a", purpose=1, expires_after=F.FileExpiresAfter(anchor="created_at")
            ),
            ["expires_after.seconds"],
        ),
        (
            F.UploadFileMetadata(
                filename="a",
                purpose=1,
                expires_after=F.FileExpiresAfter(anchor="created_at", seconds=2_592_001),
            ),
            ["expires_after.seconds"],
        ),
        (F.UploadFileMetadata(), ["filename", "purpose"]),
    ],
)
async def test_metadata_rules(
    running: RunningServer, metadata: F.UploadFileMetadata, fields: list[str]
) -> None:
    requests = [F.UploadFileRequest(metadata=metadata), F.UploadFileRequest(chunk=b"abc")]
    outcome = await blocking_upload(running.target, requests)
    assert _code(outcome) == INVALID
    assert _violations(outcome) == fields
    assert stored_rows(running.database_url)["files"] == 0


async def test_the_size_limit_cuts_an_upload_off_early(
    database_url: str, fake_model: FakeModelServer
) -> None:
    async with serving(database_url, fake_model, max_file_bytes=2 * MIB) as running:
        s = running.stubs
        sent = 0

        def many_chunks() -> Iterator[F.UploadFileRequest]:
            nonlocal sent
            yield next(upload_requests(b""))
            for _ in range(1000):  # 1 GB if the server read it all
                sent += 1
                yield F.UploadFileRequest(chunk=b"x" * MIB)

        outcome = await blocking_upload(running.target, many_chunks())
        assert _code(outcome) == EXHAUSTED
        assert str(2 * MIB) in outcome.details()  # type: ignore[attr-defined]
        assert sent < 100, "the server read on past its limit"
        exact = await upload(s, b"y" * (2 * MIB))  # the limit itself is allowed
        assert exact.bytes == 2 * MIB
        assert stored_rows(running.database_url)["files"] == 1
        assert not list(_scratch(running).iterdir())


async def test_the_project_quota(database_url: str, fake_model: FakeModelServer) -> None:
    async with serving(
        database_url, fake_model, max_project_file_bytes=3 * MIB, max_file_bytes=10 * MIB
    ) as running:
        s = running.stubs

        async def attempt(size: int, seed: int) -> object:
            return await blocking_upload(
                running.target, upload_requests(_random(size, seed=seed), f"{seed}.bin")
            )

        first = await upload(s, _random(2 * MIB, seed=2), "a.bin")
        refused = await attempt(MIB + 1, 3)
        assert _code(refused) == EXHAUSTED
        assert "quota" in refused.details()  # type: ignore[attr-defined]
        assert isinstance(await attempt(MIB, 4), F.File)  # what is left fits exactly
        assert _code(await attempt(1, 5)) == EXHAUSTED
        # Deleting frees the space.
        await s.files.DeleteFile(F.DeleteFileRequest(file_id=first.id))
        assert isinstance(await attempt(2 * MIB, 6), F.File)
        assert stored_rows(running.database_url)["files"] == 2
        assert not list(_scratch(running).iterdir())


async def test_an_interrupted_upload_stores_nothing(running: RunningServer) -> None:
    s = running.stubs
    release = asyncio.Event()

    async def stalled() -> AsyncIterator[F.UploadFileRequest]:
        for request in upload_requests(_random(2 * MIB, seed=6)):
            yield request
        await release.wait()  # the last chunk never comes; the client gives up instead

    call = s.files.UploadFile(stalled())
    scratch = _scratch(running)
    # Wait until the server holds the first chunks in a temporary file.
    async with asyncio.timeout(WAIT):
        while not any(p.stat().st_size >= MIB for p in scratch.iterdir()):
            await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    async with asyncio.timeout(WAIT):
        while list(scratch.iterdir()):
            await asyncio.sleep(0.01)
    release.set()
    assert stored_rows(running.database_url) == {"files": 0, "contents": 0, "parts": 0}
    assert list((await s.files.ListFiles(F.ListFilesRequest())).data) == []
    assert _blobs(running) == []


async def test_expiry(running: RunningServer) -> None:
    s = running.stubs
    file = await upload(s, b"short-lived", expires_after=3600)
    keeper = await upload(s, b"kept")
    assert file.expires_at == file.created_at + 3600
    running.clock.advance(3599)
    assert await download(s, file.id) == b"short-lived"
    running.clock.advance(1)
    # Expired: gone for every read at once, before any sweep.
    for call in (
        s.files.GetFile(F.GetFileRequest(file_id=file.id)),
        download(s, file.id),
        s.files.DeleteFile(F.DeleteFileRequest(file_id=file.id)),
    ):
        await expect_error(call, NOT_FOUND)
    assert [f.id for f in (await s.files.ListFiles(F.ListFilesRequest())).data] == [keeper.id]
    assert stored_rows(running.database_url)["files"] == 2
    # The sweep deletes it, content and all.
    files = running.server.files
    assert files is not None
    assert await files.sweep_expired() == 1
    assert await files.sweep_expired() == 0
    assert stored_rows(running.database_url)["files"] == 1
    assert stored_rows(running.database_url)["contents"] == 1
    assert await download(s, keeper.id) == b"kept"


async def test_the_periodic_sweep(database_url: str, fake_model: FakeModelServer) -> None:
    clock = ManualClock()
    server = AssistantsServer(
        Settings(host="127.0.0.1", port=0, http_port=0, metrics_port=0, database_url=database_url),
        Overrides(clock=clock, file_sweep_interval=0.05),
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        await upload(stubs_for(channel), b"a", expires_after=3600)
        clock.advance(3600)
        async with asyncio.timeout(WAIT):
            while stored_rows(database_url)["files"]:
                await asyncio.sleep(0.02)
        assert stored_rows(database_url)["contents"] == 0
    finally:
        await channel.close()
        await server.stop(0)


async def test_deleting_a_file_removes_it_from_tool_resources_and_attachments(
    running: RunningServer,
) -> None:
    s = running.stubs
    gone = await upload(s, b"gone", "gone.csv")
    kept = await upload(s, b"kept", "kept.csv")
    resources = common_pb2.ToolResources(
        code_interpreter=common_pb2.CodeInterpreterResources(file_ids=[gone.id, kept.id]),
        file_search=common_pb2.FileSearchResources(vector_store_ids=["vs_abc"]),
    )
    assistant = await s.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model="gpt-4o", tool_resources=resources)
    )
    other_assistant = await s.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model="gpt-4o")
    )
    code = [message_pb2.AttachmentTool(type=common_pb2.TOOL_TYPE_CODE_INTERPRETER)]
    message = text_input("look at these")
    message.attachments.extend(
        [
            message_pb2.Attachment(file_id=gone.id, tools=code),
            message_pb2.Attachment(file_id=kept.id, tools=code),
        ]
    )
    thread = await s.threads.CreateThread(
        thread_pb2.CreateThreadRequest(messages=[message], tool_resources=resources)
    )
    plain = await s.threads.CreateThread(thread_pb2.CreateThreadRequest(messages=[text_input("x")]))

    seen: list[tuple[str, str]] = []

    def hook(connection: Connection, project: str, file_id: str) -> None:
        seen.append((project, file_id))

    files = running.server.files
    assert files is not None
    files.on_delete.append(hook)
    try:
        await s.files.DeleteFile(F.DeleteFileRequest(file_id=gone.id))
    finally:
        files.on_delete.remove(hook)
    assert seen == [("default", gone.id)]

    after = await s.assistants.GetAssistant(
        assistant_pb2.GetAssistantRequest(assistant_id=assistant.id)
    )
    assert list(after.tool_resources.code_interpreter.file_ids) == [kept.id]
    assert list(after.tool_resources.file_search.vector_store_ids) == ["vs_abc"]
    untouched = await s.assistants.GetAssistant(
        assistant_pb2.GetAssistantRequest(assistant_id=other_assistant.id)
    )
    assert untouched == other_assistant
    thread_after = await s.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=thread.id))
    assert list(thread_after.tool_resources.code_interpreter.file_ids) == [kept.id]
    listed = await s.messages.ListMessages(message_pb2.ListMessagesRequest(thread_id=thread.id))
    assert [a.file_id for a in listed.data[0].attachments] == [kept.id]
    assert await s.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=plain.id)) == plain


async def test_a_hook_that_fails_deletes_nothing(running: RunningServer) -> None:
    s = running.stubs
    file = await upload(s, b"stays")
    assistant = await s.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(
            model="gpt-4o",
            tool_resources=common_pb2.ToolResources(
                code_interpreter=common_pb2.CodeInterpreterResources(file_ids=[file.id])
            ),
        )
    )

    def failing(connection: Connection, project: str, file_id: str) -> None:
        raise RuntimeError("the vector store said no")

    files = running.server.files
    assert files is not None
    files.on_delete.append(failing)
    try:
        await expect_error(
            s.files.DeleteFile(F.DeleteFileRequest(file_id=file.id)), grpc.StatusCode.INTERNAL
        )
    finally:
        files.on_delete.remove(failing)
    # One transaction: the file, its content and the assistant's reference are all still there.
    assert await download(s, file.id) == b"stays"
    again = await s.assistants.GetAssistant(
        assistant_pb2.GetAssistantRequest(assistant_id=assistant.id)
    )
    assert list(again.tool_resources.code_interpreter.file_ids) == [file.id]


async def test_server_side_producers_and_spool(running: RunningServer, tmp_path: Path) -> None:
    """What code_interpreter and the extractors use: a File from a path, and the content
    spooled to a file of its own."""
    files = running.server.files
    assert files is not None
    source = tmp_path / "plot.png"
    source.write_bytes(_random(MIB + 3, seed=7))
    made = await files.storage.create_from_path(
        "default", "out/plot.png", source, "assistants_output"
    )
    assert made.purpose == F.FILE_PURPOSE_ASSISTANTS_OUTPUT and made.filename == "plot.png"
    assert await download(running.stubs, made.id) == source.read_bytes()

    target = tmp_path / "spooled"
    target.mkdir()
    spooled = await files.storage.spool(made.id, target)
    assert spooled == target / made.id and spooled.read_bytes() == source.read_bytes()
    assert oct(spooled.stat().st_mode & 0o777) == oct(0o600)
    with pytest.raises(FileExistsError):
        await files.storage.spool(made.id, target)  # never overwrites
    os.symlink(tmp_path / "elsewhere", target / "link")
    with pytest.raises(OSError):
        await files.storage.spool(made.id, target, name="link")  # never through a symlink
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(MissingFileError):
        await files.storage.spool(made.id, target, project="another", name="x")
    assert not (target / "x").exists()


async def test_a_message_that_does_not_parse_ends_the_upload(running: RunningServer) -> None:
    upload_file = running.stubs.channel.stream_unary(
        "/assistants.v1.FileService/UploadFile",
        request_serializer=None,
        response_deserializer=F.File.FromString,
    )
    first = next(upload_requests(b"")).SerializeToString()
    for payloads in (
        [b"\x0a\xff\xff\xff\xff\x0f"],  # a length far past the end
        [first, b"\x12\x05ab"],  # a chunk cut short
        [first, F.UploadFileRequest(chunk=b"ok").SerializeToString(), b"\xff"],
    ):
        error = await expect_error(upload_file(iter(payloads)), INVALID)
        assert violated_fields(error) == ["request"]
    assert stored_rows(running.database_url)["files"] == 0
    assert not list(_scratch(running).iterdir())

"""`import` and `export` of Files and vector stores (SQLite and PostgreSQL): an OpenAI dump with
the Files' bytes beside it renders back as it was, its stores searchable once the server has
ingested them; an export with its bytes imports back to the same objects and bytes; Files
without bytes, too large, over the quota or another project's are reported by line; a second
import changes nothing, `--replace` writes over (new bytes too); `--thread` brings the stores
and Files its threads name; a killed import finishes on a rerun."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from assistants_grpc.clock import SystemClock
from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import (
    assistant_pb2,
    common_pb2,
    file_pb2,
    message_pb2,
    thread_pb2,
)
from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import random_id
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database
from assistants_grpc.transfer import ExportResult, Progress, export
from assistants_grpc.transfer.writing import CRASH_AFTER_ENV
from tests.conftest import serving
from tests.integration import transfer_fixtures as fx
from tests.integration.files_helpers import download, upload
from tests.integration.test_transfer import empty_twin
from tests.integration.vector_helpers import stores, wait_ingested

BATCH_NOTE = (
    "not imported: a file batch only records how files were added; its files are imported "
    "from their vector_store.file objects"
)


def export_to(
    url: str, out: Path, *, threads: list[str] | None = None, now: int | None = None
) -> tuple[list[str], ExportResult]:
    database = Database(url)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        result = export(
            database, str(out), "default", Progress(io.StringIO(), tty=False), threads, now=now
        )
        assert not result.missing and not result.unreadable
        return out.read_text().splitlines(), result
    finally:
        database.dispose()


def keyed(lines: list[str]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Objects by type and id (a vector-store file's id is its File's: by its store too)."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for line in lines:
        obj = json.loads(line)
        key = (obj["object"], obj.get("vector_store_id", ""), obj["id"])
        out[key] = obj
    return out


def key(obj: Any) -> tuple[str, ...]:
    data = fx.as_json(obj)
    return (data["object"], data.get("vector_store_id", ""), data["id"])


def line_of(path: Path, object_id: str, kind: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        obj = json.loads(line)
        if obj["id"] == object_id and obj["object"] == kind:
            return number
    raise AssertionError(object_id)


def _contents(url: str) -> list[tuple[str, int, int]]:
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            rows = connection.execute(
                select(repo.FILE_CONTENTS).order_by(repo.FILE_CONTENTS.c.sha256)
            )
            return [(row.sha256, row.bytes, row.refs) for row in rows]
    finally:
        database.dispose()


def _stored_bytes(url: str, file_id: str) -> bytes:
    """A File's bytes as the server's storage reads them."""
    database = Database(url)
    try:
        storage = FileStorage.for_database(database, SystemClock(), random_id)
        with database.engine.connect() as connection:
            row = repo.get_by_id(connection, repo.FILES, file_id)
            assert row is not None
            return b"".join(storage.content.read_sync(connection, row["sha256"], row["bytes"]))
    finally:
        database.dispose()


# --- an OpenAI dump -----------------------------------------------------------------------------


async def test_an_openai_dump_with_files_renders_back_and_becomes_searchable(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    dump = [*fx.file_dump(), *fx.dump()]
    # Children before their parents, the store's files before the Files: order does not matter.
    path = fx.write_jsonl(tmp_path / "dump.jsonl", list(reversed(dump)))
    fx.write_bytes(path)
    summary, problems = fx.run_import(database_url, path)
    assert problems == [f"{path}:{len(dump) - dump.index(fx.batch())}: {BATCH_NOTE}"]
    assert summary.ok
    assert summary.total("imported") == len(dump) - 1
    assert summary.counts["vector_store.files_batch"]["skipped"] == 1

    # No server ran yet: the store's files wait for one, in progress.
    waiting = keyed(export_to(database_url, tmp_path / "before.jsonl")[0])
    assert waiting[key(fx.store_file(fx.DOC))]["status"] == "in_progress"
    assert waiting[key(fx.failed_store_file())] == fx.as_json(fx.failed_store_file())

    async with serving(database_url, fake_model) as running:
        stub = stores(running)
        ingested = render(await wait_ingested(running, fx.STORE))
        expected = fx.as_json(fx.store())
        # Counted here: the chunks this server made take their own bytes.
        assert 0 < ingested["usage_bytes"]
        assert ingested == expected | {"usage_bytes": ingested["usage_bytes"]}
        listed = await stub.ListVectorStoreFiles(
            V.ListVectorStoreFilesRequest(vector_store_id=fx.STORE)
        )
        files = {f.id: render(f) for f in listed.data}
        doc = fx.as_json(fx.store_file(fx.DOC))
        assert files[fx.DOC] == doc | {"usage_bytes": files[fx.DOC]["usage_bytes"]}
        assert files[fx.SCAN] == fx.as_json(fx.failed_store_file())
        for obj in fx.file_dump()[:3]:
            file_id = obj.id  # type: ignore[attr-defined]
            got = await running.stubs.files.GetFile(file_pb2.GetFileRequest(file_id=file_id))
            assert render(got) == fx.as_json(obj)
            assert await download(running.stubs, file_id) == fx.BYTES[file_id]
        found = await stub.SearchVectorStore(
            V.SearchVectorStoreRequest(
                vector_store_id=fx.STORE, query=["how hot should green tea steep"]
            )
        )
        assert found.data and found.data[0].file_id == fx.DOC
        result = render(found)["data"][0]
        assert result["filename"] == "handbook.md"
        assert result["attributes"] == {"lang": "en", "year": 2024, "public": True}

    # Ingested since: a rerun finds everything as it would import it.
    again, problems = fx.run_import(database_url, path)
    assert problems == [f"{path}:{len(dump) - dump.index(fx.batch())}: {BATCH_NOTE}"]
    assert again.total("unchanged") == len(dump) - 1 and again.total("imported") == 0

    exported = keyed(export_to(database_url, tmp_path / "after.jsonl")[0])
    ended = {fx.ACTIVE_RUN, fx.oid("step_", "waiting"), fx.oid("msg_", "open")}
    counted = {key(fx.store()), key(fx.store_file(fx.DOC))}  # their usage_bytes are ours
    for obj in dump:
        if isinstance(obj, fx.VectorStoreFileBatch) or obj.id in ended:  # type: ignore[attr-defined]
            continue
        expected = fx.as_json(obj)
        if key(obj) in counted:
            expected["usage_bytes"] = exported[key(obj)]["usage_bytes"]
        assert exported[key(obj)] == expected, key(obj)


async def test_a_dump_imported_beside_a_running_server_is_ingested_by_it(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    path = fx.write_jsonl(tmp_path / "dump.jsonl", fx.file_dump())
    fx.write_bytes(path)
    async with serving(database_url, fake_model) as running:
        summary, _ = fx.run_import(database_url, path)
        assert summary.ok and summary.counts["vector_store.file"]["imported"] == 2
        store = await wait_ingested(running, fx.STORE)
        assert store.status == V.VECTOR_STORE_STATUS_COMPLETED
        assert (store.file_counts.completed, store.file_counts.failed) == (1, 1)


# --- the round trip ---------------------------------------------------------------------------


async def test_export_then_import_gives_back_the_same_files_bytes_and_stores(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """Files uploaded through the server (one of several parts), a store ingesting one and
    failing the other, an assistant and a thread naming them; exported with the bytes,
    imported into an empty database, ingested there, exported again."""
    blob = random.Random(7).randbytes(2 * 1024 * 1024 + 123)  # three parts of 1 MiB
    async with serving(database_url, fake_model) as running:
        s = running.stubs
        doc = await upload(s, fx.DOC_BYTES, "handbook.md")
        binary = await upload(s, blob, "blob.bin")
        stub = stores(running)
        store = await stub.CreateVectorStore(
            V.CreateVectorStoreRequest(
                name="Handbooks",
                file_ids=[doc.id],
                metadata={"team": "people"},
                expires_after=V.VectorStoreExpiresAfter(
                    anchor=V.VECTOR_STORE_EXPIRY_ANCHOR_LAST_ACTIVE_AT, days=30
                ),
            )
        )
        await stub.CreateVectorStoreFile(
            V.CreateVectorStoreFileRequest(vector_store_id=store.id, file_id=binary.id)
        )
        ingested = await wait_ingested(running, store.id)
        assert (ingested.file_counts.completed, ingested.file_counts.failed) == (1, 1)
        resources = common_pb2.ToolResources(
            code_interpreter=common_pb2.CodeInterpreterResources(file_ids=[binary.id]),
            file_search=common_pb2.FileSearchResources(vector_store_ids=[store.id]),
        )
        await s.assistants.CreateAssistant(
            assistant_pb2.CreateAssistantRequest(
                model="gpt-4o", name="Librarian", tool_resources=resources
            )
        )
        thread = await s.threads.CreateThread(thread_pb2.CreateThreadRequest())
        await s.messages.CreateMessage(
            message_pb2.CreateMessageRequest(
                thread_id=thread.id,
                role=message_pb2.MESSAGE_ROLE_USER,
                content=[message_pb2.MessageContentInput(text="What is in the handbook?")],
                attachments=[
                    message_pb2.Attachment(
                        file_id=doc.id,
                        tools=[
                            message_pb2.AttachmentTool(type=common_pb2.TOOL_TYPE_CODE_INTERPRETER)
                        ],
                    )
                ],
            )
        )
        now = int(running.clock.now())

    out = tmp_path / "first" / "export.jsonl"
    first, result = export_to(database_url, out, now=now)
    kinds = [json.loads(line)["object"] for line in first]
    assert kinds[:4] == ["file", "file", "vector_store", "vector_store.file"]
    assert result.files_dir == tmp_path / "first" / "export.jsonl.files"
    assert (result.files_dir / doc.id).read_bytes() == fx.DOC_BYTES
    assert (result.files_dir / binary.id).read_bytes() == blob

    twin = empty_twin(database_url, tmp_path, "twin.db")
    summary, problems = fx.run_import(twin, out, now=now)
    assert problems == [] and summary.total("imported") == len(first)

    async with serving(twin, fake_model) as running:
        again = await wait_ingested(running, store.id)
        assert render(again) == render(ingested)
        assert await download(running.stubs, doc.id) == fx.DOC_BYTES
        assert await download(running.stubs, binary.id) == blob
        found = await stores(running).SearchVectorStore(
            V.SearchVectorStoreRequest(vector_store_id=store.id, query=["green tea"])
        )
        assert [r.file_id for r in found.data][:1] == [doc.id]

    second, _ = export_to(twin, tmp_path / "second" / "export.jsonl", now=now)
    assert second == first


# --- problems ---------------------------------------------------------------------------------


def test_files_without_bytes_too_large_or_foreign_are_reported_with_their_line(
    database_url: str, tmp_path: Path
) -> None:
    theirs, their_store = fx.oid("file-", "theirs"), fx.oid("vs_", "theirs")
    fx.BYTES[theirs] = b"theirs"
    other = fx.write_jsonl(
        tmp_path / "other" / "other.jsonl",
        [fx.file_object(theirs, "theirs.txt", fx.T), fx.store(their_store)],
    )
    (tmp_path / "other" / theirs).write_bytes(b"theirs")
    summary, problems = fx.run_import(database_url, other, project="other")
    assert problems == [] and summary.total("imported") == 2

    missing, short, big = (fx.oid("file-", n) for n in ("missing", "short", "big"))
    now = fx.T + 1000
    lines: list[Any] = [
        fx.file_object(fx.DOC, "handbook.md", fx.T),  # 1
        fx.as_json(fx.file_object(missing, "missing.txt", fx.T)) | {"bytes": 10},  # 2
        fx.as_json(fx.file_object(short, "short.txt", fx.T)) | {"bytes": 999},  # 3
        fx.as_json(fx.file_object(big, "big.txt", fx.T)) | {"bytes": 5000},  # 4
        fx.file_object(theirs, "theirs.txt", fx.T),  # 5: another project's id
        fx.store(),  # 6
        fx.store_file(missing),  # 7: its File was refused
        fx.store_file(fx.DOC, store_id=their_store),  # 8: another project's store
        fx.as_json(fx.thread())
        | {"tool_resources": {"file_search": {"vector_store_ids": [their_store]}}},  # 9
        fx.file_object(fx.oid("file-", "tune"), "train.jsonl", fx.T, purpose="fine-tune"),  # 10
        fx.file_object(fx.SCAN, "scan.png", fx.T, expires_at=now - 1),  # 11: expired
        fx.store_file(fx.DATA),  # 12: its File is nowhere
        fx.as_json(fx.user_message("m", "hi", fx.T))
        | {"attachments": [{"file_id": theirs, "tools": [{"type": "file_search"}]}]},  # 13
    ]
    path = tmp_path / "dump.jsonl"
    path.write_text(
        "".join(
            (o.model_dump_json() if hasattr(o, "model_dump_json") else json.dumps(o)) + "\n"
            for o in lines
        )
    )
    fx.write_bytes(path)  # the handbook, data and scan
    (tmp_path / short).write_bytes(b"twelve bytes")
    (tmp_path / big).write_bytes(b"b" * 5000)
    summary, problems = fx.run_import(database_url, path, now=now, max_file_bytes=4096)
    assert not summary.ok
    places = f"{path}.files/{missing}, {tmp_path}/files/{missing}, {tmp_path}/{missing}"
    assert problems == [
        f"{path}:10: not imported: a 'fine-tune' File belongs to another OpenAI product (only "
        "assistants, assistants_output, vision and user_data Files are served here)",
        f"{path}:2: bytes: its content is in none of {places} (a File needs its bytes)",
        f"{path}:3: bytes: {tmp_path / short} has 12 bytes, and the file object says 999",
        f"{path}:4: bytes: The file is larger than the limit of 4096 bytes.",
        f"{path}:5: id: {theirs} exists in another project ('other')",
        f"{path}:11: expires_at: the File expired at {now - 1}; it is gone",
        f"{path}:7: id: {missing} was not imported (see {path}:2)",
        f"{path}:8: vector_store_id: {their_store} is in another project ('other')",
        f"{path}:12: id: {fx.DATA} is neither in the database nor in this import",
        f"{path}:9: tool_resources.file_search.vector_store_ids[0]: {their_store} is in another "
        "project ('other')",
        f"{path}:13: thread_id: {fx.THREAD} was not imported (see {path}:9)",
    ]
    assert summary.counts["file"]["imported"] == 1 and summary.counts["file"]["refused"] == 5
    assert summary.counts["file"]["skipped"] == 1

    # A message naming another project's File is refused for it.
    fx.run_import(database_url, fx.write_jsonl(tmp_path / "t.jsonl", [fx.thread()]))
    message = fx.as_json(fx.user_message("m", "hi", fx.T))
    message["attachments"] = [{"file_id": theirs, "tools": [{"type": "file_search"}]}]
    m = fx.write_jsonl(tmp_path / "m.jsonl", [message])
    _, problems = fx.run_import(database_url, m)
    assert problems == [f"{m}:1: attachments[0].file_id: {theirs} is in another project ('other')"]


def test_the_project_quota_counts_every_file_of_a_transaction(
    database_url: str, tmp_path: Path
) -> None:
    path = fx.write_jsonl(tmp_path / "dump.jsonl", fx.file_dump()[:3])
    fx.write_bytes(path)
    quota = len(fx.DOC_BYTES) + len(fx.DATA_BYTES) + 10
    summary, problems = fx.run_import(database_url, path, max_project_file_bytes=quota)
    assert problems == [
        f"{path}:3: bytes: The file does not fit in the project's file storage quota "
        f"({quota} bytes)."
    ]
    assert summary.counts["file"]["imported"] == 2
    # Another project has its own quota.
    summary, problems = fx.run_import(
        database_url, path, project="other", max_project_file_bytes=10_000
    )
    assert problems == [
        f"{path}:1: id: {fx.DOC} exists in another project ('default')",
        f"{path}:2: id: {fx.DATA} exists in another project ('default')",
    ]


# --- idempotency -------------------------------------------------------------------------------


def test_importing_files_twice_changes_nothing_and_replace_writes_over_the_bytes(
    database_url: str, tmp_path: Path
) -> None:
    dump = fx.file_dump()
    path = fx.write_jsonl(tmp_path / "dump.jsonl", dump)
    fx.write_bytes(path)
    first, _ = fx.run_import(database_url, path)
    assert first.total("imported") == len(dump) - 1
    contents = _contents(database_url)
    assert [refs for _, _, refs in contents] == [1, 1, 1]
    before = export_to(database_url, tmp_path / "a.jsonl")[0]

    again, problems = fx.run_import(database_url, path)
    assert problems == [f"{path}:7: {BATCH_NOTE}"] and again.ok
    assert again.total("unchanged") == len(dump) - 1 and again.total("imported") == 0
    assert _contents(database_url) == contents
    assert export_to(database_url, tmp_path / "b.jsonl")[0] == before

    # New bytes for the handbook (the same name): refused, then written over with --replace.
    new = b"# Staff handbook, second edition\n\nTea steeps at 85 degrees now.\n"
    (tmp_path / "dump.jsonl.files" / fx.DOC).write_bytes(new)
    edited = [fx.as_json(o) for o in dump]
    edited[0]["bytes"] = len(new)
    edited[3]["metadata"] = {"team": "people", "edition": "2"}
    fx.write_jsonl(path, edited)
    _, problems = fx.run_import(database_url, path)
    differs = "differs from the stored object with this id (--replace overwrites it)"
    assert problems == [
        f"{path}:7: {BATCH_NOTE}",
        f"{path}:1: id: {differs}",
        f"{path}:4: id: {differs}",
    ]
    assert _stored_bytes(database_url, fx.DOC) == fx.DOC_BYTES

    replaced, problems = fx.run_import(database_url, path, replace=True)
    assert problems == [f"{path}:7: {BATCH_NOTE}"]
    assert replaced.counts["file"]["replaced"] == 1
    assert replaced.counts["vector_store"]["replaced"] == 1
    assert replaced.counts["vector_store.file"]["unchanged"] == 2
    assert _stored_bytes(database_url, fx.DOC) == new
    # The old bytes went with their last File; the new ones are counted once.
    digests = {sha: refs for sha, _, refs in _contents(database_url)}
    assert hashlib.sha256(fx.DOC_BYTES).hexdigest() not in digests
    assert digests[hashlib.sha256(new).hexdigest()] == 1
    if database_url.startswith("sqlite"):
        blobs = tmp_path / "files" / "blobs"
        names = {p.name for p in blobs.rglob("*") if p.is_file()}
        assert names == set(digests)
    exported = keyed(export_to(database_url, tmp_path / "c.jsonl")[0])
    assert exported[key(dump[3])]["metadata"] == {"team": "people", "edition": "2"}
    # The store's file is ingested again, from the new bytes.
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            row = vs.get_file(connection, fx.STORE, fx.DOC)
            assert row is not None and row["status"] == "in_progress"
    finally:
        database.dispose()


# --- export of some threads ------------------------------------------------------------------


def test_export_of_some_threads_brings_their_stores_and_files(
    database_url: str, tmp_path: Path
) -> None:
    unrelated = fx.oid("file-", "unrelated")
    fx.BYTES[unrelated] = b"nobody names me"
    path = fx.write_jsonl(
        tmp_path / "dump.jsonl",
        [
            *fx.file_dump(),
            *fx.dump(),
            fx.file_object(unrelated, "unrelated.txt", fx.T),
            fx.store(fx.oid("vs_", "unrelated")),
            fx.thread(fx.oid("thread_", "unrelated")),
        ],
    )
    fx.write_bytes(path)
    (tmp_path / unrelated).write_bytes(fx.BYTES[unrelated])
    summary, _ = fx.run_import(database_url, path)
    assert summary.ok

    lines, result = export_to(database_url, tmp_path / "some.jsonl", threads=[fx.THREAD])
    objects = [json.loads(line) for line in lines]
    assert [o["id"] for o in objects if o["object"] == "vector_store"] == [fx.STORE]
    # The assistant's store and code_interpreter file, the attachments, the store's files.
    assert sorted(o["id"] for o in objects if o["object"] == "file") == sorted(
        [fx.DOC, fx.DATA, fx.SCAN]
    )
    assert result.files_dir is not None
    assert {p.name: p.read_bytes() for p in result.files_dir.iterdir()} == {
        file_id: fx.BYTES[file_id] for file_id in (fx.DOC, fx.DATA, fx.SCAN)
    }
    # It imports on its own into an empty database.
    twin = empty_twin(database_url, tmp_path, "some.db")
    summary, problems = fx.run_import(twin, tmp_path / "some.jsonl")
    assert problems == [] and summary.total("imported") == len(objects)


# --- a crash in the middle, the command line ---------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistants_grpc", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_a_killed_import_of_files_finishes_on_a_rerun(database_url: str, tmp_path: Path) -> None:
    files = []
    for n in range(30):
        file_id = fx.oid("file-", f"many{n}")
        fx.BYTES[file_id] = f"file number {n}\n".encode() * (n + 1)
        files.append(fx.file_object(file_id, f"n{n}.txt", fx.T + n))
    path = fx.write_jsonl(tmp_path / "files.jsonl", files)
    (tmp_path / "files").mkdir()
    for obj in files:
        (tmp_path / "files" / obj.id).write_bytes(fx.BYTES[obj.id])
    data_dir = tmp_path / "data"
    args = ["import", str(path), "--database-url", database_url, "--batch-size", "10"]
    args += ["--data-dir", str(data_dir)]

    killed = _cli(*args, env={CRASH_AFTER_ENV: "15"})
    assert killed.returncode == -9, killed.stderr
    if database_url.startswith("sqlite"):
        # The killed import's copies are left behind, in its own folder.
        assert list((data_dir / "files" / "tmp").glob("import-*"))

    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[1].split() == ["file", "20", "10", "0", "0"]
    assert [refs for _, _, refs in _contents(database_url)] == [1] * 30
    if database_url.startswith("sqlite"):
        assert list((data_dir / "files" / "tmp").glob("import-*")) == []
        database = Database(database_url)
        try:
            storage = FileStorage.for_database(
                database, SystemClock(), random_id, data_dir=data_dir
            )
            with database.engine.connect() as connection:
                for obj in files:
                    row = repo.get_by_id(connection, repo.FILES, obj.id)
                    assert row is not None
                    data = b"".join(
                        storage.content.read_sync(connection, row["sha256"], row["bytes"])
                    )
                    assert data == fx.BYTES[obj.id]
        finally:
            database.dispose()


def test_cli_files_dir_and_export_to_stdout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'cli.db'}"
    path = fx.write_jsonl(tmp_path / "dump.jsonl", fx.file_dump()[:3])
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    for obj in fx.file_dump()[:3]:
        (elsewhere / obj.id).write_bytes(fx.BYTES[obj.id])  # type: ignore[attr-defined]
    done = _cli("import", str(path), "--files-dir", str(elsewhere), "--database-url", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == ["file", "3", "0", "0", "0"]

    to_stdout = _cli("export", "-", "--database-url", url)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert len(to_stdout.stdout.splitlines()) == 3
    assert "the bytes of 3 Files are not written (OUT is stdout)" in to_stdout.stderr

    out = tmp_path / "out" / "export.jsonl.gz"
    out.parent.mkdir()
    exported = _cli("export", str(out), "--database-url", url)
    assert exported.returncode == 0, exported.stderr
    assert (
        {p.name for p in (out.parent / "export.jsonl.gz.files").iterdir()}
        == {
            o.id  # type: ignore[attr-defined]
            for o in fx.file_dump()[:3]
        }
    )
    # Imported into another database, the bytes are found beside the export.
    other = f"sqlite:///{tmp_path / 'db2' / 'other.db'}"
    again = _cli("import", str(out), "--database-url", other)
    assert again.returncode == 0, again.stderr
    assert "3 imported" in again.stderr

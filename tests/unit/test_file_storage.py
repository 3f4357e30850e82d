"""The file storage on its own, over each database: uploads that fail leave nothing, shared
contents are counted exactly (concurrent uploads too), limits hold under concurrency, and the
disk store cleans up after a crash."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from assistants_grpc.clock import ManualClock
from assistants_grpc.files.storage import (
    PART_SIZE,
    DatabaseContentStore,
    DiskContentStore,
    FileLimitError,
    FilenameError,
    FileStorage,
    MissingFileError,
    clean_filename,
    default_data_dir,
)
from assistants_grpc.ids import random_id
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.dispose()


def _storage(database: Database, data_dir: Path, **limits: int | None) -> FileStorage:
    return FileStorage.for_database(
        database,
        ManualClock(),
        random_id,
        data_dir=data_dir,
        **limits,  # type: ignore[arg-type]
    )


@pytest.fixture
async def storage(database: Database, tmp_path: Path) -> AsyncIterator[FileStorage]:
    storage = _storage(database, tmp_path / "data")
    await storage.start()
    try:
        yield storage
    finally:
        storage.close()


def _contents(database: Database) -> dict[str, int]:
    rows = database.transaction_sync(
        lambda c: c.execute(select(repo.FILE_CONTENTS.c.sha256, repo.FILE_CONTENTS.c.refs)).all()
    )
    return {sha: refs for sha, refs in rows}


async def _read(storage: FileStorage, file_id: str) -> bytes:
    return b"".join([data async for data in storage.open(file_id)])


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("a.txt", "a.txt"),
        ("dir/sub/a.txt", "a.txt"),
        ("dir\\sub\\a.txt", "a.txt"),
        (" a b.txt ", "a b.txt"),
        ("x" * 255, "x" * 255),
    ],
)
def test_clean_filename_keeps_the_base_name(name: str, kept: str) -> None:
    assert clean_filename(name) == kept


@pytest.mark.parametrize("name", ["", " ", "/", "a/", "..", "a/..", ".", "a\x00", "\t", "x" * 256])
def test_clean_filename_refuses(name: str) -> None:
    with pytest.raises(FilenameError):
        clean_filename(name)


def test_the_default_data_dir_is_beside_the_sqlite_database(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    try:
        assert default_data_dir(database) == tmp_path / "sub"
    finally:
        database.dispose()


async def test_the_store_fits_the_database(storage: FileStorage, database: Database) -> None:
    kind = DatabaseContentStore if database.is_postgresql else DiskContentStore
    assert isinstance(storage.content, kind)


async def test_a_failed_upload_leaves_nothing(storage: FileStorage, database: Database) -> None:
    scratch = storage.content.scratch
    with pytest.raises(RuntimeError):
        async with storage.receive("p") as upload:
            await upload.write(b"x" * (PART_SIZE + 1))  # on a thread
            await upload.write(b"y")  # inline
            assert upload.path.exists() and upload.size == PART_SIZE + 2
            raise RuntimeError("the client went away")
    assert list(scratch.iterdir()) == []
    assert _contents(database) == {}


async def test_nothing_past_the_limit_is_written(database: Database, tmp_path: Path) -> None:
    storage = _storage(database, tmp_path / "data", max_file_bytes=10)
    await storage.start()
    try:
        async with storage.receive("p") as upload:
            await upload.write(b"0123456789")
            with pytest.raises(FileLimitError, match="10 bytes"):
                await upload.write(b"!")
            assert upload.size == 10
        with pytest.raises(FileLimitError):
            await storage.create_from_bytes("p", "a", b"x" * 11, "assistants")
        assert list(storage.content.scratch.iterdir()) == []
    finally:
        storage.close()


async def test_identical_contents_are_counted(storage: FileStorage, database: Database) -> None:
    data = b"shared" * 400_000  # 2.4 MB: three parts
    files = await asyncio.gather(
        *(storage.create_from_bytes("p", f"{i}.txt", data, "assistants") for i in range(4))
    )
    assert len({f.id for f in files}) == 4
    digest = hashlib.sha256(data).hexdigest()
    assert _contents(database) == {digest: 4}
    for file in files:
        assert await _read(storage, file.id) == data
    rows = [await storage.row(f.id) for f in files]
    for row in rows[:3]:
        assert database.transaction_sync(lambda c, row=row: storage.delete_row(c, row)) is None
    assert _contents(database) == {digest: 1}
    after = database.transaction_sync(lambda c: storage.delete_row(c, rows[3]))
    assert _contents(database) == {}
    if after is not None:
        await after()
    if isinstance(storage.content, DiskContentStore):
        assert not storage.content.blob(digest).exists()
    with pytest.raises(MissingFileError):
        await _read(storage, files[0].id)


async def test_deleting_twice_is_refused(storage: FileStorage, database: Database) -> None:
    file = await storage.create_from_bytes("p", "a.txt", b"once", "assistants")
    row = await storage.row(file.id)
    database.transaction_sync(lambda c: storage.delete_row(c, row))
    with pytest.raises(MissingFileError):
        database.transaction_sync(lambda c: storage.delete_row(c, row))
    assert _contents(database) == {}


async def test_the_quota_holds_for_concurrent_uploads(database: Database, tmp_path: Path) -> None:
    storage = _storage(database, tmp_path / "data", max_project_file_bytes=3 * PART_SIZE)
    await storage.start()
    try:
        outcomes = await asyncio.gather(
            *(
                storage.create_from_bytes("p", f"{i}", bytes([i]) * PART_SIZE, "assistants")
                for i in range(6)
            ),
            return_exceptions=True,
        )
        stored = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, FileLimitError)]
        assert len(stored) == 3 and len(refused) == 3, outcomes
        # Another project has a quota of its own.
        assert await storage.create_from_bytes("q", "x", b"x" * PART_SIZE, "assistants")
        assert list(storage.content.scratch.iterdir()) == []
    finally:
        storage.close()


async def test_expired_files_are_missing(database: Database, tmp_path: Path) -> None:
    clock = ManualClock()
    storage = FileStorage.for_database(database, clock, random_id, data_dir=tmp_path)
    await storage.start()
    try:
        file = await storage.create_from_bytes("p", "a", b"a", "assistants", expires_after=60)
        assert file.expires_at == int(clock.now()) + 60
        assert await storage.get(file.id, project="p") == file
        with pytest.raises(MissingFileError):
            await storage.get(file.id, project="other")
        clock.advance(60)
        with pytest.raises(MissingFileError):
            await storage.get(file.id)
        with pytest.raises(MissingFileError):
            await storage.spool(file.id, tmp_path)
        assert not (tmp_path / file.id).exists()
    finally:
        storage.close()


async def test_spool_takes_only_plain_names(storage: FileStorage, tmp_path: Path) -> None:
    file = await storage.create_from_bytes("p", "a", b"data", "assistants")
    for name in ("../x", "a/b", ""):
        with pytest.raises(FilenameError):
            await storage.spool(file.id, tmp_path, name=name or "..")
    path = await storage.spool(file.id, tmp_path, name="input.csv", mode=0o640)
    assert path.read_bytes() == b"data" and path.stat().st_mode & 0o777 == 0o640


async def test_the_disk_store_clears_what_a_crash_left(database: Database, tmp_path: Path) -> None:
    if database.is_postgresql:
        pytest.skip("the disk store serves SQLite")
    storage = _storage(database, tmp_path / "data")
    await storage.start()
    kept = await storage.create_from_bytes("p", "a", b"kept", "assistants")
    storage.close()
    content = storage.content
    assert isinstance(content, DiskContentStore)
    (content.scratch / "upload-crashed.part").write_bytes(b"half")
    orphan = content.blob("ab" + "0" * 62)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"renamed, never committed")

    again = _storage(database, tmp_path / "data")
    await again.start()
    try:
        assert list(content.scratch.iterdir()) == []
        assert not orphan.exists()
        assert await _read(again, kept.id) == b"kept"
    finally:
        again.close()


async def test_a_file_deleted_while_read_from_the_database(
    database: Database, tmp_path: Path
) -> None:
    if not database.is_postgresql:
        pytest.skip("an open disk file keeps its bytes; parts in the database do not")
    storage = _storage(database, tmp_path)
    await storage.start()
    try:
        file = await storage.create_from_bytes("p", "a", b"z" * (3 * PART_SIZE), "assistants")
        reader = storage.open(file.id)
        assert len(await anext(reader)) == PART_SIZE
        row = await storage.row(file.id)
        database.transaction_sync(lambda c: storage.delete_row(c, row))
        with pytest.raises(MissingFileError):
            await anext(reader)
    finally:
        storage.close()

"""Where the bytes of Files live, and the one way a File is made from bytes.

What the rest of the server calls (the storage seam; `FileService` in `services/files.py` is
the API's use of it):

- `FileStorage.open(file_id, *, project=None) -> AsyncIterator[bytes]`: the content, in parts
  of at most `PART_SIZE` (1 MiB), in order. An async generator: `async for data in
  storage.open(file_id)`. `MissingFileError` (at the first iteration) when the File does not
  exist, has expired, or is not `project`'s (when given).
- `FileStorage.spool(file_id, directory, *, project=None, name=None, mode=0o600) -> Path`: the
  content written to a new file `directory / (name or file_id)` (created exclusively, never
  through a symlink), for a subprocess extractor or a sandbox to read. Removed again if
  anything fails.
- `FileStorage.create_from_path(project, filename, path, purpose, *, expires_after=None)
  -> file_pb2.File` and `FileStorage.create_from_bytes(project, filename, data, purpose, ...)`:
  a server-side producer (code_interpreter outputs, purpose "assistants_output") makes a File.
  `purpose` is the OpenAI string (`PURPOSES`); `filename` is reduced to its base name
  (`clean_filename`); `expires_after` is seconds from now. The size limit and the project's
  quota apply (`FileLimitError`).
- `FileStorage.get(file_id, *, project=None) -> file_pb2.File` (`MissingFileError`), and, inside
  a transaction, `store.files.get_live_file(connection, file_id, now=..., project=...)`.
- Uploads: `async with storage.receive(project) as upload:`, `await upload.write(chunk)` for
  each chunk, then `await storage.create(upload, project=..., filename=..., purpose=...)`
  inside the block.
- Synchronous use, inside a caller's transaction (the `import` and `export` commands: one
  process, no event loop): `check_fits`, `add_content`, `drop_content`, `local_scratch`, and
  the content stores' `read_sync` and `discard_unreferenced_sync`.

Content is addressed by its sha256, so identical bytes are stored once (`file_contents.refs`
counts the Files sharing them, and the bytes go with the last one). Two content stores:

- `DiskContentStore` (SQLite): one file per content under `<data dir>/files/blobs/ab/abcd…`,
  written to a temporary file beside it, fsynced, renamed into place. SQLite serves one process,
  whose transactions run one at a time, so "is this content still named?" and "rename it into
  place" never interleave.
- `DatabaseContentStore` (PostgreSQL): the content in `file_parts`, 1 MiB per row, written in
  the transaction that creates the File, so every replica serves every file and nothing but the
  database needs sharing. Uploads are spooled to a private scratch directory first.

Nothing is stored until the whole content has arrived: an `Upload` is a temporary file that is
removed however its `async with` ends, unless `create` took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from assistants_grpc.clock import Clock
from assistants_grpc.contract.openai_json import enum_value
from assistants_grpc.contract.pb import file_pb2
from assistants_grpc.ids import IdGenerator
from assistants_grpc.store import files as queries
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.store.mapping import file_from_row, file_values

log = logging.getLogger(__name__)

PART_SIZE = 1024 * 1024
"""The size of a stored part and of a read: bounded memory per reader, few round trips."""
PURPOSES = ("assistants", "assistants_output", "vision", "user_data")
"""The OpenAI purpose strings a File may have."""
MAX_FILENAME = 255
DEFAULT_MAX_FILE_BYTES = 512 * 1000 * 1000  # OpenAI's "512 MB"

# Smaller writes are hashed and written on the event loop; larger ones on a thread (hashlib and
# file writes release the GIL), so a 1 MiB chunk never holds the loop for its ~1-2 ms.
_INLINE_BYTES = 64 * 1024

AfterCommit = Callable[[], Awaitable[None]]
"""Work that must wait until a transaction has committed (removing a content's blob)."""


class MissingFileError(LookupError):
    """No such File: never made, deleted, expired, or another project's."""

    def __init__(self, file_id: str) -> None:
        super().__init__(f"No file found with id '{file_id}'.")
        self.file_id = file_id


class FileLimitError(Exception):
    """A File would pass the size limit or (`quota`) its project's quota; nothing was stored."""

    def __init__(self, message: str, *, quota: bool = False) -> None:
        super().__init__(message)
        self.quota = quota


class FilenameError(ValueError):
    """A filename that cannot be kept (empty, a bare directory name, control characters)."""


def clean_filename(name: str) -> str:
    """The name a File keeps: the base name (after the last `/` or `\\`), at most
    MAX_FILENAME characters, without control characters. FilenameError says what is wrong."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in (".", ".."):
        raise FilenameError("must name a file, not be empty or a directory.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in base):
        raise FilenameError("must not contain control characters.")
    if len(base) > MAX_FILENAME:
        raise FilenameError(
            f"string too long. Expected a string with maximum length {MAX_FILENAME}, "
            f"but got a string with length {len(base)} instead."
        )
    return base


def default_data_dir(database: Database) -> Path:
    """Where local data lives when no `--data-dir` is given: beside the SQLite database (the
    default `data/`), or `data/` for a database that is no file."""
    database_file = database.engine.url.database
    if database.is_sqlite and database_file and database_file != ":memory:":
        if not database_file.startswith("file:"):
            return Path(database_file).expanduser().parent
    return Path("data")


def _fsync_directory(directory: Path) -> None:
    # A rename is durable once the directory entry is (POSIX); without this an OS crash could
    # lose a File whose row was committed.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- uploads --------------------------------------------------------------------------------


class Upload:
    """Bytes arriving for a new File: counted, hashed and written to a temporary file as they
    come, never held whole in memory. Writing past the size limit or the project's remaining
    quota raises FileLimitError before anything past it is written."""

    def __init__(self, directory: Path, *, max_bytes: int, quota_left: int | None) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._max_bytes = max_bytes
        self._quota_left = quota_left
        self._pending: asyncio.Future[None] | None = None
        self.size = 0
        self.sha256: str | None = None

    async def write(self, data: bytes) -> None:
        size = self.size + len(data)
        if size > self._max_bytes:
            raise FileLimitError(f"The file is larger than the limit of {self._max_bytes} bytes.")
        if self._quota_left is not None and size > self._quota_left:
            raise FileLimitError(
                "The file does not fit in the project's file storage quota "
                f"({self._quota_left} bytes left).",
                quota=True,
            )
        if len(data) < _INLINE_BYTES:
            self._write(data)
        else:
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._write, data))
            await self._pending
        self.size = size

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    async def finish(self) -> str:
        """All bytes are in: flush them to disk; the content's sha256."""
        if self.sha256 is None:
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._sync))
            await self._pending
            self.sha256 = self._hash.hexdigest()
        return self.sha256

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    async def discard(self) -> None:
        """Remove the temporary file (after a write still running on its thread is done)."""
        if self._pending is not None and not self._pending.done():
            await asyncio.wait([self._pending])
        self._file.close()
        self.path.unlink(missing_ok=True)


# --- content stores -------------------------------------------------------------------------


class ContentStore(Protocol):
    """Where content bytes live, by sha256. `put` and `remove` run inside the transaction that
    made or dropped the content's row."""

    scratch: Path
    """A directory for temporary files (on the blobs' filesystem, for the disk store)."""

    async def start(self) -> None: ...
    def close(self) -> None: ...
    def put(self, connection: Connection, sha256: str, source: Path) -> None: ...
    def remove(self, connection: Connection, sha256: str) -> AfterCommit | None: ...
    async def discard_unreferenced(self, sha256: str) -> None: ...
    def read(self, sha256: str, size: int) -> AsyncIterator[bytes]: ...
    def read_sync(self, connection: Connection, sha256: str, size: int) -> Iterator[bytes]: ...
    def discard_unreferenced_sync(self, connection: Connection, sha256: str) -> None: ...


class DiskContentStore:
    """Contents as files under `root/blobs`, temporary files under `root/tmp` (SQLite: one
    process, so nothing else writes here)."""

    def __init__(self, database: Database, root: Path) -> None:
        self._database = database
        self.root = root
        self.blobs = root / "blobs"
        self.scratch = root / "tmp"

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    async def start(self) -> None:
        """Make the directories, and clear what a crash left: temporary files, and blobs whose
        rename happened but whose transaction did not commit."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)
        for leftover in self.scratch.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
        known = await self._database.transaction(queries.content_names)
        for folder in self.blobs.iterdir():
            for blob in folder.iterdir() if folder.is_dir() else ():
                if blob.name not in known:
                    log.info("removing unreferenced content %s", blob.name)
                    blob.unlink(missing_ok=True)

    def close(self) -> None:
        pass

    def put(self, connection: Connection, sha256: str, source: Path) -> None:
        target = self.blob(sha256)
        target.parent.mkdir(exist_ok=True)
        os.replace(source, target)
        _fsync_directory(target.parent)

    def remove(self, connection: Connection, sha256: str) -> AfterCommit | None:
        async def after_commit() -> None:
            await self.discard_unreferenced(sha256)

        return after_commit

    async def discard_unreferenced(self, sha256: str) -> None:
        def work(connection: Connection) -> None:
            # Checked and removed in one transaction: an upload of the same bytes either made
            # its row before (the blob stays) or renames its blob into place after.
            if not queries.content_exists(connection, sha256):
                self.blob(sha256).unlink(missing_ok=True)

        await self._database.transaction(work)

    async def read(self, sha256: str, size: int) -> AsyncIterator[bytes]:
        try:
            source = self.blob(sha256).open("rb")
        except FileNotFoundError:
            log.error("the content %s of a stored file is missing from %s", sha256, self.blobs)
            raise
        # An open file keeps its bytes readable even if the File is deleted meanwhile.
        with source:
            while data := await asyncio.to_thread(source.read, PART_SIZE):
                yield data

    def read_sync(self, connection: Connection, sha256: str, size: int) -> Iterator[bytes]:
        """`read` without an event loop (FileNotFoundError if the blob is gone)."""
        with self.blob(sha256).open("rb") as source:
            while data := source.read(PART_SIZE):
                yield data

    def discard_unreferenced_sync(self, connection: Connection, sha256: str) -> None:
        """`discard_unreferenced` in the caller's transaction."""
        if not queries.content_exists(connection, sha256):
            self.blob(sha256).unlink(missing_ok=True)


class DatabaseContentStore:
    """Contents in `file_parts`, PART_SIZE bytes a row (PostgreSQL: every replica reads them)."""

    def __init__(self, database: Database, scratch_parent: Path | None = None) -> None:
        self._database = database
        self._scratch_parent = scratch_parent
        self.scratch = Path()

    async def start(self) -> None:
        # Private to this process: replicas may share a host and a data directory.
        if self._scratch_parent is not None:
            self._scratch_parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(
            tempfile.mkdtemp(prefix="assistants-grpc-files-", dir=self._scratch_parent)
        )

    def close(self) -> None:
        if self.scratch != Path():
            shutil.rmtree(self.scratch, ignore_errors=True)

    def put(self, connection: Connection, sha256: str, source: Path) -> None:
        # On PostgreSQL this runs on a database thread, not the event loop.
        with source.open("rb") as data:
            seq = 0
            while part := data.read(PART_SIZE):
                queries.insert_part(connection, sha256, seq, part)
                seq += 1

    def remove(self, connection: Connection, sha256: str) -> AfterCommit | None:
        queries.delete_parts(connection, sha256)
        return None

    async def discard_unreferenced(self, sha256: str) -> None:
        pass  # its parts were written in the transaction that failed: rolled back with it

    async def read(self, sha256: str, size: int) -> AsyncIterator[bytes]:
        for seq in range(-(-size // PART_SIZE)):
            data = await self._database.transaction(
                lambda c, seq=seq: queries.read_part(c, sha256, seq)  # type: ignore[misc]
            )
            if data is None:  # the File was deleted while it was being read
                raise FileNotFoundError(sha256)
            yield data

    def read_sync(self, connection: Connection, sha256: str, size: int) -> Iterator[bytes]:
        """`read` in the caller's transaction (an export reads its own snapshot)."""
        for seq in range(-(-size // PART_SIZE)):
            data = queries.read_part(connection, sha256, seq)
            if data is None:
                raise FileNotFoundError(sha256)
            yield data

    def discard_unreferenced_sync(self, connection: Connection, sha256: str) -> None:
        pass  # parts go with their content row, in the same transaction


# --- the API --------------------------------------------------------------------------------


class FileStorage:
    """Files and their content: making, reading, spooling and releasing them."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        new_id: IdGenerator,
        content: ContentStore,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_project_file_bytes: int | None = None,
    ) -> None:
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be at least 1, got {max_file_bytes}")
        if max_project_file_bytes is not None and max_project_file_bytes < 1:
            raise ValueError(
                f"max_project_file_bytes must be at least 1, got {max_project_file_bytes}"
            )
        self._database = database
        self._clock = clock
        self._new_id = new_id
        self.content = content
        self.max_file_bytes = max_file_bytes
        self.max_project_file_bytes = max_project_file_bytes

    @classmethod
    def for_database(
        cls,
        database: Database,
        clock: Clock,
        new_id: IdGenerator,
        *,
        data_dir: Path | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_project_file_bytes: int | None = None,
    ) -> FileStorage:
        """The storage that fits the database: files on disk beside SQLite, parts in
        PostgreSQL (its scratch directory under `data_dir` if one is given, else the system's
        temporary directory)."""
        content: ContentStore
        if database.is_postgresql:
            content = DatabaseContentStore(database, data_dir)
        else:
            content = DiskContentStore(database, (data_dir or default_data_dir(database)) / "files")
        return cls(
            database,
            clock,
            new_id,
            content,
            max_file_bytes=max_file_bytes,
            max_project_file_bytes=max_project_file_bytes,
        )

    async def start(self) -> None:
        await self.content.start()

    def close(self) -> None:
        self.content.close()

    def now(self) -> int:
        return int(self._clock.now())

    # --- making Files ---------------------------------------------------------------------

    async def quota_left(self, project: str) -> int | None:
        """Bytes the project may still store; None without a quota."""
        quota = self.max_project_file_bytes
        if quota is None:
            return None
        now = self.now()
        used = await self._database.transaction(
            lambda c: queries.project_usage(c, project, now=now)
        )
        return max(0, quota - used)

    # --- Files made inside a caller's transaction (the import command) ---------------------

    def local_scratch(self) -> Path | None:
        """Where bytes for `add_content` are copied first when only a rename may put them in
        place (the disk store: beside its blobs, on their filesystem; made here, without the
        clean-up `start` does, which is the server's); None when any directory will do (the
        database store reads them into parts)."""
        if not isinstance(self.content, DiskContentStore):
            return None
        self.content.blobs.mkdir(parents=True, exist_ok=True)
        self.content.scratch.mkdir(parents=True, exist_ok=True)
        return self.content.scratch

    def check_fits(
        self, connection: Connection, project: str, size: int, *, now: int, pending: int = 0
    ) -> None:
        """FileLimitError unless a File of `size` bytes passes neither the size limit nor the
        project's quota, counting `pending` bytes the caller's transaction adds beside it (rows
        not written yet). Serialises the project's quota checks until the transaction ends, as
        `create` does."""
        if size > self.max_file_bytes:
            raise FileLimitError(
                f"The file is larger than the limit of {self.max_file_bytes} bytes."
            )
        quota = self.max_project_file_bytes
        if quota is None:
            return
        queries.lock_project_files(connection, project)
        if queries.project_usage(connection, project, now=now) + pending + size > quota:
            raise FileLimitError(
                f"The file does not fit in the project's file storage quota ({quota} bytes).",
                quota=True,
            )

    def add_content(
        self, connection: Connection, sha256: str, size: int, source: Path | None, *, now: int
    ) -> bool:
        """Count one more File of this content, in the transaction that writes the File's row:
        its bytes are stored from `source` (moved or read; a file the caller made for it) when
        they are new. False, storing nothing, when they are new and there is no `source`."""
        if queries.content_exists(connection, sha256):
            queries.add_content_ref(connection, sha256, size, now=now)
            return True
        if source is None:
            return False
        queries.add_content_ref(connection, sha256, size, now=now)
        self.content.put(connection, sha256, source)
        return True

    def drop_content(self, connection: Connection, sha256: str) -> bool:
        """Count one File fewer of this content (its File now has other bytes). True when they
        were the last: on disk the caller then runs `content.discard_unreferenced_sync` once
        the transaction has committed; in the database their parts are gone already."""
        if not queries.drop_content_ref(connection, sha256):
            return False
        self.content.remove(connection, sha256)  # the disk store's after-commit is the caller's
        return True

    @contextlib.asynccontextmanager
    async def receive(self, project: str) -> AsyncIterator[Upload]:
        """A new upload for the project, removed however the block ends unless `create` took
        it. Its limit is the size limit and what the project's quota has left (checked again
        when the File is made)."""
        upload = Upload(
            self.content.scratch,
            max_bytes=self.max_file_bytes,
            quota_left=await self.quota_left(project),
        )
        try:
            yield upload
        finally:
            await upload.discard()

    async def create(
        self,
        upload: Upload,
        *,
        project: str,
        filename: str,
        purpose: str,
        expires_after: int | None = None,
    ) -> file_pb2.File:
        """Make a File of everything `upload` received. The content is stored (unless the same
        bytes already are) in the transaction that inserts the File."""
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
        filename = clean_filename(filename)
        digest = await upload.finish()
        now = self.now()
        file = file_pb2.File(
            id=self._new_id("file"),
            bytes=upload.size,
            created_at=now,
            filename=filename,
            purpose=enum_value(file_pb2.FilePurpose, purpose),
        )
        if expires_after is not None:
            file.expires_at = now + expires_after
        values = file_values(file) | {"project": project, "sha256": digest}
        quota = self.max_project_file_bytes

        def work(connection: Connection) -> None:
            if quota is not None:
                queries.lock_project_files(connection, project)
                if queries.project_usage(connection, project, now=now) + upload.size > quota:
                    raise FileLimitError(
                        "The file does not fit in the project's file storage quota "
                        f"({quota} bytes).",
                        quota=True,
                    )
            if queries.add_content_ref(connection, digest, upload.size, now=now):
                self.content.put(connection, digest, upload.path)
            repo.insert_row(connection, repo.FILES, values)

        try:
            try:
                await self._database.transaction(work)
            except IntegrityError:
                # A concurrent upload of the same new bytes made the content row first (on
                # PostgreSQL); now this one finds it and only counts itself.
                await self._database.transaction(work)
        except BaseException:
            await self.content.discard_unreferenced(digest)
            raise
        return file

    async def create_from_path(
        self,
        project: str,
        filename: str,
        path: Path,
        purpose: str,
        *,
        expires_after: int | None = None,
    ) -> file_pb2.File:
        """A File with the content of the file at `path` (which is left as it is), read in
        parts; the size limit and the project's quota apply (FileLimitError)."""
        async with self.receive(project) as upload:
            with path.open("rb") as source:
                while data := await asyncio.to_thread(source.read, PART_SIZE):
                    await upload.write(data)
            return await self.create(
                upload,
                project=project,
                filename=filename,
                purpose=purpose,
                expires_after=expires_after,
            )

    async def create_from_bytes(
        self,
        project: str,
        filename: str,
        data: bytes,
        purpose: str,
        *,
        expires_after: int | None = None,
    ) -> file_pb2.File:
        """A File with `data` as its content (a small output already in memory)."""
        async with self.receive(project) as upload:
            for start in range(0, len(data), PART_SIZE):
                await upload.write(data[start : start + PART_SIZE])
            return await self.create(
                upload,
                project=project,
                filename=filename,
                purpose=purpose,
                expires_after=expires_after,
            )

    # --- reading Files --------------------------------------------------------------------

    async def row(self, file_id: str, *, project: str | None = None) -> RowMapping:
        """The live File's row; MissingFileError if there is none."""
        now = self.now()
        row = await self._database.transaction(
            lambda c: queries.get_live_file(c, file_id, now=now, project=project)
        )
        if row is None:
            raise MissingFileError(file_id)
        return row

    async def get(self, file_id: str, *, project: str | None = None) -> file_pb2.File:
        return file_from_row(await self.row(file_id, project=project))

    async def open(self, file_id: str, *, project: str | None = None) -> AsyncIterator[bytes]:
        """The File's content in parts of at most PART_SIZE bytes, in order."""
        row = await self.row(file_id, project=project)
        try:
            async for data in self.content.read(row["sha256"], row["bytes"]):
                yield data
        except FileNotFoundError:
            raise MissingFileError(file_id) from None

    async def spool(
        self,
        file_id: str,
        directory: Path,
        *,
        project: str | None = None,
        name: str | None = None,
        mode: int = 0o600,
    ) -> Path:
        """Write the File's content to a new file in `directory`, named `name` (a base name)
        or the File's id; the path written. The file is created exclusively and never through
        a symlink; if anything fails it is removed again."""
        name = name or file_id
        if clean_filename(name) != name:
            raise FilenameError(f"{name!r} is not a plain file name.")
        target = directory / name
        await self.row(file_id, project=project)  # nothing is created for a missing File
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            with os.fdopen(fd, "wb") as out:
                async for data in self.open(file_id, project=project):
                    await asyncio.to_thread(out.write, data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    # --- dropping Files -------------------------------------------------------------------

    def delete_row(self, connection: Connection, row: RowMapping) -> AfterCommit | None:
        """Delete a File's row (found in this transaction) and release its content: when it
        was the last File of those bytes, they go too. Returns what must run after the commit.
        MissingFileError if a concurrent transaction deleted the row first."""
        if not repo.delete_by_id(connection, repo.FILES, row["id"]):
            raise MissingFileError(row["id"])
        if not queries.drop_content_ref(connection, row["sha256"]):
            return None
        return self.content.remove(connection, row["sha256"])


async def run_after_commit(actions: list[AfterCommit]) -> None:
    """Run what deletions left for after their commit; a failure is logged, not raised (the
    File is gone; a blob left behind is removed at the next start)."""
    for action in actions:
        try:
            await action()
        except Exception:
            log.exception("could not remove a deleted file's content")


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_FILENAME",
    "PART_SIZE",
    "PURPOSES",
    "AfterCommit",
    "ContentStore",
    "DatabaseContentStore",
    "DiskContentStore",
    "FileLimitError",
    "FileStorage",
    "FilenameError",
    "MissingFileError",
    "Upload",
    "clean_filename",
    "default_data_dir",
    "run_after_commit",
]

"""File use cases: upload (a client stream), get, list, download, delete with its cascade, and
the sweep of expired files. The bytes themselves are `files.storage`'s; this is what the API
asks of them, within the caller's project.

An upload is `metadata` first, then `chunk`s (CONTRACT.md §12; DESIGN.md "FileService"); the
metadata is checked before any byte is read, so a bad filename or purpose costs no transfer.
Deleting a File removes it from every place that names it, in the deleting transaction:
`tool_resources.code_interpreter.file_ids` of the project's assistants and threads, the
attachments of its messages (the attachment entry is dropped), and whatever the `on_delete`
hooks remove (the vector stores' files). A File past its `expires_at` reads as NOT_FOUND at
once; the sweep then deletes it the same way, on whichever replica gets there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping

from assistants_grpc.contract.openai_json import enum_name
from assistants_grpc.contract.pb import file_pb2
from assistants_grpc.files.storage import (
    AfterCommit,
    FileLimitError,
    FilenameError,
    FileStorage,
    MissingFileError,
    clean_filename,
    run_after_commit,
)
from assistants_grpc.services import validation as check
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.errors import (
    FileQuotaError,
    FileTooLargeError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from assistants_grpc.services.listing import list_in
from assistants_grpc.store import files as queries
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import file_from_row

log = logging.getLogger(__name__)

FileDeleteHook = Callable[[Connection, str, str], None]
"""`hook(connection, project, file_id)`, run in the transaction that deletes a File (by the API
or the sweep), after its tool resources and attachments are cleaned and before its row goes: the
place for every other owner of references to Files (vector stores) to drop them."""

# OpenAI's file list pages up to 10,000 files and returns that many by default.
LIST_LIMIT = 10_000
# CONTRACT.md §12: expires_after.seconds, anchored at created_at.
MIN_EXPIRES_AFTER = 3600
MAX_EXPIRES_AFTER = 2_592_000
EXPIRES_ANCHOR = "created_at"
SWEEP_INTERVAL = 60.0
Afterwards = list[AfterCommit]
SWEEP_BATCH = 100


@dataclass(frozen=True)
class _Upload:
    """What an upload's metadata asks for, checked."""

    filename: str
    purpose: str
    expires_after: int | None


def _check_metadata(first: file_pb2.UploadFileRequest | None) -> _Upload:
    if first is None or first.WhichOneof("part") != "metadata":
        raise InvalidArgumentError.single(
            "metadata", "required: the first message of an upload must carry the metadata."
        )
    metadata = first.metadata
    v = check.Violations()
    filename = ""
    if not metadata.filename:
        v.add("filename", "required.")
    else:
        try:
            filename = clean_filename(metadata.filename)
        except FilenameError as error:
            v.add("filename", str(error))
    check.check_enum(v, "purpose", metadata.purpose, file_pb2.FilePurpose, required=True)
    if metadata.purpose == file_pb2.FILE_PURPOSE_ASSISTANTS_OUTPUT:
        v.add(
            "purpose",
            "'assistants_output' is the purpose of files the tools write; upload with "
            "'assistants', 'vision' or 'user_data'.",
        )
    expires_after = None
    if metadata.HasField("expires_after"):
        policy = metadata.expires_after
        if policy.anchor != EXPIRES_ANCHOR:
            v.add("expires_after.anchor", f"must be '{EXPIRES_ANCHOR}'.")
        if not MIN_EXPIRES_AFTER <= policy.seconds <= MAX_EXPIRES_AFTER:
            v.add(
                "expires_after.seconds",
                f"must be between {MIN_EXPIRES_AFTER} and {MAX_EXPIRES_AFTER}, "
                f"got {policy.seconds}.",
            )
        expires_after = policy.seconds
    v.raise_if_any()
    purpose = enum_name(file_pb2.FilePurpose, metadata.purpose) or ""  # checked: never ""
    return _Upload(filename, purpose, expires_after)


def limit_error(error: FileLimitError) -> ResourceExhaustedError:
    """The API's error for a File past the size limit or its project's quota."""
    return (FileQuotaError if error.quota else FileTooLargeError)(str(error))


def _without_file(resources: Any, file_id: str) -> dict[str, Any] | None:
    """Tool resources (OpenAI JSON) without the file among code_interpreter's files; None if
    it was not there."""
    if not isinstance(resources, dict):
        return None
    code = resources.get("code_interpreter")
    if not isinstance(code, dict) or file_id not in (code.get("file_ids") or ()):
        return None
    kept = [f for f in code["file_ids"] if f != file_id]
    return {**resources, "code_interpreter": {**code, "file_ids": kept}}


def remove_references(connection: Connection, project: str, file_id: str) -> None:
    """Take the file out of the project's assistants' and threads' code_interpreter file ids,
    and drop the attachments of its messages that name it."""
    for table, naming in (
        (repo.ASSISTANTS, queries.assistants_naming),
        (repo.THREADS, queries.threads_naming),
    ):
        for row in naming(connection, project, file_id):
            kept = _without_file(row["tool_resources"], file_id)
            if kept is not None:
                repo.update_by_id(connection, table, row["id"], {"tool_resources": kept})
    for row in queries.messages_naming(connection, project, file_id):
        attachments = [a for a in row["attachments"] if a.get("file_id") != file_id]
        if len(attachments) != len(row["attachments"]):
            repo.update_by_id(connection, repo.MESSAGES, row["id"], {"attachments": attachments})


class FileService:
    def __init__(
        self,
        deps: Dependencies,
        storage: FileStorage,
        *,
        on_delete: Sequence[FileDeleteHook] = (),
    ) -> None:
        self._deps = deps
        self.storage = storage
        # Other owners of references to Files add theirs here (wiring, before serving).
        self.on_delete: list[FileDeleteHook] = list(on_delete)
        self._sweeper: asyncio.Task[None] | None = None

    async def upload(
        self, project: str, requests: AsyncIterator[file_pb2.UploadFileRequest]
    ) -> file_pb2.File:
        """The File an upload stream makes. Nothing is stored unless the stream ends well: an
        error, a cancel or a limit leaves no File and no temporary file."""
        wanted = _check_metadata(await anext(requests, None))
        try:
            async with self.storage.receive(project) as upload:
                async for request in requests:
                    case = request.WhichOneof("part")
                    if case == "metadata":
                        raise InvalidArgumentError.single(
                            "metadata", "only the first message of an upload may carry it."
                        )
                    if case != "chunk":
                        raise InvalidArgumentError.single(
                            "chunk", "required in every message after the first."
                        )
                    await upload.write(request.chunk)
                return await self.storage.create(
                    upload,
                    project=project,
                    filename=wanted.filename,
                    purpose=wanted.purpose,
                    expires_after=wanted.expires_after,
                )
        except FileLimitError as error:
            raise limit_error(error) from None

    async def create_from_path(
        self, project: str, filename: str, path: Path, purpose: str
    ) -> file_pb2.File:
        """A File of a file the server has (a tool's output), with the API's errors."""
        try:
            return await self.storage.create_from_path(project, filename, path, purpose)
        except FileLimitError as error:
            raise limit_error(error) from None

    async def get(self, project: str, file_id: str) -> file_pb2.File:
        return file_from_row(await self._row(project, file_id))

    async def _row(self, project: str, file_id: str) -> RowMapping:
        if not check.plausible_id(file_id):
            raise NotFoundError("file", file_id)
        try:
            return await self.storage.row(file_id, project=project)
        except MissingFileError:
            raise NotFoundError("file", file_id) from None

    async def list(
        self, project: str, request: file_pb2.ListFilesRequest
    ) -> file_pb2.ListFilesResponse:
        v = check.Violations()
        if request.HasField("purpose"):
            check.check_enum(v, "purpose", request.purpose, file_pb2.FilePurpose, required=False)
        v.raise_if_any()
        scope = [repo.FILES.c.project == project, queries.live(self._deps.now())]
        purpose = enum_name(file_pb2.FilePurpose, request.purpose)
        if purpose is not None:
            scope.append(repo.FILES.c.purpose == purpose)
        return await self._deps.database.transaction(
            lambda c: list_in(
                c,
                request,
                repo.FILES,
                scope,
                file_from_row,
                file_pb2.ListFilesResponse(),
                default_limit=LIST_LIMIT,
                max_limit=LIST_LIMIT,
            )
        )

    async def content(
        self, project: str, file_id: str
    ) -> AsyncGenerator[file_pb2.FileContentChunk]:
        """The File's bytes, in chunks of at most 1 MiB."""
        if not check.plausible_id(file_id):
            raise NotFoundError("file", file_id)
        try:
            async for data in self.storage.open(file_id, project=project):
                yield file_pb2.FileContentChunk(data=data)
        except MissingFileError:
            raise NotFoundError("file", file_id) from None

    async def delete(self, project: str, file_id: str) -> file_pb2.DeleteFileResponse:
        if not check.plausible_id(file_id):
            raise NotFoundError("file", file_id)
        now = self._deps.now()

        def work(connection: Connection) -> Afterwards:
            row = queries.get_live_file(connection, file_id, now=now, project=project)
            if row is None:
                raise NotFoundError("file", file_id)
            return self._delete(connection, row)

        try:
            after = await self._deps.database.transaction(work)
        except MissingFileError:  # deleted by a concurrent call meanwhile
            raise NotFoundError("file", file_id) from None
        await run_after_commit(after)
        return file_pb2.DeleteFileResponse(id=file_id, deleted=True)

    def _delete(self, connection: Connection, row: RowMapping) -> Afterwards:
        """Everything deleting one File does, inside the caller's transaction."""
        project, file_id = row["project"], row["id"]
        remove_references(connection, project, file_id)
        for hook in self.on_delete:
            hook(connection, project, file_id)
        after = self.storage.delete_row(connection, row)
        return [after] if after is not None else []

    # --- expiry ---------------------------------------------------------------------------

    async def sweep_expired(self, *, limit: int = SWEEP_BATCH) -> int:
        """Delete Files expired by the injected clock, at most `limit`; how many it deleted."""
        now = self._deps.now()
        expired = await self._deps.database.transaction(
            lambda c: queries.expired_files(c, now=now, limit=limit)
        )
        deleted = 0
        for file_id, _ in expired:

            def work(connection: Connection, file_id: str = file_id) -> Afterwards | None:
                row = repo.get_by_id(connection, repo.FILES, file_id)
                if row is None or row["expires_at"] is None or row["expires_at"] > now:
                    return None  # swept elsewhere meanwhile
                return self._delete(connection, row)

            try:
                after = await self._deps.database.transaction(work)
            except MissingFileError:
                continue
            if after is not None:
                await run_after_commit(after)
                deleted += 1
        return deleted

    def start_sweeping(self, interval: float = SWEEP_INTERVAL) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(interval), name="file-sweep")

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                while await self.sweep_expired() == SWEEP_BATCH:
                    pass  # a backlog: go on at once
            except Exception:
                log.exception("file sweep failed; retrying")

    async def stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None


__all__ = [
    "LIST_LIMIT",
    "MAX_EXPIRES_AFTER",
    "MIN_EXPIRES_AFTER",
    "FileDeleteHook",
    "FileService",
    "limit_error",
    "remove_references",
]

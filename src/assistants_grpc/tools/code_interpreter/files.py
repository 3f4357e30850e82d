"""The Files a code session reads and makes, behind one small interface.

`SandboxFiles` is all the executor needs: which files a thread's messages attach for
code_interpreter, a File's name and size, its content in parts, and a new File
(`assistants_output`) from bytes the code made. `StorageFiles` is the real one, on the files
store (`files/storage.py`) and the database; `MemoryFiles` serves the unit tests.
Every lookup is scoped to the run's project: another project's file id is as absent as one
that never existed.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, select, text

from assistants_grpc.files.storage import FileStorage, MissingFileError
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database

OUTPUT_PURPOSE = "assistants_output"
TOOL_TYPE = "code_interpreter"


@dataclass(frozen=True, slots=True)
class InputFile:
    file_id: str
    filename: str
    size: int


class SandboxFiles(Protocol):
    async def attached(self, thread_id: str) -> list[str]:
        """Ids of the files the thread's messages attach with the code_interpreter tool, in
        the order they were attached."""
        ...

    async def describe(self, project: str, file_id: str) -> InputFile | None:
        """The project's live File, or None."""
        ...

    def content(self, project: str, file_id: str) -> AsyncIterator[bytes]: ...

    async def create_output(self, project: str, filename: str, data: bytes) -> str:
        """A new File (purpose assistants_output) with `data`; its id."""
        ...


def attached_ids(attachments: Sequence[Any]) -> list[str]:
    """The file ids of message attachments (OpenAI JSON) that name the code_interpreter tool."""
    ids: list[str] = []
    for attachment in attachments:
        if not isinstance(attachment, dict):
            continue
        tools = attachment.get("tools") or []
        file_id = attachment.get("file_id")
        if isinstance(file_id, str) and any(
            isinstance(t, dict) and t.get("type") == TOOL_TYPE for t in tools
        ):
            ids.append(file_id)
    return ids


class StorageFiles:
    """`SandboxFiles` on the server's file storage and database."""

    def __init__(self, storage: FileStorage, database: Database) -> None:
        self._storage = storage
        self._database = database

    async def attached(self, thread_id: str) -> list[str]:
        def work(connection: Connection) -> list[str]:
            # The predicate of the messages' attachments index, word for word (store/files.py).
            has_attachments = text(
                "CAST(messages.attachments AS TEXT) <> '[]'"
                if connection.dialect.name == "postgresql"
                else "messages.attachments <> '[]'"
            )
            query = (
                select(repo.MESSAGES.c.attachments)
                .where(repo.MESSAGES.c.thread_id == bindparam("thread_id"), has_attachments)
                .order_by(repo.MESSAGES.c.pk)
            )
            rows = connection.execute(query, {"thread_id": thread_id}).scalars()
            return list(itertools.chain.from_iterable(attached_ids(r or []) for r in rows))

        return await self._database.transaction(work)

    async def describe(self, project: str, file_id: str) -> InputFile | None:
        try:
            file = await self._storage.get(file_id, project=project)
        except MissingFileError:
            return None
        return InputFile(file.id, file.filename, file.bytes)

    async def content(self, project: str, file_id: str) -> AsyncIterator[bytes]:
        async for data in self._storage.open(file_id, project=project):
            yield data

    async def create_output(self, project: str, filename: str, data: bytes) -> str:
        file = await self._storage.create_from_bytes(project, filename, data, OUTPUT_PURPOSE)
        return file.id


class MemoryFiles:
    """`SandboxFiles` in memory, for tests: `files[id] = (project, filename, bytes, purpose)`."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, str, bytes, str]] = {}
        self.attachments: dict[str, list[str]] = {}
        self._ids = itertools.count(1)

    def add(self, project: str, filename: str, data: bytes, purpose: str = "assistants") -> str:
        file_id = f"file-test{next(self._ids):06d}"
        self.files[file_id] = (project, filename, data, purpose)
        return file_id

    async def attached(self, thread_id: str) -> list[str]:
        return list(self.attachments.get(thread_id, []))

    async def describe(self, project: str, file_id: str) -> InputFile | None:
        entry = self.files.get(file_id)
        if entry is None or entry[0] != project:
            return None
        return InputFile(file_id, entry[1], len(entry[2]))

    async def content(self, project: str, file_id: str) -> AsyncIterator[bytes]:
        data = self.files[file_id][2]
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    async def create_output(self, project: str, filename: str, data: bytes) -> str:
        return self.add(project, filename, data, OUTPUT_PURPOSE)


__all__ = [
    "OUTPUT_PURPOSE",
    "InputFile",
    "MemoryFiles",
    "SandboxFiles",
    "StorageFiles",
    "attached_ids",
]

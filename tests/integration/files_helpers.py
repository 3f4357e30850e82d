"""Uploading and downloading Files through the generated stubs, for the tests that need some."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from sqlalchemy import create_engine, func, select

from assistants_grpc.contract.pb import file_pb2, file_pb2_grpc
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import normalize_url
from tests.conftest import Stubs

F = file_pb2
MIB = 1024 * 1024


def upload_requests(
    data: bytes,
    filename: str = "notes.txt",
    purpose: int = F.FILE_PURPOSE_ASSISTANTS,
    *,
    chunk: int = MIB,
    expires_after: int | None = None,
) -> Iterator[file_pb2.UploadFileRequest]:
    metadata = F.UploadFileMetadata(filename=filename, purpose=purpose)
    if expires_after is not None:
        metadata.expires_after.CopyFrom(
            F.FileExpiresAfter(anchor="created_at", seconds=expires_after)
        )
    yield F.UploadFileRequest(metadata=metadata)
    for start in range(0, len(data), chunk):
        yield F.UploadFileRequest(chunk=data[start : start + chunk])


async def upload(s: Stubs, data: bytes, filename: str = "notes.txt", **options: Any) -> F.File:
    return await s.files.UploadFile(upload_requests(data, filename, **options))


async def download(s: Stubs, file_id: str) -> bytes:
    stream = s.files.GetFileContent(F.GetFileContentRequest(file_id=file_id))
    return b"".join([chunk.data async for chunk in stream])


async def blocking_upload(
    target: str, requests: Iterable[file_pb2.UploadFileRequest]
) -> file_pb2.File | grpc.RpcError:
    """An upload through the blocking client, in a thread: the File, or the error.

    For uploads the server ends early (a limit): the asyncio client has a race there that may
    report INTERNAL ("Failed execute_batch") instead of the server's status, when a write is in
    flight as the server ends the call (grpc/grpc#36066); the blocking client reports it."""

    def call() -> file_pb2.File | grpc.RpcError:
        with grpc.insecure_channel(target) as channel:
            try:
                return file_pb2_grpc.FileServiceStub(channel).UploadFile(iter(requests))
            except grpc.RpcError as error:
                return error

    return await asyncio.to_thread(call)


def count_rows(database_url: str, table: Any) -> int:
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def stored_rows(database_url: str) -> dict[str, int]:
    """How many files, contents and parts the database holds."""
    return {
        name: count_rows(database_url, table)
        for name, table in (
            ("files", repo.FILES),
            ("contents", repo.FILE_CONTENTS),
            ("parts", repo.FILE_PARTS),
        )
    }


__all__ = [
    "MIB",
    "blocking_upload",
    "count_rows",
    "download",
    "stored_rows",
    "upload",
    "upload_requests",
]

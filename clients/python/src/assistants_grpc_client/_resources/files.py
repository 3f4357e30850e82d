"""`client.files`: FileService. Uploads stream the content in chunks as it is read (a path or a
file object is never read whole into memory); downloads come back as bytes, a file on disk, or
an iterator of chunks.

```python
file = client.files.upload("report.pdf", purpose="assistants")
data = client.files.content(file.id)
client.files.download(file.id, "copy.pdf")
```
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import IO, Any, TypeAlias, Unpack

import grpc

from assistants_grpc_client._convert import expires_after, file_list_request, file_purpose
from assistants_grpc_client._errors import from_rpc_error
from assistants_grpc_client._gen.assistants.v1 import file_pb2, file_pb2_grpc
from assistants_grpc_client._pagination import AsyncPaginator, SyncCursorPage
from assistants_grpc_client._params import ExpiresAfterParam, FileListParams, FilePurposeParam
from assistants_grpc_client._transport import AsyncTransport, SyncTransport

__all__ = ["CHUNK_SIZE", "AsyncFiles", "FileInput", "Files"]

F = file_pb2

CHUNK_SIZE = 1024 * 1024
"""Bytes per upload message: well under the server's per-message limit (10 MiB by default)."""

FileInput: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
"""A path, the content itself, or a binary file object (read from where it stands)."""


def _metadata(
    file: FileInput,
    purpose: FilePurposeParam,
    filename: str | None,
    expires: ExpiresAfterParam | None,
) -> F.UploadFileRequest:
    if filename is None:
        if isinstance(file, str | os.PathLike):
            filename = Path(file).name
        elif isinstance(getattr(file, "name", None), str):
            filename = Path(getattr(file, "name")).name  # noqa: B009 - IO's name is untyped
        else:
            raise TypeError("upload() of bytes needs filename=")
    metadata = F.UploadFileMetadata(filename=filename, purpose=file_purpose(purpose))
    if expires is not None:
        metadata.expires_after.CopyFrom(expires_after(expires))
    return F.UploadFileRequest(metadata=metadata)


def _chunks(file: FileInput, chunk_size: int) -> Generator[bytes, None, None]:
    """The content in chunks, read as they are asked for."""
    if isinstance(file, bytes | bytearray | memoryview):
        view = memoryview(file)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
        return
    if isinstance(file, str | os.PathLike):
        with open(file, "rb") as source:
            yield from _read(source, chunk_size)
        return
    yield from _read(file, chunk_size)


def _read(source: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    while data := source.read(chunk_size):
        yield data


def _requests(first: F.UploadFileRequest, chunks: Iterator[bytes]) -> Iterator[F.UploadFileRequest]:
    yield first
    for data in chunks:
        yield F.UploadFileRequest(chunk=data)


def _close(chunks: Generator[bytes, None, None]) -> None:
    """Close the reader (and a file it opened) once the call is over; a read still running on
    grpc's or asyncio's thread finishes that file itself."""
    with contextlib.suppress(ValueError):  # "generator already executing"
        chunks.close()


class Files:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._stub: Any = file_pb2_grpc.FileServiceStub(transport.channel)

    def upload(
        self,
        file: FileInput,
        *,
        purpose: FilePurposeParam,
        filename: str | None = None,
        expires_after: ExpiresAfterParam | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> F.File:
        """Upload a file, streamed in chunks of `chunk_size`. `filename` defaults to the base
        name of a path or of a file object's `name`; bytes need one. Uploads have no deadline
        and are not retried (nothing is stored unless the whole content arrives)."""
        first = _metadata(file, purpose, filename, expires_after)
        chunks = _chunks(file, chunk_size)
        try:
            response: F.File = self._stub.UploadFile(
                _requests(first, chunks), metadata=self._t.settings.metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            _close(chunks)
        return response

    def retrieve(self, file_id: str) -> F.File:
        request = F.GetFileRequest(file_id=file_id)
        return self._t.unary(self._stub.GetFile, request, F.File, idempotent=True)

    def list(self, **params: Unpack[FileListParams]) -> SyncCursorPage[F.File]:
        """Every file, newest first by default; `purpose` keeps only that purpose's."""
        request = file_list_request(params)
        return self._t.paginate(self._stub.ListFiles, request, F.ListFilesResponse)

    def delete(self, file_id: str) -> F.DeleteFileResponse:
        """Delete a file; it leaves every tool resource, attachment and vector store too."""
        request = F.DeleteFileRequest(file_id=file_id)
        return self._t.unary(self._stub.DeleteFile, request, F.DeleteFileResponse, idempotent=False)

    def iter_content(self, file_id: str) -> Iterator[bytes]:
        """The file's content, chunk by chunk (at most 1 MiB each), as it arrives."""
        stream = self._t.stream(self._stub.GetFileContent, F.GetFileContentRequest(file_id=file_id))
        try:
            for chunk in stream:
                yield chunk.data
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            stream.cancel()  # a no-op once the stream has ended

    def content(self, file_id: str) -> bytes:
        """The file's whole content."""
        return b"".join(self.iter_content(file_id))

    def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Write the file's content to `path` (replaced if it exists); removed again if the
        download fails."""
        target = Path(path)
        try:
            with target.open("wb") as out:
                for data in self.iter_content(file_id):
                    out.write(data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target


class AsyncFiles:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub: Any = file_pb2_grpc.FileServiceStub(transport.channel)

    async def upload(
        self,
        file: FileInput,
        *,
        purpose: FilePurposeParam,
        filename: str | None = None,
        expires_after: ExpiresAfterParam | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> F.File:
        """`Files.upload`, reading the content off the event loop.

        When the server refuses an upload midway (past its size limit or the project's quota),
        grpcio's asyncio client may report INTERNAL ("Failed execute_batch") instead of the
        server's RESOURCE_EXHAUSTED, if a chunk was in flight as the server ended the call
        (grpc/grpc#36066); the blocking `Client` always reports the server's status."""
        first = _metadata(file, purpose, filename, expires_after)
        chunks = _chunks(file, chunk_size)

        async def requests() -> AsyncIterator[F.UploadFileRequest]:
            yield first
            while (data := await asyncio.to_thread(next, chunks, None)) is not None:
                yield F.UploadFileRequest(chunk=data)

        try:
            response: F.File = await self._stub.UploadFile(
                requests(), metadata=self._t.settings.metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            _close(chunks)
        return response

    async def retrieve(self, file_id: str) -> F.File:
        request = F.GetFileRequest(file_id=file_id)
        return await self._t.unary(self._stub.GetFile, request, F.File, idempotent=True)

    def list(self, **params: Unpack[FileListParams]) -> AsyncPaginator[F.File]:
        request = file_list_request(params)
        return self._t.paginate(self._stub.ListFiles, request, F.ListFilesResponse)

    async def delete(self, file_id: str) -> F.DeleteFileResponse:
        request = F.DeleteFileRequest(file_id=file_id)
        return await self._t.unary(
            self._stub.DeleteFile, request, F.DeleteFileResponse, idempotent=False
        )

    async def iter_content(self, file_id: str) -> AsyncIterator[bytes]:
        stream = self._t.stream(self._stub.GetFileContent, F.GetFileContentRequest(file_id=file_id))
        try:
            async for chunk in stream:
                yield chunk.data
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        finally:
            stream.cancel()

    async def content(self, file_id: str) -> bytes:
        return b"".join([data async for data in self.iter_content(file_id)])

    async def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """`Files.download`; the writes happen off the event loop."""
        target = Path(path)
        out = await asyncio.to_thread(target.open, "wb")
        try:
            with out:
                async for data in self.iter_content(file_id):
                    await asyncio.to_thread(out.write, data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

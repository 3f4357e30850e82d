"""The FileService servicer: an upload is a client stream, a download a server stream; the rest
are unary. Each method converts, calls the service, returns."""

from __future__ import annotations

from collections.abc import AsyncIterator

from assistants_grpc.api.errors import client_streaming, streaming, unary
from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.pb import file_pb2, file_pb2_grpc
from assistants_grpc.services.files import FileService


class FileServicer(file_pb2_grpc.FileServiceServicer):
    def __init__(self, service: FileService, guard: Guard) -> None:
        self._service = service
        self.guard = guard

    @client_streaming
    async def UploadFile(
        self, requests: AsyncIterator[file_pb2.UploadFileRequest], caller: Caller
    ) -> file_pb2.File:
        return await self._service.upload(caller.project, requests)

    @unary
    async def GetFile(self, request: file_pb2.GetFileRequest, caller: Caller) -> file_pb2.File:
        return await self._service.get(caller.project, request.file_id)

    @unary
    async def ListFiles(
        self, request: file_pb2.ListFilesRequest, caller: Caller
    ) -> file_pb2.ListFilesResponse:
        return await self._service.list(caller.project, request)

    @unary
    async def DeleteFile(
        self, request: file_pb2.DeleteFileRequest, caller: Caller
    ) -> file_pb2.DeleteFileResponse:
        return await self._service.delete(caller.project, request.file_id)

    @streaming
    async def GetFileContent(
        self, request: file_pb2.GetFileContentRequest, caller: Caller
    ) -> AsyncIterator[file_pb2.FileContentChunk]:
        async for chunk in self._service.content(caller.project, request.file_id):
            yield chunk


__all__ = ["FileServicer"]

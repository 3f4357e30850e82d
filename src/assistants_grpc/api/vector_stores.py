"""The VectorStoreService servicer: each method converts, calls the service, returns."""

from __future__ import annotations

from assistants_grpc.api.errors import unary
from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.contract.pb import vector_store_pb2_grpc
from assistants_grpc.services.vector_stores import VectorStoreService


class VectorStoreServicer(vector_store_pb2_grpc.VectorStoreServiceServicer):
    def __init__(self, service: VectorStoreService, guard: Guard) -> None:
        self._service = service
        self.guard = guard

    @unary
    async def CreateVectorStore(
        self, request: V.CreateVectorStoreRequest, caller: Caller
    ) -> V.VectorStore:
        return await self._service.create(caller.project, request)

    @unary
    async def GetVectorStore(
        self, request: V.GetVectorStoreRequest, caller: Caller
    ) -> V.VectorStore:
        return await self._service.get(caller.project, request.vector_store_id)

    @unary
    async def ListVectorStores(
        self, request: V.ListVectorStoresRequest, caller: Caller
    ) -> V.ListVectorStoresResponse:
        return await self._service.list(caller.project, request)

    @unary
    async def UpdateVectorStore(
        self, request: V.UpdateVectorStoreRequest, caller: Caller
    ) -> V.VectorStore:
        return await self._service.update(caller.project, request)

    @unary
    async def DeleteVectorStore(
        self, request: V.DeleteVectorStoreRequest, caller: Caller
    ) -> V.DeleteVectorStoreResponse:
        return await self._service.delete(caller.project, request.vector_store_id)

    @unary
    async def SearchVectorStore(
        self, request: V.SearchVectorStoreRequest, caller: Caller
    ) -> V.SearchVectorStoreResponse:
        return await self._service.search(caller.project, request)

    @unary
    async def CreateVectorStoreFile(
        self, request: V.CreateVectorStoreFileRequest, caller: Caller
    ) -> V.VectorStoreFile:
        return await self._service.create_file(caller.project, request)

    @unary
    async def GetVectorStoreFile(
        self, request: V.GetVectorStoreFileRequest, caller: Caller
    ) -> V.VectorStoreFile:
        return await self._service.get_file(
            caller.project, request.vector_store_id, request.file_id
        )

    @unary
    async def ListVectorStoreFiles(
        self, request: V.ListVectorStoreFilesRequest, caller: Caller
    ) -> V.ListVectorStoreFilesResponse:
        return await self._service.list_files(caller.project, request)

    @unary
    async def UpdateVectorStoreFile(
        self, request: V.UpdateVectorStoreFileRequest, caller: Caller
    ) -> V.VectorStoreFile:
        return await self._service.update_file(caller.project, request)

    @unary
    async def DeleteVectorStoreFile(
        self, request: V.DeleteVectorStoreFileRequest, caller: Caller
    ) -> V.DeleteVectorStoreFileResponse:
        return await self._service.delete_file(
            caller.project, request.vector_store_id, request.file_id
        )

    @unary
    async def GetVectorStoreFileContent(
        self, request: V.GetVectorStoreFileContentRequest, caller: Caller
    ) -> V.GetVectorStoreFileContentResponse:
        return await self._service.file_content(
            caller.project, request.vector_store_id, request.file_id
        )

    @unary
    async def CreateVectorStoreFileBatch(
        self, request: V.CreateVectorStoreFileBatchRequest, caller: Caller
    ) -> V.VectorStoreFileBatch:
        return await self._service.create_batch(caller.project, request)

    @unary
    async def GetVectorStoreFileBatch(
        self, request: V.GetVectorStoreFileBatchRequest, caller: Caller
    ) -> V.VectorStoreFileBatch:
        return await self._service.get_batch(
            caller.project, request.vector_store_id, request.batch_id
        )

    @unary
    async def CancelVectorStoreFileBatch(
        self, request: V.CancelVectorStoreFileBatchRequest, caller: Caller
    ) -> V.VectorStoreFileBatch:
        return await self._service.cancel_batch(
            caller.project, request.vector_store_id, request.batch_id
        )

    @unary
    async def ListVectorStoreFileBatchFiles(
        self, request: V.ListVectorStoreFileBatchFilesRequest, caller: Caller
    ) -> V.ListVectorStoreFilesResponse:
        return await self._service.list_files(caller.project, request)


__all__ = ["VectorStoreServicer"]

"""`client.vector_stores` (VectorStoreService), with `.files` and `.file_batches`.

Arguments are OpenAI's (`chunking_strategy={"type": "static", "static": {...}}`,
`filters={"type": "eq", "key": ..., "value": ...}`, `attributes={"k": "v"}`); results are the
generated messages of `assistants_grpc_client.v1.vector_store_pb2`. The `*_and_poll` helpers
wait until ingestion has ended (the object is no longer `in_progress`); `upload_and_poll`
uploads with `client.files.upload` first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from google.protobuf import struct_pb2

from assistants_grpc_client._convert import list_request
from assistants_grpc_client._gen.assistants.v1 import (
    common_pb2,
    vector_store_pb2,
    vector_store_pb2_grpc,
)
from assistants_grpc_client._pagination import AsyncPaginator, SyncCursorPage
from assistants_grpc_client._resources.files import AsyncFiles, Files
from assistants_grpc_client._transport import AsyncTransport, SyncTransport

__all__ = [
    "AsyncVectorStoreFileBatches",
    "AsyncVectorStoreFiles",
    "AsyncVectorStores",
    "VectorStoreFileBatches",
    "VectorStoreFiles",
    "VectorStores",
]

V = vector_store_pb2
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]
Attributes = Mapping[str, str | int | float | bool]
DEFAULT_POLL_SECONDS = 0.5


# --- conversions ------------------------------------------------------------------------------


def _value(value: Any) -> struct_pb2.Value:
    holder = struct_pb2.Struct()
    holder.update({"v": value})
    return holder.fields["v"]


def _chunking(value: Mapping[str, Any]) -> common_pb2.ChunkingStrategy:
    kind = value.get("type")
    if kind == "auto":
        return common_pb2.ChunkingStrategy(auto=common_pb2.AutoChunkingStrategy())
    if kind == "static":
        static = value.get("static") or {}
        return common_pb2.ChunkingStrategy(
            static=common_pb2.StaticChunkingStrategy(
                max_chunk_size_tokens=int(static.get("max_chunk_size_tokens", 800)),
                chunk_overlap_tokens=int(static.get("chunk_overlap_tokens", 400)),
            )
        )
    raise ValueError(f"chunking_strategy: type must be 'auto' or 'static', got {kind!r}")


def _expires_after(value: Mapping[str, Any]) -> vector_store_pb2.VectorStoreExpiresAfter:
    if value.get("anchor", "last_active_at") != "last_active_at":
        raise ValueError("expires_after: anchor must be 'last_active_at'")
    return V.VectorStoreExpiresAfter(
        anchor=V.VECTOR_STORE_EXPIRY_ANCHOR_LAST_ACTIVE_AT, days=int(value["days"])
    )


def _attributes(target: Any, values: Attributes | None) -> None:
    for key, value in (values or {}).items():
        target[key].CopyFrom(_value(value))


def attribute_filter(value: Mapping[str, Any]) -> vector_store_pb2.AttributeFilter:
    """OpenAI's filter JSON (comparison or compound, nested) as an AttributeFilter."""
    kind = str(value.get("type", ""))
    name = "ATTRIBUTE_FILTER_TYPE_" + kind.upper()
    if name not in V.AttributeFilterType.keys():
        raise ValueError(f"filters: unknown type {kind!r}")
    result = V.AttributeFilter(type=V.AttributeFilterType.Value(name))
    if "key" in value:
        result.key = value["key"]
    if "value" in value:
        result.value.CopyFrom(_value(value["value"]))
    result.filters.extend(attribute_filter(f) for f in value.get("filters") or ())
    return result


def _status(value: FileStatus | None) -> int:
    if value is None:
        return 0
    return V.VectorStoreFileStatus.Value("VECTOR_STORE_FILE_STATUS_" + value.upper())


def _create_store(
    name: str | None,
    file_ids: Sequence[str],
    chunking_strategy: Mapping[str, Any] | None,
    expires_after: Mapping[str, Any] | None,
    metadata: Mapping[str, str] | None,
    description: str | None,
) -> vector_store_pb2.CreateVectorStoreRequest:
    request = V.CreateVectorStoreRequest(file_ids=list(file_ids), metadata=dict(metadata or {}))
    if name is not None:
        request.name = name
    if description is not None:
        request.description = description
    if chunking_strategy is not None:
        request.chunking_strategy.CopyFrom(_chunking(chunking_strategy))
    if expires_after is not None:
        request.expires_after.CopyFrom(_expires_after(expires_after))
    return request


def _update_store(
    vector_store_id: str,
    name: str | None,
    expires_after: Mapping[str, Any] | None,
    metadata: Mapping[str, str] | None,
) -> vector_store_pb2.UpdateVectorStoreRequest:
    request = V.UpdateVectorStoreRequest(vector_store_id=vector_store_id)
    if name is not None:
        request.name = name
    if expires_after is not None:
        request.expires_after.CopyFrom(_expires_after(expires_after))
    if metadata is not None:
        request.metadata.values.update(metadata)
        request.metadata.SetInParent()
    return request


def _search(
    vector_store_id: str,
    query: str | Sequence[str],
    max_num_results: int | None,
    filters: Mapping[str, Any] | None,
    ranking_options: Mapping[str, Any] | None,
    rewrite_query: bool | None,
) -> vector_store_pb2.SearchVectorStoreRequest:
    queries = [query] if isinstance(query, str) else list(query)
    request = V.SearchVectorStoreRequest(vector_store_id=vector_store_id, query=queries)
    if max_num_results is not None:
        request.max_num_results = max_num_results
    if filters is not None:
        request.filters.CopyFrom(attribute_filter(filters))
    if ranking_options is not None:
        if "ranker" in ranking_options:
            request.ranking_options.ranker = ranking_options["ranker"]
        if "score_threshold" in ranking_options:
            request.ranking_options.score_threshold = float(ranking_options["score_threshold"])
        request.ranking_options.SetInParent()
    if rewrite_query is not None:
        request.rewrite_query = rewrite_query
    return request


def _create_file(
    vector_store_id: str,
    file_id: str,
    attributes: Attributes | None,
    chunking_strategy: Mapping[str, Any] | None,
) -> vector_store_pb2.CreateVectorStoreFileRequest:
    request = V.CreateVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
    _attributes(request.attributes, attributes)
    if chunking_strategy is not None:
        request.chunking_strategy.CopyFrom(_chunking(chunking_strategy))
    return request


def _create_batch(
    vector_store_id: str,
    file_ids: Sequence[str] | None,
    files: Iterable[Mapping[str, Any]] | None,
    attributes: Attributes | None,
    chunking_strategy: Mapping[str, Any] | None,
) -> vector_store_pb2.CreateVectorStoreFileBatchRequest:
    request = V.CreateVectorStoreFileBatchRequest(
        vector_store_id=vector_store_id, file_ids=list(file_ids or ())
    )
    for item in files or ():
        entry = request.files.add(file_id=item["file_id"])
        _attributes(entry.attributes, item.get("attributes"))
        if item.get("chunking_strategy") is not None:
            entry.chunking_strategy.CopyFrom(_chunking(item["chunking_strategy"]))
    _attributes(request.attributes, attributes)
    if chunking_strategy is not None:
        request.chunking_strategy.CopyFrom(_chunking(chunking_strategy))
    return request


# The in_progress value of each object's status enum (their numbers differ).
_IN_PROGRESS: dict[type[Any], int] = {
    V.VectorStore: V.VECTOR_STORE_STATUS_IN_PROGRESS,
    V.VectorStoreFile: V.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
    V.VectorStoreFileBatch: V.VECTOR_STORE_FILE_BATCH_STATUS_IN_PROGRESS,
}


def _named(item: Any) -> tuple[Any, str | None]:
    """(content, filename) of an upload_and_poll file: a (filename, bytes) pair, or the file."""
    if isinstance(item, tuple):
        name, data = item
        return data, name
    return item, None


def _still_working(item: Any) -> bool:
    return bool(item.status == _IN_PROGRESS[type(item)])


def _poll(get: Callable[[], Any], poll_interval: float, timeout: float | None, what: str) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        item = get()
        if not _still_working(item):
            return item
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{what} still in progress after {timeout} s")
        time.sleep(poll_interval)


async def _poll_async(
    get: Callable[[], Any], poll_interval: float, timeout: float | None, what: str
) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        item = await get()
        if not _still_working(item):
            return item
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{what} still in progress after {timeout} s")
        await asyncio.sleep(poll_interval)


# --- blocking ---------------------------------------------------------------------------------


class VectorStores:
    def __init__(self, transport: SyncTransport, uploader: Files | None = None) -> None:
        self._t = transport
        self._stub: Any = vector_store_pb2_grpc.VectorStoreServiceStub(transport.channel)
        self.files = VectorStoreFiles(transport, self._stub, uploader)
        self.file_batches = VectorStoreFileBatches(transport, self._stub, uploader)

    def create(
        self,
        *,
        name: str | None = None,
        file_ids: Sequence[str] = (),
        chunking_strategy: Mapping[str, Any] | None = None,
        expires_after: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> vector_store_pb2.VectorStore:
        request = _create_store(
            name, file_ids, chunking_strategy, expires_after, metadata, description
        )
        return self._t.unary(self._stub.CreateVectorStore, request, V.VectorStore, idempotent=False)

    def create_and_poll(
        self,
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        **params: Any,
    ) -> vector_store_pb2.VectorStore:
        """Create the store, then wait until its files are ingested."""
        store = self.create(**params)
        return _poll(lambda: self.retrieve(store.id), poll_interval, timeout, store.id)  # type: ignore[no-any-return]

    def retrieve(self, vector_store_id: str) -> vector_store_pb2.VectorStore:
        request = V.GetVectorStoreRequest(vector_store_id=vector_store_id)
        return self._t.unary(self._stub.GetVectorStore, request, V.VectorStore, idempotent=True)

    def update(
        self,
        vector_store_id: str,
        *,
        name: str | None = None,
        expires_after: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> vector_store_pb2.VectorStore:
        request = _update_store(vector_store_id, name, expires_after, metadata)
        return self._t.unary(self._stub.UpdateVectorStore, request, V.VectorStore, idempotent=False)

    def delete(self, vector_store_id: str) -> vector_store_pb2.DeleteVectorStoreResponse:
        request = V.DeleteVectorStoreRequest(vector_store_id=vector_store_id)
        return self._t.unary(
            self._stub.DeleteVectorStore, request, V.DeleteVectorStoreResponse, idempotent=False
        )

    def list(
        self, *, limit: int | None = None, order: str | None = None, after: str | None = None,
        before: str | None = None,
    ) -> SyncCursorPage[vector_store_pb2.VectorStore]:  # fmt: skip
        params: Any = {"limit": limit, "order": order, "after": after, "before": before}
        request = list_request(V.ListVectorStoresRequest(), params)
        return self._t.paginate(self._stub.ListVectorStores, request, V.ListVectorStoresResponse)

    def search(
        self,
        vector_store_id: str,
        *,
        query: str | Sequence[str],
        max_num_results: int | None = None,
        filters: Mapping[str, Any] | None = None,
        ranking_options: Mapping[str, Any] | None = None,
        rewrite_query: bool | None = None,
    ) -> vector_store_pb2.SearchVectorStoreResponse:
        request = _search(
            vector_store_id, query, max_num_results, filters, ranking_options, rewrite_query
        )
        return self._t.unary(
            self._stub.SearchVectorStore, request, V.SearchVectorStoreResponse, idempotent=True
        )


class VectorStoreFiles:
    def __init__(self, transport: SyncTransport, stub: Any, uploader: Files | None) -> None:
        self._t = transport
        self._stub = stub
        self._uploader = uploader

    def create(
        self,
        vector_store_id: str,
        *,
        file_id: str,
        attributes: Attributes | None = None,
        chunking_strategy: Mapping[str, Any] | None = None,
    ) -> vector_store_pb2.VectorStoreFile:
        request = _create_file(vector_store_id, file_id, attributes, chunking_strategy)
        return self._t.unary(
            self._stub.CreateVectorStoreFile, request, V.VectorStoreFile, idempotent=False
        )

    def create_and_poll(
        self,
        vector_store_id: str,
        *,
        file_id: str,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        **params: Any,
    ) -> vector_store_pb2.VectorStoreFile:
        self.create(vector_store_id, file_id=file_id, **params)
        return _poll(  # type: ignore[no-any-return]
            lambda: self.retrieve(vector_store_id, file_id), poll_interval, timeout, file_id
        )

    def upload_and_poll(
        self, vector_store_id: str, *, file: Any, filename: str | None = None, **params: Any
    ) -> vector_store_pb2.VectorStoreFile:
        """Upload `file` (a path, a file object, or bytes with `filename`) with
        `client.files.upload`, add it to the store and wait for its ingestion."""
        if self._uploader is None:
            raise RuntimeError("upload_and_poll needs client.files (FileService)")
        uploaded = self._uploader.upload(file, purpose="assistants", filename=filename)
        return self.create_and_poll(vector_store_id, file_id=uploaded.id, **params)

    def retrieve(self, vector_store_id: str, file_id: str) -> vector_store_pb2.VectorStoreFile:
        request = V.GetVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
        return self._t.unary(
            self._stub.GetVectorStoreFile, request, V.VectorStoreFile, idempotent=True
        )

    def update(
        self, vector_store_id: str, file_id: str, *, attributes: Attributes
    ) -> vector_store_pb2.VectorStoreFile:
        request = V.UpdateVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
        _attributes(request.attributes, attributes)
        return self._t.unary(
            self._stub.UpdateVectorStoreFile, request, V.VectorStoreFile, idempotent=False
        )

    def delete(
        self, vector_store_id: str, file_id: str
    ) -> vector_store_pb2.DeleteVectorStoreFileResponse:
        request = V.DeleteVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
        return self._t.unary(
            self._stub.DeleteVectorStoreFile,
            request,
            V.DeleteVectorStoreFileResponse,
            idempotent=False,
        )

    def list(
        self, vector_store_id: str, *, filter: FileStatus | None = None, limit: int | None = None,
        order: str | None = None, after: str | None = None, before: str | None = None,
    ) -> SyncCursorPage[vector_store_pb2.VectorStoreFile]:  # fmt: skip
        params: Any = {"limit": limit, "order": order, "after": after, "before": before}
        request = list_request(
            V.ListVectorStoreFilesRequest(vector_store_id=vector_store_id, filter=_status(filter)),  # type: ignore[arg-type]
            params,
        )
        return self._t.paginate(
            self._stub.ListVectorStoreFiles, request, V.ListVectorStoreFilesResponse
        )

    def content(
        self, vector_store_id: str, file_id: str
    ) -> vector_store_pb2.GetVectorStoreFileContentResponse:
        request = V.GetVectorStoreFileContentRequest(
            vector_store_id=vector_store_id, file_id=file_id
        )
        return self._t.unary(
            self._stub.GetVectorStoreFileContent,
            request,
            V.GetVectorStoreFileContentResponse,
            idempotent=True,
        )


class VectorStoreFileBatches:
    def __init__(self, transport: SyncTransport, stub: Any, uploader: Files | None) -> None:
        self._t = transport
        self._stub = stub
        self._uploader = uploader

    def create(
        self,
        vector_store_id: str,
        *,
        file_ids: Sequence[str] | None = None,
        files: Iterable[Mapping[str, Any]] | None = None,
        attributes: Attributes | None = None,
        chunking_strategy: Mapping[str, Any] | None = None,
    ) -> vector_store_pb2.VectorStoreFileBatch:
        request = _create_batch(vector_store_id, file_ids, files, attributes, chunking_strategy)
        return self._t.unary(
            self._stub.CreateVectorStoreFileBatch, request, V.VectorStoreFileBatch, idempotent=False
        )

    def create_and_poll(
        self,
        vector_store_id: str,
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        **params: Any,
    ) -> vector_store_pb2.VectorStoreFileBatch:
        batch = self.create(vector_store_id, **params)
        return _poll(  # type: ignore[no-any-return]
            lambda: self.retrieve(vector_store_id, batch.id), poll_interval, timeout, batch.id
        )

    def upload_and_poll(
        self, vector_store_id: str, *, files: Iterable[Any], **params: Any
    ) -> vector_store_pb2.VectorStoreFileBatch:
        """Upload every file with `client.files.upload` (a path, a file object, or a
        `(filename, bytes)` pair), then batch them and wait."""
        if self._uploader is None:
            raise RuntimeError("upload_and_poll needs client.files (FileService)")
        uploader = self._uploader
        ids = []
        for item in files:
            data, name = _named(item)
            ids.append(uploader.upload(data, purpose="assistants", filename=name).id)
        return self.create_and_poll(vector_store_id, file_ids=ids, **params)

    def retrieve(
        self, vector_store_id: str, batch_id: str
    ) -> vector_store_pb2.VectorStoreFileBatch:
        request = V.GetVectorStoreFileBatchRequest(
            vector_store_id=vector_store_id, batch_id=batch_id
        )
        return self._t.unary(
            self._stub.GetVectorStoreFileBatch, request, V.VectorStoreFileBatch, idempotent=True
        )

    def cancel(self, vector_store_id: str, batch_id: str) -> vector_store_pb2.VectorStoreFileBatch:
        request = V.CancelVectorStoreFileBatchRequest(
            vector_store_id=vector_store_id, batch_id=batch_id
        )
        return self._t.unary(
            self._stub.CancelVectorStoreFileBatch, request, V.VectorStoreFileBatch, idempotent=False
        )

    def list_files(
        self, vector_store_id: str, batch_id: str, *, filter: FileStatus | None = None,
        limit: int | None = None, order: str | None = None, after: str | None = None,
        before: str | None = None,
    ) -> SyncCursorPage[vector_store_pb2.VectorStoreFile]:  # fmt: skip
        params: Any = {"limit": limit, "order": order, "after": after, "before": before}
        request = list_request(
            V.ListVectorStoreFileBatchFilesRequest(
                vector_store_id=vector_store_id,
                batch_id=batch_id,
                filter=_status(filter),  # type: ignore[arg-type]
            ),
            params,
        )
        return self._t.paginate(
            self._stub.ListVectorStoreFileBatchFiles, request, V.ListVectorStoreFilesResponse
        )


# --- asyncio ----------------------------------------------------------------------------------


class AsyncVectorStores:
    def __init__(self, transport: AsyncTransport, uploader: AsyncFiles | None = None) -> None:
        self._t = transport
        self._stub: Any = vector_store_pb2_grpc.VectorStoreServiceStub(transport.channel)
        self.files = AsyncVectorStoreFiles(transport, self._stub, uploader)
        self.file_batches = AsyncVectorStoreFileBatches(transport, self._stub, uploader)

    async def create(
        self,
        *,
        name: str | None = None,
        file_ids: Sequence[str] = (),
        chunking_strategy: Mapping[str, Any] | None = None,
        expires_after: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> vector_store_pb2.VectorStore:
        request = _create_store(
            name, file_ids, chunking_strategy, expires_after, metadata, description
        )
        return await self._t.unary(
            self._stub.CreateVectorStore, request, V.VectorStore, idempotent=False
        )

    async def create_and_poll(
        self,
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        **params: Any,
    ) -> vector_store_pb2.VectorStore:
        store = await self.create(**params)
        return await _poll_async(  # type: ignore[no-any-return]
            lambda: self.retrieve(store.id), poll_interval, timeout, store.id
        )

    async def retrieve(self, vector_store_id: str) -> vector_store_pb2.VectorStore:
        request = V.GetVectorStoreRequest(vector_store_id=vector_store_id)
        return await self._t.unary(
            self._stub.GetVectorStore, request, V.VectorStore, idempotent=True
        )

    async def update(
        self,
        vector_store_id: str,
        *,
        name: str | None = None,
        expires_after: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> vector_store_pb2.VectorStore:
        request = _update_store(vector_store_id, name, expires_after, metadata)
        return await self._t.unary(
            self._stub.UpdateVectorStore, request, V.VectorStore, idempotent=False
        )

    async def delete(self, vector_store_id: str) -> vector_store_pb2.DeleteVectorStoreResponse:
        request = V.DeleteVectorStoreRequest(vector_store_id=vector_store_id)
        return await self._t.unary(
            self._stub.DeleteVectorStore, request, V.DeleteVectorStoreResponse, idempotent=False
        )

    def list(
        self, *, limit: int | None = None, order: str | None = None, after: str | None = None,
        before: str | None = None,
    ) -> AsyncPaginator[vector_store_pb2.VectorStore]:  # fmt: skip
        params: Any = {"limit": limit, "order": order, "after": after, "before": before}
        request = list_request(V.ListVectorStoresRequest(), params)
        return self._t.paginate(self._stub.ListVectorStores, request, V.ListVectorStoresResponse)

    async def search(
        self,
        vector_store_id: str,
        *,
        query: str | Sequence[str],
        max_num_results: int | None = None,
        filters: Mapping[str, Any] | None = None,
        ranking_options: Mapping[str, Any] | None = None,
        rewrite_query: bool | None = None,
    ) -> vector_store_pb2.SearchVectorStoreResponse:
        request = _search(
            vector_store_id, query, max_num_results, filters, ranking_options, rewrite_query
        )
        return await self._t.unary(
            self._stub.SearchVectorStore, request, V.SearchVectorStoreResponse, idempotent=True
        )


class AsyncVectorStoreFiles:
    def __init__(self, transport: AsyncTransport, stub: Any, uploader: AsyncFiles | None) -> None:
        self._t = transport
        self._stub = stub
        self._uploader = uploader

    async def create(
        self,
        vector_store_id: str,
        *,
        file_id: str,
        attributes: Attributes | None = None,
        chunking_strategy: Mapping[str, Any] | None = None,
    ) -> vector_store_pb2.VectorStoreFile:
        request = _create_file(vector_store_id, file_id, attributes, chunking_strategy)
        return await self._t.unary(
            self._stub.CreateVectorStoreFile, request, V.VectorStoreFile, idempotent=False
        )

    async def create_and_poll(
        self,
        vector_store_id: str,
        *,
        file_id: str,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        **params: Any,
    ) -> vector_store_pb2.VectorStoreFile:
        await self.create(vector_store_id, file_id=file_id, **params)
        return await _poll_async(  # type: ignore[no-any-return]
            lambda: self.retrieve(vector_store_id, file_id), poll_interval, timeout, file_id
        )

    async def upload_and_poll(
        self, vector_store_id: str, *, file: Any, filename: str | None = None, **params: Any
    ) -> vector_store_pb2.VectorStoreFile:
        if self._uploader is None:
            raise RuntimeError("upload_and_poll needs client.files (FileService)")
        uploaded = await self._uploader.upload(file, purpose="assistants", filename=filename)
        return await self.create_and_poll(vector_store_id, file_id=uploaded.id, **params)

    async def retrieve(
        self, vector_store_id: str, file_id: str
    ) -> vector_store_pb2.VectorStoreFile:
        request = V.GetVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
        return await self._t.unary(
            self._stub.GetVectorStoreFile, request, V.VectorStoreFile, idempotent=True
        )

    async def update(
        self, vector_store_id: str, file_id: str, *, attributes: Attributes
    ) -> vector_store_pb2.VectorStoreFile:
        request = V.UpdateVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
        _attributes(request.attributes, attributes)
        return await self._t.unary(
            self._stub.UpdateVectorStoreFile, request, V.VectorStoreFile, idempotent=False
        )

    async def delete(
        self, vector_store_id: str, file_id: str
    ) -> vector_store_pb2.DeleteVectorStoreFileResponse:
        request = V.DeleteVectorStoreFileRequest(vector_store_id=vector_store_id, file_id=file_id)
        return await self._t.unary(
            self._stub.DeleteVectorStoreFile,
            request,
            V.DeleteVectorStoreFileResponse,
            idempotent=False,
        )

    def list(
        self, vector_store_id: str, *, filter: FileStatus | None = None, limit: int | None = None,
        order: str | None = None, after: str | None = None, before: str | None = None,
    ) -> AsyncPaginator[vector_store_pb2.VectorStoreFile]:  # fmt: skip
        params: Any = {"limit": limit, "order": order, "after": after, "before": before}
        request = list_request(
            V.ListVectorStoreFilesRequest(vector_store_id=vector_store_id, filter=_status(filter)),  # type: ignore[arg-type]
            params,
        )
        return self._t.paginate(
            self._stub.ListVectorStoreFiles, request, V.ListVectorStoreFilesResponse
        )

    async def content(
        self, vector_store_id: str, file_id: str
    ) -> vector_store_pb2.GetVectorStoreFileContentResponse:
        request = V.GetVectorStoreFileContentRequest(
            vector_store_id=vector_store_id, file_id=file_id
        )
        return await self._t.unary(
            self._stub.GetVectorStoreFileContent,
            request,
            V.GetVectorStoreFileContentResponse,
            idempotent=True,
        )


class AsyncVectorStoreFileBatches:
    def __init__(self, transport: AsyncTransport, stub: Any, uploader: AsyncFiles | None) -> None:
        self._t = transport
        self._stub = stub
        self._uploader = uploader

    async def create(
        self,
        vector_store_id: str,
        *,
        file_ids: Sequence[str] | None = None,
        files: Iterable[Mapping[str, Any]] | None = None,
        attributes: Attributes | None = None,
        chunking_strategy: Mapping[str, Any] | None = None,
    ) -> vector_store_pb2.VectorStoreFileBatch:
        request = _create_batch(vector_store_id, file_ids, files, attributes, chunking_strategy)
        return await self._t.unary(
            self._stub.CreateVectorStoreFileBatch, request, V.VectorStoreFileBatch, idempotent=False
        )

    async def create_and_poll(
        self,
        vector_store_id: str,
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        **params: Any,
    ) -> vector_store_pb2.VectorStoreFileBatch:
        batch = await self.create(vector_store_id, **params)
        return await _poll_async(  # type: ignore[no-any-return]
            lambda: self.retrieve(vector_store_id, batch.id), poll_interval, timeout, batch.id
        )

    async def upload_and_poll(
        self, vector_store_id: str, *, files: Iterable[Any], **params: Any
    ) -> vector_store_pb2.VectorStoreFileBatch:
        if self._uploader is None:
            raise RuntimeError("upload_and_poll needs client.files (FileService)")
        uploader = self._uploader
        ids = []
        for item in files:
            data, name = _named(item)
            ids.append((await uploader.upload(data, purpose="assistants", filename=name)).id)
        return await self.create_and_poll(vector_store_id, file_ids=ids, **params)

    async def retrieve(
        self, vector_store_id: str, batch_id: str
    ) -> vector_store_pb2.VectorStoreFileBatch:
        request = V.GetVectorStoreFileBatchRequest(
            vector_store_id=vector_store_id, batch_id=batch_id
        )
        return await self._t.unary(
            self._stub.GetVectorStoreFileBatch, request, V.VectorStoreFileBatch, idempotent=True
        )

    async def cancel(
        self, vector_store_id: str, batch_id: str
    ) -> vector_store_pb2.VectorStoreFileBatch:
        request = V.CancelVectorStoreFileBatchRequest(
            vector_store_id=vector_store_id, batch_id=batch_id
        )
        return await self._t.unary(
            self._stub.CancelVectorStoreFileBatch, request, V.VectorStoreFileBatch, idempotent=False
        )

    def list_files(
        self, vector_store_id: str, batch_id: str, *, filter: FileStatus | None = None,
        limit: int | None = None, order: str | None = None, after: str | None = None,
        before: str | None = None,
    ) -> AsyncPaginator[vector_store_pb2.VectorStoreFile]:  # fmt: skip
        params: Any = {"limit": limit, "order": order, "after": after, "before": before}
        request = list_request(
            V.ListVectorStoreFileBatchFilesRequest(
                vector_store_id=vector_store_id,
                batch_id=batch_id,
                filter=_status(filter),  # type: ignore[arg-type]
            ),
            params,
        )
        return self._t.paginate(
            self._stub.ListVectorStoreFileBatchFiles, request, V.ListVectorStoreFilesResponse
        )

"""`client.threads`: ThreadService."""

from __future__ import annotations

from typing import Any, Unpack

from assistants_grpc_client._convert import (
    create_thread_request,
    list_request,
    update_thread_request,
)
from assistants_grpc_client._gen.assistants.v1 import thread_pb2, thread_pb2_grpc
from assistants_grpc_client._pagination import AsyncPaginator, SyncCursorPage
from assistants_grpc_client._params import ListParams, ThreadCreateParams, ThreadUpdateParams
from assistants_grpc_client._transport import AsyncTransport, SyncTransport

__all__ = ["AsyncThreads", "Threads"]

T = thread_pb2


class Threads:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._stub: Any = thread_pb2_grpc.ThreadServiceStub(transport.channel)

    def create(self, **params: Unpack[ThreadCreateParams]) -> T.Thread:
        request = create_thread_request(params)
        return self._t.unary(self._stub.CreateThread, request, T.Thread, idempotent=False)

    def retrieve(self, thread_id: str) -> T.Thread:
        request = T.GetThreadRequest(thread_id=thread_id)
        return self._t.unary(self._stub.GetThread, request, T.Thread, idempotent=True)

    def update(self, thread_id: str, **params: Unpack[ThreadUpdateParams]) -> T.Thread:
        request = update_thread_request(thread_id, params)
        return self._t.unary(self._stub.UpdateThread, request, T.Thread, idempotent=False)

    def delete(self, thread_id: str) -> T.DeleteThreadResponse:
        request = T.DeleteThreadRequest(thread_id=thread_id)
        return self._t.unary(
            self._stub.DeleteThread, request, T.DeleteThreadResponse, idempotent=False
        )

    def list(self, **params: Unpack[ListParams]) -> SyncCursorPage[T.Thread]:
        """Every thread, newest first by default (OpenAI had no such call)."""
        request = list_request(T.ListThreadsRequest(), params)
        return self._t.paginate(self._stub.ListThreads, request, T.ListThreadsResponse)


class AsyncThreads:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub: Any = thread_pb2_grpc.ThreadServiceStub(transport.channel)

    async def create(self, **params: Unpack[ThreadCreateParams]) -> T.Thread:
        request = create_thread_request(params)
        return await self._t.unary(self._stub.CreateThread, request, T.Thread, idempotent=False)

    async def retrieve(self, thread_id: str) -> T.Thread:
        request = T.GetThreadRequest(thread_id=thread_id)
        return await self._t.unary(self._stub.GetThread, request, T.Thread, idempotent=True)

    async def update(self, thread_id: str, **params: Unpack[ThreadUpdateParams]) -> T.Thread:
        request = update_thread_request(thread_id, params)
        return await self._t.unary(self._stub.UpdateThread, request, T.Thread, idempotent=False)

    async def delete(self, thread_id: str) -> T.DeleteThreadResponse:
        request = T.DeleteThreadRequest(thread_id=thread_id)
        return await self._t.unary(
            self._stub.DeleteThread, request, T.DeleteThreadResponse, idempotent=False
        )

    def list(self, **params: Unpack[ListParams]) -> AsyncPaginator[T.Thread]:
        request = list_request(T.ListThreadsRequest(), params)
        return self._t.paginate(self._stub.ListThreads, request, T.ListThreadsResponse)

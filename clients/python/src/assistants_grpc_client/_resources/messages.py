"""`client.messages`: MessageService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from assistants_grpc_client._convert import create_message_request, list_request
from assistants_grpc_client._gen.assistants.v1 import common_pb2, message_pb2, message_pb2_grpc
from assistants_grpc_client._pagination import AsyncPaginator, SyncCursorPage
from assistants_grpc_client._params import MessageCreateParams, MessageListParams
from assistants_grpc_client._transport import AsyncTransport, SyncTransport

__all__ = ["AsyncMessages", "Messages"]

M = message_pb2


def _update_request(
    thread_id: str, message_id: str, metadata: Mapping[str, str] | None
) -> M.UpdateMessageRequest:
    request = M.UpdateMessageRequest(thread_id=thread_id, message_id=message_id)
    if metadata is not None:
        request.metadata.CopyFrom(common_pb2.Metadata(values=metadata))
    return request


class Messages:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._stub: Any = message_pb2_grpc.MessageServiceStub(transport.channel)

    def create(self, thread_id: str, **params: Unpack[MessageCreateParams]) -> M.Message:
        """Add a message; `content` is a plain string or a list of parts."""
        request = create_message_request(thread_id, params)
        return self._t.unary(self._stub.CreateMessage, request, M.Message, idempotent=False)

    def retrieve(self, message_id: str, *, thread_id: str) -> M.Message:
        request = M.GetMessageRequest(thread_id=thread_id, message_id=message_id)
        return self._t.unary(self._stub.GetMessage, request, M.Message, idempotent=True)

    def update(
        self, message_id: str, *, thread_id: str, metadata: Mapping[str, str] | None = None
    ) -> M.Message:
        request = _update_request(thread_id, message_id, metadata)
        return self._t.unary(self._stub.UpdateMessage, request, M.Message, idempotent=False)

    def delete(self, message_id: str, *, thread_id: str) -> M.DeleteMessageResponse:
        request = M.DeleteMessageRequest(thread_id=thread_id, message_id=message_id)
        return self._t.unary(
            self._stub.DeleteMessage, request, M.DeleteMessageResponse, idempotent=False
        )

    def list(
        self, thread_id: str, **params: Unpack[MessageListParams]
    ) -> SyncCursorPage[M.Message]:
        """The thread's messages, newest first by default; `run_id` keeps one run's."""
        request = list_request(M.ListMessagesRequest(thread_id=thread_id), params)
        return self._t.paginate(self._stub.ListMessages, request, M.ListMessagesResponse)


class AsyncMessages:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub: Any = message_pb2_grpc.MessageServiceStub(transport.channel)

    async def create(self, thread_id: str, **params: Unpack[MessageCreateParams]) -> M.Message:
        request = create_message_request(thread_id, params)
        return await self._t.unary(self._stub.CreateMessage, request, M.Message, idempotent=False)

    async def retrieve(self, message_id: str, *, thread_id: str) -> M.Message:
        request = M.GetMessageRequest(thread_id=thread_id, message_id=message_id)
        return await self._t.unary(self._stub.GetMessage, request, M.Message, idempotent=True)

    async def update(
        self, message_id: str, *, thread_id: str, metadata: Mapping[str, str] | None = None
    ) -> M.Message:
        request = _update_request(thread_id, message_id, metadata)
        return await self._t.unary(self._stub.UpdateMessage, request, M.Message, idempotent=False)

    async def delete(self, message_id: str, *, thread_id: str) -> M.DeleteMessageResponse:
        request = M.DeleteMessageRequest(thread_id=thread_id, message_id=message_id)
        return await self._t.unary(
            self._stub.DeleteMessage, request, M.DeleteMessageResponse, idempotent=False
        )

    def list(
        self, thread_id: str, **params: Unpack[MessageListParams]
    ) -> AsyncPaginator[M.Message]:
        request = list_request(M.ListMessagesRequest(thread_id=thread_id), params)
        return self._t.paginate(self._stub.ListMessages, request, M.ListMessagesResponse)

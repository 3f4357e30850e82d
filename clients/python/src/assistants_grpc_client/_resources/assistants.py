"""`client.assistants`: AssistantService."""

from __future__ import annotations

from typing import Any, Unpack

from assistants_grpc_client._convert import (
    create_assistant_request,
    list_request,
    update_assistant_request,
)
from assistants_grpc_client._gen.assistants.v1 import assistant_pb2, assistant_pb2_grpc
from assistants_grpc_client._pagination import AsyncPaginator, SyncCursorPage
from assistants_grpc_client._params import (
    AssistantCreateParams,
    AssistantUpdateParams,
    ListParams,
)
from assistants_grpc_client._transport import AsyncTransport, SyncTransport

__all__ = ["Assistants", "AsyncAssistants"]

A = assistant_pb2


class Assistants:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport
        self._stub: Any = assistant_pb2_grpc.AssistantServiceStub(transport.channel)

    def create(self, **params: Unpack[AssistantCreateParams]) -> A.Assistant:
        request = create_assistant_request(params)
        return self._t.unary(self._stub.CreateAssistant, request, A.Assistant, idempotent=False)

    def retrieve(self, assistant_id: str) -> A.Assistant:
        request = A.GetAssistantRequest(assistant_id=assistant_id)
        return self._t.unary(self._stub.GetAssistant, request, A.Assistant, idempotent=True)

    def update(self, assistant_id: str, **params: Unpack[AssistantUpdateParams]) -> A.Assistant:
        request = update_assistant_request(assistant_id, params)
        return self._t.unary(self._stub.UpdateAssistant, request, A.Assistant, idempotent=False)

    def delete(self, assistant_id: str) -> A.DeleteAssistantResponse:
        request = A.DeleteAssistantRequest(assistant_id=assistant_id)
        return self._t.unary(
            self._stub.DeleteAssistant, request, A.DeleteAssistantResponse, idempotent=False
        )

    def list(self, **params: Unpack[ListParams]) -> SyncCursorPage[A.Assistant]:
        request = list_request(A.ListAssistantsRequest(), params)
        return self._t.paginate(self._stub.ListAssistants, request, A.ListAssistantsResponse)


class AsyncAssistants:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub: Any = assistant_pb2_grpc.AssistantServiceStub(transport.channel)

    async def create(self, **params: Unpack[AssistantCreateParams]) -> A.Assistant:
        request = create_assistant_request(params)
        return await self._t.unary(
            self._stub.CreateAssistant, request, A.Assistant, idempotent=False
        )

    async def retrieve(self, assistant_id: str) -> A.Assistant:
        request = A.GetAssistantRequest(assistant_id=assistant_id)
        return await self._t.unary(self._stub.GetAssistant, request, A.Assistant, idempotent=True)

    async def update(
        self, assistant_id: str, **params: Unpack[AssistantUpdateParams]
    ) -> A.Assistant:
        request = update_assistant_request(assistant_id, params)
        return await self._t.unary(
            self._stub.UpdateAssistant, request, A.Assistant, idempotent=False
        )

    async def delete(self, assistant_id: str) -> A.DeleteAssistantResponse:
        request = A.DeleteAssistantRequest(assistant_id=assistant_id)
        return await self._t.unary(
            self._stub.DeleteAssistant, request, A.DeleteAssistantResponse, idempotent=False
        )

    def list(self, **params: Unpack[ListParams]) -> AsyncPaginator[A.Assistant]:
        request = list_request(A.ListAssistantsRequest(), params)
        return self._t.paginate(self._stub.ListAssistants, request, A.ListAssistantsResponse)

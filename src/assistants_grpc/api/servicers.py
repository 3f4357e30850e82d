"""The Assistant, Thread and Message servicers: each method converts, calls a service, returns."""

from __future__ import annotations

from typing import Any

from assistants_grpc.api.errors import unary
from assistants_grpc.contract.pb import (
    assistant_pb2,
    assistant_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)
from assistants_grpc.services.assistants import AssistantService
from assistants_grpc.services.messages import MessageService
from assistants_grpc.services.threads import ThreadService

Context = Any  # grpc.aio.ServicerContext; the generated base classes type it loosely


class AssistantServicer(assistant_pb2_grpc.AssistantServiceServicer):
    def __init__(self, service: AssistantService) -> None:
        self._service = service

    @unary
    async def CreateAssistant(
        self, request: assistant_pb2.CreateAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        return await self._service.create(request)

    @unary
    async def GetAssistant(
        self, request: assistant_pb2.GetAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        return await self._service.get(request.assistant_id)

    @unary
    async def ListAssistants(
        self, request: assistant_pb2.ListAssistantsRequest, context: Context
    ) -> assistant_pb2.ListAssistantsResponse:
        return await self._service.list(request)

    @unary
    async def UpdateAssistant(
        self, request: assistant_pb2.UpdateAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        return await self._service.update(request)

    @unary
    async def DeleteAssistant(
        self, request: assistant_pb2.DeleteAssistantRequest, context: Context
    ) -> assistant_pb2.DeleteAssistantResponse:
        return await self._service.delete(request.assistant_id)


class ThreadServicer(thread_pb2_grpc.ThreadServiceServicer):
    def __init__(self, service: ThreadService) -> None:
        self._service = service

    @unary
    async def CreateThread(
        self, request: thread_pb2.CreateThreadRequest, context: Context
    ) -> thread_pb2.Thread:
        return await self._service.create(request)

    @unary
    async def GetThread(
        self, request: thread_pb2.GetThreadRequest, context: Context
    ) -> thread_pb2.Thread:
        return await self._service.get(request.thread_id)

    @unary
    async def ListThreads(
        self, request: thread_pb2.ListThreadsRequest, context: Context
    ) -> thread_pb2.ListThreadsResponse:
        return await self._service.list(request)

    @unary
    async def UpdateThread(
        self, request: thread_pb2.UpdateThreadRequest, context: Context
    ) -> thread_pb2.Thread:
        return await self._service.update(request)

    @unary
    async def DeleteThread(
        self, request: thread_pb2.DeleteThreadRequest, context: Context
    ) -> thread_pb2.DeleteThreadResponse:
        return await self._service.delete(request.thread_id)


class MessageServicer(message_pb2_grpc.MessageServiceServicer):
    def __init__(self, service: MessageService) -> None:
        self._service = service

    @unary
    async def CreateMessage(
        self, request: message_pb2.CreateMessageRequest, context: Context
    ) -> message_pb2.Message:
        return await self._service.create(request)

    @unary
    async def GetMessage(
        self, request: message_pb2.GetMessageRequest, context: Context
    ) -> message_pb2.Message:
        return await self._service.get(request.thread_id, request.message_id)

    @unary
    async def ListMessages(
        self, request: message_pb2.ListMessagesRequest, context: Context
    ) -> message_pb2.ListMessagesResponse:
        return await self._service.list(request)

    @unary
    async def UpdateMessage(
        self, request: message_pb2.UpdateMessageRequest, context: Context
    ) -> message_pb2.Message:
        return await self._service.update(request)

    @unary
    async def DeleteMessage(
        self, request: message_pb2.DeleteMessageRequest, context: Context
    ) -> message_pb2.DeleteMessageResponse:
        return await self._service.delete(request.thread_id, request.message_id)


__all__ = ["AssistantServicer", "MessageServicer", "ThreadServicer"]

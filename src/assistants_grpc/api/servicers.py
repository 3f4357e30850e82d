"""The Assistant, Thread and Message servicers: each method converts, calls a service, returns."""

from __future__ import annotations

from assistants_grpc.api.errors import unary
from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
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


class AssistantServicer(assistant_pb2_grpc.AssistantServiceServicer):
    def __init__(self, service: AssistantService, guard: Guard) -> None:
        self._service = service
        self.guard = guard

    @unary
    async def CreateAssistant(
        self, request: assistant_pb2.CreateAssistantRequest, caller: Caller
    ) -> assistant_pb2.Assistant:
        return await self._service.create(caller.project, request)

    @unary
    async def GetAssistant(
        self, request: assistant_pb2.GetAssistantRequest, caller: Caller
    ) -> assistant_pb2.Assistant:
        return await self._service.get(caller.project, request.assistant_id)

    @unary
    async def ListAssistants(
        self, request: assistant_pb2.ListAssistantsRequest, caller: Caller
    ) -> assistant_pb2.ListAssistantsResponse:
        return await self._service.list(caller.project, request)

    @unary
    async def UpdateAssistant(
        self, request: assistant_pb2.UpdateAssistantRequest, caller: Caller
    ) -> assistant_pb2.Assistant:
        return await self._service.update(caller.project, request)

    @unary
    async def DeleteAssistant(
        self, request: assistant_pb2.DeleteAssistantRequest, caller: Caller
    ) -> assistant_pb2.DeleteAssistantResponse:
        return await self._service.delete(caller.project, request.assistant_id)


class ThreadServicer(thread_pb2_grpc.ThreadServiceServicer):
    def __init__(self, service: ThreadService, guard: Guard) -> None:
        self._service = service
        self.guard = guard

    @unary
    async def CreateThread(
        self, request: thread_pb2.CreateThreadRequest, caller: Caller
    ) -> thread_pb2.Thread:
        return await self._service.create(caller.project, request)

    @unary
    async def GetThread(
        self, request: thread_pb2.GetThreadRequest, caller: Caller
    ) -> thread_pb2.Thread:
        return await self._service.get(caller.project, request.thread_id)

    @unary
    async def ListThreads(
        self, request: thread_pb2.ListThreadsRequest, caller: Caller
    ) -> thread_pb2.ListThreadsResponse:
        return await self._service.list(caller.project, request)

    @unary
    async def UpdateThread(
        self, request: thread_pb2.UpdateThreadRequest, caller: Caller
    ) -> thread_pb2.Thread:
        return await self._service.update(caller.project, request)

    @unary
    async def DeleteThread(
        self, request: thread_pb2.DeleteThreadRequest, caller: Caller
    ) -> thread_pb2.DeleteThreadResponse:
        return await self._service.delete(caller.project, request.thread_id)


class MessageServicer(message_pb2_grpc.MessageServiceServicer):
    def __init__(self, service: MessageService, guard: Guard) -> None:
        self._service = service
        self.guard = guard

    @unary
    async def CreateMessage(
        self, request: message_pb2.CreateMessageRequest, caller: Caller
    ) -> message_pb2.Message:
        return await self._service.create(caller.project, request)

    @unary
    async def GetMessage(
        self, request: message_pb2.GetMessageRequest, caller: Caller
    ) -> message_pb2.Message:
        return await self._service.get(caller.project, request.thread_id, request.message_id)

    @unary
    async def ListMessages(
        self, request: message_pb2.ListMessagesRequest, caller: Caller
    ) -> message_pb2.ListMessagesResponse:
        return await self._service.list(caller.project, request)

    @unary
    async def UpdateMessage(
        self, request: message_pb2.UpdateMessageRequest, caller: Caller
    ) -> message_pb2.Message:
        return await self._service.update(caller.project, request)

    @unary
    async def DeleteMessage(
        self, request: message_pb2.DeleteMessageRequest, caller: Caller
    ) -> message_pb2.DeleteMessageResponse:
        return await self._service.delete(caller.project, request.thread_id, request.message_id)


__all__ = ["AssistantServicer", "MessageServicer", "ThreadServicer"]

"""The RunService servicer. The streaming RPCs relay the stream `RunService` returns: the run is
created (or continued) and checked there, and a thread deleted meanwhile ends it with NOT_FOUND
there too, so every face streams the same events from the same calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

from assistants_grpc.api.errors import streaming, unary
from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.guard import Guard
from assistants_grpc.contract.pb import run_pb2, run_pb2_grpc
from assistants_grpc.services.runs import RunService


class RunServicer(run_pb2_grpc.RunServiceServicer):
    def __init__(self, service: RunService, guard: Guard) -> None:
        self._service = service
        self.guard = guard

    @unary
    async def CreateRun(self, request: run_pb2.CreateRunRequest, caller: Caller) -> run_pb2.Run:
        return await self._service.create(caller.project, request)

    @streaming
    async def CreateRunStream(
        self, request: run_pb2.CreateRunRequest, caller: Caller
    ) -> AsyncIterator[run_pb2.RunEvent]:
        async for event in await self._service.create_stream(caller.project, request):
            yield event

    @unary
    async def CreateThreadAndRun(
        self, request: run_pb2.CreateThreadAndRunRequest, caller: Caller
    ) -> run_pb2.Run:
        return await self._service.create_thread_and_run(caller.project, request)

    @streaming
    async def CreateThreadAndRunStream(
        self, request: run_pb2.CreateThreadAndRunRequest, caller: Caller
    ) -> AsyncIterator[run_pb2.RunEvent]:
        async for event in await self._service.create_thread_and_run_stream(
            caller.project, request
        ):
            yield event

    @unary
    async def GetRun(self, request: run_pb2.GetRunRequest, caller: Caller) -> run_pb2.Run:
        return await self._service.get(caller.project, request.thread_id, request.run_id)

    @unary
    async def ListRuns(
        self, request: run_pb2.ListRunsRequest, caller: Caller
    ) -> run_pb2.ListRunsResponse:
        return await self._service.list(caller.project, request)

    @unary
    async def UpdateRun(self, request: run_pb2.UpdateRunRequest, caller: Caller) -> run_pb2.Run:
        return await self._service.update(caller.project, request)

    @unary
    async def CancelRun(self, request: run_pb2.CancelRunRequest, caller: Caller) -> run_pb2.Run:
        return await self._service.cancel(caller.project, request.thread_id, request.run_id)

    @unary
    async def SubmitToolOutputs(
        self, request: run_pb2.SubmitToolOutputsRequest, caller: Caller
    ) -> run_pb2.Run:
        return await self._service.submit_tool_outputs(caller.project, request)

    @streaming
    async def SubmitToolOutputsStream(
        self, request: run_pb2.SubmitToolOutputsRequest, caller: Caller
    ) -> AsyncIterator[run_pb2.RunEvent]:
        async for event in await self._service.submit_tool_outputs_stream(caller.project, request):
            yield event

    @streaming
    async def WatchRun(
        self, request: run_pb2.WatchRunRequest, caller: Caller
    ) -> AsyncIterator[run_pb2.RunEvent]:
        async for event in await self._service.watch(caller.project, request):
            yield event

    @unary
    async def GetRunStep(
        self, request: run_pb2.GetRunStepRequest, caller: Caller
    ) -> run_pb2.RunStep:
        return await self._service.get_step(caller.project, request)

    @unary
    async def ListRunSteps(
        self, request: run_pb2.ListRunStepsRequest, caller: Caller
    ) -> run_pb2.ListRunStepsResponse:
        return await self._service.list_steps(caller.project, request)


__all__ = ["RunServicer"]

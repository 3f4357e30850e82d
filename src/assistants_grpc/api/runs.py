"""The RunService servicer. Streaming RPCs create (or continue) the run, then relay its events
from the bus until the stream's `done`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from assistants_grpc.api.errors import streaming, unary
from assistants_grpc.contract.pb import run_pb2, run_pb2_grpc
from assistants_grpc.services.runs import RunService

Context = Any  # grpc.aio.ServicerContext


class RunServicer(run_pb2_grpc.RunServiceServicer):
    def __init__(self, service: RunService) -> None:
        self._service = service

    @unary
    async def CreateRun(self, request: run_pb2.CreateRunRequest, context: Context) -> run_pb2.Run:
        return await self._service.create(request)

    @streaming
    async def CreateRunStream(
        self, request: run_pb2.CreateRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        run = await self._service.create(request)
        async for event in self._service.events(run.id, 0, "segment"):
            yield event

    @unary
    async def CreateThreadAndRun(
        self, request: run_pb2.CreateThreadAndRunRequest, context: Context
    ) -> run_pb2.Run:
        return await self._service.create_thread_and_run(request)

    @streaming
    async def CreateThreadAndRunStream(
        self, request: run_pb2.CreateThreadAndRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        run = await self._service.create_thread_and_run(request)
        async for event in self._service.events(run.id, 0, "segment"):
            yield event

    @unary
    async def GetRun(self, request: run_pb2.GetRunRequest, context: Context) -> run_pb2.Run:
        return await self._service.get(request.thread_id, request.run_id)

    @unary
    async def ListRuns(
        self, request: run_pb2.ListRunsRequest, context: Context
    ) -> run_pb2.ListRunsResponse:
        return await self._service.list(request)

    @unary
    async def UpdateRun(self, request: run_pb2.UpdateRunRequest, context: Context) -> run_pb2.Run:
        return await self._service.update(request)

    @unary
    async def CancelRun(self, request: run_pb2.CancelRunRequest, context: Context) -> run_pb2.Run:
        return await self._service.cancel(request.thread_id, request.run_id)

    @unary
    async def SubmitToolOutputs(
        self, request: run_pb2.SubmitToolOutputsRequest, context: Context
    ) -> run_pb2.Run:
        run, _ = await self._service.submit_tool_outputs(request)
        return run

    @streaming
    async def SubmitToolOutputsStream(
        self, request: run_pb2.SubmitToolOutputsRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        run, after = await self._service.submit_tool_outputs(request)
        async for event in self._service.events(run.id, after, "segment"):
            yield event

    @streaming
    async def WatchRun(
        self, request: run_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        async for event in await self._service.watch(request):
            yield event

    @unary
    async def GetRunStep(
        self, request: run_pb2.GetRunStepRequest, context: Context
    ) -> run_pb2.RunStep:
        return await self._service.get_step(request)

    @unary
    async def ListRunSteps(
        self, request: run_pb2.ListRunStepsRequest, context: Context
    ) -> run_pb2.ListRunStepsResponse:
        return await self._service.list_steps(request)


__all__ = ["RunServicer"]

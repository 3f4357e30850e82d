"""A scripted gRPC server for what the real one will not do on demand: fail with UNAVAILABLE a
given number of times, break a stream after a given event, send an event name nobody knows. It
also records the metadata of every call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from assistants_grpc_client.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
)

Context = Any  # grpc.aio.ServicerContext


@dataclass
class Script:
    """What the scripted server does; tests change it between calls."""

    # How many of the next unary calls fail with UNAVAILABLE before one succeeds.
    unavailable: int = 0
    # The run's whole event log.
    events: list[run_pb2.RunEvent] = field(default_factory=list)
    # Break the next streams with UNAVAILABLE after this many events each (None: don't).
    break_after: list[int | None] = field(default_factory=list)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    watch_requests: list[run_pb2.WatchRunRequest] = field(default_factory=list)

    def record(self, name: str, context: Context) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.calls.append((name, metadata))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


async def _maybe_fail(script: Script, context: Context) -> None:
    if script.unavailable > 0:
        script.unavailable -= 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted outage")


class _Assistants(assistant_pb2_grpc.AssistantServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def GetAssistant(
        self, request: assistant_pb2.GetAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        self.script.record("GetAssistant", context)
        await _maybe_fail(self.script, context)
        return assistant_pb2.Assistant(id=request.assistant_id, model="m")

    async def CreateAssistant(
        self, request: assistant_pb2.CreateAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        self.script.record("CreateAssistant", context)
        await _maybe_fail(self.script, context)
        return assistant_pb2.Assistant(id="asst_1", model=request.model)

    async def ListAssistants(
        self, request: assistant_pb2.ListAssistantsRequest, context: Context
    ) -> assistant_pb2.ListAssistantsResponse:
        self.script.record("ListAssistants", context)
        await _maybe_fail(self.script, context)
        return assistant_pb2.ListAssistantsResponse()


class _Runs(run_pb2_grpc.RunServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def _replay(self, after: int, stop_at_done: bool, context: Context) -> AsyncIterator[Any]:
        limit = self.script.break_after.pop(0) if self.script.break_after else None
        sent = 0
        for event in self.script.events:
            if event.sequence <= after:
                continue
            if limit is not None and sent == limit:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted drop")
            yield event
            sent += 1
            if stop_at_done and event.event == "done":
                return

    async def CreateRunStream(
        self, request: run_pb2.CreateRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        self.script.record("CreateRunStream", context)
        async for event in self._replay(0, True, context):
            yield event

    async def WatchRun(
        self, request: run_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        self.script.record("WatchRun", context)
        self.script.watch_requests.append(request)
        async for event in self._replay(request.after_sequence, False, context):
            yield event


class ScriptedServer:
    def __init__(self, credentials: Any = None) -> None:
        """`credentials`: grpc.ServerCredentials to serve TLS on `localhost` instead."""
        self.script = Script()
        self._server = grpc.aio.server()
        # Only the methods the tests script; grpc answers the others UNIMPLEMENTED.
        assistants = _Assistants(self.script)  # type: ignore[abstract]
        runs = _Runs(self.script)  # type: ignore[abstract]
        assistant_pb2_grpc.add_AssistantServiceServicer_to_server(assistants, self._server)
        run_pb2_grpc.add_RunServiceServicer_to_server(runs, self._server)
        if credentials is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
            self.host = "127.0.0.1"
        else:
            self.port = self._server.add_secure_port("localhost:0", credentials)
            self.host = "localhost"  # the name the test certificate is for

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> ScriptedServer:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop(0)


def run_events(*names: str, thread_id: str = "thread_1", run_id: str = "run_1") -> list[Any]:
    """A log of events with these names, numbered from 1; run events carry the run."""
    events = []
    for sequence, name in enumerate(names, start=1):
        event = run_pb2.RunEvent(event=name, sequence=sequence)
        if name.startswith("thread.run.") and not name.startswith("thread.run.step"):
            status = name.removeprefix("thread.run.").upper()
            run = run_pb2.Run(id=run_id, thread_id=thread_id)
            if f"RUN_STATUS_{status}" in run_pb2.RunStatus.keys():
                run.status = run_pb2.RunStatus.Value(f"RUN_STATUS_{status}")
            else:  # created, and names from the future
                run.status = run_pb2.RUN_STATUS_QUEUED
            event.run.CopyFrom(run)
        events.append(event)
    return events

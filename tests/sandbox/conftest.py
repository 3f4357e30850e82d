"""The code_interpreter sandbox, for real: bwrap, the sandbox venv, kernels. A missing sandbox
fails these tests (make test builds the venv; .ci/run installs bubblewrap): never a skip."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.engine.server_tools import JSON, ToolCallRequest, ToolResult, ToolRunContext
from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox
from assistants_grpc.tools.code_interpreter.executor import (
    CodeInterpreterExecutor,
    ExecutionLimits,
)
from assistants_grpc.tools.code_interpreter.files import MemoryFiles
from assistants_grpc.tools.code_interpreter.sandbox import SandboxLimits
from assistants_grpc.tools.code_interpreter.sessions import SessionManager, SessionSettings

_calls = itertools.count(1)
_threads = itertools.count(1)


def new_thread() -> str:
    return f"thread_test{next(_threads):06d}"


@dataclass
class Harness:
    executor: CodeInterpreterExecutor
    sessions: SessionManager
    files: MemoryFiles
    clock: ManualClock

    async def run(
        self, thread_id: str, code: str, *, file_ids: list[str] | None = None
    ) -> ToolResult:
        import json

        call = ToolCallRequest(f"call_{next(_calls)}", 0, json.dumps({"code": code}))
        context = ToolRunContext(
            project="default",
            run_id="run_test",
            thread_id=thread_id,
            assistant_id="asst_test",
            model="m",
            tool={"type": "code_interpreter"},
            tool_resources={"code_interpreter": {"file_ids": file_ids or []}},
        )

        async def emit(delta: JSON) -> None:
            pass

        return await self.executor.execute(call, context, emit)

    @staticmethod
    def logs(result: ToolResult) -> str:
        entries = [o["logs"] for o in result.details["outputs"] if o["type"] == "logs"]
        assert len(entries) <= 1
        return entries[0] if entries else ""


def make_harness(
    *,
    limits: SandboxLimits | None = None,
    settings: SessionSettings | None = None,
    execution: ExecutionLimits | None = None,
    slots: int = 6,
    uid_base: int = 990100,
) -> Harness:
    sandbox = BwrapSandbox(limits=limits, slots=slots, uid_base=uid_base)
    sandbox.check()  # fails loudly when bwrap or the venv is missing
    clock = ManualClock()
    sessions = SessionManager(sandbox, clock, replica="test", settings=settings)
    files = MemoryFiles()
    executor = CodeInterpreterExecutor(sessions, files, limits=execution)
    return Harness(executor, sessions, files, clock)


@pytest.fixture(scope="session")
async def harness() -> AsyncIterator[Harness]:
    h = make_harness(
        limits=SandboxLimits(
            memory_bytes=512 * 1024 * 1024,
            processes=64,
            file_bytes=64 * 1024 * 1024,
            data_bytes=96 * 1024 * 1024,
        ),
        execution=ExecutionLimits(wall_seconds=8.0),
    )
    yield h
    await h.sessions.close()

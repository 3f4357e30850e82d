"""The code_interpreter of a server: its sandbox, sessions and executor, built from settings,
checked at start-up, swept while serving, stopped with the server.

`--code-interpreter auto` (default) checks the sandbox in the background at start-up (a real
kernel runs `1 + 1`; calls made meanwhile wait for the answer) and logs clearly why not when
it fails; `required` waits for the check and refuses to start without it (the CLI exits 2);
`off` never starts a kernel. Off or unavailable, a call gets a clear tool output at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistants_grpc.clock import Clock
from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox
from assistants_grpc.tools.code_interpreter.executor import (
    CodeInterpreterExecutor,
    ExecutionLimits,
)
from assistants_grpc.tools.code_interpreter.files import SandboxFiles
from assistants_grpc.tools.code_interpreter.kernel import Execution, KernelClient
from assistants_grpc.tools.code_interpreter.sandbox import (
    Sandbox,
    SandboxLimits,
    SandboxStartError,
    SandboxUnavailableError,
)
from assistants_grpc.tools.code_interpreter.sessions import (
    SessionManager,
    SessionRegistry,
    SessionSettings,
)

log = logging.getLogger(__name__)

MODES = ("auto", "off", "required")


class CodeInterpreterRequiredError(ValueError):
    """`--code-interpreter required` and the sandbox does not work here."""


@dataclass(frozen=True)
class CodeInterpreterConfig:
    mode: str = "auto"
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    execution: ExecutionLimits = field(default_factory=ExecutionLimits)
    bwrap: str = "bwrap"
    venv: str | None = None
    uid_base: int = 990000
    preload: tuple[str, ...] = ()


def code_interpreter_config(settings: Any) -> CodeInterpreterConfig:
    """The configuration from the server's Settings (`config.Settings`, duck-typed so the
    tools layer does not import the configuration's)."""
    return CodeInterpreterConfig(
        mode=settings.code_interpreter,
        sandbox=SandboxLimits(
            memory_bytes=settings.code_interpreter_memory,
            processes=settings.code_interpreter_processes,
            file_bytes=settings.code_interpreter_file_bytes,
            data_bytes=settings.code_interpreter_data_bytes,
        ),
        sessions=SessionSettings(
            idle_seconds=settings.code_interpreter_idle,
            max_age_seconds=settings.code_interpreter_max_age,
            max_sessions=settings.code_interpreter_sessions,
            warm=settings.code_interpreter_warm,
        ),
        execution=ExecutionLimits(
            wall_seconds=settings.code_interpreter_timeout,
            max_log_chars=settings.code_interpreter_output_chars,
        ),
        bwrap=settings.code_interpreter_bwrap,
        venv=settings.code_interpreter_venv,
        uid_base=settings.code_interpreter_uid_base,
        preload=tuple(n.strip() for n in settings.code_interpreter_preload.split(",") if n.strip()),
    )


async def probe(sandbox: Sandbox, timeout: float = 60.0) -> None:
    """Start a kernel and run `1 + 1` in it; raise SandboxUnavailableError saying why not."""
    try:
        sandbox.check()
        kernel = await sandbox.start()
    except SandboxStartError as error:
        raise SandboxUnavailableError(f"a test sandbox did not start: {error}") from None
    client = KernelClient(kernel.urls, kernel.key)
    try:
        await client.wait_ready(timeout)
        execution = await asyncio.wait_for(client.execute("1 + 1", Execution(100, 0)), timeout)
        if execution.result != "2":
            raise SandboxUnavailableError(f"a test kernel answered {execution.result!r} to 1 + 1")
    except (TimeoutError, OSError) as error:
        raise SandboxUnavailableError(f"a test kernel did not answer ({error})") from None
    finally:
        client.close()
        await kernel.kill()


class CodeInterpreter:
    def __init__(
        self,
        config: CodeInterpreterConfig,
        files: SandboxFiles,
        clock: Clock,
        *,
        replica: str,
        registry: SessionRegistry | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.config = config
        if config.mode not in MODES:
            raise ValueError(f"--code-interpreter must be one of {', '.join(MODES)}")
        self.sandbox: Sandbox = (
            sandbox
            if sandbox is not None
            else BwrapSandbox(
                limits=config.sandbox,
                bwrap=config.bwrap,
                venv=Path(config.venv) if config.venv else None,
                slots=config.sessions.max_sessions,
                uid_base=config.uid_base,
                preload=config.preload,
            )
        )
        self.sessions: SessionManager | None = None
        if config.mode != "off":
            self.sessions = SessionManager(
                self.sandbox, clock, replica=replica, settings=config.sessions, registry=registry
            )
        self.executor = CodeInterpreterExecutor(
            self.sessions,
            files,
            limits=config.execution,
            unavailable="turned off with --code-interpreter off" if config.mode == "off" else None,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.sessions is None:
            log.info("code_interpreter: off (--code-interpreter off)")
            return
        if self.config.mode == "required":
            try:
                await probe(self.sandbox)
            except SandboxUnavailableError as error:
                raise CodeInterpreterRequiredError(
                    f"--code-interpreter required, but the sandbox does not work here: {error}"
                ) from None
            self._log_ready()
            self.sessions.start_pool()
        else:
            checked: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self.executor.available_after(checked)
            self._tasks.append(asyncio.create_task(self._probe_in_background(checked)))
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="code-sessions"))

    async def _probe_in_background(self, checked: asyncio.Future[str | None]) -> None:
        try:
            await probe(self.sandbox)
        except SandboxUnavailableError as error:
            log.warning(
                "code_interpreter: unavailable, calls of the python tool will say so: %s", error
            )
            checked.set_result(str(error))
            return
        except BaseException as error:
            checked.set_result(f"the sandbox check failed ({type(error).__name__})")
            raise
        self._log_ready()
        checked.set_result(None)
        assert self.sessions is not None
        self.sessions.start_pool()

    def _log_ready(self) -> None:
        notes = list(getattr(self.sandbox, "notes", []))
        assert self.sessions is not None
        notes.append(f"{self.sessions.settings.warm} warm kernel(s)")
        log.info("code_interpreter: sandbox ready (%s)", "; ".join(notes))

    async def _sweep_forever(self) -> None:
        assert self.sessions is not None
        interval = max(1.0, min(30.0, self.config.sessions.idle_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sessions.sweep()
            except Exception:
                log.exception("code session sweep failed")

    async def end_thread(self, thread_id: str) -> None:
        """DeleteThread's hook."""
        if self.sessions is not None:
            await self.sessions.end_thread(thread_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.executor.aclose()
        if self.sessions is not None:
            await self.sessions.close()


__all__ = [
    "MODES",
    "CodeInterpreter",
    "CodeInterpreterConfig",
    "CodeInterpreterRequiredError",
    "code_interpreter_config",
    "probe",
]

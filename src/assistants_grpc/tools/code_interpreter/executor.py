"""The `code_interpreter` tool as a `ToolExecutor`: the model's `python` calls, run in the
thread's sandboxed kernel.

What a call returns (`ToolResult`):
- `output`, what the model reads: the reset note when an earlier session was lost, the files
  in /mnt/data when they are first there (why here and not in `definition()`: a definition is
  per tool type and knows no run, and attachments may come between two calls), the logs, and
  notes for what was cut, shown, written, interrupted or stopped;
- `details`: `{"input": code, "outputs": [{"type": "logs", "logs"}, {"type": "image", "image":
  {"file_id"}}...]}`, one logs entry (stdout, stderr, the last expression's value, a plain
  traceback, in that order) when there is any text, then one image entry per figure shown;
- `final_delta`: the same outputs with their `index`, for the call's last step delta;
- `message_parts`: an `image_file` part per figure, for the next message;
- `files`: the ids of the Files the call made (figures and files written under /mnt/data).

Limits: the wall time per execution (SIGINT at the limit, the kernel killed if it has not
stopped `INTERRUPT_GRACE` seconds later; the session then starts afresh), the logs kept per
call (the rest cut with a note), images and written files per call. With the tool off or the
sandbox unavailable, or every session busy, the call answers at once with a clear output.
A cancel (run cancelled, expired, handed back) interrupts the kernel and stops waiting at once;
the kernel is killed in the background if it does not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from assistants_grpc.engine.server_tools import (
    JSON,
    EmitDelta,
    TextAnnotator,
    ToolCallRequest,
    ToolResult,
    ToolRunContext,
)
from assistants_grpc.tools.code_interpreter.annotator import SandboxLinkAnnotator
from assistants_grpc.tools.code_interpreter.arguments import CodeInputStream, decode_code
from assistants_grpc.tools.code_interpreter.files import InputFile, SandboxFiles
from assistants_grpc.tools.code_interpreter.kernel import Execution
from assistants_grpc.tools.code_interpreter.sandbox import SandboxStartError
from assistants_grpc.tools.code_interpreter.sessions import (
    CodeSession,
    SessionManager,
    SessionsBusyError,
)

log = logging.getLogger(__name__)

INTERRUPT_GRACE = 2.0
FUNCTION_NAME = "python"


@dataclass(frozen=True)
class ExecutionLimits:
    wall_seconds: float = 120.0
    max_log_chars: int = 64 * 1024
    max_images: int = 8
    max_output_files: int = 20
    max_output_file_bytes: int = 64 * 1024 * 1024
    """Larger files written under /mnt/data are not made Files (the call says so)."""


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class CodeInterpreterExecutor:
    """`ToolExecutor` for `code_interpreter`."""

    def __init__(
        self,
        sessions: SessionManager | None,
        files: SandboxFiles,
        *,
        limits: ExecutionLimits | None = None,
        unavailable: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self.limits = limits or ExecutionLimits()
        self._unavailable = unavailable if sessions is not None else (unavailable or "off")
        self._stoppers: set[asyncio.Task[None]] = set()
        self._stopping: dict[str, asyncio.Task[None]] = {}
        """Session id -> the stopper of its cancelled call, while it runs."""
        self._probe: asyncio.Future[str | None] | None = None

    def available_after(self, probe: asyncio.Future[str | None]) -> None:
        """Calls wait for `probe` (the start-up check of the sandbox, run in the background):
        None means the sandbox works, a string says why it does not."""
        self._probe = probe

    @property
    def tool_type(self) -> str:
        return "code_interpreter"

    @property
    def function_name(self) -> str:
        return FUNCTION_NAME

    @property
    def available(self) -> bool:
        return self._unavailable is None

    def definition(self, tool: JSON) -> JSON:
        # The words of OpenAI's own python tool, which models are trained on.
        description = (
            "Execute Python code in a stateful Jupyter notebook environment. python will "
            "respond with the output of the execution or time out after "
            f"{self.limits.wall_seconds:g} seconds. The drive at '/mnt/data' can be used to "
            "save and persist user files; files the user attached are there as "
            "/mnt/data/<file_id>. Internet access for this session is disabled. Link a file "
            "you wrote for the user as sandbox:/mnt/data/<name>."
        )
        return {
            "type": "function",
            "function": {
                "name": FUNCTION_NAME,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "description": "The Python code to run."}
                    },
                    "required": ["code"],
                },
            },
        }

    def input_stream(self) -> CodeInputStream:
        return CodeInputStream()

    def annotator(self, context: ToolRunContext) -> TextAnnotator | None:
        sessions = self._sessions
        if sessions is None:
            return None

        def outputs() -> dict[str, str]:
            session = sessions.session_of(context.thread_id)
            return dict(session.outputs) if session is not None else {}

        return SandboxLinkAnnotator(outputs)

    # --- execution ---------------------------------------------------------------------------

    async def execute(
        self, call: ToolCallRequest, context: ToolRunContext, emit: EmitDelta
    ) -> ToolResult:
        decoded = decode_code(call.arguments)
        code = decoded.code
        if not decoded.found or not decoded.complete:
            problem = (
                "were cut off before the code ended"
                if decoded.found
                else 'must be a JSON object {"code": "<Python source>"}'
            )
            return self._refusal(code, f"The python tool's arguments {problem}; nothing ran.")
        if self._probe is not None:
            self._unavailable = await asyncio.shield(self._probe)
            self._probe = None
        if self._sessions is None or self._unavailable is not None:
            return self._refusal(
                code,
                "The python tool is not available on this server "
                f"({self._unavailable or 'off'}); the code did not run. Answer without it.",
            )
        entered = False
        try:
            # Twice at most: the session found may be one a cancelled call is still stopping,
            # killed when its code would not stop (then the next one is fresh, with the note).
            for _ in range(2):
                async with self._sessions.use(context.thread_id) as session:
                    stopping = self._stopping.get(session.session_id)
                    if stopping is not None:
                        await asyncio.wait({stopping})  # its outcome is in session.ended
                    if not session.ended:
                        entered = True  # from here on, errors are the code's call's own
                        return await self._run(session, code, call, context)
            raise SessionsBusyError("the thread's previous code is still being stopped")
        except SessionsBusyError as busy:
            return self._refusal(code, f"Code execution is busy ({busy}); the code did not run.")
        except (SandboxStartError, TimeoutError) as error:
            if entered:
                raise
            # Not the run's failure: the model is told, and may try again or answer without.
            log.warning("code session of %s did not start: %s", context.thread_id, error)
            why = str(error) or "its kernel did not answer in time"
            return self._refusal(
                code, f"Code execution could not start a sandbox ({why}); the code did not run."
            )

    def _refusal(self, code: str, message: str) -> ToolResult:
        return ToolResult(output=message, details={"input": code, "outputs": []})

    async def _run(
        self, session: CodeSession, code: str, call: ToolCallRequest, context: ToolRunContext
    ) -> ToolResult:
        notes: list[str] = []
        if session.reset_note:
            notes.append(session.reset_note)
        listing = await self._stage_inputs(session, context)
        if listing:
            notes.append(listing)
        execution = Execution(self.limits.max_log_chars, self.limits.max_images)
        trailer = await self._execute(session, code, execution)
        made: list[str] = []
        outputs: list[JSON] = []
        logs = execution.logs
        if execution.dropped_chars:
            logs += f"\n[{execution.dropped_chars} more characters of output were cut]"
        if trailer:
            logs = f"{logs}\n{trailer}" if logs else trailer
        if logs:
            outputs.append({"type": "logs", "logs": logs})
        parts: list[JSON] = []
        for number, png in enumerate(execution.images, 1):
            file_id = await self._files.create_output(
                context.project, f"{call.call_id}-image-{number}.png", png
            )
            made.append(file_id)
            outputs.append({"type": "image", "image": {"file_id": file_id}})
            parts.append({"type": "image_file", "image_file": {"file_id": file_id}})
        written = await self._collect_outputs(session, context) if not session.ended else []
        model_text = "\n\n".join(
            [*notes, logs or ("Code ran without output." if not parts else "")]
        ).strip()
        if parts:
            model_text += (
                f"\n\n[{len(parts)} image(s) shown to the user: "
                + ", ".join(p["image_file"]["file_id"] for p in parts)
                + "]"
            )
        if execution.dropped_images:
            model_text += f"\n[{execution.dropped_images} more image(s) were not kept]"
        if written:
            listed = "\n".join(
                f"- sandbox:/mnt/data/{path} ({file_id})" for path, file_id in written
            )
            model_text += f"\n\nFiles written (link them as shown):\n{listed}"
            made.extend(file_id for _, file_id in written)
        final = [dict(entry, index=index) for index, entry in enumerate(outputs)]
        return ToolResult(
            output=model_text,
            details={"input": code, "outputs": outputs},
            final_delta={"outputs": final} if final else None,
            message_parts=parts,
            files=tuple(made),
        )

    async def _execute(self, session: CodeSession, code: str, execution: Execution) -> str:
        """Run the code under the wall-time limit; a note for the logs if it did not end well."""
        task = asyncio.ensure_future(session.client.execute(code, execution))
        exited = session.kernel.exited
        try:
            waited: set[asyncio.Future[Any]] = {task, exited}
            done, _ = await asyncio.wait(
                waited, timeout=self.limits.wall_seconds, return_when="FIRST_COMPLETED"
            )
        except asyncio.CancelledError:
            self._stop_in_background(session, task)
            raise
        if task in done:
            task.result()
            return ""
        if exited in done:
            task.cancel()
            await self._sessions_end(session, "its kernel died while running code")
            return (
                "The kernel died while running this code (it may have run out of memory, "
                "or been killed); its state is lost and the next call starts a new one."
            )
        session.kernel.interrupt()
        try:
            await asyncio.wait_for(asyncio.shield(task), INTERRUPT_GRACE)
            return (
                f"Execution timed out after {self.limits.wall_seconds:g} seconds and was "
                "interrupted (KeyboardInterrupt)."
            )
        except TimeoutError:
            task.cancel()
            await self._sessions_end(session, "its code did not stop when interrupted")
            return (
                f"Execution timed out after {self.limits.wall_seconds:g} seconds and did not "
                "stop when interrupted, so the kernel was stopped: its state is lost."
            )

    async def _sessions_end(self, session: CodeSession, reason: str) -> None:
        assert self._sessions is not None
        await self._sessions.kill_session(session, reason)

    def _stop_in_background(self, session: CodeSession, task: asyncio.Future[Execution]) -> None:
        """A cancelled call: interrupt now; kill the kernel if it still runs after the grace.
        The thread's next call waits for this (`_stopping`): it must not run in a kernel
        still busy with the cancelled code, nor in one killed under it."""
        session.kernel.interrupt()

        async def stop() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + INTERRUPT_GRACE
            try:
                # Again now and then: the first SIGINT may have reached the kernel before the
                # cancelled code started (an idle kernel ignores it).
                while not task.done() and loop.time() < deadline:
                    await asyncio.wait({task}, timeout=max(0.0, min(0.25, deadline - loop.time())))
                    if not task.done():
                        session.kernel.interrupt()
                if not task.done():
                    raise TimeoutError
                task.result()
            except (TimeoutError, Exception) as error:
                log.info(
                    "cancelled code of %s did not stop when interrupted (%s): killing it",
                    session.thread_id,
                    type(error).__name__,
                )
                task.cancel()
                if self._sessions is not None:
                    await self._sessions.kill_session(
                        session, "its code did not stop when interrupted"
                    )
            finally:
                self._stopping.pop(session.session_id, None)

        stopper = asyncio.ensure_future(stop())
        self._stopping[session.session_id] = stopper
        self._stoppers.add(stopper)
        stopper.add_done_callback(self._stoppers.discard)

    # --- files -------------------------------------------------------------------------------

    async def _stage_inputs(self, session: CodeSession, context: ToolRunContext) -> str:
        """Copy the run's input files not yet in /mnt/data; the note listing the new ones."""
        resources = context.tool_resources.get("code_interpreter") or {}
        wanted = [f for f in resources.get("file_ids") or [] if isinstance(f, str)]
        wanted += await self._files.attached(context.thread_id)
        added: list[InputFile] = []
        problems: list[str] = []
        for file_id in dict.fromkeys(wanted):
            if file_id in session.inputs:
                continue
            described = await self._files.describe(context.project, file_id)
            if described is None:
                continue
            try:
                await session.kernel.data.write(
                    file_id, self._files.content(context.project, file_id)
                )
            except OSError as error:
                problems.append(
                    f"- {file_id} ({described.filename}) could not be copied: {error.strerror}"
                )
                continue
            session.inputs.add(file_id)
            added.append(described)
        # What is there now is not the code's output.
        for entry in (await session.kernel.data.scan()).values():
            session.seen[entry.path] = (entry.size, entry.mtime_ns, entry.inode)
        if not added and not problems:
            return ""
        lines = [
            f"- /mnt/data/{f.file_id} (uploaded as {f.filename!r}, {_size(f.size)})" for f in added
        ]
        return "Files available in /mnt/data:\n" + "\n".join(lines + problems)

    async def _collect_outputs(
        self, session: CodeSession, context: ToolRunContext
    ) -> list[tuple[str, str]]:
        """Files the call wrote or changed under /mnt/data, made Files: (path, file id)."""
        found = await session.kernel.data.scan()
        written: list[tuple[str, str]] = []
        skipped = 0
        for path, entry in found.items():
            mark = (entry.size, entry.mtime_ns, entry.inode)
            if session.seen.get(path) == mark:
                continue
            session.seen[path] = mark
            if len(written) >= self.limits.max_output_files:
                skipped += 1
                continue
            data = await session.kernel.data.read(path, self.limits.max_output_file_bytes)
            if data is None:
                continue
            name = path.rsplit("/", 1)[-1]
            try:
                file_id = await self._files.create_output(context.project, name, data)
            except Exception as error:  # a quota or a name the store refuses
                log.info("output %s of %s not kept: %s", path, context.thread_id, error)
                continue
            session.outputs[path] = file_id
            written.append((path, file_id))
        for path in set(session.seen) - set(found):
            del session.seen[path]
        if skipped:
            log.info("%d more output files of %s not kept", skipped, context.thread_id)
        return written

    async def aclose(self) -> None:
        for stopper in list(self._stoppers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stopper


__all__ = ["FUNCTION_NAME", "INTERRUPT_GRACE", "CodeInterpreterExecutor", "ExecutionLimits"]

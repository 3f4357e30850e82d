"""ToolExecutors that live in the tests: they prove the run loop end to end before the real
file_search and code_interpreter exist, against the protocol in engine/server_tools.py.

- `EchoCode` is a code_interpreter (`python`) that echoes its input: the input streams as the
  call's `code_interpreter.input`, one `logs` output is emitted while it "runs" and finished by
  its final delta, and an input containing "plot" also yields an image part for the next
  message. `gate`, when set, makes every call wait for it (a long call to cancel); `cancelled`
  counts the calls that were cancelled.
- `EchoSearch` is a file_search whose annotator turns `【…】` markers in the answer into
  `file_citation` annotations, holding back text that may be a marker until it is known.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from assistants_grpc.engine.server_tools import (
    JSON,
    EmitDelta,
    InputStream,
    NoInput,
    TextAnnotator,
    ToolCallRequest,
    ToolResult,
    ToolRunContext,
)

IMAGE_FILE = "file-echoplot"


class RawInput:
    """Shows a call's raw argument fragments as its input."""

    def first(self) -> JSON:
        return {"input": "", "outputs": []}

    def feed(self, fragment: str) -> JSON | None:
        return {"input": fragment} if fragment else None


class EchoCode:
    tool_type = "code_interpreter"
    function_name = "python"

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.cancelled = 0
        self.contexts: list[ToolRunContext] = []

    def definition(self, tool: JSON) -> JSON:
        schema = {"type": "object", "properties": {"code": {"type": "string"}}}
        return {"type": "function", "function": {"name": "python", "parameters": schema}}

    def input_stream(self) -> InputStream:
        return RawInput()

    async def execute(
        self, call: ToolCallRequest, context: ToolRunContext, emit: EmitDelta
    ) -> ToolResult:
        self.contexts.append(context)
        self.started.set()
        await emit({"outputs": [{"index": 0, "type": "logs", "logs": "echo: "}]})
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        logs = "echo: " + call.arguments
        parts: list[JSON] = []
        if "plot" in call.arguments:
            parts.append({"type": "image_file", "image_file": {"file_id": IMAGE_FILE}})
        return ToolResult(
            output=f"echo {call.arguments}",
            details={"input": call.arguments, "outputs": [{"type": "logs", "logs": logs}]},
            final_delta={"outputs": [{"index": 0, "type": "logs", "logs": call.arguments}]},
            message_parts=parts,
        )

    def annotator(self, context: ToolRunContext) -> TextAnnotator | None:
        return None


class MarkerAnnotator:
    """`【…】` markers become file_citation annotations of `file_id`; positions count every code
    point fed so far (the whole message's text)."""

    def __init__(self, file_id: str = "file-cited") -> None:
        self.file_id = file_id
        self.held = ""
        self.released = 0

    def feed(self, text: str) -> tuple[str, list[JSON]]:
        self.held += text
        out, annotations = "", []
        while self.held:
            start = self.held.find("【")
            if start < 0:
                out, self.held = out + self.held, ""
                break
            end = self.held.find("】", start)
            if end < 0:
                out, self.held = out + self.held[:start], self.held[start:]
                break
            marker = self.held[start : end + 1]
            begin = self.released + len(out) + start
            annotations.append(
                {
                    "type": "file_citation",
                    "text": marker,
                    "start_index": begin,
                    "end_index": begin + len(marker),
                    "file_citation": {"file_id": self.file_id},
                }
            )
            out, self.held = out + self.held[: end + 1], self.held[end + 1 :]
        self.released += len(out)
        return out, annotations

    def finish(self) -> tuple[str, list[JSON]]:
        out, self.held = self.held, ""
        self.released += len(out)
        return out, []


class EchoSearch:
    tool_type = "file_search"
    function_name = "file_search"

    def definition(self, tool: JSON) -> JSON:
        schema = {
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}}},
        }
        return {"type": "function", "function": {"name": "file_search", "parameters": schema}}

    def input_stream(self) -> InputStream:
        return NoInput()

    async def execute(
        self, call: ToolCallRequest, context: ToolRunContext, emit: EmitDelta
    ) -> ToolResult:
        queries: Any = json.loads(call.arguments or "{}").get("queries", [])
        result = {"file_id": "file-cited", "file_name": "doc.txt", "score": 0.5}
        content = [{"type": "text", "text": f"about {queries}"}]
        return ToolResult(
            output=f"【{call.call_id}:0†doc.txt】 about {queries}",
            details={"results": [{**result, "content": content}]},
        )

    def annotator(self, context: ToolRunContext) -> TextAnnotator | None:
        return MarkerAnnotator()

"""The calls of one tool round: which the server executes and which go to the caller, what each
looks like in the step (stored form, with what the model must get back), and the execution of
the server-side ones by their `ToolExecutor` (engine/server_tools.py).

Execution is the run loop's only long wait besides the model: the calls of a round run
concurrently (an executor serialises what it must, e.g. one kernel per thread), each one's
deltas are streamed as it emits them, and a cancel, an expiry or a handback cancels them all.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistants_grpc.engine.accumulator import CallDraft, LiveInput
from assistants_grpc.engine.server_tools import (
    JSON,
    ToolCallRequest,
    ToolExecutor,
    ToolResult,
    ToolRunContext,
    merge_body,
)
from assistants_grpc.observability import metrics, tracing
from assistants_grpc.store.mapping import MODEL_VIEW

__all__ = [
    "PlannedCall",
    "execute_round",
    "merge_body",
    "merge_tool_resources",
    "plan_calls",
]


@dataclass(slots=True)
class PlannedCall:
    """One call of a round: a function call for the caller (`executor` None), or a server-side
    call with its executor, the body of its first delta and what its input stream showed."""

    draft: CallDraft
    tool_type: str
    executor: ToolExecutor | None = None
    first: JSON = field(default_factory=dict)
    streamed: JSON = field(default_factory=dict)
    result: ToolResult | None = None
    ordinal: int = 0
    """Its position among the round's calls of the same tool type."""
    trailing: list[JSON] = field(default_factory=list)
    """Parts the run's next message starts with after the result's own: the text a live turn's
    model wrote after its calls started (engine/accumulator.py)."""

    @property
    def server(self) -> bool:
        return self.executor is not None

    def request(self) -> ToolCallRequest:
        draft = self.draft
        return ToolCallRequest(draft.id, draft.index, draft.arguments, self.ordinal)

    def stored(self) -> JSON:
        """The call in the step row: its shown form, plus (server-side) the model's view."""
        draft = self.draft
        if self.executor is None:
            function = {"name": draft.name, "arguments": draft.arguments, "output": None}
            return {"id": draft.id, "type": "function", "function": function}
        if self.result is None:
            body = merge_body(copy.deepcopy(self.first), self.streamed)
            view: JSON = {"name": draft.name, "arguments": draft.arguments, "output": None}
        else:
            body = copy.deepcopy(self.result.details)
            view = {
                "name": draft.name,
                "arguments": draft.arguments,
                "output": self.result.output,
                "message_parts": [dict(p) for p in self.result.message_parts]
                + [dict(p) for p in self.trailing],
            }
        return {"id": draft.id, "type": self.tool_type, self.tool_type: body, MODEL_VIEW: view}


def plan_calls(
    drafts: Iterable[CallDraft],
    server: Mapping[str, ToolExecutor],
    inputs: Mapping[int, LiveInput] | None = None,
) -> list[PlannedCall]:
    """Each call as planned: server-side when its function is one the run offered for a built-in
    tool (`server`, by function name), a function call for the caller otherwise. A server-side
    call's input stream is fed the argument fragments in order, unless a live turn streamed it
    already (`inputs`, by call index: what it showed so far)."""
    planned = []
    of_type: dict[str, int] = {}
    for draft in drafts:
        executor = server.get(draft.name)
        if executor is None:
            planned.append(PlannedCall(draft, "function"))
            continue
        ordinal = of_type.get(executor.tool_type, 0)
        of_type[executor.tool_type] = ordinal + 1
        live = (inputs or {}).get(draft.index)
        if live is not None:
            planned.append(
                PlannedCall(
                    draft,
                    executor.tool_type,
                    executor,
                    dict(live.first),
                    copy.deepcopy(live.streamed),
                    ordinal=ordinal,
                )
            )
            continue
        stream = executor.input_stream()
        streamed: JSON = {}
        for fragment in draft.fragments:
            body = stream.feed(fragment)
            if body:
                merge_body(streamed, body)
        planned.append(
            PlannedCall(
                draft,
                executor.tool_type,
                executor,
                dict(stream.first()),
                streamed,
                ordinal=ordinal,
            )
        )
    return planned


def merge_tool_resources(*layers: Mapping[str, Any] | None) -> JSON:
    """The resources a run's tools may use (object form): every layer's vector stores and code
    interpreter files, in order, each once. The run's layer (the assistant's, or the request's
    override, frozen at creation) first, then the thread's: file_search searches both."""
    stores: list[str] = []
    files: list[str] = []
    for layer in layers:
        if not layer:
            continue
        search = layer.get("file_search") or {}
        stores += [s for s in search.get("vector_store_ids") or () if s not in stores]
        code = layer.get("code_interpreter") or {}
        files += [f for f in code.get("file_ids") or () if f not in files]
    merged: JSON = {}
    if stores:
        merged["file_search"] = {"vector_store_ids": stores}
    if files:
        merged["code_interpreter"] = {"file_ids": files}
    return merged


Emit = Callable[[PlannedCall, JSON], Awaitable[None]]


async def execute_round(
    calls: Sequence[PlannedCall],
    contexts: Mapping[str, ToolRunContext],
    emit: Emit,
) -> None:
    """Execute the round's server-side calls concurrently, each with the context of its tool
    type, storing each result on its call. If one fails (or this task is cancelled), the others
    are cancelled and awaited before the error propagates: no executor outlives its round."""

    async def one(call: PlannedCall) -> None:
        assert call.executor is not None

        async def emit_body(body: JSON) -> None:
            await emit(call, body)

        recorded, tracer = metrics.active(), tracing.tracer()
        if recorded is None and tracer is None:
            call.result = await call.executor.execute(
                call.request(), contexts[call.tool_type], emit_body
            )
            return
        began = time.perf_counter()
        outcome = "error"
        try:
            if tracer is None:
                call.result = await call.executor.execute(
                    call.request(), contexts[call.tool_type], emit_body
                )
            else:
                attributes = {
                    "gen_ai.tool.name": call.tool_type,
                    "gen_ai.tool.call.id": call.draft.id,
                }
                with tracer.start_as_current_span(f"tool {call.tool_type}", attributes=attributes):
                    call.result = await call.executor.execute(
                        call.request(), contexts[call.tool_type], emit_body
                    )
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if recorded is not None:
                recorded.tool_calls.labels(call.tool_type, outcome).inc()
                recorded.tool_duration.labels(call.tool_type).observe(time.perf_counter() - began)

    tasks = [
        asyncio.create_task(one(call), name=f"tool-{call.draft.id}")
        for call in calls
        if call.server
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
